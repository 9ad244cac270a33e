//! `explain`: what each fitted kernel says it learned (its `explain`
//! export), next to what the host observed of it (calls, time, fuel,
//! memory, faults, restarts, cache hits).

use crate::bindings::{ColumnValues, ExplainValue, Explanation, Frame};
use crate::error::{Error, ManifestError};
use crate::job::{Progress, Source};
use crate::{KernelStats, Sandbox};
use serde_json::{Value, json};

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

/// Every step's explanation as one JSON document.
pub fn to_json(steps: &[StepExplanation]) -> Value {
    Value::Array(
        steps
            .iter()
            .map(|s| {
                let learned = match &s.explanation {
                    Ok(e) => json!({
                        "summary": e.summary,
                        "entries": e.entries.iter().map(|x| (x.name.clone(), value_json(&x.value))).collect::<serde_json::Map<_, _>>(),
                    }),
                    Err(error) => json!({ "error": error }),
                };
                json!({
                    "step": s.step,
                    "kernel": s.kernel,
                    "kind": s.kind,
                    "learned": learned,
                    "observed": {
                        "calls": s.observed.calls,
                        "busy_seconds": s.observed.busy.as_secs_f64(),
                        "fuel": s.observed.fuel,
                        "peak_memory": s.observed.peak_memory,
                        "faults": s.observed.faults,
                        "restarts": s.observed.restarts,
                        "cache_hits": s.observed.cache_hits,
                    },
                })
            })
            .collect(),
    )
}
