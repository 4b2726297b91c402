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
}

impl SimBackend {
    /// A node as `config` describes it, with no instances and no processes.
    pub fn new(config: SimConfig) -> Self {
        Self {
            node: Mutex::new(Node::new(&config)),
        }
    }

    fn node(&self) -> Result<MutexGuard<'_, Node>> {
        self.node
            .lock()
            .map_err(|_| Error::Backend("simulator state poisoned by a panic".to_string()))
    }

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
            .attach(mig_device_uuid, pid, used_memory_mib, false)
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
            .attach(mig_device_uuid, pid, used_memory_mib, true)
    }

    /// Turns MIG mode on or off on one GPU; refused while it has instances.
    pub fn set_mig_enabled(&self, gpu_uuid: &str, enabled: bool) -> Result<()> {
        self.node()?.set_mig_enabled(gpu_uuid, enabled)
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
        self.node()?.create(gpu_uuid, profile, start)
    }

    fn destroy_instance(&self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()> {
        self.node()?.destroy(gpu_uuid, profile, start)
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>> {
        Ok(self.node()?.processes())
    }

    fn signal(&self, pid: u32, signal: StopSignal) -> Result<()> {
        self.node()?.signal(pid, signal)
    }

    fn sample(&self) -> Result<Vec<GpuSample>> {
        self.node()?.sample()
    }

    fn track_workload(&self, mig_device_uuid: &str, pid: u32) -> Result<()> {
        let mut node = self.node()?;
        if node.processes().iter().any(|p| p.pid == pid) {
            return Ok(());
        }
        node.attach(mig_device_uuid, pid, 0, false)
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
