//! The review queue: a call's pending requests, each with the project's history with the
//! same allocating organisation.

use super::{GrantSummary, HISTORY_LIMIT, org_names, project_names, reviewed_call, summaries};
use crate::Services;
use crate::allocation_requests::{AllocationRequest, RequestState, from_model as request_from};
use crate::authz::Caller;
use crate::entities::{allocation_requests as requests, calls as call_rows, grants};
use crate::error::Result;
use crate::ids::CallId;
use crate::pagination::{Page, PageRequest};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// A pending request with what the committee needs to decide it.
#[derive(Clone, Debug)]
pub struct ReviewItem {
    /// The request.
    pub request: AllocationRequest,
    /// Project name.
    pub project: String,
    /// Organisation of the project.
    pub organization: String,
    /// The project's other requests to this organisation's calls, newest first, with
    /// the title of their call.
    pub earlier_requests: Vec<(AllocationRequest, String)>,
    /// The project's grants funded by this organisation, newest first.
    pub grants: Vec<GrantSummary>,
}

/// A page of a call's pending requests, oldest first, each with the project's history.
#[tracing::instrument(skip_all, err, fields(call_id = %id))]
pub async fn review_queue(
    svc: &Services,
    caller: &Caller,
    id: CallId,
    page: &PageRequest,
) -> Result<Page<ReviewItem>> {
    let call = reviewed_call(svc, caller, id).await?;
    let db = &svc.db;
    let mut query = requests::Entity::find()
        .filter(requests::Column::CallId.eq(id.0))
        .filter(requests::Column::State.eq(RequestState::Submitted.as_str()));
    if let Some(after) = page.after_uuid()? {
        query = query.filter(requests::Column::Id.gt(after));
    }
    let pending = query
        .order_by_asc(requests::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?
        .into_iter()
        .map(request_from)
        .collect::<Result<Vec<_>>>()?;
    let project_ids: BTreeSet<Uuid> = pending.iter().map(|r| r.project_id.0).collect();
    let projects = project_names(db, project_ids.iter().copied()).await?;
    let orgs = org_names(db, pending.iter().map(|r| r.organization_id.0)).await?;
    // Every call of the organisation, for the titles of earlier requests.
    let org_calls: HashMap<Uuid, String> = call_rows::Entity::find()
        .select_only()
        .column(call_rows::Column::Id)
        .column(call_rows::Column::Title)
        .filter(call_rows::Column::AllocatorOrgId.eq(call.allocator_org_id.0))
        .limit(1000)
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut items = Vec::with_capacity(pending.len());
    for request in pending {
        let project = request.project_id.0;
        let earlier = requests::Entity::find()
            .filter(requests::Column::ProjectId.eq(project))
            .filter(requests::Column::CallId.is_in(org_calls.keys().copied()))
            .filter(requests::Column::Id.ne(request.id.0))
            .order_by_desc(requests::Column::CreatedAt)
            .limit(HISTORY_LIMIT)
            .all(db)
            .await?
            .into_iter()
            .map(|m| {
                let title = org_calls.get(&m.call_id).cloned().unwrap_or_default();
                Ok((request_from(m)?, title))
            })
            .collect::<Result<Vec<_>>>()?;
        let grant_rows = grants::Entity::find()
            .filter(grants::Column::ProjectId.eq(project))
            .filter(grants::Column::FundedByOrgId.eq(call.allocator_org_id.0))
            .order_by_desc(grants::Column::CreatedAt)
            .limit(HISTORY_LIMIT)
            .all(db)
            .await?;
        items.push(ReviewItem {
            project: projects.get(&project).cloned().unwrap_or_default(),
            organization: orgs
                .get(&request.organization_id.0)
                .cloned()
                .unwrap_or_default(),
            earlier_requests: earlier,
            grants: summaries(db, grant_rows).await?,
            request,
        });
    }
    Ok(Page::from_rows(items, page, |i| i.request.id.to_string()))
}
