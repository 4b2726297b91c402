//! CDI (Container Device Interface) specs, one per live lease, so container runtimes
//! (podman, containerd, CRI-O, Docker with CDI) attach exactly that lease's slice:
//! `--device aion.eu/mig=<lease id>`.
//!
//! Each spec is written atomically (temporary file, then rename) in the configured
//! directory (`/etc/cdi`), and the specs of leases that ended are removed. Like the
//! specs `nvidia-ctk cdi generate` writes for MIG devices, a device names its parent
//! GPU's node and sets the visible devices; the control nodes are common to the spec.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// CDI version of the specs written.
pub const CDI_VERSION: &str = "0.6.0";
/// Kind (`vendor/class`) of the devices.
pub const CDI_KIND: &str = "aion.eu/mig";
/// File-name prefix of the specs this agent owns; other files are never touched.
const FILE_PREFIX: &str = "aion.eu-mig_";

/// One MIG device of a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigDevice {
    /// MIG device UUID, `MIG-…`.
    pub uuid: String,
    /// Index of the parent GPU (its `/dev/nvidia<index>` node).
    pub gpu_index: u32,
}

/// The CDI spec of one lease.
pub fn spec(lease_id: Uuid, devices: &[MigDevice]) -> Value {
    let visible =
        crate::exec::visible_devices(&devices.iter().map(|d| d.uuid.clone()).collect::<Vec<_>>());
    let mut gpu_nodes: Vec<u32> = devices.iter().map(|d| d.gpu_index).collect();
    gpu_nodes.sort_unstable();
    gpu_nodes.dedup();
    let nodes: Vec<Value> = gpu_nodes
        .iter()
        .map(|i| json!({"path": format!("/dev/nvidia{i}")}))
        .collect();
    json!({
        "cdiVersion": CDI_VERSION,
        "kind": CDI_KIND,
        "devices": [{
            "name": lease_id.to_string(),
            "containerEdits": {
                "env": [
                    format!("CUDA_VISIBLE_DEVICES={visible}"),
                    format!("NVIDIA_VISIBLE_DEVICES={visible}"),
                    format!("AION_LEASE_ID={lease_id}"),
                ],
                "deviceNodes": nodes,
            },
        }],
        "containerEdits": {
            "deviceNodes": [
                {"path": "/dev/nvidiactl"},
                {"path": "/dev/nvidia-uvm"},
                {"path": "/dev/nvidia-uvm-tools"},
            ],
        },
    })
}

/// Path of a lease's spec in `dir`.
pub fn spec_path(dir: &Path, lease_id: Uuid) -> PathBuf {
    dir.join(format!("{FILE_PREFIX}{lease_id}.json"))
}

/// Makes `dir` hold exactly one spec per lease of `leases`: writes new or changed specs
/// atomically and removes this agent's specs of other leases.
pub fn sync(dir: &Path, leases: &BTreeMap<Uuid, Vec<MigDevice>>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (lease, devices) in leases {
        let path = spec_path(dir, *lease);
        let bytes =
            serde_json::to_vec_pretty(&spec(*lease, devices)).map_err(std::io::Error::other)?;
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            continue;
        }
        write_atomic(&path, &bytes)?;
        tracing::info!(lease = %lease, file = %path.display(), "CDI spec written");
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(id) = name
            .strip_prefix(FILE_PREFIX)
            .and_then(|rest| rest.strip_suffix(".json"))
        else {
            continue;
        };
        let ended = id.parse::<Uuid>().is_ok_and(|id| !leases.contains_key(&id));
        if ended {
            std::fs::remove_file(&path)?;
            tracing::info!(file = %path.display(), "CDI spec of an ended lease removed");
        }
    }
    Ok(())
}

/// Writes through a temporary file in the same directory and a rename, so a runtime
/// never reads half a spec (the temporary name does not end in `.json`, so it is never
/// read as a spec).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(uuid: &str, gpu_index: u32) -> MigDevice {
        MigDevice {
            uuid: uuid.into(),
            gpu_index,
        }
    }

    #[test]
    fn a_spec_names_the_lease_and_sets_its_visible_devices() {
        let lease = Uuid::new_v4();
        let s = spec(lease, &[device("MIG-x", 3), device("MIG-y", 3)]);
        assert_eq!(s["cdiVersion"], "0.6.0");
        assert_eq!(s["kind"], "aion.eu/mig");
        let dev = &s["devices"][0];
        assert_eq!(dev["name"], lease.to_string());
        let env = dev["containerEdits"]["env"].as_array().unwrap();
        assert!(env.contains(&json!("CUDA_VISIBLE_DEVICES=MIG-x,MIG-y")));
        assert!(env.contains(&json!("NVIDIA_VISIBLE_DEVICES=MIG-x,MIG-y")));
        assert_eq!(
            dev["containerEdits"]["deviceNodes"],
            json!([{"path": "/dev/nvidia3"}])
        );
        assert_eq!(
            s["containerEdits"]["deviceNodes"][0]["path"],
            "/dev/nvidiactl"
        );
    }

    #[test]
    fn sync_writes_live_leases_and_removes_ended_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("nvidia.yaml");
        std::fs::write(&foreign, "kind: nvidia.com/gpu\n").unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut live =
            BTreeMap::from([(a, vec![device("MIG-a", 0)]), (b, vec![device("MIG-b", 1)])]);
        sync(dir.path(), &live).unwrap();
        let written: Value =
            serde_json::from_slice(&std::fs::read(spec_path(dir.path(), a)).unwrap()).unwrap();
        assert_eq!(written, spec(a, &[device("MIG-a", 0)]));
        assert!(spec_path(dir.path(), b).exists());

        live.remove(&a);
        sync(dir.path(), &live).unwrap();
        assert!(!spec_path(dir.path(), a).exists());
        assert!(spec_path(dir.path(), b).exists());
        assert!(foreign.exists(), "specs of other vendors are left alone");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
