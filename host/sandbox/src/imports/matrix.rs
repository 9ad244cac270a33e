//! `kernel-host:kernel/columns`'s `matrix` for kernels: f64 matrices the
//! host holds, for models whose every step reads the whole frame (a
//! gradient, distances to centers). Each result is charged to the kernel's
//! host-memory account before it is computed, and released when the kernel
//! drops it; operations run on several threads in fixed blocks of rows
//! (results independent of the thread count) and stop at the call's
//! deadline.

use crate::state::HostState;
use kernel_host_types::bindings::Column;
use kernel_host_types::bindings::kernel_host::kernel::columns::{ColumnError, HostMatrix};
use kernel_host_types::frame::SharedColumn;
use kernel_host_types::matrix::{Mat, ops};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use wasmtime::component::Resource;

type Result<T> = std::result::Result<T, ColumnError>;

/// Host bookkeeping charged per live matrix (handle, table slot).
const PER_MATRIX_BYTES: u64 = 256;

/// Threads a matrix operation may use: the machine's, at most 8.
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

fn gone(e: impl std::fmt::Display) -> ColumnError {
    ColumnError::InvalidArgument(format!("not a live matrix of this kernel: {e}"))
}

/// A matrix already checked by the caller, looked up again inside an
/// operation.
fn lookup<'a>(s: &'a HostState, handle: &Resource<Mat>) -> std::result::Result<&'a Mat, String> {
    s.table_ref()
        .get(handle)
        .map_err(|e| format!("not a live matrix of this kernel: {e}"))
}

fn invalid(e: String) -> ColumnError {
    ColumnError::InvalidArgument(e)
}

fn charge_of(values: usize) -> u64 {
    (values as u64).saturating_mul(8) + PER_MATRIX_BYTES
}

impl HostState {
    /// Charges a result of `values` f64s before it is made.
    fn reserve(&mut self, values: usize) -> Result<u64> {
        let bytes = charge_of(values);
        self.tensors
            .accounts
            .charge(bytes)
            .map_err(|e| ColumnError::OutOfMemory(e.to_string()))?;
        Ok(bytes)
    }

    /// Runs `f` on a reservation of `values` f64s and keeps the matrix it
    /// makes; the reservation is released if it fails.
    fn make(
        &mut self,
        values: usize,
        f: impl FnOnce(&Self, &ops::Run) -> std::result::Result<Mat, String>,
    ) -> Result<Resource<Mat>> {
        let bytes = self.reserve(values)?;
        let made = self.compute(f);
        let kept = made.and_then(|m| {
            debug_assert_eq!(charge_of(m.data.len()), bytes);
            self.table()
                .push(m)
                .map_err(|e| ColumnError::OutOfMemory(format!("too many live matrices: {e}")))
        });
        if kept.is_err() {
            self.tensors.accounts.release(bytes);
        }
        kept
    }

    /// Runs `f` with the call's deadline, on the host's threads.
    fn compute<T>(
        &self,
        f: impl FnOnce(&Self, &ops::Run) -> std::result::Result<T, String>,
    ) -> Result<T> {
        if self.past_deadline() {
            return Err(invalid(
                "the call's time limit has passed: no more matrix operations".into(),
            ));
        }
        let deadline = self.deadline;
        let cancelled = move || deadline.is_some_and(|at| Instant::now() >= at);
        let run = ops::Run {
            threads: threads(),
            cancelled: &cancelled,
        };
        f(self, &run).map_err(invalid)
    }

    fn matrix(&self, handle: &Resource<Mat>) -> Result<&Mat> {
        self.table_ref().get(handle).map_err(gone)
    }

    /// The live columns behind `handles`, taken out of the table.
    fn take_columns(&mut self, handles: Vec<Resource<SharedColumn>>) -> Result<Vec<Arc<Column>>> {
        let mut columns = Vec::with_capacity(handles.len());
        let mut failure = None;
        for h in handles {
            match self.table().delete(h) {
                Ok(c) => {
                    self.forget_column(&c);
                    if c.revoked {
                        failure.get_or_insert_with(|| {
                            invalid(format!(
                                "column `{}` was lent for one call, which has ended",
                                c.name
                            ))
                        });
                    }
                    columns.push(c.data);
                }
                Err(e) => {
                    failure.get_or_insert_with(|| gone(e));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(columns),
        }
    }
}

impl HostMatrix for HostState {
    async fn from_columns(
        &mut self,
        columns: Vec<Resource<SharedColumn>>,
    ) -> Result<Resource<Mat>> {
        let columns = self.take_columns(columns)?;
        let rows = columns
            .first()
            .map_or(0, |c| kernel_host_types::frame::column_len(c));
        let values = rows.saturating_mul(columns.len());
        self.make(values, |_, _| {
            let refs: Vec<&Column> = columns.iter().map(|c| &**c).collect();
            ops::from_columns(&refs)
        })
    }

    async fn from_list(&mut self, rows: u32, cols: u32, data: Vec<f64>) -> Result<Resource<Mat>> {
        let values = data.len();
        self.make(values, |_, _| Mat::new(rows as usize, cols as usize, data))
    }

    async fn rows(&mut self, handle: Resource<Mat>) -> u32 {
        self.matrix(&handle).map_or(0, |m| m.rows as u32)
    }

    async fn cols(&mut self, handle: Resource<Mat>) -> u32 {
        self.matrix(&handle).map_or(0, |m| m.cols as u32)
    }

    async fn to_list(&mut self, handle: Resource<Mat>) -> Result<Vec<f64>> {
        Ok(self.matrix(&handle)?.data.clone())
    }

    async fn linear(
        &mut self,
        handle: Resource<Mat>,
        weights: Vec<f64>,
        outputs: u32,
        bias: Vec<f64>,
    ) -> Result<Resource<Mat>> {
        let rows = self.matrix(&handle)?.rows;
        self.make(rows.saturating_mul(outputs as usize), |s, run| {
            let x = lookup(s, &handle)?;
            ops::linear(x, &weights, outputs as usize, &bias, run)
        })
    }

    async fn t_mul(&mut self, handle: Resource<Mat>, other: Resource<Mat>) -> Result<Vec<f64>> {
        let (a, b) = (self.matrix(&handle)?, self.matrix(&other)?);
        let values = a.cols.saturating_mul(b.cols);
        // The result and one block partial per thread, while it runs.
        let bytes = self.reserve(values.saturating_mul(threads() + 1))?;
        let out = self.compute(|s, run| {
            let (a, b) = (lookup(s, &handle)?, lookup(s, &other)?);
            ops::t_mul(a, b, run)
        });
        self.tensors.accounts.release(bytes);
        out
    }

    async fn column_sums(&mut self, handle: Resource<Mat>) -> Result<Vec<f64>> {
        self.matrix(&handle)?;
        self.compute(|s, run| {
            let a = lookup(s, &handle)?;
            ops::column_sums(a, run)
        })
    }

    async fn softmax_cross_entropy(
        &mut self,
        handle: Resource<Mat>,
        labels: Resource<Mat>,
    ) -> Result<(f64, Resource<Mat>)> {
        self.matrix(&labels)?;
        let values = self.matrix(&handle)?.data.len();
        let mut loss = 0.0;
        let residual = self.make(values, |s, run| {
            let (z, y) = (lookup(s, &handle)?, lookup(s, &labels)?);
            let (l, r) = ops::softmax_cross_entropy(z, y, run)?;
            loss = l;
            Ok(r)
        })?;
        Ok((loss, residual))
    }

    async fn softmax(&mut self, handle: Resource<Mat>) -> Result<Resource<Mat>> {
        let m = self.matrix(&handle)?;
        let values = m.rows.saturating_mul(m.cols.max(2));
        self.make(values, |s, run| ops::softmax(lookup(s, &handle)?, run))
    }

    async fn squared_distances(
        &mut self,
        handle: Resource<Mat>,
        centers: Resource<Mat>,
    ) -> Result<Resource<Mat>> {
        let values = self
            .matrix(&handle)?
            .rows
            .saturating_mul(self.matrix(&centers)?.rows);
        self.make(values, |s, run| {
            let (x, c) = (lookup(s, &handle)?, lookup(s, &centers)?);
            ops::squared_distances(x, c, run)
        })
    }

    async fn argmin_rows(&mut self, handle: Resource<Mat>) -> Result<(Vec<u32>, Vec<f64>)> {
        self.matrix(&handle)?;
        self.compute(|s, _| ops::argmin_rows(lookup(s, &handle)?))
    }

    async fn group_sums(
        &mut self,
        handle: Resource<Mat>,
        group: Vec<u32>,
        groups: u32,
    ) -> Result<(Vec<f64>, Vec<u64>)> {
        let values = (groups as usize).saturating_mul(self.matrix(&handle)?.cols);
        let bytes = self.reserve(values)?;
        let out =
            self.compute(|s, _| ops::group_sums(lookup(s, &handle)?, &group, groups as usize));
        self.tensors.accounts.release(bytes);
        out
    }

    async fn to_columns(
        &mut self,
        handle: Resource<Mat>,
        names: Vec<String>,
    ) -> Result<Vec<Resource<SharedColumn>>> {
        self.check_time()?;
        let columns = {
            let m = self.matrix(&handle)?;
            let names: Vec<String> = names
                .iter()
                .map(|n| kernel_host_types::printable(n).into_owned())
                .collect();
            ops::to_columns(m, &names).map_err(invalid)?
        };
        self.keep_columns(columns)
    }

    async fn drop(&mut self, handle: Resource<Mat>) -> wasmtime::Result<()> {
        let m = self.table().delete(handle)?;
        self.tensors.accounts.release(charge_of(m.data.len()));
        Ok(())
    }
}
