//! `kernel-host tune`: TPE over the parameters the kernels declare, each
//! trial cross-validated in fresh sandboxes, within a time budget.

use super::tpe::{Dimension, Tpe, Value, spans_decades};
use super::{CvResult, Dataset, compare::set_param, cross_validate, metrics};
use crate::bindings::{ParamType, ParamValue};
use crate::{Error, Pipeline, Plan, Sandbox};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One searched parameter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Searched {
    pub step: String,
    pub param: String,
    #[serde(skip)]
    pub dimension: Dimension,
    /// The values of a choice dimension, by index.
    #[serde(skip)]
    pub choices: Vec<ParamValue>,
    /// How it is searched, e.g. `log(0.001, 1000)`.
    pub range: String,
    /// The kernel's default.
    #[serde(skip)]
    pub default: ParamValue,
}

impl Searched {
    /// `value` as a point of this dimension, when it lies in it.
    fn point(&self, value: &ParamValue) -> Option<Value> {
        match (&self.dimension, value) {
            (Dimension::Float { low, high, .. }, ParamValue::F64(x)) => {
                (low..=high).contains(&x).then_some(Value::Float(*x))
            }
            (Dimension::Float { low, high, .. }, ParamValue::S64(i)) => (low..=high)
                .contains(&&(*i as f64))
                .then_some(Value::Float(*i as f64)),
            (Dimension::Int { low, high, .. }, ParamValue::S64(i)) => {
                (low..=high).contains(&i).then_some(Value::Int(*i))
            }
            (Dimension::Choice(_), v) => {
                self.choices.iter().position(|c| c == v).map(Value::Choice)
            }
            _ => None,
        }
    }

    fn value(&self, v: &Value) -> ParamValue {
        match *v {
            Value::Float(x) => ParamValue::F64(x),
            Value::Int(i) => ParamValue::S64(i),
            Value::Choice(c) => self
                .choices
                .get(c)
                .cloned()
                .unwrap_or(ParamValue::Bool(false)),
        }
    }
}

fn describe(dimension: &Dimension, choices: &[ParamValue]) -> String {
    match dimension {
        Dimension::Float { low, high, log } => {
            format!("{}({low}, {high})", if *log { "log" } else { "float" })
        }
        Dimension::Int { low, high, log } => {
            format!("{}({low}, {high})", if *log { "logint" } else { "int" })
        }
        Dimension::Choice(_) => format!(
            "choice({})",
            choices
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Parameters that pick a random stream rather than a model: never tuned
/// unless `--param` asks.
fn is_seed(name: &str) -> bool {
    name == "seed" || name == "random_state" || name.ends_with("_seed")
}

/// `log(a,b)`, `float(a,b)`, `int(a,b)`, `logint(a,b)`, `choice(x,y,...)`.
fn parse_range(text: &str, declared: &ParamType) -> Result<(Dimension, Vec<ParamValue>), String> {
    let (kind, rest) = text.split_once('(').ok_or_else(|| {
        format!("`{text}` is not log(a,b), float(a,b), int(a,b), logint(a,b) or choice(x,...)")
    })?;
    let args: Vec<&str> = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("`{text}` lacks its closing `)`"))?
        .split(',')
        .map(str::trim)
        .collect();
    let pair = |args: &[&str]| -> Result<(f64, f64), String> {
        match args {
            [a, b] => {
                let (a, b) = (
                    a.parse::<f64>()
                        .map_err(|_| format!("`{a}` is not a number"))?,
                    b.parse::<f64>()
                        .map_err(|_| format!("`{b}` is not a number"))?,
                );
                if a < b && a.is_finite() && b.is_finite() {
                    Ok((a, b))
                } else {
                    Err(format!("`{text}`: the low end must be below the high end"))
                }
            }
            _ => Err(format!("`{text}` needs two bounds")),
        }
    };
    let inside = |lo: f64, hi: f64, min: Option<f64>, max: Option<f64>| -> Result<(), String> {
        if min.is_some_and(|m| lo < m) || max.is_some_and(|m| hi > m) {
            Err(format!(
                "`{text}` leaves the declared range [{}, {}]",
                min.map_or("-inf".into(), |m| m.to_string()),
                max.map_or("inf".into(), |m| m.to_string())
            ))
        } else {
            Ok(())
        }
    };
    match (kind, declared) {
        ("log" | "float", ParamType::F64((min, max))) => {
            let (lo, hi) = pair(&args)?;
            inside(lo, hi, *min, *max)?;
            if kind == "log" && lo <= 0.0 {
                return Err(format!("`{text}`: a log range must be positive"));
            }
            Ok((
                Dimension::Float {
                    low: lo,
                    high: hi,
                    log: kind == "log",
                },
                Vec::new(),
            ))
        }
        ("int" | "logint", ParamType::S64((min, max))) => {
            let (lo, hi) = pair(&args)?;
            inside(lo, hi, min.map(|m| m as f64), max.map(|m| m as f64))?;
            if lo.fract() != 0.0 || hi.fract() != 0.0 || (kind == "logint" && lo < 1.0) {
                return Err(format!("`{text}`: integer bounds (≥ 1 on a log scale)"));
            }
            Ok((
                Dimension::Int {
                    low: lo as i64,
                    high: hi as i64,
                    log: kind == "logint",
                },
                Vec::new(),
            ))
        }
        ("choice", ParamType::Choice(options)) => {
            let values: Vec<ParamValue> = args
                .iter()
                .map(|a| ParamValue::String(a.to_string()))
                .collect();
            if let Some(bad) = args.iter().find(|a| !options.iter().any(|o| o == *a)) {
                return Err(format!("`{bad}` is not one of {}", options.join(", ")));
            }
            Ok((Dimension::Choice(values.len()), values))
        }
        ("choice", ParamType::Bool) => {
            let values = args
                .iter()
                .map(|a| {
                    a.parse::<bool>()
                        .map(ParamValue::Bool)
                        .map_err(|_| format!("`{a}` is not true or false"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((Dimension::Choice(values.len()), values))
        }
        (_, declared) => Err(format!(
            "`{text}` does not fit the parameter's declared type ({})",
            match declared {
                ParamType::F64(_) => "f64: use log(a,b) or float(a,b)",
                ParamType::S64(_) => "s64: use int(a,b) or logint(a,b)",
                ParamType::Bool => "bool: use choice(true,false)",
                ParamType::Choice(_) => "choice: use choice(x,y,...)",
                ParamType::Text => "text: not searchable",
            }
        )),
    }
}

/// The default dimension of a declared parameter, when it has one.
fn declared_dimension(kind: &ParamType) -> Option<(Dimension, Vec<ParamValue>)> {
    match kind {
        ParamType::F64((Some(lo), Some(hi))) if lo < hi && lo.is_finite() && hi.is_finite() => {
            Some((
                Dimension::Float {
                    low: *lo,
                    high: *hi,
                    log: spans_decades(*lo, *hi),
                },
                Vec::new(),
            ))
        }
        ParamType::S64((Some(lo), Some(hi))) if lo < hi => Some((
            Dimension::Int {
                low: *lo,
                high: *hi,
                log: *lo >= 1 && spans_decades(*lo as f64, *hi as f64),
            },
            Vec::new(),
        )),
        ParamType::Bool => Some((
            Dimension::Choice(2),
            vec![ParamValue::Bool(false), ParamValue::Bool(true)],
        )),
        ParamType::Choice(options) if options.len() > 1 => Some((
            Dimension::Choice(options.len()),
            options.iter().cloned().map(ParamValue::String).collect(),
        )),
        _ => None,
    }
}

/// The search space: every declared, bounded, non-seed parameter of the
/// final step, then `--param STEP.NAME=RANGE` overrides (any step; a range
/// must lie inside the declared one).
pub async fn space(
    sandbox: &Sandbox,
    plan: &Plan,
    overrides: &[String],
) -> Result<Vec<Searched>, Error> {
    let pipeline = Pipeline::load(sandbox, plan.clone()).await?;
    let mut out: Vec<Searched> = Vec::new();
    if let Some(last) = pipeline.steps().last() {
        for spec in &last.component.info().params {
            if is_seed(&spec.name) {
                continue;
            }
            if let Some((dimension, choices)) = declared_dimension(&spec.kind) {
                out.push(Searched {
                    step: last.spec.id.clone(),
                    param: spec.name.clone(),
                    range: describe(&dimension, &choices),
                    dimension,
                    choices,
                    default: spec.default.clone(),
                });
            }
        }
    }
    for text in overrides {
        let usage = |m: String| Error::Usage(format!("--param `{text}`: {m}"));
        let (target, range) = text
            .split_once('=')
            .ok_or_else(|| usage("expected STEP.NAME=RANGE, e.g. model.c=log(1e-3,1e3)".into()))?;
        let (step_id, name) = target
            .split_once('.')
            .ok_or_else(|| usage("expected STEP.NAME before `=`".into()))?;
        let step = pipeline
            .steps()
            .iter()
            .find(|s| s.spec.id == step_id)
            .ok_or_else(|| {
                usage(format!(
                    "no step `{step_id}` (steps: {})",
                    pipeline
                        .steps()
                        .iter()
                        .map(|s| s.spec.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let info = step.component.info();
        let spec = info.param(name).map_err(usage)?;
        let (dimension, choices) = parse_range(range.trim(), &spec.kind).map_err(usage)?;
        out.retain(|s| !(s.step == step_id && s.param == name));
        out.push(Searched {
            step: step_id.to_string(),
            param: name.to_string(),
            range: describe(&dimension, &choices),
            dimension,
            choices,
            default: spec.default.clone(),
        });
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "nothing to tune: the final step declares no bounded parameter; name some with \
             --param STEP.NAME=RANGE"
                .into(),
        ));
    }
    Ok(out)
}

/// How to search.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    pub budget: Duration,
    pub trials: Option<usize>,
    pub jobs: usize,
    pub seed: u64,
    pub metric: Option<String>,
    /// Random search instead of TPE (for the benchmark).
    pub random: bool,
    /// Random trials before TPE takes over.
    pub startup: usize,
}

/// One trial.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Trial {
    pub number: usize,
    /// `step.param` → value; trial 0 is the manifest as written.
    pub params: Vec<(String, String)>,
    pub score: Option<f64>,
    pub std: Option<f64>,
    pub error: Option<String>,
    pub seconds: f64,
    /// Seconds since the search started, at the end of the trial.
    pub at: f64,
}

/// What the search found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tuned {
    pub metric: String,
    pub space: Vec<Searched>,
    pub trials: Vec<Trial>,
    pub best: Option<usize>,
    /// The best trial's plan.
    #[serde(skip)]
    pub best_plan: Option<Plan>,
    /// Trials cancelled at the budget.
    pub cancelled: usize,
}

/// A trial to run: its number, its plan and `step.param` → value.
pub struct Asked {
    pub number: usize,
    pub plan: Plan,
    pub params: Vec<(String, String)>,
}

/// The search as ask and tell: [`Search::ask`] gives the next trial's plan,
/// [`Search::tell`] its result, whoever ran it (this process's sandbox in
/// [`tune`], or a Ray task through the Python package).
pub struct Search {
    plan: Plan,
    space: Vec<Searched>,
    dims: Vec<Dimension>,
    sampler: Tpe,
    history: Vec<(Vec<Value>, f64)>,
    trials: Vec<Trial>,
    plans: Vec<Plan>,
    points: Vec<Option<Vec<Value>>>,
    metric: Option<String>,
    limit: usize,
    started: Instant,
}

impl Search {
    pub fn new(plan: &Plan, space: Vec<Searched>, options: &TuneOptions) -> Search {
        Search {
            plan: plan.clone(),
            dims: space.iter().map(|s| s.dimension.clone()).collect(),
            space,
            sampler: if options.random {
                Tpe::random(options.seed)
            } else {
                Tpe::new(options.seed, options.startup)
            },
            history: Vec::new(),
            trials: Vec::new(),
            plans: Vec::new(),
            points: Vec::new(),
            metric: options.metric.clone(),
            limit: options.trials.unwrap_or(usize::MAX),
            started: Instant::now(),
        }
    }

    /// The searched parameters.
    pub fn space(&self) -> &[Searched] {
        &self.space
    }

    /// Trials asked for so far (told or not).
    pub fn asked(&self) -> usize {
        self.plans.len()
    }

    /// The next trial: its number, plan and `step.param` → value, or `None`
    /// once the trial limit is reached. Trial 0 is the manifest as written
    /// (so the search never reports worse than it, and TPE learns from it);
    /// the sampler sees every trial told so far.
    pub fn ask(&mut self) -> Result<Option<Asked>, Error> {
        let number = self.plans.len();
        if number >= self.limit {
            return Ok(None);
        }
        let (trial_plan, point, shown) = if number == 0 {
            let values: Vec<ParamValue> = self
                .space
                .iter()
                .map(|s| {
                    self.plan
                        .steps
                        .iter()
                        .find(|k| k.id == s.step)
                        .and_then(|k| k.params.iter().find(|p| p.name == s.param))
                        .map_or_else(|| s.default.clone(), |p| p.value.clone())
                })
                .collect();
            let shown = self
                .space
                .iter()
                .zip(&values)
                .map(|(s, v)| (format!("{}.{}", s.step, s.param), v.to_string()))
                .collect();
            let point: Option<Vec<Value>> = self
                .space
                .iter()
                .zip(&values)
                .map(|(s, v)| s.point(v))
                .collect();
            (self.plan.clone(), point, shown)
        } else {
            let point = self.sampler.suggest(&self.dims, &self.history);
            let mut p = self.plan.clone();
            let mut shown = Vec::new();
            for (s, v) in self.space.iter().zip(&point) {
                let value = s.value(v);
                shown.push((format!("{}.{}", s.step, s.param), value.to_string()));
                set_param(&mut p, &s.step, &s.param, value)?;
            }
            (p, Some(point), shown)
        };
        self.trials.push(Trial {
            number,
            params: shown.clone(),
            score: None,
            std: None,
            error: None,
            seconds: 0.0,
            at: 0.0,
        });
        self.plans.push(trial_plan.clone());
        self.points.push(point);
        Ok(Some(Asked {
            number,
            plan: trial_plan,
            params: shown,
        }))
    }

    /// Records trial `number`'s cross-validated result (or why it failed)
    /// and what it took; the next [`Search::ask`] learns from it. A number
    /// never asked for, or told twice, is ignored (`None`).
    pub fn tell(
        &mut self,
        number: usize,
        result: Result<CvResult, String>,
        took: Duration,
    ) -> Option<&Trial> {
        let trial = self.trials.get_mut(number)?;
        if trial.score.is_some() || trial.error.is_some() {
            return None;
        }
        trial.seconds = took.as_secs_f64();
        trial.at = self.started.elapsed().as_secs_f64();
        let loss = match result {
            Ok(cv) => {
                let name = self
                    .metric
                    .get_or_insert_with(|| {
                        metrics::primary(cv.kind).unwrap_or("accuracy").to_string()
                    })
                    .clone();
                match cv.summary(&name) {
                    Some((mean, std)) if mean.is_finite() => {
                        trial.score = Some(mean);
                        trial.std = Some(std);
                        if metrics::higher_is_better(&name) {
                            -mean
                        } else {
                            mean
                        }
                    }
                    _ => {
                        trial.error = Some(format!("the folds give no {name}"));
                        f64::INFINITY
                    }
                }
            }
            Err(e) => {
                trial.error = Some(e);
                f64::INFINITY
            }
        };
        if let Some(point) = self.points[number].clone() {
            self.history.push((point, loss));
        }
        Some(&self.trials[number])
    }

    /// What the search found; trials asked but never told count as
    /// `cancelled`.
    pub fn finish(mut self) -> Tuned {
        let before = self.trials.len();
        self.trials
            .retain(|t| t.score.is_some() || t.error.is_some());
        let cancelled = before - self.trials.len();
        let metric = self.metric.unwrap_or_else(|| "accuracy".into());
        let higher = metrics::higher_is_better(&metric);
        let best = self
            .trials
            .iter()
            .filter(|t| t.score.is_some())
            .reduce(|a, b| {
                let (x, y) = (a.score.unwrap_or(f64::NAN), b.score.unwrap_or(f64::NAN));
                if (higher && y > x) || (!higher && y < x) {
                    b
                } else {
                    a
                }
            })
            .map(|t| t.number);
        let best_plan = best.map(|n| self.plans[n].clone());
        Tuned {
            metric,
            space: self.space,
            trials: self.trials,
            best,
            best_plan,
            cancelled,
        }
    }
}

/// Runs the search in this process: `options.jobs` trials at a time, each
/// cross-validated in fresh sandboxes, until the trial limit or the budget
/// (trials still running then are cancelled).
pub async fn tune(
    sandbox: &Sandbox,
    plan: &Plan,
    data: Arc<Dataset>,
    space: Vec<Searched>,
    options: &TuneOptions,
    progress: &(dyn Fn(&Trial) + Sync),
) -> Result<Tuned, Error> {
    let deadline = tokio::time::Instant::now() + options.budget;
    let mut search = Search::new(plan, space, options);
    let mut running = tokio::task::JoinSet::new();
    let jobs = options.jobs.max(1);
    loop {
        // Start trials while there are free slots, budget and trials left.
        while running.len() < jobs && tokio::time::Instant::now() < deadline {
            let Some(Asked {
                number,
                plan: trial_plan,
                ..
            }) = search.ask()?
            else {
                break;
            };
            let (sandbox, data) = (sandbox.clone(), data.clone());
            running.spawn(async move {
                let t = Instant::now();
                let result = cross_validate(&sandbox, &trial_plan, &data).await;
                (number, result, t.elapsed())
            });
            if jobs == 1 {
                break;
            }
        }
        if running.is_empty() {
            break;
        }
        // Wait for the next trial to finish, or the budget to run out.
        let done = tokio::select! {
            done = running.join_next() => done,
            () = tokio::time::sleep_until(deadline) => None,
        };
        let Some(done) = done else {
            running.abort_all();
            while running.join_next().await.is_some() {}
            break;
        };
        let Ok((number, result, took)) = done else {
            return Err(Error::Internal("a trial stopped unexpectedly".into()));
        };
        let result = result.map_err(|e| crate::printable_lines(&e.to_string()).into_owned());
        if let Some(trial) = search.tell(number, result, took) {
            progress(trial);
        }
    }
    Ok(search.finish())
}

/// Whether `out` would sit in the same folder as `manifest` (a tuned
/// manifest must: the paths in it are relative to its folder).
pub fn beside(out: &std::path::Path, manifest: &std::path::Path) -> bool {
    let dir = |p: &std::path::Path| {
        std::fs::canonicalize(
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new(".")),
        )
        .ok()
    };
    dir(out) == dir(manifest)
}

/// The manifest at `manifest` with the best trial's values written into
/// `[kernels.*] params`: the text to save as the tuned manifest.
pub fn tuned_manifest(
    manifest: &std::path::Path,
    plan: &Plan,
    tuned: &Tuned,
) -> Result<String, Error> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::Io {
        context: format!("reading {}", manifest.display()),
        source: e,
    })?;
    let mut doc: toml::Table = toml::from_str(&text)
        .map_err(|e| Error::Internal(format!("re-reading the manifest: {e}")))?;
    let Some(best) = tuned
        .best
        .and_then(|b| tuned.trials.iter().find(|t| t.number == b))
    else {
        return Err(Error::Usage("no trial succeeded: nothing to write".into()));
    };
    let Some(best_plan) = &tuned.best_plan else {
        return Err(Error::Usage("no trial succeeded: nothing to write".into()));
    };
    for searched in &tuned.space {
        let Some(entry) = plan
            .steps
            .iter()
            .find(|s| s.id == searched.step)
            .map(|s| s.kernel.clone())
        else {
            continue;
        };
        let Some(value) = best_plan
            .steps
            .iter()
            .find(|s| s.id == searched.step)
            .and_then(|s| s.params.iter().find(|p| p.name == searched.param))
            .map(|p| &p.value)
        else {
            continue;
        };
        let kernels = doc
            .entry("kernels")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        let Some(table) = kernels
            .as_table_mut()
            .and_then(|k| k.get_mut(&entry))
            .and_then(toml::Value::as_table_mut)
        else {
            continue;
        };
        let params = table
            .entry("params")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(params) = params.as_table_mut() {
            params.insert(
                searched.param.clone(),
                match value {
                    ParamValue::F64(x) => toml::Value::Float(*x),
                    ParamValue::S64(i) => toml::Value::Integer(*i),
                    ParamValue::Bool(b) => toml::Value::Boolean(*b),
                    ParamValue::String(s) => toml::Value::String(s.clone()),
                },
            );
        }
    }
    let header = format!(
        "# Tuned by `kernel-host tune` from {}: trial {} of {}, {} {:.4}.\n",
        manifest.display(),
        best.number,
        tuned.trials.len(),
        tuned.metric,
        best.score.unwrap_or(f64::NAN)
    );
    let body =
        toml::to_string(&doc).map_err(|e| Error::Internal(format!("writing the manifest: {e}")))?;
    Ok(header + &body)
}
