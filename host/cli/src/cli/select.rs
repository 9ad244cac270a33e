//! Model selection on the command line: `run --cv K`, `compare`, `tune`.

use kernel_host::job::Source;
use kernel_host::select::compare::{self, Comparison, Outcome};
use kernel_host::select::tune::{self, TuneOptions, Tuned};
use kernel_host::select::{self, CvResult, show};
use kernel_host::{Error, Plan, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Cross-validation flags shared by `run`, `compare` and `tune`.
#[derive(Clone, Debug, clap::Args)]
pub struct CvArgs {
    /// Folds of the training rows (stratified by the target for classifiers).
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub cv: usize,
    /// Seed of the fold assignment (the same seed gives the same folds).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// The metric to rank by (accuracy, balanced_accuracy, macro_f1, log_loss; r2, rmse, mae; silhouette, inertia).
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
}

fn plan_of(path: &Path) -> Result<Plan, Error> {
    match Source::open(path, &super::common::registry())? {
        Source::Plan(plan) => Ok(plan),
        _ => Err(Error::Usage(format!(
            "{} is a bundle: cross-validation refits, so it needs a manifest",
            path.display()
        ))),
    }
}

fn sandbox() -> Result<Sandbox, Error> {
    Ok(Sandbox::builder().build()?)
}

fn check_metric(metric: Option<&str>) -> Result<(), Error> {
    const KNOWN: &[&str] = kernel_host::select::metrics::NAMES;
    match metric {
        Some(m) if !KNOWN.contains(&m) => Err(Error::Usage(format!(
            "--metric {m}: not a metric (known: {})",
            KNOWN.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// `kernel-host run MANIFEST --cv K`: per-fold scores, mean and spread.
pub async fn run_cv(manifest: &Path, cv: &CvArgs, json: bool) -> Result<(), Error> {
    check_metric(cv.metric.as_deref())?;
    let plan = plan_of(manifest)?;
    let sandbox = sandbox()?;
    let data = select::prepare(&sandbox, &plan, cv.cv, cv.seed).await?;
    let result = select::cross_validate(&sandbox, &plan, &data).await?;
    if json {
        let summaries: serde_json::Map<String, serde_json::Value> = result
            .summaries()
            .into_iter()
            .map(|(m, (mean, std))| (m.to_string(), serde_json::json!({"mean": mean, "std": std})))
            .collect();
        println!(
            "{}",
            super::json(&serde_json::json!({
                "pipeline": plan.name, "folds": cv.cv, "seed": cv.seed,
                "summary": summaries, "result": result,
            }))
        );
        return Ok(());
    }
    println!(
        "pipeline `{}`: {}-fold cross-validation of {} rows (seed {})",
        plan.name, cv.cv, data.x.rows, cv.seed
    );
    print_cv(&result);
    Ok(())
}

fn print_cv(result: &CvResult) {
    let metrics: Vec<&str> = result.summaries().keys().copied().collect();
    print!("{:<6}", "fold");
    for m in &metrics {
        print!(" {m:>18}");
    }
    println!(" {:>10} {:>10}", "fit", "predict");
    for (i, f) in result.folds.iter().enumerate() {
        print!("{:<6}", i + 1);
        for m in &metrics {
            print!(" {:>18.4}", f.scores.get(m).copied().unwrap_or(f64::NAN));
        }
        println!(
            " {:>10} {:>10}",
            super::format_duration(f.fit_time),
            super::format_duration(f.predict_time)
        );
    }
    print!("{:<6}", "mean");
    for m in &metrics {
        let (mean, std) = result.summary(m).unwrap_or((f64::NAN, f64::NAN));
        print!(" {:>18}", show(mean, std));
    }
    println!();
}

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host compare examples/penguins/pipeline.toml examples/penguins/mlp.toml --cv 5
  kernel-host compare examples/penguins/pipeline.toml --vary model.c=0.001,0.1,10 --json")]
pub struct CompareArgs {
    /// Manifests to compare (the first one's data is used for all); with --vary, one manifest.
    #[arg(required = true)]
    pub manifests: Vec<PathBuf>,
    /// One candidate per value: STEP.PARAM=V1,V2,...
    #[arg(long, value_name = "STEP.PARAM=V1,V2,...")]
    pub vary: Option<String>,
    #[command(flatten)]
    pub cv: CvArgs,
    /// Print JSON for tools instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page: the table and a chart of the candidates.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Do not add the scores to the run history (`kernel-host history`).
    #[arg(long)]
    pub no_history: bool,
}

pub async fn compare(args: CompareArgs) -> Result<(), Error> {
    check_metric(args.cv.metric.as_deref())?;
    let plans: Vec<Plan> = args
        .manifests
        .iter()
        .map(|m| plan_of(m))
        .collect::<Result<_, _>>()?;
    let candidates = compare::candidates(&args.manifests, plans, args.vary.as_deref())?;
    let sandbox = sandbox()?;
    let data = select::prepare(&sandbox, &candidates[0].plan, args.cv.cv, args.cv.seed).await?;
    let quiet = args.json;
    let comparison = compare::compare(
        &sandbox,
        &candidates,
        &data,
        args.cv.metric.as_deref(),
        &|row| {
            if !quiet {
                eprintln!("  scored {}", row.name);
            }
        },
    )
    .await;
    if let Some(path) = &args.html {
        // The recommended candidate's permutation importance, measured on
        // the same folds.
        let importance = match comparison.recommended {
            Some(i) => select::importance::importance(
                &sandbox,
                &candidates[i].plan,
                &data,
                3,
                Some(&comparison.metric),
            )
            .await
            .ok()
            .map(|(_, imp)| (candidates[i].name.clone(), imp)),
            None => None,
        };
        super::write_output(
            Some(path),
            &comparison_page(&comparison, importance.as_ref()),
        )?;
    }
    if args.json {
        println!(
            "{}",
            super::json(&serde_json::to_value(&comparison).unwrap_or_default())
        );
    } else {
        print_comparison(&comparison, data.x.rows);
    }
    if !args.no_history {
        let scored: Vec<super::history::Scored> = comparison
            .rows
            .iter()
            .zip(&candidates)
            .filter_map(|(row, candidate)| match &row.outcome {
                compare::Outcome::Scored(cv) => Some(super::history::Scored {
                    plan: &candidate.plan,
                    score: cv.summary(&comparison.metric)?.0,
                    fit_seconds: cv.fit_time().as_secs_f64(),
                    fuel: cv.fuel(),
                }),
                compare::Outcome::Failed(_) => None,
            })
            .collect();
        super::history::record_cv(
            "compare",
            &sandbox,
            &scored,
            &comparison.metric,
            data.x.rows,
            data.folds.len(),
        )
        .await;
    }
    if comparison.recommended.is_none() {
        return Err(Error::Usage(comparison.recommendation));
    }
    Ok(())
}

fn comparison_page(
    c: &Comparison,
    importance: Option<&(String, Vec<select::importance::Importance>)>,
) -> String {
    use kernel_host::viz::{bar_chart, escape, page};
    let bars: Vec<(String, Option<(f64, f64)>)> = c
        .rows
        .iter()
        .map(|r| {
            let value = match &r.outcome {
                Outcome::Scored(cv) => cv.summary(&c.metric),
                Outcome::Failed(_) => None,
            };
            (r.name.clone(), value)
        })
        .collect();
    let mut body = format!(
        "<h1>compare: {} candidates</h1>\n<p>{}-fold cross-validation on the same rows and folds.</p>\n<p><b>{}</b></p>\n{}",
        c.rows.len(),
        c.folds,
        escape(&c.recommendation),
        bar_chart(&c.metric, &bars, c.recommended)
    );
    body.push_str("<table>\n<tr><th>candidate</th><th>");
    body.push_str(&escape(&c.metric));
    body.push_str("</th><th>fit</th><th>predict</th><th>fuel/fold</th><th>peak memory</th><th>error</th></tr>\n");
    for (i, row) in c.rows.iter().enumerate() {
        let class = if Some(i) == c.recommended {
            " class=\"best\""
        } else {
            ""
        };
        match &row.outcome {
            Outcome::Scored(cv) => {
                let (m, s) = cv.summary(&c.metric).unwrap_or((f64::NAN, f64::NAN));
                body.push_str(&format!(
                    "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} MiB</td><td></td></tr>\n",
                    escape(&row.name),
                    show(m, s),
                    super::format_duration(cv.fit_time()),
                    super::format_duration(cv.predict_time()),
                    cv.fuel(),
                    cv.peak_memory() as f64 / 1048576.0
                ));
            }
            Outcome::Failed(e) => body.push_str(&format!(
                "<tr><td>{}</td><td>failed</td><td></td><td></td><td></td><td></td><td>{}</td></tr>\n",
                escape(&row.name),
                escape(e)
            )),
        }
    }
    body.push_str("</table>\n");
    if let Some((name, importances)) = importance {
        let bars: Vec<(String, Option<(f64, f64)>)> = importances
            .iter()
            .map(|i| (i.feature.clone(), Some((i.mean.max(0.0), i.std))))
            .collect();
        body.push_str(&format!(
            "<h2>permutation importance of {}</h2>\n<p>The drop of held-out {} when one feature is shuffled (3 shuffles per fold).</p>\n{}",
            escape(name),
            escape(&c.metric),
            kernel_host::viz::bar_chart("importance", &bars, None)
        ));
    }
    page("kernel-host compare", &body)
}

fn print_comparison(c: &Comparison, rows: u32) {
    println!(
        "{} candidates, {}-fold cross-validation on the same {rows} rows and folds; quality: {}\n",
        c.rows.len(),
        c.folds,
        c.metric
    );
    let width = c
        .rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "  {:<width$} {:>18} {:>10} {:>10} {:>15} {:>10} {:>10}",
        "candidate", c.metric, "fit", "predict", "fuel/fold", "peak mem", "kernels"
    );
    for (i, row) in c.rows.iter().enumerate() {
        let mark = if Some(i) == c.recommended { "*" } else { " " };
        match &row.outcome {
            Outcome::Scored(cv) => {
                let (mean, std) = cv.summary(&c.metric).unwrap_or((f64::NAN, f64::NAN));
                println!(
                    "{mark} {:<width$} {:>18} {:>10} {:>10} {:>15} {:>6.1} MiB {:>6} KiB",
                    row.name,
                    show(mean, std),
                    super::format_duration(cv.fit_time()),
                    super::format_duration(cv.predict_time()),
                    cv.fuel(),
                    cv.peak_memory() as f64 / 1048576.0,
                    row.kernel_bytes / 1024
                );
            }
            Outcome::Failed(e) => println!(
                "  {:<width$} failed: {}",
                row.name,
                e.lines().next().unwrap_or("")
            ),
        }
    }
    println!("\n{}", c.recommendation);
}

#[derive(Clone, clap::Args)]
#[command(
    after_help = "The search space is every bounded parameter the final step's kernel declares (seeds excepted), on a log scale where the range spans decades; --param narrows or adds (any step). Trial 0 is the manifest as written.

Examples:
  kernel-host tune examples/penguins/pipeline.toml --budget 60s
  kernel-host tune pipeline.toml --param model.c=log(1e-3,1e3) --trials 40 --jobs 2 --out best.toml --save best.khb"
)]
pub struct TuneArgs {
    /// The pipeline manifest.
    pub manifest: PathBuf,
    /// Stop starting trials after this long; running ones are cancelled at it (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub budget: Duration,
    /// Stop after this many trials.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Trials at once, each in its own sandboxes (1: reproducible for a seed).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Search STEP.NAME over log(a,b) | float(a,b) | int(a,b) | logint(a,b) | choice(x,y,...), inside its declared range.
    #[arg(long = "param", value_name = "STEP.NAME=RANGE")]
    pub params: Vec<String>,
    /// Random search instead of TPE.
    #[arg(long)]
    pub random: bool,
    /// Write the best manifest here (beside the original: its paths are relative to it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Refit the best manifest on all training rows and save the bundle here.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub cv: CvArgs,
    /// Print JSON for tools instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page: the trials over time and their table.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Do not add the scores to the run history (`kernel-host history`).
    #[arg(long)]
    pub no_history: bool,
}

pub async fn tune(args: TuneArgs) -> Result<(), Error> {
    check_metric(args.cv.metric.as_deref())?;
    let plan = plan_of(&args.manifest)?;
    if let Some(out) = &args.out
        && !tune::beside(out, &args.manifest)
    {
        return Err(Error::Usage(format!(
            "--out {}: write the tuned manifest beside {} (the paths in it are relative to its folder)",
            out.display(),
            args.manifest.display()
        )));
    }
    let sandbox = sandbox()?;
    let space = tune::space(&sandbox, &plan, &args.params).await?;
    let data = Arc::new(select::prepare(&sandbox, &plan, args.cv.cv, args.cv.seed).await?);
    let options = TuneOptions {
        budget: args.budget,
        trials: args.trials,
        jobs: args.jobs,
        seed: args.cv.seed,
        metric: args.cv.metric.clone(),
        random: args.random,
        startup: 8,
    };
    let bar = (!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let best_so_far = std::sync::Mutex::new(None::<f64>);
    let (rows, folds) = (data.x.rows, data.folds.len());
    let tuned = tune::tune(&sandbox, &plan, data, space, &options, &|trial| {
        if let Some(bar) = &bar {
            if let Some(score) = trial.score {
                let mut best = best_so_far.lock().unwrap_or_else(|p| p.into_inner());
                if best.is_none_or(|b| score > b) {
                    *best = Some(score);
                }
            }
            bar.set_message(format!(
                "trial {} done ({:.0}s of the budget), best so far {:.4}",
                trial.number,
                trial.at,
                best_so_far
                    .lock()
                    .map(|b| b.unwrap_or(f64::NAN))
                    .unwrap_or(f64::NAN)
            ));
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if !args.no_history
        && let (Some(best_plan), Some(best)) = (
            &tuned.best_plan,
            tuned
                .best
                .and_then(|b| tuned.trials.iter().find(|t| t.number == b)),
        )
        && let Some(score) = best.score
    {
        let scored = [super::history::Scored {
            plan: best_plan,
            score,
            fit_seconds: best.seconds / folds.max(1) as f64,
            fuel: 0,
        }];
        super::history::record_cv("tune", &sandbox, &scored, &tuned.metric, rows, folds).await;
    }
    if let Some(out) = &args.out {
        let text = tune::tuned_manifest(&args.manifest, &plan, &tuned)?;
        kernel_host::fsutil::write_atomic(out, text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    }
    if let (Some(save), Some(best)) = (&args.save, &tuned.best_plan) {
        let options = kernel_host::job::JobOptions {
            save: Some(save.clone()),
            predict: false,
        };
        kernel_host::job::run(
            &sandbox,
            Source::Plan(best.clone()),
            &options,
            &kernel_host::job::Quiet,
        )
        .await?;
    }
    if let Some(path) = &args.html {
        super::write_output(Some(path), &tuned_page(&tuned))?;
    }
    if args.json {
        println!(
            "{}",
            super::json(&serde_json::to_value(&tuned).unwrap_or_default())
        );
    } else {
        print_tuned(&tuned, &args);
    }
    if tuned.best.is_none() {
        return Err(Error::Usage(
            "no trial finished with a score within the budget; raise --budget or narrow the space"
                .into(),
        ));
    }
    Ok(())
}

fn tuned_page(t: &Tuned) -> String {
    use kernel_host::viz::{escape, page, trials_chart};
    let points: Vec<(f64, f64)> = t
        .trials
        .iter()
        .filter_map(|x| Some((x.at, x.score?)))
        .collect();
    let mut body = format!(
        "<h1>tune: {} trials</h1>\n{}",
        t.trials.len(),
        trials_chart(
            &t.metric,
            &points,
            kernel_host::select::metrics::higher_is_better(&t.metric)
        )
    );
    body.push_str("<table>\n<tr><th>trial</th><th>");
    body.push_str(&escape(&t.metric));
    body.push_str("</th><th>seconds</th><th>params</th></tr>\n");
    for trial in &t.trials {
        let class = if Some(trial.number) == t.best {
            " class=\"best\""
        } else {
            ""
        };
        let score = match (trial.score, trial.std) {
            (Some(m), Some(s)) => show(m, s),
            _ => format!("failed: {}", trial.error.as_deref().unwrap_or("")),
        };
        let params: Vec<String> = trial
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        body.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>\n",
            trial.number,
            escape(&score),
            trial.seconds,
            escape(&params.join(" "))
        ));
    }
    body.push_str("</table>\n");
    page("kernel-host tune", &body)
}

fn print_tuned(t: &Tuned, args: &TuneArgs) {
    println!(
        "{} over {} parameter(s), {}-fold cross-validation, seed {}: {} trials{}",
        if args.random { "random search" } else { "TPE" },
        t.space.len(),
        args.cv.cv,
        args.cv.seed,
        t.trials.len(),
        if t.cancelled > 0 {
            format!(" ({} cancelled at the budget)", t.cancelled)
        } else {
            String::new()
        }
    );
    for s in &t.space {
        println!("  {}.{} ~ {}", s.step, s.param, s.range);
    }
    println!();
    println!("  {:>5} {:>18} {:>8}  params", "trial", t.metric, "time");
    for trial in &t.trials {
        let mark = if Some(trial.number) == t.best {
            "*"
        } else {
            " "
        };
        let score = match (trial.score, trial.std) {
            (Some(m), Some(s)) => show(m, s),
            _ => "failed".into(),
        };
        let params: Vec<String> = trial
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{mark} {:>5} {:>18} {:>7.2}s  {}",
            trial.number,
            score,
            trial.seconds,
            params.join(" ")
        );
        if let Some(e) = &trial.error {
            println!("          {}", e.lines().next().unwrap_or(""));
        }
    }
    if let Some(best) = t.best.and_then(|b| t.trials.iter().find(|x| x.number == b)) {
        println!(
            "\nbest: trial {} with {} {:.4}{}{}",
            best.number,
            t.metric,
            best.score.unwrap_or(f64::NAN),
            args.out.as_ref().map_or(String::new(), |o| format!(
                "; manifest written to {}",
                o.display()
            )),
            args.save.as_ref().map_or(String::new(), |s| format!(
                "; bundle saved to {}",
                s.display()
            ))
        );
    }
}
