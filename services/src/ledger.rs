//! The budget ledger of a grant: append-only entries, in slice-seconds (see [`crate::budget`]).
//!
//! * `allocation` (+): the hours granted, when the grant is created;
//! * `hold` (−): taken when a lease is admitted (its duration × compute slices);
//! * `hold_release` (+) and `usage` (−): when the lease ends, its hold is given back and
//!   its allocated time (active → end, to the second) is debited;
//! * `adjustment` (±): by an allocator of the funding organisation or an operator, with a
//!   reason.
//!
//! A grant's balance is the sum of its entries. Each entry also stores the running
//! balance, held and used amounts after it, so what a grant has left is read from its
//! last entry (one index lookup) rather than summed over its whole history on every
//! admission; [`verify`] recomputes the sums and tests compare them. Appending locks the
//! grant row, and `(grant_id, seq)` is unique, so concurrent writers can never fork a
//! ledger or lose an entry.

use crate::Services;
use crate::audit::{self, Record};
use crate::authz::Caller;
use crate::entities::{grant_ledger, grant_warnings, grants};
use crate::error::{Error, Result};
use crate::idempotency::{self, IdempotencyKey};
use crate::ids::{GrantId, LeaseId, OrganizationId, ProjectId};
use crate::pagination::{Page, PageRequest};
use crate::validate::Validator;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use uuid::Uuid;

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The hours granted.
    Allocation,
    /// Budget held by an admitted lease.
    Hold,
    /// A hold given back when its lease ended.
    HoldRelease,
    /// Allocated time debited when a lease ended.
    Usage,
    /// A manual correction with a reason.
    Adjustment,
}

impl EntryKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allocation => "allocation",
            Self::Hold => "hold",
            Self::HoldRelease => "hold_release",
            Self::Usage => "usage",
            Self::Adjustment => "adjustment",
        }
    }

    fn stored(raw: &str) -> Result<Self> {
        [
            Self::Allocation,
            Self::Hold,
            Self::HoldRelease,
            Self::Usage,
            Self::Adjustment,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
        .ok_or_else(|| Error::Internal(format!("unknown ledger entry kind {raw}")))
    }
}

/// One entry of a grant's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Id.
    pub id: Uuid,
    /// The grant.
    pub grant_id: GrantId,
    /// Position in the grant's ledger, from 1.
    pub seq: i64,
    /// What it records.
    pub kind: EntryKind,
    /// Change to the balance, slice-seconds (negative takes budget).
    pub amount: i64,
    /// The grant's standing after this entry.
    pub standing: Standing,
    /// The lease, for holds, hold releases and usage.
    pub lease_id: Option<LeaseId>,
    /// Why, for adjustments.
    pub reason: Option<String>,
    /// Who caused it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A grant's standing after some entry: `balance + held + used` is what was allocated
/// (the allocation plus adjustments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// What is left to hold or spend (may be negative after an adjustment).
    pub balance: i64,
    /// Held by live leases.
    pub held: i64,
    /// Debited for allocated time.
    pub used: i64,
}

impl Standing {
    /// The allocation plus adjustments.
    pub fn allocated(&self) -> i64 {
        self.balance + self.held + self.used
    }

    /// Held and used, in percent of what was allocated (100 when nothing is allocated
    /// but something is committed), rounded down.
    pub fn committed_percent(&self) -> i64 {
        let committed = i128::from(self.held) + i128::from(self.used);
        let allocated = i128::from(self.allocated());
        if allocated <= 0 {
            return if committed > 0 || allocated < 0 {
                100
            } else {
                0
            };
        }
        i64::try_from(committed * 100 / allocated).unwrap_or(i64::MAX)
    }
}

/// Budget warnings and the end of overdrawn grants.
#[derive(Clone, Debug)]
pub struct BudgetPolicy {
    /// Committed percentages (held + used of allocated) that raise a warning once each.
    pub warn_at_percent: Vec<u8>,
    /// A grant warns this long before its end.
    pub grant_end_warning: Duration,
    /// How long the leases of an overdrawn grant go on before they are ended.
    pub overdraft_grace: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            warn_at_percent: vec![80, 90, 100],
            grant_end_warning: Duration::from_secs(7 * 24 * 3600),
            overdraft_grace: Duration::from_secs(15 * 60),
        }
    }
}

/// One entry to append (its running totals are computed when posted).
#[derive(Clone, Debug)]
pub(crate) struct Posting {
    grant: Uuid,
    kind: EntryKind,
    amount: i64,
    held: i64,
    used: i64,
    lease: Option<Uuid>,
    reason: Option<String>,
}

impl Posting {
    /// A new grant's hours.
    pub(crate) fn allocation(grant: Uuid, amount: i64) -> Self {
        Self {
            grant,
            kind: EntryKind::Allocation,
            amount,
            held: 0,
            used: 0,
            lease: None,
            reason: None,
        }
    }

    /// The hold of an admitted lease.
    pub(crate) fn hold(grant: Uuid, lease: Uuid, hold: i64) -> Self {
        Self {
            grant,
            kind: EntryKind::Hold,
            amount: -hold,
            held: hold,
            used: 0,
            lease: Some(lease),
            reason: None,
        }
    }

    /// What an ending lease posts: its hold back, then its allocated time debited.
    pub(crate) fn lease_end(grant: Uuid, lease: Uuid, hold: i64, used: i64) -> Vec<Self> {
        let mut out = Vec::with_capacity(2);
        if hold > 0 {
            out.push(Self {
                grant,
                kind: EntryKind::HoldRelease,
                amount: hold,
                held: -hold,
                used: 0,
                lease: Some(lease),
                reason: None,
            });
        }
        if used > 0 {
            out.push(Self {
                grant,
                kind: EntryKind::Usage,
                amount: -used,
                held: 0,
                used,
                lease: Some(lease),
                reason: None,
            });
        }
        out
    }
}

/// How one posting call moved one grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    pub grant: Uuid,
    pub before: Standing,
    pub after: Standing,
}

/// Row-locks these grants (PostgreSQL), in id order so that two writers cannot deadlock
/// on them. SQLite's write transaction already excludes every other writer.
pub(crate) async fn lock(txn: &impl ConnectionTrait, grant_ids: &BTreeSet<Uuid>) -> Result<()> {
    if grant_ids.is_empty() || txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let ids: Vec<Uuid> = grant_ids.iter().copied().collect();
    for chunk in ids.chunks(500) {
        grants::Entity::find()
            .select_only()
            .column(grants::Column::Id)
            .filter(crate::pg_array::uuid_in(
                txn.get_database_backend(),
                grants::Column::Id,
                chunk,
            ))
            .order_by_asc(grants::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .all(txn)
            .await?;
    }
    Ok(())
}

/// Position and standing of a grant's last entry.
pub(crate) type Heads = HashMap<Uuid, (i64, Standing)>;

/// The last entry's position and standing of each grant (a grant without entries stands
/// at zero); each grant is one backward index lookup on `(grant_id, seq)`.
pub(crate) async fn heads(txn: &impl ConnectionTrait, grant_ids: &BTreeSet<Uuid>) -> Result<Heads> {
    let mut out: Heads = grant_ids
        .iter()
        .map(|id| (*id, (0, Standing::default())))
        .collect();
    let ids: Vec<Uuid> = grant_ids.iter().copied().collect();
    let backend = txn.get_database_backend();
    for chunk in ids.chunks(100) {
        let statement = match backend {
            // One statement text whatever the number of grants: prepared once per
            // connection and planned generically, where a `UNION ALL` of one subquery per
            // grant cost more to plan (4 ms at 32 grants) than to run.
            DatabaseBackend::Postgres => sea_orm::Statement::from_sql_and_values(
                backend,
                "SELECT h.* FROM unnest($1::uuid[]) AS g(id) CROSS JOIN LATERAL \
                 (SELECT * FROM grant_ledger WHERE grant_id = g.id ORDER BY seq DESC LIMIT 1) AS h",
                [crate::pg_array::uuids(chunk).into()],
            ),
            _ => {
                let sql = (1..=chunk.len())
                    .map(|i| {
                        format!(
                            "SELECT * FROM (SELECT * FROM grant_ledger WHERE grant_id = ? \
                             ORDER BY seq DESC LIMIT 1) AS h{i}"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                let values: Vec<sea_orm::Value> = chunk.iter().map(|id| (*id).into()).collect();
                sea_orm::Statement::from_sql_and_values(backend, sql, values)
            }
        };
        let rows = grant_ledger::Entity::find()
            .from_raw_sql(statement)
            .all(txn)
            .await?;
        for e in rows {
            let standing = Standing {
                balance: e.balance,
                held: e.held,
                used: e.used,
            };
            out.insert(e.grant_id, (e.seq, standing));
        }
    }
    Ok(out)
}

/// The current standing of these grants (no lock: a snapshot for reading).
pub async fn standings(
    db: &impl ConnectionTrait,
    grant_ids: &BTreeSet<Uuid>,
) -> Result<HashMap<Uuid, Standing>> {
    Ok(heads(db, grant_ids)
        .await?
        .into_iter()
        .map(|(id, (_, s))| (id, s))
        .collect())
}

/// Appends `postings` in order, inside the caller's transaction: locks their grants,
/// reads each one's last entry, numbers and totals the new entries and inserts them.
/// Marks or clears a grant's overdraft when its balance crosses zero.
pub(crate) async fn post(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    actor: &str,
    postings: Vec<Posting>,
) -> Result<Vec<Moved>> {
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<Uuid> = postings.iter().map(|p| p.grant).collect();
    lock(txn, &ids).await?;
    let heads = heads(txn, &ids).await?;
    post_locked(txn, now, actor, postings, heads).await
}

/// [`post`] for a caller that already locked the postings' grants and read their
/// `heads` in this transaction (admission batches read them to decide).
pub(crate) async fn post_locked(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    actor: &str,
    postings: Vec<Posting>,
    mut heads: Heads,
) -> Result<Vec<Moved>> {
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<Uuid> = postings.iter().map(|p| p.grant).collect();
    heads.retain(|id, _| ids.contains(id));
    if heads.len() != ids.len() {
        return Err(Error::Internal(
            "a posting's grant was not locked and read first".into(),
        ));
    }
    let before: BTreeMap<Uuid, Standing> = heads.iter().map(|(id, (_, s))| (*id, *s)).collect();
    let mut rows = Vec::with_capacity(postings.len());
    for p in postings {
        let (seq, standing) = heads
            .get_mut(&p.grant)
            .ok_or_else(|| Error::Internal("a posting's grant has no head".into()))?;
        let overflow = || Error::Internal(format!("ledger of grant {} overflows", p.grant));
        *seq += 1;
        standing.balance = standing
            .balance
            .checked_add(p.amount)
            .ok_or_else(overflow)?;
        standing.held = standing.held.checked_add(p.held).ok_or_else(overflow)?;
        standing.used = standing.used.checked_add(p.used).ok_or_else(overflow)?;
        if standing.held < 0 || standing.used < 0 {
            return Err(Error::Internal(format!(
                "ledger of grant {} would hold or use less than nothing",
                p.grant
            )));
        }
        rows.push(grant_ledger::ActiveModel {
            id: Set(Uuid::now_v7()),
            grant_id: Set(p.grant),
            seq: Set(*seq),
            kind: Set(p.kind.as_str().to_owned()),
            amount: Set(p.amount),
            balance: Set(standing.balance),
            held: Set(standing.held),
            used: Set(standing.used),
            lease_id: Set(p.lease),
            reason: Set(p.reason),
            actor: Set(actor.to_owned()),
            created_at: Set(now),
        });
    }
    crate::pg_array::insert_many(txn, rows).await?;
    let mut moved = Vec::with_capacity(before.len());
    for (grant, before) in before {
        let after = heads.get(&grant).map_or(before, |(_, s)| *s);
        if (before.balance < 0) != (after.balance < 0) {
            grants::Entity::update_many()
                .col_expr(
                    grants::Column::OverdrawnSince,
                    sea_orm::sea_query::Expr::value((after.balance < 0).then_some(now)),
                )
                .filter(grants::Column::Id.eq(grant))
                .exec(txn)
                .await?;
        }
        moved.push(Moved {
            grant,
            before,
            after,
        });
    }
    Ok(moved)
}

/// Raises, once per grant, the committed-percentage warnings that `moved` crossed (into
/// the audit log and onto the grant), and the overdraft warning.
pub(crate) async fn raise_warnings(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    policy: &BudgetPolicy,
    moved: &[Moved],
) -> Result<()> {
    for m in moved {
        let (was, is) = (m.before.committed_percent(), m.after.committed_percent());
        let mut raise: Vec<String> = policy
            .warn_at_percent
            .iter()
            .map(|t| i64::from(*t))
            .filter(|t| was < *t && is >= *t)
            .map(|t| format!("used_{t}"))
            .collect();
        if m.before.balance >= 0 && m.after.balance < 0 {
            raise.push("overdrawn".to_owned());
        }
        for warning in raise {
            raise_once(txn, now, m.grant, &warning, json!({"standing": m.after})).await?;
        }
    }
    Ok(())
}

/// Records `warning` for the grant unless it was raised before; audits the first time.
pub(crate) async fn raise_once(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    grant: Uuid,
    warning: &str,
    details: serde_json::Value,
) -> Result<bool> {
    let inserted = grant_warnings::Entity::insert(grant_warnings::ActiveModel {
        grant_id: Set(grant),
        warning: Set(warning.to_owned()),
        raised_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            grant_warnings::Column::GrantId,
            grant_warnings::Column::Warning,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let g = grants::Entity::find_by_id(grant)
        .one(txn)
        .await?
        .ok_or(Error::NotFound("grant"))?;
    audit::append(
        txn,
        now,
        &Caller::system("budget"),
        Record {
            action: "grant.warning",
            target_kind: "grant",
            target_id: grant.to_string(),
            organization_id: Some(OrganizationId(g.organization_id)),
            project_id: Some(ProjectId(g.project_id)),
            details: json!({"warning": warning, "details": details}),
        },
    )
    .await?;
    Ok(true)
}

/// The warnings a grant has raised, oldest first.
pub async fn warnings_of(
    db: &impl ConnectionTrait,
    grant_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<GrantWarning>>> {
    let mut out: HashMap<Uuid, Vec<GrantWarning>> = HashMap::new();
    if grant_ids.is_empty() {
        return Ok(out);
    }
    let rows = grant_warnings::Entity::find()
        .filter(crate::pg_array::uuid_in(
            db.get_database_backend(),
            grant_warnings::Column::GrantId,
            grant_ids,
        ))
        .order_by_asc(grant_warnings::Column::RaisedAt)
        .order_by_asc(grant_warnings::Column::Warning)
        .all(db)
        .await?;
    for r in rows {
        out.entry(r.grant_id).or_default().push(GrantWarning {
            warning: r.warning,
            raised_at: r.raised_at,
        });
    }
    Ok(out)
}

/// A warning a grant raised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantWarning {
    /// `used_80`, `used_90`, `used_100`, `ends_soon` or `overdrawn`.
    pub warning: String,
    /// When.
    pub raised_at: DateTime<Utc>,
}

fn from_row(r: grant_ledger::Model) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.id,
        grant_id: GrantId(r.grant_id),
        seq: r.seq,
        kind: EntryKind::stored(&r.kind)?,
        amount: r.amount,
        standing: Standing {
            balance: r.balance,
            held: r.held,
            used: r.used,
        },
        lease_id: r.lease_id.map(LeaseId),
        reason: r.reason,
        actor: r.actor,
        created_at: r.created_at,
    })
}

/// Who may read a grant's ledger: its project's members and the allocators who fund it.
fn visible(caller: &Caller, g: &grants::Model) -> bool {
    caller.can_see_project(g.organization_id.into(), g.project_id.into())
        || g.funded_by_org_id
            .is_some_and(|o| caller.reviews_calls_of(o.into()))
}

/// A page of a grant's ledger, in order (`cursor` is the last `seq` seen).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    grant: GrantId,
    page: &PageRequest,
) -> Result<Page<LedgerEntry>> {
    let g = grants::Entity::find_by_id(grant.0)
        .one(&svc.db)
        .await?
        .filter(|g| visible(caller, g))
        .ok_or(Error::NotFound("grant"))?;
    let mut query = grant_ledger::Entity::find().filter(grant_ledger::Column::GrantId.eq(g.id));
    if let Some(after) = page.after_i64()? {
        query = query.filter(grant_ledger::Column::Seq.gt(after));
    }
    let rows = query
        .order_by_asc(grant_ledger::Column::Seq)
        .limit(page.fetch())
        .all(&svc.db)
        .await?;
    let items = rows.into_iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page, |e| e.seq.to_string()))
}

/// Recomputes a grant's standing from its entries (sum of amounts, of holds given and
/// taken back, of usage) and checks every stored running total against it.
pub async fn verify(db: &impl ConnectionTrait, grant: GrantId) -> Result<Standing> {
    let rows = grant_ledger::Entity::find()
        .filter(grant_ledger::Column::GrantId.eq(grant.0))
        .order_by_asc(grant_ledger::Column::Seq)
        .all(db)
        .await?;
    let mut sum = Standing::default();
    for (i, r) in rows.iter().enumerate() {
        let kind = EntryKind::stored(&r.kind)?;
        sum.balance += r.amount;
        match kind {
            EntryKind::Hold => sum.held -= r.amount,
            EntryKind::HoldRelease => sum.held -= r.amount,
            EntryKind::Usage => sum.used -= r.amount,
            EntryKind::Allocation | EntryKind::Adjustment => {}
        }
        let stored = Standing {
            balance: r.balance,
            held: r.held,
            used: r.used,
        };
        if r.seq != i as i64 + 1 || stored != sum {
            return Err(Error::Internal(format!(
                "ledger of grant {} disagrees with its sums at entry {}",
                grant, r.seq
            )));
        }
    }
    Ok(sum)
}

/// A validated manual adjustment.
#[derive(Clone, Debug, Serialize)]
pub struct NewAdjustment {
    amount: i64,
    reason: String,
}

impl NewAdjustment {
    /// Checks a caller's adjustment: a non-zero whole number of slice-seconds within the
    /// budget bounds, and a reason.
    pub fn parse(slice_seconds: i64, reason: &str) -> Result<Self> {
        let mut v = Validator::default();
        let bound = crate::budget::MAX_GPU_HOURS * crate::budget::SLICE_SECONDS_PER_GPU_HOUR;
        if slice_seconds == 0 || slice_seconds.unsigned_abs() > bound.unsigned_abs() {
            v.check::<()>(Err(Error::invalid(
                "slice_seconds",
                format!("must be a non-zero amount between -{bound} and {bound}"),
            )));
        }
        let reason = v.check(crate::values::parse_name("reason", reason, 1000));
        v.finish()?;
        Ok(Self {
            amount: slice_seconds,
            reason: reason.ok_or_else(crate::validate::missing)?,
        })
    }
}

/// Appends a manual adjustment (platform admins, and allocators of the funding
/// organisation for call grants). Taking back more than is left overdraws the grant: its
/// leases end once the overdraft grace has passed.
#[tracing::instrument(skip_all, err, fields(grant_id = %grant))]
pub async fn adjust(
    svc: &Services,
    caller: &Caller,
    grant: GrantId,
    cmd: NewAdjustment,
    idem: Option<&IdempotencyKey>,
) -> Result<LedgerEntry> {
    let now = svc.clock.now();
    let txn = svc.write_txn().await?;
    let g = grants::Entity::find_by_id(grant.0)
        .one(&txn)
        .await?
        .filter(|g| visible(caller, g))
        .ok_or(Error::NotFound("grant"))?;
    let allowed = caller.is_platform_admin()
        || g.funded_by_org_id
            .is_some_and(|o| caller.can_allocate(o.into()));
    caller.require(true, allowed, "grant")?;
    let op = format!("grant.adjust:{grant}");
    let slot = match idempotency::begin(&txn, now, caller, &op, idem, &cmd).await? {
        idempotency::Begin::Replay(entry) => return Ok(entry),
        idempotency::Begin::Proceed(slot) => slot,
    };
    let posting = Posting {
        grant: g.id,
        kind: EntryKind::Adjustment,
        amount: cmd.amount,
        held: 0,
        used: 0,
        lease: None,
        reason: Some(cmd.reason.clone()),
    };
    let moved = post(&txn, now, &caller.actor.key(), vec![posting]).await?;
    if moved.iter().any(|m| m.after.allocated() < 0) {
        return Err(Error::Conflict(
            "an adjustment cannot take back more than the grant's allocation".into(),
        ));
    }
    raise_warnings(&txn, now, &svc.budget, &moved).await?;
    let last = grant_ledger::Entity::find()
        .filter(grant_ledger::Column::GrantId.eq(g.id))
        .order_by_desc(grant_ledger::Column::Seq)
        .limit(1)
        .one(&txn)
        .await?
        .ok_or_else(|| Error::Internal("the adjustment was not stored".into()))?;
    let entry = from_row(last)?;
    audit::append(
        &txn,
        now,
        caller,
        Record {
            action: "grant.adjust",
            target_kind: "grant",
            target_id: grant.to_string(),
            organization_id: Some(OrganizationId(g.organization_id)),
            project_id: Some(ProjectId(g.project_id)),
            details: json!({"slice_seconds": cmd.amount, "reason": cmd.reason, "standing": entry.standing}),
        },
    )
    .await?;
    idempotency::finish(&txn, slot, &entry).await?;
    txn.commit().await?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_percent_counts_holds_and_usage_of_what_was_allocated() {
        let s = Standing {
            balance: 20,
            held: 30,
            used: 50,
        };
        assert_eq!(s.allocated(), 100);
        assert_eq!(s.committed_percent(), 80);
        let overdrawn = Standing {
            balance: -10,
            held: 10,
            used: 0,
        };
        assert_eq!(overdrawn.committed_percent(), 100);
        assert_eq!(Standing::default().committed_percent(), 0);
    }

    #[test]
    fn a_lease_end_posts_its_hold_back_then_its_usage() {
        let g = Uuid::now_v7();
        let l = Uuid::now_v7();
        let p = Posting::lease_end(g, l, 700, 300);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].kind, p[0].amount, p[0].held),
            (EntryKind::HoldRelease, 700, -700)
        );
        assert_eq!(
            (p[1].kind, p[1].amount, p[1].used),
            (EntryKind::Usage, -300, 300)
        );
        assert!(Posting::lease_end(g, l, 0, 0).is_empty());
    }

    #[test]
    fn adjustments_need_a_reason_and_a_bounded_non_zero_amount() {
        assert!(NewAdjustment::parse(0, "x").is_err());
        assert!(NewAdjustment::parse(10, "").is_err());
        assert!(NewAdjustment::parse(i64::MIN, "x").is_err());
        assert!(NewAdjustment::parse(-25_200, "committee cut").is_ok());
    }
}
