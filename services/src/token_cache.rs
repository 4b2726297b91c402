//! A short-lived in-memory cache of API-token lookups, so a partner's burst of requests
//! does not read its token row once per request.
//!
//! Safety: an entry lives at most [`TTL_S`] seconds, and the token's own expiry is still
//! checked on every hit. Revoking a token forgets it at once in the replica that revoked
//! it, and tells the others through PostgreSQL `NOTIFY` on [`NOTIFY_CHANNEL`] (see
//! [`crate::notify_bridge`]), which forget it too; a replica whose listener reconnects
//! forgets everything, since notices sent meanwhile are lost. A revoked token is therefore
//! refused at once everywhere, or within [`TTL_S`] if a notice cannot be delivered.

use crate::authz::Grant;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Longest time a cached lookup is trusted.
pub const TTL_S: i64 = 10;
/// The channel on which revocations are announced (payload: the token's hash).
pub const NOTIFY_CHANNEL: &str = "aion_tokens";
/// Entries kept at most; past that the cache starts over (a bound, not an LRU).
const MAX_ENTRIES: usize = 100_000;

/// What authentication needs of a token row.
#[derive(Clone, Debug)]
pub struct CachedToken {
    /// The token's id.
    pub id: Uuid,
    /// Its role in its scope.
    pub grant: Grant,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Last `last_used_at` written (written again after a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    cached_at: DateTime<Utc>,
}

impl CachedToken {
    /// An entry read at `now`.
    pub fn new(
        id: Uuid,
        grant: Grant,
        expires_at: DateTime<Utc>,
        last_used_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            grant,
            expires_at,
            last_used_at,
            cached_at: now,
        }
    }
}

/// The cache, keyed by token hash (never by secret).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedToken>> {
        // A panic while holding the lock cannot leave the map inconsistent (each
        // operation is one map call), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `hash` if it is younger than [`TTL_S`] at `now`.
    pub fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<CachedToken> {
        let mut map = self.map();
        match map.get(hash) {
            Some(e) if now - e.cached_at < Duration::seconds(TTL_S) && now >= e.cached_at => {
                Some(e.clone())
            }
            Some(_) => {
                map.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Remembers a lookup.
    pub fn put(&self, hash: &str, entry: CachedToken) {
        let mut map = self.map();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(hash.to_owned(), entry);
    }

    /// Notes that `last_used_at` was written at `at`.
    pub fn touched(&self, hash: &str, at: DateTime<Utc>) {
        if let Some(e) = self.map().get_mut(hash) {
            e.last_used_at = Some(at);
        }
    }

    /// Forgets one token (revoked).
    pub fn forget(&self, hash: &str) {
        self.map().remove(hash);
    }

    /// Forgets everything (revocation notices may have been missed).
    pub fn clear(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::OrgRole;
    use crate::ids::OrganizationId;

    fn entry(now: DateTime<Utc>) -> CachedToken {
        CachedToken::new(
            Uuid::now_v7(),
            Grant::Organization(OrganizationId(Uuid::nil()), OrgRole::Member),
            now + Duration::days(1),
            None,
            now,
        )
    }

    #[test]
    fn entries_expire_after_the_ttl_and_can_be_forgotten() {
        let now = Utc::now();
        let cache = TokenCache::default();
        cache.put("h", entry(now));
        assert!(cache.get("h", now + Duration::seconds(TTL_S - 1)).is_some());
        assert!(cache.get("h", now + Duration::seconds(TTL_S)).is_none());
        cache.put("h", entry(now));
        cache.forget("h");
        assert!(cache.get("h", now).is_none());
        cache.put("h", entry(now));
        cache.clear();
        assert!(cache.get("h", now).is_none());
    }

    #[test]
    fn an_entry_from_the_future_is_not_trusted() {
        let now = Utc::now();
        let cache = TokenCache::default();
        cache.put("h", entry(now + Duration::seconds(5)));
        assert!(cache.get("h", now).is_none());
    }
}
