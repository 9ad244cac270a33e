//! The plan: a manifest resolved. Paths are absolute, limits merged over
//! the defaults, parameters typed, registry kernels pinned to a blob, steps
//! in execution order. Every job runs a plan, and a bundle's index is one,
//! so a manifest and a bundle drive the same code.

use crate::graph::Input;
use kernel_host_data::CsvOptions;
use kernel_host_tensor::DeviceChoice;
use kernel_host_types::Selection;
use kernel_host_types::bindings::Param;
use kernel_host_types::{Grants, Limits};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a failed `fit`/`partial-fit` does to the run, once the kernel is
/// rolled back to its state before the call (which always happens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// The step fails, and with it the whole fit: every step returns to its
    /// state before the fit.
    #[default]
    Fail,
    /// The step keeps its previous state and the run carries on (a
    /// partial fit skips the chunk); the report counts the rollbacks.
    Rollback,
}

/// A resolved pipeline: what runs, in which order, on which data, under
/// which limits. Made from a manifest ([`crate::Manifest`]) or read back
/// from a bundle's index; serializable, so a bundle stores exactly this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    /// The file the plan was read from: the manifest, or the bundle it was
    /// loaded from. Error messages point here.
    pub path: PathBuf,
    pub name: String,
    /// The kernels in step order.
    pub steps: Vec<KernelSpec>,
    pub data: DataSpec,
    pub output: OutputSpec,
    /// Budget of the transform/predict result cache, bytes.
    pub cache_bytes: u64,
    /// Where host tensors live (`[tensor] device`; `KERNEL_HOST_DEVICE`
    /// overrides it).
    pub device: DeviceChoice,
}

/// One step's kernel, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KernelSpec {
    /// The step's id.
    pub id: String,
    /// The `[kernels.*]` entry the step runs.
    pub kernel: String,
    /// Where the step's rows come from, joined column-wise in this order.
    pub inputs: Vec<Input>,
    /// The columns of its input the kernel sees.
    pub select: Selection,
    /// Append the columns not selected to the kernel's output (like
    /// scikit-learn's `remainder="passthrough"`).
    pub passthrough: bool,
    /// Instances that transform chunks of the input at once (1: no split).
    pub parallel: u32,
    pub source: PathBuf,
    pub sha256: Option<String>,
    #[serde(with = "kernel_host_types::bindings::params_serde")]
    pub params: Vec<Param>,
    pub limits: Limits,
    pub grants: Grants,
    /// Cache this step's transform/predict results.
    pub cache: bool,
    /// The registry kernel (name, exact version) the entry resolved to.
    pub registry: Option<(String, String)>,
    /// A kernel run beside this one on the same input; its outputs are
    /// compared, never used.
    pub shadow: Option<Box<KernelSpec>>,
    /// What a failed fit does (the kernel is rolled back either way).
    pub on_failure: OnFailure,
    /// Line of the kernel's table in the manifest, for error messages.
    pub line: Option<usize>,
}

/// Where the rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// Separate files to fit and to predict on (the test file is optional).
    Files {
        train: PathBuf,
        test: Option<PathBuf>,
    },
    /// One file split deterministically.
    Split {
        input: PathBuf,
        test_fraction: f64,
        seed: u64,
        stratify: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DataSpec {
    pub source: DataSource,
    /// The target column, for supervised kernels and scoring.
    pub target: Option<String>,
    /// Feature columns; `None` means every column but the target.
    pub features: Option<Vec<String>>,
    pub csv: CsvOptions,
    /// Read and fit the input this many rows at a time (`None`: whole).
    pub chunk_rows: Option<usize>,
    /// `chunk-rows = "auto"`: chunked, the size chosen from
    /// `memory_budget` and the data when the job starts (which then sets
    /// `chunk_rows`; see `kernel_host::job::auto_chunk_rows`).
    #[serde(default)]
    pub chunk_auto: bool,
    /// Input held for kernels that cannot fit in chunks, bytes.
    pub memory_budget: u64,
    /// What a chunked fit keeps on disk between its passes
    /// (`data.spill`).
    #[serde(default)]
    pub spill: Spill,
}

/// What a chunked fit writes to the temporary directory between its
/// passes (one pass per wave of the graph).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spill {
    /// The parsed input, once: the later passes read it and transform
    /// each chunk through every step fitted so far. A CSV is parsed once;
    /// Arrow and Parquet files are read again instead.
    #[default]
    Input,
    /// After each pass, the outputs of the steps fitted so far: each
    /// chunk goes through each step once, at the cost of writing and
    /// reading a spill per pass. Pays when early steps' transforms cost
    /// more than that.
    Outputs,
    /// Nothing: every pass reads the input file again (no temporary disk).
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OutputSpec {
    pub predictions: Option<PathBuf>,
    /// Add one probability column per class (classifiers that support it).
    pub probabilities: bool,
    /// Append one JSON line per kernel call here.
    pub audit_log: Option<PathBuf>,
    /// Write the JSON run report here.
    pub report: Option<PathBuf>,
}
