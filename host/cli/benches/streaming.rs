//! `cargo bench --bench streaming`: inputs larger than memory.
//!
//! 1. Generates a CSV of `KERNEL_HOST_BENCH_GB` gigabytes (default 0.5) and
//!    a test file a fifth of that size, then measures, in the same run,
//!    - a plain parse of the training file by the same chunked reader the
//!      host uses (the floor: reading the bytes at all), and
//!    - `kernel-host run` of impute → one-hot → scale → SGD logistic
//!      regression in chunks of 65 536 rows, as a child process, with its
//!      peak resident memory (getrusage). A chunked fit parses the
//!      training file once and makes one pass per wave of the graph (here
//!      4; the later three read what the previous one spilled), then
//!      parses the test file once. Both processes allocate with mimalloc.
//! 2. The parallel transform speedup: the scaler on 2M rows × 8 columns
//!    with `parallel = 2` against one instance.
//!
//! Files go to `KERNEL_HOST_BENCH_DIR` (default: target/bench-data).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernel_host::bindings::{Column, ColumnValues, Frame};
use kernel_host::data::generate::{Task, generate};
use kernel_host::data::{CsvChunks, CsvOptions};
use kernel_host::{Pipeline, Sandbox};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The command line's allocator, so the plain parse pays what the run pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Peak resident memory of waited-for children, bytes.
fn children_max_rss() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as u64 * 1024
}

fn manifest(dir: &Path, kernels: &Path) -> PathBuf {
    let k = |f: &str| kernels.join(f).display().to_string();
    let text = format!(
        "[pipeline]\nname = \"bench\"\nsteps = [\"impute\", \"encode\", \"scale\", \"model\"]\n\
         [data]\ntrain = \"train.csv\"\ntest = \"test.csv\"\ntarget = \"label\"\nchunk-rows = 65536\n\
         [output]\npredictions = \"predictions.csv\"\n\
         [defaults.limits]\nfuel = 1_000_000_000_000\ntimeout-ms = 600_000\n\
         [kernels.impute]\nsource = {:?}\nparams = {{ strategy = \"mean\", string_strategy = \"most_frequent\" }}\n\
         [kernels.encode]\nsource = {:?}\n[kernels.scale]\nsource = {:?}\n\
         [kernels.model]\nsource = {:?}\nparams = {{ eta0 = 0.05 }}\n",
        k("simple_imputer.wasm"),
        k("one_hot_encoder.wasm"),
        k("standard_scaler.wasm"),
        k("sgd_classifier.wasm")
    );
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn streaming() {
    let gb: f64 = std::env::var("KERNEL_HOST_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let dir = std::env::var_os("KERNEL_HOST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(kernel_host_guests::WORKSPACE).join("target/bench-data"));
    std::fs::create_dir_all(&dir).unwrap();
    // The generator writes ~127 bytes a row.
    let rows = (gb * 1e9 / 127.0) as u64;
    let (train, test) = (dir.join("train.csv"), dir.join("test.csv"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if size(&train) < (gb * 0.95e9) as u64 || size(&train) > (gb * 1.05e9) as u64 {
        println!("generating {rows} rows (~{gb} GB) in {}", dir.display());
        generate(&train, rows, 1, Task::Classification, |_| {}).unwrap();
        generate(&test, rows / 5, 2, Task::Classification, |_| {}).unwrap();
    }
    let (train_bytes, test_bytes) = (size(&train), size(&test));

    let started = Instant::now();
    let mut chunks = CsvChunks::open(&train, &CsvOptions::default(), 10_000).unwrap();
    let mut parsed = 0u64;
    while let Some(chunk) = chunks.next_chunk(65_536).unwrap() {
        parsed += u64::from(chunk.rows);
    }
    let parse = started.elapsed();
    let parse_rate = mib(train_bytes) / parse.as_secs_f64();

    let kernels = Path::new(kernel_host_guests::STANDARD_SCALER)
        .parent()
        .unwrap()
        .to_path_buf();
    let manifest = manifest(&dir, &kernels);
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kernel-host"))
        .args(["run", "-q"])
        .arg(&manifest)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let run = started.elapsed();
    assert!(status.success(), "the pipeline run failed");
    let rss = children_max_rss();
    let passes = 4.0 * mib(train_bytes) + mib(test_bytes);

    println!("chunked pipeline (impute -> one-hot -> scale -> SGD), chunks of 65536 rows");
    println!(
        "  training file {:.0} MiB ({parsed} rows), test file {:.0} MiB",
        mib(train_bytes),
        mib(test_bytes)
    );
    println!(
        "{:<46} {:>10} {:>12} {:>10}",
        "", "time", "MiB/s", "vs parse"
    );
    println!(
        "{:<46} {:>9.1}s {:>12.1} {:>10}",
        "plain parse of the training file (same reader)",
        parse.as_secs_f64(),
        parse_rate,
        "1.00x"
    );
    let input_rate = (mib(train_bytes) + mib(test_bytes)) / run.as_secs_f64();
    println!(
        "{:<46} {:>9.1}s {:>12.1} {:>9.2}x",
        "run: input bytes / time",
        run.as_secs_f64(),
        input_rate,
        input_rate / parse_rate
    );
    let pass_rate = passes / run.as_secs_f64();
    println!(
        "{:<46} {:>9.1}s {:>12.1} {:>9.2}x",
        "run: 4 fit passes (3 from the spill) + predict",
        run.as_secs_f64(),
        pass_rate,
        pass_rate / parse_rate
    );
    println!("  peak resident memory of the run: {:.0} MiB", mib(rss));
}

/// Median time of a `parallel`-instance transform of `frame` by `kernel`,
/// fitted first on the first rows.
fn transform_time(
    runtime: &tokio::runtime::Runtime,
    kernel: &str,
    params: &[(&str, i64)],
    frame: &Frame,
    parallel: i64,
) -> Duration {
    runtime.block_on(async {
        let mut def = kernel_host::builder::KernelDef::new(kernel).memory_mib(2048);
        for (name, value) in params {
            def = def.param(name, *value);
        }
        let manifest = kernel_host::Plan::builder(".")
            .kernel("k", def)
            .step(kernel_host::builder::StepDef::new("k").parallel(parallel))
            // A manifest must name a data file; the frames are fed directly.
            .train(kernel)
            .build()
            .unwrap();
        let sandbox = Sandbox::builder().cache_dir(None).build().unwrap();
        let mut pipeline = Pipeline::load(&sandbox, manifest).await.unwrap();
        let step = &mut pipeline.steps_mut()[0];
        step.instance
            .fit(&frame.slice_rows(0, 50_000), None)
            .await
            .unwrap();
        step.transform(frame).await.unwrap();
        let mut samples = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            step.transform(frame).await.unwrap();
            samples.push(started.elapsed());
        }
        samples.sort();
        samples[2]
    })
}

fn parallel() {
    let rows = 2_000_000;
    let frame = Frame {
        rows: rows as u32,
        columns: (0..8)
            .map(|j| Column {
                name: format!("c{j}"),
                values: ColumnValues::F64(
                    (0..rows).map(|i| ((i * (j + 7)) % 1013) as f64).collect(),
                ),
                nulls: None,
            })
            .collect(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("\nparallel transform on {rows} rows x 8 columns, 2 cores, median of 5");
    println!(
        "{:<52} {:>11} {:>11} {:>8}",
        "", "1 instance", "2 instances", "speedup"
    );
    // (what, kernel, params)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, i64)]);
    let cases: [Case; 2] = [
        (
            "standard scaler (memory-bound)",
            kernel_host_guests::STANDARD_SCALER,
            &[],
        ),
        (
            "k-means distances to 16 centres (compute-bound)",
            kernel_host_guests::K_MEANS,
            &[("k", 16), ("max_iter", 5)],
        ),
    ];
    for (name, kernel, params) in cases {
        let one = transform_time(&runtime, kernel, params, &frame, 1);
        let two = transform_time(&runtime, kernel, params, &frame, 2);
        println!(
            "{:<52} {:>9.1}ms {:>9.1}ms {:>7.2}x",
            name,
            one.as_secs_f64() * 1e3,
            two.as_secs_f64() * 1e3,
            one.as_secs_f64() / two.as_secs_f64()
        );
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("streaming benchmark: run with `cargo bench --bench streaming`");
        return;
    }
    // Streaming first: the run's peak memory is read from getrusage, where
    // a spawned child can be charged with its parent's resident pages.
    // `KERNEL_HOST_BENCH_STREAMING=0`: the parallel transforms alone.
    if std::env::var("KERNEL_HOST_BENCH_STREAMING").as_deref() != Ok("0") {
        streaming();
    }
    parallel();
}
