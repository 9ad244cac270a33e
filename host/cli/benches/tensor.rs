//! `cargo bench --bench tensor`: the host tensor API against direct calls.
//!
//! 1. `n x n` f32 matrix products, n = 1024 and 4096: called by a kernel
//!    through the tensor API (a `transform` of the tensor-probe guest that
//!    multiplies two host tensors and reads back one row), against ndarray
//!    called directly in this process, and numpy's `@` for context (when
//!    python3 with numpy is installed).
//! 2. With a CUDA GPU: the same product on the GPU through the API against
//!    a raw cuBLAS sgemm through cudarc, and an MLP training step on the CPU
//!    and on the GPU.
//!
//! Medians; compare ratios within one run. `KERNEL_HOST_BENCH_SIZES=1024`
//! limits the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::median;

use kernel_host::bindings::{Column, ColumnValues, Frame, Param, ParamValue};
use kernel_host::tensor::{Backend, CudaProbe, DeviceChoice, probe_cuda};
use kernel_host::{Grants, KernelComponent, Limits, Sandbox};
use std::path::Path;
use std::time::{Duration, Instant};

/// A guest component: from the build, or from `KERNEL_HOST_GUESTS_DIR`
/// (where `scripts/gpu-check.sh` puts them on another machine).
fn guest(built: &str) -> std::path::PathBuf {
    match std::env::var_os("KERNEL_HOST_GUESTS_DIR") {
        Some(dir) => Path::new(&dir).join(Path::new(built).file_name().unwrap()),
        None => built.into(),
    }
}

fn gflops(n: usize, d: Duration) -> f64 {
    2.0 * (n as f64).powi(3) / d.as_secs_f64() / 1e9
}

fn runs(n: usize) -> usize {
    if n >= 4096 { 3 } else { 9 }
}

fn limits() -> Limits {
    Limits {
        fuel: u64::MAX / 4,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
        tensor_bytes: 8 << 30,
    }
}

fn param(name: &str, value: &str) -> Param {
    Param {
        name: name.into(),
        value: ParamValue::String(value.into()),
    }
}

fn tiny_frame() -> Frame {
    Frame {
        rows: 1,
        columns: vec![Column {
            name: "x".into(),
            values: ColumnValues::F64(vec![0.0]),
            nulls: None,
        }],
    }
}

/// The product through the API, from a kernel, on `device`.
async fn through_api(device: DeviceChoice, n: usize) -> Duration {
    let sandbox = Sandbox::builder().device(device).build().unwrap();
    let probe = KernelComponent::load(
        &sandbox,
        "probe",
        &guest(kernel_host_guests::TENSOR_PROBE),
        None,
    )
    .await
    .unwrap();
    let mut kernel = probe
        .instantiate(limits(), Grants::default())
        .await
        .unwrap();
    kernel
        .configure(&[
            param("behaviour", "matmul"),
            param("target", &n.to_string()),
        ])
        .await
        .unwrap();
    kernel.fit(&tiny_frame(), None).await.unwrap();
    let x = tiny_frame();
    kernel.transform(&x).await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..runs(n) {
        let started = Instant::now();
        kernel.transform(&x).await.unwrap();
        samples.push(started.elapsed());
    }
    median(samples)
}

fn ndarray_direct(n: usize) -> Duration {
    let a =
        ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 - 6.0);
    let b = ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| {
        ((i * 5 + j * 11) % 17) as f32 - 8.0
    });
    std::hint::black_box(a.dot(&b));
    median(
        (0..runs(n))
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(a.dot(&b));
                started.elapsed()
            })
            .collect(),
    )
}

fn numpy(n: usize) -> Option<Duration> {
    let script = format!(
        "import numpy as np, time\n\
         a = np.random.rand({n}, {n}).astype(np.float32); b = np.random.rand({n}, {n}).astype(np.float32)\n\
         a @ b\n\
         t = []\n\
         for _ in range({}):\n    s = time.perf_counter(); a @ b; t.append(time.perf_counter() - s)\n\
         t.sort(); print(t[len(t) // 2])",
        runs(n)
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .env(
            "OMP_NUM_THREADS",
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        )
        .output()
        .ok()?;
    let Ok(seconds) = String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() else {
        eprintln!("numpy: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    };
    Some(Duration::from_secs_f64(seconds))
}

fn cublas_direct(n: usize) -> Option<Duration> {
    let CudaProbe::Ready(cuda) = probe_cuda() else {
        return None;
    };
    let host: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 - 6.0).collect();
    let a = cuda.upload_raw(&host).unwrap();
    let b = cuda.upload_raw(&host).unwrap();
    let shape = (n, n, false);
    cuda.sgemm(&a, shape, &b, shape).unwrap();
    cuda.synchronize().unwrap();
    Some(median(
        (0..runs(n))
            .map(|_| {
                let started = Instant::now();
                let c = cuda.sgemm(&a, shape, &b, shape).unwrap();
                cuda.synchronize().unwrap();
                drop(c);
                started.elapsed()
            })
            .collect(),
    ))
}

/// One MLP training step (a minibatch of 1024 rows, 64 features, 512
/// hidden units), from a one-epoch fit on 16 384 rows.
async fn mlp_step(device: DeviceChoice) -> Duration {
    let sandbox = Sandbox::builder().device(device).build().unwrap();
    let mlp = KernelComponent::load(
        &sandbox,
        "mlp",
        &guest(kernel_host_guests::MLP_CLASSIFIER),
        None,
    )
    .await
    .unwrap();
    let mut kernel = mlp.instantiate(limits(), Grants::default()).await.unwrap();
    let int = |name: &str, v: i64| Param {
        name: name.into(),
        value: ParamValue::S64(v),
    };
    kernel
        .configure(&[
            int("hidden", 512),
            int("epochs", 1),
            int("batch_size", 1024),
        ])
        .await
        .unwrap();
    let rows = 16_384;
    let x = common::random_frame(rows, 64, "f", 7);
    let y = Column {
        name: "y".into(),
        values: ColumnValues::String((0..rows).map(|i| format!("c{}", i % 4)).collect()),
        nulls: None,
    };
    kernel.fit(&x, Some(&y)).await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        kernel.fit(&x, Some(&y)).await.unwrap();
        samples.push(started.elapsed() / (rows as u32 / 1024));
    }
    median(samples)
}

fn main() {
    kernel_host::tune_process_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sizes: Vec<usize> = std::env::var("KERNEL_HOST_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1024, 4096]);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "## Matrix product, f32, CPU ({threads} cores; matrixmultiply runs at most 4 threads, numpy all)\n"
    );
    println!("| n | ndarray direct | through the tensor API | API / direct | numpy `@` |");
    println!("|---|---|---|---|---|");
    for &n in &sizes {
        let direct = ndarray_direct(n);
        let api = runtime.block_on(through_api(DeviceChoice::Cpu, n));
        let np = numpy(n).map_or("not installed".to_string(), |d| {
            format!(
                "{:.1} ms ({:.0} GFLOP/s)",
                d.as_secs_f64() * 1e3,
                gflops(n, d)
            )
        });
        println!(
            "| {n} | {:.1} ms ({:.0} GFLOP/s) | {:.1} ms ({:.0} GFLOP/s) | {:.2}x | {np} |",
            direct.as_secs_f64() * 1e3,
            gflops(n, direct),
            api.as_secs_f64() * 1e3,
            gflops(n, api),
            direct.as_secs_f64() / api.as_secs_f64(),
        );
    }

    println!("\n## CUDA\n");
    match probe_cuda() {
        CudaProbe::Unavailable(why) => println!("skipped: {why}"),
        CudaProbe::Ready(cuda) => {
            println!("device: {}\n", cuda.describe());
            println!("| n | raw cuBLAS (cudarc) | through the tensor API | API / raw |");
            println!("|---|---|---|---|");
            for &n in &sizes {
                let raw = cublas_direct(n).unwrap();
                let api = runtime.block_on(through_api(DeviceChoice::Cuda, n));
                println!(
                    "| {n} | {:.2} ms ({:.0} GFLOP/s) | {:.2} ms ({:.0} GFLOP/s) | {:.2}x |",
                    raw.as_secs_f64() * 1e3,
                    gflops(n, raw),
                    api.as_secs_f64() * 1e3,
                    gflops(n, api),
                    raw.as_secs_f64() / api.as_secs_f64(),
                );
            }
            let cpu = runtime.block_on(mlp_step(DeviceChoice::Cpu));
            let gpu = runtime.block_on(mlp_step(DeviceChoice::Cuda));
            println!(
                "\nMLP training step (1024 x 64 -> 512 -> 4, Adam): CPU {:.2} ms, GPU {:.2} ms ({:.1}x)",
                cpu.as_secs_f64() * 1e3,
                gpu.as_secs_f64() * 1e3,
                cpu.as_secs_f64() / gpu.as_secs_f64()
            );
        }
    }
}
