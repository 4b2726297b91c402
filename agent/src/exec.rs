//! Running a command as a workload of a lease (`aion agent exec --lease ID -- CMD…`).
//!
//! The agent publishes, after each reconcile, which MIG devices each live lease has on
//! this node (`devices.json` in its state directory). `exec` reads it, refuses a lease
//! that is not live here, starts the command with `CUDA_VISIBLE_DEVICES` set to the
//! lease's devices and drops a workload file (`workloads/<pid>.json`) that the agent picks
//! up at its next reconcile: the simulator then lists the process on the device (a real
//! driver does by itself), and a workload whose lease is no longer live is stopped.

use crate::backend::os_process::OsProcess;
use crate::client::write_private;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use uuid::Uuid;

/// File of the state directory listing each live lease's MIG devices.
pub const DEVICES_FILE: &str = "devices.json";
/// Folder of the state directory holding one file per running workload.
pub const WORKLOADS_DIR: &str = "workloads";

/// What the agent publishes after each reconcile: the live leases and their devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDevices {
    /// Desired-state revision the node was reconciled to.
    pub revision: i64,
    /// When the agent wrote the file.
    pub written_at: DateTime<Utc>,
    /// Live leases with all their instances present.
    pub leases: Vec<LeaseDevices>,
}

/// One live lease's devices on the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseDevices {
    /// Lease id.
    pub lease_id: Uuid,
    /// When the lease ends, if known.
    pub ends_at: Option<DateTime<Utc>>,
    /// MIG device UUIDs (`MIG-…`), in placement order.
    pub mig_device_uuids: Vec<String>,
}

/// A workload started by `exec`, as dropped in `workloads/<pid>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// The lease it runs for.
    pub lease_id: Uuid,
    /// The devices it was given.
    pub mig_device_uuids: Vec<String>,
    /// OS process id.
    pub pid: u32,
    /// Start time of the process (clock ticks since boot), so a reused pid is not taken
    /// for it.
    pub start_ticks: Option<u64>,
    /// When `exec` started it.
    pub started_at: DateTime<Utc>,
    /// When the agent sent it TERM because its lease is no longer live here.
    #[serde(default)]
    pub term_sent_at: Option<DateTime<Utc>>,
}

impl Workload {
    /// The OS process behind it, if it still runs (same pid, same start time).
    pub fn is_running(&self) -> bool {
        self.os().is_alive()
    }

    pub(crate) fn os(&self) -> OsProcess {
        OsProcess {
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }
}

/// Path of the devices file in `state_dir`.
pub fn devices_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DEVICES_FILE)
}

/// Path of the workload file of `pid` in `state_dir`.
pub fn workload_path(state_dir: &Path, pid: u32) -> PathBuf {
    state_dir.join(WORKLOADS_DIR).join(format!("{pid}.json"))
}

/// Reads the devices file the agent published.
pub fn read_devices(state_dir: &Path) -> Result<NodeDevices> {
    let path = devices_path(state_dir);
    let bytes = std::fs::read(&path).map_err(|source| Error::State {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::State {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Writes the devices file atomically.
pub fn write_devices(state_dir: &Path, devices: &NodeDevices) -> Result<()> {
    let path = devices_path(state_dir);
    serde_json::to_vec_pretty(devices)
        .map_err(std::io::Error::other)
        .and_then(|b| write_private(&path, &b))
        .map_err(|source| Error::State { path, source })
}

/// The MIG devices of `lease_id` on this node; refused when the agent does not list it
/// as live here (never placed here, not created yet, released or past its end).
pub fn lease_devices(state_dir: &Path, lease_id: Uuid, now: DateTime<Utc>) -> Result<Vec<String>> {
    let devices = read_devices(state_dir).map_err(|e| {
        Error::Config(format!(
            "cannot read the agent's devices ({e}); is `aion agent run` running with --state-dir {}?",
            state_dir.display()
        ))
    })?;
    let lease = devices
        .leases
        .into_iter()
        .find(|l| l.lease_id == lease_id)
        .ok_or_else(|| {
            Error::Config(format!(
                "lease {lease_id} is not live on this node (not placed here, its slice not created yet, or released)"
            ))
        })?;
    if lease.ends_at.is_some_and(|end| end <= now) || lease.mig_device_uuids.is_empty() {
        return Err(Error::Config(format!(
            "lease {lease_id} has ended on this node"
        )));
    }
    Ok(lease.mig_device_uuids)
}

/// `CUDA_VISIBLE_DEVICES` for these MIG devices: `MIG-<uuid>`, comma-separated.
pub fn visible_devices(mig_device_uuids: &[String]) -> String {
    mig_device_uuids
        .iter()
        .map(|u| {
            if u.starts_with("MIG-") {
                u.clone()
            } else {
                format!("MIG-{u}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A command started as a workload of a lease.
#[derive(Debug)]
pub struct Running {
    child: Child,
    file: PathBuf,
    /// The workload as registered with the agent.
    pub workload: Workload,
}

/// Starts `command` (program and arguments) on the devices of `lease_id` and registers
/// it with the agent of `state_dir`.
pub fn spawn(state_dir: &Path, lease_id: Uuid, command: &[OsString]) -> Result<Running> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Error::Config("no command to run".into()))?;
    let devices = lease_devices(state_dir, lease_id, Utc::now())?;
    let visible = visible_devices(&devices);
    let child = Command::new(program)
        .args(args)
        .env("CUDA_VISIBLE_DEVICES", &visible)
        .env("NVIDIA_VISIBLE_DEVICES", &visible)
        .env("AION_LEASE_ID", lease_id.to_string())
        .spawn()
        .map_err(|e| {
            Error::Config(format!(
                "cannot start {}: {e}",
                Path::new(program).display()
            ))
        })?;
    let pid = child.id();
    let workload = Workload {
        lease_id,
        mig_device_uuids: devices,
        pid,
        start_ticks: OsProcess::find(pid).and_then(|p| p.start_ticks),
        started_at: Utc::now(),
        term_sent_at: None,
    };
    let file = workload_path(state_dir, pid);
    let mut running = Running {
        child,
        file,
        workload,
    };
    if let Err(e) = write_workload(state_dir, &running.workload) {
        // Untracked, it would escape enforcement: do not let it run.
        let _ = running.child.kill();
        let _ = running.child.wait();
        return Err(e);
    }
    tracing::info!(lease = %lease_id, pid, devices = %visible, "workload started");
    Ok(running)
}

impl Running {
    /// The workload's process id.
    pub fn pid(&self) -> u32 {
        self.workload.pid
    }

    /// Waits for the command to end and unregisters it.
    pub fn wait(mut self) -> Result<ExitStatus> {
        let status = self.child.wait();
        if let Err(e) = std::fs::remove_file(&self.file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, file = %self.file.display(), "cannot remove the workload file");
        }
        status.map_err(|source| Error::State {
            path: self.file.clone(),
            source,
        })
    }
}

/// The exit code a shell would give: the command's own, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from((128 + sig) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Writes a workload file atomically.
pub fn write_workload(state_dir: &Path, workload: &Workload) -> Result<()> {
    let path = workload_path(state_dir, workload.pid);
    serde_json::to_vec_pretty(workload)
        .map_err(std::io::Error::other)
        .and_then(|b| write_private(&path, &b))
        .map_err(|source| Error::State { path, source })
}

/// Every workload file in `state_dir` (unreadable ones are logged and skipped).
pub fn read_workloads(state_dir: &Path) -> Vec<Workload> {
    let dir = state_dir.join(WORKLOADS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match std::fs::read(&path).map(|b| serde_json::from_slice::<Workload>(&b)) {
            Ok(Ok(w)) => out.push(w),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, file = %path.display(), "unreadable workload file")
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "cannot read workload file")
            }
        }
    }
    out.sort_by_key(|w| w.pid);
    out
}

/// Removes the workload file of `pid`.
pub fn forget_workload(state_dir: &Path, pid: u32) {
    let path = workload_path(state_dir, pid);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, file = %path.display(), "cannot remove the workload file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(dir: &Path, lease: Uuid, ends_at: Option<DateTime<Utc>>) {
        write_devices(
            dir,
            &NodeDevices {
                revision: 3,
                written_at: Utc::now(),
                leases: vec![LeaseDevices {
                    lease_id: lease,
                    ends_at,
                    mig_device_uuids: vec!["MIG-a".into(), "MIG-b".into()],
                }],
            },
        )
        .unwrap();
    }

    #[test]
    fn visible_devices_are_comma_separated_mig_uuids() {
        assert_eq!(
            visible_devices(&["MIG-1".into(), "2".into()]),
            "MIG-1,MIG-2"
        );
    }

    #[test]
    fn a_lease_not_published_by_the_agent_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = lease_devices(dir.path(), Uuid::new_v4(), Utc::now()).unwrap_err();
        assert!(err.to_string().contains("aion agent run"), "{err}");
        published(dir.path(), Uuid::new_v4(), None);
        let other = Uuid::new_v4();
        let err = lease_devices(dir.path(), other, Utc::now()).unwrap_err();
        assert!(err.to_string().contains("not live on this node"), "{err}");
    }

    #[test]
    fn a_lease_past_its_end_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Uuid::new_v4();
        published(
            dir.path(),
            lease,
            Some(Utc::now() - chrono::Duration::seconds(1)),
        );
        assert!(lease_devices(dir.path(), lease, Utc::now()).is_err());
    }

    #[test]
    fn a_command_runs_with_its_devices_and_its_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Uuid::new_v4();
        published(dir.path(), lease, None);
        let cmd: Vec<OsString> = [
            "sh",
            "-c",
            "test \"$CUDA_VISIBLE_DEVICES\" = MIG-a,MIG-b && exit 7",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let running = spawn(dir.path(), lease, &cmd).unwrap();
        let pid = running.pid();
        assert_eq!(read_workloads(dir.path())[0].pid, pid);
        let status = running.wait().unwrap();
        assert_eq!(exit_code(status), 7);
        assert!(read_workloads(dir.path()).is_empty());
    }
}
