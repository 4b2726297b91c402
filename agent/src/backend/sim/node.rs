//! The simulated node's state behind the [`super::SimBackend`] mutex: GPUs with their
//! `aion-mig` state and MIG device UUIDs, the process table and the injected faults.

use super::{Fault, SimConfig, power_range_mw, product};
use crate::backend::os_process::OsProcess;
use crate::backend::{GpuInfo, GpuSample, InstanceInfo, InstanceSample, ProcessInfo, StopSignal};
use crate::{Error, Result};
use aion_mig::{GpuModel, GpuState, ProfileId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain separators of the seeded UUIDs, so a GPU and a MIG device never share one.
const GPU_TAG: u64 = 0x0047_5055; // "GPU"
const MIG_TAG: u64 = 0x004d_4947; // "MIG"

#[derive(Debug)]
pub(super) struct Node {
    model: GpuModel,
    seed: u64,
    gpus: Vec<SimGpu>,
    processes: BTreeMap<u32, Tracked>,
    pub(super) faults: Vec<Fault>,
    /// Instances created so far; part of each MIG device UUID, as a re-created
    /// instance gets a new UUID on real GPUs.
    created: u64,
}

#[derive(Debug)]
struct SimGpu {
    uuid: String,
    mig_enabled: bool,
    state: GpuState,
    /// MIG device UUID of each placed instance.
    instances: BTreeMap<(ProfileId, u8), String>,
}

#[derive(Debug)]
struct Tracked {
    info: ProcessInfo,
    /// The OS process behind it; `None` for a virtual process.
    os: Option<OsProcess>,
}

impl Node {
    pub(super) fn new(config: &SimConfig) -> Self {
        let gpus = (0..config.gpus as u64)
            .map(|index| SimGpu {
                uuid: format!("GPU-{}", seeded_uuid(&[config.seed, GPU_TAG, index])),
                mig_enabled: config.mig_enabled,
                state: GpuState::empty(),
                instances: BTreeMap::new(),
            })
            .collect();
        Self {
            model: config.model,
            seed: config.seed,
            gpus,
            processes: BTreeMap::new(),
            faults: Vec::new(),
            created: 0,
        }
    }

    fn has_fault(&self, fault: &Fault) -> bool {
        self.faults.contains(fault)
    }

    fn index_of(&self, gpu_uuid: &str) -> Result<usize> {
        self.gpus
            .iter()
            .position(|g| g.uuid == gpu_uuid)
            .ok_or_else(|| Error::UnknownGpu(gpu_uuid.to_string()))
    }

    pub(super) fn inventory(&self) -> Result<Vec<GpuInfo>> {
        if self.has_fault(&Fault::InventoryFails) {
            return Err(injected("reading the GPU inventory failed"));
        }
        let (product_name, memory_mib) = product(self.model);
        let info = |(index, gpu): (usize, &SimGpu)| GpuInfo {
            uuid: gpu.uuid.clone(),
            index: index as u32,
            model: self.model,
            product_name: product_name.to_string(),
            memory_mib,
            mig_enabled: gpu.mig_enabled,
        };
        Ok(self.gpus.iter().enumerate().map(info).collect())
    }

    pub(super) fn instances(&self) -> Result<Vec<InstanceInfo>> {
        if self.has_fault(&Fault::InventoryFails) {
            return Err(injected("listing the MIG instances failed"));
        }
        let mut all = Vec::new();
        for gpu in &self.gpus {
            for (&(profile, start), uuid) in &gpu.instances {
                all.push(instance_info(gpu, profile, start, uuid));
            }
        }
        Ok(all)
    }

    pub(super) fn create(
        &mut self,
        gpu_uuid: &str,
        profile: ProfileId,
        start: u8,
    ) -> Result<InstanceInfo> {
        let index = self.index_of(gpu_uuid)?;
        if self.has_fault(&Fault::CreateFails(gpu_uuid.to_string())) {
            return Err(injected(&format!(
                "creating a MIG instance on {gpu_uuid} failed"
            )));
        }
        self.model.profile(profile)?;
        let gpu = &mut self.gpus[index];
        if !gpu.mig_enabled {
            return Err(Error::Backend(format!(
                "MIG mode is disabled on GPU {gpu_uuid} (index {index}); \
                 an operator must enable it before instances can be created"
            )));
        }
        gpu.state.place(profile, start)?;
        self.created += 1;
        let raw = [self.seed, MIG_TAG, index as u64];
        let more = [u64::from(profile.get()), u64::from(start), self.created];
        let uuid = format!("MIG-{}", seeded_uuid(&[&raw[..], &more[..]].concat()));
        gpu.instances.insert((profile, start), uuid.clone());
        Ok(instance_info(gpu, profile, start, &uuid))
    }

    pub(super) fn destroy(&mut self, gpu_uuid: &str, profile: ProfileId, start: u8) -> Result<()> {
        let index = self.index_of(gpu_uuid)?;
        let Some(uuid) = self.gpus[index].instances.get(&(profile, start)).cloned() else {
            return Err(Error::UnknownInstance {
                gpu: gpu_uuid.to_string(),
                profile: profile.get(),
                start,
            });
        };
        self.prune();
        if self
            .processes
            .values()
            .any(|p| p.info.mig_device_uuid == uuid)
        {
            return Err(Error::Busy(uuid));
        }
        if self.has_fault(&Fault::DestroyFails(gpu_uuid.to_string())) {
            return Err(injected(&format!("destroying {uuid} failed")));
        }
        let gpu = &mut self.gpus[index];
        gpu.state.remove(profile, start)?;
        gpu.instances.remove(&(profile, start));
        Ok(())
    }

    pub(super) fn set_mig_enabled(&mut self, gpu_uuid: &str, enabled: bool) -> Result<()> {
        let index = self.index_of(gpu_uuid)?;
        let gpu = &mut self.gpus[index];
        if !gpu.instances.is_empty() {
            return Err(Error::Backend(format!(
                "GPU {gpu_uuid} still has MIG instances; destroy them before changing MIG mode"
            )));
        }
        gpu.mig_enabled = enabled;
        Ok(())
    }

    fn has_device(&self, mig_device_uuid: &str) -> bool {
        self.gpus
            .iter()
            .any(|g| g.instances.values().any(|u| u == mig_device_uuid))
    }

    pub(super) fn attach(
        &mut self,
        mig_device_uuid: &str,
        pid: u32,
        used_memory_mib: u64,
        virtual_process: bool,
    ) -> Result<()> {
        if !self.has_device(mig_device_uuid) {
            return Err(Error::Backend(format!(
                "no MIG device {mig_device_uuid} on this node"
            )));
        }
        let os = if virtual_process {
            None
        } else {
            let found = OsProcess::find(pid)
                .ok_or_else(|| Error::Backend(format!("process {pid} is not running")))?;
            Some(found)
        };
        let info = ProcessInfo {
            pid,
            mig_device_uuid: mig_device_uuid.to_string(),
            used_memory_mib,
        };
        self.processes.insert(pid, Tracked { info, os });
        Ok(())
    }

    /// Forgets processes that have exited.
    fn prune(&mut self) {
        self.processes
            .retain(|_, p| p.os.is_none_or(|os| os.is_alive()));
    }

    pub(super) fn processes(&mut self) -> Vec<ProcessInfo> {
        self.prune();
        self.processes.values().map(|p| p.info.clone()).collect()
    }

    pub(super) fn signal(&mut self, pid: u32, signal: StopSignal) -> Result<()> {
        let Some(tracked) = self.processes.get(&pid) else {
            return Err(Error::Backend(format!(
                "process {pid} is not on a MIG device of this node; refusing to signal it"
            )));
        };
        let gone = match tracked.os {
            // A virtual process obeys at once.
            None => true,
            Some(os) => !os.signal(signal)? || signal == StopSignal::Kill,
        };
        if gone {
            self.processes.remove(&pid);
        }
        Ok(())
    }

    pub(super) fn sample(&mut self) -> Result<Vec<GpuSample>> {
        if self.has_fault(&Fault::SampleFails) {
            return Err(injected("sampling failed"));
        }
        self.prune();
        let (idle_mw, max_mw) = power_range_mw(self.model);
        let mut samples = Vec::new();
        for gpu in &self.gpus {
            let mut power_mw = idle_mw;
            let mut instances = Vec::new();
            for (&(profile, _), uuid) in &gpu.instances {
                let on_it = self
                    .processes
                    .values()
                    .filter(|p| &p.info.mig_device_uuid == uuid);
                let (count, memory_used_mib) =
                    on_it.fold((0, 0), |(n, m), p| (n + 1, m + p.info.used_memory_mib));
                let util = if count == 0 {
                    0
                } else {
                    busy_utilisation_pct(uuid)
                };
                let slices = self
                    .model
                    .profile(profile)
                    .map_or(0, |p| p.geometry().compute_slices);
                power_mw += (max_mw - idle_mw) * u64::from(slices) * util / (7 * 100);
                instances.push(InstanceSample {
                    mig_device_uuid: uuid.clone(),
                    sm_utilisation_pct: Some(util as f64),
                    memory_used_mib,
                });
            }
            samples.push(GpuSample {
                gpu_uuid: gpu.uuid.clone(),
                power_mw,
                instances,
                healthy: !self.has_fault(&Fault::Unhealthy(gpu.uuid.clone())),
            });
        }
        Ok(samples)
    }
}

/// What a persistent simulator keeps in its state file: the GPUs with their instances
/// and MIG device UUIDs, the process table and the creation counter. Faults are not kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Saved {
    model: GpuModel,
    seed: u64,
    created: u64,
    gpus: Vec<SavedGpu>,
    processes: Vec<SavedProcess>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SavedGpu {
    uuid: String,
    mig_enabled: bool,
    instances: Vec<SavedInstance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SavedInstance {
    profile: ProfileId,
    start: u8,
    mig_device_uuid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SavedProcess {
    pid: u32,
    mig_device_uuid: String,
    used_memory_mib: u64,
    /// `None` for a virtual process.
    os: Option<SavedOs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SavedOs {
    start_ticks: Option<u64>,
}

impl Node {
    /// The state to save.
    pub(super) fn snapshot(&self) -> Saved {
        Saved {
            model: self.model,
            seed: self.seed,
            created: self.created,
            gpus: self
                .gpus
                .iter()
                .map(|g| SavedGpu {
                    uuid: g.uuid.clone(),
                    mig_enabled: g.mig_enabled,
                    instances: g
                        .instances
                        .iter()
                        .map(|(&(profile, start), uuid)| SavedInstance {
                            profile,
                            start,
                            mig_device_uuid: uuid.clone(),
                        })
                        .collect(),
                })
                .collect(),
            processes: self
                .processes
                .values()
                .map(|p| SavedProcess {
                    pid: p.info.pid,
                    mig_device_uuid: p.info.mig_device_uuid.clone(),
                    used_memory_mib: p.info.used_memory_mib,
                    os: p.os.map(|os| SavedOs {
                        start_ticks: os.start_ticks,
                    }),
                })
                .collect(),
        }
    }

    /// A node as `config` describes it, in the state `saved` (from the same
    /// configuration: same model, seed and number of GPUs). Each instance is placed again
    /// under the MIG rules; OS processes that have exited since (or whose pid now names
    /// another process) are dropped.
    pub(super) fn restore(config: &SimConfig, saved: Saved) -> Result<Self> {
        let mut node = Self::new(config);
        let uuids: Vec<&str> = node.gpus.iter().map(|g| g.uuid.as_str()).collect();
        let saved_uuids: Vec<&str> = saved.gpus.iter().map(|g| g.uuid.as_str()).collect();
        if saved.model != config.model || saved.seed != config.seed || uuids != saved_uuids {
            return Err(Error::Backend(format!(
                "the saved simulator state is of another node ({} GPUs of {}, seed {}); \
                 this one has {} GPUs of {}, seed {}",
                saved.gpus.len(),
                saved.model,
                saved.seed,
                config.gpus,
                config.model,
                config.seed
            )));
        }
        node.created = saved.created;
        for (gpu, s) in node.gpus.iter_mut().zip(saved.gpus) {
            gpu.mig_enabled = s.mig_enabled;
            for i in s.instances {
                gpu.state.place(i.profile, i.start)?;
                gpu.instances
                    .insert((i.profile, i.start), i.mig_device_uuid);
            }
        }
        for p in saved.processes {
            let os = match p.os {
                None => None,
                Some(s) => {
                    let os = OsProcess {
                        pid: p.pid,
                        start_ticks: s.start_ticks,
                    };
                    if !os.is_alive() {
                        continue;
                    }
                    Some(os)
                }
            };
            if !node.has_device(&p.mig_device_uuid) {
                continue;
            }
            let info = ProcessInfo {
                pid: p.pid,
                mig_device_uuid: p.mig_device_uuid,
                used_memory_mib: p.used_memory_mib,
            };
            node.processes.insert(p.pid, Tracked { info, os });
        }
        Ok(node)
    }
}

fn instance_info(gpu: &SimGpu, profile: ProfileId, start: u8, uuid: &str) -> InstanceInfo {
    InstanceInfo {
        gpu_uuid: gpu.uuid.clone(),
        profile,
        start,
        mig_device_uuid: uuid.to_string(),
    }
}

fn injected(what: &str) -> Error {
    Error::Backend(format!("injected fault: {what}"))
}

/// SM utilisation of a MIG device with processes on it: 40–95 %, fixed per device so
/// samples are reproducible.
fn busy_utilisation_pct(mig_device_uuid: &str) -> u64 {
    let h = mig_device_uuid
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    40 + splitmix64(h) % 56
}

/// SplitMix64: a fixed, well-mixing step, so UUIDs never change with the Rust version
/// (as `DefaultHasher` may).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID derived from `parts` only.
pub(super) fn seeded_uuid(parts: &[u64]) -> uuid::Uuid {
    let hi = parts.iter().fold(0, |h, &p| splitmix64(h ^ p));
    let lo = splitmix64(hi ^ 0x5851_f42d_4c95_7f2d);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
