//! `kernel_host._native`: the Python bindings of kernel-host. Frames cross
//! as Arrow record batches through the Arrow C data interface (no copy on
//! the Python side); kernels run with the GIL released; every host error
//! becomes a typed exception (see `kernel_host/__init__.py` for the
//! Python-facing API built on this module).

use arrow_array::RecordBatch;
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use kernel_host::bindings::{Column, ColumnValues, Frame};
use kernel_host::data::ColumnType;
use kernel_host::job::{FitMode, Fitted, Quiet, Source};
use kernel_host::{Error, Fault, Plan, RefusalKind, Sandbox};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

mod kernel;
mod select;

create_exception!(
    kernel_host,
    KernelHostError,
    PyException,
    "Base of every kernel-host error."
);
create_exception!(
    kernel_host,
    ManifestError,
    KernelHostError,
    "The manifest cannot be read, parsed or resolved (the message has file:line)."
);
create_exception!(
    kernel_host,
    DataError,
    KernelHostError,
    "Input data is unusable (the message names the file, row and column)."
);
create_exception!(
    kernel_host,
    BundleError,
    KernelHostError,
    "A saved bundle was refused."
);
create_exception!(
    kernel_host,
    UsageError,
    KernelHostError,
    "A request that cannot be carried out as asked."
);
create_exception!(
    kernel_host,
    KernelError,
    KernelHostError,
    "A kernel failed or refused; the host carried on."
);
create_exception!(
    kernel_host,
    OutOfFuel,
    KernelError,
    "A kernel used up its fuel (`limits.fuel`)."
);
create_exception!(
    kernel_host,
    MemoryLimit,
    KernelError,
    "A kernel tried to grow past its memory limit (`limits.memory-mib`)."
);
create_exception!(
    kernel_host,
    KernelTimeout,
    KernelError,
    "A kernel ran past its wall-clock limit (`limits.timeout-ms`)."
);
create_exception!(
    kernel_host,
    KernelTrap,
    KernelError,
    "A kernel trapped (a panic, an illegal operation) or produced malformed output."
);
create_exception!(
    kernel_host,
    InvalidInput,
    KernelError,
    "A kernel refused its input (`invalid-input`)."
);
create_exception!(
    kernel_host,
    InvalidParams,
    KernelError,
    "A kernel refused its parameters (`invalid-params`)."
);
create_exception!(
    kernel_host,
    HostError,
    KernelHostError,
    "The host could not do its part (a bug, or a transient failure)."
);

pub(crate) fn to_py(error: Error) -> PyErr {
    let message = kernel_host::printable_lines(&error.to_string()).into_owned();
    match &error {
        Error::Manifest(_) | Error::Invalid { .. } => ManifestError::new_err(message),
        Error::Data(_) | Error::Io { .. } => DataError::new_err(message),
        Error::Bundle(_) => BundleError::new_err(message),
        Error::Usage(_) | Error::Unavailable(_) => UsageError::new_err(message),
        Error::Load { .. } | Error::Conformance { .. } => KernelError::new_err(message),
        Error::Kernel { fault, .. } => match fault {
            Fault::OutOfFuel { .. } => OutOfFuel::new_err(message),
            Fault::MemoryLimit { .. } => MemoryLimit::new_err(message),
            Fault::Timeout { .. } => KernelTimeout::new_err(message),
            Fault::Trap { .. } | Fault::BadOutput(_) => KernelTrap::new_err(message),
            Fault::Refused {
                kind: RefusalKind::InvalidInput,
                ..
            } => InvalidInput::new_err(message),
            Fault::Refused {
                kind: RefusalKind::InvalidParams,
                ..
            } => InvalidParams::new_err(message),
            Fault::Refused { .. } => KernelError::new_err(message),
        },
        Error::Internal(_) | Error::Host(_) => HostError::new_err(message),
    }
}

pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| HostError::new_err(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn sandbox() -> PyResult<Sandbox> {
    static SANDBOX: OnceLock<Result<Sandbox, String>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            kernel_host::tune_process_allocator();
            Sandbox::builder().build().map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| HostError::new_err(format!("cannot set up the sandbox: {e}")))
}

/// A pyarrow RecordBatch (or anything exporting one) as a frame.
pub(crate) fn frame_of(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Frame> {
    let batch = RecordBatch::from_pyarrow_bound(value)?;
    kernel_host::data::arrow::batch_to_frame(&batch, Path::new(what), 0)
        .map_err(|e| to_py(e.into()))
}

pub(crate) fn batch_of(py: Python<'_>, frame: &Frame) -> PyResult<Py<PyAny>> {
    let batch = kernel_host::data::arrow::frame_to_batch(frame)
        .map_err(|e| HostError::new_err(format!("cannot convert the result to Arrow: {e}")))?;
    Ok(batch.to_pyarrow(py)?.unbind())
}

/// Numbers as the pipeline was fitted on them: an integer column where it
/// saw floats, or integral floats where it saw integers (pandas reads an
/// integer column with holes as floats). Anything else is left for
/// `conform` to refuse by name.
fn coerce(mut frame: Frame, schema: &[(String, ColumnType)]) -> Frame {
    for column in &mut frame.columns {
        let Some((_, want)) = schema.iter().find(|(n, _)| *n == column.name) else {
            continue;
        };
        let present = |i: usize| column.nulls.as_ref().is_none_or(|n| n[i] == 0);
        match (&column.values, want) {
            (ColumnValues::S64(v), ColumnType::F64) => {
                column.values = ColumnValues::F64(v.iter().map(|x| *x as f64).collect());
            }
            (ColumnValues::F64(v), ColumnType::S64)
                if v.iter()
                    .enumerate()
                    .all(|(i, x)| !present(i) || (x.fract() == 0.0 && x.abs() < 9.0e15)) =>
            {
                column.values = ColumnValues::S64(
                    v.iter()
                        .enumerate()
                        .map(|(i, x)| if present(i) { *x as i64 } else { 0 })
                        .collect(),
                );
            }
            _ => {}
        }
    }
    frame
}

/// A pipeline: a manifest's kernels, fitted from Python or from the
/// manifest's own data, or a bundle restored as fitted.
#[pyclass(module = "kernel_host._native")]
struct Pipeline {
    plan: Plan,
    fitted: Mutex<Option<Fitted>>,
}

impl Pipeline {
    fn with_fitted<T>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut Fitted) -> Result<T, Error> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        let rt = runtime()?;
        py.detach(|| {
            let mut guard = self.fitted.lock().unwrap_or_else(|p| p.into_inner());
            let fitted = guard.as_mut().ok_or_else(|| {
                UsageError::new_err(
                    "the pipeline is not fitted: call fit() first (or load a bundle)",
                )
            })?;
            rt.block_on(f(fitted)).map_err(to_py)
        })
    }
}

#[pymethods]
impl Pipeline {
    /// The pipeline a manifest describes (not fitted yet).
    #[staticmethod]
    fn from_manifest(path: PathBuf) -> PyResult<Pipeline> {
        let plan = Plan::load_with(
            &path,
            &kernel_host::registry::Registry::open(kernel_host::registry::Registry::default_dir()),
        )
        .map_err(|e| to_py(e.into()))?;
        Ok(Pipeline {
            plan,
            fitted: Mutex::new(None),
        })
    }

    /// A bundle saved by `save()` or `kernel-host fit --save`, fitted.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Pipeline> {
        let rt = runtime()?;
        let sandbox = sandbox()?;
        py.detach(|| {
            let source = Source::open(
                &path,
                &kernel_host::registry::Registry::open(
                    kernel_host::registry::Registry::default_dir(),
                ),
            )
            .map_err(to_py)?;
            let plan = source.plan().clone();
            let (fitted, _) = rt
                .block_on(kernel_host::job::load(&sandbox, source, &Quiet))
                .map_err(to_py)?;
            Ok(Pipeline {
                plan,
                fitted: Mutex::new(Some(fitted)),
            })
        })
    }

    /// The manifest's target column, if it names one.
    #[getter]
    fn target(&self) -> Option<String> {
        self.plan.data.target.clone()
    }

    /// The manifest's feature columns, if it lists them.
    #[getter]
    fn features(&self) -> Option<Vec<String>> {
        self.plan.data.features.clone()
    }

    /// Fits on `x` (a RecordBatch of features) and `y` (a one-column
    /// RecordBatch, the target), or on the manifest's own training data
    /// when `x` is None.
    #[pyo3(signature = (x=None, y=None))]
    fn fit(
        &self,
        py: Python<'_>,
        x: Option<Bound<'_, PyAny>>,
        y: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let rt = runtime()?;
        let sandbox = sandbox()?;
        let plan = self.plan.clone();
        let fitted = match x {
            None => py.detach(|| {
                rt.block_on(kernel_host::job::fit(&sandbox, plan, &Quiet))
                    .map(|(f, _)| f)
                    .map_err(to_py)
            })?,
            Some(x) => {
                let x = frame_of(&x, "X")?;
                let y = match y {
                    None => None,
                    Some(y) => {
                        let mut frame = frame_of(&y, "y")?;
                        if frame.columns.len() != 1 {
                            return Err(UsageError::new_err("y must be one column"));
                        }
                        frame.columns.pop()
                    }
                };
                py.detach(|| {
                    rt.block_on(async {
                        let schema = x.schema();
                        let rows = u64::from(x.rows);
                        let mut pipeline = kernel_host::Pipeline::load(&sandbox, plan).await?;
                        pipeline.fit(x, y.as_ref()).await?;
                        Ok::<_, Error>(Fitted {
                            pipeline,
                            schema,
                            train_rows: rows,
                            fit: FitMode::Whole,
                        })
                    })
                    .map_err(to_py)
                })?
            }
        };
        *self.fitted.lock().unwrap_or_else(|p| p.into_inner()) = Some(fitted);
        Ok(())
    }

    /// Predictions for the rows of `x`: `(values, probabilities)`, each a
    /// RecordBatch (`probabilities` None unless asked for and available);
    /// for a pipeline ending in a transformer, `(transformed, None)`.
    #[pyo3(signature = (x, probabilities=false))]
    fn predict(
        &self,
        py: Python<'_>,
        x: Bound<'_, PyAny>,
        probabilities: bool,
    ) -> PyResult<(Py<PyAny>, Option<Py<PyAny>>)> {
        let x = frame_of(&x, "X")?;
        let (values, proba) = self.with_fitted(py, async move |fitted: &mut Fitted| {
            let x = coerce(x, &fitted.schema).conform(&fitted.schema, Path::new("X"), 0)?;
            match fitted.pipeline.predict(x, probabilities).await? {
                kernel_host::Output::Predictions {
                    values,
                    probabilities,
                } => Ok((
                    Frame {
                        rows: kernel_host::data::column_len(&values) as u32,
                        columns: vec![Column {
                            name: "prediction".into(),
                            ..values
                        }],
                    },
                    probabilities,
                )),
                kernel_host::Output::Transformed(frame) => Ok((frame, None)),
            }
        })?;
        let proba = match proba {
            Some(p) => Some(batch_of(py, &p)?),
            None => None,
        };
        Ok((batch_of(py, &values)?, proba))
    }

    /// What each step learned, in its own words, as JSON text (the same
    /// document as `kernel-host explain --json`).
    fn explain(&self, py: Python<'_>) -> PyResult<String> {
        self.with_fitted(py, async move |fitted: &mut Fitted| {
            let steps = kernel_host::explain::explain_fitted(fitted, None).await;
            Ok(kernel_host::explain::to_json(&steps).to_string())
        })
    }

    /// Saves the fitted pipeline (kernels, state, plan) as one bundle.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.with_fitted(py, async move |fitted: &mut Fitted| {
            kernel_host::bundle::save(fitted, &path).await
        })
    }

    /// Per step: kernel, calls, busy seconds, fuel, peak memory, faults,
    /// rollbacks and cache hits, as the host observed them.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let guard = self.fitted.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fitted) = guard.as_ref() else {
            return Err(UsageError::new_err(
                "the pipeline is not fitted: call fit() first",
            ));
        };
        fitted
            .pipeline
            .steps()
            .iter()
            .map(|step| {
                let s = step.stats();
                let d = PyDict::new(py);
                d.set_item("step", &step.spec.id)?;
                d.set_item("kernel", step.kernel_name())?;
                d.set_item("calls", s.calls)?;
                d.set_item("busy_seconds", s.busy.as_secs_f64())?;
                d.set_item("fuel", s.fuel)?;
                d.set_item("peak_memory", s.peak_memory)?;
                d.set_item("faults", s.faults)?;
                d.set_item("rollbacks", s.rollbacks)?;
                d.set_item("cache_hits", s.cache_hits)?;
                Ok(d)
            })
            .collect()
    }
}

/// Reads a CSV, Arrow or Parquet file as the CLI does (same types), as a RecordBatch.
#[pyfunction]
fn read_table(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let frame = py
        .detach(|| kernel_host::data::read_table(&path, &Default::default()))
        .map_err(|e| to_py(e.into()))?;
    batch_of(py, &frame)
}

/// The host's version and the kernel contract it implements.
#[pyfunction]
fn version() -> String {
    format!(
        "{} (kernel contract: WIT kernel-host:kernel@{})",
        env!("CARGO_PKG_VERSION"),
        kernel_host::wit_version!()
    )
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Pipeline>()?;
    m.add_class::<kernel::Kernel>()?;
    m.add_class::<select::Study>()?;
    m.add_class::<select::Candidates>()?;
    m.add_function(wrap_pyfunction!(select::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(read_table, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    for (name, ty) in [
        ("KernelHostError", py.get_type::<KernelHostError>()),
        ("ManifestError", py.get_type::<ManifestError>()),
        ("DataError", py.get_type::<DataError>()),
        ("BundleError", py.get_type::<BundleError>()),
        ("UsageError", py.get_type::<UsageError>()),
        ("KernelError", py.get_type::<KernelError>()),
        ("OutOfFuel", py.get_type::<OutOfFuel>()),
        ("MemoryLimit", py.get_type::<MemoryLimit>()),
        ("KernelTimeout", py.get_type::<KernelTimeout>()),
        ("KernelTrap", py.get_type::<KernelTrap>()),
        ("InvalidInput", py.get_type::<InvalidInput>()),
        ("InvalidParams", py.get_type::<InvalidParams>()),
        ("HostError", py.get_type::<HostError>()),
    ] {
        m.add(name, ty)?;
    }
    Ok(())
}
