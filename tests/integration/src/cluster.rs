//! Throwaway clusters owned by one test (for tests that kill, restart or replicate a server):
//! each in its own directory and on its own port, started with `scripts/cluster.sh` (or, for a
//! standby made by `pg_basebackup`, with `pg_ctl` directly), and stopped and removed when the
//! [`Cluster`] is dropped, also when the test fails.
use postgres::{Client, NoTls};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The PostgreSQL 15 binaries.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// `scripts/cluster.sh` of this repository.
fn cluster_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh")
}

/// Runs a command as the `postgres` OS user when running as root (the tests run as root).
fn as_pg(program: &str) -> Command {
    let root = unsafe { libc_geteuid() } == 0;
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs `cmd`, panicking with its output when it fails.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster in `dir` (data directory `dir/data`, log `dir/log`, Unix socket in `dir`) on
/// `127.0.0.1:port`. Dropping it stops the server (immediate mode) and removes `dir`.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    /// Extra server options (`-c name=value ...`) of a cluster started with pg_ctl directly;
    /// None for a cluster started with `scripts/cluster.sh`.
    pg_ctl_options: Option<String>,
}

impl Cluster {
    /// A new cluster: removes what a previous run may have left in `dir` (stopping its server),
    /// then `scripts/cluster.sh start dir port` (initdb and start).
    pub fn create(dir: &str, port: u16) -> Cluster {
        let c = Cluster { dir: PathBuf::from(dir), port, pg_ctl_options: None };
        c.remove_leftover();
        c.start();
        c
    }

    /// A hot standby of `primary` in `dir` on `port`: `pg_basebackup -R -X stream` from the
    /// primary's socket (fast checkpoint), then started with pg_ctl (`hot_standby=on`).
    pub fn standby_of(primary: &Cluster, dir: &str, port: u16) -> Cluster {
        let c = Cluster { dir: PathBuf::from(dir), port, pg_ctl_options: Some("-c hot_standby=on -c max_connections=200".to_string()) };
        c.remove_leftover();
        run(Command::new("install").args(["-d", "-o", "postgres", "-g", "postgres", dir]), "install -d standby dir");
        run(
            as_pg(&format!("{BIN}/pg_basebackup")).args([
                "-h",
                primary.dir.to_str().unwrap(),
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                c.data().to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ]),
            "pg_basebackup",
        );
        c.start();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn remove_leftover(&self) {
        if self.data().join("PG_VERSION").exists() {
            let _ignored = as_pg(&format!("{BIN}/pg_ctl")).args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "stop"]).output();
        }
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).unwrap_or_else(|e| panic!("cannot remove {}: {e}", self.dir.display()));
        }
    }

    /// Starts the server (after a crash this runs crash recovery; nothing is removed).
    pub fn start(&self) {
        match &self.pg_ctl_options {
            None => {
                run(
                    Command::new("bash").arg(cluster_sh()).args(["start", self.dir.to_str().unwrap(), &self.port.to_string()]),
                    "cluster.sh start",
                );
            }
            Some(extra) => {
                let dir = self.dir.to_str().unwrap();
                run(
                    as_pg(&format!("{BIN}/pg_ctl")).args([
                        "-D",
                        self.data().to_str().unwrap(),
                        "-l",
                        self.dir.join("log").to_str().unwrap(),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        &format!("-p {} -k {dir} -c listen_addresses=127.0.0.1 {extra}", self.port),
                        "start",
                    ]),
                    "pg_ctl start",
                );
            }
        }
    }

    /// Stops the server (fast mode).
    pub fn stop(&self) {
        run(as_pg(&format!("{BIN}/pg_ctl")).args(["-D", self.data().to_str().unwrap(), "-m", "fast", "-w", "stop"]), "pg_ctl stop");
    }

    /// Connection string of database `db` over the cluster's Unix socket.
    pub fn dsn(&self, db: &str) -> String {
        format!("host={} port={} user=postgres dbname={db} connect_timeout=10", self.dir.display(), self.port)
    }

    /// A connection to database `db`.
    pub fn connect(&self, db: &str) -> Client {
        Client::connect(&self.dsn(db), NoTls).unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.dsn(db)))
    }

    /// The postmaster's pid (line 1 of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).expect("postmaster.pid");
        text.lines().next().unwrap().trim().parse().expect("pid in postmaster.pid")
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log of {}:\n{}", self.dir.display(), tail(&self.log(), 60));
        }
        if self.data().join("PG_VERSION").exists() {
            let _ignored =
                as_pg(&format!("{BIN}/pg_ctl")).args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
        }
        let _ignored = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The pids of the running processes whose parent is `ppid` (from `/proc`).
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 1 && fields[1].parse::<i32>().ok() == Some(ppid) && fields[0] != "Z" {
                out.push(pid);
            }
        }
    }
    out
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, r)| !r.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive; false when `timeout` passed first.
pub fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits until process `pid` is gone and reaped (a zombie still holds its pid, and PostgreSQL
/// takes a lock file whose pid answers `kill(pid, 0)` for a running server); false when
/// `timeout` passed first.
pub fn wait_reaped(pid: i32, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
