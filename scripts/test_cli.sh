#!/usr/bin/env bash
# Tests of the neon-budget command-line client (cli/tests/): each command run as a process
# against a real cluster with the extension, the HTML report in headless Chromium, listen across
# a server restart (that test runs its own cluster in /tmp/nbcli_restart, port 5493).
# Installs what the tests need (Chromium, an emoji font), starts the cluster /tmp/nbcli on port
# 5494, runs `cargo test --release -p neon-budget` and stops the cluster on exit.
# Assumes the extension is installed (scripts/test.sh installs the release build first). Run as
# root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
DIR=${NEON_BUDGET_CLI_TEST_DIR:-/tmp/nbcli}
PORT=${NEON_BUDGET_CLI_TEST_PORT:-5494}

if [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
  echo "== installing chromium and fonts-noto-color-emoji (for the HTML report test)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi

echo "== neon-budget client tests against a cluster in $DIR (port $PORT)"
scripts/cluster.sh stop "$DIR"
scripts/cluster.sh start "$DIR" "$PORT"
trap 'scripts/cluster.sh stop "$DIR"; scripts/cluster.sh stop /tmp/nbcli_restart' EXIT
export NEON_BUDGET_TEST_DSN="host=$DIR port=$PORT user=postgres"
cargo test --release -p neon-budget -- --test-threads=4
