//! Integration tests of the control plane: the real server on port 0, against SQLite and
//! a real PostgreSQL (a fresh database per test), with a real OpenID provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
#[path = "../support/serve.rs"]
mod serve;

mod agent;
mod agent_e2e;
mod agent_kill;
mod agent_outage;
mod agent_reports;
mod agent_rogue;
mod agent_workload_race;
mod allocation;
mod audit;
mod basics;
mod browser;
mod carbon;
mod fleet_sim;
mod idempotency;
mod invoices;
mod isolation;
mod leases;
mod ledger;
mod lifecycle;
mod members_tokens;
mod newcomer;
mod nodes;
mod oidc;
mod pricing;
mod quotas;
mod tenancy;
mod usage;
mod web_client;
mod web_e2e;
mod web_login;
mod web_permissions;
