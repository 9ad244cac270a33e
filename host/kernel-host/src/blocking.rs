//! A blocking front to the async API, for callers without an async
//! runtime (scripts, tests, other languages' bindings).
//!
//! Each [`BlockingPipeline`] owns a small multi-threaded tokio runtime (two
//! workers, so independent branches still run in parallel) and blocks on
//! it. Do not use it from inside an async runtime: call the async API there.
//!
//! ```no_run
//! use kernel_host::blocking::BlockingPipeline;
//! # fn demo() -> Result<(), kernel_host::Error> {
//! let plan = kernel_host::Plan::load("examples/penguins/pipeline.toml".as_ref())?;
//! let (x, y) = kernel_host::job::training_data(&plan)?;
//! let mut pipeline = BlockingPipeline::load(plan)?;
//! pipeline.fit(x.clone(), y.as_ref())?;
//! let predictions = pipeline.predict(x, true)?;
//! # Ok(()) }
//! ```

use crate::Plan;
use crate::Sandbox;
use crate::bindings::{Column, Frame};
use crate::error::Error;
use crate::job::{JobOptions, Quiet, Source};
use crate::pipeline::{Output, Pipeline};
use crate::report::RunReport;

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Host(anyhow::Error::from(e).context("starting the async runtime")))
}

/// Runs the plan's whole job (see [`crate::job::run`]), blocking.
pub fn run(plan: Plan) -> Result<RunReport, Error> {
    let runtime = runtime()?;
    let sandbox = Sandbox::builder().device(plan.device).build()?;
    let options = JobOptions {
        predict: true,
        ..JobOptions::default()
    };
    runtime.block_on(crate::job::run(
        &sandbox,
        Source::Plan(plan),
        &options,
        &Quiet,
    ))
}

/// A [`Pipeline`] whose methods block.
pub struct BlockingPipeline {
    runtime: tokio::runtime::Runtime,
    pipeline: Pipeline,
}

impl BlockingPipeline {
    /// Loads, verifies and configures the manifest's kernels in a default
    /// sandbox.
    pub fn load(manifest: Plan) -> Result<Self, Error> {
        let sandbox = Sandbox::builder().build()?;
        Self::load_in(&sandbox, manifest)
    }

    /// Like [`BlockingPipeline::load`], in a given sandbox.
    pub fn load_in(sandbox: &Sandbox, manifest: Plan) -> Result<Self, Error> {
        let runtime = runtime()?;
        let pipeline = runtime.block_on(Pipeline::load(sandbox, manifest))?;
        Ok(BlockingPipeline { runtime, pipeline })
    }

    pub fn fit(&mut self, x: Frame, y: Option<&Column>) -> Result<(), Error> {
        self.runtime.block_on(self.pipeline.fit(x, y))
    }

    pub fn predict(&mut self, x: Frame, probabilities: bool) -> Result<Output, Error> {
        self.runtime
            .block_on(self.pipeline.predict(x, probabilities))
    }

    /// The async pipeline inside.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}
