//! The CPU backend: row-major `f32` buffers; matrix products through
//! `ndarray` (matrixmultiply's sgemm, threaded); everything else as plain
//! loops the compiler vectorizes.

use super::{Backend, BinaryOp, Device, ReduceOp, ScalarOp, Storage, Tensor, TensorError, UnaryOp};
use ndarray::ArrayView2;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// Work for one thread between two deadline checks in a matrix product:
/// about 90 ms at ~90 GFLOP/s. A block of rows re-packs the whole right
/// operand, so blocks must be large: at 25 ms a 4096² product ran in 64
/// blocks at 0.26× of one `dot`, at 90 ms in 4 blocks at 0.73× (H200
/// machine, 4 threads).
const BLOCK_FLOPS_PER_THREAD: usize = 1 << 33;

/// A pessimistic sgemm rate for one thread (45–95 GFLOP/s measured): a
/// product that would end before its deadline even at this rate runs as
/// one block, with no deadline checks.
const SLOW_FLOPS_PER_THREAD: f64 = 5e9;

/// The threads matrixmultiply runs a product on: `MATMUL_NUM_THREADS`
/// when set, else the physical cores, at most 4 (matrixmultiply's own
/// cap; read as it reads them, once per process). Read on every product,
/// counting the cores (`/proc/cpuinfo`) made the penguins MLP's small
/// products 3× slower here and 20× on a 16-core machine.
fn matmul_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        let asked = match std::env::var("MATMUL_NUM_THREADS") {
            Ok(s) if !s.is_empty() => s.parse().unwrap_or(1),
            _ => num_cpus::get_physical(),
        };
        asked.clamp(1, 4)
    })
}

impl Cpu {
    pub fn new() -> Cpu {
        Cpu
    }
}

fn data(t: &Tensor) -> Result<&[f32], TensorError> {
    match &t.storage {
        Storage::Cpu(data) => Ok(data),
        Storage::Cuda(_) => Err(TensorError::Backend(
            "a CUDA tensor was given to the CPU backend".into(),
        )),
    }
}

fn tensor(rows: usize, cols: usize, data: Vec<f32>) -> Tensor {
    Tensor {
        rows,
        cols,
        storage: Storage::Cpu(Arc::new(data)),
    }
}

fn view(t: &Tensor) -> Result<ArrayView2<'_, f32>, TensorError> {
    ArrayView2::from_shape((t.rows, t.cols), data(t)?)
        .map_err(|e| TensorError::Backend(e.to_string()))
}

pub(super) fn binary_fn(op: BinaryOp) -> fn(f32, f32) -> f32 {
    match op {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        BinaryOp::Maximum => f32::max,
        BinaryOp::Minimum => f32::min,
    }
}

pub(super) fn scalar_fn(op: ScalarOp) -> fn(f32, f32) -> f32 {
    match op {
        ScalarOp::Add => |a, v| a + v,
        ScalarOp::Sub => |a, v| a - v,
        ScalarOp::Mul => |a, v| a * v,
        ScalarOp::Div => |a, v| a / v,
        ScalarOp::Pow => f32::powf,
        ScalarOp::Maximum => f32::max,
        ScalarOp::Minimum => f32::min,
        ScalarOp::Rsub => |a, v| v - a,
    }
}

pub(super) fn unary_fn(op: UnaryOp) -> fn(f32) -> f32 {
    match op {
        UnaryOp::Neg => |x| -x,
        UnaryOp::Exp => f32::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Abs => f32::abs,
        UnaryOp::Tanh => f32::tanh,
        UnaryOp::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Relu => |x| x.max(0.0),
        UnaryOp::Step => |x| if x > 0.0 { 1.0 } else { 0.0 },
        UnaryOp::Square => |x| x * x,
    }
}

/// `a · b` in blocks of `block` rows of `a` (at least one), the deadline
/// checked before each block; row-major, written in place.
fn product_in_blocks(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    block: usize,
) -> Result<Tensor, TensorError> {
    let m = a.nrows();
    if block >= m {
        // One block: the product as ndarray lays it out; transposed
        // operands can give a column-major one.
        let product = a.dot(&b);
        return row_major(if product.is_standard_layout() {
            product
        } else {
            product.as_standard_layout().into_owned()
        });
    }
    let mut product = ndarray::Array2::<f32>::zeros((m, b.ncols()));
    for start in (0..m).step_by(block.max(1)) {
        if crate::deadline::passed() {
            return Err(TensorError::Backend(
                "the call's time limit passed during a matrix product".into(),
            ));
        }
        let end = (start + block.max(1)).min(m);
        ndarray::linalg::general_mat_mul(
            1.0,
            &a.slice(ndarray::s![start..end, ..]),
            &b,
            0.0,
            &mut product.slice_mut(ndarray::s![start..end, ..]),
        );
    }
    row_major(product)
}

/// A standard-layout product as a tensor, its buffer moved in.
fn row_major(product: ndarray::Array2<f32>) -> Result<Tensor, TensorError> {
    let (m, n) = product.dim();
    let (values, offset) = product.into_raw_vec_and_offset();
    if offset.is_some_and(|o| o != 0) || values.len() != m * n {
        return Err(TensorError::Backend("unexpected matmul layout".into()));
    }
    Ok(tensor(m, n, values))
}

impl Backend for Cpu {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn describe(&self) -> String {
        let threads = matmul_threads();
        let simd = if cfg!(target_arch = "x86_64") {
            let mut found = Vec::new();
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    found.push("avx2");
                }
                if std::arch::is_x86_feature_detected!("fma") {
                    found.push("fma");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    found.push("avx512f");
                }
            }
            found.join("+")
        } else {
            String::new()
        };
        format!(
            "ndarray/matrixmultiply sgemm, {threads} threads (matrixmultiply uses at most 4; MATMUL_NUM_THREADS to change){}",
            if simd.is_empty() {
                String::new()
            } else {
                format!(", {simd}")
            }
        )
    }

    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Tensor, TensorError> {
        Ok(tensor(rows, cols, data.to_vec()))
    }

    fn download(&self, t: &Tensor) -> Result<Vec<f32>, TensorError> {
        Ok(data(t)?.to_vec())
    }

    fn fill(&self, rows: usize, cols: usize, value: f32) -> Result<Tensor, TensorError> {
        Ok(tensor(rows, cols, vec![value; rows * cols]))
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor, TensorError> {
        let (a, b) = (view(a)?, view(b)?);
        let a = if ta { a.t() } else { a };
        let b = if tb { b.t() } else { b };
        // A product that could reach the call's deadline runs in blocks of
        // rows, the deadline checked between them, so one call cannot run
        // far past its time limit; one sure to end well before it runs
        // whole (each block re-packs the right operand).
        let flops_per_row = 2 * a.ncols().max(1) * b.ncols().max(1);
        let threads = matmul_threads();
        let slowest =
            flops_per_row as f64 * a.nrows() as f64 / (SLOW_FLOPS_PER_THREAD * threads as f64);
        let block = match crate::deadline::remaining() {
            Some(left) if left.as_secs_f64() <= slowest => {
                BLOCK_FLOPS_PER_THREAD.saturating_mul(threads) / flops_per_row
            }
            _ => a.nrows(),
        };
        product_in_blocks(a, b, block)
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
        let f = binary_fn(op);
        let (x, y) = (data(a)?, data(b)?);
        let mut out = Vec::with_capacity(a.len());
        for r in 0..a.rows {
            let row = &x[r * a.cols..(r + 1) * a.cols];
            let br = if b.rows == 1 { 0 } else { r };
            let other = &y[br * b.cols..(br + 1) * b.cols];
            if b.cols == 1 {
                let v = other[0];
                out.extend(row.iter().map(|&p| f(p, v)));
            } else {
                out.extend(row.iter().zip(other).map(|(&p, &q)| f(p, q)));
            }
        }
        Ok(tensor(a.rows, a.cols, out))
    }

    fn scalar(&self, op: ScalarOp, a: &Tensor, value: f32) -> Result<Tensor, TensorError> {
        let f = scalar_fn(op);
        let out = data(a)?.iter().map(|&x| f(x, value)).collect();
        Ok(tensor(a.rows, a.cols, out))
    }

    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor, TensorError> {
        let f = unary_fn(op);
        let out = data(a)?.iter().map(|&x| f(x)).collect();
        Ok(tensor(a.rows, a.cols, out))
    }

    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor, TensorError> {
        if axis == 0 {
            let t = self.transpose(a)?;
            return self.transpose(&self.softmax(&t, 1)?);
        }
        let x = data(a)?;
        let mut out = Vec::with_capacity(a.len());
        for row in x.chunks(a.cols.max(1)).take(a.rows) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let start = out.len();
            out.extend(row.iter().map(|&v| (v - max).exp()));
            let sum: f32 = out[start..].iter().sum();
            for v in &mut out[start..] {
                *v /= sum;
            }
        }
        Ok(tensor(a.rows, a.cols, out))
    }

    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize) -> Result<Tensor, TensorError> {
        let x = data(a)?;
        let (lines, len) = if axis == 0 {
            (a.cols, a.rows)
        } else {
            (a.rows, a.cols)
        };
        let at = |line: usize, i: usize| {
            if axis == 0 {
                x[i * a.cols + line]
            } else {
                x[line * a.cols + i]
            }
        };
        let out: Vec<f32> = (0..lines)
            .map(|line| match op {
                ReduceOp::Sum => (0..len).map(|i| f64::from(at(line, i))).sum::<f64>() as f32,
                ReduceOp::Mean => {
                    ((0..len).map(|i| f64::from(at(line, i))).sum::<f64>() / len.max(1) as f64)
                        as f32
                }
                ReduceOp::Max => (0..len)
                    .map(|i| at(line, i))
                    .fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Argmax => {
                    let mut best = 0;
                    for i in 1..len {
                        if at(line, i) > at(line, best) {
                            best = i;
                        }
                    }
                    best as f32
                }
            })
            .collect();
        Ok(if axis == 0 {
            tensor(1, a.cols, out)
        } else {
            tensor(a.rows, 1, out)
        })
    }

    fn transpose(&self, a: &Tensor) -> Result<Tensor, TensorError> {
        let t = view(a)?.t().as_standard_layout().into_owned();
        let (values, _) = t.into_raw_vec_and_offset();
        Ok(tensor(a.cols, a.rows, values))
    }

    fn gather_rows(&self, a: &Tensor, rows: &[u32]) -> Result<Tensor, TensorError> {
        let x = data(a)?;
        let mut out = Vec::with_capacity(rows.len() * a.cols);
        for &r in rows {
            let r = r as usize;
            out.extend_from_slice(&x[r * a.cols..(r + 1) * a.cols]);
        }
        Ok(tensor(rows.len(), a.cols, out))
    }

    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor, TensorError> {
        let rows: usize;
        let cols: usize;
        let mut out;
        if axis == 0 {
            cols = parts.first().map_or(0, |p| p.cols);
            rows = parts.iter().map(|p| p.rows).sum();
            out = Vec::with_capacity(rows * cols);
            for p in parts {
                out.extend_from_slice(data(p)?);
            }
        } else {
            rows = parts.first().map_or(0, |p| p.rows);
            cols = parts.iter().map(|p| p.cols).sum();
            out = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                for p in parts {
                    out.extend_from_slice(&data(p)?[r * p.cols..(r + 1) * p.cols]);
                }
            }
        }
        Ok(tensor(rows, cols, out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Row-major `rows × cols` values, none alike.
    fn values(rows: usize, cols: usize, seed: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i * 7 + seed * 13) % 23) as f32 - 11.0)
            .collect()
    }

    #[test]
    fn a_product_in_blocks_of_rows_equals_one_product() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, k, n) = (10, 7, 5);
            let a = tensor(
                if ta { k } else { m },
                if ta { m } else { k },
                values(m, k, 1),
            );
            let b = tensor(
                if tb { n } else { k },
                if tb { k } else { n },
                values(k, n, 2),
            );
            let (va, vb) = (view(&a).unwrap(), view(&b).unwrap());
            let va = if ta { va.t() } else { va };
            let vb = if tb { vb.t() } else { vb };
            let expected: Vec<f32> = (0..m)
                .flat_map(|i| (0..n).map(move |j| (i, j)))
                .map(|(i, j)| (0..k).map(|l| va[[i, l]] * vb[[l, j]]).sum())
                .collect();
            for block in [0, 1, 3, 4, 9, 10, 100] {
                let product = product_in_blocks(va, vb, block).unwrap();
                assert_eq!((product.rows, product.cols), (m, n));
                assert_eq!(
                    data(&product).unwrap(),
                    expected,
                    "ta {ta} tb {tb} block {block}"
                );
            }
        }
    }
}
