//! The conformance kit behind `kernel-host test KERNEL.wasm`: the contract's
//! properties run on a component through the sandbox, with fuel, memory and
//! time measured per operation.
//!
//! The properties themselves are defined once, in the SDK
//! (`sdk/src/conformance.rs`, included here as [`properties`]), so that
//! `kernel_sdk::testing::conformance` in an author's `cargo test` and this
//! kit check exactly the same things with the same messages.

#[macro_use]
#[path = "../../../sdk/src/conformance.rs"]
pub mod properties;

use crate::bindings::{
    Capabilities, Column, ColumnValues, Frame, KernelInfo, KernelKind, Param, ParamType, ParamValue,
};
use crate::{Error, Grants, KernelComponent, KernelInstance, Limits};
use properties::{Col, Failure, Meter, Outcome, Refusal, Table, Value};
pub use properties::{Options, PROPERTIES, Report, Verdict};
use std::sync::Arc;

/// Runs every property on `component` under `limits` (each instance gets
/// its own store, nothing granted).
pub async fn check(
    component: Arc<KernelComponent>,
    limits: Limits,
    options: Options,
) -> Result<Report, Error> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut subject = Sandboxed {
            component,
            limits,
            handle,
            seed: 0,
        };
        properties::run(&mut subject, &options)
    })
    .await
    .map_err(|e| Error::Internal(format!("the conformance run stopped: {e}")))
}

/// The author's data for [`Options::data`]: `frame` without the `target`
/// column, and that column.
pub fn data_from(frame: &Frame, target: Option<&str>) -> Result<(Table, Option<Col>), Error> {
    let mut table = frame_to_table(frame);
    let y = match target {
        None => None,
        Some(name) => {
            let at = table
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "the data has no target column `{name}` (it has: {})",
                        frame
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            Some(table.columns.remove(at))
        }
    };
    Ok((table, y))
}

/// `k=v` as the parameter `k` of `component`, typed by its declared spec.
pub fn parse_param(component: &KernelComponent, text: &str) -> Result<(String, Value), Error> {
    let (name, raw) = text.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "parameter `{text}` is not NAME=VALUE (e.g. alpha=0.5)"
        ))
    })?;
    let (name, raw) = (name.trim(), raw.trim());
    let info = component.info();
    let spec = info.param(name).map_err(Error::Usage)?;
    let bad = |what: &str| Error::Usage(format!("parameter `{name}` = `{raw}`: expected {what}"));
    let value = match &spec.kind {
        ParamType::F64(_) => Value::F64(raw.parse().map_err(|_| bad("a number"))?),
        ParamType::S64(_) => Value::S64(raw.parse().map_err(|_| bad("an integer"))?),
        ParamType::Bool => Value::Bool(raw.parse().map_err(|_| bad("true or false"))?),
        ParamType::Choice(_) | ParamType::Text => Value::Text(raw.to_string()),
    };
    Ok((name.to_string(), value))
}

/// A component as a conformance subject.
struct Sandboxed {
    component: Arc<KernelComponent>,
    limits: Limits,
    handle: tokio::runtime::Handle,
    seed: u64,
}

impl properties::Subject for Sandboxed {
    type Instance = Sandboxed1;

    fn describe(&mut self) -> Outcome<properties::Info> {
        Ok(info_of(self.component.info()))
    }

    fn instance(&mut self) -> Outcome<Sandboxed1> {
        let grants = Grants {
            seed: Some(self.seed),
            ..Grants::default()
        };
        let instance = self
            .handle
            .block_on(self.component.instantiate(self.limits, grants))
            .map_err(failure)?;
        Ok(Sandboxed1 {
            instance,
            handle: self.handle.clone(),
        })
    }

    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

/// One sandboxed instance.
struct Sandboxed1 {
    instance: KernelInstance,
    handle: tokio::runtime::Handle,
}

fn failure(e: kernel_host_sandbox::Error) -> Failure {
    use crate::Fault;
    match e {
        kernel_host_sandbox::Error::Kernel { fault, .. } => match fault {
            Fault::Refused { kind, message } => Failure::Refused(
                match kind {
                    crate::RefusalKind::InvalidParams => Refusal::InvalidParams,
                    crate::RefusalKind::InvalidInput => Refusal::InvalidInput,
                    crate::RefusalKind::NotFitted => Refusal::NotFitted,
                    crate::RefusalKind::Unsupported => Refusal::Unsupported,
                    crate::RefusalKind::InvalidState => Refusal::InvalidState,
                    crate::RefusalKind::Failed => Refusal::Failed,
                },
                message,
            ),
            Fault::BadOutput(m) => Failure::BadOutput(m),
            other => Failure::Fault(other.to_string()),
        },
        other => Failure::Fault(format!("the host could not run the call: {other}")),
    }
}

impl properties::Instance for Sandboxed1 {
    fn configure(&mut self, params: &[(String, Value)]) -> Outcome<()> {
        let params = params_of(params);
        self.handle
            .block_on(self.instance.configure(&params))
            .map_err(failure)
    }
    fn fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()> {
        let (x, y) = (table_to_frame(x), y.map(col_to_column));
        self.handle
            .block_on(self.instance.fit(&x, y.as_ref()))
            .map_err(failure)
    }
    fn partial_fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()> {
        let (x, y) = (table_to_frame(x), y.map(col_to_column));
        self.handle
            .block_on(self.instance.partial_fit(&x, y.as_ref()))
            .map_err(failure)
    }
    fn transform(&mut self, x: &Table) -> Outcome<Table> {
        let x = table_to_frame(x);
        self.handle
            .block_on(self.instance.transform(&x))
            .map(|f| frame_to_table(&f))
            .map_err(failure)
    }
    fn predict(&mut self, x: &Table) -> Outcome<Col> {
        let x = table_to_frame(x);
        self.handle
            .block_on(self.instance.predict(&x))
            .map(|c| column_to_col(&c))
            .map_err(failure)
    }
    fn predict_proba(&mut self, x: &Table) -> Outcome<Table> {
        let x = table_to_frame(x);
        self.handle
            .block_on(self.instance.predict_proba(&x))
            .map(|f| frame_to_table(&f))
            .map_err(failure)
    }
    fn save_state(&mut self) -> Outcome<Vec<u8>> {
        self.handle
            .block_on(self.instance.save_state())
            .map_err(failure)
    }
    fn load_state(&mut self, state: &[u8]) -> Outcome<()> {
        self.handle
            .block_on(self.instance.load_state(state))
            .map_err(failure)
    }
    fn explain(&mut self) -> Outcome<()> {
        self.handle
            .block_on(self.instance.explain())
            .map(|_| ())
            .map_err(failure)
    }
    fn meter(&mut self) -> Meter {
        let stats = self.instance.stats();
        Meter {
            fuel: Some(stats.fuel),
            memory: Some(stats.peak_memory),
        }
    }
}

plain_conversions!(properties);
