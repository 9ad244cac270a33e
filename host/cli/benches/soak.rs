//! `cargo bench --bench soak`: many pipelines at once through the library,
//! hostile kernels mixed in, for minutes.
//!
//! Each round starts `KERNEL_HOST_SOAK_PIPELINES` (default 1000) jobs at
//! once on one sandbox: nine in ten fit and predict the penguins pipeline
//! and must reach exactly the accuracy of a reference run; one in ten runs
//! a hostile kernel (infinite loop, memory bomb, panic, deep recursion,
//! wrong output, host-tensor loop, escape sequences) and must fail with a
//! kernel error naming it. Rounds repeat for `KERNEL_HOST_SOAK_SECS` (default 180).
//! After each round the table shows the process's resident memory and open
//! file descriptors: both must stay flat. Exits non-zero on any wrong
//! outcome or on leaked descriptors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernel_host::job::{JobOptions, Quiet, Source};
use kernel_host::{Plan, Sandbox};
use kernel_host_guests as guests;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// One-step manifests of hostile kernels, each with what must stop it.
fn hostile_plans(dir: &Path) -> Vec<(String, Plan)> {
    std::fs::write(dir.join("d.csv"), "x\n1\n2\n3\n4\n").unwrap();
    let cases = [
        ("loop", guests::HOSTILE, "fuel = 20_000_000"),
        ("loop", guests::HOSTILE, "timeout-ms = 200"),
        ("memory-bomb", guests::HOSTILE, "memory-mib = 32"),
        ("panic", guests::HOSTILE, ""),
        ("recursion", guests::HOSTILE, ""),
        ("wrong-rows", guests::HOSTILE, ""),
        ("escape", guests::HOSTILE, ""),
        ("wide", guests::HOSTILE, ""),
        ("matmul-loop", guests::TENSOR_PROBE, "timeout-ms = 300"),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (behaviour, source, limits))| {
            let path = dir.join(format!("hostile-{i}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[pipeline]\nname = \"{behaviour}\"\nsteps = [\"villain\"]\n\
                     [data]\ntrain = \"d.csv\"\ntest = \"d.csv\"\n\
                     [kernels.villain]\nsource = {source:?}\n\
                     params = {{ behaviour = \"{behaviour}\", target = \"256\" }}\n\
                     limits = {{ {limits} }}\n"
                ),
            )
            .unwrap();
            (
                format!("{behaviour} ({limits})"),
                Plan::load(&path).unwrap(),
            )
        })
        .collect()
}

async fn run(
    sandbox: &Sandbox,
    plan: Plan,
) -> Result<kernel_host::report::RunReport, kernel_host::Error> {
    let options = JobOptions {
        predict: true,
        ..Default::default()
    };
    kernel_host::job::run(sandbox, Source::Plan(plan), &options, &Quiet).await
}

#[derive(Default)]
struct Tally {
    healthy_ok: u64,
    hostile_contained: u64,
    wrong: Vec<String>,
}

fn main() {
    let seconds = env_or("KERNEL_HOST_SOAK_SECS", 180);
    let pipelines = env_or("KERNEL_HOST_SOAK_PIPELINES", 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let workspace = PathBuf::from(guests::WORKSPACE);
    let scratch = tempfile::tempdir().unwrap();
    // KERNEL_HOST_SOAK_POOLING=0 (on-demand memories) and
    // KERNEL_HOST_SOAK_RESIDENT (bytes kept resident per pooled memory)
    // tell pool-slot residency apart from a leak.
    let mut builder = Sandbox::builder()
        .cache_dir(Some(workspace.join("target/test-cache")))
        .pooling(env_or("KERNEL_HOST_SOAK_POOLING", 1) == 1);
    if let Ok(bytes) = std::env::var("KERNEL_HOST_SOAK_RESIDENT") {
        builder = builder.keep_resident(bytes.parse().unwrap());
    }
    // KERNEL_HOST_SOAK_SPARES: spare instances kept for rollbacks (default
    // 16; 0 to compare without).
    if let Ok(spares) = std::env::var("KERNEL_HOST_SOAK_SPARES") {
        builder = builder.spare_instances(spares.parse().unwrap());
    }
    let sandbox = builder.build().unwrap();
    let mut penguins = Plan::load(&workspace.join("examples/penguins/pipeline.toml")).unwrap();
    // Judged by the accuracy; a thousand writers of one file are tested
    // elsewhere.
    penguins.output.predictions = None;
    let hostile = hostile_plans(scratch.path());
    let reference = runtime
        .block_on(run(&sandbox, penguins.clone()))
        .unwrap()
        .metric
        .unwrap();
    println!(
        "soak: {pipelines} pipelines a round ({} hostile), {seconds} s; reference {} {:.4}",
        pipelines / 10,
        reference.0,
        reference.1
    );
    println!(
        "{:>5} | {:>9} | {:>8} | {:>8} | {:>5} | {:>8} | {:>8} | {:>4}",
        "round", "pipelines", "healthy", "hostile", "wrong", "seconds", "RSS MiB", "fds"
    );
    let started = Instant::now();
    let mut rounds = Vec::new();
    let mut failures = Vec::new();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(seconds) || round < 2 {
        round += 1;
        let round_started = Instant::now();
        let tally = runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..pipelines {
                let sandbox = sandbox.clone();
                let (name, plan, healthy) = if i % 10 == 9 {
                    let (name, plan) = &hostile[(i / 10) as usize % hostile.len()];
                    (name.clone(), plan.clone(), false)
                } else {
                    ("penguins".to_string(), penguins.clone(), true)
                };
                tasks.spawn(async move { (name, healthy, run(&sandbox, plan).await) });
            }
            let mut tally = Tally::default();
            while let Some(done) = tasks.join_next().await {
                let (name, healthy, result) = done.unwrap();
                match (healthy, result) {
                    (true, Ok(report)) if report.metric == Some(reference) => tally.healthy_ok += 1,
                    (true, Ok(report)) => tally
                        .wrong
                        .push(format!("{name}: metric {:?}", report.metric)),
                    (true, Err(e)) => tally.wrong.push(format!("{name}: {e}")),
                    (false, Err(kernel_host::Error::Kernel { .. })) => tally.hostile_contained += 1,
                    (false, Err(e)) => tally
                        .wrong
                        .push(format!("{name}: not the kernel's fault: {e}")),
                    (false, Ok(_)) => tally.wrong.push(format!("{name}: succeeded")),
                }
            }
            tally
        });
        let (rss, fds) = (rss_mib(), open_fds());
        println!(
            "{round:>5} | {pipelines:>9} | {:>8} | {:>8} | {:>5} | {:>8.1} | {rss:>8.0} | {fds:>4}",
            tally.healthy_ok,
            tally.hostile_contained,
            tally.wrong.len(),
            round_started.elapsed().as_secs_f64()
        );
        failures.extend(tally.wrong.into_iter().take(5));
        rounds.push((rss, fds));
    }
    let total = round * pipelines;
    let (first_rss, first_fds) = rounds[0];
    let (last_rss, last_fds) = rounds[rounds.len() - 1];
    let peak_rss = rounds.iter().map(|r| r.0).fold(0.0, f64::max);
    println!(
        "{total} pipelines in {:.0} s ({:.0}/s); RSS after round 1 {first_rss:.0} MiB, last {last_rss:.0} MiB, peak {peak_rss:.0} MiB; fds {first_fds} → {last_fds}",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    for failure in &failures {
        println!("wrong: {failure}");
    }
    if !failures.is_empty() || last_fds > first_fds + 8 {
        std::process::exit(1);
    }
}
