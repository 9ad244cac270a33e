//! `explain`: what each fitted kernel says it learned (its `explain`
//! export), next to what the host observed of it (calls, time, fuel,
//! memory, faults, restarts, cache hits).

use crate::bindings::{
    Capabilities, ColumnValues, ExplainValue, Explanation, Frame, KernelInfo, ParamType, ParamValue,
};
use crate::error::{Error, ManifestError};
use crate::job::{Progress, Source};
use crate::{KernelComponent, KernelStats, Sandbox};
use serde_json::{Value, json};

/// A parameter type as `inspect` shows it: `f64 in [0, 1]`, `one of a | b`.
pub fn param_type_text(t: &ParamType) -> String {
    let number = |x: f64| ParamValue::F64(x).to_string();
    let bound = |b: &Option<i64>| b.map_or("..".into(), |b| b.to_string());
    match t {
        ParamType::F64((lo, hi)) => format!(
            "f64 in [{}, {}]",
            lo.map_or("..".into(), number),
            hi.map_or("..".into(), number)
        ),
        ParamType::S64((lo, hi)) => format!("s64 in [{}, {}]", bound(lo), bound(hi)),
        ParamType::Bool => "bool".into(),
        ParamType::Choice(c) => format!("one of {}", c.join(" | ")),
        ParamType::Text => "string".into(),
    }
}

/// The capabilities a kernel declares, by their WIT names.
pub fn capability_names(info: &KernelInfo) -> Vec<&'static str> {
    [
        (Capabilities::PARTIAL_FIT, "partial-fit"),
        (Capabilities::PREDICT_PROBA, "predict-proba"),
        (Capabilities::STATELESS_TRANSFORM, "stateless-transform"),
    ]
    .into_iter()
    .filter(|(flag, _)| info.capabilities.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

/// What a component says it is, and what the host knows of it: the
/// document of `kernel-host inspect --json` and Python's `Kernel.info()`.
pub fn component_json(component: &KernelComponent) -> Value {
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let info = component.info();
    json!({
        "name": info.name,
        "version": info.version,
        "kind": info.kind.to_string(),
        "description": one_line(&info.description),
        "wit": component.wit_version(),
        "sha256": component.sha256(),
        "frozen": component.frozen().map(|f| json!({
            "from": f.kernel, "source_sha256": f.source_sha256,
            "state_bytes": f.state_bytes, "at": f.frozen_at, "params": f.params,
        })),
        "snapshots": component
            .snapshots()
            .map_or_else(|why| format!("unavailable: {why}"), |()| "transparent".into()),
        "capabilities": capability_names(info),
        "by_reference": component.by_reference(),
        "parameters": info.params.iter().map(|p| json!({
            "name": p.name,
            "type": param_type_text(&p.kind),
            "default": p.default.to_string(),
            "description": one_line(&p.description),
        })).collect::<Vec<_>>(),
    })
}

/// One step's explanation.
pub struct StepExplanation {
    pub step: String,
    /// `name@version`.
    pub kernel: String,
    pub kind: String,
    /// What the kernel reported, or why it could not.
    pub explanation: Result<Explanation, String>,
    pub observed: KernelStats,
}

/// Fits the plan on its training data (whole or in chunks, as a run
/// would) or restores the bundle, then asks each step (or only `step`) to
/// explain itself.
pub async fn explain(
    sandbox: &Sandbox,
    source: Source,
    step: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<StepExplanation>, Error> {
    let manifest = source.plan();
    if let Some(wanted) = step
        && !manifest.steps.iter().any(|s| s.id == wanted)
    {
        let ids: Vec<&str> = manifest.steps.iter().map(|s| s.id.as_str()).collect();
        return Err(ManifestError {
            file: manifest.path.clone(),
            line: None,
            key: Some("pipeline.steps".into()),
            message: format!(
                "there is no step `{wanted}`; the steps are {}",
                ids.join(", ")
            ),
        }
        .into());
    }
    let (mut fitted, _) = crate::job::load(sandbox, source, progress).await?;
    Ok(explain_fitted(&mut fitted, step).await)
}

/// Asks each step of a fitted pipeline (or only `step`) to explain itself.
pub async fn explain_fitted(
    fitted: &mut crate::job::Fitted,
    step: Option<&str>,
) -> Vec<StepExplanation> {
    let mut out = Vec::new();
    for s in fitted.pipeline.steps_mut() {
        if step.is_some_and(|wanted| wanted != s.spec.id) {
            continue;
        }
        let explanation = s.instance.explain().await.map_err(|e| e.to_string());
        out.push(StepExplanation {
            step: s.spec.id.clone(),
            kernel: s.kernel_name(),
            kind: s.kind().to_string(),
            explanation,
            observed: s.stats(),
        });
    }
    out
}

fn frame_json(frame: &Frame) -> Value {
    let columns: serde_json::Map<String, Value> = frame
        .columns
        .iter()
        .map(|c| {
            let values: Vec<Value> = (0..frame.rows as usize)
                .map(|r| match (&c.values, crate::data::cell_text(c, r)) {
                    (_, None) => Value::Null,
                    (ColumnValues::F64(v), _) => json!(v[r]),
                    (ColumnValues::S64(v), _) => json!(v[r]),
                    (ColumnValues::Bool(v), _) => json!(v[r]),
                    (ColumnValues::String(v), _) => json!(v[r]),
                })
                .collect();
            (c.name.clone(), Value::Array(values))
        })
        .collect();
    Value::Object(columns)
}

/// An explained value as JSON: numbers, arrays, strings, or a table as
/// `{column: [values]}`.
pub fn value_json(value: &ExplainValue) -> Value {
    match value {
        ExplainValue::Scalar(v) => json!(v),
        ExplainValue::Vector(v) => json!(v),
        ExplainValue::Labels(v) => json!(v),
        ExplainValue::Text(v) => json!(v),
        ExplainValue::Table(f) => frame_json(f),
    }
}

/// A kernel's own explanation: its summary and named entries.
pub fn explanation_json(e: &Explanation) -> Value {
    json!({
        "summary": e.summary,
        "entries": e.entries.iter().map(|x| (x.name.clone(), value_json(&x.value))).collect::<serde_json::Map<_, _>>(),
    })
}

/// What the host observed of a kernel: calls, time, fuel, memory, faults.
pub fn stats_json(s: &KernelStats) -> Value {
    json!({
        "calls": s.calls,
        "busy_seconds": s.busy.as_secs_f64(),
        "fuel": s.fuel,
        "peak_memory": s.peak_memory,
        "faults": s.faults,
        "restarts": s.restarts,
        "rollbacks": s.rollbacks,
        "cache_hits": s.cache_hits,
    })
}

/// Every step's explanation as one JSON document.
pub fn to_json(steps: &[StepExplanation]) -> Value {
    Value::Array(
        steps
            .iter()
            .map(|s| {
                let learned = match &s.explanation {
                    Ok(e) => explanation_json(e),
                    Err(error) => json!({ "error": error }),
                };
                json!({
                    "step": s.step,
                    "kernel": s.kernel,
                    "kind": s.kind,
                    "learned": learned,
                    "observed": stats_json(&s.observed),
                })
            })
            .collect(),
    )
}
