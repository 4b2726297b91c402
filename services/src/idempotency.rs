//! `Idempotency-Key` on creates: the same key with the same request replays the first
//! answer; the same key with another request is refused. The key is claimed in the same
//! transaction as the create, so a crash between the two leaves neither behind.

use crate::authz::Caller;
use crate::entities::idempotency_keys;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

/// A validated idempotency key: 1–255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the header value.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What [`claim`] found.
pub enum Claim<T> {
    /// First use of the key: do the work, then [`Slot::complete`].
    Fresh(Slot),
    /// The key was used for this very request before: answer this again.
    Replay(T),
}

/// A claimed key, to be completed with the answer in the same transaction.
pub struct Slot {
    model: idempotency_keys::ActiveModel,
}

impl Slot {
    /// Stores the answer so later retries replay it.
    pub async fn complete<T: Serialize>(
        mut self,
        txn: &impl ConnectionTrait,
        answer: &T,
    ) -> Result<()> {
        let json = serde_json::to_string(answer)
            .map_err(|e| Error::Internal(format!("cannot store idempotent answer: {e}")))?;
        self.model.response = Set(json);
        match self.model.insert(txn).await {
            Ok(_) => Ok(()),
            // A concurrent request with the same key committed first; its answer will be
            // replayed to a retry of this one.
            Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
                Err(Error::Conflict(
                    "a request with this Idempotency-Key was processed concurrently; retry to get its answer".into(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Hash identifying one request: the operation and its canonical JSON body.
pub fn fingerprint<C: Serialize>(operation: &str, command: &C) -> String {
    let body = serde_json::to_string(command).unwrap_or_default();
    hex::encode(Sha256::digest(format!("{operation}\n{body}").as_bytes()))
}

/// Looks the key up for this caller and operation. `None` key: always fresh, nothing kept.
pub async fn claim<T: DeserializeOwned>(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    operation: &str,
    key: Option<&IdempotencyKey>,
    fingerprint: String,
) -> Result<Option<Claim<T>>> {
    let Some(key) = key else { return Ok(None) };
    let principal = caller.actor.key();
    let existing = idempotency_keys::Entity::find_by_id((
        principal.clone(),
        operation.to_owned(),
        key.0.clone(),
    ))
    .one(txn)
    .await?;
    if let Some(row) = existing {
        if row.created_at > now - Duration::hours(RETENTION_HOURS) {
            if row.fingerprint != fingerprint {
                return Err(Error::IdempotencyMismatch);
            }
            let answer = serde_json::from_str(&row.response).map_err(|e| {
                Error::Internal(format!("stored idempotent answer unreadable: {e}"))
            })?;
            return Ok(Some(Claim::Replay(answer)));
        }
        idempotency_keys::Entity::delete_many()
            .filter(idempotency_keys::Column::PrincipalKey.eq(principal.clone()))
            .filter(idempotency_keys::Column::Operation.eq(operation))
            .filter(idempotency_keys::Column::IdemKey.eq(key.0.clone()))
            .exec(txn)
            .await?;
    }
    Ok(Some(Claim::Fresh(Slot {
        model: idempotency_keys::ActiveModel {
            principal_key: Set(principal),
            operation: Set(operation.to_owned()),
            idem_key: Set(key.0.clone()),
            fingerprint: Set(fingerprint),
            response: Set(String::new()),
            created_at: Set(now),
        },
    })))
}

/// Deletes keys older than the retention period; returns how many.
pub async fn purge(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64> {
    let res = idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt(now - Duration::hours(RETENTION_HOURS)))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// What [`begin`] decided.
pub enum Begin<T> {
    /// Answer this stored result again.
    Replay(T),
    /// Do the work, then call [`finish`] with the slot (if a key was given).
    Proceed(Option<Slot>),
}

/// Claims `key` for `operation` with the fingerprint of `command`.
pub async fn begin<T: DeserializeOwned, C: Serialize>(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    caller: &Caller,
    operation: &str,
    key: Option<&IdempotencyKey>,
    command: &C,
) -> Result<Begin<T>> {
    match claim(
        txn,
        now,
        caller,
        operation,
        key,
        fingerprint(operation, command),
    )
    .await?
    {
        None => Ok(Begin::Proceed(None)),
        Some(Claim::Fresh(slot)) => Ok(Begin::Proceed(Some(slot))),
        Some(Claim::Replay(answer)) => Ok(Begin::Replay(answer)),
    }
}

/// Stores the answer for a claimed key; nothing without a key.
pub async fn finish<T: Serialize>(
    txn: &impl ConnectionTrait,
    slot: Option<Slot>,
    answer: &T,
) -> Result<()> {
    match slot {
        Some(slot) => slot.complete(txn, answer).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_with_spaces_or_over_255_characters_is_rejected() {
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("req-42").is_ok());
    }

    #[test]
    fn fingerprints_differ_when_the_body_differs() {
        let a = fingerprint("org.create", &serde_json::json!({"slug": "a"}));
        let b = fingerprint("org.create", &serde_json::json!({"slug": "b"}));
        assert_ne!(a, b);
        assert_eq!(
            a,
            fingerprint("org.create", &serde_json::json!({"slug": "a"}))
        );
    }
}
