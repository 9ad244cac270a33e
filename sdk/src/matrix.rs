//! Host matrices: f64 matrices kernel-host holds, for models whose every
//! step reads the whole frame. A kernel builds one from its input columns
//! ([`HostMatrix::from_columns`]: no copy through its memory when they are
//! host columns) or from its own values ([`HostMatrix::from_matrix`]: one
//! copy out), asks the host for what its objective needs
//! ([`HostMatrix::linear`], [`HostMatrix::softmax_cross_entropy`],
//! [`HostMatrix::t_mul`], [`HostMatrix::squared_distances`]...) and reads
//! back small results. The host runs them natively on several threads.
//!
//! Natively (unit tests, [`crate::testing::Local`]) the matrix lives in the
//! test process and runs the same arithmetic (one definition,
//! `matrix_ops.rs`), so a kernel computes the same numbers everywhere:
//! sums over rows run in fixed blocks of [`BLOCK_ROWS`] rows, whatever the
//! number of threads.

use crate::matrix_ops::{self as ops, Mat, Run};
use crate::{HostColumn, KernelError, Matrix};

#[cfg(target_arch = "wasm32")]
use crate::__bindings::kernel_host::kernel::columns as wit;

pub use ops::BLOCK_ROWS;

enum Inner {
    #[cfg(target_arch = "wasm32")]
    Host(wit::Matrix),
    Local(Mat),
}

/// An f64 matrix in the host (natively, in the test process).
pub struct HostMatrix {
    inner: Inner,
}

impl std::fmt::Debug for HostMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostMatrix({} × {})", self.rows(), self.cols())
    }
}

#[cfg(target_arch = "wasm32")]
fn host_error(e: wit::ColumnError) -> KernelError {
    match e {
        wit::ColumnError::WrongType(m) | wit::ColumnError::InvalidArgument(m) => {
            KernelError::InvalidInput(m)
        }
        wit::ColumnError::OutOfMemory(m) => {
            KernelError::Failed(format!("out of host memory for matrices: {m}"))
        }
    }
}

fn local(m: Mat) -> HostMatrix {
    HostMatrix {
        inner: Inner::Local(m),
    }
}

#[cfg(target_arch = "wasm32")]
fn host(m: wit::Matrix) -> HostMatrix {
    HostMatrix {
        inner: Inner::Host(m),
    }
}

/// Dispatches one operation: `$host` on the host's handle, `$local` on the
/// local matrix.
macro_rules! on {
    ($self:expr, |$h:ident| $host:expr, |$m:ident| $local:expr) => {
        match &$self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host($h) => $host.map_err(host_error),
            Inner::Local($m) => $local.map_err(KernelError::InvalidInput),
        }
    };
}

impl HostMatrix {
    /// Numeric columns side by side (s64 and bool as f64). The handles are
    /// consumed (pass `share`s to keep them); a null is refused.
    pub fn from_columns(columns: Vec<HostColumn>) -> Result<HostMatrix, KernelError> {
        #[cfg(target_arch = "wasm32")]
        if columns.iter().all(HostColumn::is_host) {
            let handles = columns
                .into_iter()
                .map(HostColumn::into_host)
                .collect::<Result<Vec<_>, _>>()?;
            return wit::Matrix::from_columns(handles)
                .map(host)
                .map_err(host_error);
        }
        let columns = columns
            .into_iter()
            .map(HostColumn::into_column)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<_> = columns.iter().collect();
        let m = ops::from_columns(&refs).map_err(KernelError::InvalidInput)?;
        Self::from_slice(m.rows, m.cols, &m.data, || m.data.clone())
    }

    /// A kernel's own matrix, handed to the host (one copy).
    pub fn from_matrix(x: &Matrix) -> Result<HostMatrix, KernelError> {
        Self::from_slice(x.rows, x.cols, &x.data, || x.data.clone())
    }

    /// A `rows × cols` matrix from row-major values.
    pub fn from_list(rows: usize, cols: usize, data: Vec<f64>) -> Result<HostMatrix, KernelError> {
        Self::from_slice(rows, cols, &data, || data.clone())
    }

    /// On the host: `data` copied out once. Natively: a local matrix of
    /// `owned()` (called only there, so the guest never copies twice).
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    fn from_slice(
        rows: usize,
        cols: usize,
        data: &[f64],
        owned: impl FnOnce() -> Vec<f64>,
    ) -> Result<HostMatrix, KernelError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(KernelError::InvalidInput(format!(
                "{rows} × {cols} matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            )));
        }
        #[cfg(target_arch = "wasm32")]
        {
            let narrow = |v: usize| {
                u32::try_from(v).map_err(|_| {
                    KernelError::InvalidInput(format!("{v} rows or columns is over 2^32"))
                })
            };
            return wit::Matrix::from_list(narrow(rows)?, narrow(cols)?, data)
                .map(host)
                .map_err(host_error);
        }
        #[allow(unreachable_code)]
        Mat::new(rows, cols, owned())
            .map(local)
            .map_err(KernelError::InvalidInput)
    }

    pub fn rows(&self) -> usize {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.rows() as usize,
            Inner::Local(m) => m.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.cols() as usize,
            Inner::Local(m) => m.cols,
        }
    }

    /// The values, row-major (one copy into the kernel).
    pub fn to_vec(&self) -> Result<Vec<f64>, KernelError> {
        on!(self, |h| h.to_list(), |m| Ok::<_, String>(m.data.clone()))
    }

    /// `self · wᵀ + b` (`rows × outputs`): `weights` is `outputs × cols`,
    /// row-major; `bias` empty or one per output.
    pub fn linear(
        &self,
        weights: &[f64],
        outputs: usize,
        bias: &[f64],
    ) -> Result<HostMatrix, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .linear(weights, u32::try_from(outputs).unwrap_or(u32::MAX), bias)
                .map(host)
                .map_err(host_error),
            Inner::Local(m) => ops::linear(m, weights, outputs, bias, &Run::LOCAL)
                .map(local)
                .map_err(KernelError::InvalidInput),
        }
    }

    /// `selfᵀ · other` (`self.cols × other.cols`, row-major).
    pub fn t_mul(&self, other: &HostMatrix) -> Result<Vec<f64>, KernelError> {
        match (&self.inner, &other.inner) {
            #[cfg(target_arch = "wasm32")]
            (Inner::Host(a), Inner::Host(b)) => a.t_mul(b).map_err(host_error),
            (Inner::Local(a), Inner::Local(b)) => {
                ops::t_mul(a, b, &Run::LOCAL).map_err(KernelError::InvalidInput)
            }
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    /// Each column's sum over the rows.
    pub fn column_sums(&self) -> Result<Vec<f64>, KernelError> {
        on!(self, |h| h.column_sums(), |m| ops::column_sums(
            m,
            &Run::LOCAL
        ))
    }

    /// Softmax cross-entropy of these logits against `labels` (`rows × 1`
    /// class indices): the summed loss and the residual `softmax − onehot`.
    /// One column is the binomial model (logits `[0, z]`).
    pub fn softmax_cross_entropy(
        &self,
        labels: &HostMatrix,
    ) -> Result<(f64, HostMatrix), KernelError> {
        match (&self.inner, &labels.inner) {
            #[cfg(target_arch = "wasm32")]
            (Inner::Host(z), Inner::Host(y)) => z
                .softmax_cross_entropy(y)
                .map(|(loss, r)| (loss, host(r)))
                .map_err(host_error),
            (Inner::Local(z), Inner::Local(y)) => ops::softmax_cross_entropy(z, y, &Run::LOCAL)
                .map(|(loss, r)| (loss, local(r)))
                .map_err(KernelError::InvalidInput),
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    /// Each row's softmax (one column `z`: `[1 − σ(z), σ(z)]`).
    pub fn softmax(&self) -> Result<HostMatrix, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.softmax().map(host).map_err(host_error),
            Inner::Local(m) => ops::softmax(m, &Run::LOCAL)
                .map(local)
                .map_err(KernelError::InvalidInput),
        }
    }

    /// Squared distance of every row to every row of `centers`.
    pub fn squared_distances(&self, centers: &HostMatrix) -> Result<HostMatrix, KernelError> {
        match (&self.inner, &centers.inner) {
            #[cfg(target_arch = "wasm32")]
            (Inner::Host(x), Inner::Host(c)) => {
                x.squared_distances(c).map(host).map_err(host_error)
            }
            (Inner::Local(x), Inner::Local(c)) => ops::squared_distances(x, c, &Run::LOCAL)
                .map(local)
                .map_err(KernelError::InvalidInput),
            #[allow(unreachable_patterns)]
            _ => Err(mixed()),
        }
    }

    /// Each row's smallest entry's index (the first of equals) and value.
    pub fn argmin_rows(&self) -> Result<(Vec<u32>, Vec<f64>), KernelError> {
        on!(self, |h| h.argmin_rows(), |m| ops::argmin_rows(m))
    }

    /// Per group `g < groups`: the sum of the rows with `group[i] = g`
    /// (`groups × cols`) and their count.
    pub fn group_sums(
        &self,
        group: &[u32],
        groups: usize,
    ) -> Result<(Vec<f64>, Vec<u64>), KernelError> {
        on!(
            self,
            |h| h.group_sums(group, u32::try_from(groups).unwrap_or(u32::MAX)),
            |m| ops::group_sums(m, group, groups)
        )
    }

    /// The columns as host columns named `names` (how a model returns what
    /// it computed by reference).
    pub fn to_columns(&self, names: &[String]) -> Result<Vec<HostColumn>, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .to_columns(names)
                .map(|cs| cs.into_iter().map(HostColumn::from_host).collect())
                .map_err(host_error),
            Inner::Local(m) => ops::to_columns(m, names)
                .map_err(KernelError::InvalidInput)?
                .into_iter()
                .map(HostColumn::from_column)
                .collect(),
        }
    }
}

/// A host matrix and a local one in the same operation: cannot happen in a
/// kernel (all its matrices are on the host, or all local in a test).
fn mixed() -> KernelError {
    KernelError::Failed("a host matrix and a local one in the same operation".into())
}
