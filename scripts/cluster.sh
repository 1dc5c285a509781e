#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the demo, the tests and the benchmarks.
#   scripts/cluster.sh start DIR PORT   initdb (once) and start; prints nothing else on success
#   scripts/cluster.sh stop DIR
# Runs the server as the postgres OS user (initdb refuses root), trust auth on a Unix socket in
# DIR and on 127.0.0.1 only.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=${1:?start|stop}; dir=${2:?cluster dir}; port=${3:-5499}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
  start)
    if [ ! -s "$dir/data/PG_VERSION" ]; then
      install -d -o postgres -g postgres "$dir"
      as_pg "$BIN/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg env -u RUST_BACKTRACE -u RUST_LOG "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
        "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=512MB -c fsync=on" start >/dev/null
    fi
    ;;
  stop)
    if [ -s "$dir/data/PG_VERSION" ]; then
      as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
