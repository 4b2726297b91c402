//! The raw NVML MIG calls that `nvml-wrapper` 0.13 does not wrap (GPU and compute
//! instances: profile info, list, create with placement, destroy), called through the
//! function pointers of its `NvmlLib`. The only `unsafe` of the crate lives here.
//!
//! Soundness, common to every call: the function pointers come from the library that
//! `Nvml::init` loaded and initialised, and the `&Nvml` borrow keeps it loaded; every
//! out-pointer is a live, properly aligned local of the type the C prototype names;
//! device handles come from `nvml-wrapper` or from NVML itself; a missing symbol is an
//! error (`nvml_sym`), never a call through a null pointer. Nothing here changes MIG mode.
#![allow(unsafe_code)]

use nvml_wrapper::Device;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::{NvmlError, nvml_sym, nvml_try};
use nvml_wrapper_sys::bindings::{
    NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, nvmlComputeInstance_t,
    nvmlComputeInstanceProfileInfo_t, nvmlDevice_t, nvmlGpuInstance_t, nvmlGpuInstanceInfo_t,
    nvmlGpuInstancePlacement_t, nvmlGpuInstanceProfileInfo_t,
};
use std::marker::PhantomData;
use std::mem;

/// NVML compute-instance profile indices go up to `NVML_COMPUTE_INSTANCE_PROFILE_COUNT`.
const CI_PROFILE_COUNT: u32 = nvml_wrapper_sys::bindings::NVML_COMPUTE_INSTANCE_PROFILE_COUNT;

/// A GPU instance handle, valid while the `Nvml` it came from is borrowed. Not `Copy`:
/// destroying it consumes it, so no copy of the handle can be used afterwards.
#[derive(Debug)]
pub(super) struct GpuInstance<'nvml> {
    handle: nvmlGpuInstance_t,
    /// GPU instance id (what MIG device handles report).
    pub id: u32,
    /// NVML profile id.
    pub profile_id: u32,
    /// First memory slice.
    pub start: u32,
    /// Memory slices.
    pub size: u32,
    nvml: PhantomData<&'nvml Nvml>,
}

fn raw(device: &Device<'_>) -> nvmlDevice_t {
    // SAFETY: the handle is only passed back to NVML while `device` (and so the
    // library) is alive; it is never dereferenced here.
    unsafe { device.handle() }
}

/// What `nvmlDeviceGetGpuInstanceProfileInfo` says of one GPU instance profile.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProfileInfo {
    /// NVML profile id.
    pub id: u32,
    /// Compute (GPU) slices.
    pub slice_count: u32,
    /// Most instances of the profile on one GPU.
    pub instance_count: u32,
    /// Memory of one instance, MiB (NVML names it MB).
    pub memory_mib: u64,
}

/// `nvmlDeviceGetGpuInstanceProfileInfo` of GPU instance profile *index* `index`
/// (`NVML_GPU_INSTANCE_PROFILE_*`).
pub(super) fn gpu_instance_profile(
    nvml: &Nvml,
    device: &Device<'_>,
    index: u32,
) -> Result<ProfileInfo, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetGpuInstanceProfileInfo.as_ref())?;
    // SAFETY: see the module comment; `info` is a plain C struct for which all-zero
    // bytes are a valid value, filled in by NVML.
    unsafe {
        let mut info: nvmlGpuInstanceProfileInfo_t = mem::zeroed();
        nvml_try(sym(raw(device), index, &mut info))?;
        Ok(ProfileInfo {
            id: info.id,
            slice_count: info.sliceCount,
            instance_count: info.instanceCount,
            memory_mib: info.memorySizeMB,
        })
    }
}

/// `nvmlDeviceGetGpuInstancePossiblePlacements_v2`: every (start, size) at which the
/// GPU would place an instance of `profile_id`, ignoring the instances present.
/// (`nvml-wrapper`'s own wrapper of it never sets the vector's length.)
pub(super) fn possible_placements(
    nvml: &Nvml,
    device: &Device<'_>,
    profile_id: u32,
) -> Result<Vec<(u32, u32)>, NvmlError> {
    let sym = nvml_sym(
        nvml.lib()
            .nvmlDeviceGetGpuInstancePossiblePlacements_v2
            .as_ref(),
    )?;
    // A GPU has 8 memory slices, so at most 8 starts; 16 slots leave a margin.
    const SLOTS: usize = 16;
    let mut placements = [nvmlGpuInstancePlacement_t { start: 0, size: 0 }; SLOTS];
    let mut count = SLOTS as u32;
    // SAFETY: `placements` has room for `count` entries, which is what NVML is told;
    // it writes at most that many and sets `count` to how many it wrote.
    unsafe {
        nvml_try(sym(
            raw(device),
            profile_id,
            placements.as_mut_ptr(),
            &mut count,
        ))?
    };
    Ok(placements
        .iter()
        .take((count as usize).min(SLOTS))
        .map(|p| (p.start, p.size))
        .collect())
}

/// `nvmlDeviceGetGpuInstances` for one profile id, with each instance's id and
/// placement (`nvmlGpuInstanceGetInfo`). `max` is the profile's instance count.
pub(super) fn gpu_instances<'n>(
    nvml: &'n Nvml,
    device: &Device<'n>,
    profile_id: u32,
    max: u32,
) -> Result<Vec<GpuInstance<'n>>, NvmlError> {
    let list = nvml_sym(nvml.lib().nvmlDeviceGetGpuInstances.as_ref())?;
    let mut handles: Vec<nvmlGpuInstance_t> = vec![std::ptr::null_mut(); max.max(1) as usize];
    let mut count = handles.len() as u32;
    // SAFETY: NVML fills `handles` with at most the profile's instance count (`max`, from
    // `nvmlDeviceGetGpuInstanceProfileInfo`) and sets `count` to how many it wrote;
    // `handles` has room for `max` (at least one).
    unsafe {
        nvml_try(list(
            raw(device),
            profile_id,
            handles.as_mut_ptr(),
            &mut count,
        ))?
    };
    handles.truncate(count.min(max.max(1)) as usize);
    handles.into_iter().map(|h| describe(nvml, h)).collect()
}

fn describe<'n>(nvml: &'n Nvml, handle: nvmlGpuInstance_t) -> Result<GpuInstance<'n>, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlGpuInstanceGetInfo.as_ref())?;
    // SAFETY: `handle` was just returned by NVML; `info` is a zeroable C struct.
    unsafe {
        let mut info: nvmlGpuInstanceInfo_t = mem::zeroed();
        nvml_try(sym(handle, &mut info))?;
        Ok(GpuInstance {
            handle,
            id: info.id,
            profile_id: info.profileId,
            start: info.placement.start,
            size: info.placement.size,
            nvml: PhantomData,
        })
    }
}

/// `nvmlDeviceCreateGpuInstanceWithPlacement`.
pub(super) fn create_gpu_instance<'n>(
    nvml: &'n Nvml,
    device: &Device<'n>,
    profile_id: u32,
    start: u32,
    size: u32,
) -> Result<GpuInstance<'n>, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceCreateGpuInstanceWithPlacement.as_ref())?;
    let placement = nvmlGpuInstancePlacement_t { start, size };
    let mut handle: nvmlGpuInstance_t = std::ptr::null_mut();
    // SAFETY: `placement` is read by NVML during the call only; `handle` is an
    // out-pointer to a local.
    unsafe { nvml_try(sym(raw(device), profile_id, &placement, &mut handle))? };
    describe(nvml, handle)
}

/// Creates the one compute instance spanning `gi`: compute-instance profile *index*
/// `ci_index` (`NVML_COMPUTE_INSTANCE_PROFILE_*`), shared engines.
pub(super) fn create_full_compute_instance(
    nvml: &Nvml,
    gi: &GpuInstance<'_>,
    ci_index: u32,
) -> Result<(), NvmlError> {
    let lib = nvml.lib();
    let info_sym = nvml_sym(lib.nvmlGpuInstanceGetComputeInstanceProfileInfo.as_ref())?;
    let create = nvml_sym(lib.nvmlGpuInstanceCreateComputeInstance.as_ref())?;
    // SAFETY: `gi.handle` came from NVML under the same `Nvml`; `info` is a zeroable C
    // struct and `ci` an out-pointer to a local.
    unsafe {
        let mut info: nvmlComputeInstanceProfileInfo_t = mem::zeroed();
        let shared = NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED;
        nvml_try(info_sym(gi.handle, ci_index, shared, &mut info))?;
        let mut ci: nvmlComputeInstance_t = std::ptr::null_mut();
        nvml_try(create(gi.handle, info.id, &mut ci))
    }
}

/// Destroys every compute instance of `gi`, then `gi` itself (NVML refuses to destroy
/// a GPU instance that still has compute instances).
pub(super) fn destroy_gpu_instance(nvml: &Nvml, gi: GpuInstance<'_>) -> Result<(), NvmlError> {
    let lib = nvml.lib();
    let info_sym = nvml_sym(lib.nvmlGpuInstanceGetComputeInstanceProfileInfo.as_ref())?;
    let list = nvml_sym(lib.nvmlGpuInstanceGetComputeInstances.as_ref())?;
    let destroy_ci = nvml_sym(lib.nvmlComputeInstanceDestroy.as_ref())?;
    let destroy_gi = nvml_sym(lib.nvmlGpuInstanceDestroy.as_ref())?;
    for ci_index in 0..CI_PROFILE_COUNT {
        // SAFETY: a GPU instance holds at most as many compute instances of one profile as
        // it has compute slices (7 at most), so `cis` with 8 slots is large enough; NVML
        // sets `count` to how many it wrote, and only those are read.
        unsafe {
            let mut info: nvmlComputeInstanceProfileInfo_t = mem::zeroed();
            let shared = NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED;
            // Profiles this GPU instance does not offer answer an error: skip them.
            if nvml_try(info_sym(gi.handle, ci_index, shared, &mut info)).is_err() {
                continue;
            }
            let mut cis: Vec<nvmlComputeInstance_t> = vec![std::ptr::null_mut(); 8];
            let mut count = cis.len() as u32;
            nvml_try(list(gi.handle, info.id, cis.as_mut_ptr(), &mut count))?;
            for &ci in cis.iter().take(count.min(8) as usize) {
                nvml_try(destroy_ci(ci))?;
            }
        }
    }
    // SAFETY: `gi.handle` came from NVML; `gi` is moved in and `GpuInstance` is not
    // `Copy`, so the handle cannot be used after this call.
    unsafe { nvml_try(destroy_gi(gi.handle)) }
}

/// `nvmlDeviceGetGpuInstanceId` of a MIG device handle.
pub(super) fn mig_device_gpu_instance_id(
    nvml: &Nvml,
    mig_device: &Device<'_>,
) -> Result<u32, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetGpuInstanceId.as_ref())?;
    let mut id = 0;
    // SAFETY: `id` is an out-pointer to a local `c_uint`.
    unsafe { nvml_try(sym(raw(mig_device), &mut id))? };
    Ok(id)
}
