//! `validate`: check a manifest and everything it names without running the
//! job, report every problem at once, and, given a sample size, measure a
//! dry run on the first rows and extrapolate each step's cost to the full
//! input against its limits.

use crate::Plan;
use crate::Sandbox;
use crate::bindings::{Column, Frame};
use crate::limits::Limits;
use crate::pipeline::Pipeline;
use crate::telemetry::Telemetry;
use std::path::Path;
use std::time::Duration;

/// What validation found.
#[derive(Debug, Default)]
pub struct Validation {
    /// Every problem, each a complete message with its location.
    pub problems: Vec<String>,
    /// `id → name@version` of every kernel that passed its checks.
    pub kernels: Vec<(String, String)>,
    /// Rows in the training input, when it could be read.
    pub train_rows: Option<u64>,
    /// Rows in the test input, when there is one.
    pub test_rows: Option<u64>,
    /// Projected cost of each step's calls, with `--sample`.
    pub estimates: Vec<Estimate>,
    /// Remarks that are not problems (e.g. why no sample run happened).
    pub notes: Vec<String>,
}

impl Validation {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One step's measured cost on the sample, scaled to the full input.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub step: String,
    pub operation: &'static str,
    pub sample_rows: u64,
    pub full_rows: u64,
    pub fuel_per_row: f64,
    pub seconds_per_row: f64,
    pub projected_fuel: f64,
    pub projected_time: Duration,
    /// Linear memory at the end of the sample call, and projected.
    pub sample_memory: u64,
    pub projected_memory: f64,
    pub limits: Limits,
}

impl Estimate {
    /// Problems with the projection against the limits, if any.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let rows = human_count(self.full_rows as f64);
        if self.projected_fuel > self.limits.fuel as f64 {
            problems.push(format!(
                "step `{}` will need ~{:.1e} fuel for `{}` on {rows} rows; its limit is {:.1e} per call: raise `limits.fuel`",
                self.step, self.projected_fuel, self.operation, self.limits.fuel as f64
            ));
        }
        if self.projected_time > self.limits.timeout {
            problems.push(format!(
                "step `{}` will need ~{:.1} s for `{}` on {rows} rows; its timeout is {:.1} s: raise `limits.timeout-ms`",
                self.step,
                self.projected_time.as_secs_f64(),
                self.operation,
                self.limits.timeout.as_secs_f64()
            ));
        }
        if self.projected_memory > self.limits.memory_bytes as f64 {
            problems.push(format!(
                "step `{}` will need ~{:.0} MiB of memory for `{}` on {rows} rows; its limit is {} MiB: raise `limits.memory-mib`",
                self.step,
                self.projected_memory / (1 << 20) as f64,
                self.operation,
                self.limits.memory_bytes >> 20
            ));
        }
        problems
    }
}

fn human_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Validates a bundle: every part's hash, and every kernel loaded,
/// configured and restored as `predict` would. There is no data to check:
/// a bundle is not refitted.
pub async fn validate_bundle(mut bundle: crate::bundle::Bundle) -> Validation {
    let mut report = Validation::default();
    // Checked without the rights it asks for; running it needs them
    // confirmed, which is worth saying.
    let rights = bundle.rights();
    if !rights.is_empty() {
        report.notes.push(format!(
            "the bundle asks for rights beyond the defaults ({}); `predict` needs --trust-bundle or --rights-from MANIFEST to grant them; checked here without them",
            rights.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ));
    }
    bundle.without_rights();
    let sandbox = match Sandbox::builder().device(bundle.plan().device).build() {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(crate::Error::from(e).to_string());
            return report;
        }
    };
    match bundle.load(&sandbox).await {
        Ok(pipeline) => {
            report.kernels = pipeline
                .steps()
                .iter()
                .map(|s| (s.spec.id.clone(), s.kernel_name()))
                .collect();
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    report.train_rows = Some(bundle.info().train_rows);
    report
        .notes
        .push("a bundle is already fitted: its data is not checked".into());
    report
}

/// Validates the manifest at `path` (registry kernels found through
/// `resolver`), reporting every problem: of the manifest, of each kernel
/// that resolved, and of the data whenever `[data]` resolved. With
/// `sample`, fits and predicts on the first `sample` training rows and
/// projects each call's cost.
pub async fn validate(
    path: &Path,
    resolver: &dyn crate::manifest::KernelResolver,
    sample: Option<usize>,
) -> Validation {
    let mut report = Validation::default();
    let (manifest, errors) = Plan::load_partial_with(path, resolver);
    let complete = errors.is_empty();
    report
        .problems
        .extend(errors.iter().map(ToString::to_string));
    let Some(manifest) = manifest else {
        return report;
    };
    let recorder = match Telemetry::builder().record().build() {
        Ok(t) => t,
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            return report;
        }
    };
    let sandbox = match Sandbox::builder()
        .observer(recorder.clone())
        .device(manifest.device)
        .build()
    {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(crate::Error::from(e).to_string());
            return report;
        }
    };

    // Every kernel: file, pin, component, WIT version, imports, parameters,
    // each call under the manifest's own limits: validating a kernel that
    // loops must end as running it would. A sample call that needs more
    // than its limit fails here, which is the answer.
    let cache = Pipeline::cache_for(&manifest);
    let mut steps = Vec::new();
    for spec in &manifest.steps {
        match Pipeline::load_step(&sandbox, &manifest, spec, cache.as_ref()).await {
            Ok(step) => {
                report.kernels.push((spec.id.clone(), step.kernel_name()));
                steps.push(step);
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    if complete {
        report.problems.extend(
            Pipeline::check_kinds(&manifest, &steps)
                .iter()
                .map(ToString::to_string),
        );
    }

    // The data: readable, with the target and features the manifest names.
    // The data, read once: the training rows with the features and target
    // the plan names, and how many rows will be predicted.
    let read = crate::job::read_training(&manifest).and_then(|(train, held)| {
        let file = crate::job::training_file(&manifest);
        let (x, y) = crate::job::features_and_target(&manifest, train, &file, true)?;
        Ok((x, y, held))
    });
    let (x_train, y_train, held) = match read {
        Ok(read) => read,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    let test_rows = match held {
        crate::job::Held::Rows(rows) => Some(u64::from(rows.rows)),
        crate::job::Held::File(Some(test)) => {
            match crate::data::read_table(&test, &manifest.data.csv) {
                Ok(frame) => Some(u64::from(frame.rows)),
                Err(e) => {
                    report.problems.push(e.to_string());
                    None
                }
            }
        }
        crate::job::Held::File(None) => None,
    };
    report.train_rows = Some(x_train.rows.into());
    report.test_rows = test_rows;

    let Some(sample) = sample else { return report };
    if !complete || steps.len() != manifest.steps.len() {
        report
            .notes
            .push("no sample run: fix the kernels first".to_string());
        return report;
    }
    let sample = sample.clamp(1, (x_train.rows as usize).max(1));
    drop(steps);
    // Two sample runs, on `sample` rows and on half as many, separate what
    // a call costs whatever its size (a kernel that takes frames by
    // reference does little per row in the guest) from what it costs per
    // row: each projection is fixed + per-row x the full rows.
    let half = sample / 2;
    let large = match sample_run(
        &sandbox,
        &manifest,
        &x_train,
        y_train.as_ref(),
        sample,
        &recorder,
    )
    .await
    {
        Ok(run) => run,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let small = if half > 0 && half < sample {
        sample_run(
            &sandbox,
            &manifest,
            &x_train,
            y_train.as_ref(),
            half,
            &recorder,
        )
        .await
        .ok()
        .filter(|s| s.calls.len() == large.calls.len())
    } else {
        None
    };
    let full_train = u64::from(x_train.rows);
    let full_predict = test_rows.unwrap_or(full_train);
    for (i, call) in large.calls.iter().enumerate() {
        if call.rows == 0 {
            continue;
        }
        let Some(spec) = manifest.steps.iter().find(|s| s.id == call.step) else {
            continue;
        };
        let baseline = large.baseline(&call.step);
        let full_rows = if call.predicting {
            full_predict
        } else {
            full_train
        };
        let other = small
            .as_ref()
            .map(|s| &s.calls[i])
            .filter(|o| o.step == call.step && o.operation == call.operation && o.rows < call.rows);
        let project = |at_large: f64, at_small: Option<f64>| -> f64 {
            let per_row = match (other, at_small) {
                (Some(o), Some(v)) => ((at_large - v) / (call.rows - o.rows) as f64).max(0.0),
                _ => at_large / call.rows as f64,
            };
            let fixed = (at_large - per_row * call.rows as f64).max(0.0);
            fixed + per_row * full_rows as f64
        };
        let fuel = project(call.fuel as f64, other.map(|o| o.fuel as f64));
        let seconds = project(
            call.duration.as_secs_f64(),
            other.map(|o| o.duration.as_secs_f64()),
        );
        let scale = full_rows as f64 / call.rows as f64;
        let estimate = Estimate {
            step: call.step.clone(),
            operation: call.operation,
            sample_rows: call.rows,
            full_rows,
            fuel_per_row: call.fuel as f64 / call.rows as f64,
            seconds_per_row: call.duration.as_secs_f64() / call.rows as f64,
            projected_fuel: fuel,
            projected_time: Duration::from_secs_f64(seconds.min(1e9)),
            sample_memory: call.memory,
            projected_memory: baseline + (call.memory as f64 - baseline).max(0.0) * scale,
            limits: spec.limits,
        };
        report.problems.extend(estimate.problems());
        report.estimates.push(estimate);
    }
    report
}

/// One call of a sample run, as the recorder saw it.
struct SampleCall {
    step: String,
    operation: &'static str,
    rows: u64,
    fuel: u64,
    duration: Duration,
    memory: u64,
    /// A call of the predict phase (scales to the test rows).
    predicting: bool,
}

/// The calls of one sample run, and each step's memory after `configure`.
struct SampleRun {
    calls: Vec<SampleCall>,
    baselines: Vec<(String, u64)>,
}

impl SampleRun {
    /// Memory an instance holds before it sees data: after `configure`.
    fn baseline(&self, step: &str) -> f64 {
        self.baselines
            .iter()
            .find(|(s, _)| s == step)
            .map_or(0, |(_, m)| *m) as f64
    }
}

/// Fits on the first `rows` training rows and predicts them, as a run
/// would, recording every call.
async fn sample_run(
    sandbox: &Sandbox,
    manifest: &Plan,
    x_train: &Frame,
    y_train: Option<&Column>,
    rows: usize,
    recorder: &crate::Telemetry,
) -> Result<SampleRun, String> {
    let picked: Vec<usize> = (0..rows).collect();
    let x = x_train.take_rows(&picked);
    let y = y_train.map(|y| take(y, &picked));
    let start = recorder.recorded().len();
    // The sample run measures what the limits would refuse, so it gets
    // headroom: bounded, so that a kernel looping on the sample still ends.
    let mut pipeline = Pipeline::load(sandbox, measuring(manifest))
        .await
        .map_err(|e| format!("loading for the sample run failed: {e}"))?;
    let before = recorder.recorded().len();
    // Fit, then predict (or transform) the same rows, as a run would; calls
    // of the fit phase scale to the training rows, the rest to the test rows.
    let mut predict_from = before;
    let dry_run = async {
        pipeline.fit(x.clone(), y.as_ref()).await?;
        predict_from = recorder.recorded().len();
        let probabilities = pipeline.plan().output.probabilities;
        pipeline.predict(x, probabilities).await
    };
    dry_run
        .await
        .map_err(|e| format!("the sample run on {rows} rows failed: {e}"))?;
    let recorded = recorder.recorded();
    let mut baselines = Vec::new();
    for (c, r) in recorded[start..before].iter().rev() {
        if r.operation == "configure" && !baselines.iter().any(|(s, _)| *s == c.step) {
            baselines.push((c.step.clone(), r.memory));
        }
    }
    let calls = recorded
        .iter()
        .enumerate()
        .skip(before)
        .map(|(i, (c, r))| SampleCall {
            step: c.step.clone(),
            operation: r.operation,
            rows: r.rows_in,
            fuel: r.fuel,
            duration: r.duration,
            memory: r.memory,
            predicting: i >= predict_from,
        })
        .collect();
    Ok(SampleRun { calls, baselines })
}

/// How many times its limits a step gets on the sample run.
pub const SAMPLE_HEADROOM: u32 = 10;

/// `plan` with the sample run's limits: [`SAMPLE_HEADROOM`] times each
/// step's, the wall clock at most two minutes (or the step's own, if
/// longer), memory at most 4 GiB.
fn measuring(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for spec in &mut plan.steps {
        let l = spec.limits;
        let raised = l.timeout * SAMPLE_HEADROOM;
        spec.limits = Limits {
            fuel: l.fuel.saturating_mul(SAMPLE_HEADROOM.into()),
            memory_bytes: l
                .memory_bytes
                .saturating_mul(SAMPLE_HEADROOM.into())
                .min(4 << 30),
            timeout: raised.min(Duration::from_secs(120).max(l.timeout)),
            tensor_bytes: l.tensor_bytes.saturating_mul(SAMPLE_HEADROOM.into()),
        };
    }
    plan
}

fn take(column: &Column, rows: &[usize]) -> Column {
    let frame = Frame {
        rows: crate::data::column_len(column) as u32,
        columns: vec![column.clone()],
    };
    frame.take_rows(rows).columns.swap_remove(0)
}
