//! The append-only, hash-chained audit log. Every mutation appends in its own transaction.

use crate::authz::Caller;
use crate::entities::{audit_events, audit_head, audit_inbox};
use crate::error::{Error, Result};
use crate::ids::{AuditEventId, OrganizationId, ProjectId};
use crate::pagination::{Page, PageRequest};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a mutation records.
#[derive(Clone, Debug)]
pub struct Record {
    /// Verb, e.g. `project.create`.
    pub action: &'static str,
    /// Kind of object acted on, e.g. `project`.
    pub target_kind: &'static str,
    /// Id of the object acted on.
    pub target_id: String,
    /// Organisation the object belongs to (for tenant-scoped reading).
    pub organization_id: Option<OrganizationId>,
    /// Project the object belongs to.
    pub project_id: Option<ProjectId>,
    /// Extra facts (never secrets).
    pub details: serde_json::Value,
}

/// An audit event as read back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unique id.
    pub id: AuditEventId,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// `user:<id>`, `token:<id>` or `system`.
    pub actor: String,
    /// Verb.
    pub action: String,
    /// Kind of target.
    pub target_kind: String,
    /// Target id.
    pub target_id: String,
    /// Owning organisation.
    pub organization_id: Option<OrganizationId>,
    /// Owning project.
    pub project_id: Option<ProjectId>,
    /// Request that caused it.
    pub request_id: String,
    /// Extra facts.
    pub details: serde_json::Value,
    /// Hash of this event (chained over the previous one).
    pub hash: String,
}

pub(crate) fn chain_hash(prev: &str, m: &audit_events::Model) -> String {
    let line = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        m.seq,
        m.id,
        m.occurred_at.timestamp_micros(),
        m.actor,
        m.action,
        m.target_kind,
        m.target_id,
        m.organization_id.map(|u| u.to_string()).unwrap_or_default(),
        m.project_id.map(|u| u.to_string()).unwrap_or_default(),
        m.request_id,
        m.details,
        prev,
    );
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Records one event inside the caller's transaction `txn`. It lands in the inbox, so
/// mutations never queue on the chain's head row; [`crate::audit_chain::seal_pending`]
/// gives it its sequence number and hash shortly after (and before any read of the log).
pub async fn append(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    rec: Record,
) -> Result<()> {
    inbox_row(now, caller, rec).insert(txn).await?;
    Ok(())
}

/// Appends many events of one caller with one multi-row insert (batched writers).
pub async fn append_many(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    recs: Vec<Record>,
) -> Result<()> {
    if recs.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = recs
        .into_iter()
        .map(|r| inbox_row(now, caller, r))
        .collect();
    crate::pg_array::insert_many(txn, rows).await
}

/// The inbox row of one event by `caller`.
pub(crate) fn inbox_row(
    now: DateTime<Utc>,
    caller: &Caller,
    rec: Record,
) -> audit_inbox::ActiveModel {
    audit_inbox::ActiveModel {
        id: Set(AuditEventId::new().0),
        occurred_at: Set(now),
        actor: Set(caller.actor.key()),
        action: Set(rec.action.to_owned()),
        target_kind: Set(rec.target_kind.to_owned()),
        target_id: Set(rec.target_id),
        organization_id: Set(rec.organization_id.map(|o| o.0)),
        project_id: Set(rec.project_id.map(|p| p.0)),
        request_id: Set(caller.request_id.chars().take(64).collect()),
        details: Set(rec.details.to_string()),
    }
}

/// Filters for reading the log; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact actor key.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact target kind.
    pub target_kind: Option<String>,
    /// Exact target id.
    pub target_id: Option<String>,
    /// Events of this organisation.
    pub organization_id: Option<OrganizationId>,
    /// Events of this project.
    pub project_id: Option<ProjectId>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Lists events newest first. Platform admins and auditors see all; organisation admins
/// see their organisations' events; others are refused.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    caller: &Caller,
    filter: Filter,
    page: &PageRequest,
) -> Result<Page<AuditEvent>> {
    // Read your writes: seal what is waiting in the inbox first.
    crate::audit_chain::seal_pending(db).await?;
    let mut query = audit_events::Entity::find();
    if !caller.reads_everything() {
        let admin_orgs: Vec<_> = caller
            .visible_orgs()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| caller.can_admin_org(*o))
            .map(|o| o.0)
            .collect();
        if admin_orgs.is_empty() {
            return Err(Error::Forbidden(
                "reading the audit log needs platform-admin, auditor or organisation admin".into(),
            ));
        }
        query = query.filter(audit_events::Column::OrganizationId.is_in(admin_orgs));
    }
    use audit_events::Column as C;
    let f = filter;
    if let Some(v) = f.actor {
        query = query.filter(C::Actor.eq(v));
    }
    if let Some(v) = f.action {
        query = query.filter(C::Action.eq(v));
    }
    if let Some(v) = f.target_kind {
        query = query.filter(C::TargetKind.eq(v));
    }
    if let Some(v) = f.target_id {
        query = query.filter(C::TargetId.eq(v));
    }
    if let Some(v) = f.organization_id {
        query = query.filter(C::OrganizationId.eq(v.0));
    }
    if let Some(v) = f.project_id {
        query = query.filter(C::ProjectId.eq(v.0));
    }
    if let Some(v) = f.since {
        query = query.filter(C::OccurredAt.gte(v));
    }
    if let Some(v) = f.until {
        query = query.filter(C::OccurredAt.lt(v));
    }
    if let Some(after) = page.after_i64()? {
        query = query.filter(C::Seq.lt(after));
    }
    let rows = query
        .order_by_desc(C::Seq)
        .limit(page.fetch())
        .all(db)
        .await?;
    let events = rows.into_iter().map(to_event).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(events, page, |e| e.seq.to_string()))
}

fn to_event(m: audit_events::Model) -> Result<AuditEvent> {
    Ok(AuditEvent {
        seq: m.seq,
        id: m.id.into(),
        occurred_at: m.occurred_at,
        actor: m.actor,
        action: m.action,
        target_kind: m.target_kind,
        target_id: m.target_id,
        organization_id: m.organization_id.map(Into::into),
        project_id: m.project_id.map(Into::into),
        request_id: m.request_id,
        details: serde_json::from_str(&m.details)
            .map_err(|e| Error::Internal(format!("audit event {} has bad details: {e}", m.seq)))?,
        hash: m.hash,
    })
}

/// Outcome of checking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events checked.
    pub events: u64,
    /// The first sequence number whose link or hash is wrong, if any.
    pub first_bad_seq: Option<i64>,
    /// Why it is wrong.
    pub problem: Option<String>,
}

/// Walks the chain from the start, recomputing every hash and link, then checks the head.
pub async fn verify(db: &impl ConnectionTrait) -> Result<Verification> {
    let mut prev = "0".repeat(64);
    let mut expected_seq = 1i64;
    let mut checked = 0u64;
    loop {
        let batch = audit_events::Entity::find()
            .filter(audit_events::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_events::Column::Seq)
            .limit(1000)
            .all(db)
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let bad = |why: &str| Verification {
                events: checked,
                first_bad_seq: Some(expected_seq),
                problem: Some(why.to_owned()),
            };
            if m.seq != expected_seq {
                return Ok(bad("an event is missing"));
            }
            if m.prev_hash != prev {
                return Ok(bad("the link to the previous event is broken"));
            }
            if chain_hash(&prev, &m) != m.hash {
                return Ok(bad("the event's content does not match its hash"));
            }
            prev = m.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
    let head = audit_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| Error::Internal("audit head row is missing".into()))?;
    if head.seq != expected_seq - 1 || head.hash != prev {
        return Ok(Verification {
            events: checked,
            first_bad_seq: Some(expected_seq),
            problem: Some("events after the last one found were removed".into()),
        });
    }
    Ok(Verification {
        events: checked,
        first_bad_seq: None,
        problem: None,
    })
}

/// Records one event done by a node's agent (actor `node:<id>`) inside `txn`; like
/// [`append`], it lands in the inbox.
pub async fn append_by_node(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    node: crate::ids::NodeId,
    request_id: &str,
    rec: Record,
) -> Result<()> {
    append_many_by_node(txn, now, node, request_id, vec![rec]).await
}

/// Appends many events a node did, with one multi-row insert per 500.
pub async fn append_many_by_node(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    node: crate::ids::NodeId,
    request_id: &str,
    recs: Vec<Record>,
) -> Result<()> {
    let request_id: String = request_id.chars().take(64).collect();
    let rows: Vec<audit_inbox::ActiveModel> = recs
        .into_iter()
        .map(|rec| audit_inbox::ActiveModel {
            id: Set(AuditEventId::new().0),
            occurred_at: Set(now),
            actor: Set(format!("node:{node}")),
            action: Set(rec.action.to_owned()),
            target_kind: Set(rec.target_kind.to_owned()),
            target_id: Set(rec.target_id),
            organization_id: Set(rec.organization_id.map(|o| o.0)),
            project_id: Set(rec.project_id.map(|p| p.0)),
            request_id: Set(request_id.clone()),
            details: Set(rec.details.to_string()),
        })
        .collect();
    crate::pg_array::insert_many(txn, rows).await
}
