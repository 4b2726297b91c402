//! Pure translations between NVML's numbers and `aion-mig`'s types, unit-tested
//! without a GPU: profile id ↔ profile index, the full compute-instance profile of a
//! GPU instance, NVML placements, and NVML errors.

use crate::{Error, Result};
use aion_mig::profile::Shape;
use aion_mig::{GpuModel, NvmlProfileIndex, ProfileId};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper_sys::bindings::{
    NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE,
    NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE, NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE,
    NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE,
};

/// Bytes per MiB.
pub(super) const MIB: u64 = 1024 * 1024;

/// The NVML GPU-instance profile *index* (`NVML_GPU_INSTANCE_PROFILE_*`, the argument of
/// `nvmlDeviceGetGpuInstanceProfileInfo`) of a profile *id*, where the id is a MIG
/// profile of the supported GPUs.
pub fn gpu_instance_profile_index(profile: ProfileId) -> Option<NvmlProfileIndex> {
    Shape::of(profile).map(|s| s.geometry().nvml_index)
}

/// The NVML compute-instance profile index (`NVML_COMPUTE_INSTANCE_PROFILE_*`) of the
/// one compute instance spanning a GPU instance of `compute_slices` compute slices.
pub fn full_compute_instance_index(compute_slices: u8) -> Option<u32> {
    match compute_slices {
        1 => Some(NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE),
        2 => Some(NVML_COMPUTE_INSTANCE_PROFILE_2_SLICE),
        3 => Some(NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE),
        4 => Some(NVML_COMPUTE_INSTANCE_PROFILE_4_SLICE),
        7 => Some(NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE),
        _ => None,
    }
}

/// An NVML GPU instance (profile id, placement start and size) as an `aion-mig`
/// placement on `model`; refused when it is not one the MIG tables allow.
pub fn placement_from_nvml(
    model: GpuModel,
    profile_id: u32,
    start: u32,
    size: u32,
) -> Result<(ProfileId, u8)> {
    let refuse = || {
        Error::Backend(format!(
            "NVML reports a GPU instance of profile {profile_id} at {start} (size {size}) \
             that the {model} MIG tables do not allow"
        ))
    };
    let profile = ProfileId::new(u8::try_from(profile_id).map_err(|_| refuse())?);
    let geometry = model.profile(profile).map_err(|_| refuse())?.geometry();
    let start = u8::try_from(start).map_err(|_| refuse())?;
    let allowed = geometry.starts().any(|s| s == start);
    if !allowed || u32::from(geometry.memory_slices) != size {
        return Err(refuse());
    }
    Ok((profile, start))
}

/// The error of a failed `Nvml::init`.
pub(super) fn init_error(e: NvmlError) -> Error {
    Error::Backend(format!(
        "NVML is not available: {e} (is the NVIDIA driver installed?)"
    ))
}

/// Wraps an NVML error with what the backend was doing.
pub(super) fn nvml_error(doing: &'static str) -> impl Fn(NvmlError) -> Error {
    move |e| Error::Backend(format!("{doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aion_mig::profile::GEOMETRY;

    #[test]
    fn profile_ids_map_to_the_nvml_h_profile_indices() {
        // nvml.h: 1_SLICE 0, 2_SLICE 1, 3_SLICE 2, 4_SLICE 3, 7_SLICE 4, 1_SLICE_REV1 7,
        // 1_SLICE_REV2 9; `nvidia-smi mig -lgip` ids 19, 14, 9, 5, 0, 20, 15.
        let cases = [(19, 0), (14, 1), (9, 2), (5, 3), (0, 4), (20, 7), (15, 9)];
        for (id, index) in cases {
            let got = gpu_instance_profile_index(ProfileId::new(id)).map(NvmlProfileIndex::get);
            assert_eq!(got, Some(index), "profile id {id}");
        }
        assert_eq!(gpu_instance_profile_index(ProfileId::new(1)), None);
    }

    #[test]
    fn every_profile_has_a_full_compute_instance_profile() {
        for g in &GEOMETRY {
            assert!(
                full_compute_instance_index(g.compute_slices).is_some(),
                "{:?}",
                g.id
            );
        }
        assert_eq!(full_compute_instance_index(3), Some(2));
        assert_eq!(full_compute_instance_index(7), Some(4));
        assert_eq!(full_compute_instance_index(5), None);
    }

    #[test]
    fn an_nvml_placement_maps_to_the_aion_placement() {
        let got = placement_from_nvml(GpuModel::H100_80GB, 9, 4, 4).unwrap();
        assert_eq!(got, (ProfileId::new(9), 4));
        let one_slice_two_memory = placement_from_nvml(GpuModel::A100_40GB, 15, 6, 2).unwrap();
        assert_eq!(one_slice_two_memory, (ProfileId::new(15), 6));
    }

    #[test]
    fn an_nvml_placement_the_tables_forbid_is_refused() {
        let bad = [
            (9, 2, 4),
            (9, 4, 2),
            (1, 0, 1),
            (300, 0, 1),
            (0, 0, 7),
            (19, 7, 1),
        ];
        for (id, start, size) in bad {
            let err = placement_from_nvml(GpuModel::H100_80GB, id, start, size).unwrap_err();
            assert!(err.to_string().contains("do not allow"), "{err}");
        }
    }

    #[test]
    fn the_init_error_says_to_check_the_driver() {
        let msg = init_error(NvmlError::DriverNotLoaded).to_string();
        assert!(msg.contains("NVML is not available"), "{msg}");
        assert!(msg.contains("is the NVIDIA driver installed?"), "{msg}");
    }
}
