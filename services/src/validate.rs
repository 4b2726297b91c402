//! Collects every field error of a command before failing, so callers fix all at once.

use crate::error::{Error, FieldErrors, Result};

/// Accumulates field errors.
#[derive(Default)]
pub struct Validator {
    fields: FieldErrors,
}

impl Validator {
    /// Keeps the value, or records its field errors and returns `None`.
    pub fn check<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::Validation(fields)) => {
                self.fields.extend(fields);
                None
            }
            Err(other) => {
                self.fields.insert("_".into(), other.to_string());
                None
            }
        }
    }

    /// Fails with every recorded field error, if any.
    pub fn finish(self) -> Result<()> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.fields))
        }
    }
}

/// Error for a value missing although the validator passed (a bug, never user input).
pub fn missing() -> Error {
    Error::Internal("validated value missing".into())
}
