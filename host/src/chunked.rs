//! Chunked runs: inputs larger than memory stream through the pipeline a
//! chunk at a time.
//!
//! Fitting makes one pass over the training file per wave of the graph:
//! earlier (already fitted) steps transform each chunk, and the wave's
//! steps `partial-fit` it. A kernel without partial fit has its input held
//! in memory up to `data.memory-budget-mib` and is fitted at the end of the
//! pass; past the budget the run stops with a clear error instead of
//! running out of memory. Prediction is one more pass, written chunk by
//! chunk. Memory holds one chunk (plus the kernels' state), whatever the
//! size of the files. Results equal a whole-input run for kernels whose
//! `partial-fit` is exact (all of ours; the scaler to within rounding).

use crate::bindings::{Column, KernelKind};
use crate::data::{Chunks, TableWriter, cell_text};
use crate::engine::Sandbox;
use crate::error::{Error, ManifestError};
use crate::manifest::{DataSource, Manifest};
use crate::pipeline::{Buffered, Output, Pipeline};
use crate::run::{RunReport, StepReport, features_and_target, predictions_table};
use std::path::Path;
use std::time::Instant;

/// Where a chunked run reports how far it got. The CLI draws a progress
/// bar on a terminal; the library's default says nothing.
pub trait Progress: Send + Sync {
    /// A pass over `file` begins; `bytes` is its size.
    fn start(&self, pass: &str, file: &Path, bytes: u64);
    /// The pass has consumed `bytes` of the file and `rows` rows so far.
    fn update(&self, bytes: u64, rows: u64);
    /// The pass is over.
    fn finish(&self);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: &Path, _: u64) {}
    fn update(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// Running sums for the quality metric over chunks.
#[derive(Default)]
struct Score {
    known: u64,
    right: u64,
    sum: f64,
    sum_sq: f64,
    residual_sq: f64,
}

impl Score {
    fn add(&mut self, kind: KernelKind, predicted: &Column, truth: &Column) {
        for row in 0..crate::data::column_len(truth) {
            let Some(t) = cell_text(truth, row) else {
                continue;
            };
            let p = cell_text(predicted, row);
            match kind {
                KernelKind::Classifier => {
                    self.known += 1;
                    self.right += u64::from(p.as_deref() == Some(t.as_str()));
                }
                KernelKind::Regressor => {
                    if let (Ok(t), Some(Ok(p))) = (t.parse::<f64>(), p.map(|p| p.parse::<f64>())) {
                        self.known += 1;
                        self.sum += t;
                        self.sum_sq += t * t;
                        self.residual_sq += (t - p) * (t - p);
                    }
                }
                _ => {}
            }
        }
    }

    fn metric(&self, kind: KernelKind) -> Option<(&'static str, f64)> {
        let n = self.known as f64;
        match kind {
            KernelKind::Classifier if self.known > 0 => Some(("accuracy", self.right as f64 / n)),
            KernelKind::Regressor if self.known > 1 => {
                let total = self.sum_sq - self.sum * self.sum / n;
                (total > 0.0).then(|| ("r2", 1.0 - self.residual_sq / total))
            }
            _ => None,
        }
    }
}

/// Runs the manifest's job `chunk_rows` rows at a time.
pub async fn run_chunked(
    sandbox: &Sandbox,
    manifest: Manifest,
    chunk_rows: usize,
    progress: &dyn Progress,
) -> Result<RunReport, Error> {
    let started = Instant::now();
    let DataSource::Files { train, test } = manifest.data.source.clone() else {
        return Err(ManifestError {
            file: manifest.path.clone(),
            line: None,
            key: Some("data.split".into()),
            message: "a chunked run reads `train` (and `test`) files; split the input into two files first".into(),
        }
        .into());
    };
    let csv = manifest.data.csv.clone();
    let mut pipeline = Pipeline::load(sandbox, manifest.clone()).await?;
    let final_kind = pipeline.final_kind();
    if matches!(final_kind, KernelKind::Classifier | KernelKind::Regressor)
        && manifest.data.target.is_none()
    {
        return Err(ManifestError {
            file: manifest.path.clone(),
            line: None,
            key: Some("data.target".into()),
            message: "the last step is a supervised model: name the target column".into(),
        }
        .into());
    }

    // Fit: one pass per wave.
    let mut train_rows = 0u64;
    let mut features = Vec::new();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let waves = pipeline.waves();
    for (w, wave) in waves.iter().enumerate() {
        let mut buffered = Buffered::new(manifest.data.memory_budget);
        let mut chunks = Chunks::open(&train, &csv)?;
        progress.start(
            &format!("fit {}/{}", w + 1, waves.len()),
            &train,
            size(&train),
        );
        let mut rows = 0u64;
        while let Some(chunk) = chunks.next_chunk(chunk_rows)? {
            rows += u64::from(chunk.rows);
            let (x, y) = features_and_target(&manifest, chunk, true)?;
            if features.is_empty() {
                features = x.column_names().into_iter().map(String::from).collect();
            }
            pipeline
                .fit_chunk(x, y.as_ref(), wave, &mut buffered)
                .await?;
            progress.update(chunks.bytes_read(), rows);
        }
        pipeline.finish_wave(wave, &mut buffered).await?;
        progress.finish();
        train_rows = rows;
    }

    // Predict: one more pass, written as it goes.
    let mut test_rows = 0u64;
    let mut score = Score::default();
    let mut output = None;
    if let Some(test) = test {
        let mut writer = manifest
            .output
            .predictions
            .as_deref()
            .map(TableWriter::create)
            .transpose()?;
        let mut chunks = Chunks::open(&test, &csv)?;
        progress.start("predict", &test, size(&test));
        while let Some(chunk) = chunks.next_chunk(chunk_rows)? {
            test_rows += u64::from(chunk.rows);
            let (x, truth) = features_and_target(&manifest, chunk, false)?;
            let table = match pipeline.predict(x, manifest.output.probabilities).await? {
                Output::Predictions {
                    values,
                    probabilities,
                } => {
                    if let Some(truth) = &truth {
                        score.add(final_kind, &values, truth);
                    }
                    predictions_table(values, truth, probabilities)
                }
                Output::Transformed(frame) => frame,
            };
            if let Some(w) = writer.as_mut() {
                w.write(&table)?;
            }
            progress.update(chunks.bytes_read(), test_rows);
        }
        progress.finish();
        if let Some(w) = writer {
            w.finish()?;
            output = manifest.output.predictions.clone();
        }
    }

    let steps = pipeline.steps().iter().map(StepReport::of).collect();
    Ok(RunReport {
        pipeline: manifest.name.clone(),
        manifest: manifest.path.clone(),
        train_rows: u32::try_from(train_rows).unwrap_or(u32::MAX),
        test_rows: u32::try_from(test_rows).unwrap_or(u32::MAX),
        features,
        metric: score.metric(final_kind),
        steps,
        output,
        elapsed: started.elapsed(),
    })
}
