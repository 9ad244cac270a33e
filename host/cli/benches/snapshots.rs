//! `cargo bench --bench snapshots`: what transparent snapshots cost.
//!
//! 1. For a kernel holding 1 MiB and 64 MiB of state (the `opaque` test
//!    guest, which cannot export its state): taking a snapshot; rolling
//!    back to a checkpoint (held across a fit that changed the state), and
//!    after a fit that traps: with spare instances restored ahead with
//!    states up to 4 MiB (default; larger states are rolled back without
//!    one), no spares (new store + instance + writing the image), and every
//!    state restored ahead; against
//!    the physical floor measured in the same run: a host memcpy of the same
//!    bytes into fresh memory (page faults included, as a restore into a new
//!    instance has them) and into memory already touched.
//! 2. The overhead on a pipeline `fit`: the same fits in a sandbox with
//!    snapshots on and one with them off.
//!
//! Medians of several runs; compare ratios within one run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::median;

use kernel_host::bindings::{Column, Frame, Param, ParamValue};
use kernel_host::{Grants, KernelComponent, KernelInstance, Limits, Pipeline, Plan, Sandbox};
use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

/// Samples of each rollback median (they are short and noisy).
const ROLLBACK_RUNS: usize = 31;

fn sandbox(snapshots: bool) -> Sandbox {
    Sandbox::builder().snapshots(snapshots).build().unwrap()
}

/// Pooled memory kept resident between instances: the default, and enough
/// for the 64 MiB kernel.
const KEEP_RESIDENT: [(usize, &str); 3] = [
    (2 << 20, "2 MiB (default)"),
    (8 << 20, "8 MiB"),
    (80 << 20, "80 MiB"),
];

fn frame(rows: usize, cols: usize) -> Frame {
    common::random_frame(rows, cols, "c", 0x9E37_79B9_7F4A_7C15)
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// Median time of `f` over [`RUNS`] runs (after one warm-up).
fn time(mut f: impl FnMut() -> Duration) -> Duration {
    f();
    median((0..RUNS).map(|_| f()).collect())
}

fn param(name: &str, value: ParamValue) -> Param {
    Param {
        name: name.into(),
        value,
    }
}

/// An `opaque` kernel holding `mib` MiB of state, fitted once (so it has a
/// snapshot); `fail = "trap"` from its second fit on, if `trap`.
async fn opaque(sandbox: &Sandbox, mib: i64, trap: bool) -> KernelInstance {
    let component = KernelComponent::load(
        sandbox,
        "opaque",
        Path::new(kernel_host_guests::OPAQUE),
        None,
    )
    .await
    .unwrap();
    let limits = Limits {
        fuel: u64::MAX / 4,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
        ..Limits::default()
    };
    let mut kernel = component
        .instantiate(limits, Grants::default())
        .await
        .unwrap();
    let mut params = vec![param("state-mib", ParamValue::S64(mib))];
    if trap {
        params.push(param("fail", ParamValue::String("trap".into())));
        params.push(param("fail-from", ParamValue::S64(2)));
    }
    kernel.configure(&params).await.unwrap();
    kernel.fit(&frame(1000, 4), None).await.unwrap();
    kernel
}

/// Median and 90th percentile time of a rollback after a fit that traps
/// (every fit after the first does, so each comes right after the last
/// rollback: the slowest case for a spare still being readied), from the
/// kernel's own count of its rollbacks' time.
async fn trap_rollbacks(sandbox: &Sandbox, mib: i64) -> (Duration, Duration) {
    let mut kernel = opaque(sandbox, mib, true).await;
    let x = frame(1000, 4);
    let mut samples = Vec::new();
    for _ in 0..=ROLLBACK_RUNS {
        let before = kernel.stats();
        assert!(kernel.fit(&x, None).await.is_err(), "the fit should trap");
        let after = kernel.stats();
        assert_eq!(after.rollbacks, before.rollbacks + 1, "one rollback a trap");
        samples.push(after.rollback_time - before.rollback_time);
    }
    let mut samples = samples[1..].to_vec();
    samples.sort();
    (median(samples.clone()), samples[samples.len() * 9 / 10])
}

async fn state_sizes(keep_resident: usize, label: &str, spares: usize, ahead: u64) {
    let sandbox = Sandbox::builder()
        .keep_resident(keep_resident)
        .spare_instances(spares)
        .restore_ahead(ahead)
        .build()
        .unwrap();
    let spares = match (spares, ahead) {
        (0, _) => "none".to_string(),
        (kernel_host::SPARE_INSTANCES, kernel_host::RESTORE_AHEAD) => {
            format!("{spares} / {} MiB (default)", ahead >> 20)
        }
        _ => format!("{spares} / {} MiB", ahead >> 20),
    };
    for mib in [1i64, 64] {
        let mut kernel = opaque(&sandbox, mib, false).await;
        let image = kernel.snapshot().unwrap();
        // The floor: copying the memory the kernel holds (the image's
        // whole memory, which a dense restore writes).
        let (held, bytes) = (image.bytes() as usize, image.memory_bytes() as usize);

        let mut snapshot = Vec::new();
        for _ in 0..=RUNS {
            let started = Instant::now();
            kernel.snapshot_now().await.unwrap();
            snapshot.push(started.elapsed());
        }
        // Back to a checkpoint after a fit changed the state (as a
        // pipeline does when a later step fails).
        let x = frame(1000, 4);
        let mut restore = Vec::new();
        for _ in 0..=ROLLBACK_RUNS {
            let checkpoint = kernel.checkpoint().await.unwrap();
            kernel.fit(&x, None).await.unwrap();
            let started = Instant::now();
            kernel.rollback_to(checkpoint).await.unwrap();
            restore.push(started.elapsed());
        }
        let (trapped, trapped_p90) = trap_rollbacks(&sandbox, mib).await;

        let source = vec![7u8; bytes];
        let fresh = time(|| {
            let started = Instant::now();
            let mut copy = Vec::with_capacity(bytes);
            copy.extend_from_slice(&source);
            std::hint::black_box(&copy);
            let took = started.elapsed();
            drop(copy);
            took
        });
        let mut target = vec![0u8; bytes];
        let touched = time(|| {
            let started = Instant::now();
            target.copy_from_slice(&source);
            std::hint::black_box(&target);
            started.elapsed()
        });
        let (snapshot, restore) = (
            median(snapshot[1..].to_vec()),
            median(restore[1..].to_vec()),
        );
        println!(
            "| {mib} MiB | {label} | {spares} | {:.1} / {:.1} MiB | {} | {} | {} (p90 {}) | {} | {} | {ratio:.prec$}x |",
            held as f64 / (1 << 20) as f64,
            bytes as f64 / (1 << 20) as f64,
            show(snapshot),
            show(restore),
            show(trapped),
            show(trapped_p90),
            show(fresh),
            show(touched),
            ratio = trapped.as_secs_f64() / fresh.as_secs_f64(),
            // Enough digits to show a ratio of a thousandth.
            prec = if trapped * 100 < fresh { 4 } else { 2 },
        );
    }
}

/// A pipeline fit timed with snapshots on and off, alternating fits so
/// that drift in the machine's speed hits both alike.
async fn fit_overhead(name: &str, manifest: &Plan, x: &Frame, y: Option<&Column>) {
    let mut on = Pipeline::load(&sandbox(true), manifest.clone())
        .await
        .unwrap();
    let mut off = Pipeline::load(&sandbox(false), manifest.clone())
        .await
        .unwrap();
    let mut samples = [Vec::new(), Vec::new()];
    for run in 0..=3 * RUNS {
        for (pipeline, which) in [(&mut on, 0), (&mut off, 1)] {
            let started = Instant::now();
            pipeline.fit(x.clone(), y).await.unwrap();
            if run > 0 {
                samples[which].push(started.elapsed());
            }
        }
    }
    let snapshot_time: Duration = on.steps().iter().map(|s| s.stats().snapshot_time).sum();
    let snapshots: u64 = on.steps().iter().map(|s| s.stats().snapshots).sum();
    let each = snapshot_time / u32::try_from(snapshots.max(1)).unwrap_or(u32::MAX);
    let [on, off] = samples.map(median);
    println!(
        "| {name} | {} | {} | {} | {:+.1}% |",
        show(each),
        show(on),
        show(off),
        (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("## Snapshot and restore\n");
    println!(
        "| state | kept resident | spare instances / restored ahead up to | image held / memory | snapshot | rollback to a checkpoint | rollback after a trap | memcpy, fresh pages | memcpy, touched pages | rollback after a trap / fresh memcpy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (spares, ahead) = (kernel_host::SPARE_INSTANCES, kernel_host::RESTORE_AHEAD);
    for (bytes, label) in KEEP_RESIDENT {
        for (spares, ahead) in [(spares, ahead), (0, 0)] {
            runtime.block_on(state_sizes(bytes, label, spares, ahead));
        }
    }
    // Every state restored ahead, 64 MiB included (default residency).
    let (bytes, label) = KEEP_RESIDENT[0];
    runtime.block_on(state_sizes(bytes, label, spares, 80 << 20));

    println!("\n## Snapshot overhead on a pipeline fit\n");
    println!(
        "| pipeline | one snapshot (mean) | fit, snapshots on | fit, snapshots off | overhead |"
    );
    println!("|---|---|---|---|---|");
    runtime.block_on(async {
        let workspace = Path::new(kernel_host_guests::WORKSPACE);
        let penguins = Plan::load(&workspace.join("examples/penguins/pipeline.toml")).unwrap();
        let (x_train, y_train) = kernel_host::job::training_data(&penguins).unwrap();
        fit_overhead(
            "penguins (impute, one-hot, scale, logistic; 258 rows)",
            &penguins,
            &x_train,
            y_train.as_ref(),
        )
        .await;

        let dir = std::env::temp_dir().join(format!("kh-snapshot-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("d.csv"), "c0\n1\n").unwrap();
        let text = format!(
            "[pipeline]\nsteps = [\"scale\", \"cluster\"]\n[data]\ntrain = \"d.csv\"\n\
             [kernels.scale]\nsource = {:?}\n\
             [kernels.cluster]\nsource = {:?}\nparams = {{ k = 8, seed = 1, max_iter = 20 }}\nlimits = {{ memory-mib = 1024, fuel = 1000000000000 }}\n",
            kernel_host_guests::STANDARD_SCALER,
            kernel_host_guests::K_MEANS,
        );
        std::fs::write(dir.join("m.toml"), text).unwrap();
        let synthetic = Plan::load(&dir.join("m.toml")).unwrap();
        fit_overhead(
            "scale + k-means, 200k rows x 8",
            &synthetic,
            &frame(200_000, 8),
            None,
        )
        .await;
        std::fs::remove_dir_all(&dir).ok();
    });
}
