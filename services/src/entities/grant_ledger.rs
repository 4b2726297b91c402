//! Entity of the `grant_ledger` table.

use sea_orm::entity::prelude::*;

/// A row of `grant_ledger`: one append-only entry of a grant's budget ledger.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grant_ledger")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub grant_id: Uuid,
    /// 1, 2, … per grant; unique with `grant_id`.
    pub seq: i64,
    /// allocation, hold, hold_release, usage or adjustment.
    pub kind: String,
    /// Change to the balance, slice-seconds (negative takes budget).
    pub amount: i64,
    /// Balance after this entry: the sum of entries 1..=seq.
    pub balance: i64,
    /// Outstanding holds after this entry.
    pub held: i64,
    /// Usage debited after this entry.
    pub used: i64,
    pub lease_id: Option<Uuid>,
    pub reason: Option<String>,
    pub actor: String,
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
