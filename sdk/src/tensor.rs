//! Host tensors: f32 matrices that live in kernel-host, on the GPU when
//! there is one, and that a kernel holds by handle.
//!
//! Heavy math (matrix products, element-wise maps, reductions) then runs
//! natively in the host instead of in wasm, and the data is not copied
//! through the sandbox boundary on every call: only [`Tensor::from_rows`]
//! (in) and [`Tensor::to_vec`] (out) copy.
//!
//! ```ignore
//! use kernel_sdk::tensor::Tensor;
//! let x = Tensor::from_matrix(&frame.to_matrix()?)?;      // n x d
//! let w = Tensor::normal(d, k, 0.0, 0.1, seed)?;          // d x k
//! let p = x.matmul(&w)?.softmax(1)?;                      // n x k, rows sum to 1
//! let best = p.argmax(1)?.to_vec()?;                      // class index per row
//! ```
//!
//! Every operation returns a new tensor and leaves its operands alone.
//! Binary operations broadcast a `1 x n` row, an `m x 1` column or a `1 x 1`
//! scalar over the other operand. Errors ([`TensorError`]) are values: a
//! shape mismatch, the kernel's tensor-memory cap (`limits.tensor-mib`), a
//! backend failure. Tensors are freed when dropped, and all of a kernel's
//! tensors when its instance goes. Natively (unit tests) there is no host:
//! every call returns [`TensorError::Backend`].

use crate::__bindings::kernel_host::kernel::tensor as wit;
use crate::{KernelError, Matrix};
pub use wit::{BinaryOp, Device, ReduceOp, ScalarOp, TensorError, UnaryOp};

pub type Result<T> = std::result::Result<T, TensorError>;

/// A handle to a host-owned f32 matrix.
pub struct Tensor {
    inner: wit::Tensor,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.shape();
        write!(f, "Tensor({rows}x{cols})")
    }
}

impl From<TensorError> for KernelError {
    fn from(e: TensorError) -> KernelError {
        KernelError::Failed(match e {
            TensorError::ShapeMismatch(m) => format!("tensor shape mismatch: {m}"),
            TensorError::OutOfMemory(m) => format!("out of tensor memory: {m}"),
            TensorError::InvalidArgument(m) => format!("tensor argument: {m}"),
            TensorError::Backend(m) => format!("tensor backend: {m}"),
            TensorError::NotFound(m) => format!("tensor not found: {m}"),
        })
    }
}

/// Whether the host tensor API can be called from here.
fn host() -> Result<()> {
    if cfg!(target_arch = "wasm32") {
        Ok(())
    } else {
        Err(TensorError::Backend(
            "host tensors exist only inside kernel-host (this is a native build)".into(),
        ))
    }
}

fn shape(rows: usize, cols: usize) -> Result<[u32; 2]> {
    let dim = |n: usize| {
        u32::try_from(n)
            .map_err(|_| TensorError::InvalidArgument(format!("dimension {n} is too large")))
    };
    Ok([dim(rows)?, dim(cols)?])
}

fn wrap(inner: wit::Tensor) -> Tensor {
    Tensor { inner }
}

impl Tensor {
    /// A `rows x cols` tensor from row-major `data`.
    pub fn from_rows(rows: usize, cols: usize, data: &[f32]) -> Result<Tensor> {
        host()?;
        wit::Tensor::from_list(&shape(rows, cols)?, data).map(wrap)
    }

    /// The matrix, rounded to f32.
    pub fn from_matrix(m: &Matrix) -> Result<Tensor> {
        host()?;
        wit::Tensor::from_f64(&shape(m.rows, m.cols)?, &m.data).map(wrap)
    }

    pub fn zeros(rows: usize, cols: usize) -> Result<Tensor> {
        host()?;
        wit::Tensor::zeros(&shape(rows, cols)?).map(wrap)
    }

    pub fn ones(rows: usize, cols: usize) -> Result<Tensor> {
        host()?;
        wit::Tensor::ones(&shape(rows, cols)?).map(wrap)
    }

    /// Uniform in `[low, high)`, the same for a seed on every device.
    pub fn uniform(rows: usize, cols: usize, low: f32, high: f32, seed: u64) -> Result<Tensor> {
        host()?;
        wit::Tensor::random_uniform(&shape(rows, cols)?, low, high, seed).map(wrap)
    }

    /// Normal with `mean` and `std`, the same for a seed on every device.
    pub fn normal(rows: usize, cols: usize, mean: f32, std: f32, seed: u64) -> Result<Tensor> {
        host()?;
        wit::Tensor::random_normal(&shape(rows, cols)?, mean, std, seed).map(wrap)
    }

    /// `parts` joined along `axis` (0: stacked rows, 1: side by side).
    pub fn concat(parts: &[&Tensor], axis: u32) -> Result<Tensor> {
        host()?;
        let parts: Vec<&wit::Tensor> = parts.iter().map(|t| &t.inner).collect();
        wit::Tensor::concat(&parts, axis).map(wrap)
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        if host().is_err() {
            return (0, 0);
        }
        let s = self.inner.shape();
        (
            s.first().copied().unwrap_or(0) as usize,
            s.get(1).copied().unwrap_or(0) as usize,
        )
    }

    pub fn device(&self) -> Device {
        if host().is_err() {
            return Device::Cpu;
        }
        self.inner.device()
    }

    /// The data, row-major (a copy out of the host).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        host()?;
        self.inner.to_list()
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)`, transposing each when asked (no copy).
    pub fn matmul_t(&self, other: &Tensor, t_self: bool, t_other: bool) -> Result<Tensor> {
        host()?;
        self.inner.matmul(&other.inner, t_self, t_other).map(wrap)
    }

    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        host()?;
        self.inner.binary(op, &other.inner).map(wrap)
    }

    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, other)
    }

    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, other)
    }

    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, other)
    }

    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, other)
    }

    pub fn scalar(&self, op: ScalarOp, value: f32) -> Result<Tensor> {
        host()?;
        self.inner.scalar(op, value).map(wrap)
    }

    pub fn add_scalar(&self, value: f32) -> Result<Tensor> {
        self.scalar(ScalarOp::Add, value)
    }

    pub fn mul_scalar(&self, value: f32) -> Result<Tensor> {
        self.scalar(ScalarOp::Mul, value)
    }

    pub fn powf(&self, value: f32) -> Result<Tensor> {
        self.scalar(ScalarOp::Pow, value)
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        host()?;
        self.inner.unary(op).map(wrap)
    }

    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }

    pub fn ln(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }

    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }

    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }

    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }

    /// 1 where the value is positive, else 0 (relu's derivative).
    pub fn step(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Step)
    }

    pub fn softmax(&self, axis: u32) -> Result<Tensor> {
        host()?;
        self.inner.softmax(axis).map(wrap)
    }

    pub fn reduce(&self, op: ReduceOp, axis: u32) -> Result<Tensor> {
        host()?;
        self.inner.reduce(op, axis).map(wrap)
    }

    pub fn sum(&self, axis: u32) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axis)
    }

    pub fn mean(&self, axis: u32) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axis)
    }

    /// The index of the largest value along `axis`, as f32.
    pub fn argmax(&self, axis: u32) -> Result<Tensor> {
        self.reduce(ReduceOp::Argmax, axis)
    }

    /// The transpose (a copy).
    pub fn t(&self) -> Result<Tensor> {
        host()?;
        self.inner.transpose().map(wrap)
    }

    /// Rows `start..end`.
    pub fn slice_rows(&self, start: usize, end: usize) -> Result<Tensor> {
        host()?;
        let [start, end] = shape(start, end)?;
        self.inner.slice_rows(start, end).map(wrap)
    }

    /// The rows at `indices`, in order.
    pub fn gather_rows(&self, indices: &[u32]) -> Result<Tensor> {
        host()?;
        self.inner.gather_rows(indices).map(wrap)
    }

    /// Hands this tensor to a later kernel of the pipeline, which gets it
    /// with [`Tensor::take`] without a copy through either sandbox.
    pub fn publish(&self, name: &str) -> Result<()> {
        host()?;
        wit::publish(name, &self.inner)
    }

    /// Takes the tensor an earlier kernel published as `name`.
    pub fn take(name: &str) -> Result<Tensor> {
        host()?;
        wit::take(name).map(wrap)
    }
}
