//! `cargo bench --bench tune`: how good is TPE?
//!
//! On examples/penguins and on a generated data set (2000 rows, strings
//! with holes, impute → one-hot → scale → SGD classifier), with the same
//! search space, folds (3, stratified) and number of trials:
//! - TPE's best cross-validated accuracy after N trials vs random search's,
//!   mean over 5 seeds (the same seed family for both);
//! - scikit-learn's RandomizedSearchCV-style search (ParameterSampler +
//!   cross_val_score, same space) given the wall-clock time TPE took, when
//!   `KERNEL_HOST_SKLEARN_PYTHON` names a Python with scikit-learn and
//!   pandas (`eval "$(scripts/bench-venv)"` makes one and sets it).
//!
//! Env: KERNEL_HOST_TUNE_TRIALS (default 20), KERNEL_HOST_TUNE_SEEDS (5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernel_host::select::tune::{self, TuneOptions};
use kernel_host::select::{self, Dataset};
use kernel_host::{Plan, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Case {
    name: &'static str,
    manifest: PathBuf,
    /// The search space, as `--param` would give it.
    space: Vec<String>,
    /// For the scikit-learn script.
    data: PathBuf,
    sklearn_model: &'static str,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cases() -> Vec<Case> {
    let root = workspace();
    let dir = root.join("target/bench-tune");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("synthetic.csv");
    if !data.exists() {
        kernel_host::data::generate::generate(
            &data,
            2000,
            7,
            kernel_host::data::generate::Task::Classification,
            |_| {},
        )
        .unwrap();
    }
    let guests = root.join("target/guests/wasm32-wasip2/release");
    let manifest = dir.join("synthetic.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"[pipeline]
name = "synthetic-sgd"
steps = ["impute", "encode", "scale", "model"]

[data]
train = "{data}"
target = "label"

[kernels.impute]
source = "{g}/simple_imputer.wasm"
params = {{ strategy = "mean", string_strategy = "most_frequent" }}

[kernels.encode]
source = "{g}/one_hot_encoder.wasm"
params = {{ handle_unknown = "ignore" }}

[kernels.scale]
source = "{g}/standard_scaler.wasm"

[kernels.model]
source = "{g}/sgd_classifier.wasm"
"#,
            data = data.display(),
            g = guests.display()
        ),
    )
    .unwrap();
    vec![
        Case {
            name: "penguins (logistic regression)",
            manifest: root.join("examples/penguins/pipeline.toml"),
            space: vec![
                "model.c=log(0.0001,10000)".into(),
                "model.tol=log(0.00000001,0.01)".into(),
                "model.max_iter=logint(1,1000)".into(),
            ],
            data: root.join("examples/penguins/data/train.csv"),
            sklearn_model: "logistic",
        },
        Case {
            name: "synthetic 2000 rows (SGD classifier)",
            manifest,
            space: vec![
                "model.alpha=log(0.000001,1)".into(),
                "model.eta0=log(0.0001,1)".into(),
                "model.epochs=int(1,20)".into(),
            ],
            data,
            sklearn_model: "sgd",
        },
    ]
}

fn main() {
    let trials = env_or("KERNEL_HOST_TUNE_TRIALS", 20);
    let seeds = env_or("KERNEL_HOST_TUNE_SEEDS", 5) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::builder()
        .cache_dir(Some(workspace().join("target/test-cache")))
        .build()
        .unwrap();
    println!(
        "{trials} trials, 3-fold CV, {seeds} seeds; best cross-validated accuracy (mean over seeds)\n"
    );
    println!(
        "{:<38} {:>10} {:>10} {:>9} {:>12} {:>14} {:>10}",
        "data set", "TPE", "random", "TPE-rand", "TPE time", "scikit-learn", "sk trials"
    );
    for case in cases() {
        let plan = Plan::load(&case.manifest).unwrap();
        let (tpe, random, seconds) = runtime.block_on(async {
            let space = tune::space(&sandbox, &plan, &case.space).await.unwrap();
            let mut tpe = Vec::new();
            let mut random = Vec::new();
            let mut seconds = Vec::new();
            for seed in 0..seeds {
                let data: Arc<Dataset> =
                    Arc::new(select::prepare(&sandbox, &plan, 3, seed).await.unwrap());
                for use_random in [false, true] {
                    let options = TuneOptions {
                        budget: Duration::from_secs(3600),
                        trials: Some(trials),
                        jobs: 1,
                        seed,
                        metric: None,
                        random: use_random,
                        startup: 8,
                    };
                    let started = Instant::now();
                    let t = tune::tune(
                        &sandbox,
                        &plan,
                        data.clone(),
                        space.clone(),
                        &options,
                        &|_| {},
                    )
                    .await
                    .unwrap();
                    let best = t
                        .trials
                        .iter()
                        .filter_map(|x| x.score)
                        .fold(f64::NEG_INFINITY, f64::max);
                    if use_random {
                        random.push(best);
                    } else {
                        tpe.push(best);
                        seconds.push(started.elapsed().as_secs_f64());
                    }
                }
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            (mean(&tpe), mean(&random), mean(&seconds))
        });
        let (sk, sk_trials) = sklearn(&case, seconds, seeds);
        println!(
            "{:<38} {:>10.4} {:>10.4} {:>+9.4} {:>11.2}s {:>14} {:>10}",
            case.name,
            tpe,
            random,
            tpe - random,
            seconds,
            sk,
            sk_trials
        );
    }
}

/// scikit-learn's random search with the same space, budget and folds
/// count: (best accuracy, trials), or why it did not run.
fn sklearn(case: &Case, budget: f64, seeds: u64) -> (String, String) {
    let Ok(python) = std::env::var("KERNEL_HOST_SKLEARN_PYTHON") else {
        return ("skipped".into(), "(no python)".into());
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tune_sklearn.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&case.data)
        .arg(case.sklearn_model)
        .arg(format!("{budget}"))
        .arg(seeds.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut parts = text.split_whitespace();
            (
                parts.next().unwrap_or("?").to_string(),
                parts.next().unwrap_or("?").to_string(),
            )
        }
        Ok(o) => (
            format!(
                "failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
            String::new(),
        ),
        Err(e) => (format!("failed: {e}"), String::new()),
    }
}
