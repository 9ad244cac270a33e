//! The conformance properties every kernel must keep, defined once for two
//! runners:
//!
//! - `kernel-host test KERNEL.wasm` runs them on the component itself,
//!   through the sandbox (fuel, memory and time are measured);
//! - [`crate::testing::conformance`] runs them on the kernel type, natively,
//!   from `cargo test`.
//!
//! A runner implements [`Subject`] (describe, make fresh instances) and
//! [`Instance`] (the kernel calls) over its own types and calls [`run`]. The
//! properties, the generated frames and the messages live here and nowhere
//! else. This file depends only on `std` and `serde` (kernel-host includes
//! it by path), so its frame types are plain ones; each runner converts.
//!
//! Every property names what was checked and, when it fails, the smallest
//! input that shows it and what to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// The values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum Cells {
    F64(Vec<f64>),
    S64(Vec<i64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

/// A named column; `nulls` has one byte per row, non-zero for a missing
/// value.
#[derive(Clone, Debug, PartialEq)]
pub struct Col {
    pub name: String,
    pub cells: Cells,
    pub nulls: Option<Vec<u8>>,
}

/// Columns of equal length.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub rows: u32,
    pub columns: Vec<Col>,
}

/// A parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F64(f64),
    S64(i64),
    Bool(bool),
    Text(String),
}

/// A parameter's declared type and range.
#[derive(Clone, Debug, PartialEq)]
pub enum Range {
    F64(Option<f64>, Option<f64>),
    S64(Option<i64>, Option<i64>),
    Bool,
    Choice(Vec<String>),
    Text,
}

/// One declared parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    pub range: Range,
    pub default: Value,
}

/// What the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Transformer,
    Classifier,
    Regressor,
    Clusterer,
}

/// What `describe` reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub kind: Kind,
    pub params: Vec<Spec>,
    pub partial_fit: bool,
    pub predict_proba: bool,
    pub stateless_transform: bool,
}

/// The kernel's own reason for refusing a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidParams,
    InvalidInput,
    NotFitted,
    Unsupported,
    InvalidState,
    Failed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::InvalidParams => "invalid-params",
            Refusal::InvalidInput => "invalid-input",
            Refusal::NotFitted => "not-fitted",
            Refusal::Unsupported => "unsupported",
            Refusal::InvalidState => "invalid-state",
            Refusal::Failed => "failed",
        })
    }
}

/// How a call failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The kernel returned an error: the polite way to fail.
    Refused(Refusal, String),
    /// The output broke the contract (wrong row count, duplicate names...).
    BadOutput(String),
    /// A trap, a panic, or a limit (fuel, memory, time).
    Fault(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(kind, message) => write!(f, "refused ({kind}): {message}"),
            Failure::BadOutput(message) => write!(f, "bad output: {message}"),
            Failure::Fault(message) => f.write_str(message),
        }
    }
}

pub type Outcome<T> = Result<T, Failure>;

/// Cumulative resource use of an instance, where the runner can measure it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    /// Fuel consumed by all calls so far.
    pub fuel: Option<u64>,
    /// Largest linear memory so far, bytes.
    pub memory: Option<u64>,
}

/// One kernel instance: the calls of the WIT `kernel` interface.
pub trait Instance {
    fn configure(&mut self, params: &[(String, Value)]) -> Outcome<()>;
    fn fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()>;
    fn partial_fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()>;
    fn transform(&mut self, x: &Table) -> Outcome<Table>;
    fn predict(&mut self, x: &Table) -> Outcome<Col>;
    fn predict_proba(&mut self, x: &Table) -> Outcome<Table>;
    fn save_state(&mut self) -> Outcome<Vec<u8>>;
    fn load_state(&mut self, state: &[u8]) -> Outcome<()>;
    /// `explain`, reduced to whether it worked.
    fn explain(&mut self) -> Outcome<()>;
    /// What the instance has used so far (nothing, where not measured).
    fn meter(&mut self) -> Meter {
        Meter::default()
    }
}

/// The kernel under test.
pub trait Subject {
    type Instance: Instance;
    fn describe(&mut self) -> Outcome<Info>;
    /// A fresh instance, as the host makes one: nothing configured yet.
    fn instance(&mut self) -> Outcome<Self::Instance>;
    /// Instances made from now on get a host random stream seeded with
    /// `seed` (where the runner controls one), so outputs that depend on
    /// it, rather than on parameters and input, show up as differences.
    fn set_seed(&mut self, seed: u64) {
        let _ = seed;
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Parameters every check starts from (on top of the defaults).
    pub params: Vec<(String, Value)>,
    /// The author's own data and target, checked beside the generated
    /// frames (its first [`DATA_ROWS`] rows).
    pub data: Option<(Table, Option<Col>)>,
    /// Calls of the memory check.
    pub repeat: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            params: Vec::new(),
            data: None,
            repeat: 200,
        }
    }
}

/// Rows of the author's data the checks use.
pub const DATA_ROWS: usize = 5000;
/// Floats from chunked fits agree when `|a - b| <= TOLERANCE * max(1, |a|, |b|)`.
pub const TOLERANCE: f64 = 1e-9;
/// How far a row of probabilities may sum from 1: kernels may compute in
/// f32 (host tensors), as scikit-learn's own estimator checks allow (6
/// decimals).
pub const PROBABILITY_SUM: f64 = 1e-6;
/// Growth of linear memory over the repeated calls that counts as a leak.
pub const LEAK_BYTES: u64 = 256 << 10;

/// The properties, in the order they run.
pub const PROPERTIES: &[(&str, &str)] = &[
    (
        "describe",
        "name, version and parameter specs are well-formed; defaults lie in their ranges",
    ),
    (
        "parameters",
        "defaults, range ends and choices are accepted (a range end may be refused by a check naming another parameter); out-of-range values, wrong types and unknown names are refused with invalid-params",
    ),
    (
        "not-fitted",
        "transform/predict/predict-proba before any fit refuse with not-fitted",
    ),
    (
        "frames",
        "fit and every operation on generated frames (types, nulls, NaN, ±inf, constant, empty, one row, wide, long) succeed or refuse with invalid-input; never trap",
    ),
    (
        "outputs",
        "outputs are well-formed: row counts kept, columns as long as the frame, names unique",
    ),
    (
        "determinism",
        "the same call twice, and on a fresh instance fitted alike, gives bit-identical output",
    ),
    (
        "state",
        "save-state, load-state into a fresh instance: identical outputs; corrupt state is refused",
    ),
    (
        "partial-fit",
        "partial-fit in chunks of 1 and 7 rows gives the outputs of one partial-fit of all rows",
    ),
    (
        "probabilities",
        "classifiers: probabilities in [0, 1] summing to 1 (±1e-6) per row, predict = arg-max, classes consistent",
    ),
    ("resources", "memory stays flat over repeated calls"),
];

/// The result of one property.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

impl Verdict {
    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip(_) => "skip",
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Pass(r) | Verdict::Fail(r) | Verdict::Skip(r) => r,
        }
    }
}

/// One property's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub property: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Resource use of one operation over the whole run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Usage {
    pub calls: u64,
    pub time_ms: f64,
    /// Mean fuel per call.
    pub fuel: Option<u64>,
    /// Largest linear memory after a call of this kind, bytes.
    pub peak_memory: Option<u64>,
    #[serde(skip)]
    fuel_total: u64,
}

/// Everything [`run`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub kernel: String,
    pub version: String,
    pub checks: Vec<Check>,
    /// What the author should know that is not a failure.
    pub notes: Vec<String>,
    pub usage: BTreeMap<&'static str, Usage>,
    pub elapsed_ms: f64,
}

impl Report {
    /// Whether every property passed (or did not apply).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.verdict.failed())
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict.failed())
    }

    /// The verdict of `property`.
    pub fn verdict(&self, property: &str) -> Option<&Verdict> {
        self.checks
            .iter()
            .find(|c| c.property == property)
            .map(|c| &c.verdict)
    }

    /// The summary table: one line per property, then one per operation.
    pub fn table(&self) -> String {
        let mut out = format!("conformance of {}@{}\n", self.kernel, self.version);
        for check in &self.checks {
            let mut lines = check.verdict.reason().lines();
            out.push_str(&format!(
                "  {:<5} {:<14} {}\n",
                check.verdict.label(),
                check.property,
                lines.next().unwrap_or("")
            ));
            for line in lines {
                out.push_str(&format!("{:22}{line}\n", ""));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        if !self.usage.is_empty() {
            out.push_str(&format!(
                "\n  {:<14} {:>6} {:>11} {:>14} {:>12}\n",
                "operation", "calls", "mean time", "mean fuel", "peak memory"
            ));
            for (op, u) in &self.usage {
                let mean = Duration::from_secs_f64(u.time_ms / 1e3 / u.calls.max(1) as f64);
                out.push_str(&format!(
                    "  {:<14} {:>6} {:>11} {:>14} {:>12}\n",
                    op,
                    u.calls,
                    format!("{mean:.1?}"),
                    u.fuel.map_or("-".to_string(), |f| f.to_string()),
                    u.peak_memory.map_or("-".to_string(), |m| format!(
                        "{:.1} MiB",
                        m as f64 / 1048576.0
                    )),
                ));
            }
        }
        let failed = self.failures().count();
        out.push_str(&format!(
            "\n{} of {} properties failed ({:.1} s)\n",
            failed,
            self.checks.len(),
            self.elapsed_ms / 1e3
        ));
        out
    }
}

/// The conversions between a runner's WIT types and this module's plain
/// ones, written once: the SDK and kernel-host expand it where their own
/// `Frame`, `Column`, `ColumnValues`, `ParamValue`, `ParamType`,
/// `KernelInfo`, `KernelKind` and `Capabilities` are in scope, passing the
/// path of this module.
macro_rules! plain_conversions {
    ($p:ident) => {
        /// A frame as the conformance module's plain table.
        pub fn frame_to_table(frame: &Frame) -> $p::Table {
            $p::Table {
                rows: frame.rows,
                columns: frame.columns.iter().map(column_to_col).collect(),
            }
        }

        /// A column as the conformance module's plain column.
        pub fn column_to_col(c: &Column) -> $p::Col {
            $p::Col {
                name: c.name.clone(),
                cells: match &c.values {
                    ColumnValues::F64(v) => $p::Cells::F64(v.clone()),
                    ColumnValues::S64(v) => $p::Cells::S64(v.clone()),
                    ColumnValues::Bool(v) => $p::Cells::Bool(v.clone()),
                    // The host's strings are one buffer, the guest's a `Vec<String>`.
                    ColumnValues::String(v) => {
                        $p::Cells::Text(v.iter().map(|s| s.to_string()).collect())
                    }
                },
                nulls: c.nulls.clone(),
            }
        }

        fn table_to_frame(t: &$p::Table) -> Frame {
            Frame {
                rows: t.rows,
                columns: t.columns.iter().map(col_to_column).collect(),
            }
        }

        fn col_to_column(c: &$p::Col) -> Column {
            Column {
                name: c.name.clone(),
                values: match &c.cells {
                    $p::Cells::F64(v) => ColumnValues::F64(v.clone()),
                    $p::Cells::S64(v) => ColumnValues::S64(v.clone()),
                    $p::Cells::Bool(v) => ColumnValues::Bool(v.clone()),
                    $p::Cells::Text(v) => {
                        ColumnValues::String(v.iter().map(|s| s.to_string()).collect())
                    }
                },
                nulls: c.nulls.clone(),
            }
        }

        fn param_to_value(v: &ParamValue) -> $p::Value {
            match v {
                ParamValue::F64(x) => $p::Value::F64(*x),
                ParamValue::S64(x) => $p::Value::S64(*x),
                ParamValue::Bool(x) => $p::Value::Bool(*x),
                ParamValue::String(x) => $p::Value::Text(x.clone()),
            }
        }

        fn value_to_param(v: &$p::Value) -> ParamValue {
            match v {
                $p::Value::F64(x) => ParamValue::F64(*x),
                $p::Value::S64(x) => ParamValue::S64(*x),
                $p::Value::Bool(x) => ParamValue::Bool(*x),
                $p::Value::Text(x) => ParamValue::String(x.clone()),
            }
        }

        fn params_of(params: &[(String, $p::Value)]) -> Vec<Param> {
            params
                .iter()
                .map(|(name, v)| Param {
                    name: name.clone(),
                    value: value_to_param(v),
                })
                .collect()
        }

        fn info_of(info: &KernelInfo) -> $p::Info {
            $p::Info {
                name: info.name.clone(),
                version: info.version.clone(),
                kind: match info.kind {
                    KernelKind::Transformer => $p::Kind::Transformer,
                    KernelKind::Classifier => $p::Kind::Classifier,
                    KernelKind::Regressor => $p::Kind::Regressor,
                    KernelKind::Clusterer => $p::Kind::Clusterer,
                },
                params: info
                    .params
                    .iter()
                    .map(|p| $p::Spec {
                        name: p.name.clone(),
                        range: match &p.kind {
                            ParamType::F64((lo, hi)) => $p::Range::F64(*lo, *hi),
                            ParamType::S64((lo, hi)) => $p::Range::S64(*lo, *hi),
                            ParamType::Bool => $p::Range::Bool,
                            ParamType::Choice(c) => $p::Range::Choice(c.clone()),
                            ParamType::Text => $p::Range::Text,
                        },
                        default: param_to_value(&p.default),
                    })
                    .collect(),
                partial_fit: info.capabilities.contains(Capabilities::PARTIAL_FIT),
                predict_proba: info.capabilities.contains(Capabilities::PREDICT_PROBA),
                stateless_transform: info
                    .capabilities
                    .contains(Capabilities::STATELESS_TRANSFORM),
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Generated inputs

/// One input the checks use.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Short name, e.g. `nan`.
    pub name: String,
    pub x: Table,
    pub y: Option<Col>,
    /// Every value finite and present: outputs must be meaningful, not only
    /// survive.
    pub clean: bool,
}

impl Sample {
    /// `nan (60 rows × 3 columns: a f64, b f64, c f64)`.
    pub fn describe(&self) -> String {
        let mut cols: Vec<String> = self
            .x
            .columns
            .iter()
            .take(4)
            .map(|c| format!("{} {}", c.name, c.type_name()))
            .collect();
        if self.x.columns.len() > 4 {
            cols.push("…".into());
        }
        format!(
            "`{}` ({} row{} × {} column{}: {})",
            self.name,
            self.x.rows,
            if self.x.rows == 1 { "" } else { "s" },
            self.x.columns.len(),
            if self.x.columns.len() == 1 { "" } else { "s" },
            cols.join(", ")
        )
    }

    fn size(&self) -> usize {
        self.x.rows as usize * self.x.columns.len().max(1)
    }
}

impl Col {
    pub fn f64(name: &str, values: Vec<f64>) -> Col {
        Col {
            name: name.into(),
            cells: Cells::F64(values),
            nulls: None,
        }
    }

    pub fn len(&self) -> usize {
        match &self.cells {
            Cells::F64(v) => v.len(),
            Cells::S64(v) => v.len(),
            Cells::Bool(v) => v.len(),
            Cells::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_name(&self) -> &'static str {
        match self.cells {
            Cells::F64(_) => "f64",
            Cells::S64(_) => "s64",
            Cells::Bool(_) => "bool",
            Cells::Text(_) => "string",
        }
    }

    fn is_null(&self, row: usize) -> bool {
        self.nulls
            .as_ref()
            .is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
    }

    /// The value at `row` as a label (`None` when missing).
    pub fn label(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        match &self.cells {
            Cells::F64(v) => v.get(row).map(|x| x.to_string()),
            Cells::S64(v) => v.get(row).map(|x| x.to_string()),
            Cells::Bool(v) => v.get(row).map(|x| x.to_string()),
            Cells::Text(v) => v.get(row).cloned(),
        }
    }

    /// Rows `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Col {
        Col {
            name: self.name.clone(),
            cells: match &self.cells {
                Cells::F64(v) => Cells::F64(v[start..end].to_vec()),
                Cells::S64(v) => Cells::S64(v[start..end].to_vec()),
                Cells::Bool(v) => Cells::Bool(v[start..end].to_vec()),
                Cells::Text(v) => Cells::Text(v[start..end].to_vec()),
            },
            nulls: self.nulls.as_ref().map(|n| n[start..end].to_vec()),
        }
    }
}

impl Table {
    /// Rows `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Table {
        Table {
            rows: (end - start) as u32,
            columns: self.columns.iter().map(|c| c.slice(start, end)).collect(),
        }
    }
}

/// A small deterministic generator (splitmix64): the same frames on every
/// machine and run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal: the sum of four uniforms, centred and scaled.
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 1.7
    }
}

/// Features `a`, `b`, `c` for `rows` rows.
fn features(rows: usize, seed: u64) -> [Vec<f64>; 3] {
    let mut rng = Rng(seed);
    let mut cols = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rows {
        for col in &mut cols {
            col.push(rng.normal());
        }
    }
    cols
}

/// The target for features `a`, `b`, `c`, as the kind needs it.
fn target(kind: Kind, abc: &[Vec<f64>; 3]) -> Option<Col> {
    let [a, b, c] = abc;
    let clean = |v: f64| if v.is_finite() { v } else { 0.0 };
    let rows = a.len();
    match kind {
        Kind::Classifier => {
            let labels = (0..rows)
                .map(|i| {
                    let (a, b, c) = (clean(a[i]), clean(b[i]), clean(c[i]));
                    let scores = [a + 0.5 * c, b, -a - b];
                    let best = (0..3).fold(0, |k, j| if scores[j] > scores[k] { j } else { k });
                    ["x", "y", "z"][best].to_string()
                })
                .collect();
            Some(Col {
                name: "target".into(),
                cells: Cells::Text(labels),
                nulls: None,
            })
        }
        Kind::Regressor => Some(Col::f64(
            "target",
            (0..rows)
                .map(|i| 2.0 * clean(a[i]) - clean(b[i]) + 0.5 * clean(c[i]) + 1.0)
                .collect(),
        )),
        Kind::Transformer | Kind::Clusterer => None,
    }
}

fn f64_table(names: &[&str], cols: Vec<Vec<f64>>) -> Table {
    let rows = cols.first().map_or(0, Vec::len) as u32;
    Table {
        rows,
        columns: names
            .iter()
            .zip(cols)
            .map(|(n, v)| Col::f64(n, v))
            .collect(),
    }
}

/// The generated inputs for a kernel of `kind`, smallest first. Every frame
/// has the features `a`, `b`, `c` (so a kernel fitted on one can be applied
/// to the others); they differ in type, holes, special values and shape.
pub fn samples(kind: Kind) -> Vec<Sample> {
    let abc = ["a", "b", "c"];
    let sample = |name: &str, x: Table, raw: &[Vec<f64>; 3], clean: bool| Sample {
        name: name.into(),
        x,
        y: target(kind, raw),
        clean,
    };
    let mut out = Vec::new();

    let numeric = features(60, 1);
    out.push(sample(
        "numeric",
        f64_table(&abc, numeric.to_vec()),
        &numeric,
        true,
    ));

    let empty: [Vec<f64>; 3] = Default::default();
    out.push(sample(
        "empty",
        f64_table(&abc, empty.to_vec()),
        &empty,
        true,
    ));

    let one = features(1, 2);
    out.push(sample("one-row", f64_table(&abc, one.to_vec()), &one, true));

    let ints: [Vec<f64>; 3] =
        features(60, 3).map(|c| c.iter().map(|v| (v * 10.0).round()).collect());
    out.push(sample(
        "integers",
        Table {
            rows: 60,
            columns: abc
                .iter()
                .zip(&ints)
                .map(|(n, v)| Col {
                    name: n.to_string(),
                    cells: Cells::S64(v.iter().map(|x: &f64| *x as i64).collect()),
                    nulls: None,
                })
                .collect(),
        },
        &ints,
        true,
    ));

    let bools: [Vec<f64>; 3] =
        features(60, 4).map(|c| c.iter().map(|v| f64::from(u8::from(*v > 0.0))).collect());
    out.push(sample(
        "booleans",
        Table {
            rows: 60,
            columns: abc
                .iter()
                .zip(&bools)
                .map(|(n, v)| Col {
                    name: n.to_string(),
                    cells: Cells::Bool(v.iter().map(|x: &f64| *x > 0.5).collect()),
                    nulls: None,
                })
                .collect(),
        },
        &bools,
        true,
    ));

    let constant = {
        let mut f = features(60, 5);
        f[1] = vec![1.0; 60];
        f
    };
    out.push(sample(
        "constant",
        f64_table(&abc, constant.to_vec()),
        &constant,
        true,
    ));

    let holes = features(60, 6);
    let mut x = f64_table(&abc, holes.to_vec());
    x.columns[0].nulls = Some((0..60).map(|i| u8::from(i % 5 == 2)).collect());
    if let Cells::F64(v) = &mut x.columns[0].cells {
        (0..60).filter(|i| i % 5 == 2).for_each(|i| v[i] = 0.0);
    }
    out.push(sample("nulls", x, &holes, false));

    let mut nan = features(60, 7);
    (0..60)
        .filter(|i| i % 6 == 1)
        .for_each(|i| nan[1][i] = f64::NAN);
    out.push(sample("nan", f64_table(&abc, nan.to_vec()), &nan, false));

    let mut inf = features(60, 8);
    (0..60).filter(|i| i % 9 == 4).for_each(|i| {
        inf[2][i] = if i % 2 == 0 {
            f64::INFINITY
        } else {
            -f64::INFINITY
        }
    });
    out.push(sample(
        "infinite",
        f64_table(&abc, inf.to_vec()),
        &inf,
        false,
    ));

    let strings = features(60, 9);
    let mut x = f64_table(&abc, strings.to_vec());
    x.columns.push(Col {
        name: "s".into(),
        cells: Cells::Text(
            (0..60)
                .map(|i| ["red", "green", "blue", "é ü 漢"][i % 4].to_string())
                .collect(),
        ),
        nulls: None,
    });
    out.push(sample("strings", x, &strings, true));

    let wide = features(60, 10);
    let mut x = f64_table(&abc, wide.to_vec());
    let mut rng = Rng(11);
    for j in 3..64 {
        x.columns.push(Col::f64(
            &format!("f{j}"),
            (0..60).map(|_| rng.normal()).collect(),
        ));
    }
    out.push(sample("wide", x, &wide, true));

    let long = features(2000, 12);
    out.push(sample("long", f64_table(&abc, long.to_vec()), &long, true));

    out.sort_by_key(Sample::size);
    out
}

// ---------------------------------------------------------------------------
// The run

/// An operation that maps a frame to an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Transform,
    Predict,
    PredictProba,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Transform => "transform",
            Op::Predict => "predict",
            Op::PredictProba => "predict-proba",
        }
    }
}

/// An operation's output.
#[derive(Clone, Debug, PartialEq)]
enum Output {
    Table(Table),
    Col(Col),
}

/// Records resource use per operation.
struct Runner {
    usage: BTreeMap<&'static str, Usage>,
}

impl Runner {
    fn call<I: Instance, T>(
        &mut self,
        op: &'static str,
        instance: &mut I,
        f: impl FnOnce(&mut I) -> Outcome<T>,
    ) -> Outcome<T> {
        let before = instance.meter();
        let started = Instant::now();
        let result = f(instance);
        let elapsed = started.elapsed();
        let after = instance.meter();
        let usage = self.usage.entry(op).or_default();
        usage.calls += 1;
        usage.time_ms += elapsed.as_secs_f64() * 1e3;
        if let (Some(b), Some(a)) = (before.fuel, after.fuel) {
            usage.fuel_total += a.saturating_sub(b);
            usage.fuel = Some(usage.fuel_total / usage.calls);
        }
        if let Some(m) = after.memory {
            usage.peak_memory = Some(usage.peak_memory.unwrap_or(0).max(m));
        }
        result
    }

    fn fit<I: Instance>(&mut self, i: &mut I, s: &Sample) -> Outcome<()> {
        self.call("fit", i, |i| i.fit(&s.x, s.y.as_ref()))
    }

    fn partial_fit<I: Instance>(&mut self, i: &mut I, x: &Table, y: Option<&Col>) -> Outcome<()> {
        self.call("partial-fit", i, |i| i.partial_fit(x, y))
    }

    fn apply<I: Instance>(&mut self, i: &mut I, op: Op, x: &Table) -> Outcome<Output> {
        match op {
            Op::Transform => self
                .call("transform", i, |i| i.transform(x))
                .map(Output::Table),
            Op::Predict => self.call("predict", i, |i| i.predict(x)).map(Output::Col),
            Op::PredictProba => self
                .call("predict-proba", i, |i| i.predict_proba(x))
                .map(Output::Table),
        }
    }

    /// A fresh instance configured with `params`.
    fn configured<S: Subject>(
        &mut self,
        subject: &mut S,
        params: &[(String, Value)],
    ) -> Outcome<S::Instance> {
        let mut instance = subject.instance()?;
        self.call("configure", &mut instance, |i| i.configure(params))?;
        Ok(instance)
    }
}

/// Runs every property on `subject`.
pub fn run<S: Subject>(subject: &mut S, options: &Options) -> Report {
    let started = Instant::now();
    let mut runner = Runner {
        usage: BTreeMap::new(),
    };
    let mut checks = Vec::new();
    let mut push = |property: &'static str, verdict: Verdict| {
        checks.push(Check { property, verdict });
    };
    let info = match subject.describe() {
        Ok(info) => info,
        Err(e) => {
            push("describe", Verdict::Fail(format!("`describe` failed: {e}")));
            return Report {
                kernel: "?".into(),
                version: "?".into(),
                checks,
                notes: Vec::new(),
                usage: runner.usage,
                elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
            };
        }
    };
    push("describe", check_describe(&info));
    push(
        "parameters",
        check_parameters(&mut runner, subject, &info, &options.params),
    );

    let mut samples = samples(info.kind);
    if let Some((x, y)) = &options.data {
        let rows = (x.rows as usize).min(DATA_ROWS);
        samples.push(Sample {
            name: "data".into(),
            x: x.slice(0, rows),
            y: y.as_ref().map(|y| y.slice(0, rows)),
            clean: false,
        });
    }
    let ctx = Context {
        info: &info,
        params: &options.params,
        samples: &samples,
    };
    push("not-fitted", check_not_fitted(&mut runner, subject, &ctx));

    // The instance every later property starts from: fitted on the
    // author's data when given and usable, on `numeric` otherwise.
    let mut notes = Vec::new();
    let mut fitted = None;
    for base in samples
        .iter()
        .filter(|s| s.name == "data" || s.name == "numeric")
        .rev()
    {
        let attempt = runner
            .configured(subject, ctx.params)
            .and_then(|mut i| runner.fit(&mut i, base).map(|()| i));
        match attempt {
            Ok(i) => {
                fitted = Some((i, base));
                break;
            }
            Err(Failure::Refused(Refusal::InvalidInput, m)) if base.name == "data" => {
                notes.push(format!(
                    "the kernel refused your data ({}): {m}; the properties used the generated \
                     frames only",
                    base.describe()
                ));
            }
            Err(e) => {
                let why = format!(
                    "configure + fit on {} failed: {e}; the other properties need a fitted kernel",
                    base.describe()
                );
                push("frames", Verdict::Fail(why));
                for (property, _) in &PROPERTIES[4..] {
                    push(
                        property,
                        Verdict::Skip("needs a fitted kernel (see frames)".into()),
                    );
                }
                return finish(info, checks, runner, started, notes);
            }
        }
    }
    let Some((mut fitted, base)) = fitted else {
        return finish(info, checks, runner, started, notes);
    };
    let ops = match discover_ops(&mut runner, &mut fitted, &ctx, base) {
        Ok(ops) => ops,
        Err(why) => {
            push("frames", Verdict::Fail(why));
            Vec::new()
        }
    };
    if !ops.is_empty() {
        let (frames, outputs) = check_frames(&mut runner, subject, &ctx, &ops, &mut fitted);
        push("frames", frames);
        push("outputs", outputs);
        push(
            "determinism",
            check_determinism(&mut runner, subject, &ctx, &ops, base),
        );
        push("state", check_state(&mut runner, subject, &ctx, &ops, base));
        push(
            "partial-fit",
            check_partial_fit(&mut runner, subject, &ctx, &ops, base),
        );
        push(
            "probabilities",
            check_probabilities(&mut runner, &ctx, &mut fitted, base),
        );
        push(
            "resources",
            check_resources(&mut runner, &mut fitted, &ops, &samples, options.repeat),
        );
    }
    finish(info, checks, runner, started, notes)
}

/// The `state` property alone, on an input of the caller's choosing.
pub fn state_round_trip<S: Subject>(
    subject: &mut S,
    params: &[(String, Value)],
    x: &Table,
    y: Option<&Col>,
) -> Verdict {
    on_given(subject, params, x, y, check_state)
}

/// The `partial-fit` property alone, on an input of the caller's choosing.
pub fn chunk_invariance<S: Subject>(
    subject: &mut S,
    params: &[(String, Value)],
    x: &Table,
    y: Option<&Col>,
) -> Verdict {
    on_given(subject, params, x, y, check_partial_fit)
}

type Property<S> = fn(&mut Runner, &mut S, &Context, &[Op], &Sample) -> Verdict;

/// Runs one property with `x`/`y` as the base sample.
fn on_given<S: Subject>(
    subject: &mut S,
    params: &[(String, Value)],
    x: &Table,
    y: Option<&Col>,
    property: Property<S>,
) -> Verdict {
    let mut runner = Runner {
        usage: BTreeMap::new(),
    };
    let info = match subject.describe() {
        Ok(info) => info,
        Err(e) => return Verdict::Fail(format!("`describe` failed: {e}")),
    };
    let sample = Sample {
        name: "given".into(),
        x: x.clone(),
        y: y.cloned(),
        clean: false,
    };
    let samples = [sample];
    let ctx = Context {
        info: &info,
        params,
        samples: &samples,
    };
    let base = &samples[0];
    let fitted = runner
        .configured(subject, params)
        .and_then(|mut i| runner.fit(&mut i, base).map(|()| i));
    match fitted {
        Err(e) => Verdict::Fail(format!("configure + fit failed: {e}")),
        Ok(mut fitted) => match discover_ops(&mut runner, &mut fitted, &ctx, base) {
            Err(why) => Verdict::Fail(why),
            Ok(ops) => property(&mut runner, subject, &ctx, &ops, base),
        },
    }
}

fn finish(
    info: Info,
    checks: Vec<Check>,
    runner: Runner,
    started: Instant,
    notes: Vec<String>,
) -> Report {
    Report {
        kernel: info.name,
        version: info.version,
        checks,
        notes,
        usage: runner.usage,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

struct Context<'a> {
    info: &'a Info,
    params: &'a [(String, Value)],
    samples: &'a [Sample],
}

/// Up to `n` problems, one per line, and how many more there were.
fn listed(problems: &[String], n: usize) -> String {
    let mut out = problems
        .iter()
        .take(n)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if problems.len() > n {
        out.push_str(&format!("\n(and {} more)", problems.len() - n));
    }
    out
}

// ---------------------------------------------------------------------------
// describe

fn kebab(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn show(value: &Value) -> String {
    match value {
        Value::F64(v) => format!("{v:?}"),
        Value::S64(v) => v.to_string(),
        Value::Bool(v) => v.to_string(),
        Value::Text(v) => format!("{v:?}"),
    }
}

/// Checks what `describe` reports.
pub fn check_describe(info: &Info) -> Verdict {
    let mut problems = Vec::new();
    if !kebab(&info.name) {
        problems.push(format!(
            "name {:?} is not kebab-case (lowercase letters, digits and `-`, at most 64)",
            info.name
        ));
    }
    if !semver(&info.version) {
        problems.push(format!(
            "version {:?} is not semver (MAJOR.MINOR.PATCH); use env!(\"CARGO_PKG_VERSION\")",
            info.version
        ));
    }
    for (i, spec) in info.params.iter().enumerate() {
        let name = &spec.name;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!("parameter name {name:?} is empty or holds spaces"));
        }
        if info.params[..i].iter().any(|p| p.name == *name) {
            problems.push(format!("parameter `{name}` is declared twice"));
        }
        let default = &spec.default;
        let problem = match (&spec.range, default) {
            (Range::F64(min, max), Value::F64(v)) => {
                if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) {
                    Some("has a NaN bound".to_string())
                } else if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    Some(format!("has an empty range [{lo}, {hi}]"))
                } else if v.is_nan() || min.is_some_and(|m| *v < m) || max.is_some_and(|m| *v > m) {
                    Some(format!(
                        "default {v} lies outside its declared range [{}, {}]",
                        min.map_or("-∞".into(), |m| m.to_string()),
                        max.map_or("∞".into(), |m| m.to_string())
                    ))
                } else {
                    None
                }
            }
            (Range::S64(min, max), Value::S64(v)) => {
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    Some(format!("has an empty range [{lo}, {hi}]"))
                } else if min.is_some_and(|m| *v < m) || max.is_some_and(|m| *v > m) {
                    Some(format!(
                        "default {v} lies outside its declared range [{}, {}]",
                        min.map_or("-∞".into(), |m| m.to_string()),
                        max.map_or("∞".into(), |m| m.to_string())
                    ))
                } else {
                    None
                }
            }
            (Range::Bool, Value::Bool(_)) | (Range::Text, Value::Text(_)) => None,
            (Range::Choice(choices), Value::Text(v)) => {
                if choices.is_empty() {
                    Some("is a choice with no options".to_string())
                } else if choices
                    .iter()
                    .enumerate()
                    .any(|(j, c)| choices[..j].contains(c))
                {
                    Some("lists an option twice".to_string())
                } else if !choices.contains(v) {
                    Some(format!(
                        "default {v:?} is not one of its options ({})",
                        choices.join(", ")
                    ))
                } else {
                    None
                }
            }
            (range, default) => Some(format!(
                "default {} does not have the declared type ({})",
                show(default),
                range_name(range)
            )),
        };
        if let Some(problem) = problem {
            problems.push(format!("parameter `{name}` {problem}"));
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} {}, {} parameter(s)",
            kind_name(info.kind),
            info.version,
            info.params.len()
        ))
    } else {
        Verdict::Fail(listed(&problems, 5))
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Transformer => "transformer",
        Kind::Classifier => "classifier",
        Kind::Regressor => "regressor",
        Kind::Clusterer => "clusterer",
    }
}

fn range_name(range: &Range) -> &'static str {
    match range {
        Range::F64(..) => "f64",
        Range::S64(..) => "s64",
        Range::Bool => "bool",
        Range::Choice(_) => "choice",
        Range::Text => "text",
    }
}

// ---------------------------------------------------------------------------
// parameters

/// The values to try for one parameter: (value, why, must be accepted).
fn param_cases(spec: &Spec) -> Vec<(Value, String, bool)> {
    let mut cases = vec![(spec.default.clone(), "its default".to_string(), true)];
    match &spec.range {
        Range::F64(min, max) => {
            if let Some(lo) = min.filter(|m| m.is_finite()) {
                cases.push((Value::F64(lo), "the bottom of its range".into(), true));
                let below = lo - lo.abs().max(1.0);
                if below < lo {
                    cases.push((Value::F64(below), "below its range".into(), false));
                }
            }
            if let Some(hi) = max.filter(|m| m.is_finite()) {
                cases.push((Value::F64(hi), "the top of its range".into(), true));
                let above = hi + hi.abs().max(1.0);
                if above > hi {
                    cases.push((Value::F64(above), "above its range".into(), false));
                }
            }
            cases.push((Value::F64(f64::NAN), "NaN".into(), false));
            cases.push((Value::Text("1".into()), "a string".into(), false));
            cases.push((Value::Bool(true), "a bool".into(), false));
        }
        Range::S64(min, max) => {
            if let Some(lo) = *min {
                cases.push((Value::S64(lo), "the bottom of its range".into(), true));
                if let Some(below) = lo.checked_sub(1) {
                    cases.push((Value::S64(below), "below its range".into(), false));
                }
            }
            if let Some(hi) = *max {
                cases.push((Value::S64(hi), "the top of its range".into(), true));
                if let Some(above) = hi.checked_add(1) {
                    cases.push((Value::S64(above), "above its range".into(), false));
                }
            }
            cases.push((Value::F64(0.5), "a fraction".into(), false));
            cases.push((Value::Text("1".into()), "a string".into(), false));
        }
        Range::Bool => {
            cases.push((Value::Bool(true), "true".into(), true));
            cases.push((Value::Bool(false), "false".into(), true));
            cases.push((Value::Text("true".into()), "a string".into(), false));
            cases.push((Value::S64(1), "an integer".into(), false));
        }
        Range::Choice(choices) => {
            for c in choices {
                cases.push((Value::Text(c.clone()), "one of its options".into(), true));
            }
            cases.push((
                Value::Text("no-such-option".into()),
                "not one of its options".into(),
                false,
            ));
            cases.push((Value::F64(1.0), "a number".into(), false));
        }
        Range::Text => {
            cases.push((Value::F64(1.0), "a number".into(), false));
        }
    }
    cases
}

fn check_parameters<S: Subject>(
    runner: &mut Runner,
    subject: &mut S,
    info: &Info,
    base: &[(String, Value)],
) -> Verdict {
    let mut problems = Vec::new();
    let mut tried = 0;
    let mut crossed = 0;
    let mut instance = match subject.instance() {
        Ok(i) => i,
        Err(e) => return Verdict::Fail(format!("cannot make an instance: {e}")),
    };
    // The author's own parameters first: everything else builds on them.
    if let Err(e) = runner.call("configure", &mut instance, |i| i.configure(base)) {
        return Verdict::Fail(format!(
            "configure with the given parameters failed: {e}; every check starts from them"
        ));
    }
    let mut cases: Vec<(String, Value, String, bool)> = Vec::new();
    for spec in &info.params {
        for (value, why, accept) in param_cases(spec) {
            cases.push((spec.name.clone(), value, why, accept));
        }
    }
    cases.push((
        "no-such-parameter".into(),
        Value::F64(1.0),
        "an unknown name".into(),
        false,
    ));
    for (name, value, why, accept) in cases {
        tried += 1;
        let mut params: Vec<(String, Value)> =
            base.iter().filter(|(n, _)| *n != name).cloned().collect();
        params.push((name.clone(), value.clone()));
        let call = format!("configure({name} = {})", show(&value));
        let result = runner.call("configure", &mut instance, |i| i.configure(&params));
        match (accept, result) {
            (true, Ok(())) | (false, Err(Failure::Refused(Refusal::InvalidParams, _))) => {}
            // A range end may fall to a check between parameters (`low <
            // high`): allowed when the refusal names the other parameter.
            (true, Err(Failure::Refused(Refusal::InvalidParams, m)))
                if why.contains("range") && names_another(&m, &name, info) =>
            {
                crossed += 1;
            }
            (true, Err(Failure::Refused(kind, m))) => problems.push(format!(
                "{call} ({why}) was refused ({kind}: {m}); a value inside the declared range \
                 must be accepted with the other parameters at their defaults: accept it, \
                 narrow the declared range, or (for a check between parameters) name the \
                 other parameter in the refusal"
            )),
            (false, Ok(())) => problems.push(format!(
                "{call} ({why}) was accepted; refuse it with invalid-params \
                 (kernel_sdk's params! does this for declared ranges and types)"
            )),
            (false, Err(Failure::Refused(kind, m))) => problems.push(format!(
                "{call} ({why}) was refused as {kind} ({m}); parameter mistakes are invalid-params"
            )),
            (_, Err(fault)) => {
                problems.push(format!(
                    "{call} ({why}) did not return: {fault}; configure must refuse bad values \
                     with invalid-params, never trap"
                ));
                // The instance may be gone: go on with a fresh one.
                match subject.instance() {
                    Ok(i) => instance = i,
                    Err(e) => {
                        problems.push(format!("cannot make a new instance: {e}"));
                        break;
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(if crossed == 0 {
            format!("{tried} configure calls behaved")
        } else {
            format!(
                "{tried} configure calls behaved ({crossed} range end(s) refused by a check \
                 naming another parameter)"
            )
        })
    } else {
        Verdict::Fail(listed(&problems, 4))
    }
}

// ---------------------------------------------------------------------------
// not-fitted

fn check_not_fitted<S: Subject>(runner: &mut Runner, subject: &mut S, ctx: &Context) -> Verdict {
    let Some(sample) = ctx.samples.iter().find(|s| s.name == "numeric") else {
        return Verdict::Skip("no sample".into());
    };
    let mut instance = match runner.configured(subject, ctx.params) {
        Ok(i) => i,
        Err(e) => return Verdict::Fail(format!("configure failed: {e}")),
    };
    let info = ctx.info;
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for op in [Op::Transform, Op::Predict, Op::PredictProba] {
        let required = required(info, op);
        let result = runner.apply(&mut instance, op, &sample.x);
        let fine = match (&result, op) {
            (Err(Failure::Refused(Refusal::NotFitted, _)), _) => true,
            (Err(Failure::Refused(Refusal::Unsupported, _)), _) => !required,
            // A stateless transform needs no fit.
            (Ok(_) | Err(Failure::Refused(Refusal::InvalidInput, _)), Op::Transform) => {
                info.stateless_transform
            }
            _ => false,
        };
        if required || result.is_ok() || !fine {
            checked.push(op.name());
        }
        if !fine {
            let got = match &result {
                Ok(_) => "it returned an output".to_string(),
                Err(e) => e.to_string(),
            };
            problems.push(format!(
                "{} before any fit: {got}; refuse with not-fitted until fit or partial-fit succeeded{}",
                op.name(),
                if op == Op::Transform {
                    " (or declare the stateless-transform capability)"
                } else {
                    ""
                }
            ));
        }
        if matches!(result, Err(Failure::Fault(_))) {
            match runner.configured(subject, ctx.params) {
                Ok(i) => instance = i,
                Err(e) => {
                    problems.push(format!("cannot make a new instance: {e}"));
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!("{} refused before fit", checked.join(", ")))
    } else {
        Verdict::Fail(listed(&problems, 3))
    }
}

/// Whether `message` names a declared parameter other than `name` (as a
/// whole word).
fn names_another(message: &str, name: &str, info: &Info) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    info.params.iter().filter(|p| p.name != name).any(|p| {
        message.match_indices(p.name.as_str()).any(|(at, _)| {
            let before = message[..at].chars().next_back();
            let after = message[at + p.name.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    })
}

/// Whether the kernel's kind and capabilities promise `op`.
fn required(info: &Info, op: Op) -> bool {
    match op {
        Op::Transform => info.kind == Kind::Transformer,
        Op::Predict => info.kind != Kind::Transformer,
        Op::PredictProba => info.predict_proba,
    }
}

/// The operations to exercise: the promised ones, plus optional ones the
/// fitted kernel does not refuse as unsupported.
fn discover_ops<I: Instance>(
    runner: &mut Runner,
    fitted: &mut I,
    ctx: &Context,
    base: &Sample,
) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for op in [Op::Transform, Op::Predict, Op::PredictProba] {
        let needed = required(ctx.info, op);
        match runner.apply(fitted, op, &base.x) {
            Err(Failure::Refused(Refusal::Unsupported, m)) if needed => {
                return Err(format!(
                    "{} on {} is unsupported ({m}), but a {} must implement it",
                    op.name(),
                    base.describe(),
                    if op == Op::PredictProba {
                        "kernel declaring predict-proba"
                    } else {
                        kind_name(ctx.info.kind)
                    }
                ));
            }
            Err(Failure::Refused(Refusal::Unsupported, _)) => {}
            _ => ops.push(op),
        }
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------
// frames and outputs

/// Whether a call's failure is acceptable on a generated frame.
fn polite<T>(result: &Outcome<T>) -> bool {
    matches!(
        result,
        Ok(_) | Err(Failure::Refused(Refusal::InvalidInput, _) | Failure::BadOutput(_))
    )
}

fn check_frames<S: Subject>(
    runner: &mut Runner,
    subject: &mut S,
    ctx: &Context,
    ops: &[Op],
    fitted: &mut S::Instance,
) -> (Verdict, Verdict) {
    let mut problems: Vec<String> = Vec::new();
    let mut bad_outputs: Vec<String> = Vec::new();
    let mut calls = 0;
    let mut judge =
        |what: String, result: &Outcome<Output>, x: &Table, problems: &mut Vec<String>| {
            if !polite(result) {
                let hint = match result {
                    Err(Failure::Refused(..)) => {
                        "; refuse input you cannot use with invalid-input".to_string()
                    }
                    _ => "; a plausible frame must never trap: check the input and refuse it with \
                      invalid-input"
                        .to_string(),
                };
                problems.push(format!(
                    "{what}: {}{hint}",
                    result
                        .as_ref()
                        .err()
                        .map_or(String::new(), ToString::to_string)
                ));
            }
            match result {
                Err(Failure::BadOutput(m)) => bad_outputs.push(format!("{what}: {m}")),
                Ok(out) => {
                    if let Err(m) = well_formed(out, x.rows) {
                        bad_outputs.push(format!("{what}: {m}"));
                    }
                }
                Err(_) => {}
            }
        };
    for sample in ctx.samples {
        let about = sample.describe();
        // Fit on the sample, then apply to it.
        match runner.configured(subject, ctx.params) {
            Err(e) => problems.push(format!("configure failed: {e}")),
            Ok(mut instance) => {
                calls += 1;
                let fit = runner.fit(&mut instance, sample);
                if polite(&fit) {
                    if fit.is_ok() {
                        for &op in ops {
                            calls += 1;
                            let out = runner.apply(&mut instance, op, &sample.x);
                            judge(
                                format!("{} on {about}, after fitting it", op.name()),
                                &out,
                                &sample.x,
                                &mut problems,
                            );
                        }
                    }
                } else {
                    problems.push(format!(
                        "fit on {about}: {}{}",
                        fit.as_ref()
                            .err()
                            .map_or(String::new(), ToString::to_string),
                        if matches!(fit, Err(Failure::Refused(..))) {
                            "; refuse input you cannot use with invalid-input"
                        } else {
                            "; a plausible frame must never trap: check the input and refuse it \
                             with invalid-input"
                        }
                    ));
                }
            }
        }
        if ctx.info.partial_fit {
            match runner.configured(subject, ctx.params) {
                Err(e) => problems.push(format!("configure failed: {e}")),
                Ok(mut instance) => {
                    calls += 1;
                    let fit = runner.partial_fit(&mut instance, &sample.x, sample.y.as_ref());
                    if !polite(&fit) {
                        problems.push(format!(
                            "partial-fit on {about}: {}; refuse input you cannot use with \
                             invalid-input, never trap",
                            fit.as_ref()
                                .err()
                                .map_or(String::new(), ToString::to_string)
                        ));
                    }
                }
            }
        }
        // Apply the kernel fitted on the base sample.
        for &op in ops {
            calls += 1;
            let out = runner.apply(fitted, op, &sample.x);
            judge(
                format!("{} on {about}, fitted on the base frame", op.name()),
                &out,
                &sample.x,
                &mut problems,
            );
        }
    }
    let frames = if problems.is_empty() {
        Verdict::Pass(format!(
            "{} frames, {calls} calls: each succeeded or refused with invalid-input",
            ctx.samples.len()
        ))
    } else {
        Verdict::Fail(format!(
            "smallest failing input first:\n{}",
            listed(&problems, 3)
        ))
    };
    let outputs = if bad_outputs.is_empty() {
        Verdict::Pass("every output had its input's rows, full columns and unique names".into())
    } else {
        Verdict::Fail(format!(
            "{}\nkeep the row count, make every column (and null mask) as long as the frame, \
             and give columns unique names",
            listed(&bad_outputs, 3)
        ))
    };
    (frames, outputs)
}

/// Checks the shape of an output for an input of `rows` rows.
fn well_formed(out: &Output, rows: u32) -> Result<(), String> {
    let check_col = |c: &Col| -> Result<(), String> {
        if c.len() != rows as usize {
            return Err(format!(
                "column `{}` has {} values for {rows} rows",
                c.name,
                c.len()
            ));
        }
        if let Some(n) = &c.nulls
            && n.len() != rows as usize
        {
            return Err(format!(
                "column `{}` has a null mask of {} for {rows} rows",
                c.name,
                n.len()
            ));
        }
        Ok(())
    };
    match out {
        Output::Col(c) => check_col(c),
        Output::Table(t) => {
            if t.rows != rows {
                return Err(format!("returned {} rows for {rows} input rows", t.rows));
            }
            for (i, c) in t.columns.iter().enumerate() {
                check_col(c)?;
                if c.name.is_empty() {
                    return Err(format!("column {i} has an empty name"));
                }
                if t.columns[..i].iter().any(|d| d.name == c.name) {
                    return Err(format!("column name `{}` appears twice", c.name));
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// comparing outputs

/// The first difference between two outputs, `None` when bit-identical
/// (with `tolerance`, floats may differ by that much, relatively).
fn difference(a: &Output, b: &Output, tolerance: f64) -> Option<String> {
    match (a, b) {
        (Output::Col(a), Output::Col(b)) => col_difference(a, b, tolerance),
        (Output::Table(a), Output::Table(b)) => {
            if a.rows != b.rows || a.columns.len() != b.columns.len() {
                return Some(format!(
                    "{} rows × {} columns, then {} × {}",
                    a.rows,
                    a.columns.len(),
                    b.rows,
                    b.columns.len()
                ));
            }
            a.columns
                .iter()
                .zip(&b.columns)
                .find_map(|(a, b)| col_difference(a, b, tolerance))
        }
        _ => Some("a different kind of output".into()),
    }
}

fn col_difference(a: &Col, b: &Col, tolerance: f64) -> Option<String> {
    if a.name != b.name {
        return Some(format!("column `{}`, then `{}`", a.name, b.name));
    }
    if a.len() != b.len() {
        return Some(format!(
            "column `{}`: {} rows, then {}",
            a.name,
            a.len(),
            b.len()
        ));
    }
    let name = &a.name;
    let first = |n: usize, same: &dyn Fn(usize) -> bool, show: &dyn Fn(usize) -> String| {
        (0..n)
            .find(|&i| !same(i))
            .map(|i| format!("column `{name}`, row {i}: {}", show(i)))
    };
    if a.nulls.as_deref().unwrap_or(&[]) != b.nulls.as_deref().unwrap_or(&[])
        && (a.nulls.as_ref().is_some_and(|n| n.iter().any(|v| *v != 0))
            || b.nulls.as_ref().is_some_and(|n| n.iter().any(|v| *v != 0)))
    {
        return first(a.len(), &|i| a.is_null(i) == b.is_null(i), &|i| {
            format!("null {}, then null {}", a.is_null(i), b.is_null(i))
        });
    }
    match (&a.cells, &b.cells) {
        (Cells::F64(x), Cells::F64(y)) => first(
            x.len(),
            &|i| {
                a.is_null(i)
                    || x[i].to_bits() == y[i].to_bits()
                    || (tolerance > 0.0
                        && (x[i] - y[i]).abs() <= tolerance * 1f64.max(x[i].abs()).max(y[i].abs()))
            },
            &|i| format!("{:?}, then {:?}", x[i], y[i]),
        ),
        (Cells::S64(x), Cells::S64(y)) => first(x.len(), &|i| a.is_null(i) || x[i] == y[i], &|i| {
            format!("{}, then {}", x[i], y[i])
        }),
        (Cells::Bool(x), Cells::Bool(y)) => {
            first(x.len(), &|i| a.is_null(i) || x[i] == y[i], &|i| {
                format!("{}, then {}", x[i], y[i])
            })
        }
        (Cells::Text(x), Cells::Text(y)) => {
            first(x.len(), &|i| a.is_null(i) || x[i] == y[i], &|i| {
                format!("{:?}, then {:?}", x[i], y[i])
            })
        }
        _ => Some(format!(
            "column `{name}`: {} values, then {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

/// Every op's output on every sample in `on` (errors as text).
fn outputs_of<I: Instance>(
    runner: &mut Runner,
    instance: &mut I,
    ops: &[Op],
    on: &[&Sample],
) -> Vec<(String, Result<Output, String>)> {
    let mut out = Vec::new();
    for sample in on {
        for &op in ops {
            let result = runner
                .apply(instance, op, &sample.x)
                .map_err(|e| e.to_string());
            out.push((format!("{} on {}", op.name(), sample.describe()), result));
        }
    }
    out
}

/// The first way `b` differs from `a`.
fn compare(
    a: &[(String, Result<Output, String>)],
    b: &[(String, Result<Output, String>)],
    tolerance: f64,
) -> Option<String> {
    a.iter()
        .zip(b)
        .find_map(|((what, x), (_, y))| match (x, y) {
            (Ok(x), Ok(y)) => difference(x, y, tolerance).map(|d| format!("{what}: {d}")),
            (Err(x), Err(y)) if x == y => None,
            (x, y) => Some(format!(
                "{what}: {}, then {}",
                x.as_ref()
                    .map_or_else(|e| e.clone(), |_| "an output".into()),
                y.as_ref()
                    .map_or_else(|e| e.clone(), |_| "an output".into())
            )),
        })
}

/// The samples outputs are compared on: the base, plus `long` when the
/// base is generated.
fn compared<'a>(ctx: &'a Context, base: &'a Sample) -> Vec<&'a Sample> {
    let mut on = vec![base];
    if let Some(long) = ctx.samples.iter().find(|s| s.name == "long")
        && base.name != "data"
    {
        on.push(long);
    }
    on
}

// ---------------------------------------------------------------------------
// determinism, state, partial fit

fn check_determinism<S: Subject>(
    runner: &mut Runner,
    subject: &mut S,
    ctx: &Context,
    ops: &[Op],
    base: &Sample,
) -> Verdict {
    let on = compared(ctx, base);
    let once = |runner: &mut Runner, subject: &mut S| {
        let mut i = runner.configured(subject, ctx.params)?;
        runner.fit(&mut i, base)?;
        let first = outputs_of(runner, &mut i, ops, &on);
        let second = outputs_of(runner, &mut i, ops, &on);
        Ok::<_, Failure>((first, second))
    };
    let (first, again) = match once(runner, subject) {
        Ok(r) => r,
        Err(e) => return Verdict::Fail(format!("fit on {} failed: {e}", base.describe())),
    };
    if let Some(d) = compare(&first, &again, 0.0) {
        return Verdict::Fail(format!(
            "the same call twice on one fitted instance differs: {d}\noutputs must depend only \
             on parameters, fitted state and input (no counters or caches that change results)"
        ));
    }
    subject.set_seed(0x5eed);
    let fresh = once(runner, subject);
    subject.set_seed(0);
    let fresh = match fresh {
        Ok((r, _)) => r,
        Err(e) => {
            return Verdict::Fail(format!(
                "fit on {} failed on a fresh instance: {e}",
                base.describe()
            ));
        }
    };
    if let Some(d) = compare(&first, &fresh, 0.0) {
        return Verdict::Fail(format!(
            "a fresh instance fitted on the same data differs: {d}\nseed random generators from \
             a parameter (not from wasi:random or a HashMap's RandomState), and depend on \
             nothing outside the input"
        ));
    }
    Verdict::Pass(format!(
        "{} outputs bit-identical across calls and instances",
        first.len()
    ))
}

fn check_state<S: Subject>(
    runner: &mut Runner,
    subject: &mut S,
    ctx: &Context,
    ops: &[Op],
    base: &Sample,
) -> Verdict {
    let on = compared(ctx, base);
    let mut original = match runner.configured(subject, ctx.params) {
        Ok(i) => i,
        Err(e) => return Verdict::Fail(format!("configure failed: {e}")),
    };
    if let Err(e) = runner.fit(&mut original, base) {
        return Verdict::Fail(format!("fit on {} failed: {e}", base.describe()));
    }
    let expected = outputs_of(runner, &mut original, ops, &on);
    let state = match runner.call("save-state", &mut original, Instance::save_state) {
        Ok(s) => s,
        Err(e) => {
            return Verdict::Fail(format!(
                "save-state after fit failed: {e}; bundles and rollbacks need it"
            ));
        }
    };
    let mut restored = match subject.instance() {
        Ok(i) => i,
        Err(e) => return Verdict::Fail(format!("cannot make an instance: {e}")),
    };
    if let Err(e) = runner.call("load-state", &mut restored, |i| i.load_state(&state)) {
        return Verdict::Fail(format!(
            "load-state of the {} bytes save-state returned, into a fresh instance, failed: {e}",
            state.len()
        ));
    }
    let got = outputs_of(runner, &mut restored, ops, &on);
    if let Some(d) = compare(&expected, &got, 0.0) {
        return Verdict::Fail(format!(
            "after save-state → load-state into a fresh instance, {d}\nsave everything the \
             outputs depend on (parameters included) and restore all of it"
        ));
    }
    let mut problems = Vec::new();
    let garbage = b"\x87not a kernel state\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec();
    let truncated = state[..state.len() / 2].to_vec();
    for (bytes, what, must_refuse) in [
        (garbage, "19 bytes of garbage", true),
        (truncated, "the first half of a saved state", false),
    ] {
        let Ok(mut fresh) = subject.instance() else {
            break;
        };
        match runner.call("load-state", &mut fresh, |i| i.load_state(&bytes)) {
            Err(Failure::Refused(..)) => {}
            Ok(()) if !must_refuse => {}
            Ok(()) => problems.push(format!(
                "load-state accepted {what}; check what you decode and refuse it with invalid-state"
            )),
            Err(e) => problems.push(format!(
                "load-state of {what}: {e}; refuse state you cannot decode with invalid-state, \
                 never trap"
            )),
        }
    }
    if problems.is_empty() {
        Verdict::Pass(format!(
            "{} bytes of state restore identical outputs; corrupt state refused",
            state.len()
        ))
    } else {
        Verdict::Fail(listed(&problems, 2))
    }
}

fn check_partial_fit<S: Subject>(
    runner: &mut Runner,
    subject: &mut S,
    ctx: &Context,
    ops: &[Op],
    base: &Sample,
) -> Verdict {
    if !ctx.info.partial_fit {
        return Verdict::Skip("partial-fit is not declared".into());
    }
    // Chunks of one row make one call per row: keep the sample small.
    let rows = (base.x.rows as usize).min(200);
    let sample = Sample {
        name: base.name.clone(),
        x: base.x.slice(0, rows),
        y: base.y.as_ref().map(|y| y.slice(0, rows)),
        clean: base.clean,
    };
    let on = [&sample];
    let chunked = |runner: &mut Runner, subject: &mut S, chunk: usize| {
        let mut i = runner.configured(subject, ctx.params)?;
        let mut start = 0;
        while start < rows || start == 0 {
            let end = (start + chunk).min(rows);
            let x = sample.x.slice(start, end);
            let y = sample.y.as_ref().map(|y| y.slice(start, end));
            runner.partial_fit(&mut i, &x, y.as_ref())?;
            start = end;
            if rows == 0 {
                break;
            }
        }
        Ok::<_, Failure>(outputs_of(runner, &mut i, ops, &on))
    };
    let whole = match chunked(runner, subject, rows.max(1)) {
        Ok(o) => o,
        Err(e) => {
            return Verdict::Fail(format!(
                "one partial-fit of all of {} failed: {e}",
                sample.describe()
            ));
        }
    };
    for chunk in [1, 7] {
        match chunked(runner, subject, chunk) {
            Err(e) => {
                return Verdict::Fail(format!(
                    "partial-fit of {} in chunks of {chunk} row(s) failed: {e}; a chunk may hold \
                     a single class or row: keep what earlier chunks taught",
                    sample.describe()
                ));
            }
            Ok(got) => {
                if let Some(d) = compare(&whole, &got, TOLERANCE) {
                    return Verdict::Fail(format!(
                        "partial-fit in chunks of {chunk} row(s) differs from one partial-fit of \
                         all rows: {d}\neach partial-fit must add to what was learned, not \
                         replace it (tolerance {TOLERANCE:e}, relative)"
                    ));
                }
            }
        }
    }
    Verdict::Pass(format!(
        "chunks of 1, 7 and {rows} rows agree within {TOLERANCE:e}"
    ))
}

// ---------------------------------------------------------------------------
// probabilities

fn check_probabilities<I: Instance>(
    runner: &mut Runner,
    ctx: &Context,
    fitted: &mut I,
    base: &Sample,
) -> Verdict {
    if ctx.info.kind != Kind::Classifier {
        return Verdict::Skip(format!("not a classifier ({})", kind_name(ctx.info.kind)));
    }
    let classes: Vec<String> = match &base.y {
        Some(y) => {
            let mut c: Vec<String> = (0..y.len()).filter_map(|i| y.label(i)).collect();
            c.sort();
            c.dedup();
            c
        }
        None => Vec::new(),
    };
    let known = |label: &str| {
        classes.is_empty()
            || classes.iter().any(|c| {
                c == label
                    || matches!((c.parse::<f64>(), label.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
            })
    };
    let mut problems = Vec::new();
    let on: Vec<&Sample> = ctx
        .samples
        .iter()
        .filter(|s| {
            s.clean && s.x.rows > 0 && ["numeric", "one-row", "long"].contains(&s.name.as_str())
        })
        .chain(std::iter::once(base))
        .collect();
    for sample in on {
        let about = sample.describe();
        let labels = match runner.apply(fitted, Op::Predict, &sample.x) {
            Ok(Output::Col(c)) => c,
            Ok(_) => continue,
            Err(Failure::Refused(Refusal::InvalidInput, _)) => continue,
            Err(e) => {
                problems.push(format!("predict on {about}: {e}"));
                continue;
            }
        };
        if let Some(bad) = (0..labels.len())
            .filter_map(|i| labels.label(i))
            .find(|l| !known(l))
        {
            problems.push(format!(
                "predict on {about} returned class {bad:?}, which is not in the training target \
                 ({})",
                classes.join(", ")
            ));
        }
        if !ctx.info.predict_proba {
            continue;
        }
        let proba = match runner.apply(fitted, Op::PredictProba, &sample.x) {
            Ok(Output::Table(t)) => t,
            Ok(_) => continue,
            Err(e) => {
                problems.push(format!("predict-proba on {about}: {e}"));
                continue;
            }
        };
        if let Err(m) = proba_problem(&proba, &labels, &known) {
            problems.push(format!("predict-proba on {about}: {m}"));
        }
    }
    if problems.is_empty() {
        Verdict::Pass(if ctx.info.predict_proba {
            format!(
                "probabilities valid, predict = arg-max, {} class(es) consistent",
                classes.len()
            )
        } else {
            "predicted classes are training classes (no predict-proba declared)".into()
        })
    } else {
        Verdict::Fail(listed(&problems, 3))
    }
}

fn proba_problem(proba: &Table, labels: &Col, known: &dyn Fn(&str) -> bool) -> Result<(), String> {
    if proba.columns.is_empty() {
        return Err("no class columns".into());
    }
    let mut columns = Vec::new();
    for c in &proba.columns {
        match &c.cells {
            Cells::F64(v) if c.nulls.as_ref().is_none_or(|n| n.iter().all(|b| *b == 0)) => {
                columns.push(v)
            }
            _ => {
                return Err(format!(
                    "column `{}` is not a complete f64 column; probabilities are one f64 column \
                     per class",
                    c.name
                ));
            }
        }
        if !known(&c.name) {
            return Err(format!(
                "column `{}` is not a class of the training target; name each column by its class",
                c.name
            ));
        }
    }
    for row in 0..proba.rows as usize {
        let p: Vec<f64> = columns.iter().map(|c| c[row]).collect();
        if let Some(v) = p.iter().find(|v| !(-1e-12..=1.0 + 1e-12).contains(*v)) {
            return Err(format!(
                "row {row}: probability {v} is outside [0, 1] (row: {p:?})"
            ));
        }
        let sum: f64 = p.iter().sum();
        if (sum - 1.0).abs() > PROBABILITY_SUM {
            return Err(format!(
                "row {row}: probabilities sum to {sum}, not 1 (row: {p:?}); normalize them"
            ));
        }
        let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let Some(label) = labels.label(row) else {
            return Err(format!("row {row}: predict returned a missing value"));
        };
        let at_max = proba
            .columns
            .iter()
            .zip(&p)
            .filter(|(_, v)| **v >= max - 1e-12)
            .any(|(c, _)| {
                c.name == label
                    || matches!((c.name.parse::<f64>(), label.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
            });
        if !at_max {
            return Err(format!(
                "row {row}: predict says {label:?} but the most probable class is `{}` \
                 (row: {p:?}); predict must be the arg-max of predict-proba",
                proba
                    .columns
                    .iter()
                    .zip(&p)
                    .find(|(_, v)| **v >= max)
                    .map_or("?", |(c, _)| c.name.as_str())
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// resources

fn check_resources<I: Instance>(
    runner: &mut Runner,
    fitted: &mut I,
    ops: &[Op],
    samples: &[Sample],
    repeat: usize,
) -> Verdict {
    let Some(sample) = samples.iter().find(|s| s.name == "long") else {
        return Verdict::Skip("no sample".into());
    };
    if fitted.meter().memory.is_none() {
        return Verdict::Skip(
            "memory is not measured here; `kernel-host test` measures it on the component".into(),
        );
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut flat = Vec::new();
    for &op in ops {
        let warm = 20.min(repeat);
        for _ in 0..warm {
            if let Err(e) = runner.apply(fitted, op, &sample.x) {
                return Verdict::Skip(format!(
                    "{} on {} failed: {e}",
                    op.name(),
                    sample.describe()
                ));
            }
        }
        let before = fitted.meter().memory.unwrap_or(0);
        for n in 0..repeat {
            if let Err(e) = runner.apply(fitted, op, &sample.x) {
                return Verdict::Fail(format!(
                    "{} on {} failed on repeat {}: {e}",
                    op.name(),
                    sample.describe(),
                    n + warm + 1
                ));
            }
        }
        let after = fitted.meter().memory.unwrap_or(0);
        if after > before + LEAK_BYTES {
            return Verdict::Fail(format!(
                "memory grew from {:.2} to {:.2} MiB over {repeat} {} calls on {} after warm-up: \
                 a leak; free what each call allocates (a growing static, thread_local or cache?)",
                mib(before),
                mib(after),
                op.name(),
                sample.describe()
            ));
        }
        flat.push(op.name());
    }
    Verdict::Pass(format!(
        "{:.2} MiB after {repeat} calls each of {}",
        mib(fitted.meter().memory.unwrap_or(0)),
        flat.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_and_sorted() {
        let a = samples(Kind::Classifier);
        let b = samples(Kind::Classifier);
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            // Debug text: NaN cells compare equal.
            assert_eq!(format!("{:?}", a.x), format!("{:?}", b.x));
        }
        assert_eq!(a[0].name, "empty");
        assert!(a.windows(2).all(|w| w[0].size() <= w[1].size()));
        let y = a
            .iter()
            .find(|s| s.name == "numeric")
            .and_then(|s| s.y.clone());
        let classes: std::collections::BTreeSet<_> = y
            .iter()
            .flat_map(|y| (0..y.len()).filter_map(|i| y.label(i)))
            .collect();
        assert_eq!(classes.len(), 3, "{classes:?}");
    }

    #[test]
    fn describe_problems_are_named() {
        let info = Info {
            name: "Bad Name".into(),
            version: "one".into(),
            kind: Kind::Transformer,
            params: vec![Spec {
                name: "alpha".into(),
                range: Range::F64(Some(0.0), Some(1.0)),
                default: Value::F64(2.0),
            }],
            partial_fit: false,
            predict_proba: false,
            stateless_transform: false,
        };
        let Verdict::Fail(why) = check_describe(&info) else {
            unreachable!("must fail")
        };
        assert!(why.contains("kebab-case"), "{why}");
        assert!(why.contains("semver"), "{why}");
        assert!(why.contains("`alpha` default 2 lies outside"), "{why}");
    }

    #[test]
    fn differences_name_the_cell() {
        let a = Output::Col(Col::f64("p", vec![1.0, 2.0]));
        let b = Output::Col(Col::f64("p", vec![1.0, 2.0 + 1e-12]));
        assert!(difference(&a, &a, 0.0).is_none());
        assert_eq!(
            difference(&a, &b, 0.0).as_deref(),
            Some("column `p`, row 1: 2.0, then 2.000000000001")
        );
        assert!(difference(&a, &b, TOLERANCE).is_none());
    }
}
