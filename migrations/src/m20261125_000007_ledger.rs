//! The budget ledger: an append-only list of entries per grant (its allocation, holds
//! taken at lease creation, hold releases and usage debits at lease end, adjustments).
//! A grant's balance is the sum of its entries; each entry also carries the running
//! balance, held and used amounts after it (entry `seq` of a grant is the sum of entries
//! 1..=seq), so admission reads one row per grant instead of summing its history.
//! `(grant_id, seq)` is unique: two writers can never fork a grant's ledger.
//!
//! `grant_warnings` records which warning (a used-percentage threshold, the approach of
//! the grant's end, an overdraft) a grant has already raised, so each is raised once.
//!
//! Existing grants and leases are carried over: an allocation entry per grant, a hold per
//! live lease and a usage debit per ended lease that used budget.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GrantLedger {
    Table,
    Id,
    GrantId,
    Seq,
    Kind,
    Amount,
    Balance,
    Held,
    Used,
    LeaseId,
    Reason,
    Actor,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GrantWarnings {
    Table,
    GrantId,
    Warning,
    RaisedAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    OverdrawnSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(GrantLedger::Table)
                .col(uuid(GrantLedger::Id).primary_key())
                .col(uuid(GrantLedger::GrantId))
                .col(big_integer(GrantLedger::Seq))
                .col(string_len(GrantLedger::Kind, 16))
                .col(big_integer(GrantLedger::Amount))
                .col(big_integer(GrantLedger::Balance))
                .col(big_integer(GrantLedger::Held))
                .col(big_integer(GrantLedger::Used))
                .col(uuid_null(GrantLedger::LeaseId))
                .col(text_null(GrantLedger::Reason))
                .col(string_len(GrantLedger::Actor, 300))
                .col(timestamp_with_time_zone(GrantLedger::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(GrantLedger::Table, GrantLedger::GrantId)
                        .to(Grants::Table, Grants::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("grant_ledger_seq")
                .table(GrantLedger::Table)
                .col(GrantLedger::GrantId)
                .col(GrantLedger::Seq)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("grant_ledger_lease")
                .table(GrantLedger::Table)
                .col(GrantLedger::LeaseId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GrantWarnings::Table)
                .col(uuid(GrantWarnings::GrantId))
                .col(string_len(GrantWarnings::Warning, 32))
                .col(timestamp_with_time_zone(GrantWarnings::RaisedAt))
                .primary_key(
                    Index::create()
                        .col(GrantWarnings::GrantId)
                        .col(GrantWarnings::Warning),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(GrantWarnings::Table, GrantWarnings::GrantId)
                        .to(Grants::Table, Grants::Id),
                )
                .to_owned(),
        )
        .await?;
        // Set while the grant's balance is below zero (an adjustment took back hours its
        // leases already held): its leases end once the configured grace has passed.
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .add_column(timestamp_with_time_zone_null(Grants::OverdrawnSince))
                .to_owned(),
        )
        .await?;
        backfill(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Grants::Table)
                .drop_column(Grants::OverdrawnSince)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(GrantWarnings::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(GrantLedger::Table).to_owned())
            .await
    }
}

/// Carries existing grants and leases into the ledger, in plain SQL that both databases
/// run: entries are numbered per grant (allocation first, then leases by creation) and
/// running totals are window sums. Ids are derived from the source row so the step is
/// deterministic.
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    // Source entries: (grant, order key, kind, amount, held change, used change, lease).
    // Each lease gives one entry at most (a hold while live, a usage debit once ended),
    // so grant and lease ids are unique entry ids.
    let sql = r#"
        INSERT INTO grant_ledger
            (id, grant_id, seq, kind, amount, balance, held, used, lease_id, reason, actor, created_at)
        SELECT id, grant_id, seq, kind, amount,
               SUM(amount) OVER w, SUM(held_change) OVER w, SUM(used_change) OVER w,
               lease_id, NULL, 'system', created_at
        FROM (
            SELECT src.*, ROW_NUMBER() OVER (PARTITION BY grant_id ORDER BY created_at, ord, id) AS seq
            FROM (
                SELECT g.id AS id, g.id AS grant_id, 0 AS ord, 'allocation' AS kind,
                       g.slice_seconds AS amount, 0 AS held_change, 0 AS used_change,
                       NULL AS lease_id, g.created_at AS created_at
                FROM grants g
                UNION ALL
                SELECT l.id, l.grant_id, 1, 'hold', -l.held_slice_seconds,
                       l.held_slice_seconds, 0, l.id, l.created_at
                FROM leases l WHERE l.held_slice_seconds > 0
                UNION ALL
                SELECT l.id, l.grant_id, 2, 'usage', -l.charged_slice_seconds,
                       0, l.charged_slice_seconds, l.id, COALESCE(l.ended_at, l.created_at)
                FROM leases l WHERE l.charged_slice_seconds > 0
            ) src
        ) numbered
        WINDOW w AS (PARTITION BY grant_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    "#;
    m.get_connection().execute_unprepared(sql).await?;
    Ok(())
}
