//! A simulated node: N GPUs of one model whose MIG instances follow the `aion-mig`
//! rules exactly (an [`aion_mig::GpuState`] per GPU), so it refuses what the hardware
//! would refuse. Processes are real OS processes registered on a MIG device (or
//! virtual ones for fleet simulations); faults can be injected for tests. Everything
//! it reports is deterministic: UUIDs come from the seed, samples from the state.

mod node;

use super::{GpuBackend, GpuInfo, GpuSample, InstanceInfo, ProcessInfo, StopSignal};
use crate::{Error, Result};
use aion_mig::{GpuModel, ProfileId};
use node::Node;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What the simulated node looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Model of every GPU.
    pub model: GpuModel,
    /// Number of GPUs.
    pub gpus: usize,
    /// Seed of the GPU and MIG device UUIDs: the same seed gives the same GPUs.
    pub seed: u64,
    /// Whether MIG mode starts enabled on every GPU.
    pub mig_enabled: bool,
}

/// A failure injected into the simulator; it lasts until [`SimBackend::clear_faults`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Creating an instance on this GPU fails.
    CreateFails(String),
    /// Destroying an instance on this GPU fails.
    DestroyFails(String),
    /// This GPU reports `healthy: false` in samples.
    Unhealthy(String),
    /// `inventory` and `instances` fail.
    InventoryFails,
    /// `sample` fails.
    SampleFails,
}

/// The simulated node. Cheap to share: all state is behind one mutex.
#[derive(Debug)]
pub struct SimBackend {
    node: Mutex<Node>,
    /// Where the state is saved, with the last state written there.
    persist: Option<Persist>,
}

#[derive(Debug)]
struct Persist {
    path: PathBuf,
    written: Mutex<Option<node::Saved>>,
}

impl SimBackend {
    /// A node as `config` describes it, with no instances and no processes.
    pub fn new(config: SimConfig) -> Self {
        Self {
            node: Mutex::new(Node::new(&config)),
            persist: None,
        }
    }

    /// A node as `config` describes it whose state is kept in `path`: loaded from it when
    /// it exists (it must be of the same configuration), saved to it (atomically, 0600)
    /// after every change. OS processes that exited meanwhile are dropped on load.
    pub fn persistent(config: SimConfig, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let (node, written) = match std::fs::read(&path) {
            Ok(bytes) => {
                let saved: node::Saved = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Backend(format!(
                        "unreadable simulator state {}: {e}",
                        path.display()
                    ))
                })?;
                let node = Node::restore(&config, saved.clone())?;
                tracing::info!(path = %path.display(), "simulated node state loaded");
                (node, Some(saved))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Node::new(&config), None),
            Err(source) => return Err(Error::State { path, source }),
        };
        let backend = Self {
            node: Mutex::new(node),
            persist: Some(Persist {
                path,
                written: Mutex::new(written),
            }),
        };
        backend.node()?.save_if_changed()?;
        Ok(backend)
    }

    /// The file the state is kept in, for a persistent node.
    pub fn state_file(&self) -> Option<&Path> {
        self.persist.as_ref().map(|p| p.path.as_path())
    }

    fn node(&self) -> Result<Guard<'_>> {
        let node = self
            .node
            .lock()
            .map_err(|_| Error::Backend("simulator state poisoned by a panic".to_string()))?;
        Ok(Guard {
            node,
            persist: self.persist.as_ref(),
        })
    }
}

/// The locked node; for a persistent node, [`Guard::save_if_changed`] writes the state
/// file when the state differs from the last one written.
struct Guard<'a> {
    node: MutexGuard<'a, Node>,
    persist: Option<&'a Persist>,
}

impl std::ops::Deref for Guard<'_> {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.node
    }
}

impl Guard<'_> {
    /// Saves the state if it changed. Called with the lock held, so saves never
    /// interleave and the file always holds a state the node went through.
    fn save_if_changed(&self) -> Result<()> {
        let Some(persist) = self.persist else {
            return Ok(());
        };
        let now = self.node.snapshot();
        let mut written = persist
            .written
            .lock()
            .map_err(|_| Error::Backend("simulator state poisoned by a panic".to_string()))?;
        if written.as_ref() == Some(&now) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&now).map_err(|e| Error::State {
            path: persist.path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::client::write_private(&persist.path, &bytes).map_err(|source| Error::State {
            path: persist.path.clone(),
            source,
        })?;
        *written = Some(now);
        Ok(())
    }

    /// Runs `f` on the node, then saves the state if it changed. A failed save fails
    /// the call, so a caller never believes in a change the file does not hold (the
    /// change is kept in memory and saved by the next call).
    fn change<T>(mut self, f: impl FnOnce(&mut Node) -> Result<T>) -> Result<T> {
        let out = f(&mut self.node);
        self.save_if_changed()?;
        out
    }
}

impl SimBackend {
    /// Registers OS process `pid` on a MIG device, as a CUDA program started on it
    /// would appear. Refused when the device does not exist or the process is not
    /// alive. It disappears from [`GpuBackend::processes`] when the process exits.
    pub fn attach_process(
        &self,
        mig_device_uuid: &str,
        pid: u32,
        used_memory_mib: u64,
    ) -> Result<()> {
        self.node()?
            .change(|n| n.attach(mig_device_uuid, pid, used_memory_mib, false))
    }

    /// Registers a process that exists only in the simulator (for fleet simulations):
    /// it is never checked against nor signalled in the OS, and it stops as soon as
    /// it is sent any signal.
    pub fn attach_virtual_process(
        &self,
        mig_device_uuid: &str,
        pid: u32,
        used_memory_mib: u64,
    ) -> Result<()> {
        self.node()?
            .change(|n| n.attach(mig_device_uuid, pid, used_memory_mib, true))
    }

    /// Turns MIG mode on or off on one GPU; refused while it has instances.
    pub fn set_mig_enabled(&self, gpu_uuid: &str, enabled: bool) -> Result<()> {
        self.node()?
            .change(|n| n.set_mig_enabled(gpu_uuid, enabled))
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) -> Result<()> {
        self.node()?.faults.push(fault);
        Ok(())
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) -> Result<()> {
        self.node()?.faults.clear();
        Ok(())
    }
}

impl GpuBackend for SimBackend {
    fn inventory(&self) -> Result<Vec<GpuInfo>> {
        self.node()?.inventory()
    }

    fn instances(&self) -> Result<Vec<InstanceInfo>> {
        self.node()?.instances()
    }

    fn create_instance(
        &self,
        gpu_uuid: &str,
        profile: ProfileId,
        start: u8,
    ) -> Result<InstanceInfo> {
        self.node()?.change(|n| n.create(gpu_uuid, profile, start))
    }

    fn destroy_instance(&self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()> {
        self.node()?.change(|n| n.destroy(gpu_uuid, profile, start))
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>> {
        self.node()?.change(|n| Ok(n.processes()))
    }

    fn signal(&self, pid: u32, signal: StopSignal) -> Result<()> {
        self.node()?.change(|n| n.signal(pid, signal))
    }

    fn sample(&self) -> Result<Vec<GpuSample>> {
        self.node()?.change(|n| n.sample())
    }

    fn track_workload(&self, mig_device_uuid: &str, pid: u32) -> Result<()> {
        self.node()?.change(|node| {
            if node.processes().iter().any(|p| p.pid == pid) {
                return Ok(());
            }
            node.attach(mig_device_uuid, pid, 0, false)
        })
    }
}

/// NVML product name and total memory (MiB, as `nvidia-smi` reports it) of a model.
pub fn product(model: GpuModel) -> (&'static str, u64) {
    match model {
        GpuModel::A100_40GB => ("NVIDIA A100-SXM4-40GB", 40_960),
        GpuModel::A100_80GB => ("NVIDIA A100-SXM4-80GB", 81_920),
        GpuModel::H100_80GB => ("NVIDIA H100 80GB HBM3", 81_559),
        GpuModel::H100_94GB => ("NVIDIA H100 NVL", 95_830),
        GpuModel::H200_141GB => ("NVIDIA H200", 143_771),
    }
}

/// Idle and maximum board power of a model, milliwatts.
pub fn power_range_mw(model: GpuModel) -> (u64, u64) {
    match model {
        GpuModel::A100_40GB | GpuModel::A100_80GB => (55_000, 400_000),
        GpuModel::H100_80GB | GpuModel::H200_141GB => (70_000, 700_000),
        GpuModel::H100_94GB => (60_000, 400_000),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(seed: u64) -> SimConfig {
        SimConfig {
            model: GpuModel::H100_80GB,
            gpus: 2,
            seed,
            mig_enabled: true,
        }
    }

    #[test]
    fn a_persistent_node_comes_back_with_its_instances_and_live_processes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim-state.json");
        let first = SimBackend::persistent(config(5), &path).unwrap();
        let gpu = first.inventory().unwrap()[1].uuid.clone();
        let made = first.create_instance(&gpu, ProfileId::new(19), 3).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        first
            .attach_process(&made.mig_device_uuid, child.id(), 100)
            .unwrap();
        first
            .attach_virtual_process(&made.mig_device_uuid, 4_000_000, 10)
            .unwrap();
        drop(first);

        let second = SimBackend::persistent(config(5), &path).unwrap();
        assert_eq!(second.instances().unwrap(), vec![made.clone()]);
        let pids: Vec<u32> = second.processes().unwrap().iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![child.id(), 4_000_000]);
        // The MIG rules hold across the restart: the slot is still taken.
        assert!(second.create_instance(&gpu, ProfileId::new(19), 3).is_err());
        // A re-created instance gets a new UUID, as the counter was kept.
        second.signal(4_000_000, StopSignal::Kill).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        second
            .destroy_instance(&gpu, ProfileId::new(19), 3)
            .unwrap();
        let again = second.create_instance(&gpu, ProfileId::new(19), 3).unwrap();
        assert_ne!(again.mig_device_uuid, made.mig_device_uuid);
        drop(second);

        // A process that exited while the node was down is gone after the load.
        let third = SimBackend::persistent(config(5), &path).unwrap();
        assert!(third.processes().unwrap().is_empty());
        assert_eq!(third.instances().unwrap(), vec![again]);
    }

    #[test]
    fn a_state_file_of_another_node_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim-state.json");
        drop(SimBackend::persistent(config(1), &path).unwrap());
        let err = SimBackend::persistent(config(2), &path).unwrap_err();
        assert!(err.to_string().contains("another node"), "{err}");
        std::fs::write(&path, b"{not json").unwrap();
        let err = SimBackend::persistent(config(1), &path).unwrap_err();
        assert!(err.to_string().contains("unreadable"), "{err}");
    }
}
