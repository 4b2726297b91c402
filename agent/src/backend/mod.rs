//! GPU backends behind one trait: `nvml` for real GPUs and `sim` for a simulated node
//! that follows the `aion-mig` rules exactly. Calls are synchronous (NVML is a blocking C
//! library; the simulator is in memory); the reconcile loop runs one at a time.

pub mod nvml;
pub(crate) mod os_process;
pub mod sim;

use crate::Result;
use aion_mig::{GpuModel, ProfileId};

/// One GPU of the node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GpuInfo {
    /// NVIDIA UUID, `GPU-…`.
    pub uuid: String,
    /// Index on the node.
    pub index: u32,
    /// Model, as the MIG tables know it.
    pub model: GpuModel,
    /// NVML product name (`NVIDIA H100 80GB HBM3`).
    pub product_name: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Whether MIG mode is enabled (current mode).
    pub mig_enabled: bool,
}

/// A MIG instance present on a GPU (a GPU instance with its one full compute instance).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceInfo {
    /// GPU UUID.
    pub gpu_uuid: String,
    /// NVML profile id of the GPU instance.
    pub profile: ProfileId,
    /// First memory slice of its placement.
    pub start: u8,
    /// MIG device UUID, `MIG-…`.
    pub mig_device_uuid: String,
}

/// A process running on a MIG device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessInfo {
    /// OS process id.
    pub pid: u32,
    /// MIG device it runs on.
    pub mig_device_uuid: String,
    /// GPU memory it uses, MiB.
    pub used_memory_mib: u64,
}

/// A sample of one GPU and of its MIG devices.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GpuSample {
    /// GPU UUID.
    pub gpu_uuid: String,
    /// Board power in milliwatts.
    pub power_mw: u64,
    /// Per MIG device: SM utilisation in percent (GPM where available) and memory used.
    pub instances: Vec<InstanceSample>,
    /// Whether the GPU is healthy (no XID/ECC fault reported).
    pub healthy: bool,
}

/// A sample of one MIG device.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct InstanceSample {
    /// MIG device UUID.
    pub mig_device_uuid: String,
    /// SM utilisation, 0–100, when the hardware reports it.
    pub sm_utilisation_pct: Option<f64>,
    /// Memory used, MiB.
    pub memory_used_mib: u64,
}

/// Signals the agent sends to processes it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: ask to stop.
    Term,
    /// SIGKILL: stop now.
    Kill,
}

/// What the agent needs of a node's GPUs.
pub trait GpuBackend: Send + Sync {
    /// The node's GPUs, by index.
    fn inventory(&self) -> Result<Vec<GpuInfo>>;
    /// Every MIG instance present on the node.
    fn instances(&self) -> Result<Vec<InstanceInfo>>;
    /// Creates a GPU instance of `profile` at `start` on `gpu_uuid` with one compute
    /// instance spanning it; refused where the hardware would refuse it.
    fn create_instance(
        &self,
        gpu_uuid: &str,
        profile: ProfileId,
        start: u8,
    ) -> Result<InstanceInfo>;
    /// Destroys the instance of `profile` at `start`; refused while processes run on it.
    fn destroy_instance(&self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()>;
    /// Processes running on MIG devices.
    fn processes(&self) -> Result<Vec<ProcessInfo>>;
    /// Sends `signal` to a process found by [`GpuBackend::processes`].
    fn signal(&self, pid: u32, signal: StopSignal) -> Result<()>;
    /// Power, utilisation, memory and health of every GPU.
    fn sample(&self) -> Result<Vec<GpuSample>>;
    /// Tracks OS process `pid`, started by `aion agent exec` on a MIG device, as a
    /// process of that device. A real driver lists CUDA processes by itself, so the
    /// default does nothing; the simulator records it.
    fn track_workload(&self, mig_device_uuid: &str, pid: u32) -> Result<()> {
        let _ = (mig_device_uuid, pid);
        Ok(())
    }
}
