//! Preemption plans: which preemptible leases to stop so that a request that
//! does not fit now can be placed.
//!
//! Only GPUs that hold preemptible instances are examined (found through the
//! owner map, so the cost follows the number of preemptible instances, not the
//! fleet size). On each such GPU every subset of its preemptible instances is
//! tried (at most 2^7) to learn how many more instances of the requested
//! profile each removal set makes room for. For one instance the plan is
//! exact: the fewest instances removed. For several, GPUs (or, for a gang,
//! nodes) are chosen greedily by instances removed per instance gained.

use super::core::{Engine, owner_key};
use super::{LeaseKey, Request, Unplaceable};
use crate::config;
use crate::error::MigError;
use crate::profile::Shape;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The leases to preempt before placing a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreemptionPlan {
    /// Leases to preempt (empty when the request fits as it is).
    pub leases: Vec<LeaseKey>,
    /// Instances those leases hold in total.
    pub instances: u32,
}

/// One way to make room on one GPU: remove `starts`, gain `gain` instances.
#[derive(Clone)]
struct Option_ {
    cost: u32,
    gain: u32,
    gpu: u32,
    starts: Vec<u8>,
}

impl Engine {
    /// The smallest set of preemptible leases whose removal lets `req` be
    /// placed (see the module docs); an empty plan when it fits already.
    pub fn preemption_plan(&mut self, req: &Request) -> Result<PreemptionPlan, MigError> {
        let shape = Shape::of(req.profile).ok_or_else(|| super::core::unknown_profile(req))?;
        let groups = self.matching_groups(&req.constraints)?;
        let trial = if req.constraints.same_node {
            self.place_gang(&groups, shape, req)
        } else {
            self.place_spread(&groups, shape, req)
        };
        if let Ok(held) = trial {
            self.undo(&held);
            return Ok(PreemptionPlan::default());
        }
        let gpus: BTreeSet<u32> = self
            .owners
            .keys()
            .map(|k| (k >> 3) as u32)
            .filter(|&g| groups.contains(&self.gpus[g as usize].group))
            .collect();
        let chosen = if req.constraints.same_node {
            self.plan_gang(&gpus, shape, usize::from(req.count))
        } else {
            let free = self.free_capacity(&groups, shape, usize::from(req.count));
            let options: Vec<Vec<Option_>> =
                gpus.iter().map(|&g| self.gpu_options(g, shape)).collect();
            greedy(&options, (usize::from(req.count) - free) as u32)
        };
        let chosen = chosen.ok_or(MigError::Unplaceable(Unplaceable::NoPreemptionHelps))?;
        Ok(self.plan_from(&chosen))
    }

    /// How many instances of `shape` fit now, counting up to `limit`.
    fn free_capacity(&mut self, groups: &[u16], shape: Shape, limit: usize) -> usize {
        let probe = Request {
            count: limit as u16,
            ..Request::one(LeaseKey(u64::MAX), shape.geometry().id)
        };
        let mut free = 0;
        for n in (1..=limit).rev() {
            let one = Request {
                count: n as u16,
                ..probe.clone()
            };
            if let Ok(held) = self.place_spread(groups, shape, &one) {
                self.undo(&held);
                free = n;
                break;
            }
        }
        free
    }

    /// Per-GPU options: for each gain, the cheapest removal set.
    fn gpu_options(&self, gpu: u32, shape: Shape) -> Vec<Option_> {
        let t = config::table();
        let config = self.gpus[gpu as usize].config;
        let info = &t.infos[config as usize];
        let movable: Vec<(u8, u8)> = info
            .instances
            .iter()
            .copied()
            .filter(|&(_, s)| self.owners.contains_key(&owner_key(gpu, s)))
            .collect();
        let now = u32::from(info.addable[shape.index()]);
        let mut best: BTreeMap<u32, Option_> = BTreeMap::new();
        for subset in 1u32..(1 << movable.len()) {
            let mut c = config;
            let mut starts = Vec::new();
            for (i, &(sh, st)) in movable.iter().enumerate() {
                if subset & (1 << i) != 0 {
                    c = t.after_remove(c, Shape(sh), st);
                    starts.push(st);
                }
            }
            let gain = u32::from(t.infos[c as usize].addable[shape.index()]).saturating_sub(now);
            let cost = starts.len() as u32;
            if gain > 0 && best.get(&gain).is_none_or(|o| o.cost > cost) {
                best.insert(
                    gain,
                    Option_ {
                        cost,
                        gain,
                        gpu,
                        starts,
                    },
                );
            }
        }
        best.into_values().collect()
    }

    fn plan_gang(&self, gpus: &BTreeSet<u32>, shape: Shape, need: usize) -> Option<Vec<Option_>> {
        let mut by_node: BTreeMap<u32, Vec<Vec<Option_>>> = BTreeMap::new();
        for &g in gpus {
            by_node
                .entry(self.gpus[g as usize].node)
                .or_default()
                .push(self.gpu_options(g, shape));
        }
        by_node
            .iter()
            .filter_map(|(&node, options)| {
                let free = usize::from(self.gang.capacity(node)[shape.index()]);
                greedy(options, need.saturating_sub(free) as u32)
            })
            .min_by_key(|plan| plan.iter().map(|o| o.cost).sum::<u32>())
    }

    fn plan_from(&self, chosen: &[Option_]) -> PreemptionPlan {
        let mut leases = BTreeSet::new();
        for o in chosen {
            for &s in &o.starts {
                if let Some(&lease) = self.owners.get(&owner_key(o.gpu, s)) {
                    leases.insert(lease);
                }
            }
        }
        let instances = leases
            .iter()
            .filter_map(|l| self.leases.get(&l.0))
            .map(|r| r.held.len() as u32)
            .sum();
        PreemptionPlan {
            leases: leases.into_iter().collect(),
            instances,
        }
    }
}

/// Picks at most one option per GPU until `deficit` instances are gained,
/// each round taking the lowest cost per (capped) gain; `None` if impossible.
fn greedy(per_gpu: &[Vec<Option_>], mut deficit: u32) -> Option<Vec<Option_>> {
    let mut used = vec![false; per_gpu.len()];
    let mut chosen = Vec::new();
    while deficit > 0 {
        let (i, o) = per_gpu
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .flat_map(|(i, opts)| opts.iter().map(move |o| (i, o)))
            .min_by_key(|(_, o)| {
                (
                    u64::from(o.cost) * 1000 / u64::from(o.gain.min(deficit)),
                    o.cost,
                )
            })?;
        used[i] = true;
        deficit = deficit.saturating_sub(o.gain);
        chosen.push(o.clone());
    }
    Some(chosen)
}
