//! Criterion micro benchmarks of the PNet Mesh protocol core, through its public API.
//!
//! ```text
//! cargo bench -p pnet-mesh-bench -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (sizes are inner IP packet lengths 64, 128, 512, 1280, 1420; throughput in those bytes):
//! - `data_path/{seal,open,seal_open}/N`: `Endpoint::send_packet` on a primed endpoint,
//!   `Endpoint::handle_datagram` of the sealed message on the other, and both per packet.
//! - `aead/{seal,open,seal_open}/N`: the bare ChaCha20-Poly1305 of the same padded sizes
//!   (`pnet_mesh::crypto::aead::AeadKey`, aws-lc-rs) — what the data path is set against.
//! - `handshake/{create_initiation,consume_initiation_create_response,consume_response,both_sides}`:
//!   the phases of one complete handshake between two endpoints, and their sum.
//! - `x25519/{diffie_hellman,public_key}`: one X25519 scalar multiplication; a handshake needs 8.
//! - `cookie/reply_under_load`, `replay/check_commit/{in_order,reordered}`,
//!   `allowed_ips/lookup_{v4,v6}/{1000,100000}`.
//!
//! Timing never includes restoring a packet: each measured batch works on a pool of [`POOL`]
//! buffers prepared untimed (plaintext copied in, or sealed), so only the operation is on the clock.
//!
//! Before criterion starts, a counting global allocator measures heap allocations per operation for
//! every benchmark (after a warm-up) and prints a table. In `cargo bench` mode the table goes to
//! `artifacts/benchmarks/results/micro-allocs.json`, and after criterion finishes a summary of its
//! estimates with the allocations and the ratios (data path vs bare AEAD, handshake vs X25519) goes to
//! `micro-summary.json` and `micro-summary.md` there.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use pnet_mesh::crypto::aead::{AeadKey, TAG_LEN};
use pnet_mesh::crypto::rng::{Rng, SeededRng};
use pnet_mesh::crypto::{PrivateKey, PublicKey};
use pnet_mesh::proto::allowed_ips::AllowedIps;
use pnet_mesh::proto::replay::ReplayWindow;
use pnet_mesh::{AllowedIp, Datagram, PacketBuf, PeerId};
use pnet_mesh_bench::alloc_count::{self, AllocSnapshot, CountingAllocator};
use pnet_mesh_bench::environment::{Environment, results_dir, write_report};
use pnet_mesh_bench::in_memory::MTU;
use pnet_mesh_bench::pair::{self, HANDSHAKE_SPACING, Pair, Side};
use serde::Serialize;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Inner IP packet sizes.
const SIZES: [usize; 5] = [64, 128, 512, 1280, 1420];
/// Buffers per measured batch: small enough to stay in L2 at 1420 bytes.
const POOL: usize = 64;
/// X25519 scalar multiplications in one complete handshake with the static-static term precomputed:
/// the initiator's ephemeral public key and `es`; the responder's `es` (its side), its ephemeral
/// public key, `ee` and `se`; the initiator's `ee` and `se`.
const HANDSHAKE_X25519_OPS: f64 = 8.0;

// ---- shared drivers ---------------------------------------------------------------------------------

/// Runs `op` on `iters` pool slots, in batches of [`POOL`] each prepared untimed by `prepare`; returns
/// the time and the allocations of the `op` calls only.
fn pooled<S>(
    iters: u64,
    state: &mut S,
    mut prepare: impl FnMut(&mut S, usize),
    mut op: impl FnMut(&mut S, usize),
) -> (Duration, AllocSnapshot) {
    let mut time = Duration::ZERO;
    let mut allocs = AllocSnapshot::default();
    let mut left = iters;
    while left > 0 {
        let n = left.min(POOL as u64) as usize;
        for i in 0..n {
            prepare(state, i);
        }
        let a0 = alloc_count::snapshot();
        let t0 = Instant::now();
        for i in 0..n {
            op(state, i);
        }
        time += t0.elapsed();
        let d = alloc_count::snapshot() - a0;
        allocs.allocations += d.allocations;
        allocs.bytes += d.bytes;
        left -= n as u64;
    }
    (time, allocs)
}

/// A primed pair and a pool of packet buffers for one size.
struct DataPath {
    pair: Pair,
    now: Instant,
    len: usize,
    packet: Vec<u8>,
    pool: Vec<Vec<u8>>,
    sealed: Vec<(usize, usize)>,
}

impl DataPath {
    fn new(len: usize) -> DataPath {
        let now = Instant::now();
        DataPath {
            pair: Pair::established(11, now).expect("session"),
            now,
            len,
            packet: pair::udp_packet(len, Side::A).expect("template"),
            pool: (0..POOL)
                .map(|_| vec![0u8; pair::buffer_len(len)])
                .collect(),
            sealed: vec![(0, 0); POOL],
        }
    }

    fn fill(&mut self, i: usize) {
        self.pool[i][PacketBuf::HEADROOM..][..self.len].copy_from_slice(&self.packet);
    }

    fn seal(&mut self, i: usize) {
        let sealed = self
            .pair
            .seal(Side::A, self.now, &mut self.pool[i], self.len)
            .expect("seal");
        self.sealed[i] = black_box(sealed);
    }

    fn open(&mut self, i: usize) {
        let (off, len) = self.sealed[i];
        let n = self
            .pair
            .open(Side::B, self.now, &mut self.pool[i][off..off + len])
            .expect("open");
        black_box(n);
    }
}

/// The data path operations.
#[derive(Clone, Copy)]
enum Op {
    Seal,
    Open,
    SealOpen,
}

impl Op {
    const ALL: [Op; 3] = [Op::Seal, Op::Open, Op::SealOpen];

    fn name(self) -> &'static str {
        match self {
            Op::Seal => "seal",
            Op::Open => "open",
            Op::SealOpen => "seal_open",
        }
    }
}

fn data_path_run(dp: &mut DataPath, op: Op, iters: u64) -> (Duration, AllocSnapshot) {
    match op {
        Op::Seal => pooled(iters, dp, DataPath::fill, DataPath::seal),
        Op::Open => pooled(
            iters,
            dp,
            |dp, i| {
                dp.fill(i);
                dp.seal(i);
            },
            DataPath::open,
        ),
        Op::SealOpen => pooled(iters, dp, DataPath::fill, |dp, i| {
            dp.seal(i);
            dp.open(i);
        }),
    }
}

/// Bare AEAD over the padded size, with a pool like [`DataPath`]'s.
struct Bare {
    key: AeadKey,
    counter: u64,
    padded: usize,
    pool: Vec<Vec<u8>>,
    counters: Vec<u64>,
}

impl Bare {
    fn new(len: usize) -> Bare {
        let padded = pair::padded_len(len, MTU);
        Bare {
            key: AeadKey::new(&[0x42; 32]),
            counter: 0,
            padded,
            pool: (0..POOL).map(|_| vec![0x5a; padded + TAG_LEN]).collect(),
            counters: vec![0; POOL],
        }
    }

    fn seal(&mut self, i: usize) {
        let p = self.padded;
        let buf = &mut self.pool[i];
        let tag = self.key.seal_in_place(self.counter, &[], &mut buf[..p]);
        buf[p..p + TAG_LEN].copy_from_slice(&tag);
        self.counters[i] = self.counter;
        self.counter += 1;
    }

    fn open(&mut self, i: usize) {
        let plain = self
            .key
            .open_in_place(self.counters[i], &[], &mut self.pool[i])
            .expect("open");
        black_box(plain.len());
    }
}

fn bare_run(b: &mut Bare, op: Op, iters: u64) -> (Duration, AllocSnapshot) {
    match op {
        Op::Seal => pooled(iters, b, |_, _| {}, Bare::seal),
        Op::Open => pooled(iters, b, Bare::seal, Bare::open),
        Op::SealOpen => pooled(
            iters,
            b,
            |_, _| {},
            |b, i| {
                b.seal(i);
                b.open(i);
            },
        ),
    }
}

/// Phases of [`Pair::timed_handshake`].
const PHASES: [&str; 4] = [
    "create_initiation",
    "consume_initiation_create_response",
    "consume_response",
    "both_sides",
];

struct Handshakes {
    pair: Pair,
    now: Instant,
}

impl Handshakes {
    fn new() -> Handshakes {
        let now = Instant::now();
        Handshakes {
            pair: Pair::new(21, now).expect("pair"),
            now,
        }
    }

    /// `iters` handshakes; the time of phase `phase` (3 = all), and allocations of the whole.
    fn run(&mut self, phase: usize, iters: u64) -> (Duration, AllocSnapshot) {
        let mut total = Duration::ZERO;
        let a0 = alloc_count::snapshot();
        for _ in 0..iters {
            self.now += HANDSHAKE_SPACING;
            let d = self.pair.timed_handshake(self.now).expect("handshake");
            total += if phase < 3 { d[phase] } else { d.iter().sum() };
        }
        (total, alloc_count::snapshot() - a0)
    }
}

/// B under load and one initiation from A without mac2: each `handle_datagram` answers with a cookie
/// reply.
struct Cookie {
    pair: Pair,
    now: Instant,
    initiation: Vec<u8>,
    buf: Vec<u8>,
}

impl Cookie {
    fn new() -> Cookie {
        let now = Instant::now();
        let mut pair = Pair::new(31, now).expect("pair");
        let initiation = pair.initiation(now).expect("initiation");
        pair.b.set_under_load(true);
        Cookie {
            buf: vec![0; initiation.len()],
            pair,
            now,
            initiation,
        }
    }

    fn reply(&mut self) {
        self.buf.copy_from_slice(&self.initiation);
        match self
            .pair
            .b
            .handle_datagram(self.now, self.pair.a_addr, &mut self.buf)
        {
            Datagram::Reply { len, .. } => {
                black_box(len);
            }
            other => panic!("no cookie reply: {other:?}"),
        }
    }
}

/// Counters fed to the replay window: in order, or reversed within each run of 8.
struct Replay {
    window: ReplayWindow,
    i: u64,
    reordered: bool,
}

impl Replay {
    fn step(&mut self) {
        let c = if self.reordered { self.i ^ 7 } else { self.i };
        self.i += 1;
        if self.window.check(black_box(c)) {
            black_box(self.window.commit(c));
        }
    }
}

/// An allowed-IPs table of `n` random prefixes of one family and addresses inside them to look up.
struct Lookup {
    table: AllowedIps,
    addrs: Vec<IpAddr>,
    i: usize,
}

impl Lookup {
    fn new(n: usize, v6: bool) -> Lookup {
        let mut rng = SeededRng::new(if v6 { 66 } else { 44 } + n as u64);
        let mut table = AllowedIps::new();
        let mut addrs = Vec::with_capacity(4096);
        for i in 0..n {
            let (net, host) = if v6 {
                let len = 32 + (rng.next_u32() % 97) as u8; // /32 to /128
                let a = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                let net = AllowedIp::new(IpAddr::V6(Ipv6Addr::from(a)), len).expect("prefix");
                let host = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                let mask = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let IpAddr::V6(base) = net.addr() else {
                    unreachable!()
                };
                (
                    net,
                    IpAddr::V6(Ipv6Addr::from(u128::from(base) | (host & mask))),
                )
            } else {
                let len = 16 + (rng.next_u32() % 17) as u8; // /16 to /32
                let net = AllowedIp::new(IpAddr::V4(Ipv4Addr::from(rng.next_u32())), len)
                    .expect("prefix");
                let mask = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let IpAddr::V4(base) = net.addr() else {
                    unreachable!()
                };
                (
                    net,
                    IpAddr::V4(Ipv4Addr::from(u32::from(base) | (rng.next_u32() & mask))),
                )
            };
            table.insert(net, PeerId((i % 1024) as u32));
            if addrs.len() < 4096 && (i % (n / 4096).max(1) == 0) {
                addrs.push(host);
            }
        }
        Lookup { table, addrs, i: 0 }
    }

    fn step(&mut self) {
        let addr = self.addrs[self.i];
        self.i += 1;
        if self.i == self.addrs.len() {
            self.i = 0;
        }
        black_box(self.table.lookup(black_box(addr)));
    }
}

struct X25519 {
    private: PrivateKey,
    public: PublicKey,
}

impl X25519 {
    fn new() -> X25519 {
        let mut rng = SeededRng::new(99);
        let private = PrivateKey::generate(&mut rng);
        let public = PrivateKey::generate(&mut rng).public_key();
        X25519 { private, public }
    }
}

// ---- allocations per operation ------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct AllocRow {
    bench: String,
    ops: u64,
    allocations_per_op: f64,
    bytes_per_op: f64,
}

fn row(bench: String, ops: u64, a: AllocSnapshot) -> AllocRow {
    AllocRow {
        bench,
        ops,
        allocations_per_op: a.allocations as f64 / ops as f64,
        bytes_per_op: a.bytes as f64 / ops as f64,
    }
}

/// Counts `ops` calls of `f` after `warm` untimed ones.
fn count(warm: u64, ops: u64, mut f: impl FnMut()) -> AllocSnapshot {
    for _ in 0..warm {
        f();
    }
    let a0 = alloc_count::snapshot();
    for _ in 0..ops {
        f();
    }
    alloc_count::snapshot() - a0
}

/// Allocations per operation of every benchmark, each after a warm-up. `quick` (criterion's test
/// mode) runs few operations.
fn allocations(quick: bool) -> Vec<AllocRow> {
    let n = if quick { 64 } else { 10_000 };
    let hs = if quick { 4 } else { 200 };
    let mut rows = Vec::new();
    for len in SIZES {
        let mut dp = DataPath::new(len);
        let mut bare = Bare::new(len);
        for op in Op::ALL {
            data_path_run(&mut dp, op, 256);
            let (_, a) = data_path_run(&mut dp, op, n);
            rows.push(row(format!("data_path/{}/{len}", op.name()), n, a));
        }
        for op in Op::ALL {
            bare_run(&mut bare, op, 256);
            let (_, a) = bare_run(&mut bare, op, n);
            rows.push(row(format!("aead/{}/{len}", op.name()), n, a));
        }
    }
    let mut h = Handshakes::new();
    h.run(3, 4);
    let (_, a) = h.run(3, hs);
    // The phases run together; their allocations are reported for the whole handshake.
    rows.push(row("handshake/both_sides".into(), hs, a));
    let mut c = Cookie::new();
    rows.push(row(
        "cookie/reply_under_load".into(),
        n,
        count(64, n, || c.reply()),
    ));
    for reordered in [false, true] {
        let mut r = Replay {
            window: ReplayWindow::new(),
            i: 0,
            reordered,
        };
        let name = if reordered { "reordered" } else { "in_order" };
        rows.push(row(
            format!("replay/check_commit/{name}"),
            n,
            count(64, n, || r.step()),
        ));
    }
    for v6 in [false, true] {
        for routes in [1_000, 100_000] {
            let mut l = Lookup::new(if quick { 1_000 } else { routes }, v6);
            let family = if v6 { "v6" } else { "v4" };
            rows.push(row(
                format!("allowed_ips/lookup_{family}/{routes}"),
                n,
                count(64, n, || l.step()),
            ));
        }
    }
    let x = X25519::new();
    let xn = if quick { 4 } else { 200 };
    rows.push(row(
        "x25519/diffie_hellman".into(),
        xn,
        count(4, xn, || {
            black_box(x.private.diffie_hellman(black_box(&x.public)).ok());
        }),
    ));
    rows.push(row(
        "x25519/public_key".into(),
        xn,
        count(4, xn, || {
            black_box(black_box(&x.private).public_key());
        }),
    ));
    rows
}

fn print_allocs(rows: &[AllocRow]) {
    println!("allocations per operation (counting global allocator, after a warm-up):");
    println!(
        "{:<48} {:>8} {:>12} {:>12}",
        "benchmark", "ops", "allocs/op", "bytes/op"
    );
    for r in rows {
        println!(
            "{:<48} {:>8} {:>12.3} {:>12.1}",
            r.bench, r.ops, r.allocations_per_op, r.bytes_per_op
        );
    }
    println!();
}

// ---- criterion ------------------------------------------------------------------------------------

fn bench_data_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("data_path");
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut dp = DataPath::new(len);
        for op in Op::ALL {
            g.bench_function(BenchmarkId::new(op.name(), len), |b| {
                b.iter_custom(|iters| data_path_run(&mut dp, op, iters).0)
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("aead");
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut bare = Bare::new(len);
        for op in Op::ALL {
            g.bench_function(BenchmarkId::new(op.name(), len), |b| {
                b.iter_custom(|iters| bare_run(&mut bare, op, iters).0)
            });
        }
    }
    g.finish();
}

fn bench_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    // Each iteration runs a whole handshake whatever phase is timed: fewer samples keep it short.
    g.sample_size(30);
    let mut h = Handshakes::new();
    for (phase, name) in PHASES.iter().enumerate() {
        g.bench_function(*name, |b| b.iter_custom(|iters| h.run(phase, iters).0));
    }
    g.finish();
    let mut g = c.benchmark_group("x25519");
    let x = X25519::new();
    g.bench_function("diffie_hellman", |b| {
        b.iter(|| x.private.diffie_hellman(black_box(&x.public)).ok())
    });
    g.bench_function("public_key", |b| {
        b.iter(|| black_box(&x.private).public_key())
    });
    g.finish();
}

fn bench_small(c: &mut Criterion) {
    let mut cookie = Cookie::new();
    c.bench_function("cookie/reply_under_load", |b| b.iter(|| cookie.reply()));
    let mut g = c.benchmark_group("replay");
    for reordered in [false, true] {
        let mut r = Replay {
            window: ReplayWindow::new(),
            i: 0,
            reordered,
        };
        let name = if reordered { "reordered" } else { "in_order" };
        g.bench_function(BenchmarkId::new("check_commit", name), |b| {
            b.iter(|| r.step())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("allowed_ips");
    for v6 in [false, true] {
        let family = if v6 { "lookup_v6" } else { "lookup_v4" };
        for routes in [1_000usize, 100_000] {
            let mut l = Lookup::new(routes, v6);
            g.bench_function(BenchmarkId::new(family, routes), |b| b.iter(|| l.step()));
        }
    }
    g.finish();
}

// ---- summary ----------------------------------------------------------------------------------------

/// Criterion's output directory, found the way criterion finds it.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(v.get("target_directory")?.as_str()?))
    });
    from_metadata.map_or_else(
        || PathBuf::from("target/criterion"),
        |t| t.join("criterion"),
    )
}

#[derive(Debug, Clone, Serialize)]
struct Estimate {
    bench: String,
    /// Criterion's headline estimate (the slope of the linear fit, else the mean), ns per operation.
    ns_per_op: f64,
    /// Its 95 % confidence interval.
    ns_per_op_ci: [f64; 2],
    /// Bytes per operation, for throughput benchmarks.
    bytes_per_op: Option<u64>,
    /// `bytes_per_op / ns_per_op`, in GB/s (10^9 bytes).
    gb_per_sec: Option<f64>,
    /// From the allocation pass.
    allocations_per_op: Option<f64>,
}

/// Every `new/benchmark.json` under `dir` written since `since`, with its estimate.
fn read_estimates(dir: &Path, since: SystemTime, allocs: &[AllocRow]) -> Vec<Estimate> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "benchmark.json")
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "new")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since)
                && let Some(est) = read_one(&p, allocs)
            {
                found.push(est);
            }
        }
    }
    found.sort_by_key(|e| natural_key(&e.bench));
    found
}

/// Sorts `data_path/seal/64` before `data_path/seal/512`: numeric path parts compare as numbers.
fn natural_key(id: &str) -> Vec<(u64, String)> {
    id.split('/')
        .map(|part| match part.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, part.to_owned()),
        })
        .collect()
}

fn read_one(benchmark_json: &Path, allocs: &[AllocRow]) -> Option<Estimate> {
    let read = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let meta = read(benchmark_json)?;
    let est = read(&benchmark_json.with_file_name("estimates.json"))?;
    let bench = meta.get("full_id")?.as_str()?.to_owned();
    let headline = est
        .get("slope")
        .filter(|s| !s.is_null())
        .or_else(|| est.get("mean"))?;
    let point = headline.get("point_estimate")?.as_f64()?;
    let ci = headline.get("confidence_interval")?;
    let bytes = meta
        .get("throughput")
        .and_then(|t| t.get("Bytes"))
        .and_then(serde_json::Value::as_u64);
    Some(Estimate {
        ns_per_op_ci: [
            ci.get("lower_bound")?.as_f64()?,
            ci.get("upper_bound")?.as_f64()?,
        ],
        gb_per_sec: bytes.map(|b| b as f64 / point),
        bytes_per_op: bytes,
        allocations_per_op: allocs
            .iter()
            .find(|r| r.bench == bench)
            .map(|r| r.allocations_per_op),
        ns_per_op: point,
        bench,
    })
}

#[derive(Debug, Clone, Serialize)]
struct Ratio {
    name: String,
    value: f64,
    meaning: &'static str,
}

fn ratios(est: &[Estimate]) -> Vec<Ratio> {
    let ns = |id: &str| est.iter().find(|e| e.bench == id).map(|e| e.ns_per_op);
    let mut out = Vec::new();
    for len in SIZES {
        for op in Op::ALL {
            let ours = format!("data_path/{}/{len}", op.name());
            let bare = format!("aead/{}/{len}", op.name());
            if let (Some(o), Some(b)) = (ns(&ours), ns(&bare)) {
                out.push(Ratio {
                    name: format!("{ours} vs {bare}"),
                    value: b / o,
                    meaning: "throughput of the protocol path as a fraction of the bare AEAD's \
                              (bare time / our time; 1.0 = no protocol overhead)",
                });
            }
        }
    }
    if let (Some(h), Some(x)) = (ns("handshake/both_sides"), ns("x25519/diffie_hellman")) {
        out.push(Ratio {
            name: "handshake/both_sides vs 8 x x25519/diffie_hellman".into(),
            value: h / (HANDSHAKE_X25519_OPS * x),
            meaning: "cost of a complete handshake (both sides) over the X25519 operations it needs \
                      (8: ephemeral keys and es/ee/se on both sides, ss precomputed); target <= 1.25",
        });
    }
    out
}

fn summary_markdown(est: &[Estimate], ratios: &[Ratio], env: &Environment) -> String {
    let mut s = String::from("# Micro benchmarks\n\n");
    s += &format!(
        "rustc: {}; cpu: {}; commit: {}\n\n",
        env.rustc.unwrap_or("?"),
        env.cpu_model.as_deref().unwrap_or("?"),
        env.commit.as_deref().unwrap_or("?")
    );
    s += "| benchmark | ns/op | 95% CI | GB/s | allocs/op |\n|---|---:|---|---:|---:|\n";
    for e in est {
        s += &format!(
            "| {} | {:.1} | {:.1}–{:.1} | {} | {} |\n",
            e.bench,
            e.ns_per_op,
            e.ns_per_op_ci[0],
            e.ns_per_op_ci[1],
            e.gb_per_sec.map_or("".into(), |g| format!("{g:.2}")),
            e.allocations_per_op
                .map_or("".into(), |a| format!("{a:.3}"))
        );
    }
    s += "\n| ratio | value |\n|---|---:|\n";
    for r in ratios {
        s += &format!("| {} | {:.3} |\n", r.name, r.value);
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo bench`: measure, write reports.
    Bench,
    /// `cargo test --benches` or `-- --test`: run each benchmark once, write nothing.
    Test,
    /// `-- --list`: criterion lists; nothing else runs.
    List,
}

fn mode() -> Mode {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    if has("--list") {
        Mode::List
    } else if has("--bench") && !has("--test") {
        Mode::Bench
    } else {
        Mode::Test
    }
}

fn main() {
    let mode = mode();
    let started = SystemTime::now();
    let env = Environment::detect();
    let mut allocs = Vec::new();
    if mode != Mode::List {
        if !alloc_count::is_installed() {
            eprintln!("micro: the counting allocator is not installed; no allocation figures");
        } else {
            allocs = allocations(mode == Mode::Test);
            print_allocs(&allocs);
            if mode == Mode::Bench {
                let path = results_dir().join("micro-allocs.json");
                let json = serde_json::json!({ "allocations": allocs, "environment": env });
                match write_report(&path, &format!("{json:#}\n")) {
                    Ok(()) => println!("wrote {}\n", path.display()),
                    Err(e) => eprintln!("micro: {e}"),
                }
            }
        }
    }

    let mut c = Criterion::default().configure_from_args();
    bench_data_path(&mut c);
    bench_handshake(&mut c);
    bench_small(&mut c);
    c.final_summary();

    if mode == Mode::Bench {
        let dir = criterion_dir();
        let est = read_estimates(&dir, started, &allocs);
        if est.is_empty() {
            eprintln!(
                "micro: no criterion estimates of this run found under {}",
                dir.display()
            );
            return;
        }
        let ratios = ratios(&est);
        let results = results_dir();
        let json = serde_json::json!({
            "estimates": est,
            "ratios": ratios,
            "allocations": allocs,
            "environment": env,
        });
        let md = summary_markdown(&est, &ratios, &env);
        println!("\n{md}");
        for (name, text) in [
            ("micro-summary.json", format!("{json:#}\n")),
            ("micro-summary.md", md),
        ] {
            let path = results.join(name);
            match write_report(&path, &text) {
                Ok(()) => println!("wrote {}", path.display()),
                Err(e) => eprintln!("micro: {e}"),
            }
        }
    }
}
