//! `kernel-host compare`: candidates scored on the same rows and folds,
//! with their costs, and a recommendation that says why.

use super::{CvResult, Dataset, cross_validate, metrics, show};
use crate::bindings::{Param, ParamValue};
use crate::{Error, Plan, Sandbox};

/// One candidate: a name for the table and its plan.
#[derive(Clone)]
pub struct Candidate {
    pub name: String,
    pub plan: Plan,
}

/// A candidate's row: its result, or why it failed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Bytes of the candidate's kernel components.
    pub kernel_bytes: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Scored(CvResult),
    Failed(String),
}

/// Everything `compare` found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    pub metric: String,
    pub folds: usize,
    pub rows: Vec<Row>,
    /// Index of the recommended row.
    pub recommended: Option<usize>,
    pub recommendation: String,
}

/// The candidates of `compare`: one per manifest (named by its file stem),
/// or, with `vary`, one per value of a parameter of the single manifest.
pub fn candidates(
    manifests: &[std::path::PathBuf],
    plans: Vec<Plan>,
    vary: Option<&str>,
) -> Result<Vec<Candidate>, Error> {
    match vary {
        Some(spec) => {
            if plans.len() != 1 {
                return Err(Error::Usage("--vary takes exactly one manifest".into()));
            }
            self::vary(&plans[0], spec)
        }
        None => {
            if plans.len() < 2 {
                return Err(Error::Usage(
                    "compare needs two manifests or more, or one with --vary STEP.PARAM=V1,V2,..."
                        .into(),
                ));
            }
            Ok(manifests
                .iter()
                .zip(plans)
                .map(|(path, plan)| Candidate {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    plan,
                })
                .collect())
        }
    }
}

/// `step.param=v1,v2,...` → one candidate per value.
pub fn vary(plan: &Plan, spec: &str) -> Result<Vec<Candidate>, Error> {
    let bad = || {
        Error::Usage(format!(
            "--vary `{spec}`: expected STEP.PARAM=V1,V2,... (e.g. model.c=0.1,1,10)"
        ))
    };
    let (target, values) = spec.split_once('=').ok_or_else(bad)?;
    let (step, param) = target.split_once('.').ok_or_else(bad)?;
    let values: Vec<&str> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(bad());
    }
    values
        .into_iter()
        .map(|v| {
            let mut plan = plan.clone();
            set_param(&mut plan, step, param, parse_value(v))?;
            Ok(Candidate {
                name: format!("{step}.{param}={v}"),
                plan,
            })
        })
        .collect()
}

/// A value as a manifest would type it: integer, float, bool, else text.
pub fn parse_value(text: &str) -> ParamValue {
    if let Ok(i) = text.parse::<i64>() {
        ParamValue::S64(i)
    } else if let Ok(f) = text.parse::<f64>() {
        ParamValue::F64(f)
    } else if let Ok(b) = text.parse::<bool>() {
        ParamValue::Bool(b)
    } else {
        ParamValue::String(text.to_string())
    }
}

/// Sets `param` of step `step` (replacing any value the manifest gave).
pub fn set_param(plan: &mut Plan, step: &str, param: &str, value: ParamValue) -> Result<(), Error> {
    let steps: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    let spec = plan
        .steps
        .iter_mut()
        .find(|s| s.id == step)
        .ok_or_else(|| {
            Error::Usage(format!(
                "`{}` has no step `{step}` (its steps: {})",
                plan.name,
                steps.join(", ")
            ))
        })?;
    spec.params.retain(|p| p.name != param);
    spec.params.push(Param {
        name: param.to_string(),
        value,
    });
    Ok(())
}

fn kernel_bytes(plan: &Plan) -> u64 {
    plan.steps
        .iter()
        .filter_map(|s| std::fs::metadata(&s.source).ok())
        .map(|m| m.len())
        .sum()
}

/// A candidate's row from its result (scored here or elsewhere).
pub fn row(candidate: &Candidate, result: Result<CvResult, String>) -> Row {
    Row {
        name: candidate.name.clone(),
        outcome: match result {
            Ok(cv) => Outcome::Scored(cv),
            Err(e) => Outcome::Failed(e),
        },
        kernel_bytes: kernel_bytes(&candidate.plan),
    }
}

/// Scores every candidate on `data` (a failing candidate is a row with its
/// error; the others go on) and recommends one.
pub async fn compare(
    sandbox: &Sandbox,
    candidates: &[Candidate],
    data: &Dataset,
    metric: Option<&str>,
    progress: &(dyn Fn(&Row) + Sync),
) -> Comparison {
    let mut rows = Vec::new();
    for candidate in candidates {
        let result = cross_validate(sandbox, &candidate.plan, data)
            .await
            .map_err(|e| crate::printable_lines(&e.to_string()).into_owned());
        let row = row(candidate, result);
        progress(&row);
        rows.push(row);
    }
    comparison(rows, data.folds.len(), metric)
}

/// The rows ranked by `metric` (by default the first scored row's kind's
/// primary metric), with the recommendation.
pub fn comparison(rows: Vec<Row>, folds: usize, metric: Option<&str>) -> Comparison {
    let metric = metric
        .map(str::to_string)
        .or_else(|| {
            rows.iter().find_map(|r| match &r.outcome {
                Outcome::Scored(cv) => metrics::primary(cv.kind).map(str::to_string),
                Outcome::Failed(_) => None,
            })
        })
        .unwrap_or_else(|| "accuracy".into());
    let (recommended, recommendation) = recommend(&rows, &metric);
    Comparison {
        metric,
        folds,
        rows,
        recommended,
        recommendation,
    }
}

/// Quality first; among the candidates within one standard deviation of
/// the best, the one that burns the least fuel.
pub fn recommend(rows: &[Row], metric: &str) -> (Option<usize>, String) {
    let higher = metrics::higher_is_better(metric);
    let scored: Vec<(usize, f64, f64, u64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.outcome {
            Outcome::Scored(cv) => {
                let (m, s) = cv.summary(metric)?;
                m.is_finite().then_some((i, m, s, cv.fuel()))
            }
            Outcome::Failed(_) => None,
        })
        .collect();
    let better = |a: f64, b: f64| if higher { a > b } else { a < b };
    let Some(&(best, best_mean, best_std, best_fuel)) = scored
        .iter()
        .reduce(|a, b| if better(b.1, a.1) { b } else { a })
    else {
        return (
            None,
            format!("no candidate could be scored by {metric}: see the errors above"),
        );
    };
    let cheapest = scored
        .iter()
        .filter(|c| (c.1 - best_mean).abs() <= best_std)
        .min_by_key(|c| c.3)
        .copied()
        .filter(|c| c.0 != best && c.3 < best_fuel);
    match cheapest {
        Some((i, mean, std, fuel)) => (
            Some(i),
            format!(
                "recommended: {} — its {metric} {} is within one standard deviation of the best \
                 ({}: {}) and it uses {:.1}× less fuel",
                rows[i].name,
                show(mean, std),
                rows[best].name,
                show(best_mean, best_std),
                best_fuel as f64 / fuel.max(1) as f64
            ),
        ),
        None => {
            let runner_up = scored
                .iter()
                .filter(|c| c.0 != best)
                .reduce(|a, b| if better(b.1, a.1) { b } else { a });
            (
                Some(best),
                format!(
                    "recommended: {} — best {metric} {}{}",
                    rows[best].name,
                    show(best_mean, best_std),
                    runner_up.map_or(String::new(), |r| format!(
                        " (next: {} {})",
                        rows[r.0].name,
                        show(r.1, r.2)
                    ))
                ),
            )
        }
    }
}
