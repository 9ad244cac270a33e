//! `cargo bench --bench sandbox`: what the sandbox costs.
//!
//! 1. The standard scaler's `transform` on 1M rows × 8 f64 columns, called
//!    natively (the same kernel code through the SDK's dispatch, input
//!    handed over by value) and through the sandbox under each metering
//!    configuration, default limits on: by copy (the frame copied into the
//!    guest and the result out) and by reference (the frame stays in the
//!    host; lent, or moved in and rewritten in place). Reported as rows/s
//!    and as ratios to native throughput, from the median of several runs.
//! 2. Instantiation (new store + instance + first call), pooled and on
//!    demand.
//! 3. Loading a kernel: compiling versus the on-disk cache, in the same
//!    sandbox and as a new process (a new sandbox) does, alone and a
//!    pipeline's four kernels.
//!
//! The process allocates with mimalloc, as the command line does.
//!
//! Timings are medians; the machine is noisy, so compare ratios within one
//! run rather than absolute numbers across runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The command line's allocator, so loads and copies pay what a run pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::median;

use kernel_host::bindings::{Column, ColumnValues, Frame};
use kernel_host::{Grants, KernelComponent, Limits, Metering, Sandbox};
use kernel_sdk::testing::Local;
use standard_scaler::StandardScaler;
use std::path::Path;
use std::time::{Duration, Instant};

const ROWS: usize = 1_000_000;
const COLS: usize = 8;
const RUNS: usize = 9;

/// Deterministic pseudo-random data.
fn columns() -> Vec<(String, Vec<f64>)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..COLS)
        .map(|j| {
            let values = (0..ROWS)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f64 / (1u64 << 53) as f64 * 100.0 + j as f64
                })
                .collect();
            (format!("c{j}"), values)
        })
        .collect()
}

fn host_frame(data: &[(String, Vec<f64>)]) -> Frame {
    Frame {
        rows: ROWS as u32,
        columns: data
            .iter()
            .map(|(n, v)| Column {
                name: n.clone(),
                values: ColumnValues::F64(v.clone()),
                nulls: None,
            })
            .collect(),
    }
}

fn sdk_frame(data: &[(String, Vec<f64>)]) -> kernel_sdk::Frame {
    kernel_sdk::Frame::new(
        data.iter()
            .map(|(n, v)| kernel_sdk::Column::f64(n.clone(), v.clone()))
            .collect(),
    )
    .unwrap()
}

/// The kernel called natively. `keep_input`: the caller keeps its frame,
/// as the host does, so the input is cloned inside the timed region;
/// otherwise the frame is moved in and rewritten in place.
fn native(data: &[(String, Vec<f64>)], keep_input: bool) -> Duration {
    let mut scaler = Local::<StandardScaler>::new();
    let frame = sdk_frame(data);
    scaler.fit(&frame, None).unwrap();
    let samples = (0..RUNS)
        .map(|_| {
            let moved = (!keep_input).then(|| frame.clone());
            let started = Instant::now();
            let input = moved.unwrap_or_else(|| frame.clone());
            let out = scaler.transform(input).unwrap();
            let elapsed = started.elapsed();
            std::hint::black_box(out);
            elapsed
        })
        .collect();
    median(samples)
}

/// The sum of |the scaler's output| on the benchmark frame (natively).
fn scaled_sum(data: &[(String, Vec<f64>)]) -> f64 {
    let mut scaler = Local::<StandardScaler>::new();
    let frame = sdk_frame(data);
    scaler.fit(&frame, None).unwrap();
    let out = scaler.transform(frame).unwrap();
    out.columns
        .iter()
        .map(|c| match &c.values {
            kernel_sdk::ColumnValues::F64(v) => v.iter().map(|x| x.abs()).sum::<f64>(),
            _ => 0.0,
        })
        .sum()
}

/// How the frame reaches the kernel.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Copied into the guest (the plain `kernel` functions).
    Copy,
    /// By reference, the host keeping its frame (`transform(&frame)`).
    Lent,
    /// By reference, moved in (`transform_owned`): rewritten in place.
    Moved,
}

async fn sandboxed(metering: Metering, kernel: &str, frame: &Frame, pass: Pass) -> (Duration, u64) {
    let sandbox = Sandbox::builder()
        .metering(metering)
        .cache_dir(None)
        .frames_by_reference(pass != Pass::Copy)
        .build()
        .unwrap();
    let component = KernelComponent::load(&sandbox, "scale", Path::new(kernel), None)
        .await
        .unwrap();
    let mut scaler = component
        .instantiate(Limits::default(), Grants::default())
        .await
        .unwrap();
    scaler.configure(&[]).await.unwrap();
    scaler.fit(frame, None).await.unwrap();
    // Warm up: grow the guest's memory once, as a long-lived instance has.
    std::hint::black_box(scaler.transform(frame).await.unwrap());
    let fuel_before = scaler.stats().fuel;
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let moved = (pass == Pass::Moved).then(|| frame.clone());
        let started = Instant::now();
        let out = match moved {
            Some(x) => scaler.transform_owned(x).await.unwrap(),
            None => scaler.transform(frame).await.unwrap(),
        };
        samples.push(started.elapsed());
        std::hint::black_box(out);
    }
    (
        median(samples),
        (scaler.stats().fuel - fuel_before) / RUNS as u64,
    )
}

async fn instantiate(pooling: bool) -> Duration {
    let sandbox = Sandbox::builder()
        .pooling(pooling)
        .cache_dir(None)
        .build()
        .unwrap();
    let component = KernelComponent::load(
        &sandbox,
        "scale",
        Path::new(kernel_host_guests::STANDARD_SCALER),
        None,
    )
    .await
    .unwrap();
    let mut samples = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let mut instance = component
            .instantiate(Limits::default(), Grants::default())
            .await
            .unwrap();
        instance.configure(&[]).await.unwrap();
        samples.push(started.elapsed());
    }
    median(samples)
}

/// Median of 51 loads of logistic-regression (5 without a cache: each
/// compiles). `verify`: every load reads, hashes and (from `cache`, or
/// afresh) compiles the file and asks `describe`; otherwise loads after
/// the first reuse what the sandbox loaded from the unchanged file, or,
/// with `new_process` (a new sandbox per load, as a new process has),
/// what the first load recorded beside the compiled kernel.
async fn load(cache: Option<&Path>, verify: bool, new_process: bool) -> Duration {
    let sandbox = || {
        Sandbox::builder()
            .cache_dir(cache.map(Path::to_path_buf))
            .verify_loads(verify)
            .build()
            .unwrap()
    };
    let path = Path::new(kernel_host_guests::LOGISTIC_REGRESSION);
    let shared = sandbox();
    // Fill the caches first when there are.
    KernelComponent::load(&shared, "m", path, None)
        .await
        .unwrap();
    let rounds = if cache.is_some() { 51 } else { 5 };
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let fresh = new_process.then(sandbox);
        let into = fresh.as_ref().unwrap_or(&shared);
        let started = Instant::now();
        std::hint::black_box(KernelComponent::load(into, "m", path, None).await.unwrap());
        samples.push(started.elapsed());
    }
    median(samples)
}

/// A new process's loads of a pipeline's four kernels (impute, one-hot,
/// scale, logistic regression) from `cache`, each round into a new
/// sandbox (as a new process has), median of `rounds`: the first
/// kernel's load, and the four's total. The first load of an engine also
/// registers the types every kernel shares and checks the host's CPU once.
async fn pipeline_loads(cache: &Path, rounds: usize) -> (Duration, Duration) {
    let kernels = [
        kernel_host_guests::SIMPLE_IMPUTER,
        kernel_host_guests::ONE_HOT_ENCODER,
        kernel_host_guests::STANDARD_SCALER,
        kernel_host_guests::LOGISTIC_REGRESSION,
    ];
    let sandbox = || {
        Sandbox::builder()
            .cache_dir(Some(cache.to_path_buf()))
            .build()
            .unwrap()
    };
    let warm = sandbox();
    for kernel in kernels {
        KernelComponent::load(&warm, "m", Path::new(kernel), None)
            .await
            .unwrap();
    }
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let fresh = sandbox();
        let started = Instant::now();
        for (i, kernel) in kernels.iter().enumerate() {
            let loaded = KernelComponent::load(&fresh, "m", Path::new(kernel), None)
                .await
                .unwrap();
            if i == 0 {
                first.push(started.elapsed());
            }
            std::hint::black_box(loaded);
        }
        all.push(started.elapsed());
    }
    (median(first), median(all))
}

/// Runs a future to completion on a fresh current-thread runtime.
fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One line of the transform table.
fn row(name: &str, time: Duration, native: Duration, in_place: Duration, fuel: String) {
    println!(
        "{:<46} {:>8.1}ms {:>16} {:>9.2}x {:>9.2}x {:>14}",
        name,
        time.as_secs_f64() * 1e3,
        rate(ROWS, time),
        native.as_secs_f64() / time.as_secs_f64(),
        in_place.as_secs_f64() / time.as_secs_f64(),
        fuel
    );
}

/// The Extism peer's median `transform` on the same frame, when
/// `scripts/bench-extism` built it (`KERNEL_HOST_EXTISM_PEER`,
/// `KERNEL_HOST_EXTISM_PLUGIN`): run here, in this benchmark's run, so the
/// ratios compare like with like. The checksum (sum of |scaled values|)
/// shows it computed what the scaler computes.
fn extism_peer() -> Option<(Duration, f64)> {
    let peer = std::env::var_os("KERNEL_HOST_EXTISM_PEER")?;
    let plugin = std::env::var_os("KERNEL_HOST_EXTISM_PLUGIN")?;
    let out = std::process::Command::new(&peer)
        .arg(&plugin)
        .args([ROWS.to_string(), COLS.to_string(), RUNS.to_string()])
        .output()
        .expect("run the Extism peer");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Extism peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the peer's output: {text}"))
    };
    Some((
        Duration::from_secs_f64(field("median_s=")),
        field("checksum="),
    ))
}

fn rate(rows: usize, d: Duration) -> String {
    format!("{:.1} M rows/s", rows as f64 / d.as_secs_f64() / 1e6)
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sandbox benchmark: run with `cargo bench --bench sandbox`");
        return;
    }
    let data = columns();
    let frame = host_frame(&data);
    println!(
        "standard-scaler transform, {ROWS} rows x {COLS} f64 columns ({} MiB), median of {RUNS}",
        (ROWS * COLS * 8) >> 20
    );
    let in_place = native(&data, false);
    let native_time = native(&data, true);
    println!(
        "{:<46} {:>10} {:>16} {:>10} {:>10} {:>14}",
        "configuration", "time", "throughput", "vs kept", "vs in place", "fuel/call"
    );
    for (name, time) in [
        ("native, input moved in (in place)", in_place),
        ("native, input kept (clone + transform)", native_time),
    ] {
        row(name, time, native_time, in_place, "-".into());
    }
    let scaler = kernel_host_guests::STANDARD_SCALER;
    for (name, metering, kernel, pass) in [
        ("by copy: fuel + yield", Metering::Fuel, scaler, Pass::Copy),
        (
            "by copy: epoch (1 ms tick)",
            Metering::Epoch,
            scaler,
            Pass::Copy,
        ),
        (
            "by copy: fuel + epoch",
            Metering::FuelAndEpoch,
            scaler,
            Pass::Copy,
        ),
        (
            "by copy: unmetered (no limits)",
            Metering::Unmetered,
            scaler,
            Pass::Copy,
        ),
        (
            "by copy: passthrough guest (boundary only)",
            Metering::Fuel,
            kernel_host_guests::HOSTILE,
            Pass::Copy,
        ),
        (
            "by reference, lent: fuel + yield",
            Metering::Fuel,
            scaler,
            Pass::Lent,
        ),
        (
            "by reference, lent: epoch",
            Metering::Epoch,
            scaler,
            Pass::Lent,
        ),
        (
            "by reference, moved: fuel + yield (default)",
            Metering::Fuel,
            scaler,
            Pass::Moved,
        ),
        (
            "by reference, moved: epoch",
            Metering::Epoch,
            scaler,
            Pass::Moved,
        ),
        (
            "by reference, moved: fuel + epoch",
            Metering::FuelAndEpoch,
            scaler,
            Pass::Moved,
        ),
        (
            "by reference, moved: unmetered",
            Metering::Unmetered,
            scaler,
            Pass::Moved,
        ),
    ] {
        let (time, fuel) = futures_lite(sandboxed(metering, kernel, &frame, pass));
        let fuel = if metering.fuel() {
            fuel.to_string()
        } else {
            "-".into()
        };
        row(name, time, native_time, in_place, fuel);
    }
    if let Some((time, checksum)) = extism_peer() {
        row(
            "Extism 1.30, limits on (bytes in and out)",
            time,
            native_time,
            in_place,
            "-".into(),
        );
        let ours = scaled_sum(&data);
        println!(
            "  Extism's |scaled values| sum to {checksum:.12e}, the scaler's to {ours:.12e} ({})",
            if (checksum - ours).abs() <= 1e-9 * ours.abs().max(1.0) {
                "the same computation"
            } else {
                "DIFFERENT: the peer is not computing the same thing"
            }
        );
    }
    println!();
    println!("instantiate + configure, median of 300");
    for (name, pooling) in [
        ("pooling allocator (default)", true),
        ("on-demand allocator", false),
    ] {
        let time = futures_lite(instantiate(pooling));
        println!("{:<34} {:>8.1}µs", name, time.as_secs_f64() * 1e6);
    }
    println!();
    println!("load logistic-regression, median of 51 (the compile: of 5)");
    let cache = tempfile::tempdir().unwrap();
    for (name, dir, verify, new_process, micros) in [
        ("read + hash + compile + describe", None, true, false, false),
        (
            "read + hash + on-disk cache + describe",
            Some(cache.path()),
            true,
            false,
            false,
        ),
        (
            "new process: load record + on-disk cache",
            Some(cache.path()),
            false,
            true,
            true,
        ),
        (
            "same file, same sandbox (default)",
            Some(cache.path()),
            false,
            false,
            true,
        ),
    ] {
        let time = futures_lite(load(dir, verify, new_process));
        if micros {
            println!("{:<40} {:>8.1}µs", name, time.as_secs_f64() * 1e6);
        } else {
            println!("{:<40} {:>8.1}ms", name, time.as_secs_f64() * 1e3);
        }
    }
    println!();
    println!(
        "new process: impute, one-hot, scale, logistic-regression from the on-disk cache, median of 51"
    );
    let (first, all) = futures_lite(pipeline_loads(cache.path(), 51));
    for (name, time) in [
        ("the first kernel (imputer)", first),
        ("all four", all),
        ("all four, a kernel", all / 4),
    ] {
        println!("{:<40} {:>8.1}µs", name, time.as_secs_f64() * 1e6);
    }
}
