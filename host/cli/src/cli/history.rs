//! `kernel-host history list|show|forget`, and recording finished runs.

use kernel_host::Error;
use kernel_host::history::{self, Entry, Fingerprint, Forget, History};
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host history list
  kernel-host history show 12 --json
  kernel-host history forget --data data/old.csv

The history lives in $KERNEL_HOST_HISTORY (a file, or `off` to keep none),
else $XDG_DATA_HOME/kernel-host/history.sqlite, else
~/.local/share/kernel-host/history.sqlite.")]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Clone, clap::Subcommand)]
pub enum Action {
    /// The newest records: when, what, on which data, the score.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One record in full.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Remove one record by id, every record about a data file, or all.
    Forget {
        #[arg(conflicts_with_all = ["data", "all"], required_unless_present_any = ["data", "all"])]
        id: Option<i64>,
        #[arg(long, value_name = "FILE", conflicts_with = "all")]
        data: Option<PathBuf>,
        #[arg(long)]
        all: bool,
    },
}

fn io(context: &str, e: anyhow::Error) -> Error {
    Error::io(context.to_string(), e)
}

/// The history, or why there is none.
fn open() -> Result<History, Error> {
    let Some(path) = history::default_path() else {
        return Err(Error::Usage(
            "the history is switched off (KERNEL_HOST_HISTORY=off)".into(),
        ));
    };
    History::open(&path).map_err(|e| io("opening the history", e))
}

pub async fn history(args: HistoryArgs) -> Result<(), Error> {
    let mut h = open()?;
    match args.action {
        Action::List { limit, json } => {
            let records = h.list(limit).map_err(|e| io("reading the history", e))?;
            if json {
                let value =
                    serde_json::to_value(&records).map_err(|e| io("writing JSON", e.into()))?;
                println!("{}", super::json(&value));
                return Ok(());
            }
            if records.is_empty() {
                println!("the history at {} is empty", h.path().display());
            }
            for r in records {
                let e = &r.entry;
                println!(
                    "{:>5}  {}  {:<9}  {:<14} {:.4} ({})  {}  {}",
                    r.id,
                    r.at,
                    e.command,
                    e.metric,
                    e.score,
                    e.scored_on,
                    e.pipeline.join(" -> "),
                    e.data.display()
                );
            }
        }
        Action::Show { id, json } => {
            let Some(r) = h.get(id).map_err(|e| io("reading the history", e))? else {
                return Err(Error::Usage(format!(
                    "no record {id} in the history at {} (see `kernel-host history list`)",
                    h.path().display()
                )));
            };
            if json {
                let value = serde_json::to_value(&r).map_err(|e| io("writing JSON", e.into()))?;
                println!("{}", super::json(&value));
                return Ok(());
            }
            let (id, at, r) = (r.id, r.at.clone(), r.entry);
            println!("record {id} ({}, {at})", r.command);
            println!("data:      {}", r.data.display());
            println!(
                "task:      {} on {} rows, target {}",
                r.fingerprint.task,
                r.fingerprint.rows,
                r.fingerprint.target.as_deref().unwrap_or("none")
            );
            println!(
                "features:  {}",
                r.fingerprint
                    .columns
                    .iter()
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("pipeline:  {}", r.pipeline.join(" -> "));
            println!("{}: {:.4} ({})", r.metric, r.score, r.scored_on);
            println!("fit:       {:.3} s, {} fuel", r.fit_seconds, r.fuel);
        }
        Action::Forget { id, data, all } => {
            let which = match (id, data, all) {
                (Some(id), _, _) => Forget::Id(id),
                (None, Some(path), _) => Forget::Data(std::path::absolute(&path).unwrap_or(path)),
                _ => Forget::All,
            };
            let n = h
                .forget(&which)
                .map_err(|e| io("updating the history", e))?;
            println!("forgot {n} record{}", if n == 1 { "" } else { "s" });
        }
    }
    Ok(())
}

/// Records a finished `run` of `plan` (kept quiet when the history is off;
/// a history that cannot be written is a warning, never a failed run).
pub fn record_run(plan: &kernel_host::Plan, report: &kernel_host::report::RunReport) {
    let Some((metric, score)) = report.metric else {
        return;
    };
    let Some(path) = history::default_path() else {
        return;
    };
    let data = match &plan.data.source {
        kernel_host::manifest::DataSource::Files { train, .. } => train.clone(),
        kernel_host::manifest::DataSource::Split { input, .. } => input.clone(),
    };
    let result = (|| -> anyhow::Result<()> {
        let record = Entry {
            command: "run".into(),
            data: std::path::absolute(&data).unwrap_or(data.clone()),
            fingerprint: Fingerprint {
                task: history::task_of_metric(metric).into(),
                rows: report.train_rows,
                target: plan.data.target.clone(),
                // The features as the run read them: no second read of
                // the data.
                columns: report.schema.clone(),
            },
            pipeline: report
                .steps
                .iter()
                .map(|s| s.kernel.split('@').next().unwrap_or_default().to_string())
                .collect(),
            metric: metric.into(),
            score,
            scored_on: format!("{} test rows", report.test_rows),
            fit_seconds: report.elapsed.as_secs_f64(),
            fuel: report.steps.iter().map(|s| s.fuel).sum(),
        };
        History::open(&path)?.record(&record)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(
            "could not record the run in the history at {}: {e:#} (KERNEL_HOST_HISTORY=off keeps none)",
            path.display()
        );
    }
}

/// The feature columns of `data` and their types, from its first rows.
fn schema_of(
    data: &std::path::Path,
    plan: &kernel_host::Plan,
) -> anyhow::Result<Vec<(String, kernel_host::data::ColumnType)>> {
    let mut chunks = kernel_host::data::Chunks::open(data, &plan.data.csv)?;
    let Some(first) = chunks.next_chunk(1000)? else {
        return Ok(Vec::new());
    };
    Ok(first
        .schema()
        .into_iter()
        .filter(|(name, _)| Some(name) != plan.data.target.as_ref())
        .filter(|(name, _)| plan.data.features.as_ref().is_none_or(|f| f.contains(name)))
        .collect())
}

/// One cross-validated pipeline to record.
pub struct Scored<'a> {
    pub plan: &'a kernel_host::Plan,
    pub score: f64,
    pub fit_seconds: f64,
    pub fuel: u64,
}

/// Records cross-validated pipelines (`compare`'s rows, `tune`'s best) on
/// `rows` training rows in `folds` folds. Quiet when the history is off; a
/// failure is a warning.
pub async fn record_cv(
    command: &str,
    sandbox: &kernel_host::Sandbox,
    scored: &[Scored<'_>],
    metric: &str,
    rows: u32,
    folds: usize,
) {
    let Some(path) = history::default_path() else {
        return;
    };
    let mut records = Vec::new();
    for s in scored {
        let data = match &s.plan.data.source {
            kernel_host::manifest::DataSource::Files { train, .. } => train.clone(),
            kernel_host::manifest::DataSource::Split { input, .. } => input.clone(),
        };
        // The kernels' own names, as `recommend` knows them (loads are
        // cached: the candidates were just loaded to score them).
        let names = match kernel_host::Pipeline::load(sandbox, s.plan.clone()).await {
            Ok(p) => p
                .steps()
                .iter()
                .map(|step| {
                    let name = step.kernel_name();
                    name.split('@').next().unwrap_or_default().to_string()
                })
                .collect(),
            Err(_) => continue,
        };
        let Ok(columns) = schema_of(&data, s.plan) else {
            continue;
        };
        records.push(Entry {
            command: command.into(),
            data: std::path::absolute(&data).unwrap_or(data),
            fingerprint: Fingerprint {
                task: history::task_of_metric(metric).into(),
                rows: u64::from(rows),
                target: s.plan.data.target.clone(),
                columns,
            },
            pipeline: names,
            metric: metric.into(),
            score: s.score,
            scored_on: format!("{folds}-fold CV on {rows} rows"),
            fit_seconds: s.fit_seconds,
            fuel: s.fuel,
        });
    }
    let result = (|| -> anyhow::Result<()> {
        let mut h = History::open(&path)?;
        for r in &records {
            h.record(r)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(
            "could not record in the history at {}: {e:#} (KERNEL_HOST_HISTORY=off keeps none)",
            path.display()
        );
    }
}
