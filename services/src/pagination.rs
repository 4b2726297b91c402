//! Cursor pagination: `limit` plus an opaque cursor naming the last item of the previous page.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size a caller may ask for.
pub const MAX_LIMIT: u64 = 200;

/// A validated page request.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Items per page (1..=MAX_LIMIT).
    pub limit: u64,
    /// Opaque position after which the page starts.
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates `limit` and decodes `cursor`.
    pub fn parse(limit: Option<u64>, cursor: Option<&str>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor {
            None | Some("") => None,
            Some(raw) => {
                let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| {
                    Error::invalid("cursor", "is not a cursor returned by this API")
                })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    Error::invalid("cursor", "is not a cursor returned by this API")
                })?)
            }
        };
        Ok(Self { limit, after })
    }

    /// The cursor position as a UUID (for lists ordered by time-ordered ids).
    pub fn after_uuid(&self) -> Result<Option<Uuid>> {
        self.after
            .as_deref()
            .map(|s| {
                Uuid::parse_str(s)
                    .map_err(|_| Error::invalid("cursor", "is not a cursor returned by this API"))
            })
            .transpose()
    }

    /// The cursor position as an integer (for lists ordered by sequence numbers).
    pub fn after_i64(&self) -> Result<Option<i64>> {
        self.after
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|_| Error::invalid("cursor", "is not a cursor returned by this API"))
            })
            .transpose()
    }

    /// Rows to fetch: one more than the limit tells whether a next page exists.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }
}

/// One page of results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows, using `key` for the cursor.
    pub fn from_rows(mut rows: Vec<T>, req: &PageRequest, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as u64 > req.limit;
        rows.truncate(req.limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| URL_SAFE_NO_PAD.encode(key(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// Maps the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_zero_or_above_the_maximum_is_rejected() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT + 1), None).is_err());
    }

    #[test]
    fn a_garbage_cursor_is_a_validation_error() {
        let req = PageRequest::parse(None, Some("%%%")).unwrap_err();
        assert_eq!(req.code(), "validation_failed");
    }

    #[test]
    fn a_full_page_carries_a_cursor_that_decodes_to_its_last_key() {
        let req = PageRequest::parse(Some(2), None).unwrap();
        let page = Page::from_rows(vec![1, 2, 3], &req, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        let next = PageRequest::parse(Some(2), page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.after_i64().unwrap(), Some(2));
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let req = PageRequest::parse(Some(5), None).unwrap();
        assert!(
            Page::from_rows(vec![1, 2], &req, |n| n.to_string())
                .next_cursor
                .is_none()
        );
    }
}
