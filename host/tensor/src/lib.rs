//! kernel-host-tensor: the math behind the host tensor API
//! (`kernel-host:kernel/tensor`): f32 matrices owned by the host, on the CPU (`ndarray`, matrixmultiply's threads) or on a CUDA
//! GPU (`cudarc`: cuBLAS and NVRTC kernels), that kernels hold by handle.
//!
//! This module is the front every backend shares: it checks shapes and
//! arguments, so a [`Backend`] only ever sees valid operations, and it
//! accounts tensor bytes against each kernel's cap ([`Accounts`]), which
//! wasmtime's memory limiter cannot see. Tensors live in the kernel's store
//! (its resource table): they are freed when the kernel drops them or when
//! its store goes.

mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_off.rs"]
mod cuda;
pub mod deadline;
pub mod selftest;

/// Where a tensor's data lives (the WIT `device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

/// Why a tensor operation was refused (the WIT `tensor-error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("backend: {0}")]
    Backend(String),
    #[error("not found: {0}")]
    NotFound(String),
}

/// Element-wise operations of two tensors (the WIT `binary-op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

/// Operations of a tensor and a scalar (the WIT `scalar-op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    Rsub,
}

/// Element-wise functions (the WIT `unary-op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Relu,
    Step,
    Square,
}

/// Reductions along an axis (the WIT `reduce-op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Argmax,
}
pub use cpu::Cpu;
#[cfg(feature = "cuda")]
pub use cuda::Cuda;
pub use cuda::{CudaProbe, probe as probe_cuda};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Host bookkeeping charged per live tensor (handle, table slot, shape).
pub const PER_TENSOR_BYTES: u64 = 256;

/// Largest number of elements in one tensor (2^31: indices stay in i32 on
/// the GPU).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// A tensor: its shape and where its data is. Cloning shares the storage.
#[derive(Clone)]
pub struct Tensor {
    pub rows: usize,
    pub cols: usize,
    pub storage: Storage,
}

/// Where a tensor's data lives.
#[derive(Clone)]
pub enum Storage {
    /// A `Vec` behind the `Arc`: results move in without a copy.
    Cpu(Arc<Vec<f32>>),
    Cuda(Arc<cuda::Buffer>),
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }

    /// What the tensor counts against a kernel's cap: its storage plus the
    /// host's bookkeeping, so a flood of tiny tensors is bounded too.
    pub fn charge(&self) -> u64 {
        self.bytes() + PER_TENSOR_BYTES
    }

    pub fn device(&self) -> Device {
        match self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(_) => Device::Cuda,
        }
    }
}

/// The operations a backend implements. Shapes and arguments are checked
/// before any call; operands are on the backend's device.
pub trait Backend: Send + Sync {
    fn device(&self) -> Device;
    /// What the backend runs on, for `kernel-host info`.
    fn describe(&self) -> String;
    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Tensor, TensorError>;
    fn download(&self, t: &Tensor) -> Result<Vec<f32>, TensorError>;
    fn fill(&self, rows: usize, cols: usize, value: f32) -> Result<Tensor, TensorError>;
    /// `op(a) · op(b)`; `(m, k, n)` are the product's dimensions.
    fn matmul(&self, a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor, TensorError>;
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError>;
    fn scalar(&self, op: ScalarOp, a: &Tensor, value: f32) -> Result<Tensor, TensorError>;
    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor, TensorError>;
    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor, TensorError>;
    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize) -> Result<Tensor, TensorError>;
    fn transpose(&self, a: &Tensor) -> Result<Tensor, TensorError>;
    fn gather_rows(&self, a: &Tensor, rows: &[u32]) -> Result<Tensor, TensorError>;
    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor, TensorError>;
}

fn shape_error(message: String) -> TensorError {
    TensorError::ShapeMismatch(message)
}

fn invalid(message: String) -> TensorError {
    TensorError::InvalidArgument(message)
}

/// `[rows, cols]` from a WIT shape.
pub fn dims(shape: &[u32]) -> Result<(usize, usize), TensorError> {
    let &[rows, cols] = shape else {
        return Err(invalid(format!(
            "tensors are matrices: the shape needs 2 dimensions, not {} ({shape:?}); a vector is [1, n] or [n, 1]",
            shape.len()
        )));
    };
    let (rows, cols) = (rows as usize, cols as usize);
    if rows.saturating_mul(cols) > MAX_ELEMENTS {
        return Err(invalid(format!(
            "{rows}x{cols} has more than the 2^31 elements a tensor may hold"
        )));
    }
    Ok((rows, cols))
}

fn show(t: &Tensor) -> String {
    format!("{}x{}", t.rows, t.cols)
}

/// Checks that `b` is `a`'s shape or broadcasts to it.
pub fn check_broadcast(a: &Tensor, b: &Tensor) -> Result<(), TensorError> {
    let rows_ok = b.rows == a.rows || b.rows == 1;
    let cols_ok = b.cols == a.cols || b.cols == 1;
    if rows_ok && cols_ok {
        Ok(())
    } else {
        Err(shape_error(format!(
            "{} does not broadcast to {}: the second operand must be the same shape, 1x{}, {}x1 or 1x1",
            show(b),
            show(a),
            a.cols,
            a.rows
        )))
    }
}

/// The product's `(m, k, n)` for `op(a) · op(b)`.
pub fn matmul_dims(
    a: &Tensor,
    b: &Tensor,
    ta: bool,
    tb: bool,
) -> Result<(usize, usize, usize), TensorError> {
    let (m, k) = if ta {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    let (k2, n) = if tb {
        (b.cols, b.rows)
    } else {
        (b.rows, b.cols)
    };
    if k != k2 {
        return Err(shape_error(format!(
            "matmul of {}{} by {}{}: inner dimensions {k} and {k2} differ",
            show(a),
            if ta { "ᵀ" } else { "" },
            show(b),
            if tb { "ᵀ" } else { "" },
        )));
    }
    Ok((m, k, n))
}

pub fn check_axis(axis: u32) -> Result<usize, TensorError> {
    match axis {
        0 | 1 => Ok(axis as usize),
        _ => Err(invalid(format!("axis {axis}: tensors have axes 0 and 1"))),
    }
}

/// Deterministic f32 draws, the same on every device (xoshiro-style
/// SplitMix64; Box-Muller for normals).
pub fn random(len: usize, seed: u64, normal: Option<(f32, f32)>, range: (f32, f32)) -> Vec<f32> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    };
    match normal {
        Some((mean, std)) => (0..len)
            .map(|_| {
                let u1 = next().max(f64::MIN_POSITIVE);
                let u2 = next();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                mean + std * z as f32
            })
            .collect(),
        None => (0..len)
            .map(|_| range.0 + (range.1 - range.0) * next() as f32)
            .collect(),
    }
}

/// Tensors handed from one kernel to another (`publish` / `take`), shared
/// by every kernel of a sandbox. What waits here is no longer counted
/// against any kernel's cap, so the exchange has its own: at most
/// [`Exchange::MAX_BYTES`] in at most [`Exchange::MAX_ENTRIES`] names of at
/// most [`Exchange::MAX_NAME_BYTES`] each (names count against the bytes).
#[derive(Clone, Default)]
pub struct Exchange {
    slots: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl Exchange {
    pub const MAX_BYTES: u64 = 1 << 30;
    pub const MAX_ENTRIES: usize = 256;
    pub const MAX_NAME_BYTES: usize = 256;

    /// Publishes `tensor` under `name`, replacing what was there.
    pub fn publish(&self, name: &str, tensor: Tensor) -> Result<(), TensorError> {
        if name.len() > Self::MAX_NAME_BYTES {
            return Err(TensorError::InvalidArgument(format!(
                "a tensor name of {} bytes; names are at most {} bytes",
                name.len(),
                Self::MAX_NAME_BYTES
            )));
        }
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| TensorError::Backend("the tensor exchange is unusable".into()))?;
        let waiting: u64 = slots
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, t)| t.bytes() + n.len() as u64)
            .sum();
        let total = waiting + tensor.bytes() + name.len() as u64;
        if total > Self::MAX_BYTES {
            return Err(TensorError::OutOfMemory(format!(
                "published tensors would total {} MiB, over the exchange's {} MiB; take (or stop publishing) tensors first",
                total >> 20,
                Self::MAX_BYTES >> 20
            )));
        }
        if !slots.contains_key(name) && slots.len() >= Self::MAX_ENTRIES {
            return Err(TensorError::OutOfMemory(format!(
                "{} tensors are already waiting to be taken",
                slots.len()
            )));
        }
        slots.insert(name.to_string(), tensor);
        Ok(())
    }

    pub fn take(&self, name: &str) -> Option<Tensor> {
        self.slots.lock().ok()?.remove(name)
    }
}

/// A kernel's tensor bytes: live, peak, and the cap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accounts {
    pub cap: u64,
    pub live: u64,
    pub peak: u64,
    /// Tensors created (including results of operations).
    pub created: u64,
}

impl Accounts {
    /// Charges `bytes` for a new tensor, or says why it cannot be had.
    pub fn charge(&mut self, bytes: u64) -> Result<(), TensorError> {
        let live = self.live.saturating_add(bytes);
        if live > self.cap {
            return Err(TensorError::OutOfMemory(format!(
                "a {} KiB tensor would bring this kernel's tensors to {} MiB, over its cap of {} MiB; drop tensors it no longer needs, or raise `limits.tensor-mib`",
                bytes >> 10,
                live >> 20,
                self.cap >> 20
            )));
        }
        self.live = live;
        self.peak = self.peak.max(live);
        self.created += 1;
        Ok(())
    }

    pub fn release(&mut self, bytes: u64) {
        self.live = self.live.saturating_sub(bytes);
    }
}

/// Which backend a sandbox uses: `KERNEL_HOST_DEVICE` or the manifest's
/// `[tensor] device`, `auto` by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" | "" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(format!(
                "unknown device `{other}`: expected cpu, cuda or auto"
            )),
        }
    }
}

impl DeviceChoice {
    /// `KERNEL_HOST_DEVICE`, if set.
    pub fn from_env() -> Result<Option<DeviceChoice>, String> {
        match std::env::var("KERNEL_HOST_DEVICE") {
            Ok(v) => v
                .parse()
                .map(Some)
                .map_err(|e| format!("KERNEL_HOST_DEVICE: {e}")),
            Err(_) => Ok(None),
        }
    }

    /// The backend for this choice: `auto` takes CUDA when it works and the
    /// CPU otherwise; `cuda` without a usable GPU is an error saying why.
    pub fn backend(self) -> Result<Arc<dyn Backend>, String> {
        match self {
            DeviceChoice::Cpu => Ok(Arc::new(Cpu::new())),
            DeviceChoice::Cuda => match cuda::probe() {
                CudaProbe::Ready(cuda) => Ok(cuda),
                CudaProbe::Unavailable(why) => Err(format!(
                    "device `cuda` was asked for, but CUDA is not usable here: {why}"
                )),
            },
            DeviceChoice::Auto => match cuda::probe() {
                CudaProbe::Ready(cuda) => Ok(cuda),
                CudaProbe::Unavailable(why) => {
                    tracing::debug!("tensors on the CPU: {why}");
                    Ok(Arc::new(Cpu::new()))
                }
            },
        }
    }
}

/// What `kernel-host info` prints about the tensor backends.
pub fn report() -> Vec<(String, String)> {
    let cpu = Cpu::new();
    let mut lines = vec![("cpu".to_string(), cpu.describe())];
    lines.push((
        "cuda".to_string(),
        match cuda::probe() {
            CudaProbe::Ready(cuda) => cuda.describe(),
            CudaProbe::Unavailable(why) => format!("unavailable: {why}"),
        },
    ));
    let choice = DeviceChoice::from_env();
    lines.push((
        "selected".to_string(),
        match choice {
            Err(e) => e,
            Ok(choice) => {
                let choice = choice.unwrap_or_default();
                match choice.backend() {
                    Ok(b) => format!(
                        "{} (asked: {}{})",
                        match b.device() {
                            Device::Cpu => "cpu",
                            Device::Cuda => "cuda",
                        },
                        match choice {
                            DeviceChoice::Auto => "auto",
                            DeviceChoice::Cpu => "cpu",
                            DeviceChoice::Cuda => "cuda",
                        },
                        if std::env::var_os("KERNEL_HOST_DEVICE").is_some() {
                            ", from KERNEL_HOST_DEVICE"
                        } else {
                            "; set KERNEL_HOST_DEVICE=cpu|cuda|auto to choose"
                        }
                    ),
                    Err(e) => e,
                }
            }
        },
    ));
    lines
}

/// The tensor backend of a sandbox, chosen on first use, and the exchange
/// its kernels hand tensors over through. Cheap to clone.
#[derive(Clone)]
pub struct Tensors {
    choice: DeviceChoice,
    backend: Arc<std::sync::OnceLock<Result<Arc<dyn Backend>, String>>>,
    pub exchange: Exchange,
}

impl Tensors {
    pub fn new(choice: DeviceChoice) -> Tensors {
        Tensors {
            choice,
            backend: Arc::default(),
            exchange: Exchange::default(),
        }
    }

    pub fn choice(&self) -> DeviceChoice {
        self.choice
    }

    /// `cpu` or `cuda` once a kernel has used tensors (the backend is
    /// chosen on first use), else the choice (`auto`, `cpu`, `cuda`).
    pub fn device_name(&self) -> String {
        match self.backend.get() {
            Some(Ok(backend)) => match backend.device() {
                Device::Cpu => "cpu".into(),
                Device::Cuda => "cuda".into(),
            },
            _ => match self.choice {
                DeviceChoice::Auto => "auto".into(),
                DeviceChoice::Cpu => "cpu".into(),
                DeviceChoice::Cuda => "cuda".into(),
            },
        }
    }

    /// The backend, selected (and for CUDA, started) on first use.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, TensorError> {
        self.backend
            .get_or_init(|| self.choice.backend())
            .clone()
            .map_err(TensorError::Backend)
    }
}

/// The tensor side of one kernel's store.
pub struct StoreTensors {
    pub tensors: Tensors,
    pub accounts: Accounts,
}

impl StoreTensors {
    pub fn new(tensors: Tensors, cap: u64) -> StoreTensors {
        StoreTensors {
            tensors,
            accounts: Accounts {
                cap,
                ..Accounts::default()
            },
        }
    }
}
