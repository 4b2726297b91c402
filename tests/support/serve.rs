//! A real `aion serve` child process for tests that need whole servers (failover, the
//! control plane going down and coming back): started on a PostgreSQL database, waited for
//! until it listens, signalled, and killed when dropped if still running. Shared by the
//! `failover` and `api` test binaries; each uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to listen.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// One `aion serve` process; SIGKILLed when dropped if still running.
pub struct ServeProcess {
    /// Name in messages (also its folder under the root).
    pub name: String,
    child: Child,
    /// Its folder: `stdout.log`, `stderr.log` and the data dir `data/`.
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT` it listens on.
    pub base: String,
    /// Whether it has exited (and was reaped).
    pub exited: bool,
}

impl ServeProcess {
    /// Starts `aion serve` on `db_url` listening on `listen` (`127.0.0.1:0` for any free
    /// port) with a fast scheduler tick, plus `extra` flags; waits until it listens.
    pub async fn start(
        name: &str,
        db_url: &str,
        listen: &str,
        root: &Path,
        extra: &[&str],
    ) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let stdout = std::fs::File::create(dir.join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_aion"))
            .arg("serve")
            .args(["--database-url", db_url])
            .args(["--listen", listen])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--db-max-connections", "8"])
            .args(["--scheduler-tick-ms", "100"])
            .args(["--node-timeout-s", "600"])
            .args(extra)
            .env("AION_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawning aion serve");
        let mut server = Self {
            name: name.to_owned(),
            child,
            dir,
            base: String::new(),
            exited: false,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let out = std::fs::read_to_string(server.dir.join("stdout.log")).unwrap_or_default();
            if let Some(rest) = out.split("listening on ").nth(1)
                && let Some(line) = rest.lines().next()
            {
                server.base = line.trim().to_owned();
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                server.exited = true;
                panic!(
                    "server {name} exited ({status}) before listening\n{}",
                    server.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server {name} did not listen within {START_DEADLINE:?}\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr (the logs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The last lines of both outputs, for failure messages.
    pub fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr (last 40 lines) ---\n{}",
            self.name,
            tail(std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()),
            self.name,
            tail(self.stderr())
        )
    }

    /// Sends a signal (`TERM`, `KILL`) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -s {sig} {} failed", self.pid());
    }

    /// Waits until the process has exited.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = true;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server {} did not exit within {within:?}\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (30 s at most) until it has exited.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await;
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
