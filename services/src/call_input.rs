//! Validated commands on calls: the call's states, a new call, and a change to one.

use crate::budget::GpuHours;
use crate::calls::Call;
use crate::entities::calls;
use crate::error::{Error, Result};
use crate::ids::OrganizationId;
use crate::validate::{Validator, missing};
use crate::values::{check_text, parse_gpu_model, parse_name};
use aion_mig::GpuModel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Lifecycle of a call: `draft → open → closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Being prepared; visible only to its organisation.
    Draft,
    /// Accepting requests.
    Open,
    /// No longer accepting requests; pending ones can still be decided.
    Closed,
}

impl CallState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    /// Parses a caller's state name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        [Self::Draft, Self::Open, Self::Closed]
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Error::invalid(field, "must be one of draft, open, closed"))
    }

    pub(crate) fn stored(raw: &str) -> Result<Self> {
        Self::parse("state", raw).map_err(|_| Error::Internal(format!("unknown call state {raw}")))
    }
}

/// Raw fields of a new call, as a caller sends them.
#[derive(Clone, Debug)]
pub struct CallFields<'a> {
    /// The allocating organisation.
    pub organization_id: Uuid,
    /// Title.
    pub title: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// GPU model name.
    pub gpu_model: &'a str,
    /// Pool in whole GPU-hours.
    pub pool_gpu_hours: i64,
    /// Requests from.
    pub opens_at: DateTime<Utc>,
    /// Requests until.
    pub closes_at: DateTime<Utc>,
    /// Grants from.
    pub period_start: DateTime<Utc>,
    /// Grants until.
    pub period_end: DateTime<Utc>,
}

/// A validated request to create a call.
#[derive(Clone, Debug, Serialize)]
pub struct NewCall {
    pub(crate) organization_id: OrganizationId,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) gpu_model: GpuModel,
    pub(crate) pool: GpuHours,
    pub(crate) opens_at: DateTime<Utc>,
    pub(crate) closes_at: DateTime<Utc>,
    pub(crate) period_start: DateTime<Utc>,
    pub(crate) period_end: DateTime<Utc>,
}

fn check_dates(
    v: &mut Validator,
    opens: DateTime<Utc>,
    closes: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    if closes <= opens {
        v.check::<()>(Err(Error::invalid("closes_at", "must be after opens_at")));
    }
    if end <= start {
        v.check::<()>(Err(Error::invalid(
            "period_end",
            "must be after period_start",
        )));
    }
}

impl NewCall {
    /// Validates raw input, reporting every bad field.
    pub fn parse(f: CallFields<'_>) -> Result<Self> {
        let mut v = Validator::default();
        let title = v.check(parse_name("title", f.title, 200));
        let description = f.description.unwrap_or("").trim().to_owned();
        v.check(check_text("description", &description, 10_000));
        let gpu_model = v.check(parse_gpu_model("gpu_model", f.gpu_model));
        let pool = v.check(GpuHours::parse("pool_gpu_hours", f.pool_gpu_hours));
        check_dates(
            &mut v,
            f.opens_at,
            f.closes_at,
            f.period_start,
            f.period_end,
        );
        v.finish()?;
        match (title, gpu_model, pool) {
            (Some(title), Some(gpu_model), Some(pool)) => Ok(Self {
                organization_id: f.organization_id.into(),
                title,
                description,
                gpu_model,
                pool,
                opens_at: f.opens_at,
                closes_at: f.closes_at,
                period_start: f.period_start,
                period_end: f.period_end,
            }),
            _ => Err(missing()),
        }
    }
}

/// A validated partial update of a call; absent fields stay unchanged.
#[derive(Clone, Debug, Default)]
pub struct CallPatch {
    pub(crate) title: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) gpu_model: Option<GpuModel>,
    pub(crate) pool: Option<GpuHours>,
    /// New `opens_at`.
    pub opens_at: Option<DateTime<Utc>>,
    /// New `closes_at`.
    pub closes_at: Option<DateTime<Utc>>,
    /// New `period_start`.
    pub period_start: Option<DateTime<Utc>>,
    /// New `period_end`.
    pub period_end: Option<DateTime<Utc>>,
}

impl CallPatch {
    /// Validates the text, model and pool fields; set the dates directly.
    pub fn parse(
        title: Option<&str>,
        description: Option<&str>,
        gpu_model: Option<&str>,
        pool_gpu_hours: Option<i64>,
    ) -> Result<Self> {
        let mut v = Validator::default();
        let title = title.and_then(|t| v.check(parse_name("title", t, 200)));
        let description = description.map(|d| d.trim().to_owned());
        if let Some(d) = &description {
            v.check(check_text("description", d, 10_000));
        }
        let gpu_model = gpu_model.and_then(|m| v.check(parse_gpu_model("gpu_model", m)));
        let pool = pool_gpu_hours.and_then(|h| v.check(GpuHours::parse("pool_gpu_hours", h)));
        v.finish()?;
        Ok(Self {
            title,
            description,
            gpu_model,
            pool,
            ..Default::default()
        })
    }

    fn only_pool(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.gpu_model.is_none()
            && self.opens_at.is_none()
            && self.closes_at.is_none()
            && self.period_start.is_none()
            && self.period_end.is_none()
    }

    /// The row after the change; drafts change freely, other calls only raise their pool.
    pub(crate) fn apply(&self, c: &Call) -> Result<calls::Model> {
        if c.state != CallState::Draft {
            if !self.only_pool() {
                return Err(Error::Conflict(format!(
                    "the call is {}: only its pool can change, and only upwards",
                    c.state.as_str()
                )));
            }
            if self.pool.is_some_and(|p| p.slice_seconds() < c.pool) {
                return Err(Error::Conflict(format!(
                    "the call is {}: its pool cannot shrink",
                    c.state.as_str()
                )));
            }
        }
        let m = calls::Model {
            id: c.id.0,
            allocator_org_id: c.allocator_org_id.0,
            title: self.title.clone().unwrap_or_else(|| c.title.clone()),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| c.description.clone()),
            gpu_model: self.gpu_model.unwrap_or(c.gpu_model).name().to_owned(),
            pool_slice_seconds: self.pool.map_or(c.pool, GpuHours::slice_seconds).get(),
            opens_at: self.opens_at.unwrap_or(c.opens_at),
            closes_at: self.closes_at.unwrap_or(c.closes_at),
            period_start: self.period_start.unwrap_or(c.period_start),
            period_end: self.period_end.unwrap_or(c.period_end),
            state: c.state.as_str().to_owned(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        };
        let mut v = Validator::default();
        check_dates(
            &mut v,
            m.opens_at,
            m.closes_at,
            m.period_start,
            m.period_end,
        );
        v.finish()?;
        Ok(m)
    }
}
