//! The CUDA backend (cudarc 0.19, loaded at run time): cuBLAS sgemm for
//! products, NVRTC kernels (compiled once per process) for the rest.
//!
//! The binary builds and runs without CUDA: [`probe`] checks that the
//! driver, cuBLAS and NVRTC libraries can be loaded before touching them
//! (cudarc panics on a missing library), guards the first calls with
//! `catch_unwind`, and caches the outcome.
//!
//! cuBLAS is column-major: the row-major product `C = op(A)·op(B)` is
//! computed as the column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`, i.e. sgemm with the
//! operands swapped.

use super::{Backend, BinaryOp, Device, ReduceOp, ScalarOp, Storage, Tensor, TensorError, UnaryOp};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use std::sync::{Arc, OnceLock};

/// Device storage of one tensor.
pub struct Buffer {
    pub data: CudaSlice<f32>,
}

/// The CUDA backend: one context, its default stream, a cuBLAS handle and
/// the compiled element-wise kernels.
pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: Kernels,
    name: String,
    memory: usize,
}

struct Kernels {
    binary: CudaFunction,
    scalar: CudaFunction,
    unary: CudaFunction,
    softmax_rows: CudaFunction,
    reduce: CudaFunction,
    transpose: CudaFunction,
    gather: CudaFunction,
    fill: CudaFunction,
    place: CudaFunction,
}

/// What [`probe`] found.
#[derive(Clone)]
pub enum CudaProbe {
    Ready(Arc<Cuda>),
    Unavailable(String),
}

/// The CUDA backend, if this machine can run it (checked once).
pub fn probe() -> CudaProbe {
    static PROBE: OnceLock<CudaProbe> = OnceLock::new();
    PROBE
        .get_or_init(|| match std::panic::catch_unwind(Cuda::open) {
            Ok(Ok(cuda)) => CudaProbe::Ready(Arc::new(cuda)),
            Ok(Err(why)) => CudaProbe::Unavailable(why),
            Err(_) => CudaProbe::Unavailable(
                "loading the CUDA libraries panicked (a library too old for CUDA 13?)".into(),
            ),
        })
        .clone()
}

const SOURCE: &str = r#"
extern "C" __global__ void binary(int op, const float* a, const float* b, float* out,
                                  int rows, int cols, int brows, int bcols) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    int r = i / cols, c = i % cols;
    float x = a[i];
    float y = b[(brows == 1 ? 0 : r) * bcols + (bcols == 1 ? 0 : c)];
    float v;
    switch (op) {
        case 0: v = x + y; break;
        case 1: v = x - y; break;
        case 2: v = x * y; break;
        case 3: v = x / y; break;
        case 4: v = fmaxf(x, y); break;
        default: v = fminf(x, y); break;
    }
    out[i] = v;
}

extern "C" __global__ void scalar(int op, const float* a, float s, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i];
    float v;
    switch (op) {
        case 0: v = x + s; break;
        case 1: v = x - s; break;
        case 2: v = x * s; break;
        case 3: v = x / s; break;
        case 4: v = powf(x, s); break;
        case 5: v = fmaxf(x, s); break;
        case 6: v = fminf(x, s); break;
        default: v = s - x; break;
    }
    out[i] = v;
}

extern "C" __global__ void unary(int op, const float* a, float* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i];
    float v;
    switch (op) {
        case 0: v = -x; break;
        case 1: v = expf(x); break;
        case 2: v = logf(x); break;
        case 3: v = sqrtf(x); break;
        case 4: v = fabsf(x); break;
        case 5: v = tanhf(x); break;
        case 6: v = 1.0f / (1.0f + expf(-x)); break;
        case 7: v = fmaxf(x, 0.0f); break;
        case 8: v = x > 0.0f ? 1.0f : 0.0f; break;
        default: v = x * x; break;
    }
    out[i] = v;
}

extern "C" __global__ void softmax_rows(const float* a, float* out, int rows, int cols) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* x = a + (long)r * cols;
    float* y = out + (long)r * cols;
    float m = __int_as_float(0xff800000);  // -inf, without headers
    for (int c = 0; c < cols; c++) m = fmaxf(m, x[c]);
    float s = 0.0f;
    for (int c = 0; c < cols; c++) { y[c] = expf(x[c] - m); s += y[c]; }
    for (int c = 0; c < cols; c++) y[c] /= s;
}

// One thread per output line; op 0 sum, 1 mean, 2 max, 3 argmax.
extern "C" __global__ void reduce(int op, const float* a, float* out, int rows, int cols, int axis) {
    int line = blockIdx.x * blockDim.x + threadIdx.x;
    int lines = axis == 0 ? cols : rows;
    int len = axis == 0 ? rows : cols;
    if (line >= lines) return;
    double acc = 0.0;
    float best = __int_as_float(0xff800000);
    int at = 0;
    for (int i = 0; i < len; i++) {
        float v = axis == 0 ? a[(long)i * cols + line] : a[(long)line * cols + i];
        acc += v;
        if (i == 0 || v > best) { best = v; at = i; }
    }
    float r;
    switch (op) {
        case 0: r = (float)acc; break;
        case 1: r = (float)(acc / (len > 0 ? len : 1)); break;
        case 2: r = best; break;
        default: r = (float)at; break;
    }
    out[line] = r;
}

extern "C" __global__ void transpose(const float* a, float* out, int rows, int cols) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    int r = i / cols, c = i % cols;
    out[(long)c * rows + r] = a[i];
}

extern "C" __global__ void gather(const float* a, const unsigned int* idx, float* out, int cols, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * cols) return;
    int r = i / cols, c = i % cols;
    out[i] = a[(long)idx[r] * cols + c];
}

extern "C" __global__ void fill(float* out, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = v;
}

// Copies a rows x cols part into columns [offset, offset + cols) of an
// out_cols-wide output.
extern "C" __global__ void place(const float* part, float* out, int rows, int cols, int out_cols, int offset) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    int r = i / cols, c = i % cols;
    out[(long)r * out_cols + offset + c] = part[i];
}
"#;

fn backend<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> TensorError + '_ {
    move |e| TensorError::Backend(format!("{what}: {e}"))
}

/// `n` as a kernel argument.
fn int(n: usize) -> Result<i32, TensorError> {
    i32::try_from(n)
        .map_err(|_| TensorError::InvalidArgument(format!("{n} is too large for the GPU kernels")))
}

fn launch_config(n: usize) -> Result<LaunchConfig, TensorError> {
    let n = u32::try_from(n.max(1))
        .map_err(|_| TensorError::InvalidArgument(format!("{n} elements is too many")))?;
    Ok(LaunchConfig {
        grid_dim: (n.div_ceil(256), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Launches `$func` over `$n` elements with the given arguments.
macro_rules! launch {
    ($self:ident, $func:expr, $n:expr, $($arg:expr),* $(,)?) => {{
        let config = launch_config($n)?;
        let mut builder = $self.stream.launch_builder($func);
        $( builder.arg($arg); )*
        // SAFETY: the kernels index within the sizes passed to them, and
        // every buffer argument holds at least that many elements.
        unsafe { builder.launch(config) }.map_err(backend("launching a kernel"))?;
    }};
}

fn buffer(t: &Tensor) -> Result<&CudaSlice<f32>, TensorError> {
    match &t.storage {
        Storage::Cuda(b) => Ok(&b.data),
        Storage::Cpu(_) => Err(TensorError::Backend(
            "a CPU tensor was given to the CUDA backend".into(),
        )),
    }
}

fn tensor(rows: usize, cols: usize, data: CudaSlice<f32>) -> Tensor {
    Tensor {
        rows,
        cols,
        storage: Storage::Cuda(Arc::new(Buffer { data })),
    }
}

impl Cuda {
    /// Opens device 0, or says why not. May panic inside cudarc when a
    /// library is unusable: call through [`probe`].
    fn open() -> Result<Cuda, String> {
        // SAFETY: these only try to open the shared libraries.
        let present = unsafe {
            [
                (
                    "the CUDA driver (libcuda.so)",
                    cudarc::driver::sys::is_culib_present(),
                ),
                (
                    "cuBLAS (libcublas.so.13 or .12)",
                    cudarc::cublas::sys::is_culib_present(),
                ),
                (
                    "NVRTC (libnvrtc.so.13 or .12)",
                    cudarc::nvrtc::sys::is_culib_present(),
                ),
            ]
        };
        let missing: Vec<&str> = present
            .iter()
            .filter(|(_, found)| !found)
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} not found (add the CUDA libraries to LD_LIBRARY_PATH, e.g. /usr/local/cuda/lib64)",
                missing.join(", ")
            ));
        }
        let count = CudaContext::device_count().map_err(|e| format!("no CUDA device: {e}"))?;
        if count < 1 {
            return Err("the CUDA driver reports no device".into());
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("creating a CUDA context: {e}"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| format!("starting cuBLAS: {e}"))?;
        let ptx = cudarc::nvrtc::compile_ptx(SOURCE)
            .map_err(|e| format!("compiling the kernels: {e}"))?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| format!("loading the kernels: {e}"))?;
        let load = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| format!("loading kernel `{name}`: {e}"))
        };
        let kernels = Kernels {
            binary: load("binary")?,
            scalar: load("scalar")?,
            unary: load("unary")?,
            softmax_rows: load("softmax_rows")?,
            reduce: load("reduce")?,
            transpose: load("transpose")?,
            gather: load("gather")?,
            fill: load("fill")?,
            place: load("place")?,
        };
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let memory = ctx.total_mem().unwrap_or(0);
        Ok(Cuda {
            ctx,
            stream,
            blas,
            kernels,
            name,
            memory,
        })
    }

    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>, TensorError> {
        // SAFETY: every caller writes all `n` elements before reading.
        unsafe { self.stream.alloc::<f32>(n.max(1)) }.map_err(|e| {
            TensorError::OutOfMemory(format!("allocating {} MiB on the GPU: {e}", (n * 4) >> 20))
        })
    }

    /// The product on raw buffers (also used by the benchmark's baseline).
    pub fn sgemm(
        &self,
        a: &CudaSlice<f32>,
        (a_rows, a_cols, ta): (usize, usize, bool),
        b: &CudaSlice<f32>,
        (b_rows, b_cols, tb): (usize, usize, bool),
    ) -> Result<(CudaSlice<f32>, usize, usize), TensorError> {
        let (m, k) = if ta {
            (a_cols, a_rows)
        } else {
            (a_rows, a_cols)
        };
        let n = if tb { b_rows } else { b_cols };
        let mut c = self.alloc(m * n)?;
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        // Column-major: Cᵀ (n x m) = op(B)ᵀ (n x k) · op(A)ᵀ (k x m). A
        // row-major r x c matrix is a column-major c x r one with ld = c.
        let cfg = GemmConfig {
            transa: op(tb),
            transb: op(ta),
            m: int(n)?,
            n: int(m)?,
            k: int(k)?,
            alpha: 1.0f32,
            lda: int(b_cols.max(1))?,
            ldb: int(a_cols.max(1))?,
            beta: 0.0f32,
            ldc: int(n.max(1))?,
        };
        // SAFETY: the buffers hold the sizes the config describes.
        unsafe { self.blas.gemm(cfg, b, a, &mut c) }.map_err(backend("cuBLAS sgemm"))?;
        Ok((c, m, n))
    }

    /// Uploads `data` as a raw buffer (benchmark baseline).
    pub fn upload_raw(&self, data: &[f32]) -> Result<CudaSlice<f32>, TensorError> {
        self.stream
            .clone_htod(data)
            .map_err(backend("copying to the GPU"))
    }

    /// Waits for the GPU to finish queued work.
    pub fn synchronize(&self) -> Result<(), TensorError> {
        self.stream.synchronize().map_err(backend("synchronizing"))
    }
}

impl Backend for Cuda {
    fn device(&self) -> Device {
        Device::Cuda
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} MiB), cuBLAS + NVRTC kernels, context {:p}",
            self.name,
            self.memory >> 20,
            Arc::as_ptr(&self.ctx)
        )
    }

    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Tensor, TensorError> {
        let buffer = if data.is_empty() {
            self.alloc(0)?
        } else {
            self.upload_raw(data)?
        };
        Ok(tensor(rows, cols, buffer))
    }

    fn download(&self, t: &Tensor) -> Result<Vec<f32>, TensorError> {
        let mut all = self
            .stream
            .clone_dtoh(buffer(t)?)
            .map_err(backend("copying from the GPU"))?;
        all.truncate(t.len());
        Ok(all)
    }

    fn fill(&self, rows: usize, cols: usize, value: f32) -> Result<Tensor, TensorError> {
        let n = rows * cols;
        let count = int(n)?;
        let mut out = self.alloc(n)?;
        launch!(self, &self.kernels.fill, n, &mut out, &value, &count);
        Ok(tensor(rows, cols, out))
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor, TensorError> {
        let (c, m, n) = self.sgemm(
            buffer(a)?,
            (a.rows, a.cols, ta),
            buffer(b)?,
            (b.rows, b.cols, tb),
        )?;
        Ok(tensor(m, n, c))
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
        let code = op as i32;
        let (rows, cols, brows, bcols) = (int(a.rows)?, int(a.cols)?, int(b.rows)?, int(b.cols)?);
        let (x, y) = (buffer(a)?, buffer(b)?);
        let mut out = self.alloc(a.len())?;
        launch!(
            self,
            &self.kernels.binary,
            a.len(),
            &code,
            x,
            y,
            &mut out,
            &rows,
            &cols,
            &brows,
            &bcols
        );
        Ok(tensor(a.rows, a.cols, out))
    }

    fn scalar(&self, op: ScalarOp, a: &Tensor, value: f32) -> Result<Tensor, TensorError> {
        let code = op as i32;
        let n = int(a.len())?;
        let x = buffer(a)?;
        let mut out = self.alloc(a.len())?;
        launch!(
            self,
            &self.kernels.scalar,
            a.len(),
            &code,
            x,
            &value,
            &mut out,
            &n
        );
        Ok(tensor(a.rows, a.cols, out))
    }

    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor, TensorError> {
        let code = op as i32;
        let n = int(a.len())?;
        let x = buffer(a)?;
        let mut out = self.alloc(a.len())?;
        launch!(self, &self.kernels.unary, a.len(), &code, x, &mut out, &n);
        Ok(tensor(a.rows, a.cols, out))
    }

    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor, TensorError> {
        if axis == 0 {
            let t = self.transpose(a)?;
            return self.transpose(&self.softmax(&t, 1)?);
        }
        let (rows, cols) = (int(a.rows)?, int(a.cols)?);
        let x = buffer(a)?;
        let mut out = self.alloc(a.len())?;
        launch!(
            self,
            &self.kernels.softmax_rows,
            a.rows,
            x,
            &mut out,
            &rows,
            &cols
        );
        Ok(tensor(a.rows, a.cols, out))
    }

    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize) -> Result<Tensor, TensorError> {
        let code = op as i32;
        let (rows, cols, ax) = (int(a.rows)?, int(a.cols)?, int(axis)?);
        let lines = if axis == 0 { a.cols } else { a.rows };
        let x = buffer(a)?;
        let mut out = self.alloc(lines)?;
        launch!(
            self,
            &self.kernels.reduce,
            lines,
            &code,
            x,
            &mut out,
            &rows,
            &cols,
            &ax
        );
        Ok(if axis == 0 {
            tensor(1, a.cols, out)
        } else {
            tensor(a.rows, 1, out)
        })
    }

    fn transpose(&self, a: &Tensor) -> Result<Tensor, TensorError> {
        let (rows, cols) = (int(a.rows)?, int(a.cols)?);
        let x = buffer(a)?;
        let mut out = self.alloc(a.len())?;
        launch!(
            self,
            &self.kernels.transpose,
            a.len(),
            x,
            &mut out,
            &rows,
            &cols
        );
        Ok(tensor(a.cols, a.rows, out))
    }

    fn gather_rows(&self, a: &Tensor, rows: &[u32]) -> Result<Tensor, TensorError> {
        let n = rows.len() * a.cols;
        let (cols, count) = (int(a.cols)?, int(rows.len())?);
        let idx = self
            .stream
            .clone_htod(if rows.is_empty() { &[0u32][..] } else { rows })
            .map_err(backend("copying indices to the GPU"))?;
        let x = buffer(a)?;
        let mut out = self.alloc(n)?;
        launch!(
            self,
            &self.kernels.gather,
            n,
            x,
            &idx,
            &mut out,
            &cols,
            &count
        );
        Ok(tensor(rows.len(), a.cols, out))
    }

    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor, TensorError> {
        let (rows, cols) = if axis == 0 {
            (
                parts.iter().map(|p| p.rows).sum(),
                parts.first().map_or(0, |p| p.cols),
            )
        } else {
            (
                parts.first().map_or(0, |p| p.rows),
                parts.iter().map(|p| p.cols).sum(),
            )
        };
        let mut out = self.alloc(rows * cols)?;
        let mut offset = 0usize;
        for part in parts {
            if axis == 0 {
                let len = part.len();
                if len > 0 {
                    let mut dst = out.slice_mut(offset..offset + len);
                    self.stream
                        .memcpy_dtod(&buffer(part)?.slice(0..len), &mut dst)
                        .map_err(backend("copying on the GPU"))?;
                }
                offset += len;
            } else {
                let (prows, pcols, total, at) =
                    (int(part.rows)?, int(part.cols)?, int(cols)?, int(offset)?);
                let x = buffer(part)?;
                launch!(
                    self,
                    &self.kernels.place,
                    part.len(),
                    x,
                    &mut out,
                    &prows,
                    &pcols,
                    &total,
                    &at
                );
                offset += part.cols;
            }
        }
        Ok(tensor(rows, cols, out))
    }
}
