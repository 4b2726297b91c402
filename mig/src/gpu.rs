//! The state of one MIG GPU: which instances are placed where, with the
//! hardware's rules (no overlap, 7 compute slices, per-profile counts, allowed
//! starts). Two bytes per GPU: an index into the interned configuration table.

use crate::config::{self, NONE, Slot};
use crate::error::MigError;
use crate::profile::{COMPUTE_SLICES, GEOMETRY, ProfileId, Shape};
use serde::{Deserialize, Serialize};

/// One placed GPU instance: a profile at a start memory slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Placement {
    /// NVML profile id.
    pub profile: ProfileId,
    /// Start memory slice.
    pub start: u8,
}

/// The instances placed on one GPU. Always valid: every constructor and
/// mutation goes through the rules, so an invalid state cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "Vec<Placement>", try_from = "Vec<Placement>")]
pub struct GpuState(u16);

fn shape_of(profile: ProfileId) -> Result<Shape, MigError> {
    Shape::of(profile).ok_or_else(|| MigError::UnknownProfile {
        given: profile.to_string(),
        model: "A100/H100/H200".to_string(),
        valid: GEOMETRY
            .iter()
            .map(|g| g.id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

impl GpuState {
    /// A GPU with no instances.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Builds a state from placements, checking each against the rules.
    pub fn from_placements(placements: &[Placement]) -> Result<Self, MigError> {
        let mut state = Self::empty();
        for p in placements {
            state.place(p.profile, p.start)?;
        }
        Ok(state)
    }

    pub(crate) const fn from_config(config: u16) -> Self {
        Self(config)
    }
    pub(crate) const fn config(self) -> u16 {
        self.0
    }
    fn info(self) -> &'static config::ConfigInfo {
        &config::table().infos[self.0 as usize]
    }

    /// The placed instances, sorted by profile size then start.
    pub fn placements(self) -> Vec<Placement> {
        self.info()
            .instances
            .iter()
            .map(|&s| slot_placement(s))
            .collect()
    }
    /// Bit `s` set when memory slice `s` is in use.
    pub fn memory_mask(self) -> u8 {
        self.info().memory_mask
    }
    /// Compute slices in use (0..=7).
    pub fn compute_used(self) -> u8 {
        self.info().compute_used
    }
    /// Number of instances of `profile` (0 for an unknown profile).
    pub fn count(self, profile: ProfileId) -> u8 {
        Shape::of(profile).map_or(0, |s| self.info().counts[s.index()])
    }
    /// Whether no instance is placed.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether no further instance of any profile can be added.
    pub fn is_maximal(self) -> bool {
        self.info().feasible.iter().all(|&f| f == 0)
    }

    /// Checks whether `profile` can be placed at `start`; the error says why not.
    pub fn check(self, profile: ProfileId, start: u8) -> Result<(), MigError> {
        let shape = shape_of(profile)?;
        let g = shape.geometry();
        let info = self.info();
        if start >= 8 || g.start_mask & (1 << start) == 0 {
            return Err(MigError::BadStart { profile, start });
        }
        if info.memory_mask & g.memory_mask_at(start) != 0 {
            return Err(MigError::Overlap { profile, start });
        }
        if info.counts[shape.index()] >= g.max_instances {
            return Err(MigError::CountLimit {
                profile,
                max: g.max_instances,
            });
        }
        let free = COMPUTE_SLICES - info.compute_used;
        if g.compute_slices > free {
            return Err(MigError::ComputeExhausted {
                profile,
                needed: g.compute_slices,
                free,
            });
        }
        Ok(())
    }

    /// Whether `profile` can be placed at `start`.
    pub fn can_place(self, profile: ProfileId, start: u8) -> bool {
        self.check(profile, start).is_ok()
    }

    /// Places `profile` at `start`, or says why it cannot.
    pub fn place(&mut self, profile: ProfileId, start: u8) -> Result<(), MigError> {
        self.check(profile, start)?;
        let shape = shape_of(profile)?;
        self.0 = config::table().after_place(self.0, shape, start);
        Ok(())
    }

    /// Removes the instance of `profile` at `start`.
    pub fn remove(&mut self, profile: ProfileId, start: u8) -> Result<(), MigError> {
        let shape = shape_of(profile)?;
        let next = if start < 8 {
            config::table().after_remove(self.0, shape, start)
        } else {
            NONE
        };
        if next == NONE {
            return Err(MigError::NoSuchInstance { profile, start });
        }
        self.0 = next;
        Ok(())
    }

    /// The starts at which one more `profile` instance can be placed now.
    pub fn feasible_starts(self, profile: ProfileId) -> Vec<u8> {
        let Some(shape) = Shape::of(profile) else {
            return Vec::new();
        };
        let mask = self.info().feasible[shape.index()];
        (0..8).filter(|s| mask & (1 << s) != 0).collect()
    }

    /// How many more `profile` instances fit on this GPU.
    pub fn addable(self, profile: ProfileId) -> u8 {
        Shape::of(profile).map_or(0, |s| self.info().addable[s.index()])
    }
}

fn slot_placement((shape, start): Slot) -> Placement {
    Placement {
        profile: GEOMETRY[shape as usize].id,
        start,
    }
}

impl From<GpuState> for Vec<Placement> {
    fn from(state: GpuState) -> Self {
        state.placements()
    }
}

impl TryFrom<Vec<Placement>> for GpuState {
    type Error = MigError;
    fn try_from(placements: Vec<Placement>) -> Result<Self, Self::Error> {
        GpuState::from_placements(&placements)
    }
}

/// Every valid configuration of one GPU (shared by all supported models),
/// the empty GPU first.
pub fn all_configurations() -> impl Iterator<Item = GpuState> {
    (0..config::table().len() as u16).map(GpuState)
}

/// Every maximal configuration: valid, and no further instance can be added.
pub fn maximal_configurations() -> impl Iterator<Item = GpuState> {
    all_configurations().filter(|s| s.is_maximal())
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod tests;
