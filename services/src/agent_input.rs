//! What agents send, parsed once: host names (RFC 1123), GPU inventories at registration
//! and status reports.

use crate::error::{Error, Result};
use crate::validate::{Validator, missing};
use aion_mig::GpuModel;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::str::FromStr;

/// Most GPUs a node may register.
pub const MAX_GPUS: usize = 16;

/// A host name per RFC 1123: dot-separated labels of 1–63 letters, digits and inner `-`,
/// at most 253 characters; stored in lower case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    /// Parses a host name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                field,
                "must be an RFC 1123 host name: at most 253 characters, dot-separated labels of 1 to 63 letters, digits and inner '-'",
            )
        };
        if raw.is_empty() || raw.len() > 253 {
            return Err(bad());
        }
        for label in raw.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad());
            }
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The host name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GPU as the agent describes it.
#[derive(Clone, Debug)]
pub struct RawGpu {
    /// NVIDIA UUID, `GPU-…`.
    pub uuid: String,
    /// Index on the node.
    pub index: i64,
    /// Model: `H100-80GB` or an NVML product name.
    pub model: String,
    /// Memory.
    pub memory_mib: i64,
    /// MIG mode.
    pub mig_enabled: bool,
}

/// A validated GPU of a registration.
#[derive(Clone, Debug)]
pub struct NewGpu {
    /// NVIDIA UUID.
    pub uuid: String,
    /// Index on the node.
    pub index: i32,
    /// Memory.
    pub memory_mib: i64,
    /// MIG mode.
    pub mig_enabled: bool,
}

/// A validated registration: host name, one GPU model, 1 to 16 GPUs.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Host name.
    pub hostname: Hostname,
    /// Model of every GPU.
    pub model: GpuModel,
    /// GPUs.
    pub gpus: Vec<NewGpu>,
}

/// Checks a GPU UUID (`GPU-` and up to 60 letters, digits and `-`).
pub fn check_gpu_uuid(field: &str, raw: &str) -> Result<()> {
    let ok = raw.len() > 4
        && raw.len() <= 64
        && raw.starts_with("GPU-")
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be an NVIDIA GPU UUID (GPU-…)"))
    }
}

fn parse_model(field: &str, raw: &str) -> Result<GpuModel> {
    GpuModel::from_str(raw)
        .or_else(|_| GpuModel::from_nvml_name(raw))
        .map_err(|e| Error::invalid(field, e.to_string()))
}

impl Registration {
    /// Validates a registration, reporting every bad field.
    pub fn parse(hostname: &str, gpus: &[RawGpu]) -> Result<Self> {
        let mut v = Validator::default();
        let hostname = v.check(Hostname::parse("hostname", hostname));
        if gpus.is_empty() || gpus.len() > MAX_GPUS {
            v.check::<()>(Err(Error::invalid(
                "gpus",
                format!("a node has 1 to {MAX_GPUS} GPUs"),
            )));
        }
        let (mut uuids, mut indexes, mut models) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut parsed = Vec::new();
        for (i, g) in gpus.iter().enumerate() {
            let f = |name: &str| format!("gpus[{i}].{name}");
            v.check(check_gpu_uuid(&f("uuid"), &g.uuid));
            if !uuids.insert(g.uuid.as_str()) {
                v.check::<()>(Err(Error::invalid(&f("uuid"), "appears twice")));
            }
            if !(0..MAX_GPUS as i64).contains(&g.index) {
                v.check::<()>(Err(Error::invalid(
                    &f("index"),
                    format!("must be 0 to {}", MAX_GPUS - 1),
                )));
            } else if !indexes.insert(g.index) {
                v.check::<()>(Err(Error::invalid(&f("index"), "appears twice")));
            }
            if !(1..=1 << 24).contains(&g.memory_mib) {
                v.check::<()>(Err(Error::invalid(&f("memory_mib"), "must be positive")));
            }
            if let Some(m) = v.check(parse_model(&f("model"), &g.model)) {
                models.insert(m);
            }
            parsed.push(NewGpu {
                uuid: g.uuid.clone(),
                index: i32::try_from(g.index).unwrap_or_default(),
                memory_mib: g.memory_mib,
                mig_enabled: g.mig_enabled,
            });
        }
        if models.len() > 1 {
            v.check::<()>(Err(Error::invalid(
                "gpus",
                "all GPUs of a node must be of one model",
            )));
        }
        v.finish()?;
        Ok(Self {
            hostname: hostname.ok_or_else(missing)?,
            model: models.into_iter().next().ok_or_else(missing)?,
            gpus: parsed,
        })
    }
}

/// GPU health as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Working.
    Ok,
    /// Failing (XID errors, fell off the bus…).
    Unhealthy,
}

impl Health {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        match raw {
            "ok" => Ok(Health::Ok),
            "unhealthy" => Ok(Health::Unhealthy),
            _ => Err(Error::invalid(field, "must be ok or unhealthy")),
        }
    }
}

/// One MIG instance present on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedInstance {
    /// GPU it is on.
    pub gpu_uuid: String,
    /// NVML profile id.
    pub profile_id: i32,
    /// Start slot.
    pub start: i32,
    /// MIG device UUID (`MIG-…`).
    pub mig_device_uuid: String,
}

/// A status report: instances present and GPU health.
#[derive(Clone, Debug, Default)]
pub struct StatusReport {
    /// Instances present.
    pub instances: Vec<ReportedInstance>,
    /// Health per GPU UUID.
    pub gpus: Vec<(String, Health)>,
}

impl StatusReport {
    /// Validates the shape of a report (which GPUs belong to the node is checked later).
    pub fn parse(instances: Vec<ReportedInstance>, gpus: Vec<(String, String)>) -> Result<Self> {
        let mut v = Validator::default();
        for (i, inst) in instances.iter().enumerate() {
            v.check(check_gpu_uuid(
                &format!("instances[{i}].gpu_uuid"),
                &inst.gpu_uuid,
            ));
            if inst.mig_device_uuid.is_empty() || inst.mig_device_uuid.len() > 64 {
                v.check::<()>(Err(Error::invalid(
                    &format!("instances[{i}].mig_device_uuid"),
                    "must be 1 to 64 characters",
                )));
            }
        }
        let mut health = Vec::new();
        for (i, (uuid, h)) in gpus.into_iter().enumerate() {
            v.check(check_gpu_uuid(&format!("gpus[{i}].uuid"), &uuid));
            if let Some(h) = v.check(Health::parse(&format!("gpus[{i}].health"), &h)) {
                health.push((uuid, h));
            }
        }
        v.finish()?;
        Ok(Self {
            instances,
            gpus: health,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(uuid: &str, index: i64, model: &str) -> RawGpu {
        RawGpu {
            uuid: uuid.into(),
            index,
            model: model.into(),
            memory_mib: 81_559,
            mig_enabled: true,
        }
    }

    #[test]
    fn host_names_follow_rfc_1123() {
        assert!(Hostname::parse("h", "gpu-001.par1.aion.eu").is_ok());
        assert!(Hostname::parse("h", "-bad.example").is_err());
        assert!(Hostname::parse("h", "under_score").is_err());
        assert!(Hostname::parse("h", &"a".repeat(64)).is_err());
        assert!(Hostname::parse("h", "a..b").is_err());
        assert_eq!(Hostname::parse("h", "GPU-1").unwrap().as_str(), "gpu-1");
    }

    #[test]
    fn nvml_product_names_are_accepted_as_models() {
        let reg = Registration::parse("n1", &[gpu("GPU-a", 0, "NVIDIA H100 80GB HBM3")]).unwrap();
        assert_eq!(reg.model, GpuModel::H100_80GB);
    }

    #[test]
    fn mixed_models_duplicate_uuids_and_indexes_are_rejected() {
        let err = Registration::parse(
            "n1",
            &[gpu("GPU-a", 0, "H100-80GB"), gpu("GPU-a", 0, "A100-40GB")],
        )
        .unwrap_err();
        let Error::Validation(fields) = err else {
            panic!("{err}")
        };
        assert!(fields.contains_key("gpus[1].uuid"));
        assert!(fields.contains_key("gpus[1].index"));
        assert!(fields.contains_key("gpus"));
    }
}
