//! Enforcement events of agents (a process stopped, a rogue process found, an instance
//! created or destroyed): each lands in the audit log exactly once, as done by the node
//! (actor `node:<id>`), even when the agent retries the batch. The agent gives every
//! event an id; ids already recorded for the node are skipped.

use crate::Services;
use crate::agent::NodeAuth;
use crate::audit::{self, Record};
use crate::entities::{agent_events, lease_placements, leases};
use crate::error::{Error, FieldErrors, Result};
use crate::ids::{OrganizationId, ProjectId};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Most events in one batch.
pub const MAX_EVENTS: usize = 500;

/// Kinds of enforcement events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A process on a slice without a live lease (or of an ended lease) got a signal.
    ProcessTerminated,
    /// A process was found on a slice it does not belong to.
    RogueProcess,
    /// An instance of a live lease was created.
    InstanceCreated,
    /// An instance without a live lease was destroyed.
    InstanceDestroyed,
}

impl EventKind {
    /// Parses the wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        match raw {
            "process_terminated" => Ok(Self::ProcessTerminated),
            "rogue_process" => Ok(Self::RogueProcess),
            "instance_created" => Ok(Self::InstanceCreated),
            "instance_destroyed" => Ok(Self::InstanceDestroyed),
            _ => Err(Error::invalid(
                field,
                "must be one of: process_terminated rogue_process instance_created instance_destroyed",
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessTerminated => "process_terminated",
            Self::RogueProcess => "rogue_process",
            Self::InstanceCreated => "instance_created",
            Self::InstanceDestroyed => "instance_destroyed",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::ProcessTerminated => "node.process_terminated",
            Self::RogueProcess => "node.rogue_process",
            Self::InstanceCreated => "node.instance_created",
            Self::InstanceDestroyed => "node.instance_destroyed",
        }
    }

    fn is_process(self) -> bool {
        matches!(self, Self::ProcessTerminated | Self::RogueProcess)
    }
}

/// One event as an agent sent it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawEvent {
    /// Agent-side id (idempotency).
    pub event_id: Uuid,
    /// Kind, wire name.
    pub kind: String,
    /// When the agent acted.
    pub occurred_at: DateTime<Utc>,
    /// The lease concerned, if any.
    pub lease_id: Option<Uuid>,
    /// GPU.
    pub gpu_uuid: Option<String>,
    /// MIG device.
    pub mig_device_uuid: Option<String>,
    /// NVML profile id of the instance.
    pub profile_id: Option<i32>,
    /// First memory slice of the instance.
    pub start: Option<i32>,
    /// Process id.
    pub pid: Option<i64>,
    /// `TERM` or `KILL`.
    pub signal: Option<String>,
    /// Why the agent acted.
    pub reason: Option<String>,
    /// Whether the action succeeded (absent: it did).
    pub error: Option<String>,
}

/// A validated event.
#[derive(Clone, Debug)]
pub struct Event {
    raw: RawEvent,
    kind: EventKind,
}

/// Validates a batch; errors name the field (`events[2].pid`).
pub fn parse_batch(events: Vec<RawEvent>, now: DateTime<Utc>) -> Result<Vec<Event>> {
    let mut errors = FieldErrors::new();
    if events.is_empty() || events.len() > MAX_EVENTS {
        errors.insert(
            "events".into(),
            format!("must hold 1 to {MAX_EVENTS} events"),
        );
    }
    let mut out = Vec::with_capacity(events.len());
    for (i, raw) in events.into_iter().enumerate() {
        let mut bad = |field: &str, msg: &str| {
            errors.insert(format!("events[{i}].{field}"), msg.to_owned());
        };
        let kind = match EventKind::parse("kind", &raw.kind) {
            Ok(k) => k,
            Err(_) => {
                bad(
                    "kind",
                    "must be one of: process_terminated rogue_process instance_created instance_destroyed",
                );
                continue;
            }
        };
        if raw.occurred_at > now + Duration::seconds(crate::usage::MAX_SKEW_S) {
            bad("occurred_at", "is in the future");
        }
        let texts = [
            ("gpu_uuid", &raw.gpu_uuid, 96),
            ("mig_device_uuid", &raw.mig_device_uuid, 96),
            ("reason", &raw.reason, 256),
            ("error", &raw.error, 512),
        ];
        for (field, value, max) in texts {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                bad(field, &format!("at most {max} characters"));
            }
        }
        if kind.is_process() {
            if !raw
                .pid
                .is_some_and(|p| (1..=i64::from(u32::MAX)).contains(&p))
            {
                bad("pid", "a process event needs a positive pid");
            }
            if raw.mig_device_uuid.is_none() {
                bad("mig_device_uuid", "a process event needs its MIG device");
            }
        }
        if kind == EventKind::ProcessTerminated
            && !matches!(raw.signal.as_deref(), Some("TERM" | "KILL"))
        {
            bad("signal", "must be TERM or KILL");
        }
        if !kind.is_process()
            && (raw.gpu_uuid.is_none() || raw.profile_id.is_none() || raw.start.is_none())
        {
            bad(
                "gpu_uuid",
                "an instance event needs gpu_uuid, profile_id and start",
            );
        }
        out.push(Event { raw, kind });
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(out)
}

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventsOutcome {
    /// Events audited now.
    pub recorded: u64,
    /// Events already audited before (or repeated in the batch).
    pub duplicates: u64,
}

/// Audits the events not yet recorded for this node, in one transaction. A lease named
/// by an event must be placed on this node (404 otherwise).
#[tracing::instrument(skip_all, err, fields(node_id = %node.node_id, events = events.len()))]
pub async fn record(
    svc: &Services,
    node: NodeAuth,
    events: Vec<Event>,
    request_id: &str,
) -> Result<EventsOutcome> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.raw.event_id).collect();
    let mut known: BTreeSet<Uuid> = agent_events::Entity::find()
        .filter(agent_events::Column::NodeId.eq(node.node_id.0))
        .filter(agent_events::Column::EventId.is_in(ids))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| m.event_id)
        .collect();
    let lease_ids: BTreeSet<Uuid> = events.iter().filter_map(|e| e.raw.lease_id).collect();
    let placed: BTreeSet<Uuid> = lease_placements::Entity::find()
        .filter(lease_placements::Column::NodeId.eq(node.node_id.0))
        .filter(lease_placements::Column::LeaseId.is_in(lease_ids.iter().copied()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|p| p.lease_id)
        .collect();
    if lease_ids.iter().any(|l| !placed.contains(l)) {
        return Err(Error::NotFound("lease"));
    }
    let owners: BTreeMap<Uuid, (Uuid, Uuid)> = leases::Entity::find()
        .filter(leases::Column::Id.is_in(lease_ids))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| (m.id, (m.organization_id, m.project_id)))
        .collect();
    let mut outcome = EventsOutcome::default();
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for e in events {
        if !known.insert(e.raw.event_id) {
            outcome.duplicates += 1;
            continue;
        }
        rows.push(agent_events::ActiveModel {
            node_id: Set(node.node_id.0),
            event_id: Set(e.raw.event_id),
            kind: Set(e.kind.as_str().to_owned()),
            lease_id: Set(e.raw.lease_id),
            occurred_at: Set(e.raw.occurred_at),
            received_at: Set(now),
        });
        let owner = e.raw.lease_id.and_then(|l| owners.get(&l)).copied();
        let (target_kind, target_id) = match e.raw.lease_id {
            Some(l) => ("lease", l.to_string()),
            None => ("node", node.node_id.to_string()),
        };
        let r = &e.raw;
        records.push(Record {
            action: e.kind.action(),
            target_kind,
            target_id,
            organization_id: owner.map(|(o, _)| OrganizationId(o)),
            project_id: owner.map(|(_, p)| ProjectId(p)),
            details: json!({
                "event_id": r.event_id, "node_id": node.node_id, "occurred_at": r.occurred_at,
                "lease_id": r.lease_id, "gpu_uuid": r.gpu_uuid, "mig_device_uuid": r.mig_device_uuid,
                "profile_id": r.profile_id, "start": r.start, "pid": r.pid, "signal": r.signal,
                "reason": r.reason, "error": r.error,
            }),
        });
        outcome.recorded += 1;
    }
    // One multi-row insert per 500 events and per 500 audit entries (they were one
    // statement each). A concurrent batch with the same events loses on the unique key.
    for chunk in rows.chunks(500) {
        agent_events::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .map_err(|err| match err.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::Unavailable(
                    "the same events were being recorded concurrently; retry".into(),
                ),
                _ => err.into(),
            })?;
    }
    audit::append_many_by_node(&txn, now, node.node_id, request_id, records).await?;
    txn.commit().await?;
    Ok(outcome)
}
