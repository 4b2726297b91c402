//! sea-orm entities: one per table, generated-style and kept apart from domain code.

pub mod agent_events;
pub mod allocation_requests;
pub mod api_tokens;
pub mod audit_events;
pub mod audit_head;
pub mod audit_inbox;
pub mod calls;
pub mod gpu_slot_claims;
pub mod gpus;
pub mod grants;
pub mod idempotency_keys;
pub mod join_tokens;
pub mod lease_placements;
pub mod leases;
pub mod memberships;
pub mod node_credentials;
pub mod nodes;
pub mod organizations;
pub mod price_list_entries;
pub mod price_lists;
pub mod projects;
pub mod quotas;
pub mod usage_records;
pub mod users;
