//! The fleet revision becomes a striped counter: rows 1 to 64 of `fleet_revision`, each
//! change bumping one row picked at random, the revision being their sum. With one row,
//! every transaction that changes what is placeable (a registration, above all) held
//! that row's lock until its commit was on disk, so such transactions committed one at a
//! time: about a hundred registrations a second here, whatever the concurrency. The sum
//! moves exactly when a bump is committed, as the one row did.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FleetRevision {
    Table,
    Id,
    Revision,
}

/// Rows of the counter (row 1 exists since migration 12).
const STRIPES: i32 = 64;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut rows = Query::insert()
            .into_table(FleetRevision::Table)
            .columns([FleetRevision::Id, FleetRevision::Revision])
            .to_owned();
        for id in 2..=STRIPES {
            rows.values([id.into(), 0i64.into()])
                .map_err(|e| DbErr::Custom(format!("fleet revision rows: {e}")))?;
        }
        m.exec_stmt(rows).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Fold the stripes back into row 1, so the revision keeps its value.
        let db = m.get_connection();
        db.execute_unprepared(
            "UPDATE fleet_revision SET revision = (SELECT SUM(revision) FROM fleet_revision) \
             WHERE id = 1",
        )
        .await?;
        let delete = Query::delete()
            .from_table(FleetRevision::Table)
            .and_where(Expr::col(FleetRevision::Id).gt(1))
            .to_owned();
        m.exec_stmt(delete).await
    }
}
