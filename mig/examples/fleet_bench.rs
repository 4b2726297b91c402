//! Fleet-scale benchmark of the placement engine: decision throughput and
//! latency at 288,000 GPUs, and placement quality of the fragmentation-aware
//! policy against first fit on fixed-seed traces.
//!
//! `cargo run --release -p aion-mig --example fleet_bench -- --gpus 288000 --json`

use aion_mig::{Engine, Fleet, GpuModel, LeaseKey, Node, NodeId, Policy, ProfileId, Request};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Request mix by count: (profile id, weight). Small slices dominate, as in
/// inference-heavy fleets, with a tail of whole GPUs.
const MIX: [(u8, u32); 7] = [
    (19, 30),
    (20, 5),
    (15, 10),
    (14, 20),
    (9, 15),
    (5, 10),
    (0, 10),
];
/// Target offered load of the churn trace (fraction of all compute slices).
const OFFERED_LOAD: f64 = 0.9;
/// Mean lease duration of the churn trace, in trace time units.
const MEAN_DURATION: f64 = 1000.0;

/// xorshift64*: small, seeded, repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
    /// Lease durations: a hyperexponential mix (80% short, 20% long, mean
    /// `MEAN_DURATION`), closer to real leases than one exponential: a few
    /// long-lived slices pin GPUs while short ones come and go around them.
    fn duration(&mut self) -> f64 {
        let (p, short) = PHASES[0];
        let mean = if self.unit() < p { short } else { PHASES[1].1 };
        self.exp(mean)
    }
    /// A churn-trace request: mostly single slices from `MIX`, plus 4% gangs
    /// that must share a node (2% whole nodes of 8x 7g, 2% 4x 3g).
    fn request(&mut self, lease: u64) -> Request {
        let roll = self.unit();
        let (profile, count) = if roll < 0.02 {
            (ProfileId::new(0), 8)
        } else if roll < 0.04 {
            (ProfileId::new(9), 4)
        } else {
            (self.profile(), 1)
        };
        let mut r = Request {
            count,
            ..Request::one(LeaseKey(lease), profile)
        };
        r.constraints.same_node = count > 1;
        r
    }
    fn profile(&mut self) -> ProfileId {
        let total: u32 = MIX.iter().map(|m| m.1).sum();
        let mut x = (self.next() % u64::from(total)) as u32;
        for (id, w) in MIX {
            if x < w {
                return ProfileId::new(id);
            }
            x -= w;
        }
        ProfileId::new(19)
    }
}

fn compute_of(p: ProfileId) -> u32 {
    match p.get() {
        14 => 2,
        9 => 3,
        5 => 4,
        0 => 7,
        _ => 1,
    }
}

fn mean_compute() -> f64 {
    let total: u32 = MIX.iter().map(|m| m.1).sum();
    let single = MIX
        .iter()
        .map(|&(id, w)| f64::from(compute_of(ProfileId::new(id)) * w))
        .sum::<f64>()
        / f64::from(total);
    0.96 * single + 0.02 * 56.0 + 0.02 * 12.0
}

fn fleet(gpus: usize) -> Fleet {
    let mut f = Fleet::new();
    for n in 0..gpus.div_ceil(8) {
        let site = ["paris-1", "paris-2", "lyon-1", "grenoble-1"][n % 4];
        let tier = if n % 3 == 0 { "reserved" } else { "shared" };
        f.push(
            Node::new(
                NodeId(n as u64),
                site,
                GpuModel::H100_80GB,
                8.min(gpus - n * 8),
            )
            .with_label("tier", tier),
        );
    }
    f
}

/// Places arrivals until the first refusal; returns the fill at that moment.
fn fill_at_first_reject(
    f: &Fleet,
    policy: Policy,
    seed: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut engine = Engine::new(f, policy)?;
    let mut rng = Rng(seed);
    for lease in 0.. {
        if engine
            .place(&Request::one(LeaseKey(lease), rng.profile()))
            .is_err()
        {
            break;
        }
    }
    Ok(engine.compute_fill())
}

struct Churn {
    accept_ratio: f64,
    /// Mean compute fill seen by the counted arrivals.
    mean_fill: f64,
    /// Accepted over offered whole-node gangs (8x 7g), by count.
    whole_node_accept_ratio: f64,
    latencies_ns: Vec<u32>,
    engine: Engine,
}

/// Phases of `Rng::duration`: (probability, mean) of each.
const PHASES: [(f64, f64); 2] = [(0.8, 0.5 * MEAN_DURATION), (0.2, 3.0 * MEAN_DURATION)];
/// Trace time before counting starts, and counted time, in mean durations.
const WARM_UP: f64 = 3.0;
const COUNTED: f64 = 3.0;

/// The churn trace at offered load `load`.
///
/// Offered load is in GPU-equivalents of compute: a request of `n` instances
/// of a `k`g profile offers `n * k / 7` GPUs for its duration, and
/// `load = arrival rate * mean duration * mean GPU-equivalents / GPUs`, i.e.
/// the fraction of the fleet's compute slices that would be in use on average
/// if nothing were refused (Little's law). So that this is what the counted
/// window sees, the trace starts in that steady state rather than from an
/// empty fleet: it first places a steady-state population (`rate * mean
/// duration` leases, each in a duration phase with probability proportional
/// to phase weight x phase mean, with an exponential residual life, which is
/// exact for exponential phases), then runs `WARM_UP` mean durations of churn
/// so the layout is shaped by departures, then counts `COUNTED` mean durations.
/// `mean_fill` reports the fill the counted arrivals actually saw.
fn churn(
    f: &Fleet,
    policy: Policy,
    seed: u64,
    load: f64,
) -> Result<Churn, Box<dyn std::error::Error>> {
    let mut engine = Engine::new(f, policy)?;
    let mut rng = Rng(seed);
    let rate = load * 7.0 * f.gpu_count() as f64 / (MEAN_DURATION * mean_compute());
    let mut departures: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let population = (rate * MEAN_DURATION).round() as u64;
    let mut lease = 0u64;
    while lease < population {
        let req = rng.request(lease);
        let mean = if rng.unit() < PHASES[0].0 * PHASES[0].1 / MEAN_DURATION {
            PHASES[0].1
        } else {
            PHASES[1].1
        };
        let residual = rng.exp(mean);
        if engine.place(&req).is_ok() {
            departures.push(Reverse(((residual * 1e3) as u64, lease)));
        }
        lease += 1;
    }
    let (start_count, end) = (WARM_UP * MEAN_DURATION, (WARM_UP + COUNTED) * MEAN_DURATION);
    let (mut now, mut offered, mut accepted) = (0.0f64, 0u64, 0u64);
    let (mut fill_sum, mut counted_n) = (0.0f64, 0u64);
    let (mut whole_offered, mut whole_accepted) = (0u64, 0u64);
    let mut latencies_ns = Vec::new();
    loop {
        now += rng.exp(1.0 / rate);
        if now >= end {
            break;
        }
        let (req, duration) = (rng.request(lease), rng.duration());
        let size = u64::from(compute_of(req.profile)) * u64::from(req.count);
        while departures
            .peek()
            .is_some_and(|Reverse((t, _))| (*t as f64) <= now * 1e3)
        {
            if let Some(Reverse((_, l))) = departures.pop() {
                engine.release(LeaseKey(l))?;
            }
        }
        let counted = now >= start_count;
        if counted {
            fill_sum += engine.compute_fill();
            counted_n += 1;
        }
        let started = Instant::now();
        let placed = engine.place(&req).is_ok();
        latencies_ns.push(started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        offered += u64::from(counted) * size;
        let whole = u64::from(counted && size == 56);
        whole_offered += whole;
        whole_accepted += whole * u64::from(placed);
        if placed {
            accepted += u64::from(counted) * size;
            departures.push(Reverse((((now + duration) * 1e3) as u64, lease)));
        }
        lease += 1;
    }
    Ok(Churn {
        accept_ratio: accepted as f64 / offered.max(1) as f64,
        mean_fill: fill_sum / counted_n.max(1) as f64,
        whole_node_accept_ratio: whole_accepted as f64 / whole_offered.max(1) as f64,
        latencies_ns,
        engine,
    })
}

/// Placement decisions and releases per second on a loaded fleet, single
/// thread. Each call is timed on its own (timer overhead, about 20 ns, is
/// included); the oldest lease of this phase leaves once `WINDOW` are live, so
/// the fill stays steady.
fn throughput(
    engine: &mut Engine,
    seed: u64,
    n: u64,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    const WINDOW: usize = 20_000;
    let mut rng = Rng(seed);
    let requests: Vec<Request> = (0..n)
        .map(|i| Request::one(LeaseKey(u64::MAX / 2 + i), rng.profile()))
        .collect();
    let mut live = std::collections::VecDeque::with_capacity(WINDOW + 1);
    let (mut placing, mut releasing, mut releases) = (0f64, 0f64, 0u64);
    for r in &requests {
        let started = Instant::now();
        let placed = engine.place(r).is_ok();
        placing += started.elapsed().as_secs_f64();
        if placed {
            live.push_back(r.lease);
        }
        if live.len() > WINDOW
            && let Some(old) = live.pop_front()
        {
            let started = Instant::now();
            engine.release(old)?;
            releasing += started.elapsed().as_secs_f64();
            releases += 1;
        }
    }
    for lease in live {
        engine.release(lease)?;
    }
    Ok((n as f64 / placing, releases as f64 / releasing.max(1e-9)))
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, Box<dyn std::error::Error>> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let gpus = arg(&args, "--gpus", 288_000)? as usize;
    let seed = arg(&args, "--seed", 42)?;
    let f = fleet(gpus);

    let fill = fill_at_first_reject(&f, Policy::FragmentationAware, seed)?;
    let ff_fill = fill_at_first_reject(&f, Policy::FirstFit, seed)?;
    let mut default = churn(&f, Policy::FragmentationAware, seed, OFFERED_LOAD)?;
    let first_fit = churn(&f, Policy::FirstFit, seed, OFFERED_LOAD)?;
    let mut lat = default.latencies_ns.clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let steady_fill = default.engine.compute_fill();
    let (decisions_per_s, releases_per_s) =
        throughput(&mut default.engine, seed ^ 0x5eed, 1_000_000)?;
    let mut overload = serde_json::Map::new();
    if let Some(i) = args.iter().position(|a| a == "--overload") {
        for load in args
            .get(i + 1)
            .map(String::as_str)
            .unwrap_or("1.0")
            .split(',')
        {
            let load: f64 = load.parse()?;
            let fa = churn(&f, Policy::FragmentationAware, seed, load)?;
            let ff = churn(&f, Policy::FirstFit, seed, load)?;
            overload.insert(
                format!("{load}"),
                serde_json::json!({
                    "default": fa.accept_ratio, "first_fit": ff.accept_ratio,
                    "default_mean_fill": fa.mean_fill, "first_fit_mean_fill": ff.mean_fill,
                    "default_whole_node": fa.whole_node_accept_ratio,
                    "first_fit_whole_node": ff.whole_node_accept_ratio,
                }),
            );
        }
    }
    let report = serde_json::json!({
        "churn_accept_ratio_by_offered_load": overload,
        "gpus": gpus,
        "nodes": f.nodes.len(),
        "seed": seed,
        "decisions_per_s": decisions_per_s.round(),
        "releases_per_s": releases_per_s.round(),
        "p50_decision_ns": pct(0.50),
        "p99_decision_ns": pct(0.99),
        "p999_decision_ns": pct(0.999),
        "fill_at_first_reject": fill,
        "first_fit_fill_at_first_reject": ff_fill,
        "churn_arrivals": default.latencies_ns.len(),
        "churn_mean_fill": default.mean_fill,
        "first_fit_churn_mean_fill": first_fit.mean_fill,
        "churn_whole_node_accept_ratio": default.whole_node_accept_ratio,
        "first_fit_churn_whole_node_accept_ratio": first_fit.whole_node_accept_ratio,
        "churn_offered_load": OFFERED_LOAD,
        "churn_accept_ratio": default.accept_ratio,
        "first_fit_churn_accept_ratio": first_fit.accept_ratio,
        "churn_fill_at_end": steady_fill,
        "first_fit_churn_fill_at_end": first_fit.engine.compute_fill(),
        "bytes_per_gpu": default.engine.fleet_bytes() as f64 / gpus as f64,
    });
    if args.iter().any(|a| a == "--json") {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
