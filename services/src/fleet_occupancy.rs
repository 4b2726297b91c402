//! Fleet occupancy for operators: per site and GPU model, how many compute slices live
//! leases use, how many are free to place on, and how fragmented the free ones are, with
//! each GPU's fill for the fleet picture.
//!
//! Built from two queries over the whole fleet (GPUs joined with their nodes, and the
//! placements of leases that hold them), aggregated here with the MIG placement rules of
//! `aion_mig`, so it stays one round trip per query however many nodes there are.
//!
//! *Free* slices are those of healthy GPUs on `ready` nodes (the only ones the scheduler
//! places on); the rest of what is not used is *unavailable*. A free slice is *stranded*
//! when its GPU can no longer take a `3g` instance (the largest profile short of a whole
//! GPU that two tenants can share): small leases still fit there, large ones do not.
//! Fragmentation is stranded ÷ free.

use crate::Services;
use crate::authz::Caller;
use crate::entities::{gpus, joins, lease_placements, leases, nodes};
use crate::error::{Error, Result};
use crate::lease_state::LeaseState;
use aion_mig::{GpuState, ProfileId};
use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Compute slices of one GPU.
pub const SLICES_PER_GPU: u8 = aion_mig::profile::COMPUTE_SLICES;

/// NVML profile id of the `3g` profile (`3g.40gb` on an H100-80GB), the yardstick of
/// fragmentation.
pub const THREE_G: ProfileId = ProfileId::new(9);

/// One GPU as the picture shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuFill {
    /// Compute slices used by live leases (0..=7).
    pub used: u8,
    /// Whether the scheduler may place on it (healthy GPU on a `ready` node).
    pub placeable: bool,
}

/// Occupancy of the GPUs of one GPU model at one site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupancy {
    /// Site.
    pub site: String,
    /// GPU model.
    pub gpu_model: String,
    /// Nodes.
    pub nodes: u32,
    /// GPUs.
    pub gpus: u32,
    /// Compute slices of all GPUs (7 each).
    pub total: u64,
    /// Slices used by live leases.
    pub used: u64,
    /// Unused slices of placeable GPUs.
    pub free: u64,
    /// Unused slices of GPUs that take no placements (node not ready, GPU unhealthy).
    pub unavailable: u64,
    /// Free slices on GPUs that can no longer take a `3g` instance.
    pub stranded: u64,
    /// Placeable GPUs with nothing on them (a whole `7g` fits).
    pub empty_gpus: u32,
    /// GPUs by compute slices used: `by_used[n]` GPUs have `n` slices used.
    pub by_used: [u32; 8],
    /// Every GPU, node by node (nodes by host name, GPUs by index).
    pub cells: Vec<GpuFill>,
}

impl Occupancy {
    fn new(site: &str, gpu_model: &str) -> Self {
        Self {
            site: site.to_owned(),
            gpu_model: gpu_model.to_owned(),
            nodes: 0,
            gpus: 0,
            total: 0,
            used: 0,
            free: 0,
            unavailable: 0,
            stranded: 0,
            empty_gpus: 0,
            by_used: [0; 8],
            cells: Vec::new(),
        }
    }

    /// Adds one GPU.
    fn add(&mut self, state: GpuState, placeable: bool) {
        let used = state.compute_used().min(SLICES_PER_GPU);
        let unused = u64::from(SLICES_PER_GPU - used);
        self.gpus += 1;
        self.total += u64::from(SLICES_PER_GPU);
        self.used += u64::from(used);
        self.by_used[usize::from(used)] += 1;
        if placeable {
            self.free += unused;
            if unused > 0 && state.addable(THREE_G) == 0 {
                self.stranded += unused;
            }
            if state.is_empty() {
                self.empty_gpus += 1;
            }
        } else {
            self.unavailable += unused;
        }
        self.cells.push(GpuFill { used, placeable });
    }

    /// Stranded share of the free slices, in percent (0 when nothing is free).
    pub fn fragmentation_pct(&self) -> f64 {
        if self.free == 0 {
            0.0
        } else {
            self.stranded as f64 * 100.0 / self.free as f64
        }
    }
}

/// The whole fleet's occupancy, by site then GPU model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetOccupancy {
    /// One entry per (site, GPU model).
    pub groups: Vec<Occupancy>,
}

/// One GPU row of the fleet query.
type GpuRow = (Uuid, Uuid, String, String, String, String, String, i32);

/// Reads the fleet's occupancy (platform admins and auditors).
#[tracing::instrument(skip_all, err)]
pub async fn read(svc: &Services, caller: &Caller) -> Result<FleetOccupancy> {
    if !caller.reads_everything() {
        return Err(Error::Forbidden(
            "only platform admins and auditors read the fleet".into(),
        ));
    }
    let gpu_rows: Vec<GpuRow> = gpus::Entity::find()
        .select_only()
        .column(gpus::Column::Id)
        .column(gpus::Column::NodeId)
        .column(nodes::Column::Site)
        .column(gpus::Column::Model)
        .column(nodes::Column::State)
        .column(gpus::Column::Health)
        .column(nodes::Column::Hostname)
        .column(gpus::Column::GpuIndex)
        .join(JoinType::InnerJoin, joins::gpu_node())
        .into_tuple()
        .all(&svc.db)
        .await?;
    let placements: Vec<(Uuid, i32, i32)> = lease_placements::Entity::find()
        .select_only()
        .column(lease_placements::Column::GpuId)
        .column(lease_placements::Column::ProfileId)
        .column(lease_placements::Column::Start)
        .join(JoinType::InnerJoin, joins::placement_lease())
        .filter(leases::Column::State.is_in(LeaseState::placed_names()))
        .into_tuple()
        .all(&svc.db)
        .await?;
    Ok(aggregate(gpu_rows, placements))
}

/// Builds the per-GPU states and sums them per (site, model); pure, for the tests.
fn aggregate(mut gpu_rows: Vec<GpuRow>, placements: Vec<(Uuid, i32, i32)>) -> FleetOccupancy {
    let mut states: HashMap<Uuid, GpuState> = HashMap::with_capacity(gpu_rows.len());
    for (gpu, profile, start) in placements {
        let state = states.entry(gpu).or_default();
        let (Ok(profile), Ok(start)) = (u8::try_from(profile), u8::try_from(start)) else {
            tracing::warn!(%gpu, profile, start, "a placement out of range is ignored");
            continue;
        };
        if let Err(e) = state.place(ProfileId::new(profile), start) {
            // The database's slot index forbids this; say so rather than hide it.
            tracing::warn!(%gpu, error = %e, "a live placement breaks the MIG rules");
        }
    }
    // Node by node (host name, then node id), GPUs by index within a node.
    gpu_rows.sort_by(|a, b| (&a.6, a.1, a.7).cmp(&(&b.6, b.1, b.7)));
    // Each group with the last node counted in it: rows come node by node, so a node is
    // counted once in every group it has GPUs in (a node with two GPU models in two).
    let mut groups: BTreeMap<(String, String), (Occupancy, Option<Uuid>)> = BTreeMap::new();
    for (gpu, node, site, model, node_state, health, _host, _index) in gpu_rows {
        let (group, last_node) = groups
            .entry((site.clone(), model.clone()))
            .or_insert_with(|| (Occupancy::new(&site, &model), None));
        if *last_node != Some(node) {
            group.nodes += 1;
            *last_node = Some(node);
        }
        let placeable = crate::nodes::placeable(&node_state, &health);
        group.add(states.get(&gpu).copied().unwrap_or_default(), placeable);
    }
    FleetOccupancy {
        groups: groups.into_values().map(|(group, _)| group).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: Uuid, site: &str, state: &str) -> GpuRow {
        (
            Uuid::new_v4(),
            node,
            site.into(),
            "H100-80GB".into(),
            state.into(),
            "ok".into(),
            format!("host-{node}"),
            0,
        )
    }

    #[test]
    fn an_empty_ready_gpu_is_all_free_and_not_fragmented() {
        let fleet = aggregate(vec![row(Uuid::new_v4(), "paris", "ready")], vec![]);
        let g = &fleet.groups[0];
        assert_eq!((g.total, g.used, g.free, g.stranded), (7, 0, 7, 0));
        assert_eq!(g.empty_gpus, 1);
        assert_eq!(g.fragmentation_pct(), 0.0);
    }

    #[test]
    fn free_slices_where_no_3g_fits_are_stranded() {
        let r = row(Uuid::new_v4(), "paris", "ready");
        let gpu = r.0;
        // 1g at 0 and 1g at 4: neither 3g start (0 or 4) is free any more.
        let fleet = aggregate(vec![r], vec![(gpu, 19, 0), (gpu, 19, 4)]);
        let g = &fleet.groups[0];
        assert_eq!((g.used, g.free, g.stranded), (2, 5, 5));
        assert_eq!(g.fragmentation_pct(), 100.0);
        assert_eq!(g.by_used[2], 1);
    }

    #[test]
    fn a_gpu_that_still_takes_a_3g_strands_nothing() {
        let r = row(Uuid::new_v4(), "paris", "ready");
        let gpu = r.0;
        let fleet = aggregate(vec![r], vec![(gpu, 9, 0)]);
        let g = &fleet.groups[0];
        assert_eq!((g.used, g.free, g.stranded), (3, 4, 0));
    }

    #[test]
    fn cordoned_nodes_count_as_unavailable_not_free() {
        let node = Uuid::new_v4();
        let fleet = aggregate(
            vec![row(node, "lyon", "cordoned"), row(node, "lyon", "cordoned")],
            vec![],
        );
        let g = &fleet.groups[0];
        assert_eq!((g.nodes, g.gpus, g.free, g.unavailable), (1, 2, 0, 14));
        assert!(g.cells.iter().all(|c| !c.placeable));
    }

    #[test]
    fn groups_are_per_site_and_model_in_order() {
        let fleet = aggregate(
            vec![
                row(Uuid::new_v4(), "paris", "ready"),
                row(Uuid::new_v4(), "lyon", "ready"),
            ],
            vec![],
        );
        let sites: Vec<_> = fleet.groups.iter().map(|g| g.site.as_str()).collect();
        assert_eq!(sites, ["lyon", "paris"]);
    }

    #[test]
    fn a_node_with_two_gpu_models_counts_in_both_groups() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a_h100 = row(a, "paris", "ready");
        a_h100.6 = "host-a".into();
        let mut a_h200 = a_h100.clone();
        (a_h200.0, a_h200.3, a_h200.7) = (Uuid::new_v4(), "H200".into(), 1);
        let mut b_h200 = row(b, "paris", "ready");
        (b_h200.3, b_h200.6) = ("H200".into(), "host-b".into());
        // Node by node: a's H100, a's H200, b's H200. a counts once in each group.
        let fleet = aggregate(vec![b_h200, a_h200, a_h100], vec![]);
        let counts: Vec<_> = fleet
            .groups
            .iter()
            .map(|g| (g.gpu_model.as_str(), g.nodes, g.gpus))
            .collect();
        assert_eq!(counts, [("H100-80GB", 1, 1), ("H200", 2, 2)]);
    }

    #[test]
    fn only_ok_gpus_of_ready_nodes_are_placeable() {
        let node = Uuid::new_v4();
        let mut sick = row(node, "paris", "ready");
        sick.5 = "unhealthy".into();
        sick.7 = 1;
        let fleet = aggregate(vec![row(node, "paris", "ready"), sick], vec![]);
        let g = &fleet.groups[0];
        assert_eq!((g.nodes, g.free, g.unavailable), (1, 7, 7));
        let placeable: Vec<_> = g.cells.iter().map(|c| c.placeable).collect();
        assert_eq!(placeable, [true, false]);
    }
}
