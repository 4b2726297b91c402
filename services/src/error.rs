//! The one error type of the domain layer; `api` maps it to problem+json and `web` to a page.

use std::collections::BTreeMap;

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

/// Everything a domain operation can fail with. Each variant has a stable [`Error::code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist, or the caller may not know that it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (duplicate slug, non-empty parent…).
    #[error("{0}")]
    Conflict(String),
    /// Input that parses but breaks a rule; one message per offending field.
    #[error("invalid input: {}", format_fields(.0))]
    Validation(FieldErrors),
    /// The caller can see the object but may not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// An `Idempotency-Key` was reused with a different request body.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// `If-Match` named a version that is no longer current.
    #[error("the object was modified since the version given in If-Match")]
    PreconditionFailed,
    /// A quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A budget has no hours left.
    #[error("{0}")]
    BudgetExhausted(String),
    /// No price list prices this organisation, GPU model or time (see `pricing`).
    #[error("{0}")]
    NotPriced(String),
    /// A dependency (database, identity provider) is unavailable; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details go to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

fn format_fields(fields: &FieldErrors) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The stable machine-readable code of this error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Validation(_) => "validation_failed",
            Error::Forbidden(_) => "forbidden",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::IdempotencyMismatch => "idempotency_key_reused",
            Error::PreconditionFailed => "precondition_failed",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::BudgetExhausted(_) => "budget_exhausted",
            Error::NotPriced(_) => "no_price_list",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// A validation error on one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_owned(), message.into());
        Error::Validation(fields)
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        match &err {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                Error::Unavailable(format!("database unavailable: {err}"))
            }
            _ => match err.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                    Error::Conflict("an object with the same unique key already exists".into())
                }
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                    Error::Conflict("the object is still referenced by other objects".into())
                }
                _ => Error::Internal(format!("database error: {err}")),
            },
        }
    }
}

impl From<sea_orm::TransactionError<Error>> for Error {
    fn from(err: sea_orm::TransactionError<Error>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

/// Result alias of the domain layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
