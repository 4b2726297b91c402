//! Sessions of the web console: one row per signed-in browser (the cookie holds a random
//! secret, the table only its hash), and one row per login in flight (the OpenID
//! `state`, `nonce` and PKCE verifier, kept server-side until the provider redirects
//! back, so any replica can finish a login another one started).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebSessions {
    Table,
    Id,
    TokenHash,
    UserId,
    Provider,
    CsrfToken,
    IdToken,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    AbsoluteExpiresAt,
}

#[derive(DeriveIden)]
enum WebLogins {
    Table,
    StateHash,
    Provider,
    Nonce,
    PkceVerifier,
    ReturnTo,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(WebSessions::Table)
                .col(uuid(WebSessions::Id).primary_key())
                .col(string_len(WebSessions::TokenHash, 64).unique_key())
                .col(uuid(WebSessions::UserId))
                .col(string_len(WebSessions::Provider, 64))
                .col(string_len(WebSessions::CsrfToken, 64))
                .col(text_null(WebSessions::IdToken))
                .col(timestamp_with_time_zone(WebSessions::CreatedAt))
                .col(timestamp_with_time_zone(WebSessions::LastSeenAt))
                .col(timestamp_with_time_zone(WebSessions::ExpiresAt))
                .col(timestamp_with_time_zone(WebSessions::AbsoluteExpiresAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebSessions::Table, WebSessions::UserId)
                        .to(Alias::new("users"), Alias::new("id"))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("web_sessions_expires_at")
                .table(WebSessions::Table)
                .col(WebSessions::ExpiresAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WebLogins::Table)
                .col(string_len(WebLogins::StateHash, 64).primary_key())
                .col(string_len(WebLogins::Provider, 64))
                .col(string_len(WebLogins::Nonce, 200))
                .col(string_len(WebLogins::PkceVerifier, 200))
                .col(string_len(WebLogins::ReturnTo, 2000))
                .col(timestamp_with_time_zone(WebLogins::CreatedAt))
                .col(timestamp_with_time_zone(WebLogins::ExpiresAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebLogins::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(WebSessions::Table).to_owned())
            .await
    }
}
