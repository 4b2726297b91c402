//! The scheduler's fencing epoch: a leader bumps it when it takes over, and every batch
//! it commits first checks (and row-locks) that the epoch is still its own. A leader that
//! lost its lock without noticing can then commit nothing, and a new leader's bump waits
//! for the old leader's last batch, so the fleet it restores includes that batch.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SchedulerEpoch {
    Table,
    Id,
    Epoch,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SchedulerEpoch::Table)
                .col(integer(SchedulerEpoch::Id).primary_key())
                .col(big_integer(SchedulerEpoch::Epoch))
                .to_owned(),
        )
        .await?;
        let row = Query::insert()
            .into_table(SchedulerEpoch::Table)
            .columns([SchedulerEpoch::Id, SchedulerEpoch::Epoch])
            .values([1.into(), 0i64.into()])
            .map_err(|e| DbErr::Custom(format!("scheduler epoch row: {e}")))?
            .to_owned();
        m.exec_stmt(row).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SchedulerEpoch::Table).to_owned())
            .await
    }
}
