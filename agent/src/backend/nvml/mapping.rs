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

/// One GPU instance profile as the driver describes it: its profile info and the
/// placements it allows (`nvidia-smi mig -lgip` and `-lgipp`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DriverProfile {
    /// NVML profile index (`NVML_GPU_INSTANCE_PROFILE_*`).
    pub index: u32,
    /// NVML profile id.
    pub id: u32,
    /// Compute slices.
    pub compute_slices: u32,
    /// Most instances on one GPU.
    pub max_instances: u32,
    /// Memory of one instance, MiB.
    pub memory_mib: u64,
    /// Allowed placements as (start, size) in memory slices, as the driver lists them.
    pub placements: Vec<(u32, u32)>,
}

/// Where the driver's MIG profile table for a GPU of `model` and Aion's tables differ,
/// one sentence per difference; empty when the scheduler's placements are exactly the
/// ones this GPU accepts. Driver profiles Aion does not schedule are not differences.
pub fn table_differences(model: GpuModel, driver: &[DriverProfile]) -> Vec<String> {
    let mut differences = Vec::new();
    for profile in model.profiles() {
        let g = profile.geometry();
        let name = profile.name;
        let index = u32::from(g.nvml_index.get());
        let Some(d) = driver.iter().find(|d| d.index == index) else {
            differences.push(format!(
                "{name}: the driver does not offer profile index {index}"
            ));
            continue;
        };
        let mut differ = |what: &str, driver: String, aion: String| {
            if driver != aion {
                differences.push(format!(
                    "{name}: {what} is {driver} on the driver, {aion} in Aion"
                ));
            }
        };
        differ("the profile id", d.id.to_string(), g.id.to_string());
        differ(
            "the compute slice count",
            d.compute_slices.to_string(),
            g.compute_slices.to_string(),
        );
        differ(
            "the instance limit",
            d.max_instances.to_string(),
            g.max_instances.to_string(),
        );
        let mut driver_placements = d.placements.clone();
        driver_placements.sort_unstable();
        let aion_placements: Vec<(u32, u32)> = g
            .starts()
            .map(|s| (u32::from(s), u32::from(g.memory_slices)))
            .collect();
        differ(
            "the placement list (start, size)",
            format!("{driver_placements:?}"),
            format!("{aion_placements:?}"),
        );
        if let Some(mib) = profile.memory_mib() {
            differ(
                "the memory (MiB)",
                d.memory_mib.to_string(),
                mib.to_string(),
            );
        }
    }
    differences
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

    /// One driver profile: index, id, compute slices, instance limit, MiB, and the
    /// starts of its placements of `size` memory slices.
    fn row(
        index: u32,
        id: u32,
        c: u32,
        max: u32,
        mib: u64,
        starts: &[u32],
        size: u32,
    ) -> DriverProfile {
        DriverProfile {
            index,
            id,
            compute_slices: c,
            max_instances: max,
            memory_mib: mib,
            placements: starts.iter().map(|&s| (s, size)).collect(),
        }
    }

    /// The H100 80GB table as `nvidia-smi mig -lgip` / `-lgipp` print it (driver 535+).
    fn h100_driver_table() -> Vec<DriverProfile> {
        vec![
            row(0, 19, 1, 7, 9_984, &[0, 1, 2, 3, 4, 5, 6], 1),
            row(7, 20, 1, 1, 9_984, &[0, 1, 2, 3, 4, 5, 6], 1),
            row(9, 15, 1, 4, 20_096, &[0, 2, 4, 6], 2),
            row(1, 14, 2, 3, 20_096, &[0, 2, 4], 2),
            row(2, 9, 3, 2, 40_448, &[0, 4], 4),
            row(3, 5, 4, 1, 40_448, &[0], 4),
            row(4, 0, 7, 1, 81_152, &[0], 8),
        ]
    }

    #[test]
    fn the_h100_driver_table_agrees_with_aion() {
        let diff = table_differences(GpuModel::H100_80GB, &h100_driver_table());
        assert!(diff.is_empty(), "{diff:#?}");
    }

    /// The H200 table exactly as NVML gave it on a real GPU (driver 580.159.04, MIG
    /// mode disabled: profile info and placements are readable all the same), in the
    /// driver's order.
    #[test]
    fn the_h200_table_read_from_a_real_driver_agrees_with_aion() {
        let driver = vec![
            row(0, 19, 1, 7, 16_384, &[0, 1, 2, 3, 4, 5, 6], 1),
            row(1, 14, 2, 3, 33_280, &[0, 2, 4], 2),
            row(2, 9, 3, 2, 71_424, &[0, 4], 4),
            row(3, 5, 4, 1, 71_424, &[0], 4),
            row(4, 0, 7, 1, 143_360, &[0], 8),
            row(7, 20, 1, 1, 16_384, &[0, 1, 2, 3, 4, 5, 6], 1),
            row(9, 15, 1, 4, 33_280, &[0, 2, 4, 6], 2),
        ];
        let diff = table_differences(GpuModel::H200_141GB, &driver);
        assert!(diff.is_empty(), "{diff:#?}");
        // The same table is not an H100's: its memory figures differ.
        let diff = table_differences(GpuModel::H100_80GB, &driver);
        assert_eq!(diff.len(), 7, "{diff:#?}");
        assert!(
            diff.iter().all(|d| d.contains("the memory (MiB)")),
            "{diff:#?}"
        );
    }

    #[test]
    fn every_difference_from_the_driver_table_is_named() {
        let mut table = h100_driver_table();
        table[2].placements.pop(); // 1g.20gb loses start 6
        table[3].max_instances = 2; // 2g.20gb
        table[6].memory_mib = 80_000; // 7g.80gb
        table.remove(4); // 3g.40gb missing
        table.push(DriverProfile {
            index: 8,
            id: 21,
            compute_slices: 2,
            max_instances: 1,
            memory_mib: 20_096,
            placements: vec![(0, 2)],
        });
        let diff = table_differences(GpuModel::H100_80GB, &table);
        assert_eq!(diff.len(), 4, "{diff:#?}");
        assert!(
            diff[0].starts_with("1g.20gb: the placement list"),
            "{diff:#?}"
        );
        assert!(
            diff[1].starts_with("2g.20gb: the instance limit is 2 on the driver, 3"),
            "{diff:#?}"
        );
        assert!(
            diff[2].contains("3g.40gb: the driver does not offer profile index 2"),
            "{diff:#?}"
        );
        assert!(
            diff[3].starts_with("7g.80gb: the memory (MiB) is 80000 on the driver, 81152"),
            "{diff:#?}"
        );
    }

    #[test]
    fn the_init_error_says_to_check_the_driver() {
        let msg = init_error(NvmlError::DriverNotLoaded).to_string();
        assert!(msg.contains("NVML is not available"), "{msg}");
        assert!(msg.contains("is the NVIDIA driver installed?"), "{msg}");
    }
}
