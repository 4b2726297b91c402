//! `aion agent probe`: what the agent sees on this node, read only. The GPUs it would
//! register, the MIG instances present, the processes on MIG devices, one sample, and,
//! with NVML, whether the driver's MIG tables are the ones the scheduler places with.
//! Operators run it when they bring a node up, before it gets a join token.

use crate::Result;
use crate::backend::nvml::{DriverTable, table_differences};
use crate::backend::{GpuBackend, GpuInfo, GpuSample, InstanceInfo, ProcessInfo};
use serde::Serialize;
use std::fmt::Write as _;

/// The whole probe, as printed (text or JSON).
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    /// Backend name (`nvml`, `sim`).
    pub backend: &'static str,
    /// GPUs of a model Aion supports, as the agent would register them.
    pub gpus: Vec<GpuInfo>,
    /// MIG instances present.
    pub instances: Vec<InstanceInfo>,
    /// Processes on MIG devices.
    pub processes: Vec<ProcessInfo>,
    /// One sample per GPU.
    pub samples: Vec<GpuSample>,
    /// The driver's MIG tables checked against Aion's (NVML only).
    pub driver_tables: Vec<CheckedTable>,
    /// Things that keep slices off a GPU but are the operator's choice (MIG disabled).
    pub warnings: Vec<String>,
    /// Things that must be fixed before the node joins; the probe exits non-zero.
    pub problems: Vec<String>,
}

/// A driver table with its differences from Aion's.
#[derive(Debug, Serialize)]
pub struct CheckedTable {
    /// The table as the driver gave it.
    #[serde(flatten)]
    pub table: DriverTable,
    /// Where it differs from Aion's (empty: they agree).
    pub differences: Vec<String>,
}

impl ProbeReport {
    /// Reads everything from `backend`; `driver_tables` are NVML's (none for `sim`).
    pub fn collect(
        backend_name: &'static str,
        backend: &dyn GpuBackend,
        driver_tables: Vec<DriverTable>,
    ) -> Result<Self> {
        let gpus = backend.inventory()?;
        let instances = backend.instances()?;
        let processes = backend.processes()?;
        let samples = backend.sample()?;
        let driver_tables: Vec<CheckedTable> = driver_tables
            .into_iter()
            .map(|table| {
                let differences = if table.unreadable.is_some() {
                    Vec::new()
                } else {
                    table_differences(table.model, &table.profiles)
                };
                CheckedTable { table, differences }
            })
            .collect();
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        if gpus.is_empty() {
            problems.push("no GPU of a model with MIG support in Aion on this node".to_owned());
        }
        for gpu in gpus.iter().filter(|g| !g.mig_enabled) {
            warnings.push(format!(
                "{}: MIG mode is disabled; no slice is placed on it until an operator enables it",
                gpu.uuid
            ));
        }
        for checked in &driver_tables {
            for d in &checked.differences {
                problems.push(format!("{}: {d}", checked.table.gpu_uuid));
            }
        }
        Ok(Self {
            backend: backend_name,
            gpus,
            instances,
            processes,
            samples,
            driver_tables,
            warnings,
            problems,
        })
    }

    /// The report for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "backend: {}", self.backend)?;
        writeln!(out, "GPUs: {}", self.gpus.len())?;
        for gpu in &self.gpus {
            let sample = self.samples.iter().find(|s| s.gpu_uuid == gpu.uuid);
            writeln!(
                out,
                "  {} {} {} ({}), {} MiB, MIG {}{}",
                gpu.index,
                gpu.uuid,
                gpu.model,
                gpu.product_name,
                gpu.memory_mib,
                if gpu.mig_enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                match sample {
                    Some(s) => format!(
                        ", {:.1} W, {}",
                        s.power_mw as f64 / 1000.0,
                        if s.healthy { "healthy" } else { "UNHEALTHY" }
                    ),
                    None => String::new(),
                }
            )?;
        }
        writeln!(out, "MIG instances: {}", self.instances.len())?;
        for i in &self.instances {
            let device = if i.mig_device_uuid.is_empty() {
                "no compute instance"
            } else {
                &i.mig_device_uuid
            };
            writeln!(
                out,
                "  {} profile {} at slice {}: {device}",
                i.gpu_uuid, i.profile, i.start
            )?;
        }
        writeln!(out, "processes on MIG devices: {}", self.processes.len())?;
        for p in &self.processes {
            writeln!(
                out,
                "  pid {} on {} ({} MiB)",
                p.pid, p.mig_device_uuid, p.used_memory_mib
            )?;
        }
        if !self.driver_tables.is_empty() {
            writeln!(out, "driver MIG tables:")?;
        }
        for checked in &self.driver_tables {
            let t = &checked.table;
            match &t.unreadable {
                Some(why) => writeln!(out, "  {}: not read ({why})", t.gpu_uuid)?,
                None if checked.differences.is_empty() => writeln!(
                    out,
                    "  {}: {} profiles; Aion's {} table agrees",
                    t.gpu_uuid,
                    t.profiles.len(),
                    t.model
                )?,
                None => writeln!(
                    out,
                    "  {}: {} profiles; {} differences from Aion's {} table",
                    t.gpu_uuid,
                    t.profiles.len(),
                    checked.differences.len(),
                    t.model
                )?,
            }
            for p in &t.profiles {
                let starts: Vec<String> = p
                    .placements
                    .iter()
                    .map(|(s, n)| format!("{s}:{n}"))
                    .collect();
                writeln!(
                    out,
                    "    index {} id {}: {} compute slices, {} instances, {} MiB, placements {}",
                    p.index,
                    p.id,
                    p.compute_slices,
                    p.max_instances,
                    p.memory_mib,
                    starts.join(" ")
                )?;
            }
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        for p in &self.problems {
            writeln!(out, "problem: {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nvml::DriverProfile;
    use crate::backend::sim::{SimBackend, SimConfig};
    use aion_mig::{GpuModel, ProfileId};

    fn sim(mig_enabled: bool) -> SimBackend {
        SimBackend::new(SimConfig {
            model: GpuModel::H100_80GB,
            gpus: 2,
            seed: 7,
            mig_enabled,
        })
    }

    #[test]
    fn a_simulated_node_is_reported_with_its_instances_and_no_problem() {
        let node = sim(true);
        let gpu = node.inventory().unwrap()[1].uuid.clone();
        node.create_instance(&gpu, ProfileId::new(9), 4).unwrap();
        let report = ProbeReport::collect("sim", &node, Vec::new()).unwrap();
        assert_eq!(report.gpus.len(), 2);
        assert_eq!(report.instances.len(), 1);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let text = report.to_text();
        assert!(
            text.contains(&format!("{gpu} profile 9 at slice 4: MIG-")),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["instances"][0]["start"], 4);
    }

    #[test]
    fn mig_disabled_is_a_warning_and_a_differing_driver_table_a_problem() {
        let node = sim(false);
        let gpus = node.inventory().unwrap();
        let table = DriverTable {
            gpu_uuid: gpus[0].uuid.clone(),
            model: GpuModel::H100_80GB,
            profiles: vec![DriverProfile {
                index: 0,
                id: 19,
                compute_slices: 1,
                max_instances: 7,
                memory_mib: 9_984,
                placements: (0..7).map(|s| (s, 1)).collect(),
            }],
            unreadable: None,
        };
        let unread = DriverTable {
            gpu_uuid: gpus[1].uuid.clone(),
            model: GpuModel::H100_80GB,
            profiles: Vec::new(),
            unreadable: Some("MIG mode is disabled".to_owned()),
        };
        let report = ProbeReport::collect("nvml", &node, vec![table, unread]).unwrap();
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        // Six of the seven profiles are missing from the first table; the unreadable
        // one is not compared.
        assert_eq!(report.problems.len(), 6, "{:?}", report.problems);
        assert!(report.problems[0].contains("the driver does not offer profile index 7"));
        let text = report.to_text();
        assert!(text.contains("not read (MIG mode is disabled)"), "{text}");
        assert!(
            text.contains("6 differences from Aion's H100-80GB table"),
            "{text}"
        );
    }
}
