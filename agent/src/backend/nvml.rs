//! The backend for real GPUs, through NVML (`nvml-wrapper`, which loads
//! `libnvidia-ml.so.1` at run time, so the agent builds and starts without a GPU).
//! GPU- and compute-instance calls that `nvml-wrapper` does not wrap are in [`ffi`].
//! It never changes MIG mode: enabling MIG is an operator's decision (it resets the GPU).

mod ffi;
mod mapping;

pub use mapping::{
    DriverProfile, full_compute_instance_index, gpu_instance_profile_index, placement_from_nvml,
    table_differences,
};

use super::os_process::OsProcess;
use super::{
    GpuBackend, GpuInfo, GpuSample, InstanceInfo, InstanceSample, ProcessInfo, StopSignal,
};
use crate::{Error, Result};
use aion_mig::{GpuModel, GpuState, Placement, ProfileId};
use ffi::GpuInstance;
use mapping::{MIB, nvml_error};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{NVML_DEVICE_MIG_ENABLE, NVML_GPU_INSTANCE_PROFILE_COUNT};

/// The driver's MIG profile table of one GPU, read-only (`aion agent probe`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DriverTable {
    /// GPU UUID.
    pub gpu_uuid: String,
    /// The GPU's model in Aion's tables.
    pub model: GpuModel,
    /// The GPU instance profiles the driver offers on it.
    pub profiles: Vec<DriverProfile>,
    /// Why the table could not be read (MIG mode disabled, a driver error).
    pub unreadable: Option<String>,
}

/// NVML-backed GPUs of this node.
pub struct NvmlBackend {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend").finish_non_exhaustive()
    }
}

/// A supported GPU with its NVML handle.
struct Gpu<'n> {
    info: GpuInfo,
    device: Device<'n>,
}

/// A placed GPU instance, as NVML reports it and as `aion-mig` names it.
struct Placed<'n> {
    profile: ProfileId,
    start: u8,
    gi: GpuInstance<'n>,
}

impl NvmlBackend {
    /// Loads and initialises NVML; fails with a clear message where there is no driver.
    pub fn init() -> Result<Self> {
        Nvml::init()
            .map(|nvml| Self { nvml })
            .map_err(mapping::init_error)
    }

    /// Every supported GPU of the node; GPUs of other models are skipped with a warning.
    fn gpus(&self) -> Result<Vec<Gpu<'_>>> {
        let count = self
            .nvml
            .device_count()
            .map_err(nvml_error("counting GPUs"))?;
        let mut gpus = Vec::new();
        for index in 0..count {
            let device = self
                .nvml
                .device_by_index(index)
                .map_err(nvml_error("opening GPU"))?;
            match gpu_info(index, &device)? {
                Some(info) => gpus.push(Gpu { info, device }),
                None => continue,
            }
        }
        Ok(gpus)
    }

    fn gpu(&self, uuid: &str) -> Result<Gpu<'_>> {
        self.gpus()?
            .into_iter()
            .find(|g| g.info.uuid == uuid)
            .ok_or_else(|| Error::UnknownGpu(uuid.to_string()))
    }

    /// The GPU instances of every profile of the model on this GPU.
    fn placed<'n>(&'n self, gpu: &Gpu<'n>) -> Result<Vec<Placed<'n>>> {
        let mut all = Vec::new();
        for profile in gpu.info.model.profiles() {
            let index = u32::from(profile.geometry().nvml_index.get());
            let (id, max) = match ffi::gpu_instance_profile(&self.nvml, &gpu.device, index) {
                Ok(info) => (info.id, info.instance_count),
                // A profile this GPU or driver does not offer.
                Err(NvmlError::NotSupported | NvmlError::InvalidArg) => continue,
                Err(e) => return Err(nvml_error("reading MIG profile info")(e)),
            };
            let gis = ffi::gpu_instances(&self.nvml, &gpu.device, id, max)
                .map_err(nvml_error("listing GPU instances"))?;
            for gi in gis {
                match placement_from_nvml(gpu.info.model, gi.profile_id, gi.start, gi.size) {
                    Ok((profile, start)) => all.push(Placed { profile, start, gi }),
                    // Made outside Aion and not in the MIG tables: left alone (the GPU
                    // refuses any create that would overlap it) rather than failing every
                    // reconcile of the node.
                    Err(e) => tracing::warn!(error = %e, gpu = %gpu.info.uuid, gi = gi.id,
                        "GPU instance outside the MIG tables ignored"),
                }
            }
        }
        Ok(all)
    }

    /// The MIG devices of a GPU with the GPU instance id each belongs to.
    fn mig_devices<'n>(&'n self, gpu: &Gpu<'n>) -> Result<Vec<(u32, Device<'n>)>> {
        let max = gpu
            .device
            .mig_device_count()
            .map_err(nvml_error("counting MIG devices"))?;
        let mut devices = Vec::new();
        for index in 0..max {
            match gpu.device.mig_device_by_index(index) {
                Ok(mig) => {
                    let gi = ffi::mig_device_gpu_instance_id(&self.nvml, &mig)
                        .map_err(nvml_error("reading a MIG device's GPU instance"))?;
                    devices.push((gi, mig));
                }
                // Indices without a MIG device.
                Err(NvmlError::NotFound | NvmlError::InvalidArg) => continue,
                Err(e) => return Err(nvml_error("opening a MIG device")(e)),
            }
        }
        Ok(devices)
    }

    fn mig_uuid(&self, gpu: &Gpu<'_>, gi_id: u32) -> Result<Option<String>> {
        for (id, mig) in self.mig_devices(gpu)? {
            if id == gi_id {
                return mig
                    .uuid()
                    .map(Some)
                    .map_err(nvml_error("reading a MIG device UUID"));
            }
        }
        Ok(None)
    }

    /// The driver's MIG profile table of every supported GPU, to check against Aion's
    /// (`mapping::table_differences`). Reads only; a GPU whose table cannot be read
    /// says why instead of failing the others.
    pub fn driver_tables(&self) -> Result<Vec<DriverTable>> {
        let mut tables = Vec::new();
        for gpu in self.gpus()? {
            let (profiles, unreadable) = match self.driver_profiles(&gpu) {
                Ok(p) if p.is_empty() && !gpu.info.mig_enabled => (
                    p,
                    Some("MIG mode is disabled: the driver lists no MIG profiles".to_owned()),
                ),
                Ok(p) if p.is_empty() => (p, Some("the driver lists no MIG profiles".to_owned())),
                Ok(p) => (p, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            tables.push(DriverTable {
                gpu_uuid: gpu.info.uuid.clone(),
                model: gpu.info.model,
                profiles,
                unreadable,
            });
        }
        Ok(tables)
    }

    fn driver_profiles(&self, gpu: &Gpu<'_>) -> std::result::Result<Vec<DriverProfile>, NvmlError> {
        let mut profiles = Vec::new();
        for index in 0..NVML_GPU_INSTANCE_PROFILE_COUNT {
            let info = match ffi::gpu_instance_profile(&self.nvml, &gpu.device, index) {
                Ok(info) => info,
                // Not offered on this GPU, or MIG mode is disabled.
                Err(NvmlError::NotSupported | NvmlError::InvalidArg) => continue,
                Err(e) => return Err(e),
            };
            let placements = ffi::possible_placements(&self.nvml, &gpu.device, info.id)?;
            profiles.push(DriverProfile {
                index,
                id: info.id,
                compute_slices: info.slice_count,
                max_instances: info.instance_count,
                memory_mib: info.memory_mib,
                placements,
            });
        }
        Ok(profiles)
    }

    fn mig_gpus(&self) -> Result<Vec<Gpu<'_>>> {
        Ok(self
            .gpus()?
            .into_iter()
            .filter(|g| g.info.mig_enabled)
            .collect())
    }
}

fn gpu_info(index: u32, device: &Device<'_>) -> Result<Option<GpuInfo>> {
    let product_name = device.name().map_err(nvml_error("reading GPU name"))?;
    let Ok(model) = GpuModel::from_nvml_name(&product_name) else {
        tracing::warn!(
            index,
            product_name,
            "GPU model without MIG support in Aion; skipped"
        );
        return Ok(None);
    };
    let uuid = device.uuid().map_err(nvml_error("reading GPU UUID"))?;
    let memory = device
        .memory_info()
        .map_err(nvml_error("reading GPU memory"))?;
    let mig_enabled = match device.mig_mode() {
        Ok(mode) => mode.current == NVML_DEVICE_MIG_ENABLE,
        Err(NvmlError::NotSupported) => false,
        Err(e) => return Err(nvml_error("reading MIG mode")(e)),
    };
    Ok(Some(GpuInfo {
        uuid,
        index,
        model,
        product_name,
        memory_mib: memory.total / MIB,
        mig_enabled,
    }))
}

impl GpuBackend for NvmlBackend {
    fn inventory(&self) -> Result<Vec<GpuInfo>> {
        Ok(self.gpus()?.into_iter().map(|g| g.info).collect())
    }

    /// A GPU instance without a compute instance (left by an interrupted creation) has
    /// no MIG device: it is listed with an empty `mig_device_uuid`, so its memory is
    /// not taken for free and it can be destroyed.
    fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let mut all = Vec::new();
        for gpu in self.mig_gpus()? {
            let devices = self.mig_devices(&gpu)?;
            for placed in self.placed(&gpu)? {
                let uuid = match devices.iter().find(|(id, _)| *id == placed.gi.id) {
                    Some((_, mig)) => mig
                        .uuid()
                        .map_err(nvml_error("reading a MIG device UUID"))?,
                    None => String::new(),
                };
                all.push(InstanceInfo {
                    gpu_uuid: gpu.info.uuid.clone(),
                    profile: placed.profile,
                    start: placed.start,
                    mig_device_uuid: uuid,
                });
            }
        }
        Ok(all)
    }

    fn create_instance(
        &self,
        gpu_uuid: &str,
        profile: ProfileId,
        start: u8,
    ) -> Result<InstanceInfo> {
        let gpu = self.gpu(gpu_uuid)?;
        let geometry = gpu.info.model.profile(profile)?.geometry();
        if !gpu.info.mig_enabled {
            return Err(Error::Backend(format!(
                "MIG mode is disabled on GPU {gpu_uuid}; an operator must enable it first"
            )));
        }
        // Refuse what the rules refuse before asking the driver, with the rule's reason.
        let placed: Vec<Placement> = (self.placed(&gpu)?.iter())
            .map(|p| Placement {
                profile: p.profile,
                start: p.start,
            })
            .collect();
        GpuState::from_placements(&placed)?.check(profile, start)?;
        let index = u32::from(geometry.nvml_index.get());
        let id = ffi::gpu_instance_profile(&self.nvml, &gpu.device, index)
            .map_err(nvml_error("reading MIG profile info"))?
            .id;
        if id != u32::from(profile.get()) {
            return Err(Error::Backend(format!(
                "NVML names profile index {index} id {id}, not {profile}; unexpected driver"
            )));
        }
        let size = u32::from(geometry.memory_slices);
        let gi = ffi::create_gpu_instance(&self.nvml, &gpu.device, id, start.into(), size)
            .map_err(nvml_error("creating GPU instance"))?;
        let created = full_compute_instance_index(geometry.compute_slices)
            .ok_or_else(|| Error::Backend(format!("no compute profile for profile {profile}")))
            .and_then(|ci| {
                ffi::create_full_compute_instance(&self.nvml, &gi, ci)
                    .map_err(nvml_error("creating compute instance"))
            });
        if let Err(e) = created {
            // Leave no half-made instance behind.
            if let Err(undo) = ffi::destroy_gpu_instance(&self.nvml, gi) {
                tracing::error!(%undo, gpu_uuid, "could not destroy the GPU instance again");
            }
            return Err(e);
        }
        let uuid = self.mig_uuid(&gpu, gi.id)?.ok_or_else(|| {
            Error::Backend(format!(
                "GPU instance {} has no MIG device after creation",
                gi.id
            ))
        })?;
        Ok(InstanceInfo {
            gpu_uuid: gpu_uuid.to_string(),
            profile,
            start,
            mig_device_uuid: uuid,
        })
    }

    fn destroy_instance(&self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()> {
        let gpu = self.gpu(gpu_uuid)?;
        let placed = self.placed(&gpu)?;
        let Some(target) = placed
            .into_iter()
            .find(|p| p.profile == profile && p.start == start)
        else {
            return Err(Error::UnknownInstance {
                gpu: gpu_uuid.to_string(),
                profile: profile.get(),
                start,
            });
        };
        for (id, mig) in self.mig_devices(&gpu)? {
            if id == target.gi.id && !running(&mig)?.is_empty() {
                let uuid = mig
                    .uuid()
                    .map_err(nvml_error("reading a MIG device UUID"))?;
                return Err(Error::Busy(uuid));
            }
        }
        ffi::destroy_gpu_instance(&self.nvml, target.gi)
            .map_err(nvml_error("destroying MIG instance"))
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let mut all = Vec::new();
        for gpu in self.mig_gpus()? {
            for (_, mig) in self.mig_devices(&gpu)? {
                let uuid = mig
                    .uuid()
                    .map_err(nvml_error("reading a MIG device UUID"))?;
                for p in running(&mig)? {
                    all.push(ProcessInfo {
                        pid: p.pid,
                        mig_device_uuid: uuid.clone(),
                        used_memory_mib: match p.used_gpu_memory {
                            UsedGpuMemory::Used(bytes) => bytes / MIB,
                            UsedGpuMemory::Unavailable => 0,
                        },
                    });
                }
            }
        }
        Ok(all)
    }

    fn signal(&self, pid: u32, signal: StopSignal) -> Result<()> {
        if !self.processes()?.iter().any(|p| p.pid == pid) {
            return Err(Error::Backend(format!(
                "process {pid} is not on a MIG device of this node; refusing to signal it"
            )));
        }
        // Gone between the listing and now: nothing to stop.
        OsProcess::find(pid).map_or(Ok(()), |os| os.signal(signal).map(drop))
    }

    fn sample(&self) -> Result<Vec<GpuSample>> {
        let mut samples = Vec::new();
        for gpu in self.gpus()? {
            let (power_mw, healthy) = match gpu.device.power_usage() {
                Ok(mw) => (u64::from(mw), true),
                Err(NvmlError::GpuLost) => (0, false),
                Err(NvmlError::NotSupported) => (0, true),
                Err(e) => return Err(nvml_error("reading power")(e)),
            };
            let mut instances = Vec::new();
            if gpu.info.mig_enabled {
                for (_, mig) in self.mig_devices(&gpu)? {
                    instances.push(InstanceSample {
                        mig_device_uuid: mig.uuid().map_err(nvml_error("reading MIG UUID"))?,
                        // NVML's utilisation rates are not reported per MIG device; GPM
                        // sampling is not used yet.
                        sm_utilisation_pct: None,
                        memory_used_mib: mig.memory_info().map_or(0, |m| m.used / MIB),
                    });
                }
            }
            samples.push(GpuSample {
                gpu_uuid: gpu.info.uuid,
                power_mw,
                instances,
                healthy,
            });
        }
        Ok(samples)
    }
}

/// Compute processes on a MIG device (none where the driver does not report them).
fn running(mig: &Device<'_>) -> Result<Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>> {
    match mig.running_compute_processes() {
        Ok(list) => Ok(list),
        Err(NvmlError::NotSupported) => Ok(Vec::new()),
        Err(e) => Err(nvml_error("listing processes")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read-only either way: without a driver `init` must fail with the clear message;
    /// with one, the inventory and instances must list without error.
    #[test]
    fn init_fails_clearly_without_a_driver_or_lists_the_gpus_read_only() {
        match NvmlBackend::init() {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("NVML is not available"), "{msg}");
                assert!(msg.contains("is the NVIDIA driver installed?"), "{msg}");
            }
            Ok(backend) => {
                let gpus = backend.inventory().unwrap();
                for gpu in &gpus {
                    assert!(gpu.uuid.starts_with("GPU-"), "{gpu:?}");
                    assert!(gpu.memory_mib > 0, "{gpu:?}");
                }
                let instances = backend.instances().unwrap();
                assert!(
                    instances
                        .iter()
                        .all(|i| gpus.iter().any(|g| g.uuid == i.gpu_uuid))
                );
                backend.processes().unwrap();
                backend.sample().unwrap();
                // Where MIG mode is enabled, the driver's tables must be Aion's.
                let tables = backend.driver_tables().unwrap();
                assert_eq!(tables.len(), gpus.len());
                for t in &tables {
                    let mig_enabled = gpus.iter().any(|g| g.uuid == t.gpu_uuid && g.mig_enabled);
                    if mig_enabled {
                        assert_eq!(t.unreadable, None, "{t:?}");
                        let diff = table_differences(t.model, &t.profiles);
                        assert!(diff.is_empty(), "{}: {diff:#?}", t.gpu_uuid);
                    }
                }
                eprintln!("NVML: {gpus:#?}\n{instances:#?}\n{tables:#?}");
            }
        }
    }
}
