//! The one job driver. Every command that runs kernels goes through here:
//! a plan is fitted (on the whole training input, or `partial-fit` a chunk
//! at a time when `data.chunk-rows` is set) or a bundle is restored
//! without refitting; then rows are predicted (a whole file, a file a chunk
//! at a time, or batches handed in by `stream`), scored with the one
//! streaming [`Score`], and written. So `run`, `fit --save` + `predict`
//! and `stream` on the same plan produce the same model and the same
//! predictions.
//!
//! Chunked fitting makes one pass over the training data per wave of the
//! graph: earlier (already fitted) steps transform each chunk, and the
//! wave's steps `partial-fit` it. The training file is parsed once: the
//! first pass keeps the parsed chunks as Arrow IPC in a temporary file
//! ([`Spill`]), which the later passes read instead. A kernel without
//! partial fit has its input held in memory up to `data.memory-budget-mib`
//! and is fitted at the end of the pass; past the budget the job stops with
//! a clear error instead of running out of memory. Memory then holds one
//! chunk (plus the kernels' state), whatever the size of the files.

use crate::bindings::{Column, Frame, KernelKind};
use crate::bundle::{self, Bundle};
use crate::data::score::Score;
use crate::data::{Chunks, ColumnType, CsvOptions, TableWriter, is_columnar, read_table};
use crate::error::{DataError, Error, ManifestError};
use crate::manifest::{DataSource, KernelResolver, Plan, Spill as SpillMode};
use crate::pipeline::{Buffered, ChunkIn, Output, Pipeline};
use crate::readahead::ReadAhead;
use crate::report::{Provenance, RunReport, StepReport};
use crate::spill::{Spill, SpillReader, SpillWriter};
use crate::{Sandbox, Step};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where a job reports how far it got. The CLI draws a progress bar on a
/// terminal; the library's default says nothing.
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

/// What a job runs: a plan to fit, or a bundle already fitted. One per job,
/// moved once: the size of a plan does not matter here.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    Plan(Plan),
    Bundle(Box<Bundle>),
}

impl Source {
    /// A bundle (by its magic bytes, or a `.khb` name: a damaged bundle is
    /// reported as one) or a manifest, registry kernels found through
    /// `resolver`.
    pub fn open(path: &Path, resolver: &dyn KernelResolver) -> Result<Source, Error> {
        if bundle::is_bundle(path) || path.extension().is_some_and(|e| e == "khb") {
            Ok(Source::Bundle(Box::new(Bundle::read(path)?)))
        } else {
            Ok(Source::Plan(Plan::load_with(path, resolver)?))
        }
    }

    /// The plan: the manifest's, or the one the bundle was fitted from.
    pub fn plan(&self) -> &Plan {
        match self {
            Source::Plan(plan) => plan,
            Source::Bundle(bundle) => bundle.plan(),
        }
    }

    pub fn plan_mut(&mut self) -> &mut Plan {
        match self {
            Source::Plan(plan) => plan,
            Source::Bundle(bundle) => bundle.plan_mut(),
        }
    }

    pub fn is_bundle(&self) -> bool {
        matches!(self, Source::Bundle(_))
    }
}

/// Data flags every command shares: they replace what the plan says.
#[derive(Clone, Debug, Default)]
pub struct DataOverrides {
    /// Fit on this file instead of the plan's training data.
    pub train: Option<PathBuf>,
    /// Predict these rows instead of the plan's test data.
    pub input: Option<PathBuf>,
    /// Read (and fit) this many rows at a time.
    pub chunk_rows: Option<usize>,
    /// Read in chunks sized from the memory budget (`--chunk-rows auto`).
    pub chunk_auto: bool,
    /// Grant a bundle the rights (grants, raised limits) it records.
    pub trust_bundle: bool,
    /// Take a bundle's grants and limits from this plan (the user's own
    /// manifest) instead.
    pub rights_from: Option<Plan>,
}

impl DataOverrides {
    /// Applies the overrides to `source`'s plan. A flag that cannot apply
    /// (a training file for a bundle, which is not refitted) is refused.
    pub fn apply(&self, source: &mut Source) -> Result<(), Error> {
        if let (Some(train), true) = (&self.train, source.is_bundle()) {
            return Err(Error::Usage(format!(
                "--train {}: a bundle is already fitted and is not refitted; give the manifest to fit on other data",
                train.display()
            )));
        }
        match source {
            Source::Bundle(bundle) => {
                if let Some(plan) = &self.rights_from {
                    bundle.rights_from(plan)?;
                } else if self.trust_bundle {
                    bundle.trust();
                }
            }
            Source::Plan(_) if self.trust_bundle || self.rights_from.is_some() => {
                return Err(Error::Usage(
                    "--trust-bundle and --rights-from apply to bundles; a manifest grants its own rights".into(),
                ));
            }
            Source::Plan(_) => {}
        }
        let plan = source.plan_mut();
        if let Some(rows) = self.chunk_rows {
            plan.data.chunk_rows = Some(rows);
            plan.data.chunk_auto = false;
        } else if self.chunk_auto {
            plan.data.chunk_rows = None;
            plan.data.chunk_auto = true;
        }
        // The training rows: the given file, else the plan's (a split
        // input is then used whole when other rows are given to predict).
        let train = match (&self.train, &plan.data.source) {
            (Some(train), _) => Some(train.clone()),
            (None, DataSource::Split { input, .. }) if self.input.is_some() => Some(input.clone()),
            (None, _) => None,
        };
        if let Some(train) = train {
            let test = match &plan.data.source {
                DataSource::Files { test, .. } => test.clone(),
                DataSource::Split { .. } => None,
            };
            plan.data.source = DataSource::Files { train, test };
        }
        if let (Some(input), DataSource::Files { test, .. }) = (&self.input, &mut plan.data.source)
        {
            *test = Some(input.clone());
        }
        Ok(())
    }
}

/// How the pipeline got its fitted state. Reports say it as text: `fit`,
/// `partial-fit (N rows a chunk)`, `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub enum FitMode {
    /// `fit` on the whole training input.
    Whole,
    /// `partial-fit`, this many rows at a time.
    Chunked(usize),
    /// Restored from a bundle, not refitted.
    Restored,
}

impl std::fmt::Display for FitMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitMode::Whole => f.write_str("fit"),
            FitMode::Chunked(rows) => write!(f, "partial-fit ({rows} rows a chunk)"),
            FitMode::Restored => f.write_str("none"),
        }
    }
}

impl From<FitMode> for String {
    fn from(mode: FitMode) -> String {
        mode.to_string()
    }
}

/// A fitted pipeline and what it was fitted on.
pub struct Fitted {
    pub pipeline: Pipeline,
    /// Feature columns and types, in the order the first step saw them.
    pub schema: Vec<(String, ColumnType)>,
    pub train_rows: u64,
    pub fit: FitMode,
}

impl Fitted {
    pub fn plan(&self) -> &Plan {
        self.pipeline.plan()
    }
}

/// Rows held back by a split, to predict after the fit.
pub enum Held {
    /// The plan's test file (or none).
    File(Option<PathBuf>),
    /// The test rows of a split input, already in memory.
    Rows(Frame),
}

/// Loads `source`: restores a bundle, or fits a plan on its training data
/// (in chunks when `data.chunk-rows` is set). Returns the rows to predict
/// next as the plan names them.
pub async fn load(
    sandbox: &Sandbox,
    source: Source,
    progress: &dyn Progress,
) -> Result<(Fitted, Held), Error> {
    match source {
        Source::Bundle(bundle) => {
            let pipeline = bundle.load(sandbox).await?;
            let test = match &bundle.plan().data.source {
                DataSource::Files { test, .. } => test.clone(),
                DataSource::Split { .. } => None,
            };
            Ok((
                Fitted {
                    pipeline,
                    schema: bundle.schema().to_vec(),
                    train_rows: bundle.info().train_rows,
                    fit: FitMode::Restored,
                },
                // The test file the bundle was fitted beside, or the one
                // `--input` put in its plan.
                Held::File(test),
            ))
        }
        Source::Plan(plan) => fit(sandbox, plan, progress).await,
    }
}

/// Fits `plan` on its training data, whole or in chunks.
pub async fn fit(
    sandbox: &Sandbox,
    mut plan: Plan,
    progress: &dyn Progress,
) -> Result<(Fitted, Held), Error> {
    if plan.data.chunk_auto && plan.data.chunk_rows.is_none() {
        let rows = auto_chunk_rows(
            &training_file(&plan),
            &plan.data.csv,
            plan.data.memory_budget,
        )?;
        tracing::info!(rows, "chunk-rows = \"auto\": chunks of {rows} rows");
        plan.data.chunk_rows = Some(rows);
    }
    match plan.data.chunk_rows {
        Some(rows) => fit_chunked(sandbox, plan, rows, progress).await,
        None => fit_whole(sandbox, plan).await,
    }
}

async fn fit_whole(sandbox: &Sandbox, plan: Plan) -> Result<(Fitted, Held), Error> {
    let (train, held) = read_training(&plan)?;
    let (x, y) = features_and_target(&plan, train, &training_file(&plan), true)?;
    let schema = x.schema();
    let train_rows = u64::from(x.rows);
    let mut pipeline = Pipeline::load(sandbox, plan).await?;
    pipeline.fit(x, y.as_ref()).await?;
    Ok((
        Fitted {
            pipeline,
            schema,
            train_rows,
            fit: FitMode::Whole,
        },
        held,
    ))
}

async fn fit_chunked(
    sandbox: &Sandbox,
    plan: Plan,
    chunk_rows: usize,
    progress: &dyn Progress,
) -> Result<(Fitted, Held), Error> {
    let DataSource::Files { train, test } = plan.data.source.clone() else {
        return Err(ManifestError {
            file: plan.path.clone(),
            line: None,
            key: Some("data.split".into()),
            message: "a chunked job reads `train` (and `test`) files; split the input into two files first, or drop `chunk-rows`".into(),
        }
        .into());
    };
    let csv = plan.data.csv.clone();
    let mut pipeline = Pipeline::load(sandbox, plan.clone()).await?;
    if matches!(
        pipeline.final_kind(),
        KernelKind::Classifier | KernelKind::Regressor
    ) && plan.data.target.is_none()
    {
        return Err(ManifestError {
            file: plan.path.clone(),
            line: None,
            key: Some("data.target".into()),
            message: "the last step is a supervised model: name the target column".into(),
        }
        .into());
    }
    let mut train_rows = 0u64;
    let mut schema = Vec::new();
    let waves = pipeline.waves();
    // Passes spill, for every chunk, the frames a later pass needs (see
    // `crate::spill`), as `data.spill` says. `input` (the default): the
    // first pass spills the parsed input (a CSV is parsed once; Arrow and
    // Parquet files, typed and columnar, are read again instead), and
    // every later pass reads it and transforms each chunk through the
    // steps fitted so far. `outputs`: the first pass spills the parsed
    // input, every later pass but the last the outputs of the steps
    // fitted so far that later steps read, so each chunk goes through
    // each step once per fit; the parsed input is kept until a later
    // spill is written (if that one cannot be, the next pass starts from
    // it again; once one is, a failure further on means parsing the file
    // again: the parsed copy, as large as the input, would otherwise hold
    // disk and page cache for the whole fit). Measured at 5 GB (impute ->
    // one-hot -> scale -> SGD, README "Large inputs"): `input` 55.8 s,
    // `outputs` 69.2 s, in the same hour; writing three spills cost more
    // than transforming again through steps that read frames by reference.
    let mut parsed: Option<Arc<Spill>> = None;
    let mut carried: Option<Arc<Spill>> = None;
    for (w, wave) in waves.iter().enumerate() {
        let mut buffered = Buffered::new(plan.data.memory_budget);
        let spills = w + 1 < waves.len()
            && match plan.data.spill {
                SpillMode::Input => w == 0 && !is_columnar(&train),
                SpillMode::Outputs => !(w == 0 && is_columnar(&train)),
                SpillMode::None => false,
            };
        let mut writer = spills.then(SpillWriter::create).and_then(spill_or_warn);
        // Carried frames need only the last wave's steps; the parsed
        // input, every earlier step.
        let (from, is_carried) = match (&carried, &parsed) {
            (Some(spill), _) => (Some(spill.clone()), true),
            (None, Some(spill)) => (Some(spill.clone()), false),
            (None, None) => (None, false),
        };
        let source = from.as_ref().map_or(train.clone(), |s| s.path.clone());
        let read_from = match (&from, &parsed) {
            (None, _) => "the input file",
            (Some(spill), Some(input)) if Arc::ptr_eq(spill, input) => "the spilled input",
            (Some(_), _) => "the spilled step outputs",
        };
        let started = Instant::now();
        progress.start(
            &format!("fit {}/{}", w + 1, waves.len()),
            &source,
            from.as_ref().map_or(file_size(&train), |s| s.size()),
        );
        let mut rows = 0u64;
        // The next chunk is read (parsed, or decoded from the spill) on
        // a thread of its own while the steps work on this one.
        let chunks = match &from {
            Some(spill) => {
                let mut reader = SpillReader::open(spill)?;
                ReadAhead::spawn(source.display().to_string(), READ_AHEAD, move || {
                    Ok(reader.next_chunk()?.map(|(frames, y)| ChunkIn {
                        frames,
                        y,
                        bytes_read: reader.bytes_read(),
                    }))
                })?
            }
            None => {
                let mut chunks = Chunks::open(&train, &csv)?;
                let (plan, train) = (plan.clone(), train.clone());
                let (mut schema, mut rows) = (Vec::new(), 0u64);
                ReadAhead::spawn(train.display().to_string(), READ_AHEAD, move || {
                    let Some(chunk) = chunks.next_chunk(chunk_rows)? else {
                        return Ok(None);
                    };
                    let first_row = rows + 1;
                    rows += u64::from(chunk.rows);
                    let (x, y) = features_and_target(&plan, chunk, &train, true)?;
                    // Every chunk must look like the first: the CSV reader
                    // fixes the types, the features must not come and go.
                    let x = if schema.is_empty() {
                        schema = x.schema();
                        x
                    } else {
                        x.conform(&schema, &train, first_row)?
                    };
                    Ok(Some(ChunkIn {
                        frames: HashMap::from([("source".to_string(), x)]),
                        y,
                        bytes_read: chunks.bytes_read(),
                    }))
                })?
            }
        };
        pipeline
            .fit_pass(chunks, is_carried, wave, &mut buffered, |next, y, chunk| {
                rows += chunk.rows;
                if schema.is_empty()
                    && let Some((_, x)) = next.iter().find(|(name, _)| *name == "source")
                {
                    schema = x.schema();
                }
                if let Some(spill) = &mut writer
                    && let Err(e) = spill.write(next, y)
                {
                    tracing::warn!(
                        "{e:#}; the next pass starts from the parsed input, or from the file"
                    );
                    writer = None;
                }
                progress.update(chunk.bytes_read, rows);
            })
            .await?;
        let done = writer.and_then(|w| spill_or_warn(w.finish())).map(Arc::new);
        if w == 0 && !is_columnar(&train) {
            parsed.clone_from(&done);
        }
        if w > 0 && done.is_some() {
            parsed = None;
        }
        carried = done;
        pipeline.finish_wave(wave, &mut buffered).await?;
        progress.finish();
        tracing::info!(
            "fit pass {}/{}: {rows} rows from {} in {:.2?}",
            w + 1,
            waves.len(),
            read_from,
            started.elapsed()
        );
        if w == 0 {
            train_rows = rows;
        }
    }
    Ok((
        Fitted {
            pipeline,
            schema,
            train_rows,
            fit: FitMode::Chunked(chunk_rows),
        },
        Held::File(test),
    ))
}

/// Chunks read ahead of the one the steps work on.
const READ_AHEAD: usize = 1;

/// Parsed bytes a chunk of `chunk-rows = "auto"` aims at: 1/1024 of the
/// memory budget (512 KiB by default), within these bounds. A chunk passes
/// through every step (copies, transformed frames, the kernels' buffers)
/// beside the spill writer and the predictions, and a pass holds about
/// four at once (one read ahead, one being read, one the earlier steps
/// transform, one the wave's steps fit). Measured (1M generated rows, 146
/// parsed bytes a row, impute -> one-hot -> scale -> SGD, this 2-core
/// machine, reading ahead, mimalloc): chunks of 2 048 rows peaked at 65
/// MiB RSS, 3 590 (512 KiB) at 82-86 MiB, 8 192 at 90 MiB, 14 364 (2 MiB)
/// at 111-121 MiB, 65 536 at 204 MiB; wall time 2.2-2.7 s for all of
/// them, within the noise.
const AUTO_CHUNK_BYTES: std::ops::RangeInclusive<u64> = (256 << 10)..=(8 << 20);

/// The share of the memory budget a chunk of `chunk-rows = "auto"` aims at.
const AUTO_CHUNK_SHARE: u64 = 1024;

/// Rows read to estimate a row's size.
const AUTO_SAMPLE_ROWS: usize = 1024;

/// Rows per chunk of `chunk-rows = "auto"` for the data in `path`: the
/// parsed size of its first rows, scaled to 1/1024 of `budget` (within
/// 256 KiB and 8 MiB), between 64 and 1 048 576 rows.
pub fn auto_chunk_rows(path: &Path, csv: &CsvOptions, budget: u64) -> Result<usize, Error> {
    let target =
        (budget / AUTO_CHUNK_SHARE).clamp(*AUTO_CHUNK_BYTES.start(), *AUTO_CHUNK_BYTES.end());
    let mut chunks = Chunks::open(path, csv)?;
    let per_row = match chunks.next_chunk(AUTO_SAMPLE_ROWS)? {
        Some(sample) if sample.rows > 0 => {
            let bytes: usize = sample
                .columns
                .iter()
                .map(kernel_host_types::frame::column_bytes)
                .sum();
            (bytes as u64 / u64::from(sample.rows)).max(1)
        }
        _ => 1,
    };
    Ok(usize::try_from(target / per_row)
        .unwrap_or(usize::MAX)
        .clamp(64, 1 << 20))
}

/// The spill, or `None` with a warning: the next pass then starts from
/// the parsed input (or the training file), slower and as correct.
fn spill_or_warn<T>(result: anyhow::Result<T>) -> Option<T> {
    result
        .map_err(|e| tracing::warn!("{e:#}; the next pass starts from the parsed input"))
        .ok()
}

/// What predicting did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Predicted {
    pub rows: u64,
    pub metric: Option<(&'static str, f64)>,
    /// The shadow model's metric minus the primary's, when the final step
    /// has a shadow and the truth is known.
    pub shadow_metric_delta: Option<f64>,
    /// Where the predictions were written.
    pub output: Option<PathBuf>,
}

/// Predicts batch after batch with a fitted pipeline: takes the truth off
/// when the batch has it, keeps the fitted features in their order and
/// types (a missing or retyped column is refused by name), scores, and
/// writes or returns the output table.
pub struct Predictor<'a> {
    fitted: &'a mut Fitted,
    score: Score,
    shadow: Score,
    rows: u64,
    writer: Option<(TableWriter, PathBuf)>,
    /// The output columns of the first batch: every later batch must have
    /// the same, or the output would be a corrupt table.
    bound: Option<Vec<(String, ColumnType)>>,
}

/// The data files `plan` reads: an output must never replace one.
pub fn input_files(plan: &Plan) -> Vec<&Path> {
    match &plan.data.source {
        DataSource::Files { train, test } => std::iter::once(train.as_path())
            .chain(test.as_deref())
            .collect(),
        DataSource::Split { input, .. } => vec![input.as_path()],
    }
}

/// Refuses `output` when it is a device or one of `plan`'s inputs.
pub fn check_output(plan: &Plan, output: &Path) -> Result<(), Error> {
    let mut inputs = input_files(plan);
    inputs.push(&plan.path);
    crate::fsutil::check_output(output, &inputs).map_err(Error::Usage)
}

impl<'a> Predictor<'a> {
    /// A predictor writing to `output` (CSV or Arrow by extension), if any.
    pub fn new(fitted: &'a mut Fitted, output: Option<&Path>) -> Result<Predictor<'a>, Error> {
        if let Some(path) = output {
            check_output(fitted.plan(), path)?;
        }
        let writer = output
            .map(|path| {
                TableWriter::create(path)
                    .map(|w| (w, path.to_path_buf()))
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))
            })
            .transpose()?;
        Ok(Predictor {
            fitted,
            score: Score::default(),
            shadow: Score::default(),
            rows: 0,
            writer,
            bound: None,
        })
    }

    /// Refuses an output batch whose columns differ from the first's.
    fn bind(&mut self, table: &Frame, first_row: u64) -> Result<(), Error> {
        let schema = table.schema();
        let Some(first) = &self.bound else {
            self.bound = Some(schema);
            return Ok(());
        };
        if *first == schema {
            return Ok(());
        }
        let describe = |s: &[(String, ColumnType)]| {
            s.iter()
                .map(|(n, t)| format!("{} {t}", crate::printable(n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = first
            .iter()
            .zip(&schema)
            .find(|(a, b)| a != b)
            .map(|((n, t), (m, u))| {
                if n == m {
                    format!("column `{}` was {t} and is now {u}", crate::printable(n))
                } else {
                    format!(
                        "column `{}` became `{}`",
                        crate::printable(n),
                        crate::printable(m)
                    )
                }
            })
            .unwrap_or_else(|| format!("{} columns became {}", first.len(), schema.len()));
        let step = self.fitted.pipeline.steps().last();
        Err(Error::Kernel {
            kernel: step.map(|s| s.spec.id.clone()).unwrap_or_default(),
            operation: step.map_or("predict", |s| {
                if s.kind() == crate::bindings::KernelKind::Transformer {
                    "transform"
                } else {
                    "predict"
                }
            }),
            fault: crate::Fault::BadOutput(format!(
                "its output changed between batches at row {first_row}: {what} (first batch: {}; this batch: {}); the output of one run must keep one schema",
                describe(first),
                describe(&schema)
            )),
        })
    }

    /// How to read input files so their columns parse as the pipeline was
    /// fitted (a column of integers in a test file stays f64 when the
    /// training file had decimals in it).
    pub fn csv_options(&self) -> CsvOptions {
        let mut csv = self.fitted.plan().data.csv.clone();
        for (name, ty) in &self.fitted.schema {
            csv.schema.entry(name.clone()).or_insert(*ty);
        }
        csv
    }

    /// Predicts one batch read from `file` whose first row is `first_row`
    /// (1-based, for messages). Returns the output table.
    pub async fn batch(&mut self, mut input: Frame, file: &Path) -> Result<Frame, Error> {
        let first_row = self.rows + 1;
        self.rows += u64::from(input.rows);
        let plan = self.fitted.pipeline.plan();
        let truth = plan
            .data
            .target
            .as_deref()
            .and_then(|t| input.take_column(t));
        let probabilities = plan.output.probabilities;
        let x = input.conform(&self.fitted.schema, file, first_row)?;
        let kind = self.fitted.pipeline.final_kind();
        let table = match self.fitted.pipeline.predict(x, probabilities).await? {
            Output::Predictions {
                values,
                probabilities,
            } => {
                if let Some(truth) = &truth {
                    self.score.add(kind, &values, truth);
                    if let Some(shadow) = self
                        .fitted
                        .pipeline
                        .steps()
                        .last()
                        .and_then(Step::agreement)
                        .and_then(|a| a.last_predictions.as_ref())
                    {
                        self.shadow.add(kind, shadow, truth);
                    }
                }
                predictions_table(values, truth, probabilities)
            }
            Output::Transformed(frame) => frame,
        };
        self.bind(&table, first_row)?;
        if let Some((writer, path)) = self.writer.as_mut() {
            writer
                .write(&table)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Ok(table)
    }

    /// Predicts the file at `path`, whole or `chunk_rows` at a time.
    pub async fn file(
        &mut self,
        path: &Path,
        chunk_rows: Option<usize>,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let csv = self.csv_options();
        match chunk_rows {
            None => {
                let frame = read_table(path, &csv)?;
                self.batch(frame, path).await?;
            }
            Some(rows) => {
                let mut chunks = Chunks::open(path, &csv)?;
                progress.start("predict", path, file_size(path));
                // Parsed a chunk ahead, on a thread of its own.
                let mut ahead =
                    ReadAhead::spawn(path.display().to_string(), READ_AHEAD, move || {
                        Ok(chunks
                            .next_chunk(rows)?
                            .map(|chunk| (chunk, chunks.bytes_read())))
                    })?;
                let started = Instant::now();
                while let Some((chunk, bytes_read)) = ahead.next().await? {
                    self.batch(chunk, path).await?;
                    progress.update(bytes_read, self.rows);
                }
                progress.finish();
                tracing::info!(
                    "predict pass: {} rows in {:.2?}",
                    self.rows,
                    started.elapsed()
                );
            }
        }
        Ok(())
    }

    /// Finishes the output file (atomically: it appears whole or not at
    /// all) and returns what was predicted.
    pub fn finish(self) -> Result<Predicted, Error> {
        let kind = self.fitted.pipeline.final_kind();
        let output = match self.writer {
            Some((writer, path)) => {
                writer
                    .finish()
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                Some(path)
            }
            None => None,
        };
        let metric = self.score.metric(kind);
        Ok(Predicted {
            rows: self.rows,
            metric,
            shadow_metric_delta: self
                .shadow
                .metric(kind)
                .zip(metric)
                .map(|((_, s), (_, p))| s - p),
            output,
        })
    }
}

/// Predicts what `held` names with `fitted`, writing to the plan's output.
pub async fn predict_held(
    fitted: &mut Fitted,
    held: Held,
    progress: &dyn Progress,
) -> Result<Option<Predicted>, Error> {
    let output = fitted.plan().output.predictions.clone();
    let plan = fitted.plan();
    let file = training_file(plan);
    match held {
        Held::File(None) => Ok(None),
        Held::File(Some(path)) => {
            let chunk_rows = match plan.data.chunk_rows {
                None if plan.data.chunk_auto => Some(auto_chunk_rows(
                    &path,
                    &plan.data.csv,
                    plan.data.memory_budget,
                )?),
                rows => rows,
            };
            let mut predictor = Predictor::new(fitted, output.as_deref())?;
            predictor.file(&path, chunk_rows, progress).await?;
            predictor.finish().map(Some)
        }
        Held::Rows(rows) => {
            let mut predictor = Predictor::new(fitted, output.as_deref())?;
            predictor.batch(rows, &file).await?;
            predictor.finish().map(Some)
        }
    }
}

/// What a job should do besides fitting (or restoring).
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// Save the fitted pipeline as a bundle here.
    pub save: Option<PathBuf>,
    /// Predict the held-out or given rows (and write them where the plan's
    /// `output.predictions` says).
    pub predict: bool,
}

/// The whole job: load or fit, optionally save, optionally predict, and
/// report. `run` is `predict: true`; `fit --save` is `save` alone.
pub async fn run(
    sandbox: &Sandbox,
    source: Source,
    options: &JobOptions,
    progress: &dyn Progress,
) -> Result<RunReport, Error> {
    let started = Instant::now();
    let path = source.plan().path.clone();
    // Refuse a bad output path before the fit, not after it.
    for output in options.save.iter().chain(
        options
            .predict
            .then_some(source.plan().output.predictions.as_ref())
            .flatten(),
    ) {
        check_output(source.plan(), output)?;
    }
    let (mut fitted, held) = load(sandbox, source, progress).await?;
    if let Some(save) = &options.save {
        bundle::save(&mut fitted, save).await?;
    }
    let schema = fitted.schema.clone();
    let features = schema.iter().map(|(n, _)| n.clone()).collect();
    let predicted = if options.predict {
        predict_held(&mut fitted, held, progress).await?
    } else {
        None
    };
    let predicted = predicted.unwrap_or_default();
    let mut steps: Vec<StepReport> = fitted.pipeline.steps().iter().map(StepReport::of).collect();
    if let Some(last) = steps.last_mut() {
        last.shadow_metric_delta = predicted.shadow_metric_delta;
    }
    Ok(RunReport {
        outcome: "ok",
        provenance: Provenance::now(sandbox),
        pipeline: fitted.plan().name.clone(),
        manifest: path,
        fit: fitted.fit,
        saved: options.save.clone(),
        train_rows: fitted.train_rows,
        test_rows: predicted.rows,
        features,
        schema,
        metric: predicted.metric,
        steps,
        output: predicted.output,
        elapsed: started.elapsed(),
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

/// The training rows of a plan read whole, and what to predict after.
pub fn read_training(plan: &Plan) -> Result<(Frame, Held), Error> {
    let csv = &plan.data.csv;
    match &plan.data.source {
        DataSource::Files { train, test } => {
            Ok((read_table(train, csv)?, Held::File(test.clone())))
        }
        DataSource::Split {
            input,
            test_fraction,
            seed,
            stratify,
        } => {
            let all = read_table(input, csv)?;
            let strata = match (&plan.data.target, stratify) {
                (Some(target), true) => all.column(target).map(|c| {
                    (0..all.rows as usize)
                        .map(|r| crate::data::cell_text(c, r))
                        .collect::<Vec<_>>()
                }),
                _ => None,
            };
            let (train_idx, test_idx) = crate::data::split::split_rows(
                all.rows as usize,
                *test_fraction,
                *seed,
                strata.as_deref(),
            );
            Ok((
                all.take_rows(&train_idx),
                Held::Rows(all.take_rows(&test_idx)),
            ))
        }
    }
}

/// The plan's training data and features, read whole: what `validate` and
/// `explain` look at.
pub fn training_data(plan: &Plan) -> Result<(Frame, Option<Column>), Error> {
    let (train, _) = read_training(plan)?;
    features_and_target(plan, train, &training_file(plan), true)
}

/// The file the training rows come from (for messages).
pub fn training_file(plan: &Plan) -> PathBuf {
    match &plan.data.source {
        DataSource::Files { train, .. } => train.clone(),
        DataSource::Split { input, .. } => input.clone(),
    }
}

/// Splits the target off and keeps the plan's feature columns; the target
/// must be there when `require_target` (training data).
pub fn features_and_target(
    plan: &Plan,
    mut frame: Frame,
    file: &Path,
    require_target: bool,
) -> Result<(Frame, Option<Column>), Error> {
    let target = match &plan.data.target {
        Some(name) => match frame.take_column(name) {
            Some(column) => Some(column),
            None if require_target => {
                return Err(ManifestError {
                    file: plan.path.clone(),
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
    if let Some(features) = &plan.data.features {
        let mut selected = Vec::with_capacity(features.len());
        for name in features {
            let column = frame.take_column(name).ok_or_else(|| DataError {
                file: file.to_path_buf(),
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
    if frame.columns.is_empty() {
        // Every model would learn a constant from it, or fail on it in its
        // own way: refused here, for the file, before a kernel runs.
        if plan.data.features.is_some() {
            return Err(ManifestError {
                file: plan.path.clone(),
                line: None,
                key: Some("data.features".into()),
                message: "lists no columns: name at least one feature column to learn from".into(),
            }
            .into());
        }
        let besides = plan
            .data
            .target
            .as_ref()
            .filter(|_| target.is_some())
            .map(|t| format!(" besides the target `{t}`"))
            .unwrap_or_default();
        return Err(DataError {
            file: file.to_path_buf(),
            row: None,
            column: None,
            message: format!(
                "has no feature columns{besides}: a pipeline needs at least one column to learn from"
            ),
        }
        .into());
    }
    Ok((frame, target))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
