//! The simulated GPU backend: it follows the `aion-mig` rules exactly, tracks real
//! OS processes, signals only what it tracks, and is deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aion_agent::Error;
use aion_agent::backend::sim::{Fault, SimBackend, SimConfig, product};
use aion_agent::backend::{GpuBackend, StopSignal};
use aion_mig::{GpuModel, GpuState, MigError, Placement, ProfileId, maximal_configurations};
use proptest::prelude::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

const P_1G: ProfileId = ProfileId::new(19);
const P_1G_ME: ProfileId = ProfileId::new(20);
const P_3G: ProfileId = ProfileId::new(9);
const P_4G: ProfileId = ProfileId::new(5);
const P_7G: ProfileId = ProfileId::new(0);

fn sim(gpus: usize, seed: u64) -> SimBackend {
    SimBackend::new(SimConfig {
        model: GpuModel::H100_80GB,
        gpus,
        seed,
        mig_enabled: true,
    })
}

fn gpu_uuids(backend: &SimBackend) -> Vec<String> {
    let inventory = backend.inventory().unwrap();
    inventory.into_iter().map(|g| g.uuid).collect()
}

/// A `sleep` child that is killed and reaped when the test ends, even on failure.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Self {
        Self(Command::new("sleep").arg("30").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn every_maximal_h100_configuration_can_be_built_and_then_refuses_any_more() {
    let profiles: Vec<ProfileId> = GpuModel::H100_80GB.profiles().map(|p| p.id()).collect();
    for config in maximal_configurations() {
        let backend = sim(1, 1);
        let gpu = &gpu_uuids(&backend)[0];
        // Largest first, the way an operator would lay a GPU out.
        for p in config.placements().iter().rev() {
            backend.create_instance(gpu, p.profile, p.start).unwrap();
        }
        let mut built: Vec<Placement> = (backend.instances().unwrap().iter())
            .map(|i| Placement {
                profile: i.profile,
                start: i.start,
            })
            .collect();
        built.sort();
        let mut expected = config.placements();
        expected.sort();
        assert_eq!(built, expected);
        for &profile in &profiles {
            for start in 0..8 {
                let refused = backend.create_instance(gpu, profile, start);
                assert!(
                    matches!(refused, Err(Error::Placement(_))),
                    "{config:?} + {profile}@{start}"
                );
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create(usize, ProfileId, u8),
    Destroy(usize, ProfileId, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let ids = prop::sample::select(vec![0u8, 5, 9, 14, 15, 19, 20, 1]);
    (any::<bool>(), 0..2usize, ids, 0..9u8).prop_map(|(create, gpu, id, start)| {
        let profile = ProfileId::new(id);
        if create {
            Op::Create(gpu, profile, start)
        } else {
            Op::Destroy(gpu, profile, start)
        }
    })
}

proptest! {
    #[test]
    fn random_creates_and_destroys_agree_with_the_mig_rules(ops in prop::collection::vec(op(), 1..60)) {
        let backend = sim(2, 3);
        let gpus = gpu_uuids(&backend);
        let mut model = [GpuState::empty(); 2];
        for op in ops {
            match op {
                Op::Create(g, profile, start) => {
                    let expected = model[g].place(profile, start);
                    match (backend.create_instance(&gpus[g], profile, start), expected) {
                        (Ok(info), Ok(())) => prop_assert_eq!((info.profile, info.start), (profile, start)),
                        (Err(Error::Placement(got)), Err(MigError::UnknownProfile { .. })) => {
                            prop_assert!(matches!(got, MigError::UnknownProfile { .. }), "{:?}", got);
                        }
                        (Err(Error::Placement(got)), Err(want)) => prop_assert_eq!(got, want),
                        (got, want) => prop_assert!(false, "sim {got:?}, rules {want:?}"),
                    }
                }
                Op::Destroy(g, profile, start) => {
                    let expected = model[g].remove(profile, start).is_ok();
                    let got = backend.destroy_instance(&gpus[g], profile, start);
                    prop_assert_eq!(got.is_ok(), expected, "{:?}", got);
                }
            }
        }
        for (g, state) in model.iter().enumerate() {
            let mut got: Vec<Placement> = (backend.instances().unwrap().iter())
                .filter(|i| i.gpu_uuid == gpus[g])
                .map(|i| Placement { profile: i.profile, start: i.start })
                .collect();
            got.sort();
            let mut want = state.placements();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn invalid_placements_are_refused_with_the_rule_they_break() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let err = |r| match r {
        Err(Error::Placement(e)) => e,
        other => panic!("expected a placement error, got {other:?}"),
    };
    let bad_start = err(backend.create_instance(gpu, P_3G, 2));
    assert!(matches!(bad_start, MigError::BadStart { .. }));
    backend.create_instance(gpu, P_4G, 0).unwrap();
    let overlap = err(backend.create_instance(gpu, P_1G, 3));
    assert!(matches!(overlap, MigError::Overlap { .. }));
    backend.create_instance(gpu, P_1G_ME, 4).unwrap();
    let count = err(backend.create_instance(gpu, P_1G_ME, 5));
    assert!(matches!(count, MigError::CountLimit { .. }));
    let unknown = err(backend.create_instance(gpu, ProfileId::new(1), 0));
    assert!(matches!(unknown, MigError::UnknownProfile { .. }));
}

#[test]
fn creating_on_a_gpu_with_mig_disabled_is_refused_clearly() {
    let backend = SimBackend::new(SimConfig {
        model: GpuModel::A100_40GB,
        gpus: 1,
        seed: 1,
        mig_enabled: false,
    });
    let gpu = &gpu_uuids(&backend)[0];
    assert!(!backend.inventory().unwrap()[0].mig_enabled);
    let err = backend
        .create_instance(gpu, P_7G, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MIG mode is disabled"), "{err}");
    backend.set_mig_enabled(gpu, true).unwrap();
    backend.create_instance(gpu, P_7G, 0).unwrap();
    assert!(backend.set_mig_enabled(gpu, false).is_err());
}

#[test]
fn unknown_gpus_and_instances_are_named_in_the_error() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let unknown_gpu = backend.create_instance("GPU-nope", P_7G, 0);
    assert!(matches!(unknown_gpu, Err(Error::UnknownGpu(g)) if g == "GPU-nope"));
    let unknown = backend.destroy_instance(gpu, P_3G, 4);
    assert!(matches!(
        unknown,
        Err(Error::UnknownInstance {
            profile: 9,
            start: 4,
            ..
        })
    ));
}

#[test]
fn a_busy_instance_cannot_be_destroyed_until_its_process_exits() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let mig = backend.create_instance(gpu, P_3G, 0).unwrap();
    let mut child = Sleeper::start();
    backend
        .attach_process(&mig.mig_device_uuid, child.pid(), 1024)
        .unwrap();
    let busy = backend.destroy_instance(gpu, P_3G, 0);
    assert!(matches!(busy, Err(Error::Busy(uuid)) if uuid == mig.mig_device_uuid));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    backend.destroy_instance(gpu, P_3G, 0).unwrap();
    assert!(backend.instances().unwrap().is_empty());
}

#[test]
fn processes_of_exited_children_disappear_even_before_they_are_reaped() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let mig = backend.create_instance(gpu, P_1G, 0).unwrap();
    let mut child = Sleeper::start();
    backend
        .attach_process(&mig.mig_device_uuid, child.pid(), 512)
        .unwrap();
    let listed = backend.processes().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].pid, listed[0].used_memory_mib),
        (child.pid(), 512)
    );
    assert_eq!(listed[0].mig_device_uuid, mig.mig_device_uuid);
    // Killed but not waited for: a zombie is not a running process.
    child.0.kill().unwrap();
    assert!(eventually(|| backend.processes().unwrap().is_empty()));
}

#[test]
fn sigkill_stops_a_real_child_and_forgets_it() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let mig = backend.create_instance(gpu, P_1G, 2).unwrap();
    let mut child = Sleeper::start();
    backend
        .attach_process(&mig.mig_device_uuid, child.pid(), 64)
        .unwrap();
    backend.signal(child.pid(), StopSignal::Kill).unwrap();
    assert!(backend.processes().unwrap().is_empty());
    assert_eq!(child.0.wait().unwrap().signal(), Some(9));
}

#[test]
fn sigterm_asks_a_real_child_to_stop() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let mig = backend.create_instance(gpu, P_1G, 2).unwrap();
    let mut child = Sleeper::start();
    backend
        .attach_process(&mig.mig_device_uuid, child.pid(), 64)
        .unwrap();
    backend.signal(child.pid(), StopSignal::Term).unwrap();
    assert_eq!(child.0.wait().unwrap().signal(), Some(15));
    assert!(backend.processes().unwrap().is_empty());
}

#[test]
fn a_pid_the_simulator_does_not_track_is_never_signalled() {
    let backend = sim(1, 1);
    let mut child = Sleeper::start();
    let refused = backend.signal(child.pid(), StopSignal::Kill).unwrap_err();
    assert!(
        refused.to_string().contains("refusing to signal"),
        "{refused}"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child must still run"
    );
}

#[test]
fn attaching_needs_an_existing_device_and_a_running_process() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let child = Sleeper::start();
    assert!(backend.attach_process("MIG-nope", child.pid(), 1).is_err());
    let mig = backend.create_instance(gpu, P_1G, 0).unwrap();
    let not_running = backend.attach_process(&mig.mig_device_uuid, 0, 1);
    assert!(not_running.is_err());
    assert!(
        backend
            .attach_process(&mig.mig_device_uuid, std::process::id(), 1)
            .is_ok()
    );
}

#[test]
fn a_virtual_process_is_listed_until_it_is_signalled() {
    let backend = sim(1, 1);
    let gpu = &gpu_uuids(&backend)[0];
    let mig = backend.create_instance(gpu, P_7G, 0).unwrap();
    backend
        .attach_virtual_process(&mig.mig_device_uuid, 4_000_000, 2048)
        .unwrap();
    assert_eq!(backend.processes().unwrap().len(), 1);
    backend.signal(4_000_000, StopSignal::Term).unwrap();
    assert!(backend.processes().unwrap().is_empty());
    backend.destroy_instance(gpu, P_7G, 0).unwrap();
}

#[test]
fn injected_faults_hit_only_their_gpu_and_clear() {
    let backend = sim(2, 1);
    let gpus = gpu_uuids(&backend);
    backend.inject(Fault::CreateFails(gpus[0].clone())).unwrap();
    backend.inject(Fault::Unhealthy(gpus[1].clone())).unwrap();
    assert!(backend.create_instance(&gpus[0], P_7G, 0).is_err());
    backend.create_instance(&gpus[1], P_7G, 0).unwrap();
    let health: Vec<bool> = backend
        .sample()
        .unwrap()
        .iter()
        .map(|s| s.healthy)
        .collect();
    assert_eq!(health, [true, false]);

    backend
        .inject(Fault::DestroyFails(gpus[1].clone()))
        .unwrap();
    let failed = backend.destroy_instance(&gpus[1], P_7G, 0).unwrap_err();
    assert!(failed.to_string().contains("injected fault"), "{failed}");
    assert_eq!(
        backend.instances().unwrap().len(),
        1,
        "a failed destroy leaves the instance"
    );

    backend.inject(Fault::InventoryFails).unwrap();
    backend.inject(Fault::SampleFails).unwrap();
    assert!(backend.inventory().is_err() && backend.instances().is_err());
    assert!(backend.sample().is_err());

    backend.clear_faults().unwrap();
    backend.destroy_instance(&gpus[1], P_7G, 0).unwrap();
    backend.create_instance(&gpus[0], P_7G, 0).unwrap();
    assert!(backend.sample().unwrap().iter().all(|s| s.healthy));
}

fn looks_like_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let sizes: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let hex = text
        .chars()
        .all(|c| c == '-' || (c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    sizes == [8, 4, 4, 4, 12] && hex && groups[2].starts_with('4')
}

#[test]
fn the_same_seed_gives_the_same_gpus_and_mig_devices() {
    let (a, b, other) = (sim(4, 42), sim(4, 42), sim(4, 43));
    assert_eq!(a.inventory().unwrap(), b.inventory().unwrap());
    let uuids = gpu_uuids(&a);
    assert!(
        uuids
            .iter()
            .all(|u| u.strip_prefix("GPU-").is_some_and(looks_like_uuid)),
        "{uuids:?}"
    );
    let mut distinct = uuids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
    assert!(gpu_uuids(&other).iter().all(|u| !uuids.contains(u)));

    let made_a = a.create_instance(&uuids[1], P_3G, 4).unwrap();
    let made_b = b.create_instance(&uuids[1], P_3G, 4).unwrap();
    assert_eq!(made_a, made_b);
    let mig = made_a.mig_device_uuid.strip_prefix("MIG-").unwrap();
    assert!(looks_like_uuid(mig), "{mig}");
    let again = a.create_instance(&uuids[1], P_3G, 0).unwrap();
    assert_ne!(again.mig_device_uuid, made_a.mig_device_uuid);
}

#[test]
fn product_names_round_trip_through_the_nvml_name_parser() {
    for model in GpuModel::ALL {
        let backend = SimBackend::new(SimConfig {
            model,
            gpus: 1,
            seed: 0,
            mig_enabled: true,
        });
        let gpu = backend.inventory().unwrap().remove(0);
        assert_eq!(GpuModel::from_nvml_name(&gpu.product_name).unwrap(), model);
        assert_eq!((gpu.product_name.as_str(), gpu.memory_mib), product(model));
        let largest = model
            .profiles()
            .map(|p| u64::from(p.memory_gb()))
            .max()
            .unwrap();
        assert!(
            gpu.memory_mib >= largest * 1000 && gpu.memory_mib <= largest * 1100,
            "{model}"
        );
    }
}

#[test]
fn samples_are_deterministic_and_follow_the_processes() {
    let backend = sim(2, 5);
    let gpus = gpu_uuids(&backend);
    let idle = backend.sample().unwrap();
    assert!(
        idle.iter()
            .all(|s| s.power_mw > 0 && s.instances.is_empty())
    );
    let mig = backend.create_instance(&gpus[0], P_3G, 0).unwrap();
    backend.create_instance(&gpus[0], P_3G, 4).unwrap();
    backend
        .attach_virtual_process(&mig.mig_device_uuid, 7, 3000)
        .unwrap();
    backend
        .attach_virtual_process(&mig.mig_device_uuid, 8, 500)
        .unwrap();
    let busy = backend.sample().unwrap();
    assert_eq!(busy, backend.sample().unwrap());
    assert!(busy[0].power_mw > idle[0].power_mw);
    assert_eq!(busy[1].power_mw, idle[1].power_mw);
    let on_mig = busy[0]
        .instances
        .iter()
        .find(|i| i.mig_device_uuid == mig.mig_device_uuid)
        .unwrap();
    assert_eq!(on_mig.memory_used_mib, 3500);
    assert!(
        on_mig
            .sm_utilisation_pct
            .is_some_and(|u| u > 0.0 && u <= 100.0)
    );
    let other = busy[0]
        .instances
        .iter()
        .find(|i| i.mig_device_uuid != mig.mig_device_uuid)
        .unwrap();
    assert_eq!(
        (other.memory_used_mib, other.sm_utilisation_pct),
        (0, Some(0.0))
    );
}

#[test]
fn the_simulator_can_be_shared_across_threads_as_a_backend() {
    let backend: Arc<dyn GpuBackend> = Arc::new(sim(7, 9));
    let handles: Vec<_> = (0..7)
        .map(|i| {
            let backend = Arc::clone(&backend);
            std::thread::spawn(move || {
                let gpu = backend.inventory().unwrap()[i].uuid.clone();
                backend.create_instance(&gpu, P_7G, 0).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(backend.instances().unwrap().len(), 7);
}
