//! `kernel-host:kernel/columns` for kernels: frames by reference. A kernel
//! holds handles to columns the host keeps; the host computes for it
//! (statistics, element-wise maps, fills) and copies values into the
//! kernel only when it reads them. Handles index the kernel's own resource
//! table, so another kernel's handle means nothing here; every column a
//! kernel makes is charged to its host-memory account (`limits.tensor-mib`,
//! shared with tensors).
//!
//! The arithmetic is `sdk/src/column_ops.rs`, the same file the SDK runs
//! natively: by reference and by copy give bit-identical results.

use crate::state::HostState;
use kernel_host_types::bindings::kernel_host::kernel::columns::{
    self as wit, ColumnError, ColumnType, HostHostColumn,
};
use kernel_host_types::bindings::{Column, ColumnValues};
use kernel_host_types::frame::{SharedColumn, column_bytes};
use std::sync::Arc;
use wasmtime::component::Resource;

#[path = "../../../../sdk/src/column_ops.rs"]
#[allow(dead_code)]
mod ops;

/// The host's string columns for the shared column ops: slices of one
/// buffer, no copy per cell.
impl ops::StringCells for kernel_host_types::Texts {
    fn from_cells<'a>(cells: impl Iterator<Item = &'a str>) -> Self {
        cells.collect()
    }

    fn cell_rows(&self, start: usize, end: usize) -> Self {
        self.slice(start, end)
    }

    fn utf8_rows(
        &self,
        start: usize,
        end: usize,
    ) -> std::result::Result<(Vec<u8>, Vec<u32>), usize> {
        let bytes = self.byte_range(start, end);
        if u32::try_from(bytes.len()).is_err() {
            return Err(bytes.len());
        }
        let offsets = std::iter::once(0)
            .chain(
                self.ends()[start..end]
                    .iter()
                    .map(|e| (e - bytes.start) as u32),
            )
            .collect();
        Ok((self.as_str().as_bytes()[bytes].to_vec(), offsets))
    }
}

type Result<T> = std::result::Result<T, ColumnError>;

fn gone(e: impl std::fmt::Display) -> ColumnError {
    ColumnError::InvalidArgument(format!("not a live column of this kernel: {e}"))
}

impl HostState {
    fn shared(&self, handle: &Resource<SharedColumn>) -> Result<SharedColumn> {
        let column = self.table_ref().get(handle).map_err(gone)?;
        if column.revoked {
            return Err(ColumnError::InvalidArgument(format!(
                "column `{}` was lent for one call, which has ended (keep a `share` of a column to hold it longer)",
                column.name
            )));
        }
        Ok(column.clone())
    }

    /// Stores a handle to `data`. Values are charged to the kernel's
    /// host-memory account once, when the first handle to them is kept
    /// (`charge`: the kernel made them; inputs the host lends are not
    /// charged), and released when the last handle goes.
    pub(crate) fn keep_column(
        &mut self,
        name: String,
        data: Arc<Column>,
        charge: bool,
    ) -> Result<Resource<SharedColumn>> {
        self.keep_column_as(name, data, charge, false)
    }

    /// [`HostState::keep_column`], marking the handle as lent for one call.
    pub(crate) fn keep_column_as(
        &mut self,
        name: String,
        data: Arc<Column>,
        charge: bool,
        lent: bool,
    ) -> Result<Resource<SharedColumn>> {
        let key = Arc::as_ptr(&data) as usize;
        let fresh = !self.columns.contains_key(&key);
        let bytes = if fresh && charge {
            column_bytes(&data) as u64
        } else {
            0
        };
        self.tensors
            .accounts
            .charge(bytes)
            .map_err(|e| ColumnError::OutOfMemory(e.to_string()))?;
        match self.table().push(SharedColumn {
            name,
            data,
            lent,
            revoked: false,
        }) {
            Ok(handle) => {
                self.columns.entry(key).or_insert((0, bytes)).0 += 1;
                Ok(handle)
            }
            Err(e) => {
                self.tensors.accounts.release(bytes);
                Err(ColumnError::OutOfMemory(format!(
                    "too many live columns: {e}"
                )))
            }
        }
    }

    /// Forgets a handle taken out of the table, releasing its values'
    /// charge with the last handle to them.
    pub(crate) fn forget_column(&mut self, column: &SharedColumn) {
        let key = Arc::as_ptr(&column.data) as usize;
        if let Some(entry) = self.columns.get_mut(&key) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                let bytes = entry.1;
                self.columns.remove(&key);
                self.tensors.accounts.release(bytes);
            }
        }
    }

    /// Keeps every column made (charged), or none of them.
    pub(crate) fn keep_columns(
        &mut self,
        columns: Vec<Column>,
    ) -> Result<Vec<Resource<SharedColumn>>> {
        let mut handles = Vec::with_capacity(columns.len());
        for column in columns {
            let name = column.name.clone();
            match self.keep_column(name, Arc::new(column), true) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for h in handles {
                        if let Ok(c) = self.table().delete(h) {
                            self.forget_column(&c);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(handles)
    }

    /// Refuses `what` (`bytes` the host would build for the kernel) when
    /// they would not fit what is left of its host-memory cap, before
    /// anything is built.
    fn check_fits(&self, bytes: u64, what: &str) -> Result<()> {
        let accounts = &self.tensors.accounts;
        if accounts.live.saturating_add(bytes) > accounts.cap {
            return Err(ColumnError::OutOfMemory(format!(
                "{what} would take {} MiB, and this kernel's host columns and tensors already hold {} of its {} MiB; raise `limits.tensor-mib` or work on fewer rows at a time",
                bytes >> 20,
                accounts.live >> 20,
                accounts.cap >> 20
            )));
        }
        Ok(())
    }

    /// A new column computed by `f` from `handle`'s, charged in full.
    fn derive(
        &mut self,
        handle: &Resource<SharedColumn>,
        f: impl FnOnce(&Column) -> std::result::Result<Column, String>,
    ) -> Result<Resource<SharedColumn>> {
        self.check_time()?;
        let shared = self.shared(handle)?;
        let made = f(&shared.data).map_err(ColumnError::WrongType)?;
        self.keep_column(shared.name, Arc::new(made), true)
    }

    pub(crate) fn check_time(&self) -> Result<()> {
        if self.past_deadline() {
            return Err(ColumnError::InvalidArgument(
                "the call's time limit has passed: no more column operations".into(),
            ));
        }
        Ok(())
    }
}

impl HostHostColumn for HostState {
    async fn from_column(&mut self, values: Column) -> Result<Resource<SharedColumn>> {
        self.check_time()?;
        let rows = kernel_host_types::frame::column_len(&values);
        kernel_host_types::frame::check_column(&values, rows as u32)
            .map_err(ColumnError::InvalidArgument)?;
        let name = kernel_host_types::printable(&values.name).into_owned();
        self.keep_column(name, Arc::new(values), true)
    }

    // A handle the guest passes was checked by the component runtime
    // against the guest's own handle table (another kernel's handle, or a
    // made-up one, traps there); the host table always has it.
    async fn name(&mut self, handle: Resource<SharedColumn>) -> String {
        self.shared(&handle).map(|c| c.name).unwrap_or_default()
    }

    async fn len(&mut self, handle: Resource<SharedColumn>) -> u32 {
        self.shared(&handle)
            .map_or(0, |c| kernel_host_types::frame::column_len(&c.data) as u32)
    }

    async fn kind(&mut self, handle: Resource<SharedColumn>) -> ColumnType {
        match self.shared(&handle).map(|c| c.data) {
            Ok(c) => match c.values {
                ColumnValues::F64(_) => ColumnType::F64,
                ColumnValues::S64(_) => ColumnType::S64,
                ColumnValues::Bool(_) => ColumnType::Bool,
                ColumnValues::String(_) => ColumnType::String,
            },
            Err(_) => ColumnType::F64,
        }
    }

    async fn null_count(&mut self, handle: Resource<SharedColumn>) -> u32 {
        self.shared(&handle)
            .map_or(0, |c| ops::null_count(&c.data) as u32)
    }

    async fn read(
        &mut self,
        handle: Resource<SharedColumn>,
        start: u32,
        end: u32,
    ) -> Result<Column> {
        self.check_time()?;
        let shared = self.shared(&handle)?;
        let mut out = ops::rows(&shared.data, start as usize, end as usize)
            .map_err(ColumnError::InvalidArgument)?;
        out.name = shared.name;
        Ok(out)
    }

    async fn share(&mut self, handle: Resource<SharedColumn>) -> Result<Resource<SharedColumn>> {
        let shared = self.shared(&handle)?;
        self.keep_column(shared.name, shared.data, true)
    }

    async fn renamed(
        &mut self,
        handle: Resource<SharedColumn>,
        name: String,
    ) -> Result<Resource<SharedColumn>> {
        let shared = self.shared(&handle)?;
        let name = kernel_host_types::printable(&name).into_owned();
        self.keep_column(name, shared.data, true)
    }

    async fn moments(&mut self, handle: Resource<SharedColumn>) -> Result<wit::Moments> {
        self.check_time()?;
        let shared = self.shared(&handle)?;
        let m = ops::moments(&shared.data).map_err(ColumnError::WrongType)?;
        Ok(wit::Moments {
            count: m.count,
            sum: m.sum,
            mean: m.mean,
            m2: m.m2,
            min: m.min,
            max: m.max,
        })
    }

    async fn affine(
        &mut self,
        handle: Resource<SharedColumn>,
        shift: f64,
        divisor: f64,
    ) -> Result<Resource<SharedColumn>> {
        self.derive(&handle, |c| ops::affine(c, shift, divisor))
    }

    async fn affine_into(
        &mut self,
        handle: Resource<SharedColumn>,
        shift: f64,
        divisor: f64,
    ) -> Result<Resource<SharedColumn>> {
        self.check_time()?;
        self.shared(&handle)?;
        let shared = self.table().delete(handle).map_err(gone)?;
        self.forget_column(&shared);
        let SharedColumn { name, data, .. } = shared;
        // The only holder of the values (nothing else in this store, and
        // not the host's own frame): rewritten in place.
        let column = Arc::try_unwrap(data).unwrap_or_else(|shared| (*shared).clone());
        let made = ops::affine_into(column, shift, divisor).map_err(ColumnError::WrongType)?;
        self.keep_column(name, Arc::new(made), true)
    }

    async fn fill_nulls(
        &mut self,
        handle: Resource<SharedColumn>,
        value: f64,
    ) -> Result<Resource<SharedColumn>> {
        self.derive(&handle, |c| ops::fill_nulls(c, value))
    }

    async fn fill_nulls_text(
        &mut self,
        handle: Resource<SharedColumn>,
        value: String,
    ) -> Result<Resource<SharedColumn>> {
        // Each null becomes a copy of `value`: a long value on a column of
        // nulls is refused before the host builds it, not after.
        let shared = self.shared(&handle)?;
        let filled = (ops::null_count(&shared.data) as u64).saturating_mul(value.len() as u64);
        self.check_fits(
            (column_bytes(&shared.data) as u64).saturating_add(filled),
            "the filled column",
        )?;
        self.derive(&handle, |c| ops::fill_nulls_text(c, &value))
    }

    async fn value_counts(&mut self, handle: Resource<SharedColumn>) -> Result<Vec<(String, u64)>> {
        self.check_time()?;
        let shared = self.shared(&handle)?;
        ops::value_counts(&shared.data).map_err(ColumnError::WrongType)
    }

    async fn one_hot(
        &mut self,
        handle: Resource<SharedColumn>,
        categories: Vec<String>,
    ) -> Result<(Vec<Resource<SharedColumn>>, Option<u32>)> {
        self.check_time()?;
        let shared = self.shared(&handle)?;
        // One f64 column of the column's length per category, refused
        // before the host builds them when they could not be kept.
        let rows = kernel_host_types::column_len(&shared.data) as u64;
        let names: u64 = categories
            .iter()
            .map(|c| (shared.name.len() + 1 + c.len()) as u64)
            .sum();
        self.check_fits(
            (categories.len() as u64)
                .saturating_mul(rows.saturating_mul(8))
                .saturating_add(names),
            "the one-hot columns",
        )?;
        let (columns, unknown) = ops::one_hot(&shared.data, &shared.name, &categories)
            .map_err(ColumnError::WrongType)?;
        Ok((self.keep_columns(columns)?, unknown.map(|r| r as u32)))
    }

    async fn read_text(
        &mut self,
        handle: Resource<SharedColumn>,
        start: u32,
        end: u32,
    ) -> Result<wit::Text> {
        self.check_time()?;
        let shared = self.shared(&handle)?;
        let (utf8, offsets, nulls) = ops::text(&shared.data, start as usize, end as usize)
            .map_err(ColumnError::WrongType)?;
        Ok(wit::Text {
            utf8,
            offsets,
            nulls,
        })
    }

    async fn drop(&mut self, handle: Resource<SharedColumn>) -> wasmtime::Result<()> {
        let column = self.table().delete(handle)?;
        self.forget_column(&column);
        Ok(())
    }
}

impl wit::Host for HostState {}
