//! `kernel-host:kernel/tensor` for kernels: every call checks its operands,
//! charges the result against the kernel's cap, and runs on the sandbox's
//! backend. Handles index the kernel's own resource table, so a handle is
//! meaningless in any other kernel; `publish`/`take` is the one way across.

// Each host method's body runs in the tensor crate's error type and is
// converted to the WIT's once, at the boundary: `to_wit((|| ...)())`.
#![allow(clippy::redundant_closure_call)]

use crate::state::HostState;
use kernel_host_tensor::{
    BinaryOp, Device, ReduceOp, ScalarOp, Tensor, TensorError, UnaryOp, check_axis,
    check_broadcast, dims, matmul_dims,
};
use kernel_host_types::bindings::kernel_host::kernel::tensor::{self as wit, Host, HostTensor};
use wasmtime::component::Resource;

type Result<T> = std::result::Result<T, TensorError>;
/// What the guest sees: the same outcome in the WIT's types.
type WitResult<T> = std::result::Result<T, wit::TensorError>;

fn to_wit<T>(result: Result<T>) -> WitResult<T> {
    result.map_err(wit_error)
}

fn wit_error(e: TensorError) -> wit::TensorError {
    match e {
        TensorError::ShapeMismatch(m) => wit::TensorError::ShapeMismatch(m),
        TensorError::OutOfMemory(m) => wit::TensorError::OutOfMemory(m),
        TensorError::InvalidArgument(m) => wit::TensorError::InvalidArgument(m),
        TensorError::Backend(m) => wit::TensorError::Backend(m),
        TensorError::NotFound(m) => wit::TensorError::NotFound(m),
    }
}

fn binary_op(op: wit::BinaryOp) -> BinaryOp {
    match op {
        wit::BinaryOp::Add => BinaryOp::Add,
        wit::BinaryOp::Sub => BinaryOp::Sub,
        wit::BinaryOp::Mul => BinaryOp::Mul,
        wit::BinaryOp::Div => BinaryOp::Div,
        wit::BinaryOp::Maximum => BinaryOp::Maximum,
        wit::BinaryOp::Minimum => BinaryOp::Minimum,
    }
}

fn scalar_op(op: wit::ScalarOp) -> ScalarOp {
    match op {
        wit::ScalarOp::Add => ScalarOp::Add,
        wit::ScalarOp::Sub => ScalarOp::Sub,
        wit::ScalarOp::Mul => ScalarOp::Mul,
        wit::ScalarOp::Div => ScalarOp::Div,
        wit::ScalarOp::Pow => ScalarOp::Pow,
        wit::ScalarOp::Maximum => ScalarOp::Maximum,
        wit::ScalarOp::Minimum => ScalarOp::Minimum,
        wit::ScalarOp::Rsub => ScalarOp::Rsub,
    }
}

fn unary_op(op: wit::UnaryOp) -> UnaryOp {
    match op {
        wit::UnaryOp::Neg => UnaryOp::Neg,
        wit::UnaryOp::Exp => UnaryOp::Exp,
        wit::UnaryOp::Log => UnaryOp::Log,
        wit::UnaryOp::Sqrt => UnaryOp::Sqrt,
        wit::UnaryOp::Abs => UnaryOp::Abs,
        wit::UnaryOp::Tanh => UnaryOp::Tanh,
        wit::UnaryOp::Sigmoid => UnaryOp::Sigmoid,
        wit::UnaryOp::Relu => UnaryOp::Relu,
        wit::UnaryOp::Step => UnaryOp::Step,
        wit::UnaryOp::Square => UnaryOp::Square,
    }
}

fn reduce_op(op: wit::ReduceOp) -> ReduceOp {
    match op {
        wit::ReduceOp::Sum => ReduceOp::Sum,
        wit::ReduceOp::Mean => ReduceOp::Mean,
        wit::ReduceOp::Max => ReduceOp::Max,
        wit::ReduceOp::Argmax => ReduceOp::Argmax,
    }
}

fn gone(e: impl std::fmt::Display) -> TensorError {
    TensorError::InvalidArgument(format!("not a live tensor of this kernel: {e}"))
}

impl HostState {
    /// Host work a kernel asks for counts against its call's wall clock:
    /// past the deadline, an operation waits (so the call's timer fires and
    /// the call ends as a timeout) instead of computing. A CPU matrix
    /// product that could reach the deadline checks it between blocks of
    /// rows (~90 ms of work each); other operations are linear in their
    /// operands and are not interrupted.
    async fn pace(&mut self) -> Result<()> {
        // Long CPU operations check it between blocks of work.
        kernel_host_tensor::deadline::set(self.deadline);
        if self.past_deadline() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            return Err(TensorError::Backend(
                "the call's time limit has passed: no more tensor operations".into(),
            ));
        }
        Ok(())
    }

    fn tensor(&self, handle: &Resource<Tensor>) -> Result<Tensor> {
        self.table_ref().get(handle).cloned().map_err(gone)
    }

    /// Charges and stores a new tensor, returning its handle.
    fn keep(&mut self, tensor: Result<Tensor>) -> Result<Resource<Tensor>> {
        let tensor = tensor?;
        self.tensors.accounts.charge(tensor.charge())?;
        let bytes = tensor.charge();
        self.table().push(tensor).map_err(|e| {
            self.tensors.accounts.release(bytes);
            TensorError::OutOfMemory(format!("too many live tensors: {e}"))
        })
    }

    /// Refuses a `rows x cols` result the kernel's cap (or the element
    /// limit) does not allow, before anything is allocated.
    fn fits(&self, rows: usize, cols: usize) -> Result<()> {
        let elements = rows
            .checked_mul(cols)
            .filter(|&n| n <= kernel_host_tensor::MAX_ELEMENTS);
        let Some(elements) = elements else {
            return Err(TensorError::InvalidArgument(format!(
                "a {rows}x{cols} result would have more than the 2^31 elements a tensor may hold"
            )));
        };
        let mut accounts = self.tensors.accounts;
        accounts.charge(elements as u64 * 4 + kernel_host_tensor::PER_TENSOR_BYTES)
    }

    fn backend(&self) -> Result<std::sync::Arc<dyn kernel_host_tensor::Backend>> {
        self.tensors.tensors.backend()
    }

    /// `tensor` on the backend's device (tensors taken from another kernel
    /// are already there: one backend per sandbox).
    fn create(
        &mut self,
        shape: &[u32],
        data: impl FnOnce(usize) -> Result<Vec<f32>>,
    ) -> Result<Resource<Tensor>> {
        let (rows, cols) = dims(shape)?;
        self.fits(rows, cols)?;
        let values = data(rows * cols)?;
        let backend = self.backend()?;
        let made = backend.upload(rows, cols, &values);
        self.keep(made)
    }

    /// A tensor of `value`s, made on the device.
    fn filled(&mut self, shape: &[u32], value: f32) -> Result<Resource<Tensor>> {
        let (rows, cols) = dims(shape)?;
        self.fits(rows, cols)?;
        let made = self.backend()?.fill(rows, cols, value);
        self.keep(made)
    }

    /// Runs an operation on `handle`'s tensor: `shape` checks the operands
    /// and gives the result's shape, which must fit the cap before `f`
    /// computes it.
    fn op(
        &mut self,
        handle: &Resource<Tensor>,
        shape: impl FnOnce(&Tensor) -> Result<(usize, usize)>,
        f: impl FnOnce(&dyn kernel_host_tensor::Backend, &Tensor) -> Result<Tensor>,
    ) -> Result<Resource<Tensor>> {
        let a = self.tensor(handle)?;
        let (rows, cols) = shape(&a)?;
        self.fits(rows, cols)?;
        let backend = self.backend()?;
        let out = f(&*backend, &a);
        self.keep(out)
    }
}

/// The shape of an element-wise result: its operand's.
fn same(a: &Tensor) -> Result<(usize, usize)> {
    Ok((a.rows, a.cols))
}

fn exact(len: usize, rows: usize, cols: usize) -> Result<()> {
    if len == rows * cols {
        Ok(())
    } else {
        Err(TensorError::InvalidArgument(format!(
            "{len} values for a {rows}x{cols} tensor ({} needed)",
            rows * cols
        )))
    }
}

impl HostTensor for HostState {
    async fn from_list(&mut self, shape: Vec<u32>, data: Vec<f32>) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.create(&shape, |n| {
                exact(data.len(), n, 1)?;
                Ok(data)
            })
        })())
    }

    async fn from_f64(&mut self, shape: Vec<u32>, data: Vec<f64>) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.create(&shape, |n| {
                exact(data.len(), n, 1)?;
                Ok(data.iter().map(|&v| v as f32).collect())
            })
        })())
    }

    async fn zeros(&mut self, shape: Vec<u32>) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.filled(&shape, 0.0)
        })())
    }

    async fn ones(&mut self, shape: Vec<u32>) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.filled(&shape, 1.0)
        })())
    }

    async fn random_uniform(
        &mut self,
        shape: Vec<u32>,
        low: f32,
        high: f32,
        seed: u64,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less)
                || !low.is_finite()
                || !high.is_finite()
            {
                return Err(TensorError::InvalidArgument(format!(
                    "random-uniform needs low < high, not [{low}, {high})"
                )));
            }
            self.create(&shape, |n| {
                Ok(kernel_host_tensor::random(n, seed, None, (low, high)))
            })
        })())
    }

    async fn random_normal(
        &mut self,
        shape: Vec<u32>,
        mean: f32,
        std: f32,
        seed: u64,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            if std.is_nan() || std < 0.0 || !std.is_finite() {
                return Err(TensorError::InvalidArgument(format!(
                    "random-normal needs a standard deviation >= 0, not {std}"
                )));
            }
            self.create(&shape, |n| {
                Ok(kernel_host_tensor::random(
                    n,
                    seed,
                    Some((mean, std)),
                    (0.0, 1.0),
                ))
            })
        })())
    }

    async fn concat(
        &mut self,
        parts: Vec<Resource<Tensor>>,
        axis: u32,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let axis = check_axis(axis)?;
            let parts = parts
                .iter()
                .map(|p| self.tensor(p))
                .collect::<Result<Vec<_>>>()?;
            let Some(first) = parts.first() else {
                return Err(TensorError::InvalidArgument("concat of no tensors".into()));
            };
            for p in &parts {
                let fits = if axis == 0 {
                    p.cols == first.cols
                } else {
                    p.rows == first.rows
                };
                if !fits {
                    return Err(TensorError::ShapeMismatch(format!(
                        "concat along axis {axis}: {}x{} does not fit {}x{}",
                        p.rows, p.cols, first.rows, first.cols
                    )));
                }
            }
            let (rows, cols) = if axis == 0 {
                (parts.iter().map(|p| p.rows).sum(), first.cols)
            } else {
                (first.rows, parts.iter().map(|p| p.cols).sum())
            };
            self.fits(rows, cols)?;
            let refs: Vec<&Tensor> = parts.iter().collect();
            let backend = self.backend()?;
            let out = backend.concat(&refs, axis);
            self.keep(out)
        })())
    }

    async fn shape(&mut self, handle: Resource<Tensor>) -> Vec<u32> {
        self.tensor(&handle)
            .map(|t| vec![t.rows as u32, t.cols as u32])
            .unwrap_or_default()
    }

    async fn device(&mut self, handle: Resource<Tensor>) -> wit::Device {
        match self.tensor(&handle).map_or(Device::Cpu, |t| t.device()) {
            Device::Cpu => wit::Device::Cpu,
            Device::Cuda => wit::Device::Cuda,
        }
    }

    async fn to_list(&mut self, handle: Resource<Tensor>) -> WitResult<Vec<f32>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Vec<f32>> {
            let t = self.tensor(&handle)?;
            self.backend()?.download(&t)
        })())
    }

    async fn matmul(
        &mut self,
        handle: Resource<Tensor>,
        other: Resource<Tensor>,
        transpose_self: bool,
        transpose_other: bool,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let b = self.tensor(&other)?;
            self.op(
                &handle,
                |a| matmul_dims(a, &b, transpose_self, transpose_other).map(|(m, _, n)| (m, n)),
                |backend, a| backend.matmul(a, &b, transpose_self, transpose_other),
            )
        })())
    }

    async fn binary(
        &mut self,
        handle: Resource<Tensor>,
        op: wit::BinaryOp,
        other: Resource<Tensor>,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let b = self.tensor(&other)?;
            self.op(
                &handle,
                |a| check_broadcast(a, &b).map(|()| (a.rows, a.cols)),
                |backend, a| backend.binary(binary_op(op), a, &b),
            )
        })())
    }

    async fn scalar(
        &mut self,
        handle: Resource<Tensor>,
        op: wit::ScalarOp,
        value: f32,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.op(&handle, same, |backend, a| {
                backend.scalar(scalar_op(op), a, value)
            })
        })())
    }

    async fn unary(
        &mut self,
        handle: Resource<Tensor>,
        op: wit::UnaryOp,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.op(&handle, same, |backend, a| backend.unary(unary_op(op), a))
        })())
    }

    async fn softmax(
        &mut self,
        handle: Resource<Tensor>,
        axis: u32,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let axis = check_axis(axis)?;
            self.op(&handle, same, |backend, a| backend.softmax(a, axis))
        })())
    }

    async fn reduce(
        &mut self,
        handle: Resource<Tensor>,
        op: wit::ReduceOp,
        axis: u32,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let axis = check_axis(axis)?;
            self.op(
                &handle,
                |a| Ok(if axis == 0 { (1, a.cols) } else { (a.rows, 1) }),
                |backend, a| backend.reduce(reduce_op(op), a, axis),
            )
        })())
    }

    async fn transpose(&mut self, handle: Resource<Tensor>) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.op(
                &handle,
                |a| Ok((a.cols, a.rows)),
                |backend, a| backend.transpose(a),
            )
        })())
    }

    async fn slice_rows(
        &mut self,
        handle: Resource<Tensor>,
        start: u32,
        end: u32,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.op(
                &handle,
                |a| {
                    if start > end || end as usize > a.rows {
                        return Err(TensorError::InvalidArgument(format!(
                            "rows {start}..{end} of a tensor with {} rows",
                            a.rows
                        )));
                    }
                    Ok(((end - start) as usize, a.cols))
                },
                |backend, a| backend.gather_rows(a, &(start..end).collect::<Vec<u32>>()),
            )
        })())
    }

    async fn gather_rows(
        &mut self,
        handle: Resource<Tensor>,
        indices: Vec<u32>,
    ) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            self.op(
                &handle,
                |a| match indices.iter().find(|&&i| i as usize >= a.rows) {
                    Some(bad) => Err(TensorError::InvalidArgument(format!(
                        "row {bad} of a tensor with {} rows",
                        a.rows
                    ))),
                    None => Ok((indices.len(), a.cols)),
                },
                |backend, a| backend.gather_rows(a, &indices),
            )
        })())
    }

    async fn drop(&mut self, handle: Resource<Tensor>) -> wasmtime::Result<()> {
        let tensor = self.table().delete(handle)?;
        self.tensors.accounts.release(tensor.charge());
        Ok(())
    }
}

impl Host for HostState {
    async fn publish(&mut self, name: String, value: Resource<Tensor>) -> WitResult<()> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<()> {
            let tensor = self.tensor(&value)?;
            self.tensors.tensors.exchange.publish(&name, tensor)
        })())
    }

    async fn take(&mut self, name: String) -> WitResult<Resource<Tensor>> {
        self.pace().await.map_err(wit_error)?;
        to_wit((|| -> Result<Resource<Tensor>> {
            let tensor = self.tensors.tensors.exchange.take(&name).ok_or_else(|| {
                TensorError::NotFound(format!("no tensor was published as `{name}`"))
            })?;
            self.keep(Ok(tensor))
        })())
    }
}
