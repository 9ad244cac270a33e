//! `Kernel`: one component in its own sandbox, called directly from Python.

use crate::{UsageError, batch_of, frame_of, runtime, sandbox, to_py};
use kernel_host::bindings::{Frame, Param, ParamType, ParamValue};
use kernel_host::limits::LimitsSpec;
use kernel_host::{Grants, KernelComponent, KernelInstance, Limits, SandboxError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use std::path::PathBuf;
use std::sync::Mutex;

/// One kernel component, instantiated and configured: nothing granted
/// (no files, frozen clocks, seeded randomness), under `limits`.
#[pyclass(module = "kernel_host._native")]
pub struct Kernel {
    component: KernelComponent,
    instance: Mutex<KernelInstance>,
    limits: Limits,
}

/// `{"fuel": .., "memory_mib": .., "timeout_ms": .., "tensor_mib": ..}`
/// over the defaults, checked as a manifest's `[limits]` are.
fn limits_of(limits: Option<&Bound<'_, PyDict>>) -> PyResult<Limits> {
    let mut spec = LimitsSpec::default();
    if let Some(limits) = limits {
        for (key, value) in limits.iter() {
            let key: String = key.extract()?;
            let value: u64 = value.extract().map_err(|_| {
                UsageError::new_err(format!("limits[{key:?}] must be a non-negative integer"))
            })?;
            match key.replace('-', "_").as_str() {
                "fuel" => spec.fuel = Some(value),
                "memory_mib" => spec.memory_mib = Some(value),
                "timeout_ms" => spec.timeout_ms = Some(value),
                "tensor_mib" => spec.tensor_mib = Some(value),
                _ => {
                    return Err(UsageError::new_err(format!(
                        "limits has no key {key:?} (known: fuel, memory_mib, timeout_ms, tensor_mib)"
                    )));
                }
            }
        }
    }
    let limits = spec.apply(Limits::default());
    limits
        .check()
        .map_err(|e| UsageError::new_err(format!("limits: {e}")))?;
    Ok(limits)
}

/// A Python value as the declared parameter `name` of `component`.
fn param_of(component: &KernelComponent, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Param> {
    let info = component.info();
    let spec = info.param(name).map_err(crate::InvalidParams::new_err)?;
    let wrong = |want: &str| {
        crate::InvalidParams::new_err(format!(
            "`{}` parameter `{name}` expects {want}, not a {}",
            info.name,
            value
                .get_type()
                .name()
                .map_or_else(|_| "value".into(), |n| n.to_string())
        ))
    };
    let is_bool = value.is_instance_of::<PyBool>();
    let value = match &spec.kind {
        ParamType::F64(_)
            if !is_bool
                && (value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>()) =>
        {
            ParamValue::F64(value.extract()?)
        }
        ParamType::F64(_) => return Err(wrong("a number")),
        ParamType::S64(_) if !is_bool && value.is_instance_of::<PyInt>() => {
            ParamValue::S64(value.extract().map_err(|_| wrong("a 64-bit integer"))?)
        }
        ParamType::S64(_) => return Err(wrong("an integer")),
        ParamType::Bool if is_bool => ParamValue::Bool(value.extract()?),
        ParamType::Bool => return Err(wrong("True or False")),
        ParamType::Choice(_) | ParamType::Text if value.is_instance_of::<PyString>() => {
            ParamValue::String(value.extract()?)
        }
        ParamType::Choice(options) => return Err(wrong(&format!("one of {}", options.join(", ")))),
        ParamType::Text => return Err(wrong("a string")),
    };
    Ok(Param {
        name: name.to_string(),
        value,
    })
}

impl Kernel {
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl AsyncFnOnce(&mut KernelInstance) -> Result<T, SandboxError> + Send,
    ) -> PyResult<T> {
        let rt = runtime()?;
        py.detach(|| {
            let mut guard = self.instance.lock().unwrap_or_else(|p| p.into_inner());
            rt.block_on(f(&mut guard)).map_err(|e| to_py(e.into()))
        })
    }

    fn target(y: Option<Bound<'_, PyAny>>) -> PyResult<Option<kernel_host::bindings::Column>> {
        match y {
            None => Ok(None),
            Some(y) => {
                let mut frame = frame_of(&y, "y")?;
                if frame.columns.len() != 1 {
                    return Err(UsageError::new_err("y must be one column"));
                }
                Ok(frame.columns.pop())
            }
        }
    }
}

#[pymethods]
impl Kernel {
    /// Loads, verifies and compiles the component at `path`, instantiates
    /// it under `limits` and configures it with `params`.
    #[staticmethod]
    #[pyo3(signature = (path, params=None, limits=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        params: Option<Bound<'_, PyDict>>,
        limits: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Kernel> {
        let limits = limits_of(limits.as_ref())?;
        let rt = runtime()?;
        let sandbox = sandbox()?;
        let id = path
            .file_stem()
            .map_or_else(|| "kernel".into(), |s| s.to_string_lossy().into_owned());
        let component = py
            .detach(|| {
                rt.block_on(KernelComponent::load_for(
                    &sandbox, "python", &id, &path, None, limits,
                ))
            })
            .map_err(|e| to_py(e.into()))?;
        let params: Vec<Param> = match &params {
            None => Vec::new(),
            Some(d) => d
                .iter()
                .map(|(k, v)| param_of(&component, &k.extract::<String>()?, &v))
                .collect::<PyResult<_>>()?,
        };
        let instance = py
            .detach(|| {
                rt.block_on(async {
                    let mut instance = component.instantiate(limits, Grants::default()).await?;
                    instance.set_pipeline("python");
                    instance.configure(&params).await?;
                    Ok::<_, SandboxError>(instance)
                })
            })
            .map_err(|e| to_py(e.into()))?;
        Ok(Kernel {
            component,
            instance: Mutex::new(instance),
            limits,
        })
    }

    /// What the kernel declares (name, version, kind, capabilities,
    /// parameters) and its sha256, as JSON text (`kernel-host inspect --json`).
    fn info(&self) -> String {
        kernel_host::explain::component_json(&self.component).to_string()
    }

    /// The limits it runs under: fuel, memory_mib, timeout_ms, tensor_mib.
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("fuel", self.limits.fuel)?;
        d.set_item("memory_mib", self.limits.memory_bytes >> 20)?;
        d.set_item("timeout_ms", self.limits.timeout.as_millis() as u64)?;
        d.set_item("tensor_mib", self.limits.tensor_bytes >> 20)?;
        Ok(d)
    }

    #[pyo3(signature = (x, y=None))]
    fn fit(
        &self,
        py: Python<'_>,
        x: Bound<'_, PyAny>,
        y: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (x, y) = (frame_of(&x, "X")?, Self::target(y)?);
        self.call(py, async move |k: &mut KernelInstance| {
            k.fit(&x, y.as_ref()).await
        })
    }

    #[pyo3(signature = (x, y=None))]
    fn partial_fit(
        &self,
        py: Python<'_>,
        x: Bound<'_, PyAny>,
        y: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (x, y) = (frame_of(&x, "X")?, Self::target(y)?);
        self.call(py, async move |k: &mut KernelInstance| {
            k.partial_fit(&x, y.as_ref()).await
        })
    }

    fn transform(&self, py: Python<'_>, x: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let x = frame_of(&x, "X")?;
        let out = self.call(py, async move |k: &mut KernelInstance| {
            k.transform(&x).await
        })?;
        batch_of(py, &out)
    }

    fn predict(&self, py: Python<'_>, x: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let x = frame_of(&x, "X")?;
        let column = self.call(py, async move |k: &mut KernelInstance| k.predict(&x).await)?;
        let frame = Frame {
            rows: kernel_host::data::column_len(&column) as u32,
            columns: vec![kernel_host::bindings::Column {
                name: "prediction".into(),
                ..column
            }],
        };
        batch_of(py, &frame)
    }

    fn predict_proba(&self, py: Python<'_>, x: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let x = frame_of(&x, "X")?;
        let out = self.call(py, async move |k: &mut KernelInstance| {
            k.predict_proba(&x).await
        })?;
        batch_of(py, &out)
    }

    /// The kernel's fitted state, as its `save-state` gives it.
    fn save_state(&self, py: Python<'_>) -> PyResult<Vec<u8>> {
        self.call(py, async move |k: &mut KernelInstance| k.save_state().await)
    }

    fn load_state(&self, py: Python<'_>, state: Vec<u8>) -> PyResult<()> {
        self.call(py, async move |k: &mut KernelInstance| {
            k.load_state(&state).await
        })
    }

    /// What the kernel says it learned, as JSON text.
    fn explain(&self, py: Python<'_>) -> PyResult<String> {
        let e = self.call(py, async move |k: &mut KernelInstance| k.explain().await)?;
        Ok(kernel_host::explain::explanation_json(&e).to_string())
    }

    /// What the host observed: calls, busy seconds, fuel, peak memory,
    /// faults, restarts, rollbacks, cache hits; as JSON text.
    fn stats(&self) -> String {
        let guard = self.instance.lock().unwrap_or_else(|p| p.into_inner());
        kernel_host::explain::stats_json(&guard.stats()).to_string()
    }
}
