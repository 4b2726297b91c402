//! Read models of the researcher console that no API route needs as such: where a
//! lease's slices run (node host name, site, GPU index, profile name) and a project's
//! allocation requests across calls.

use crate::Services;
use crate::allocation_requests::{self, AllocationRequest};
use crate::authz::Caller;
use crate::entities::{allocation_requests as requests, gpus, nodes};
use crate::error::Result;
use crate::ids::{LeaseId, ProjectId};
use crate::leases::{self, Lease};
use crate::pagination::{Page, PageRequest};
use crate::projects;
use aion_mig::ProfileId;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;

/// One placed instance of a lease, with what a person needs to find it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementView {
    /// Host name of the node.
    pub hostname: String,
    /// Site of the node.
    pub site: String,
    /// GPU UUID (`GPU-…`).
    pub gpu_uuid: String,
    /// Index of the GPU on its node (`/dev/nvidia<index>`), when the GPU is known.
    pub gpu_index: Option<i32>,
    /// Profile name on the GPU's model (`3g.40gb`), or the NVML id when unknown.
    pub profile: String,
    /// First memory slice.
    pub start: i32,
    /// MIG device UUID, once the node made the instance.
    pub mig_device_uuid: Option<String>,
}

/// A lease with its placements resolved.
#[derive(Clone, Debug)]
pub struct LeaseDetail {
    /// The lease.
    pub lease: Lease,
    /// Its instances, in placement order.
    pub placements: Vec<PlacementView>,
}

/// The profile name of NVML id `id` on the stored model `model`, or the id itself.
fn profile_name(model: &str, id: i32) -> String {
    let named = model
        .parse::<aion_mig::GpuModel>()
        .ok()
        .zip(u8::try_from(id).ok())
        .and_then(|(m, raw)| m.profile(ProfileId::new(raw)).ok())
        .map(|p| p.name.to_owned());
    named.unwrap_or_else(|| id.to_string())
}

/// Reads a lease the caller may see (404 otherwise) with where each instance runs.
#[tracing::instrument(skip_all, err, fields(lease_id = %id))]
pub async fn lease_detail(svc: &Services, caller: &Caller, id: LeaseId) -> Result<LeaseDetail> {
    let lease = leases::get(svc, caller, id, 0).await?;
    // A lease has at most `leases::MAX_COUNT` instances, so both lookups are bounded.
    let node_ids: Vec<uuid::Uuid> = lease.placements.iter().map(|p| p.node_id.0).collect();
    let gpu_uuids: Vec<String> = lease
        .placements
        .iter()
        .map(|p| p.gpu_uuid.clone())
        .collect();
    let node_rows: HashMap<uuid::Uuid, nodes::Model> = if node_ids.is_empty() {
        HashMap::new()
    } else {
        nodes::Entity::find()
            .filter(nodes::Column::Id.is_in(node_ids))
            .all(&svc.db)
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect()
    };
    let gpu_index: HashMap<String, i32> = if gpu_uuids.is_empty() {
        HashMap::new()
    } else {
        gpus::Entity::find()
            .filter(gpus::Column::Uuid.is_in(gpu_uuids))
            .all(&svc.db)
            .await?
            .into_iter()
            .map(|g| (g.uuid, g.gpu_index))
            .collect()
    };
    let placements = lease
        .placements
        .iter()
        .map(|p| {
            let node = node_rows.get(&p.node_id.0);
            PlacementView {
                hostname: node.map(|n| n.hostname.clone()).unwrap_or_default(),
                site: node.map(|n| n.site.clone()).unwrap_or_default(),
                gpu_uuid: p.gpu_uuid.clone(),
                gpu_index: gpu_index.get(&p.gpu_uuid).copied(),
                profile: profile_name(&lease.gpu_model, p.profile_id),
                start: p.start,
                mig_device_uuid: p.mig_device_uuid.clone(),
            }
        })
        .collect();
    Ok(LeaseDetail { lease, placements })
}

/// A project's allocation requests on every call, newest first (anyone who may see the
/// project, as the call's request list shows them to its members).
#[tracing::instrument(skip_all, err, fields(project_id = %project))]
pub async fn project_requests(
    svc: &Services,
    caller: &Caller,
    project: ProjectId,
    page: &PageRequest,
) -> Result<Page<AllocationRequest>> {
    projects::load_visible(&svc.db, caller, project).await?;
    let mut query = requests::Entity::find().filter(requests::Column::ProjectId.eq(project.0));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(requests::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(requests::Column::Id)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows
        .into_iter()
        .map(allocation_requests::from_model)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |r| r.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_are_named_on_the_lease_model() {
        let one_slice = aion_mig::GpuModel::H100_80GB
            .profiles()
            .next()
            .map(|p| (p.id().get(), p.name));
        let (id, name) = one_slice.unwrap();
        assert_eq!(profile_name("H100-80GB", i32::from(id)), name);
    }

    #[test]
    fn unknown_models_or_ids_show_the_raw_id() {
        assert_eq!(profile_name("Z9000", 9), "9");
        assert_eq!(profile_name("H100-80GB", 250), "250");
        assert_eq!(profile_name("H100-80GB", -1), "-1");
    }
}
