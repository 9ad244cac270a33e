//! A data profile: what a table holds, column by column, read a chunk at a
//! time so a file of any size profiles in bounded memory. Rows, types,
//! missing rates, distinct counts (exact up to [`DISTINCT_CAP`]), numeric
//! ranges, means, spreads and skew, the most frequent values, constant and
//! ID-like columns, the target's classes or distribution, the task the
//! target implies, and the memory the table takes once read whole.
//!
//! Nothing here runs a kernel: `kernel-host profile` prints a profile, and
//! `kernel-host recommend` builds its pipelines from one.

use crate::{Chunks, CsvOptions};
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{ColumnType, DataError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Distinct values counted exactly per column; past it, "at least".
pub const DISTINCT_CAP: usize = 100_000;

/// An integer target with at most this many distinct values is taken for
/// class labels; with more, for a quantity to regress.
pub const MAX_INTEGER_CLASSES: u64 = 20;

/// Rows read per chunk while profiling.
const CHUNK_ROWS: usize = 65_536;

/// Most frequent values kept per column.
const TOP: usize = 5;

/// What the target asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Binary,
    Multiclass,
    Regression,
    /// No target: group the rows.
    Clustering,
}

impl Task {
    pub fn is_classification(self) -> bool {
        matches!(self, Task::Binary | Task::Multiclass)
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Binary => "binary classification",
            Task::Multiclass => "multiclass classification",
            Task::Regression => "regression",
            Task::Clustering => "clustering",
        })
    }
}

/// Moments and range of a numeric column's present values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Numeric {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Fisher-Pearson skewness (0 for a symmetric distribution; 0 when
    /// the column is constant).
    pub skew: f64,
    /// Every present value is a whole number.
    pub integral: bool,
}

/// One column's profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Missing cells (null, or NaN for floats).
    pub missing: u64,
    pub missing_rate: f64,
    /// Distinct present values; a lower bound when `distinct_capped`.
    pub distinct: u64,
    pub distinct_capped: bool,
    pub numeric: Option<Numeric>,
    /// The most frequent present values and their counts (strings and
    /// bools, and numbers with few distinct values), most frequent first.
    pub top: Vec<(String, u64)>,
    /// At most one distinct present value.
    pub constant: bool,
    /// A string or integer column whose present values are all distinct:
    /// a row identifier, not a feature.
    pub id_like: bool,
    /// Mean UTF-8 length of a string column's present values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_text_bytes: Option<f64>,
}

/// The target's side of the profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetProfile {
    pub name: String,
    /// Class labels and their counts, most frequent first (classification).
    pub classes: Vec<(String, u64)>,
    /// The largest class's count over the smallest's (classification).
    pub imbalance: Option<f64>,
    /// The distribution of a numeric target (regression).
    pub numeric: Option<Numeric>,
    /// Rows whose target is missing: they cannot train a model.
    pub missing: u64,
}

/// A table's profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub file: PathBuf,
    pub rows: u64,
    pub file_bytes: u64,
    /// What the table takes in memory read whole, as frames hold it.
    pub memory_bytes: u64,
    pub columns: Vec<ColumnProfile>,
    pub target: Option<TargetProfile>,
    pub task: Task,
}

impl Profile {
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The feature columns: every column but the target.
    pub fn features(&self) -> impl Iterator<Item = &ColumnProfile> {
        let target = self.target.as_ref().map(|t| t.name.as_str());
        self.columns
            .iter()
            .filter(move |c| Some(c.name.as_str()) != target)
    }

    /// A short description of every problem a pipeline must handle, and of
    /// columns a pipeline should leave out, one line each.
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let missing: Vec<_> = self.features().filter(|c| c.missing > 0).collect();
        if !missing.is_empty() {
            out.push(format!(
                "{} column{} with missing values: {}",
                missing.len(),
                plural(missing.len()),
                missing
                    .iter()
                    .map(|c| format!("{} {}", c.name, percent(c.missing_rate)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for c in self.features() {
            if c.constant {
                out.push(format!("{}: constant, carries no information", c.name));
            } else if c.id_like {
                out.push(format!(
                    "{}: every value distinct ({}), an identifier rather than a feature",
                    c.name, c.distinct
                ));
            } else if let Some(n) = &c.numeric
                && n.skew.abs() > 2.0
            {
                out.push(format!("{}: skewed (skew {:.1})", c.name, n.skew));
            }
        }
        if let Some(t) = &self.target {
            if t.missing > 0 {
                out.push(format!(
                    "target {}: {} rows without a value cannot train",
                    t.name, t.missing
                ));
            }
            if let Some(ratio) = t.imbalance
                && ratio >= 3.0
            {
                out.push(format!(
                    "target {}: imbalanced classes (largest/smallest {ratio:.1})",
                    t.name
                ));
            }
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `0.0063` as `0.6 %`.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p > 0.0 && p < 0.1 {
        "<0.1 %".into()
    } else {
        format!("{p:.1} %")
    }
}

/// Streaming moments (Welford/Terriberry) and range.
#[derive(Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    m3: f64,
    min: f64,
    max: f64,
    integral: bool,
}

impl Moments {
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
            self.integral = true;
        }
        let n1 = self.n as f64;
        self.n += 1;
        let n = self.n as f64;
        let delta = x - self.mean;
        let delta_n = delta / n;
        let term = delta * delta_n * n1;
        self.mean += delta_n;
        self.m3 += term * delta_n * (n - 2.0) - 3.0 * delta_n * self.m2;
        self.m2 += term;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.integral &= x.fract() == 0.0;
    }

    fn numeric(&self) -> Option<Numeric> {
        (self.n > 0).then(|| {
            let n = self.n as f64;
            let var = self.m2 / n;
            Numeric {
                min: self.min,
                max: self.max,
                mean: self.mean,
                std: var.sqrt(),
                skew: if var > 0.0 {
                    (self.m3 / n) / var.powf(1.5)
                } else {
                    0.0
                },
                integral: self.integral,
            }
        })
    }
}

/// One column's running tallies.
struct Tally {
    name: String,
    ty: ColumnType,
    missing: u64,
    moments: Moments,
    /// Present values' counts by their text (numbers by their bits, as
    /// text only when shown), up to the cap.
    counts: HashMap<Key, u64>,
    capped: bool,
    text_bytes: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Bits(u64),
    Text(String),
}

impl Tally {
    fn new(column: &Column) -> Tally {
        Tally {
            name: column.name.clone(),
            ty: kernel_host_types::type_of(column),
            missing: 0,
            moments: Moments::default(),
            counts: HashMap::new(),
            capped: false,
            text_bytes: 0,
        }
    }

    fn count(&mut self, key: Key) {
        if let Some(c) = self.counts.get_mut(&key) {
            *c += 1;
        } else if self.counts.len() < DISTINCT_CAP {
            self.counts.insert(key, 1);
        } else {
            self.capped = true;
        }
    }

    fn add(&mut self, column: &Column) {
        let null = |i: usize| column.nulls.as_ref().is_some_and(|n| n[i] != 0);
        match &column.values {
            ColumnValues::F64(v) => {
                for (i, x) in v.iter().enumerate() {
                    if null(i) || x.is_nan() {
                        self.missing += 1;
                    } else {
                        self.moments.push(*x);
                        // -0.0 and 0.0 are one value.
                        self.count(Key::Bits((x + 0.0).to_bits()));
                    }
                }
            }
            ColumnValues::S64(v) => {
                for (i, x) in v.iter().enumerate() {
                    if null(i) {
                        self.missing += 1;
                    } else {
                        self.moments.push(*x as f64);
                        self.count(Key::Bits(*x as u64));
                    }
                }
            }
            ColumnValues::Bool(v) => {
                for (i, x) in v.iter().enumerate() {
                    if null(i) {
                        self.missing += 1;
                    } else {
                        self.count(Key::Text(x.to_string()));
                    }
                }
            }
            ColumnValues::String(v) => {
                for (i, x) in v.iter().enumerate() {
                    if null(i) {
                        self.missing += 1;
                    } else {
                        self.text_bytes += x.len() as u64;
                        self.count(Key::Text(x.to_string()));
                    }
                }
            }
        }
    }

    fn show(&self, key: &Key) -> String {
        match key {
            Key::Text(t) => t.clone(),
            Key::Bits(b) => match self.ty {
                ColumnType::S64 => (*b as i64).to_string(),
                _ => f64::from_bits(*b).to_string(),
            },
        }
    }

    /// Present values by count, most frequent first (ties by text).
    fn ranked(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .counts
            .iter()
            .map(|(k, c)| (self.show(k), *c))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all
    }

    fn finish(self, rows: u64) -> ColumnProfile {
        let present = rows - self.missing;
        let distinct = self.counts.len() as u64;
        let few = distinct <= 20;
        let top = match self.ty {
            ColumnType::String | ColumnType::Bool => self.ranked(),
            _ if few => self.ranked(),
            _ => Vec::new(),
        };
        ColumnProfile {
            missing_rate: if rows == 0 {
                0.0
            } else {
                self.missing as f64 / rows as f64
            },
            distinct,
            distinct_capped: self.capped,
            numeric: self.moments.numeric(),
            top: top.into_iter().take(TOP).collect(),
            constant: distinct <= 1 && !self.capped,
            id_like: matches!(self.ty, ColumnType::String | ColumnType::S64)
                && !self.capped
                && present > 20
                && distinct == present,
            mean_text_bytes: (self.ty == ColumnType::String && present > 0)
                .then(|| self.text_bytes as f64 / present as f64),
            name: self.name,
            ty: self.ty,
            missing: self.missing,
        }
    }
}

/// Profiles the table at `path` (CSV, Arrow or Parquet, by extension),
/// reading it a chunk at a time. With `target`, the profile describes that
/// column as the target and infers the task from it; without, the task is
/// clustering.
pub fn profile(path: &Path, target: Option<&str>, csv: &CsvOptions) -> Result<Profile, DataError> {
    let mut chunks = Chunks::open(path, csv)?;
    let mut tallies: Vec<Tally> = Vec::new();
    let mut rows = 0u64;
    while let Some(chunk) = chunks.next_chunk(CHUNK_ROWS)? {
        if tallies.is_empty() {
            tallies = chunk.columns.iter().map(Tally::new).collect();
        }
        add_chunk(&mut tallies, &chunk);
        rows += u64::from(chunk.rows);
    }
    if tallies.is_empty() {
        return Err(DataError::new(path, "the table has no rows to profile"));
    }
    let mut target_classes = None;
    if let Some(name) = target {
        let Some(t) = tallies.iter().find(|t| t.name == name) else {
            return Err(DataError {
                file: path.to_path_buf(),
                row: None,
                column: Some(name.to_string()),
                message: format!(
                    "no such column (columns: {})",
                    tallies
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        target_classes = Some(t.ranked());
    }
    let columns: Vec<ColumnProfile> = tallies.into_iter().map(|t| t.finish(rows)).collect();
    let memory_bytes = columns.iter().map(|c| memory_of(c, rows)).sum();
    let (target, task) = match (target, target_classes) {
        (Some(name), Some(classes)) => {
            let column = columns.iter().find(|c| c.name == name);
            let Some(column) = column else {
                unreachable!("the target was found above")
            };
            let task = task_of(column);
            let classification = task.is_classification();
            let imbalance = match (classes.first(), classes.last()) {
                (Some(big), Some(small)) if classification && small.1 > 0 => {
                    Some(big.1 as f64 / small.1 as f64)
                }
                _ => None,
            };
            (
                Some(TargetProfile {
                    name: name.to_string(),
                    classes: if classification { classes } else { Vec::new() },
                    imbalance,
                    numeric: if classification {
                        None
                    } else {
                        column.numeric.clone()
                    },
                    missing: column.missing,
                }),
                task,
            )
        }
        _ => (None, Task::Clustering),
    };
    Ok(Profile {
        file: path.to_path_buf(),
        rows,
        file_bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
        memory_bytes,
        columns,
        target,
        task,
    })
}

fn add_chunk(tallies: &mut [Tally], chunk: &Frame) {
    for (tally, column) in tallies.iter_mut().zip(&chunk.columns) {
        tally.add(column);
    }
}

/// The task a target column implies: labels (strings, bools, or integers
/// with at most [`MAX_INTEGER_CLASSES`] values) are classes; other numbers
/// are regressed.
pub fn task_of(target: &ColumnProfile) -> Task {
    let classes = |n: u64| {
        if n <= 2 {
            Task::Binary
        } else {
            Task::Multiclass
        }
    };
    match target.ty {
        ColumnType::String | ColumnType::Bool => classes(target.distinct),
        ColumnType::S64 if target.distinct <= MAX_INTEGER_CLASSES => classes(target.distinct),
        ColumnType::S64 | ColumnType::F64 => Task::Regression,
    }
}

/// What a column takes in a frame: 8 bytes a number, 1 a bool, a string's
/// bytes plus its 24-byte header, and a null byte a row when it has holes.
fn memory_of(c: &ColumnProfile, rows: u64) -> u64 {
    let cell = match c.ty {
        ColumnType::F64 | ColumnType::S64 => 8.0,
        ColumnType::Bool => 1.0,
        ColumnType::String => 24.0 + c.mean_text_bytes.unwrap_or(0.0),
    };
    let nulls = if c.missing > 0 { rows } else { 0 };
    (cell * rows as f64) as u64 + nulls
}

/// `n` bytes in B, KiB, MiB or GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The profile as a text report: a header, the target, one line a column,
/// then the findings.
pub fn render(p: &Profile) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows x {} columns, {} on disk, ~{} in memory",
        p.file.display(),
        p.rows,
        p.columns.len(),
        human_bytes(p.file_bytes),
        human_bytes(p.memory_bytes)
    );
    match &p.target {
        Some(t) if p.task.is_classification() => {
            let total: u64 = t.classes.iter().map(|c| c.1).sum::<u64>().max(1);
            let _ = writeln!(
                out,
                "task: {} of `{}` ({} classes: {})",
                p.task,
                t.name,
                t.classes.len(),
                t.classes
                    .iter()
                    .take(10)
                    .map(|(k, n)| format!("{k} {n} ({})", percent(*n as f64 / total as f64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Some(t) => {
            let n = t.numeric.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "task: regression of `{}` (range {} .. {}, mean {}, sd {})",
                t.name,
                short(n.min),
                short(n.max),
                short(n.mean),
                short(n.std)
            );
        }
        None => {
            let _ = writeln!(out, "task: clustering (no target given)");
        }
    }
    let width = p
        .columns
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "\n{:width$}  {:6}  {:>14}  {:>9}  summary",
        "column", "type", "missing", "distinct"
    );
    for c in &p.columns {
        let missing = if c.missing == 0 {
            "0".to_string()
        } else {
            format!("{} ({})", c.missing, percent(c.missing_rate))
        };
        let distinct = format!(
            "{}{}",
            if c.distinct_capped { ">=" } else { "" },
            c.distinct
        );
        let summary = match (&c.numeric, c.ty) {
            (Some(n), ColumnType::F64 | ColumnType::S64) => format!(
                "{} .. {}, mean {}, sd {}, skew {:.2}",
                short(n.min),
                short(n.max),
                short(n.mean),
                short(n.std),
                n.skew
            ),
            _ => c
                .top
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "{:width$}  {:6}  {:>14}  {:>9}  {}",
            c.name,
            c.ty.to_string(),
            missing,
            distinct,
            summary
        );
    }
    let findings = p.findings();
    if !findings.is_empty() {
        let _ = writeln!(out, "\nfindings:");
        for f in findings {
            let _ = writeln!(out, "  - {f}");
        }
    }
    out
}

/// A number in at most 4 significant digits, without trailing zeros.
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_match_the_two_pass_definitions() {
        let xs = [1.0, 2.0, 2.0, 3.0, 10.0, -4.5, 7.25];
        let mut m = Moments::default();
        xs.iter().for_each(|x| m.push(*x));
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let m3 = xs.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
        let got = m.numeric().unwrap();
        assert!((got.mean - mean).abs() < 1e-12);
        assert!((got.std - var.sqrt()).abs() < 1e-12);
        assert!((got.skew - m3 / var.powf(1.5)).abs() < 1e-12);
        assert_eq!((got.min, got.max, got.integral), (-4.5, 10.0, false));
    }

    #[test]
    fn tasks_follow_the_target_type_and_cardinality() {
        let column = |ty, distinct| ColumnProfile {
            name: "y".into(),
            ty,
            missing: 0,
            missing_rate: 0.0,
            distinct,
            distinct_capped: false,
            numeric: None,
            top: Vec::new(),
            constant: false,
            id_like: false,
            mean_text_bytes: None,
        };
        assert_eq!(task_of(&column(ColumnType::String, 2)), Task::Binary);
        assert_eq!(task_of(&column(ColumnType::Bool, 2)), Task::Binary);
        assert_eq!(task_of(&column(ColumnType::String, 3)), Task::Multiclass);
        assert_eq!(task_of(&column(ColumnType::S64, 5)), Task::Multiclass);
        assert_eq!(task_of(&column(ColumnType::S64, 500)), Task::Regression);
        assert_eq!(task_of(&column(ColumnType::F64, 2)), Task::Regression);
    }

    #[test]
    fn numbers_are_shown_short() {
        assert_eq!(short(43.921929), "43.92");
        assert_eq!(short(5000.0), "5000");
        assert_eq!(short(0.012345), "0.01235");
        assert_eq!(short(-2.5), "-2.5");
        assert_eq!(short(1.5e9), "1.500e9");
        assert_eq!(human_bytes(16_600), "16.2 KiB");
    }
}
