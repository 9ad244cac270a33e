//! The job behind `kernel-host run`: read the data, fit the pipeline on the
//! training rows, predict the test rows, write the predictions, score them.

use crate::bindings::{Column, Frame, KernelKind};
use crate::data::{cell_text, read_table, write_table};
use crate::engine::Sandbox;
use crate::error::{DataError, Error, ManifestError};
use crate::manifest::{DataSource, Manifest};
use crate::pipeline::{Output, Pipeline};
use crate::score;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a run did: the terminal summary and `--report run.json` are both
/// made from this.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    pub manifest: PathBuf,
    pub train_rows: u32,
    pub test_rows: u32,
    /// Feature columns given to the first step.
    pub features: Vec<String>,
    /// e.g. `("accuracy", 0.98)`, computed on the test rows.
    #[serde(serialize_with = "metric")]
    pub metric: Option<(&'static str, f64)>,
    pub steps: Vec<StepReport>,
    pub output: Option<PathBuf>,
    #[serde(serialize_with = "seconds", rename = "elapsed_seconds")]
    pub elapsed: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    pub id: String,
    /// `name@version`.
    pub kernel: String,
    /// transformer, classifier, regressor or clusterer.
    pub kind: String,
    pub sha256: String,
    pub calls: u64,
    #[serde(serialize_with = "seconds", rename = "busy_seconds")]
    pub busy: Duration,
    pub fuel: u64,
    pub peak_memory: u64,
    pub faults: u64,
    pub restarts: u64,
    /// Snapshots restored after failed calls.
    pub rollbacks: u64,
    /// Fits that failed, were rolled back and skipped (`on-failure = "rollback"`).
    pub skipped_fits: u64,
    /// Most bytes of host tensors held at once.
    pub tensor_peak_bytes: u64,
    /// Snapshots taken, and the time they took.
    pub snapshots: u64,
    #[serde(serialize_with = "seconds", rename = "snapshot_seconds")]
    pub snapshot_time: Duration,
    pub cache_hits: u64,
    /// How a shadow kernel's outputs compared, if the step has one.
    pub shadow: Option<crate::pipeline::Agreement>,
    /// The shadow's quality metric minus the primary's (final step only).
    pub shadow_metric_delta: Option<f64>,
}

impl StepReport {
    /// What a step did, from its stats (workers included).
    pub fn of(step: &crate::pipeline::Step) -> StepReport {
        let stats = step.stats();
        StepReport {
            id: step.spec.id.clone(),
            kernel: step.kernel_name(),
            kind: step.kind().to_string(),
            sha256: step.component.sha256().to_string(),
            calls: stats.calls,
            busy: stats.busy,
            fuel: stats.fuel,
            peak_memory: stats.peak_memory,
            faults: stats.faults,
            restarts: stats.restarts,
            rollbacks: stats.rollbacks,
            skipped_fits: step.skipped_fits,
            tensor_peak_bytes: stats.tensor_peak,
            snapshots: stats.snapshots,
            snapshot_time: stats.snapshot_time,
            cache_hits: stats.cache_hits,
            shadow: step.agreement().cloned(),
            shadow_metric_delta: None,
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn metric<S: serde::Serializer>(m: &Option<(&'static str, f64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Metric<'a> {
        name: &'a str,
        value: f64,
    }
    m.map(|(name, value)| Metric { name, value }).serialize(s)
}

impl RunReport {
    /// Writes the report as pretty JSON, atomically.
    pub fn write_json(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        crate::fsutil::write_atomic(path, &json)
    }
}

/// Runs the manifest's job end to end.
pub async fn run(sandbox: &Sandbox, manifest: Manifest) -> Result<RunReport, Error> {
    let started = Instant::now();
    let Prepared {
        x_train,
        y_train,
        x_test,
        y_test,
    } = prepare(&manifest)?;
    let (train_rows, test_rows) = (x_train.rows, x_test.as_ref().map_or(0, |x| x.rows));
    let features = x_train
        .column_names()
        .into_iter()
        .map(String::from)
        .collect();

    let mut pipeline = Pipeline::load(sandbox, manifest.clone()).await?;
    pipeline.fit(x_train, y_train.as_ref()).await?;

    let mut metric = None;
    let mut output = None;
    if let Some(x_test) = x_test {
        let result = pipeline
            .predict(x_test, manifest.output.probabilities)
            .await?;
        let table = match result {
            Output::Predictions {
                values,
                probabilities,
            } => {
                if let Some(truth) = &y_test {
                    metric = match pipeline.final_kind() {
                        KernelKind::Classifier => {
                            score::accuracy(&values, truth).map(|a| ("accuracy", a))
                        }
                        KernelKind::Regressor => score::r2(&values, truth).map(|r| ("r2", r)),
                        _ => None,
                    };
                }
                predictions_table(values, y_test.clone(), probabilities)
            }
            Output::Transformed(frame) => frame,
        };
        if let Some(path) = &manifest.output.predictions {
            write_table(path, &table)
                .map_err(|e| Error::Host(e.context(format!("writing {}", path.display()))))?;
            output = Some(path.clone());
        }
    }

    let mut steps: Vec<StepReport> = pipeline.steps().iter().map(StepReport::of).collect();
    // A shadowed model is scored too, against the same truth.
    if let (Some(last), Some(truth), Some((_, primary))) = (steps.last_mut(), &y_test, metric) {
        let shadow = last
            .shadow
            .as_ref()
            .and_then(|a| a.last_predictions.as_ref());
        let score = match pipeline.final_kind() {
            KernelKind::Classifier => shadow.and_then(|p| score::accuracy(p, truth)),
            KernelKind::Regressor => shadow.and_then(|p| score::r2(p, truth)),
            _ => None,
        };
        last.shadow_metric_delta = score.map(|s| s - primary);
    }
    Ok(RunReport {
        pipeline: manifest.name.clone(),
        manifest: manifest.path.clone(),
        features,
        train_rows,
        test_rows,
        metric,
        steps,
        output,
        elapsed: started.elapsed(),
    })
}

/// The manifest's data, read and split into features and target.
pub struct Prepared {
    pub x_train: Frame,
    pub y_train: Option<Column>,
    pub x_test: Option<Frame>,
    pub y_test: Option<Column>,
}

/// Reads the manifest's data and selects features and target.
pub fn prepare(manifest: &Manifest) -> Result<Prepared, Error> {
    let (train, test) = load_data(manifest)?;
    let (x_train, y_train) = features_and_target(manifest, train, true)?;
    let (x_test, y_test) = match test {
        Some(test) => {
            let (x, y) = features_and_target(manifest, test, false)?;
            (Some(x), y)
        }
        None => (None, None),
    };
    Ok(Prepared {
        x_train,
        y_train,
        x_test,
        y_test,
    })
}

/// The output table: the truth (when known), the prediction, then one
/// probability column per class.
pub fn predictions_table(
    values: Column,
    truth: Option<Column>,
    probabilities: Option<Frame>,
) -> Frame {
    let rows = crate::data::column_len(&values) as u32;
    let mut columns = Vec::new();
    if let Some(mut truth) = truth {
        truth.name = format!("{}_true", truth.name);
        columns.push(truth);
    }
    columns.push(Column {
        name: "prediction".into(),
        ..values
    });
    if let Some(p) = probabilities {
        columns.extend(p.columns.into_iter().map(|c| Column {
            name: format!("proba_{}", c.name),
            ..c
        }));
    }
    Frame { rows, columns }
}

fn load_data(manifest: &Manifest) -> Result<(Frame, Option<Frame>), Error> {
    let csv = &manifest.data.csv;
    match &manifest.data.source {
        DataSource::Files { train, test } => {
            let train = read_table(train, csv)?;
            let test = test.as_ref().map(|t| read_table(t, csv)).transpose()?;
            Ok((train, test))
        }
        DataSource::Split {
            input,
            test_fraction,
            seed,
            stratify,
        } => {
            let all = read_table(input, csv)?;
            let strata = match (&manifest.data.target, stratify) {
                (Some(target), true) => all.column(target).map(|c| {
                    (0..all.rows as usize)
                        .map(|r| cell_text(c, r))
                        .collect::<Vec<_>>()
                }),
                _ => None,
            };
            let (train_idx, test_idx) =
                split_rows(all.rows as usize, *test_fraction, *seed, strata.as_deref());
            Ok((all.take_rows(&train_idx), Some(all.take_rows(&test_idx))))
        }
    }
}

/// Deterministic shuffled split. With strata, each stratum contributes its
/// own share of test rows. Returns (train, test) row indices in file order.
fn split_rows(
    rows: usize,
    test_fraction: f64,
    seed: u64,
    strata: Option<&[Option<String>]>,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = crate::data::generate::Rng(seed);
    let mut next = move || rng.next();
    let mut groups: std::collections::BTreeMap<Option<&str>, Vec<usize>> = Default::default();
    for r in 0..rows {
        let key = strata.and_then(|s| s.get(r)).and_then(|s| s.as_deref());
        groups.entry(key).or_default().push(r);
    }
    let mut test = Vec::new();
    for members in groups.values_mut() {
        for i in (1..members.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        let take = ((members.len() as f64) * test_fraction).round() as usize;
        test.extend_from_slice(&members[..take.min(members.len())]);
    }
    test.sort_unstable();
    let train = (0..rows)
        .filter(|r| test.binary_search(r).is_err())
        .collect();
    (train, test)
}

/// Splits the target off and keeps the manifest's feature columns; the
/// target must be there when `require_target` (training data).
pub fn features_and_target(
    manifest: &Manifest,
    mut frame: Frame,
    require_target: bool,
) -> Result<(Frame, Option<Column>), Error> {
    let file = match &manifest.data.source {
        DataSource::Files { train, test } => {
            if require_target {
                train.clone()
            } else {
                test.clone().unwrap_or_default()
            }
        }
        DataSource::Split { input, .. } => input.clone(),
    };
    let target = match &manifest.data.target {
        Some(name) => match frame.take_column(name) {
            Some(column) => Some(column),
            None if require_target => {
                return Err(ManifestError {
                    file: manifest.path.clone(),
                    line: None,
                    key: Some("data.target".into()),
                    message: format!(
                        "target column `{name}` is not in {} (columns: {})",
                        file.display(),
                        frame.column_names().join(", ")
                    ),
                }
                .into());
            }
            None => None,
        },
        None => None,
    };
    if let Some(features) = &manifest.data.features {
        let mut selected = Vec::with_capacity(features.len());
        for name in features {
            let column = frame.take_column(name).ok_or_else(|| DataError {
                file: file.clone(),
                row: None,
                column: Some(name.clone()),
                message: format!(
                    "feature column is missing (the file has: {})",
                    frame.column_names().join(", ")
                ),
            })?;
            selected.push(column);
        }
        frame.columns = selected;
    }
    Ok((frame, target))
}

#[cfg(test)]
mod tests {
    use super::split_rows;

    #[test]
    fn split_is_deterministic_stratified_and_complete() {
        let strata: Vec<Option<String>> = (0..100)
            .map(|i| Some(if i < 80 { "a" } else { "b" }.to_string()))
            .collect();
        let (train, test) = split_rows(100, 0.25, 7, Some(&strata));
        assert_eq!(test.len(), 25);
        assert_eq!(test.iter().filter(|r| **r >= 80).count(), 5);
        assert_eq!(train.len() + test.len(), 100);
        assert_eq!(split_rows(100, 0.25, 7, Some(&strata)), (train, test));
    }
}
