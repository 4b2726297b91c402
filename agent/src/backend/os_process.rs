//! The OS side of the processes the backends track: whether a pid is still a live
//! process (and the same one it was), and sending it a signal. Both backends signal
//! only pids they found on a MIG device; this module refuses the pids that would
//! signal more than one process (0, negative) or the agent itself.

use super::StopSignal;
use crate::{Error, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A live OS process, identified by its pid and its start time (clock ticks since
/// boot, from `/proc/<pid>/stat`), so a reused pid is not taken for the process that
/// had it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OsProcess {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot; `None` where `/proc` is not readable.
    pub start_ticks: Option<u64>,
}

impl OsProcess {
    /// The live process with this pid now, or `None` when there is none (a zombie,
    /// exited but not yet reaped, counts as none).
    pub fn find(pid: u32) -> Option<OsProcess> {
        let raw = positive_pid(pid).ok()?;
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let (state, start_ticks) = parse_stat(&stat)?;
                (state != 'Z' && state != 'X').then_some(OsProcess {
                    pid,
                    start_ticks: Some(start_ticks),
                })
            }
            // No `/proc` at all (not Linux, or not mounted): ask the kernel instead.
            Err(_) if !std::path::Path::new("/proc/self/stat").exists() => {
                kill(raw, None).ok().map(|()| OsProcess {
                    pid,
                    start_ticks: None,
                })
            }
            Err(_) => None,
        }
    }

    /// Whether this very process (same pid, same start time) is still alive.
    pub fn is_alive(&self) -> bool {
        OsProcess::find(self.pid).is_some_and(|now| now.start_ticks == self.start_ticks)
    }

    /// Sends `signal` to this process if it is still alive; `Ok(false)` when it has
    /// already exited (nothing is sent, so a reused pid is never signalled).
    pub fn signal(&self, signal: StopSignal) -> Result<bool> {
        if !self.is_alive() {
            return Ok(false);
        }
        let raw = checked_pid(self.pid)?;
        let sig = match signal {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        };
        match kill(raw, sig) {
            Ok(()) => Ok(true),
            // It exited between the check and the signal.
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(Error::Backend(format!(
                "sending {sig} to process {}: {e}",
                self.pid
            ))),
        }
    }
}

/// A pid that names one process (`kill` reads 0 and negative pids as groups).
fn positive_pid(pid: u32) -> Result<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| Error::Backend(format!("{pid} is not a valid process id")))
}

/// A pid that names exactly one process other than the agent.
fn checked_pid(pid: u32) -> Result<Pid> {
    let raw = positive_pid(pid)?;
    if pid == std::process::id() {
        return Err(Error::Backend(format!(
            "process {pid} is the agent itself; refusing to signal it"
        )));
    }
    Ok(raw)
}

/// State letter and start time (field 22) of a `/proc/<pid>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after the
/// last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 lie between the state (3) and the start time (22).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_parses() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
    }

    #[test]
    fn the_agent_itself_is_alive_but_never_signalled() {
        let me = OsProcess::find(std::process::id());
        assert!(me.is_some());
        assert!(checked_pid(std::process::id()).is_err());
    }

    #[test]
    fn pid_zero_and_pids_beyond_i32_are_refused() {
        assert!(checked_pid(0).is_err());
        assert!(checked_pid(u32::MAX).is_err());
        assert!(OsProcess::find(0).is_none());
    }
}
