//! `kernel-host recommend`: from a data profile and the kernels at hand to
//! a ranked, explained list of pipelines, and a manifest that runs as is.
//!
//! Nothing here knows a kernel by name. Models are chosen by the kind they
//! declare (`describe`); preprocessing steps by what they are seen to do:
//! each transformer is probed in the sandbox on small synthetic frames
//! (numbers with holes, strings with holes, categories, numbers on
//! different scales) under tight limits, with its default parameters and
//! then each declared choice in turn, and a configuration is kept for a
//! role when its output shows the role: every hole filled and the present
//! cells untouched (imputing), strings turned into numeric columns that
//! also take a category never seen in fitting (encoding), every column at
//! mean 0 and standard deviation 1 (standardizing). A new kernel in the
//! registry or the directory takes part without a change here.
//!
//! With a time budget, candidates are cross-validated on the training
//! rows (a seeded sample of them when there are many), ranked by the
//! task's primary metric, and their fit time and memory on the whole data
//! extrapolated from the sample. With a run history (see
//! [`crate::history`]), the model that scored best on similar data sets is
//! cross-validated first (it is scored even when the budget runs out),
//! wins ties, and leads the ranking when nothing is cross-validated; every
//! cross-validated candidate is added to the history.

use crate::bindings::{
    Capabilities, Column, ColumnValues, Frame, KernelInfo, KernelKind, Param, ParamType, ParamValue,
};
use crate::data::profile::{Profile, Task, percent};
use crate::select::{self, CvResult, Dataset, metrics};
use crate::{Error, Grants, KernelComponent, Limits, Plan, Sandbox};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows cross-validated at most; more are sampled down (seeded).
pub const SAMPLE_ROWS: usize = 20_000;

/// Where kernels come from.
#[derive(Clone, Debug)]
pub enum KernelsFrom {
    /// Every `.wasm` component in a directory.
    Dir(PathBuf),
    /// The newest version of every kernel in the registry.
    Registry(crate::registry::Registry),
}

/// A kernel that can be a step, and how a manifest names it.
#[derive(Clone, Debug)]
pub struct Available {
    /// The component file.
    pub path: PathBuf,
    /// `Some((name, version))` for a registry kernel.
    pub registry: Option<(String, String)>,
    pub info: KernelInfo,
    pub roles: Roles,
}

/// What probing showed a transformer does, and with which parameters.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    pub fills_numbers: Option<Vec<Param>>,
    pub fills_strings: Option<Vec<Param>>,
    pub encodes: Option<Vec<Param>>,
    pub standardizes: Option<Vec<Param>>,
}

impl Roles {
    /// The roles in words (`fills numeric holes`, `encodes strings`...).
    pub fn describe(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.fills_numbers.is_some() {
            out.push("fills numeric holes");
        }
        if self.fills_strings.is_some() {
            out.push("fills string holes");
        }
        if self.encodes.is_some() {
            out.push("encodes strings");
        }
        if self.standardizes.is_some() {
            out.push("standardizes");
        }
        out
    }
}

/// Loads every kernel `from` offers, and probes the transformers. A file
/// that is not a kernel is skipped with its reason.
pub async fn discover(
    sandbox: &Sandbox,
    from: &[KernelsFrom],
) -> Result<(Vec<Available>, Vec<String>), Error> {
    let mut files: Vec<(PathBuf, Option<(String, String)>)> = Vec::new();
    for source in from {
        match source {
            KernelsFrom::Dir(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|e| {
                    Error::io(
                        format!("reading the kernels directory {}", dir.display()),
                        e.into(),
                    )
                })?;
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                    .collect();
                paths.sort();
                files.extend(paths.into_iter().map(|p| (p, None)));
            }
            KernelsFrom::Registry(registry) => {
                let all = registry
                    .list()
                    .map_err(|e| Error::io("reading the registry", e))?;
                // The newest version of each name.
                let mut newest: std::collections::BTreeMap<String, (semver::Version, String)> =
                    Default::default();
                for (name, version, entry) in all {
                    if newest.get(&name).is_none_or(|(v, _)| version > *v) {
                        newest.insert(name, (version, entry.sha256));
                    }
                }
                for (name, (version, sha)) in newest {
                    files.push((registry.blob(&sha), Some((name, version.to_string()))));
                }
            }
        }
    }
    let mut available = Vec::new();
    let mut skipped = Vec::new();
    for (path, registry) in files {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match KernelComponent::load(sandbox, &id, &path, None).await {
            Ok(component) => {
                let info = component.info().clone();
                let roles = if info.kind == KernelKind::Transformer {
                    probe(&component).await
                } else {
                    Roles::default()
                };
                available.push(Available {
                    path,
                    registry,
                    info,
                    roles,
                });
            }
            Err(e) => skipped.push(format!(
                "{}: {}",
                path.display(),
                crate::printable_lines(&e.to_string())
            )),
        }
    }
    // One kernel per name (a directory and the registry may both hold it).
    let mut seen = std::collections::HashSet::new();
    available.retain(|a| seen.insert(a.info.name.clone()));
    Ok((available, skipped))
}

/// The limits a probe runs under: a misbehaving kernel costs little.
fn probe_limits() -> Limits {
    Limits {
        fuel: 2_000_000_000,
        memory_bytes: 64 << 20,
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// The default configuration, then one declared choice changed at a time.
fn configurations(info: &KernelInfo) -> Vec<Vec<Param>> {
    let mut out = vec![Vec::new()];
    for spec in &info.params {
        if let ParamType::Choice(choices) = &spec.kind {
            for choice in choices {
                let value = ParamValue::String(choice.clone());
                if value != spec.default {
                    out.push(vec![Param {
                        name: spec.name.clone(),
                        value,
                    }]);
                }
            }
        }
    }
    out
}

fn f64_column(name: &str, values: Vec<f64>, nulls: Option<Vec<u8>>) -> Column {
    Column {
        name: name.into(),
        values: ColumnValues::F64(values),
        nulls,
    }
}

fn string_column(name: &str, values: Vec<&str>, nulls: Option<Vec<u8>>) -> Column {
    Column {
        name: name.into(),
        values: ColumnValues::String(values.into_iter().map(String::from).collect()),
        nulls,
    }
}

fn frame(columns: Vec<Column>) -> Frame {
    let rows = columns.first().map_or(0, crate::data::column_len) as u32;
    Frame { rows, columns }
}

const PROBE_ROWS: usize = 48;

fn numbers(scale: f64, offset: f64) -> Vec<f64> {
    (0..PROBE_ROWS)
        .map(|i| offset + scale * (((i * 7919) % 97) as f64 / 97.0 - 0.5))
        .collect()
}

fn holes(every: usize) -> Vec<u8> {
    (0..PROBE_ROWS).map(|i| u8::from(i % every == 2)).collect()
}

fn categories() -> Vec<&'static str> {
    (0..PROBE_ROWS)
        .map(|i| ["red", "green", "blue"][i % 3])
        .collect()
}

/// Fits a fresh instance configured with `params` on `fit`, then
/// transforms `apply`.
async fn try_transform(
    component: &KernelComponent,
    params: &[Param],
    fit: &Frame,
    apply: &Frame,
) -> Option<Frame> {
    let mut instance = component
        .instantiate(probe_limits(), Grants::default())
        .await
        .ok()?;
    instance.configure(params).await.ok()?;
    instance.fit(fit, None).await.ok()?;
    instance.transform(apply).await.ok()
}

fn null_at(c: &Column, i: usize) -> bool {
    c.nulls.as_ref().is_some_and(|n| n[i] != 0)
}

/// Whether `out` fills every hole of `input`'s column `name` and leaves
/// its present cells as they were.
fn filled(input: &Frame, out: &Frame, name: &str) -> bool {
    let (Some(a), Some(b)) = (input.column(name), out.column(name)) else {
        return false;
    };
    if out.rows != input.rows || out.columns.len() != input.columns.len() {
        return false;
    }
    let n = input.rows as usize;
    match (&a.values, &b.values) {
        (ColumnValues::F64(x), ColumnValues::F64(y)) => (0..n).all(|i| {
            !null_at(b, i) && !y[i].is_nan() && (null_at(a, i) || x[i].to_bits() == y[i].to_bits())
        }),
        (ColumnValues::String(x), ColumnValues::String(y)) => {
            (0..n).all(|i| !null_at(b, i) && (null_at(a, i) || x[i] == y[i]))
        }
        _ => false,
    }
}

/// Whether every column of `out` is numeric, at mean 0 and standard
/// deviation 1, with the input's shape.
fn standardized(input: &Frame, out: &Frame) -> bool {
    out.rows == input.rows
        && out.columns.len() == input.columns.len()
        && out.columns.iter().all(|c| match &c.values {
            ColumnValues::F64(v) if c.nulls.is_none() => {
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                mean.abs() < 1e-9 && (var.sqrt() - 1.0).abs() < 1e-6
            }
            _ => false,
        })
}

/// Whether `out` holds no string column and at least the input's number
/// of columns, every cell present.
fn encoded(input: &Frame, out: &Frame) -> bool {
    out.rows == input.rows
        && out.columns.len() >= input.columns.len()
        && out.columns.iter().all(|c| {
            !matches!(c.values, ColumnValues::String(_))
                && c.nulls.as_ref().is_none_or(|n| n.iter().all(|b| *b == 0))
        })
}

/// Probes what a transformer does (see the module documentation).
async fn probe(component: &KernelComponent) -> Roles {
    let info = component.info().clone();
    let numeric_holes = frame(vec![
        f64_column("a", numbers(10.0, 3.0), Some(holes(5))),
        f64_column("b", numbers(2.0, -1.0), None),
    ]);
    let string_holes = frame(vec![
        string_column("c", categories(), Some(holes(4))),
        f64_column("b", numbers(2.0, -1.0), None),
    ]);
    let strings = frame(vec![
        string_column("c", categories(), None),
        f64_column("b", numbers(2.0, -1.0), None),
    ]);
    let mut unseen = strings.clone();
    if let ColumnValues::String(v) = &mut unseen.columns[0].values {
        v.rewrite(|row, _| (row == 0).then(|| "violet".to_string()));
    }
    let scales = frame(vec![
        f64_column("a", numbers(1000.0, 5000.0), None),
        f64_column("b", numbers(0.01, -3.0), None),
    ]);
    let mut roles = Roles::default();
    for params in configurations(&info) {
        if roles.fills_numbers.is_none()
            && let Some(out) =
                try_transform(component, &params, &numeric_holes, &numeric_holes).await
            && filled(&numeric_holes, &out, "a")
        {
            roles.fills_numbers = Some(params.clone());
        }
        if roles.fills_strings.is_none()
            && let Some(out) = try_transform(component, &params, &string_holes, &string_holes).await
            && filled(&string_holes, &out, "c")
        {
            roles.fills_strings = Some(params.clone());
        }
        if roles.encodes.is_none()
            && let Some(out) = try_transform(component, &params, &strings, &strings).await
            && encoded(&strings, &out)
            && let Some(out) = try_transform(component, &params, &strings, &unseen).await
            && encoded(&unseen, &out)
        {
            roles.encodes = Some(params.clone());
        }
        if roles.standardizes.is_none()
            && let Some(out) = try_transform(component, &params, &scales, &scales).await
            && standardized(&scales, &out)
        {
            roles.standardizes = Some(params.clone());
        }
    }
    roles
}

/// One step of a candidate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepChoice {
    /// The step id in the manifest (`impute`, `encode`, `scale`, `model`...).
    pub id: String,
    pub kernel: String,
    #[serde(skip)]
    pub available: usize,
    #[serde(serialize_with = "params_json")]
    pub params: Vec<Param>,
}

fn params_json<S: serde::Serializer>(params: &[Param], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut map = s.serialize_map(Some(params.len()))?;
    for p in params {
        map.serialize_entry(&p.name, &param_toml(&p.value))?;
    }
    map.end()
}

/// A candidate pipeline and how it did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub name: String,
    pub steps: Vec<StepChoice>,
    /// Cross-validated mean and standard deviation of the metric.
    pub score: Option<(f64, f64)>,
    /// Why it was not scored (a failure, or the budget).
    pub not_scored: Option<String>,
    #[serde(skip)]
    pub cv: Option<CvResult>,
    /// Fit time on the whole training data, extrapolated from the sample.
    pub estimated_fit: Option<Duration>,
    /// Guest memory of the largest step on the whole data, extrapolated.
    pub estimated_memory: Option<u64>,
    /// Fuel a fold spent (mean).
    pub fuel: Option<u64>,
}

/// Everything `recommend` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recommendation {
    pub profile: Profile,
    pub kernels: Vec<KernelSummary>,
    pub skipped: Vec<String>,
    /// The feature columns the pipelines read.
    pub features: Vec<String>,
    /// Columns left out, with why.
    pub dropped: Vec<(String, String)>,
    /// Why each kind of step is there.
    pub reasons: Vec<String>,
    pub metric: String,
    pub folds: usize,
    pub sample_rows: usize,
    /// Ranked best first.
    pub candidates: Vec<Candidate>,
    pub recommendation: String,
    /// Rows per chunk when the data is too large to fit whole.
    pub chunk_rows: Option<usize>,
    /// A separate file of rows to score on: the manifest reads `train` and
    /// `test` instead of splitting the data.
    pub test: Option<PathBuf>,
    /// What the run history said about these candidates, if anything.
    pub history: Option<crate::history::Evidence>,
    /// Problems that did not stop the recommendation (a history that
    /// could not be written...).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelSummary {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub roles: Vec<&'static str>,
    pub partial_fit: bool,
}

/// What `recommend` is asked.
#[derive(Clone, Debug)]
pub struct Options {
    pub target: Option<String>,
    /// Time for cross-validation; zero ranks by the rules only.
    pub budget: Duration,
    pub folds: usize,
    pub seed: u64,
    /// Above this much memory for the data read whole, fit in chunks.
    pub memory_budget: u64,
    pub test_fraction: f64,
    /// Rows to score on, in a file of their own (see [`Recommendation::test`]).
    pub test: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            budget: Duration::from_secs(60),
            folds: 5,
            seed: 0,
            memory_budget: 1 << 30,
            test_fraction: 0.25,
            test: None,
        }
    }
}

fn kind_for(task: Task) -> KernelKind {
    match task {
        Task::Binary | Task::Multiclass => KernelKind::Classifier,
        Task::Regression => KernelKind::Regressor,
        Task::Clustering => KernelKind::Clusterer,
    }
}

/// A parameter value as TOML.
fn param_toml(value: &ParamValue) -> String {
    match value {
        ParamValue::F64(x) => toml::Value::Float(*x),
        ParamValue::S64(x) => toml::Value::Integer(*x),
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::String(s) => toml::Value::String(s.clone()),
    }
    .to_string()
}

/// A TOML string, quoted and escaped.
pub(crate) fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `path` relative to `base` (up to 3 levels up, never through the
/// root), else absolute; absolute
/// without a base.
fn relative(path: &Path, base: Option<&Path>) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(base) = base else {
        return absolute.to_string_lossy().into_owned();
    };
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    // Walk up from base until it is a prefix of path.
    let mut up = 0;
    let mut ancestor = base.as_path();
    loop {
        if let Ok(rest) = absolute.strip_prefix(ancestor) {
            let mut out = PathBuf::new();
            for _ in 0..up {
                out.push("..");
            }
            out.push(rest);
            return out.to_string_lossy().into_owned();
        }
        match ancestor.parent() {
            // Not through the root: an absolute path reads better.
            Some(parent) if up < 3 && parent.parent().is_some() => {
                ancestor = parent;
                up += 1;
            }
            _ => return absolute.to_string_lossy().into_owned(),
        }
    }
}

/// The manifest of `candidate`, with paths relative to `dir` (where it will
/// be written), or absolute without one.
pub fn manifest(
    rec: &Recommendation,
    candidate: &Candidate,
    available: &[Available],
    data: &Path,
    dir: Option<&Path>,
    test_fraction: f64,
    seed: u64,
) -> String {
    let mut out = String::new();
    let steps: Vec<String> = candidate.steps.iter().map(|s| toml_string(&s.id)).collect();
    let _ = writeln!(
        out,
        "# Written by `kernel-host recommend` from a profile of {}.\n# {}\n#\n#   kernel-host run {{this file}}\n",
        data.display(),
        rec.recommendation.replace('\n', " ")
    );
    for reason in &rec.reasons {
        let _ = writeln!(out, "# - {reason}");
    }
    let _ = writeln!(
        out,
        "\n[pipeline]\nname = {}\nsteps = [{}]\n",
        toml_string(&format!(
            "recommended-{}",
            data.file_stem()
                .map_or("data".into(), |s| s.to_string_lossy())
        )),
        steps.join(", ")
    );
    if rec.chunk_rows.is_some() || rec.test.is_some() {
        // A chunked fit streams files: the test rows come in a file too.
        let _ = writeln!(out, "[data]\ntrain = {}", toml_string(&relative(data, dir)));
        match &rec.test {
            Some(test) => {
                let _ = writeln!(out, "test = {}", toml_string(&relative(test, dir)));
            }
            None => {
                let _ = writeln!(
                    out,
                    "# No test file was given (`recommend --test FILE`): the run fits and\n# predicts nothing. Add `test = \"rows.csv\"` to score the pipeline."
                );
            }
        }
    } else {
        let _ = writeln!(
            out,
            "[data]\ninput = {}\nsplit = {{ test-fraction = {test_fraction:?}, seed = {seed}, stratify = {} }}",
            toml_string(&relative(data, dir)),
            rec.profile.task.is_classification()
        );
    }
    if let Some(target) = &rec.profile.target {
        let _ = writeln!(out, "target = {}", toml_string(&target.name));
    }
    let features: Vec<String> = rec.features.iter().map(|f| toml_string(f)).collect();
    let _ = writeln!(out, "features = [{}]", features.join(", "));
    if let Some(rows) = rec.chunk_rows {
        let _ = writeln!(out, "chunk-rows = {rows}");
    }
    let _ = writeln!(
        out,
        "\n[output]\npredictions = \"predictions.csv\"\nprobabilities = {}\n",
        rec.profile.task.is_classification()
            && candidate.steps.last().is_some_and(|s| {
                available[s.available]
                    .info
                    .capabilities
                    .contains(Capabilities::PREDICT_PROBA)
            })
    );
    if let Some(limits) = limits_for(candidate) {
        let _ = writeln!(out, "{limits}");
    }
    for step in &candidate.steps {
        let kernel = &available[step.available];
        let _ = writeln!(out, "[kernels.{}]", step.id);
        match &kernel.registry {
            Some((name, version)) => {
                let _ = writeln!(
                    out,
                    "registry = {}",
                    toml_string(&format!("{name}@={version}"))
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "source = {}",
                    toml_string(&relative(&kernel.path, dir))
                );
            }
        }
        if !step.params.is_empty() {
            let params: Vec<String> = step
                .params
                .iter()
                .map(|p| format!("{} = {}", p.name, param_toml(&p.value)))
                .collect();
            let _ = writeln!(out, "params = {{ {} }}", params.join(", "));
        }
        let _ = writeln!(out);
    }
    out
}

/// `[defaults.limits]` raised above the defaults where the estimates for
/// the whole data need it (4x the fuel, 2x the memory, 10x the time), so
/// the written manifest runs on all of its rows.
fn limits_for(candidate: &Candidate) -> Option<String> {
    let defaults = Limits::default();
    let cv = candidate.cv.as_ref()?;
    let scale = candidate.estimated_fit?.as_secs_f64() / cv.fit_time().as_secs_f64().max(1e-9);
    let fuel = (cv.fuel() as f64 * scale * 4.0) as u64;
    let memory = candidate.estimated_memory? * 2;
    let time = candidate.estimated_fit? * 10;
    let mut lines = Vec::new();
    if fuel > defaults.fuel {
        lines.push(format!("fuel = {fuel}"));
    }
    if memory > defaults.memory_bytes {
        lines.push(format!("memory-mib = {}", memory.div_ceil(1 << 20)));
    }
    if time > defaults.timeout {
        lines.push(format!("timeout-ms = {}", time.as_millis()));
    }
    (!lines.is_empty()).then(|| {
        format!(
            "# Raised for the whole data: 4x the fuel, 2x the memory, 10x the time\n# extrapolated from the cross-validation sample.\n[defaults.limits]\n{}\n",
            lines.join("\n")
        )
    })
}

/// The preprocessing a profile needs, each with the kernel and why.
struct Preprocessing {
    steps: Vec<StepChoice>,
    reasons: Vec<String>,
    problems: Vec<String>,
}

fn first_with(
    available: &[Available],
    role: impl Fn(&Roles) -> Option<&Vec<Param>>,
    partial_fit: bool,
) -> Option<(usize, &Available, Vec<Param>)> {
    available.iter().enumerate().find_map(|(i, a)| {
        let ok = !partial_fit || a.info.capabilities.contains(Capabilities::PARTIAL_FIT);
        role(&a.roles).filter(|_| ok).map(|p| (i, a, p.clone()))
    })
}

fn preprocessing(
    profile: &Profile,
    features: &[String],
    available: &[Available],
    chunked: bool,
) -> Preprocessing {
    use crate::data::profile::ColumnProfile;
    let used: Vec<&ColumnProfile> = profile
        .columns
        .iter()
        .filter(|c| features.contains(&c.name))
        .collect();
    let is_string = |c: &ColumnProfile| c.ty == crate::data::ColumnType::String;
    let pick = |keep: &dyn Fn(&ColumnProfile) -> bool| -> Vec<&ColumnProfile> {
        used.iter().copied().filter(|c| keep(c)).collect()
    };
    let numeric_holes = pick(&|c| c.missing > 0 && !is_string(c));
    let string_holes = pick(&|c| c.missing > 0 && is_string(c));
    let strings = pick(&|c| is_string(c));
    let numeric = pick(&|c| c.numeric.is_some() && !is_string(c));
    let mut steps = Vec::new();
    let mut reasons = Vec::new();
    let mut problems = Vec::new();
    let listing = |cols: &[&ColumnProfile]| {
        cols.iter()
            .take(4)
            .map(|c| format!("{} {}", c.name, percent(c.missing_rate)))
            .collect::<Vec<_>>()
            .join(", ")
            + if cols.len() > 4 { ", ..." } else { "" }
    };
    if !numeric_holes.is_empty() || !string_holes.is_empty() {
        // One kernel for both when one does both, with both settings.
        let both = available.iter().enumerate().find_map(|(i, a)| {
            let ok = !chunked || a.info.capabilities.contains(Capabilities::PARTIAL_FIT);
            let n = a.roles.fills_numbers.as_ref();
            let s = a.roles.fills_strings.as_ref();
            match (numeric_holes.is_empty(), string_holes.is_empty(), n, s) {
                _ if !ok => None,
                (false, false, Some(n), Some(s)) => {
                    let mut params = n.clone();
                    params.extend(
                        s.iter()
                            .filter(|p| !n.iter().any(|q| q.name == p.name))
                            .cloned(),
                    );
                    Some((i, a, params))
                }
                (false, true, Some(n), _) => Some((i, a, n.clone())),
                (true, false, _, Some(s)) => Some((i, a, s.clone())),
                _ => None,
            }
        });
        let mut parts = Vec::new();
        if !numeric_holes.is_empty() {
            parts.push(format!(
                "{} numeric column{} with missing values ({})",
                numeric_holes.len(),
                if numeric_holes.len() == 1 { "" } else { "s" },
                listing(&numeric_holes)
            ));
        }
        if !string_holes.is_empty() {
            parts.push(format!(
                "{} string column{} with missing values ({})",
                string_holes.len(),
                if string_holes.len() == 1 { "" } else { "s" },
                listing(&string_holes)
            ));
        }
        match both {
            Some((i, a, params)) => {
                reasons.push(format!("{}: {}", a.info.name, parts.join("; ")));
                steps.push(StepChoice {
                    id: "impute".into(),
                    kernel: a.info.name.clone(),
                    available: i,
                    params,
                });
            }
            None => problems.push(format!(
                "no available kernel fills the holes of {}; add an imputer to the kernels",
                parts.join(" and ")
            )),
        }
    }
    if !strings.is_empty() {
        match first_with(available, |r| r.encodes.as_ref(), chunked) {
            Some((i, a, params)) => {
                reasons.push(format!(
                    "{}: {} string column{} to encode ({})",
                    a.info.name,
                    strings.len(),
                    if strings.len() == 1 { "" } else { "s" },
                    strings
                        .iter()
                        .take(4)
                        .map(|c| format!(
                            "{} has {}{} categories",
                            c.name,
                            if c.distinct_capped { ">=" } else { "" },
                            c.distinct
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                steps.push(StepChoice {
                    id: "encode".into(),
                    kernel: a.info.name.clone(),
                    available: i,
                    params,
                });
            }
            None => problems.push(format!(
                "no available kernel encodes the string column{} {}; add an encoder to the kernels",
                if strings.len() == 1 { "" } else { "s" },
                strings
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    if let Some((i, a, params)) = first_with(available, |r| r.standardizes.as_ref(), chunked) {
        let ranges: Vec<String> = numeric
            .iter()
            .take(3)
            .filter_map(|c| {
                let n = c.numeric.as_ref()?;
                Some(format!("{} {}..{}", c.name, trim(n.min), trim(n.max)))
            })
            .collect();
        reasons.push(format!(
            "{}: features on one scale (mean 0, sd 1), which gradient-based and distance-based models need{}",
            a.info.name,
            if ranges.is_empty() {
                String::new()
            } else {
                format!(" ({})", ranges.join(", "))
            }
        ));
        steps.push(StepChoice {
            id: "scale".into(),
            kernel: a.info.name.clone(),
            available: i,
            params,
        });
    }
    Preprocessing {
        steps,
        reasons,
        problems,
    }
}

fn trim(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Recommends pipelines for the data at `data` (see the module
/// documentation). `scratch` is a directory for the candidates' manifests.
pub async fn recommend(
    sandbox: &Sandbox,
    data: &Path,
    from: &[KernelsFrom],
    options: &Options,
    scratch: &Path,
    mut history: Option<&mut crate::history::History>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(Recommendation, Vec<Available>), Error> {
    let profile = crate::data::profile::profile(
        data,
        options.target.as_deref(),
        &crate::data::CsvOptions::default(),
    )?;
    progress(&format!(
        "profiled {}: {} rows, task: {}",
        data.display(),
        profile.rows,
        profile.task
    ));
    let (available, skipped) = discover(sandbox, from).await?;
    if available.is_empty() {
        return Err(Error::Usage(
            "no kernels to recommend from: pass --kernels DIR (a directory of .wasm components) or add kernels to the registry (`kernel-host registry add KERNEL.wasm`)".into(),
        ));
    }
    let kind = kind_for(profile.task);
    let chunked = profile.memory_bytes > options.memory_budget;
    let mut dropped = Vec::new();
    let mut features = Vec::new();
    for c in profile.features() {
        if c.constant {
            dropped.push((c.name.clone(), "constant".to_string()));
        } else if c.id_like {
            dropped.push((
                c.name.clone(),
                format!("an identifier ({} distinct values)", c.distinct),
            ));
        } else if c.missing == profile.rows {
            dropped.push((c.name.clone(), "always missing".to_string()));
        } else {
            features.push(c.name.clone());
        }
    }
    if features.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no usable feature column (every column is the target, constant or an identifier)",
            data.display()
        )));
    }
    let prep = preprocessing(&profile, &features, &available, chunked);
    let mut reasons = Vec::new();
    for (name, why) in &dropped {
        reasons.push(format!("leave out {name}: {why}"));
    }
    reasons.extend(prep.reasons.iter().cloned());
    let mut models: Vec<usize> = available
        .iter()
        .enumerate()
        .filter(|(_, a)| a.info.kind == kind)
        .filter(|(_, a)| !chunked || a.info.capabilities.contains(Capabilities::PARTIAL_FIT))
        .map(|(i, _)| i)
        .collect();
    // Chunks of a quarter of the budget (at most 64 MiB): the run holds a
    // chunk, its transforms and a model.
    let chunk_rows = chunked.then(|| {
        let per_row = (profile.memory_bytes / profile.rows.max(1)).max(1);
        let chunk_bytes = (options.memory_budget / 4).min(64 << 20);
        (chunk_bytes / per_row).clamp(1024, 1 << 20) as usize
    });
    if chunked {
        let names: Vec<&str> = models
            .iter()
            .map(|i| available[*i].info.name.as_str())
            .collect();
        reasons.push(format!(
            "chunked fit: {} rows (~{} in memory) exceed the memory budget ({}); {} support{} partial-fit",
            profile.rows,
            crate::data::profile::human_bytes(profile.memory_bytes),
            crate::data::profile::human_bytes(options.memory_budget),
            if names.is_empty() { "no model".to_string() } else { names.join(", ") },
            if names.len() == 1 { "s" } else { "" }
        ));
    }
    if !prep.problems.is_empty() {
        return Err(Error::Usage(prep.problems.join("; ")));
    }
    if models.is_empty() {
        return Err(Error::Usage(format!(
            "no available kernel is a {kind}{} for {}; add one to the kernels",
            if chunked { " with partial-fit" } else { "" },
            profile.task
        )));
    }
    models.sort_by(|a, b| available[*a].info.name.cmp(&available[*b].info.name));
    let metric = metrics::primary(kind).unwrap_or("accuracy").to_string();
    let mut candidates: Vec<Candidate> = models
        .iter()
        .map(|&m| {
            let mut steps = prep.steps.clone();
            steps.push(StepChoice {
                id: "model".into(),
                kernel: available[m].info.name.clone(),
                available: m,
                params: Vec::new(),
            });
            Candidate {
                name: steps
                    .iter()
                    .map(|s| s.kernel.as_str())
                    .collect::<Vec<_>>()
                    .join(" -> "),
                steps,
                score: None,
                not_scored: None,
                cv: None,
                estimated_fit: None,
                estimated_memory: None,
                fuel: None,
            }
        })
        .collect();
    let mut rec = Recommendation {
        profile,
        kernels: available
            .iter()
            .map(|a| KernelSummary {
                name: a.info.name.clone(),
                version: a.info.version.clone(),
                kind: a.info.kind.to_string(),
                roles: a.roles.describe(),
                partial_fit: a.info.capabilities.contains(Capabilities::PARTIAL_FIT),
            })
            .collect(),
        skipped,
        features,
        dropped,
        reasons,
        metric: metric.clone(),
        folds: options.folds,
        sample_rows: 0,
        candidates: Vec::new(),
        recommendation: String::new(),
        chunk_rows,
        test: options.test.clone(),
        history: None,
        notes: Vec::new(),
    };
    let fingerprint = crate::history::Fingerprint::of_profile(&rec.profile, &rec.features);
    if let Some(h) = history.as_deref() {
        let models: Vec<String> = candidates
            .iter()
            .filter_map(|c| c.steps.last().map(|s| s.kernel.clone()))
            .collect();
        match h.evidence(&fingerprint, &models) {
            Ok(evidence) => {
                if let Some(summary) = &evidence.summary {
                    rec.reasons.push(format!("history: {summary}"));
                }
                rec.history = Some(evidence);
            }
            Err(e) => rec.notes.push(format!(
                "the history at {} could not be read: {e:#}",
                h.path().display()
            )),
        }
    }
    let history_wins = rec
        .history
        .as_ref()
        .map(|e| e.wins.clone())
        .unwrap_or_default();
    let wins = |c: &Candidate| -> usize {
        let model = c.steps.last().map_or("", |s| s.kernel.as_str());
        history_wins.get(model).copied().unwrap_or(0)
    };
    // The history's favourite is cross-validated first.
    candidates.sort_by_key(|c| std::cmp::Reverse(wins(c)));
    // Each candidate as a manifest in `scratch` (absolute paths), scored
    // on the same rows and folds.
    let mut plans = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let text = manifest(
            &rec,
            c,
            &available,
            data,
            None,
            options.test_fraction,
            options.seed,
        );
        let path = scratch.join(format!("candidate-{i}.toml"));
        std::fs::write(&path, &text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e.into()))?;
        let registry = crate::registry::Registry::open(crate::registry::Registry::default_dir());
        let registry = from
            .iter()
            .find_map(|f| match f {
                KernelsFrom::Registry(r) => Some(r.clone()),
                KernelsFrom::Dir(_) => None,
            })
            .unwrap_or(registry);
        let mut plan = Plan::load_with(&path, &registry)?;
        plan.data.chunk_rows = None;
        plans.push(plan);
    }
    if !options.budget.is_zero() {
        let started = Instant::now();
        let streamed = rec.chunk_rows.map(|_| rec.profile.rows);
        let dataset = sample(&plans[0], options, kind, streamed)?;
        rec.sample_rows = dataset.x.rows as usize;
        let held_out = if rec.chunk_rows.is_some() || rec.test.is_some() {
            0.0
        } else {
            options.test_fraction
        };
        let full_rows = (rec.profile.rows as f64 * (1.0 - held_out)).max(1.0);
        let fold_rows = (dataset.x.rows as f64 * (1.0 - 1.0 / options.folds as f64)).max(1.0);
        let scale = full_rows / fold_rows;
        for (c, plan) in candidates.iter_mut().zip(&plans) {
            if started.elapsed() >= options.budget {
                c.not_scored = Some(format!(
                    "not scored: the {} s budget was spent",
                    options.budget.as_secs()
                ));
                continue;
            }
            progress(&format!("cross-validating {}", c.name));
            match select::cross_validate(sandbox, plan, &dataset).await {
                Ok(cv) => {
                    c.score = cv.summary(&metric);
                    if let (Some(h), Some((mean, _))) = (history.as_deref_mut(), c.score) {
                        let record = crate::history::Entry {
                            command: "recommend".into(),
                            data: std::path::absolute(data).unwrap_or(data.to_path_buf()),
                            fingerprint: fingerprint.clone(),
                            pipeline: c.steps.iter().map(|s| s.kernel.clone()).collect(),
                            metric: metric.clone(),
                            score: mean,
                            scored_on: format!(
                                "{}-fold CV on {} rows",
                                options.folds, dataset.x.rows
                            ),
                            fit_seconds: cv.fit_time().as_secs_f64(),
                            fuel: cv.fuel(),
                        };
                        if let Err(e) = h.record(&record) {
                            rec.notes.push(format!(
                                "could not add to the history at {}: {e:#}",
                                h.path().display()
                            ));
                        }
                    }
                    c.fuel = Some(cv.fuel());
                    c.estimated_fit = Some(cv.fit_time().mul_f64(scale));
                    c.estimated_memory = Some((cv.peak_memory() as f64 * scale) as u64);
                    c.cv = Some(cv);
                }
                Err(e) => {
                    c.not_scored = Some(format!(
                        "failed: {}",
                        crate::printable_lines(&e.to_string())
                    ))
                }
            }
        }
    }
    // By score; on equal scores (and when nothing was scored) the
    // history's wins, then less fuel. The sort is stable: the history's
    // order, then the names, stay for the rest.
    let higher = metrics::higher_is_better(&metric);
    candidates.sort_by(|a, b| {
        let by_score = match (a.score, b.score) {
            (Some(x), Some(y)) => {
                let (x, y) = if higher { (y.0, x.0) } else { (x.0, y.0) };
                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_score
            .then_with(|| wins(b).cmp(&wins(a)))
            .then_with(|| a.fuel.cmp(&b.fuel))
    });
    rec.recommendation = match candidates.first() {
        Some(best) => match best.score {
            Some((mean, std)) => format!(
                "recommended: {} — best {metric} {} in {}-fold cross-validation on {} rows{}",
                best.name,
                select::show(mean, std),
                options.folds,
                rec.sample_rows,
                candidates.get(1).and_then(|c| Some((c, c.score?))).map_or(
                    String::new(),
                    |(c, (m, s))| format!(" (next: {} {})", c.name, select::show(m, s))
                )
            ),
            None => match rec.history.as_ref().and_then(|e| e.summary.as_ref()) {
                Some(summary) if wins(best) > 0 => format!(
                    "recommended: {} — not cross-validated ({}); chosen by the history: {summary}",
                    best.name,
                    best.not_scored.as_deref().unwrap_or("no budget")
                ),
                _ => format!(
                    "recommended: {} — not cross-validated ({}); the rules alone chose it",
                    best.name,
                    best.not_scored.as_deref().unwrap_or("no budget")
                ),
            },
        },
        None => "no candidate".into(),
    };
    rec.candidates = candidates;
    Ok((rec, available))
}

/// The rows to cross-validate, in folds: the plan's training rows sampled
/// down to [`SAMPLE_ROWS`] (seeded). When the data is fitted in chunks (too
/// large to hold whole: `streamed` is its row count), the sample is drawn
/// while streaming the training file, so no more than it is ever held.
fn sample(
    plan: &Plan,
    options: &Options,
    kind: KernelKind,
    streamed: Option<u64>,
) -> Result<Dataset, Error> {
    let stratify = kind == KernelKind::Classifier;
    let mut rng = crate::data::generate::Rng(options.seed ^ 0x5eed);
    if let Some(total) = streamed.filter(|t| *t > SAMPLE_ROWS as u64)
        && let crate::manifest::DataSource::Files { train, .. } = &plan.data.source
    {
        // Floyd's algorithm: SAMPLE_ROWS distinct rows of `total`, in
        // memory proportional to the sample.
        let mut chosen = std::collections::HashSet::with_capacity(SAMPLE_ROWS);
        for j in (total - SAMPLE_ROWS as u64)..total {
            let t = rng.next_u64() % (j + 1);
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        let mut wanted: Vec<u64> = chosen.into_iter().collect();
        wanted.sort_unstable();
        let mut chunks = crate::data::Chunks::open(train, &plan.data.csv)?;
        let (mut parts, mut at, mut next) = (Vec::new(), 0u64, 0usize);
        while let Some(chunk) = chunks.next_chunk(65_536)? {
            let end = at + u64::from(chunk.rows);
            let mut take = Vec::new();
            while next < wanted.len() && wanted[next] < end {
                take.push((wanted[next] - at) as usize);
                next += 1;
            }
            if !take.is_empty() {
                parts.push(chunk.take_rows(&take));
            }
            at = end;
        }
        let frame = Frame::concat_rows(parts).map_err(|m| {
            Error::Data(crate::DataError::new(
                train,
                format!("chunks disagree: {m}"),
            ))
        })?;
        let (x, y) =
            crate::job::features_and_target(plan, frame, train, kind != KernelKind::Clusterer)?;
        return Ok(with_folds(x, y, options, stratify));
    }
    let dataset = Dataset::of(plan, options.folds, options.seed, stratify)?;
    let n = dataset.x.rows as usize;
    if n <= SAMPLE_ROWS {
        return Ok(dataset);
    }
    let mut rows: Vec<usize> = (0..n).collect();
    for i in 0..SAMPLE_ROWS {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        rows.swap(i, j);
    }
    rows.truncate(SAMPLE_ROWS);
    rows.sort_unstable();
    let x = dataset.x.take_rows(&rows);
    let y = dataset.y.as_ref().map(|y| select::take_column(y, &rows));
    Ok(with_folds(x, y, options, stratify))
}

/// Sampled rows in `options.folds` folds, stratified by the target when
/// asked.
fn with_folds(x: Frame, y: Option<Column>, options: &Options, stratify: bool) -> Dataset {
    let n = x.rows as usize;
    let strata: Option<Vec<Option<String>>> = match (&y, stratify) {
        (Some(y), true) => Some((0..n).map(|r| crate::data::cell_text(y, r)).collect()),
        _ => None,
    };
    let folds = select::folds(n, options.folds, options.seed, strata.as_deref());
    Dataset {
        x,
        y,
        folds,
        seed: options.seed,
    }
}

/// The recommendation as text.
pub fn render(rec: &Recommendation) -> String {
    let mut out = crate::data::profile::render(&rec.profile);
    let _ = writeln!(out, "\nkernels ({}):", rec.kernels.len());
    for k in &rec.kernels {
        let _ = writeln!(
            out,
            "  {:<22} {:<12} {}{}",
            k.name,
            k.kind,
            if k.roles.is_empty() {
                String::new()
            } else {
                k.roles.join(", ")
            },
            if k.partial_fit { " [partial-fit]" } else { "" }
        );
    }
    for s in &rec.skipped {
        let _ = writeln!(out, "  skipped {s}");
    }
    let _ = writeln!(out, "\nwhy each step:");
    for r in &rec.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    let _ = writeln!(
        out,
        "\ncandidates ({}{}):",
        rec.metric,
        if rec.sample_rows > 0 {
            format!(
                ", {}-fold cross-validation on {} rows",
                rec.folds, rec.sample_rows
            )
        } else {
            String::new()
        }
    );
    let width = rec
        .candidates
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(10);
    for (i, c) in rec.candidates.iter().enumerate() {
        let score = match (c.score, &c.not_scored) {
            (Some((m, s)), _) => select::show(m, s),
            (None, Some(why)) => why.clone(),
            (None, None) => "not scored".into(),
        };
        let cost = match (c.estimated_fit, c.estimated_memory) {
            (Some(t), Some(m)) => format!(
                "  est. fit on all rows {}, guest memory {}",
                show_duration(t),
                crate::data::profile::human_bytes(m)
            ),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}. {:<width$}  {score}{cost}", i + 1, c.name);
    }
    let _ = writeln!(out, "\n{}", rec.recommendation);
    for note in &rec.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn show_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}
