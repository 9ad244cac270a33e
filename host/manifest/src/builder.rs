//! Building a pipeline from Rust instead of TOML.
//!
//! The builder writes the same document a manifest file holds and resolves
//! it with the same code, so a built pipeline gets exactly the plan, the
//! checks and the error messages the TOML would. Relative paths are
//! resolved against the directory given to [`Plan::builder`].
//!
//! ```no_run
//! use kernel_host_manifest::{Plan, builder::{KernelDef, StepDef}};
//! # fn demo() -> Result<(), Vec<kernel_host_manifest::ManifestError>> {
//! let plan = Plan::builder("examples/penguins")
//!     .name("penguins")
//!     .kernel("impute", KernelDef::new("kernels/simple_imputer.wasm").param("strategy", "mean"))
//!     .kernel("model", KernelDef::new("kernels/logistic_regression.wasm").param("c", 1.0))
//!     .step(StepDef::new("impute"))
//!     .step(StepDef::new("model"))
//!     .train("data/train.csv")
//!     .target("species")
//!     .build()?;
//! # Ok(()) }
//! ```

use crate::error::ManifestError;
use crate::plan::Plan;
use std::path::PathBuf;
use toml::{Table, Value};

impl Plan {
    /// A builder whose relative paths resolve against `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> PipelineBuilder {
        PipelineBuilder {
            dir: dir.into(),
            doc: Table::new(),
        }
    }
}

/// Builds a [`Plan`] step by step.
#[derive(Clone, Debug)]
pub struct PipelineBuilder {
    dir: PathBuf,
    doc: Table,
}

fn table<'a>(doc: &'a mut Table, key: &str) -> &'a mut Table {
    let entry = doc.entry(key).or_insert_with(|| Value::Table(Table::new()));
    if !entry.is_table() {
        *entry = Value::Table(Table::new());
    }
    match entry {
        Value::Table(t) => t,
        _ => unreachable!("replaced by a table just above"),
    }
}

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

impl PipelineBuilder {
    pub fn name(mut self, name: &str) -> Self {
        table(&mut self.doc, "pipeline").insert("name".into(), name.into());
        self
    }

    /// Defines the kernel entry `id` (a `[kernels.id]` table).
    pub fn kernel(mut self, id: &str, kernel: KernelDef) -> Self {
        table(&mut self.doc, "kernels").insert(id.into(), Value::Table(kernel.0));
        self
    }

    /// Adds a step (a `[[pipeline.step]]` table), in declaration order.
    pub fn step(mut self, step: StepDef) -> Self {
        let pipeline = table(&mut self.doc, "pipeline");
        let steps = pipeline
            .entry("step")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(steps) = steps {
            steps.push(Value::Table(step.0));
        }
        self
    }

    fn data(mut self, key: &str, value: Value) -> Self {
        table(&mut self.doc, "data").insert(key.into(), value);
        self
    }

    pub fn train(self, path: &str) -> Self {
        self.data("train", path.into())
    }

    pub fn test(self, path: &str) -> Self {
        self.data("test", path.into())
    }

    pub fn target(self, column: &str) -> Self {
        self.data("target", column.into())
    }

    pub fn features<S: Into<String>>(self, columns: impl IntoIterator<Item = S>) -> Self {
        self.data("features", strings(columns))
    }

    pub fn predictions(mut self, path: &str) -> Self {
        table(&mut self.doc, "output").insert("predictions".into(), path.into());
        self
    }

    pub fn probabilities(mut self, on: bool) -> Self {
        table(&mut self.doc, "output").insert("probabilities".into(), on.into());
        self
    }

    /// The equivalent manifest text.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.doc).unwrap_or_default()
    }

    /// Resolves the pipeline as if its TOML were a manifest in the
    /// builder's directory.
    pub fn build(self) -> Result<Plan, Vec<ManifestError>> {
        let path = self.dir.join("(built in Rust).toml");
        Plan::parse_all(&path, &self.to_toml())
    }
}

/// A `[kernels.*]` entry.
#[derive(Clone, Debug, Default)]
pub struct KernelDef(Table);

impl KernelDef {
    /// The kernel component at `source`.
    pub fn new(source: &str) -> Self {
        let mut t = Table::new();
        t.insert("source".into(), source.into());
        KernelDef(t)
    }

    pub fn param(mut self, name: &str, value: impl Into<Value>) -> Self {
        table(&mut self.0, "params").insert(name.into(), value.into());
        self
    }

    pub fn sha256(mut self, hex: &str) -> Self {
        self.0.insert("sha256".into(), hex.into());
        self
    }

    pub fn fuel(mut self, fuel: i64) -> Self {
        table(&mut self.0, "limits").insert("fuel".into(), fuel.into());
        self
    }

    pub fn memory_mib(mut self, mib: i64) -> Self {
        table(&mut self.0, "limits").insert("memory-mib".into(), mib.into());
        self
    }

    pub fn timeout_ms(mut self, ms: i64) -> Self {
        table(&mut self.0, "limits").insert("timeout-ms".into(), ms.into());
        self
    }

    pub fn cache(mut self, on: bool) -> Self {
        self.0.insert("cache".into(), on.into());
        self
    }
}

/// A `[[pipeline.step]]` entry.
#[derive(Clone, Debug, Default)]
pub struct StepDef(Table);

impl StepDef {
    /// A step called `id`, running the kernel entry of the same name unless
    /// [`StepDef::kernel`] says otherwise.
    pub fn new(id: &str) -> Self {
        let mut t = Table::new();
        t.insert("id".into(), id.into());
        StepDef(t)
    }

    pub fn kernel(mut self, kernel: &str) -> Self {
        self.0.insert("kernel".into(), kernel.into());
        self
    }

    /// Step ids or `source`.
    pub fn inputs<S: Into<String>>(mut self, inputs: impl IntoIterator<Item = S>) -> Self {
        self.0.insert("inputs".into(), strings(inputs));
        self
    }

    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.0.insert("columns".into(), strings(columns));
        self
    }

    /// `f64`, `s64`, `bool` or `string`.
    pub fn column_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.0.insert("column-types".into(), strings(types));
        self
    }

    pub fn passthrough(mut self, on: bool) -> Self {
        self.0.insert("passthrough".into(), on.into());
        self
    }

    pub fn parallel(mut self, instances: i64) -> Self {
        self.0.insert("parallel".into(), instances.into());
        self
    }
}
