//! Model selection: k-fold cross-validation (`kernel-host run --cv K`),
//! `kernel-host compare` and `kernel-host tune`.
//!
//! Every candidate is scored on the same rows and the same folds; each fold
//! fits a fresh pipeline (fresh sandboxes) on the other folds and predicts
//! the held-out one. Folds are seeded, and stratified by the target for
//! classifiers.

pub mod compare;
pub mod importance;
pub mod metrics;
pub mod remote;
pub mod tpe;
pub mod tune;

use crate::bindings::{Column, Frame, KernelKind};
use crate::{Error, Pipeline, Plan, Sandbox};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `k` folds of `rows` rows: each fold's held-out row indices, sorted.
/// With `strata` (one label per row), every stratum is spread over the folds
/// as evenly as it can be (scikit-learn's `StratifiedKFold`, shuffled).
pub fn folds(
    rows: usize,
    k: usize,
    seed: u64,
    strata: Option<&[Option<String>]>,
) -> Vec<Vec<usize>> {
    let k = k.max(2);
    let mut rng = crate::data::generate::Rng(seed);
    let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for r in 0..rows {
        let key = strata.and_then(|s| s.get(r)).and_then(|s| s.as_deref());
        groups.entry(key).or_default().push(r);
    }
    let mut out = vec![Vec::new(); k];
    let mut next = 0;
    for members in groups.values_mut() {
        for i in (1..members.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        // Deal round-robin, continuing where the last stratum stopped, so
        // fold sizes differ by at most one.
        for &r in members.iter() {
            out[next % k].push(r);
            next += 1;
        }
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    out
}

/// The rows every candidate is scored on, and the folds.
#[derive(Clone)]
pub struct Dataset {
    pub x: Frame,
    pub y: Option<Column>,
    pub folds: Vec<Vec<usize>>,
    pub seed: u64,
}

impl Dataset {
    /// The plan's training rows (features and target), in `k` folds,
    /// stratified when `stratify` and there is a target.
    pub fn of(plan: &Plan, k: usize, seed: u64, stratify: bool) -> Result<Dataset, Error> {
        if k < 2 {
            return Err(Error::Usage(format!(
                "--cv {k}: cross-validation needs at least 2 folds"
            )));
        }
        let (x, y) = crate::job::training_data(plan)?;
        if (x.rows as usize) < k {
            return Err(Error::Usage(format!(
                "--cv {k}: the training data has only {} rows",
                x.rows
            )));
        }
        let strata: Option<Vec<Option<String>>> = match (&y, stratify) {
            (Some(y), true) => Some(
                (0..x.rows as usize)
                    .map(|r| crate::data::cell_text(y, r))
                    .collect(),
            ),
            _ => None,
        };
        let folds = folds(x.rows as usize, k, seed, strata.as_deref());
        Ok(Dataset { x, y, folds, seed })
    }

    /// The rows not in fold `i`, and fold `i`.
    fn split(&self, i: usize) -> ((Frame, Option<Column>), (Frame, Option<Column>)) {
        let test = &self.folds[i];
        let train: Vec<usize> = (0..self.x.rows as usize)
            .filter(|r| test.binary_search(r).is_err())
            .collect();
        let take = |rows: &[usize]| {
            (
                self.x.take_rows(rows),
                self.y.as_ref().map(|y| take_column(y, rows)),
            )
        };
        (take(&train), take(test))
    }
}

/// The plan's rows in `k` folds, stratified when its final step is a
/// classifier (its kernels are loaded once to learn that).
pub async fn prepare(
    sandbox: &Sandbox,
    plan: &Plan,
    k: usize,
    seed: u64,
) -> Result<Dataset, Error> {
    let kind = Pipeline::load(sandbox, plan.clone()).await?.final_kind();
    Dataset::of(plan, k, seed, kind == KernelKind::Classifier)
}

/// The rows `rows` of a column.
pub fn take_column(column: &Column, rows: &[usize]) -> Column {
    let frame = Frame {
        rows: crate::data::column_len(column) as u32,
        columns: vec![column.clone()],
    };
    let mut taken = frame.take_rows(rows);
    taken.columns.remove(0)
}

/// One fold's result.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Fold {
    #[serde(deserialize_with = "known_scores")]
    pub scores: BTreeMap<&'static str, f64>,
    pub fit_time: Duration,
    pub predict_time: Duration,
    /// Fuel of every step, fit and predict.
    pub fuel: u64,
    /// The largest linear memory of any step.
    pub peak_memory: u64,
}

/// A candidate's cross-validated result. It reads back from its own JSON
/// (a result scored on another machine).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CvResult {
    #[serde(serialize_with = "kind_name", deserialize_with = "kind_of_name")]
    pub kind: KernelKind,
    pub folds: Vec<Fold>,
}

/// Scores read back: the host's own metric names (others are dropped).
fn known_scores<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<&'static str, f64>, D::Error> {
    let read: BTreeMap<String, f64> = serde::Deserialize::deserialize(d)?;
    Ok(read
        .into_iter()
        .filter_map(|(name, value)| Some((metrics::known(&name)?, value)))
        .collect())
}

fn kind_of_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KernelKind, D::Error> {
    let name: String = serde::Deserialize::deserialize(d)?;
    [
        KernelKind::Transformer,
        KernelKind::Classifier,
        KernelKind::Regressor,
        KernelKind::Clusterer,
    ]
    .into_iter()
    .find(|k| k.to_string() == name)
    .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not a kernel kind")))
}

fn kind_name<S: serde::Serializer>(kind: &KernelKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&kind.to_string())
}

/// Mean and (sample) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl CvResult {
    /// Mean and standard deviation of `metric` over the folds (`None` when
    /// a fold lacks it).
    pub fn summary(&self, metric: &str) -> Option<(f64, f64)> {
        let values: Option<Vec<f64>> = self
            .folds
            .iter()
            .map(|f| f.scores.get(metric).copied())
            .collect();
        values.map(|v| mean_std(&v))
    }

    /// Every metric the folds share, with mean and standard deviation.
    pub fn summaries(&self) -> BTreeMap<&'static str, (f64, f64)> {
        let Some(first) = self.folds.first() else {
            return BTreeMap::new();
        };
        first
            .scores
            .keys()
            .filter_map(|m| Some((*m, self.summary(m)?)))
            .collect()
    }

    pub fn fit_time(&self) -> Duration {
        self.folds.iter().map(|f| f.fit_time).sum::<Duration>() / self.folds.len().max(1) as u32
    }

    pub fn predict_time(&self) -> Duration {
        self.folds.iter().map(|f| f.predict_time).sum::<Duration>() / self.folds.len().max(1) as u32
    }

    /// Mean fuel per fold.
    pub fn fuel(&self) -> u64 {
        self.folds.iter().map(|f| f.fuel).sum::<u64>() / self.folds.len().max(1) as u64
    }

    pub fn peak_memory(&self) -> u64 {
        self.folds.iter().map(|f| f.peak_memory).max().unwrap_or(0)
    }
}

/// Fits `plan` on all but one fold and scores the held-out fold, for every
/// fold; each fold gets a fresh pipeline.
pub async fn cross_validate(
    sandbox: &Sandbox,
    plan: &Plan,
    data: &Dataset,
) -> Result<CvResult, Error> {
    let mut folds = Vec::with_capacity(data.folds.len());
    let mut kind = KernelKind::Transformer;
    for i in 0..data.folds.len() {
        let ((x_train, y_train), (x_test, y_test)) = data.split(i);
        let mut pipeline = Pipeline::load(sandbox, plan.clone()).await?;
        kind = pipeline.final_kind();
        if metrics::primary(kind).is_none() {
            return Err(Error::Usage(format!(
                "`{}` ends in a transformer: cross-validation scores a classifier, regressor or \
                 clusterer",
                plan.name
            )));
        }
        let started = Instant::now();
        pipeline.fit(x_train, y_train.as_ref()).await?;
        let fit_time = started.elapsed();
        let started = Instant::now();
        let features = x_test.clone();
        let output = pipeline
            .predict(x_test, kind == KernelKind::Classifier)
            .await?;
        let predict_time = started.elapsed();
        let (values, probabilities) = match output {
            crate::Output::Predictions {
                values,
                probabilities,
            } => (values, probabilities),
            crate::Output::Transformed(_) => {
                return Err(Error::Internal("a model step produced a frame".into()));
            }
        };
        let scores = metrics::score(
            kind,
            &values,
            y_test.as_ref(),
            probabilities.as_ref(),
            &features,
        );
        let (mut fuel, mut peak_memory) = (0, 0);
        for step in pipeline.steps() {
            let stats = step.stats();
            fuel += stats.fuel;
            peak_memory = peak_memory.max(stats.peak_memory);
        }
        folds.push(Fold {
            scores,
            fit_time,
            predict_time,
            fuel,
            peak_memory,
        });
    }
    Ok(CvResult { kind, folds })
}

/// `1.23 ± 0.04`.
pub fn show(mean: f64, std: f64) -> String {
    format!("{mean:.4} ± {std:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_complete_and_seeded() {
        let strata: Vec<Option<String>> = (0..103)
            .map(|i| {
                Some(["a", "b", "c"][usize::from(i % 10 == 0) + usize::from(i % 3 == 0)].into())
            })
            .collect();
        let f = folds(103, 5, 7, Some(&strata));
        assert_eq!(f, folds(103, 5, 7, Some(&strata)));
        assert_ne!(f, folds(103, 5, 8, Some(&strata)));
        let mut all: Vec<usize> = f.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        let sizes: Vec<usize> = f.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        for class in ["a", "b", "c"] {
            let per: Vec<usize> = f
                .iter()
                .map(|fold| {
                    fold.iter()
                        .filter(|&&r| strata[r].as_deref() == Some(class))
                        .count()
                })
                .collect();
            assert!(
                per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
                "{class}: {per:?}"
            );
        }
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
