//! Model selection whose trials run elsewhere (Ray tasks): `Study` (tune,
//! ask/tell), `Candidates` (compare), and `evaluate`, the worker's side.
//! The search and the scoring are the host's own (`kernel_host::select`),
//! so a trial scored by a Ray task is the trial `kernel-host tune` scores.

use crate::{UsageError, batch_of, frame_of, runtime, sandbox, to_py};
use kernel_host::Plan;
use kernel_host::bindings::Frame;
use kernel_host::select::compare::{self, Candidate};
use kernel_host::select::tune::{self, Search, TuneOptions, Tuned};
use kernel_host::select::{CvResult, Dataset, metrics, remote};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn registry() -> kernel_host::registry::Registry {
    kernel_host::registry::Registry::open(kernel_host::registry::Registry::default_dir())
}

fn plan_at(path: &Path) -> PyResult<Plan> {
    Plan::load_with(path, &registry()).map_err(|e| to_py(e.into()))
}

fn check_metric(metric: Option<&str>) -> PyResult<()> {
    match metric {
        Some(m) if metrics::known(m).is_none() => Err(UsageError::new_err(format!(
            "metric {m:?} is not one the host computes (known: {})",
            metrics::NAMES.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// What every trial needs, sent once: `(kernels by sha256, X, y, folds,
/// seed)`.
fn shipment<'py>(
    py: Python<'py>,
    data: &Dataset,
    kernels: &BTreeMap<String, Vec<u8>>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    let k = PyDict::new(py);
    for (sha, bytes) in kernels {
        k.set_item(sha, PyBytes::new(py, bytes))?;
    }
    let x = batch_of(py, &data.x)?;
    let y = match &data.y {
        Some(y) => Some(batch_of(
            py,
            &Frame {
                rows: data.x.rows,
                columns: vec![y.clone()],
            },
        )?),
        None => None,
    };
    (k, x, y, data.folds.clone(), data.seed).into_pyobject(py)
}

fn result_of(result: Option<&str>, error: Option<String>) -> PyResult<Result<CvResult, String>> {
    match (result, error) {
        (_, Some(e)) => Ok(Err(e)),
        (Some(json), None) => serde_json::from_str(json)
            .map(Ok)
            .map_err(|e| UsageError::new_err(format!("not a result from evaluate() ({e})"))),
        (None, None) => Err(UsageError::new_err("give a result or an error")),
    }
}

/// Scores `plan_json` (a trial's plan, from `Study.ask` or
/// `Candidates.candidates`) by cross-validation on the rows and folds of
/// a shipment, in this process's sandbox: the worker's side of a remote
/// trial. Returns the result as JSON text for `tell`; a kernel failure
/// raises its typed exception.
#[pyfunction]
#[pyo3(signature = (plan_json, kernels, x, y, folds, seed))]
pub fn evaluate(
    py: Python<'_>,
    plan_json: &str,
    kernels: BTreeMap<String, Vec<u8>>,
    x: Bound<'_, PyAny>,
    y: Option<Bound<'_, PyAny>>,
    mut folds: Vec<Vec<usize>>,
    seed: u64,
) -> PyResult<String> {
    let x = frame_of(&x, "X")?;
    let y = match y {
        None => None,
        Some(y) => {
            let mut frame = frame_of(&y, "y")?;
            if frame.columns.len() != 1 || frame.rows != x.rows {
                return Err(UsageError::new_err("y must be one column, as long as X"));
            }
            frame.columns.pop()
        }
    };
    for fold in &mut folds {
        fold.sort_unstable();
        fold.dedup();
        if fold.iter().any(|&r| r >= x.rows as usize) || fold.is_empty() {
            return Err(UsageError::new_err(
                "folds must be non-empty lists of row numbers of X",
            ));
        }
    }
    let plan = remote::plan_of(plan_json).map_err(to_py)?;
    let rt = runtime()?;
    let sandbox = sandbox()?;
    py.detach(|| {
        let plan = remote::localize(plan, &kernels, &remote::kernel_dir()?)?;
        let data = Dataset { x, y, folds, seed };
        let cv = rt.block_on(kernel_host::select::cross_validate(&sandbox, &plan, &data))?;
        serde_json::to_string(&cv)
            .map_err(|e| kernel_host::Error::Internal(format!("writing the result: {e}")))
    })
    .map_err(to_py)
}

/// `(number, plan_json, {step.param: value})`.
type AskedTrial = (usize, String, BTreeMap<String, String>);

struct StudyState {
    search: Option<Search>,
    tuned: Option<Tuned>,
}

/// `kernel-host tune` as ask and tell: the same space, TPE and trial 0,
/// with the trials run wherever the caller likes (`kernel_host.ray.tune`).
#[pyclass(module = "kernel_host._native")]
pub struct Study {
    manifest: PathBuf,
    plan: Plan,
    data: Arc<Dataset>,
    kernels: BTreeMap<String, Vec<u8>>,
    state: Mutex<StudyState>,
}

#[pymethods]
impl Study {
    #[new]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    #[pyo3(signature = (manifest, params=Vec::new(), cv=5, seed=0, metric=None, trials=None, random=false))]
    fn new(
        py: Python<'_>,
        manifest: PathBuf,
        params: Vec<String>,
        cv: usize,
        seed: u64,
        metric: Option<String>,
        trials: Option<usize>,
        random: bool,
    ) -> PyResult<Study> {
        check_metric(metric.as_deref())?;
        let mut plan = plan_at(&manifest)?;
        let kernels = remote::kernels(std::slice::from_mut(&mut plan)).map_err(to_py)?;
        let rt = runtime()?;
        let sandbox = sandbox()?;
        let (space, data) = py
            .detach(|| {
                rt.block_on(async {
                    let space = tune::space(&sandbox, &plan, &params).await?;
                    let data = kernel_host::select::prepare(&sandbox, &plan, cv, seed).await?;
                    Ok::<_, kernel_host::Error>((space, data))
                })
            })
            .map_err(to_py)?;
        let options = TuneOptions {
            budget: Duration::MAX,
            trials,
            jobs: 1,
            seed,
            metric,
            random,
            startup: 8,
        };
        let search = Search::new(&plan, space, &options);
        Ok(Study {
            manifest,
            plan,
            data: Arc::new(data),
            kernels,
            state: Mutex::new(StudyState {
                search: Some(search),
                tuned: None,
            }),
        })
    }

    /// `[(step.param, range)]`: what is searched.
    fn space(&self) -> Vec<(String, String)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let space = match (&state.search, &state.tuned) {
            (Some(s), _) => s.space(),
            (None, Some(t)) => &t.space,
            (None, None) => &[],
        };
        space
            .iter()
            .map(|s| (format!("{}.{}", s.step, s.param), s.range.clone()))
            .collect()
    }

    /// `(kernels, X, y, folds, seed)`: what `evaluate` needs besides the
    /// trial's plan; send it once (`ray.put`).
    fn shipment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        shipment(py, &self.data, &self.kernels)
    }

    /// The next trial as `(number, plan_json, {step.param: value})`, or
    /// None once `trials` were asked for.
    fn ask(&self) -> PyResult<Option<AskedTrial>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let search = state
            .search
            .as_mut()
            .ok_or_else(|| UsageError::new_err("the study is finished"))?;
        let Some(asked) = search.ask().map_err(to_py)? else {
            return Ok(None);
        };
        let json = remote::plan_json(&asked.plan).map_err(to_py)?;
        Ok(Some((
            asked.number,
            json,
            asked.params.into_iter().collect(),
        )))
    }

    /// Trial `number`'s result (JSON text from `evaluate`) or its error,
    /// and the seconds it took. Returns `(score, error)` as recorded.
    #[pyo3(signature = (number, result=None, error=None, seconds=0.0))]
    fn tell(
        &self,
        number: usize,
        result: Option<&str>,
        error: Option<String>,
        seconds: f64,
    ) -> PyResult<(Option<f64>, Option<String>)> {
        let result = result_of(result, error)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let search = state
            .search
            .as_mut()
            .ok_or_else(|| UsageError::new_err("the study is finished"))?;
        let took = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default();
        let trial = search.tell(number, result, took).ok_or_else(|| {
            UsageError::new_err(format!(
                "trial {number} was not asked for, or was told already"
            ))
        })?;
        Ok((trial.score, trial.error.clone()))
    }

    /// Ends the search; the same JSON document as `kernel-host tune --json`.
    fn finish(&self) -> PyResult<String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(search) = state.search.take() {
            state.tuned = Some(search.finish());
        }
        let tuned = state
            .tuned
            .as_ref()
            .ok_or_else(|| UsageError::new_err("nothing to finish"))?;
        serde_json::to_string(tuned)
            .map_err(|e| crate::HostError::new_err(format!("writing the result: {e}")))
    }

    /// Writes the manifest with the best trial's values (beside the
    /// original: its paths are relative to its folder), as `tune --out`.
    fn write_manifest(&self, path: PathBuf) -> PyResult<()> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let tuned = state
            .tuned
            .as_ref()
            .ok_or_else(|| UsageError::new_err("call finish() first"))?;
        if !tune::beside(&path, &self.manifest) {
            return Err(UsageError::new_err(format!(
                "write the tuned manifest beside {} (the paths in it are relative to its folder), not to {}",
                self.manifest.display(),
                path.display()
            )));
        }
        let text = tune::tuned_manifest(&self.manifest, &self.plan, tuned).map_err(to_py)?;
        kernel_host::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| {
            to_py(kernel_host::Error::io(
                format!("writing {}", path.display()),
                e,
            ))
        })
    }
}

/// `kernel-host compare` with the candidates scored wherever the caller
/// likes: the same candidates, rows, folds and recommendation.
#[pyclass(module = "kernel_host._native")]
pub struct Candidates {
    candidates: Vec<Candidate>,
    data: Dataset,
    kernels: BTreeMap<String, Vec<u8>>,
    metric: Option<String>,
}

#[pymethods]
impl Candidates {
    #[new]
    #[pyo3(signature = (manifests, vary=None, cv=5, seed=0, metric=None))]
    fn new(
        py: Python<'_>,
        manifests: Vec<PathBuf>,
        vary: Option<String>,
        cv: usize,
        seed: u64,
        metric: Option<String>,
    ) -> PyResult<Candidates> {
        check_metric(metric.as_deref())?;
        let plans = manifests
            .iter()
            .map(|m| plan_at(m))
            .collect::<PyResult<Vec<_>>>()?;
        let mut candidates =
            compare::candidates(&manifests, plans, vary.as_deref()).map_err(to_py)?;
        let mut plans: Vec<Plan> = candidates.iter().map(|c| c.plan.clone()).collect();
        let kernels = remote::kernels(&mut plans).map_err(to_py)?;
        for (c, p) in candidates.iter_mut().zip(plans) {
            c.plan = p;
        }
        let rt = runtime()?;
        let sandbox = sandbox()?;
        let data = py
            .detach(|| {
                rt.block_on(kernel_host::select::prepare(
                    &sandbox,
                    &candidates[0].plan,
                    cv,
                    seed,
                ))
            })
            .map_err(to_py)?;
        Ok(Candidates {
            candidates,
            data,
            kernels,
            metric,
        })
    }

    /// `(kernels, X, y, folds, seed)`, as `Study.shipment`.
    fn shipment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        shipment(py, &self.data, &self.kernels)
    }

    /// `[(name, plan_json)]`, in the table's order.
    fn candidates(&self) -> PyResult<Vec<(String, String)>> {
        self.candidates
            .iter()
            .map(|c| Ok((c.name.clone(), remote::plan_json(&c.plan).map_err(to_py)?)))
            .collect()
    }

    /// The comparison from each candidate's `(result, error)`, in order;
    /// the same JSON document as `kernel-host compare --json`.
    fn finish(&self, outcomes: Vec<(Option<String>, Option<String>)>) -> PyResult<String> {
        if outcomes.len() != self.candidates.len() {
            return Err(UsageError::new_err(format!(
                "{} outcomes for {} candidates",
                outcomes.len(),
                self.candidates.len()
            )));
        }
        let rows = self
            .candidates
            .iter()
            .zip(outcomes)
            .map(|(c, (result, error))| Ok(compare::row(c, result_of(result.as_deref(), error)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let comparison = compare::comparison(rows, self.data.folds.len(), self.metric.as_deref());
        serde_json::to_string(&comparison)
            .map_err(|e| crate::HostError::new_err(format!("writing the result: {e}")))
    }
}
