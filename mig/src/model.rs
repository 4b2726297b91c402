//! GPU models and their per-model profile names, as NVIDIA's MIG user guide
//! lists them. The placement geometry is shared and lives in [`crate::profile`].

use crate::error::MigError;
use crate::profile::{GEOMETRY, Geometry, ProfileId, SHAPE_COUNT, Shape};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A MIG-capable GPU model supported by Aion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GpuModel {
    /// A100 40 GB (SXM4 or PCIe).
    #[serde(rename = "A100-40GB")]
    A100_40GB,
    /// A100 80 GB (SXM4 or PCIe).
    #[serde(rename = "A100-80GB")]
    A100_80GB,
    /// H100 80 GB (SXM5 or PCIe).
    #[serde(rename = "H100-80GB")]
    H100_80GB,
    /// H100 94 GB (SXM5, PCIe, NVL).
    #[serde(rename = "H100-94GB")]
    H100_94GB,
    /// H200 141 GB (SXM5 or NVL).
    #[serde(rename = "H200-141GB")]
    H200_141GB,
}

/// Profile names per model, in the order of [`GEOMETRY`] (ids 19, 20, 15, 14, 9, 5, 0).
type NameTable = [&'static str; SHAPE_COUNT];

const A100_40GB_NAMES: NameTable = [
    "1g.5gb",
    "1g.5gb+me",
    "1g.10gb",
    "2g.10gb",
    "3g.20gb",
    "4g.20gb",
    "7g.40gb",
];
const A100_80GB_NAMES: NameTable = [
    "1g.10gb",
    "1g.10gb+me",
    "1g.20gb",
    "2g.20gb",
    "3g.40gb",
    "4g.40gb",
    "7g.80gb",
];
const H100_94GB_NAMES: NameTable = [
    "1g.12gb",
    "1g.12gb+me",
    "1g.24gb",
    "2g.24gb",
    "3g.47gb",
    "4g.47gb",
    "7g.94gb",
];
const H200_141GB_NAMES: NameTable = [
    "1g.18gb",
    "1g.18gb+me",
    "1g.35gb",
    "2g.35gb",
    "3g.71gb",
    "4g.71gb",
    "7g.141gb",
];

/// One row of a model's profile table (what `nvidia-smi mig -lgip` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The model this row belongs to.
    pub model: GpuModel,
    /// The profile shape (index into the shared geometry).
    pub shape: Shape,
    /// The profile name on this model, e.g. `3g.40gb`.
    pub name: &'static str,
}

impl Profile {
    /// The NVML profile id.
    pub fn id(&self) -> ProfileId {
        self.geometry().id
    }
    /// The placement geometry.
    pub fn geometry(&self) -> &'static Geometry {
        self.shape.geometry()
    }
    /// Nominal memory in GB, read from the name (`3g.40gb` → 40).
    pub fn memory_gb(&self) -> u32 {
        let after_dot = self.name.split('.').nth(1).unwrap_or("");
        let digits: String = after_dot.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap_or(0)
    }
    /// Usable memory in MiB as the driver reports it (`nvidia-smi mig -lgip`, GiB
    /// column; NVML's `memorySizeMB`), where a driver's table has been checked:
    /// H100-80GB and H200-141GB. `None` for the other models: use
    /// [`Profile::memory_gb`], the nominal figure in the name.
    pub fn memory_mib(&self) -> Option<u32> {
        // H100 80GB HBM3, `nvidia-smi mig -lgip`: 9.75, 9.75, 19.62, 19.62,
        // 39.50, 39.50, 79.25 GiB (19.62 is 19.625 rounded).
        const H100_80GB_MIB: [u32; 7] = [9_984, 9_984, 20_096, 20_096, 40_448, 40_448, 81_152];
        // NVIDIA H200, driver 580.159.04, read through NVML by `aion agent probe`:
        // 16.00, 16.00, 32.50, 32.50, 69.75, 69.75, 140.00 GiB.
        const H200_141GB_MIB: [u32; 7] = [16_384, 16_384, 33_280, 33_280, 71_424, 71_424, 143_360];
        match self.model {
            GpuModel::H100_80GB => H100_80GB_MIB.get(self.shape.index()).copied(),
            GpuModel::H200_141GB => H200_141GB_MIB.get(self.shape.index()).copied(),
            _ => None,
        }
    }
}

impl GpuModel {
    /// Every supported model.
    pub const ALL: [GpuModel; 5] = [
        GpuModel::A100_40GB,
        GpuModel::A100_80GB,
        GpuModel::H100_80GB,
        GpuModel::H100_94GB,
        GpuModel::H200_141GB,
    ];

    /// The canonical name, e.g. `H100-80GB`.
    pub const fn name(self) -> &'static str {
        match self {
            GpuModel::A100_40GB => "A100-40GB",
            GpuModel::A100_80GB => "A100-80GB",
            GpuModel::H100_80GB => "H100-80GB",
            GpuModel::H100_94GB => "H100-94GB",
            GpuModel::H200_141GB => "H200-141GB",
        }
    }

    fn names(self) -> &'static NameTable {
        match self {
            GpuModel::A100_40GB => &A100_40GB_NAMES,
            // A100-80GB and H100-80GB have the same memory per slice, hence the same names.
            GpuModel::A100_80GB | GpuModel::H100_80GB => &A100_80GB_NAMES,
            GpuModel::H100_94GB => &H100_94GB_NAMES,
            GpuModel::H200_141GB => &H200_141GB_NAMES,
        }
    }

    /// The model's profile table, smallest profile first.
    pub fn profiles(self) -> impl Iterator<Item = Profile> {
        let names = self.names();
        Shape::ALL.into_iter().map(move |shape| Profile {
            model: self,
            shape,
            name: names[shape.index()],
        })
    }

    /// The profile with NVML id `id` on this model.
    pub fn profile(self, id: ProfileId) -> Result<Profile, MigError> {
        self.profiles()
            .find(|p| p.id() == id)
            .ok_or_else(|| self.unknown_profile(&id.to_string()))
    }

    /// Looks a profile up by name (`3g.40gb`, case-insensitive, optional `MIG `
    /// prefix) or by numeric id (`9`).
    pub fn parse_profile(self, text: &str) -> Result<Profile, MigError> {
        let t = text.trim();
        let t = t.strip_prefix("MIG ").unwrap_or(t);
        if let Ok(raw) = t.parse::<u8>() {
            return self.profile(ProfileId::new(raw));
        }
        self.profiles()
            .find(|p| p.name.eq_ignore_ascii_case(t))
            .ok_or_else(|| self.unknown_profile(text))
    }

    fn unknown_profile(self, given: &str) -> MigError {
        let valid: Vec<String> = self
            .profiles()
            .map(|p| format!("{} (id {})", p.name, p.id()))
            .collect();
        MigError::UnknownProfile {
            given: given.to_string(),
            model: self.name().to_string(),
            valid: valid.join(", "),
        }
    }

    /// Maps an NVML product name (`nvmlDeviceGetName`, e.g. `NVIDIA H100 80GB HBM3`,
    /// `NVIDIA A100-SXM4-40GB`, `NVIDIA H200`) to a model.
    pub fn from_nvml_name(product: &str) -> Result<GpuModel, MigError> {
        let p = product.to_ascii_uppercase();
        let has = |needle: &str| p.contains(needle);
        let model = if has("H200") {
            Some(GpuModel::H200_141GB)
        } else if has("H100") && (has("94GB") || has("NVL")) {
            Some(GpuModel::H100_94GB)
        } else if has("H100") {
            Some(GpuModel::H100_80GB)
        } else if has("A100") && has("80GB") {
            Some(GpuModel::A100_80GB)
        } else if has("A100") {
            Some(GpuModel::A100_40GB)
        } else {
            None
        };
        model.ok_or_else(|| unknown_model(product))
    }
}

fn unknown_model(given: &str) -> MigError {
    let valid: Vec<&str> = GpuModel::ALL.iter().map(|m| m.name()).collect();
    MigError::UnknownModel {
        given: given.to_string(),
        valid: valid.join(", "),
    }
}

impl FromStr for GpuModel {
    type Err = MigError;

    /// Parses `H100-80GB` (case-insensitive; `_` or a space may replace the `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().replace(['_', ' '], "-");
        GpuModel::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(&norm))
            .ok_or_else(|| unknown_model(s))
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The geometry table, re-exported for callers that iterate shapes directly.
pub fn geometry_table() -> &'static [Geometry; SHAPE_COUNT] {
    &GEOMETRY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(model: GpuModel) -> Vec<&'static str> {
        model.profiles().map(|p| p.name).collect()
    }

    #[test]
    fn h100_80gb_profiles_have_the_guide_names() {
        let expected = [
            "1g.10gb",
            "1g.10gb+me",
            "1g.20gb",
            "2g.20gb",
            "3g.40gb",
            "4g.40gb",
            "7g.80gb",
        ];
        assert_eq!(names(GpuModel::H100_80GB), expected);
    }

    #[test]
    fn h200_seven_slice_profile_is_7g_141gb_with_id_0() {
        let p = GpuModel::H200_141GB.parse_profile("7g.141gb").unwrap();
        assert_eq!(p.id(), ProfileId::new(0));
        assert_eq!(p.memory_gb(), 141);
    }

    #[test]
    fn a_model_name_parses_case_insensitively() {
        assert_eq!(
            "h100-80gb".parse::<GpuModel>().unwrap(),
            GpuModel::H100_80GB
        );
        assert_eq!(
            "A100_40GB".parse::<GpuModel>().unwrap(),
            GpuModel::A100_40GB
        );
    }

    #[test]
    fn an_unknown_model_error_lists_the_valid_models() {
        let err = "B200".parse::<GpuModel>().unwrap_err().to_string();
        assert!(err.contains("B200") && err.contains("H200-141GB") && err.contains("A100-40GB"));
    }

    #[test]
    fn an_unknown_profile_error_lists_the_model_profiles() {
        let err = GpuModel::A100_40GB
            .parse_profile("1g.10gb+me")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1g.5gb+me (id 20)"), "{err}");
    }

    #[test]
    fn a_profile_parses_by_name_or_by_id() {
        let by_name = GpuModel::H100_94GB.parse_profile("MIG 3G.47GB").unwrap();
        let by_id = GpuModel::H100_94GB.parse_profile("9").unwrap();
        assert_eq!(by_name, by_id);
    }

    #[test]
    fn nvml_product_names_map_to_models() {
        let cases = [
            ("NVIDIA H100 80GB HBM3", GpuModel::H100_80GB),
            ("NVIDIA H100 NVL", GpuModel::H100_94GB),
            ("NVIDIA H200", GpuModel::H200_141GB),
            ("NVIDIA A100-SXM4-40GB", GpuModel::A100_40GB),
            ("NVIDIA A100 80GB PCIe", GpuModel::A100_80GB),
        ];
        for (name, model) in cases {
            assert_eq!(GpuModel::from_nvml_name(name).unwrap(), model, "{name}");
        }
        assert!(GpuModel::from_nvml_name("Tesla T4").is_err());
    }

    #[test]
    fn a_model_serializes_as_its_canonical_name() {
        let json = serde_json::to_string(&GpuModel::H100_94GB).unwrap();
        assert_eq!(json, "\"H100-94GB\"");
    }
}
