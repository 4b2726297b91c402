//! Entity of the `web_sessions` table.

use sea_orm::entity::prelude::*;

/// A row of `web_sessions`: one signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "web_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub token_hash: String,
    pub user_id: Uuid,
    /// Name of the login provider (`dev` for the development sign-in).
    pub provider: String,
    /// The synchroniser token every form of this session must carry.
    pub csrf_token: String,
    /// The ID token of the login, sent back as `id_token_hint` on logout.
    pub id_token: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    /// Idle expiry, pushed forward while the session is used.
    pub expires_at: DateTimeUtc,
    /// Hard expiry, never pushed.
    pub absolute_expires_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; joins are explicit queries.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
