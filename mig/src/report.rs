//! Human and machine readable reports of profile tables and configurations,
//! for `aion mig profiles` and `aion mig configs` (the CLI only prints them).

use crate::error::MigError;
use crate::gpu::{GpuState, all_configurations};
use crate::model::{GpuModel, Profile};
use crate::profile::Shape;
use serde::Serialize;
use std::fmt::Write;

/// One row of the profile table (`nvidia-smi mig -lgip` and `-lgipp` merged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRow {
    /// Profile name, e.g. `3g.40gb`.
    pub name: &'static str,
    /// NVML profile id.
    pub id: u8,
    /// NVML profile index (`NVML_GPU_INSTANCE_PROFILE_*`).
    pub nvml_index: u8,
    /// Maximum instances per GPU.
    pub instances_max: u8,
    /// Compute slices (of 7).
    pub compute_slices: u8,
    /// Memory slices (of 8), the placement size.
    pub memory_slices: u8,
    /// Nominal memory in GB, from the profile name (`3g.40gb` → 40).
    pub memory_gb: u32,
    /// Memory in MiB as `nvidia-smi mig -lgip` reports it, where known
    /// (see [`Profile::memory_mib`]).
    pub memory_mib: Option<u32>,
    /// Allowed starts.
    pub starts: Vec<u8>,
    /// Placements as `nvidia-smi mig -lgipp` prints them, e.g. `{0,2,4,6}:2`.
    pub placements: String,
}

impl ProfileRow {
    fn of(p: Profile) -> Self {
        let g = p.geometry();
        let starts: Vec<u8> = g.starts().collect();
        let list: Vec<String> = starts.iter().map(u8::to_string).collect();
        Self {
            name: p.name,
            id: g.id.get(),
            nvml_index: g.nvml_index.get(),
            instances_max: g.max_instances,
            compute_slices: g.compute_slices,
            memory_slices: g.memory_slices,
            memory_gb: p.memory_gb(),
            memory_mib: p.memory_mib(),
            placements: format!("{{{}}}:{}", list.join(","), g.memory_slices),
            starts,
        }
    }
}

/// The profile table of `model`.
pub fn profile_rows(model: GpuModel) -> Vec<ProfileRow> {
    model.profiles().map(ProfileRow::of).collect()
}

/// The profile table as aligned text. `Name GB` is the nominal size in the
/// profile name; `GiB` is what `nvidia-smi mig -lgip` reports, or `-` where
/// the driver figure is not in the table.
pub fn profiles_text(model: GpuModel) -> String {
    let mut out = format!("GPU instance profiles: {model}\n");
    let header = [
        "Name",
        "ID",
        "NVML idx",
        "Max",
        "Compute",
        "Mem slices",
        "Name GB",
        "GiB",
        "Placements",
    ];
    let _ = writeln!(
        out,
        "{:<12} {:>3} {:>8} {:>4} {:>8} {:>10} {:>7} {:>6}  {}",
        header[0],
        header[1],
        header[2],
        header[3],
        header[4],
        header[5],
        header[6],
        header[7],
        header[8]
    );
    for r in profile_rows(model) {
        // Two decimals, as nvidia-smi prints them (19.625 → 19.62).
        let gib = r.memory_mib.map_or("-".to_string(), |m| {
            let hundredths = u64::from(m) * 100 / 1024;
            format!("{}.{:02}", hundredths / 100, hundredths % 100)
        });
        let _ = writeln!(
            out,
            "{:<12} {:>3} {:>8} {:>4} {:>8} {:>10} {:>7} {:>6}  {}",
            r.name,
            r.id,
            r.nvml_index,
            r.instances_max,
            r.compute_slices,
            r.memory_slices,
            r.memory_gb,
            gib,
            r.placements
        );
    }
    out
}

/// The profile table as JSON: `{"model": …, "profiles": [ProfileRow…]}`.
pub fn profiles_json(model: GpuModel) -> serde_json::Value {
    serde_json::json!({ "model": model, "profiles": profile_rows(model) })
}

/// One instance of a configuration, with the model's profile name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigInstance {
    /// Profile name on the model.
    pub profile: &'static str,
    /// NVML profile id.
    pub id: u8,
    /// Start memory slice.
    pub start: u8,
}

/// Parses a comma-separated list of profile names or ids for `model`.
pub fn parse_profiles(model: GpuModel, list: &[String]) -> Result<Vec<Profile>, MigError> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| model.parse_profile(s))
        .collect()
}

/// Every maximal configuration of `model`, each sorted by start.
///
/// With a non-empty `only`, the configurations are those made solely of the
/// listed profiles that are maximal *among them*: no listed profile can be
/// added. (So `--profiles 3g.40gb` answers the layouts a pure-3g fleet can
/// reach, rather than an empty list because a 1g would still fit.)
pub fn maximal_configurations(model: GpuModel, only: &[Profile]) -> Vec<Vec<ConfigInstance>> {
    let allowed: Vec<Shape> = if only.is_empty() {
        Shape::ALL.to_vec()
    } else {
        only.iter().map(|p| p.shape).collect()
    };
    let mut configs: Vec<Vec<ConfigInstance>> = all_configurations()
        .filter(|s| is_maximal_within(*s, &allowed))
        .map(|s| describe(model, s))
        .collect();
    configs.sort_by_key(|c| key(c));
    configs
}

fn key(c: &[ConfigInstance]) -> Vec<(u8, u8)> {
    c.iter().map(|i| (i.start, i.id)).collect()
}

fn is_maximal_within(state: GpuState, allowed: &[Shape]) -> bool {
    let made_of_allowed = state
        .placements()
        .iter()
        .all(|p| Shape::of(p.profile).is_some_and(|s| allowed.contains(&s)));
    made_of_allowed
        && allowed
            .iter()
            .all(|s| state.feasible_starts(s.geometry().id).is_empty())
}

fn describe(model: GpuModel, state: GpuState) -> Vec<ConfigInstance> {
    let mut out: Vec<ConfigInstance> = state
        .placements()
        .into_iter()
        .filter_map(|p| {
            let profile = model.profile(p.profile).ok()?;
            Some(ConfigInstance {
                profile: profile.name,
                id: p.profile.get(),
                start: p.start,
            })
        })
        .collect();
    out.sort_by_key(|i| (i.start, i.id));
    out
}

/// The maximal configurations as text, one per line, with a count.
pub fn configs_text(model: GpuModel, only: &[Profile]) -> String {
    let configs = maximal_configurations(model, only);
    let mut out = String::new();
    for (i, c) in configs.iter().enumerate() {
        let items: Vec<String> = c
            .iter()
            .map(|x| format!("{}@{}", x.profile, x.start))
            .collect();
        let _ = writeln!(out, "{:>4}  {}", i + 1, items.join(" + "));
    }
    let _ = writeln!(out, "{} maximal configurations on {model}", configs.len());
    out
}

/// The maximal configurations as JSON: `{"model", "count", "configurations"}`.
pub fn configs_json(model: GpuModel, only: &[Profile]) -> serde_json::Value {
    let configs = maximal_configurations(model, only);
    serde_json::json!({ "model": model, "count": configs.len(), "configurations": configs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h100_profile_table_prints_lgipp_style_placements() {
        let text = profiles_text(GpuModel::H100_80GB);
        assert!(text.contains("1g.20gb"));
        let line = text.lines().find(|l| l.starts_with("1g.20gb")).unwrap();
        assert!(
            line.contains("{0,2,4,6}:2") && line.contains(" 15 "),
            "{line}"
        );
    }

    #[test]
    fn the_h100_table_shows_the_driver_gib_and_others_a_dash() {
        let text = profiles_text(GpuModel::H100_80GB);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(line("1g.10gb ")[7], "9.75");
        assert_eq!(line("1g.20gb")[7], "19.62");
        assert_eq!(line("7g.80gb")[7], "79.25");
        let a100 = profiles_text(GpuModel::A100_40GB);
        let row = a100.lines().find(|l| l.starts_with("3g.20gb")).unwrap();
        assert_eq!(row.split_whitespace().nth(7), Some("-"));
    }

    #[test]
    fn profile_json_carries_id_index_and_max() {
        let json = profiles_json(GpuModel::A100_40GB);
        let rows = json["profiles"].as_array().unwrap();
        let me = rows.iter().find(|r| r["name"] == "1g.5gb+me").unwrap();
        assert_eq!(
            (
                me["id"].as_u64(),
                me["nvml_index"].as_u64(),
                me["instances_max"].as_u64()
            ),
            (Some(20), Some(7), Some(1))
        );
    }

    #[test]
    fn only_3g_profiles_give_one_configuration_of_two_3g() {
        let only = parse_profiles(GpuModel::H100_80GB, &["3g.40gb".to_string()]).unwrap();
        let configs = maximal_configurations(GpuModel::H100_80GB, &only);
        assert_eq!(configs.len(), 1);
        assert_eq!(key(&configs[0]), vec![(0, 9), (4, 9)]);
    }

    #[test]
    fn the_configs_text_ends_with_the_count() {
        let only = parse_profiles(GpuModel::H200_141GB, &["4g.71gb,3g.71gb".to_string()]).unwrap();
        let text = configs_text(GpuModel::H200_141GB, &only);
        assert!(text.contains("4g.71gb@0 + 3g.71gb@4"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("maximal configurations on H200-141GB")
        );
    }

    #[test]
    fn an_unknown_profile_in_the_filter_is_an_error() {
        assert!(parse_profiles(GpuModel::H100_80GB, &["1g.5gb".to_string()]).is_err());
    }

    #[test]
    fn configs_json_count_matches_the_list() {
        let json = configs_json(GpuModel::A100_80GB, &[]);
        assert_eq!(
            json["count"].as_u64(),
            Some(json["configurations"].as_array().unwrap().len() as u64)
        );
    }
}
