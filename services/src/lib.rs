//! The domain of Aion: tenancy, identity, authorisation, API tokens, idempotency, the
//! audit log, and allocation (calls, requests, grants, quotas). HTTP never reaches this crate; SQL never leaves it.

pub mod agent;
pub mod agent_events;
pub mod agent_input;
pub mod agent_sync;
pub mod allocation_requests;
pub mod audit;
pub mod audit_chain;
pub mod authz;
pub mod billing;
pub mod bootstrap;
pub mod budget;
pub mod call_input;
pub mod calls;
pub mod carbon;
pub mod claim_roles;
pub mod clock;
pub mod committee;
pub mod console;
pub mod db;
pub mod decisions;
pub mod entities;
pub mod error;
pub mod events;
pub mod fleet_occupancy;
pub mod grants;
pub mod heartbeats;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod invoices;
pub mod join_tokens;
pub mod lease_admission;
pub mod lease_batch;
pub mod lease_lifecycle;
pub mod lease_state;
pub mod leases;
pub mod ledger;
pub mod members;
pub mod nodes;
pub mod notify_bridge;
pub mod oidc;
pub mod operator_views;
pub mod organizations;
pub mod pagination;
pub(crate) mod pg_array;
pub mod price_lists;
pub mod pricing;
pub mod projects;
pub mod quota_settings;
pub mod quotas;
pub mod rating;
pub mod researcher;
pub mod scheduler;
pub mod scope;
pub mod secrets;
pub mod seed;
pub mod token_cache;
pub mod tokens;
pub mod usage;
pub mod usage_report;
pub mod validate;
pub mod values;
pub mod vat;
pub mod web_sessions;

pub use error::{Error, Result};

use sea_orm::{DatabaseConnection, DatabaseTransaction};
use std::sync::Arc;

/// Everything a domain operation needs: the database, the clock and the OIDC verifier.
#[derive(Clone)]
pub struct Services {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The time source.
    pub clock: clock::Clock,
    /// Validates OIDC access tokens.
    pub oidc: Arc<oidc::OidcVerifier>,
    /// Change notices that wake long-polls and the scheduler.
    pub events: Arc<events::Events>,
    /// Queue of lease admissions, committed in batches (see [`lease_batch`]).
    pub admission: Arc<lease_batch::AdmissionQueue>,
    /// Budget warnings and the grace of overdrawn grants.
    pub budget: Arc<ledger::BudgetPolicy>,
    /// Recent API-token lookups (see [`token_cache`]).
    pub tokens: Arc<token_cache::TokenCache>,
    /// Recent node credential lookups (see [`agent::authenticate`]).
    pub node_credentials: Arc<agent::CredentialCache>,
    /// Agent heartbeats waiting to be written (see [`heartbeats`]).
    pub heartbeats: Arc<heartbeats::HeartbeatBuffer>,
}

impl Services {
    /// Starts a read-write transaction (see [`db::write_txn`]).
    pub async fn write_txn(&self) -> Result<DatabaseTransaction> {
        db::write_txn(&self.db).await
    }
}
