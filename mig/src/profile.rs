//! MIG profiles: the NVML profile id, the NVML profile index, and the geometry
//! (compute slices, memory slices, allowed starts, maximum count) of each.
//!
//! A100, H100 and H200 share one geometry (8 memory slices, 7 compute slices);
//! only the names and memory sizes differ per model, see [`crate::model`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Memory slices on every supported GPU.
pub const MEMORY_SLICES: u8 = 8;
/// Compute slices on every supported GPU.
pub const COMPUTE_SLICES: u8 = 7;
/// Number of profile shapes (profiles per GPU model).
pub const SHAPE_COUNT: usize = 7;

/// The NVML GPU instance profile *id* (what `nvidia-smi mig -lgip` prints in
/// the `ID` column and what placements and creation use), e.g. 19 for `1g.10gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileId(u8);

impl ProfileId {
    /// Wraps a raw NVML profile id; use [`crate::GpuModel::profile`] to check
    /// that the id exists on a model.
    pub const fn new(raw: u8) -> Self {
        Self(raw)
    }
    /// The raw NVML id.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The NVML profile *index* (`NVML_GPU_INSTANCE_PROFILE_*` in `nvml.h`), the
/// argument of `nvmlDeviceGetGpuInstanceProfileInfo`. Distinct from [`ProfileId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NvmlProfileIndex(u8);

impl NvmlProfileIndex {
    /// `NVML_GPU_INSTANCE_PROFILE_1_SLICE`.
    pub const ONE_SLICE: Self = Self(0);
    /// `NVML_GPU_INSTANCE_PROFILE_2_SLICE`.
    pub const TWO_SLICE: Self = Self(1);
    /// `NVML_GPU_INSTANCE_PROFILE_3_SLICE`.
    pub const THREE_SLICE: Self = Self(2);
    /// `NVML_GPU_INSTANCE_PROFILE_4_SLICE`.
    pub const FOUR_SLICE: Self = Self(3);
    /// `NVML_GPU_INSTANCE_PROFILE_7_SLICE`.
    pub const SEVEN_SLICE: Self = Self(4);
    /// `NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1` (the `+me` media-extension profile).
    pub const ONE_SLICE_REV1: Self = Self(7);
    /// `NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2` (one compute slice, two memory slices).
    pub const ONE_SLICE_REV2: Self = Self(9);

    /// The raw `nvml.h` value.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Dense index (0..7) of a profile shape in the shared geometry table; the
/// compact GPU state counts instances per shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape(pub(crate) u8);

impl Shape {
    /// All shapes, smallest first.
    pub const ALL: [Shape; SHAPE_COUNT] = [
        Shape(0),
        Shape(1),
        Shape(2),
        Shape(3),
        Shape(4),
        Shape(5),
        Shape(6),
    ];

    /// Position in the geometry table.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
    /// The geometry of this shape.
    pub fn geometry(self) -> &'static Geometry {
        &GEOMETRY[self.index()]
    }
    /// The shape of a profile id, if the id is a MIG profile of these GPUs.
    pub fn of(id: ProfileId) -> Option<Shape> {
        GEOMETRY
            .iter()
            .position(|g| g.id == id)
            .map(|i| Shape(i as u8))
    }
}

/// Placement geometry of one profile, identical on A100, H100 and H200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// NVML profile id.
    pub id: ProfileId,
    /// NVML profile index.
    pub nvml_index: NvmlProfileIndex,
    /// Compute slices used (out of 7).
    pub compute_slices: u8,
    /// Memory slices used (out of 8); the placement `size`.
    pub memory_slices: u8,
    /// Maximum number of instances of this profile on one GPU.
    pub max_instances: u8,
    /// Bit `s` set when the profile may start at memory slice `s`.
    pub start_mask: u8,
}

impl Geometry {
    /// The allowed start positions, ascending.
    pub fn starts(&self) -> impl Iterator<Item = u8> + '_ {
        (0..MEMORY_SLICES).filter(|s| self.start_mask & (1 << s) != 0)
    }
    /// Bit mask of the memory slices an instance starting at `start` covers.
    pub fn memory_mask_at(&self, start: u8) -> u8 {
        let ones = ((1u16 << self.memory_slices) - 1) as u8;
        ones << start
    }
}

const fn geometry(id: u8, index: NvmlProfileIndex, c: u8, m: u8, max: u8, starts: u8) -> Geometry {
    Geometry {
        id: ProfileId(id),
        nvml_index: index,
        compute_slices: c,
        memory_slices: m,
        max_instances: max,
        start_mask: starts,
    }
}

/// The shared geometry table, as `nvidia-smi mig -lgipp` prints it on A100,
/// H100 and H200 (ids 19, 20, 15, 14, 9, 5, 0).
pub static GEOMETRY: [Geometry; SHAPE_COUNT] = [
    geometry(19, NvmlProfileIndex::ONE_SLICE, 1, 1, 7, 0b0111_1111),
    geometry(20, NvmlProfileIndex::ONE_SLICE_REV1, 1, 1, 1, 0b0111_1111),
    geometry(15, NvmlProfileIndex::ONE_SLICE_REV2, 1, 2, 4, 0b0101_0101),
    geometry(14, NvmlProfileIndex::TWO_SLICE, 2, 2, 3, 0b0001_0101),
    geometry(9, NvmlProfileIndex::THREE_SLICE, 3, 4, 2, 0b0001_0001),
    geometry(5, NvmlProfileIndex::FOUR_SLICE, 4, 4, 1, 0b0000_0001),
    geometry(0, NvmlProfileIndex::SEVEN_SLICE, 7, 8, 1, 0b0000_0001),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_match_nvidia_smi_lgipp() {
        let starts = |id: u8| -> Vec<u8> {
            let shape = Shape::of(ProfileId::new(id)).unwrap();
            shape.geometry().starts().collect()
        };
        assert_eq!(starts(19), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(starts(20), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(starts(15), vec![0, 2, 4, 6]);
        assert_eq!(starts(14), vec![0, 2, 4]);
        assert_eq!(starts(9), vec![0, 4]);
        assert_eq!(starts(5), vec![0]);
        assert_eq!(starts(0), vec![0]);
    }

    #[test]
    fn every_placement_stays_inside_the_eight_memory_slices() {
        for g in &GEOMETRY {
            for s in g.starts() {
                assert!(s + g.memory_slices <= MEMORY_SLICES, "{:?} at {s}", g.id);
            }
        }
    }

    #[test]
    fn profile_index_differs_from_profile_id() {
        let rev2 = Shape::of(ProfileId::new(15)).unwrap().geometry();
        assert_eq!(rev2.nvml_index.get(), 9);
        let seven = Shape::of(ProfileId::new(0)).unwrap().geometry();
        assert_eq!(seven.nvml_index.get(), 4);
    }

    #[test]
    fn an_unknown_profile_id_has_no_shape() {
        assert_eq!(Shape::of(ProfileId::new(1)), None);
    }
}
