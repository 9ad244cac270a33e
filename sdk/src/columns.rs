//! Frames by reference: columns that stay in the host.
//!
//! A kernel that implements [`Kernel::transform_ref`] (and/or
//! [`Kernel::fit_ref`]) gets its input as [`HostColumn`]s: handles to
//! columns kernel-host holds. It asks the host to compute
//! ([`HostColumn::moments`], [`HostColumn::affine`],
//! [`HostColumn::fill_nulls`], [`HostColumn::value_counts`]), copies values
//! into its own memory only when it needs them ([`HostColumn::read`]), and
//! returns handles: an input unchanged ([`HostColumn::share`], no copy), what
//! the host computed, or a column it built ([`HostColumn::from_column`]).
//! Nothing crosses the sandbox boundary that the kernel does not ask for.
//!
//! Natively (unit tests, [`crate::testing::Local`]) the same handles hold
//! the column in the test process and run the same arithmetic as the host
//! (one definition, `column_ops.rs`), so a by-reference path is tested
//! without a host and gives bit-identical results to the plain path.
//!
//! [`Kernel::transform_ref`]: crate::Kernel::transform_ref
//! [`Kernel::fit_ref`]: crate::Kernel::fit_ref

use crate::column_ops;
use crate::{Column, ColumnValues, KernelError};
use std::rc::Rc;

#[cfg(target_arch = "wasm32")]
use crate::__bindings::kernel_host::kernel::columns as wit;

/// The type of a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    F64,
    S64,
    Bool,
    String,
}

impl ColumnType {
    pub fn is_numeric(self) -> bool {
        self != ColumnType::String
    }
}

/// Statistics of a numeric column's present values (nulls and NaN skipped).
pub use column_ops::Stats as Moments;

enum Inner {
    #[cfg(target_arch = "wasm32")]
    Host(wit::HostColumn),
    /// Natively: the column itself (a name, shared values).
    Local(String, Rc<Column>),
}

/// A handle to a column kernel-host holds (natively, the column itself).
pub struct HostColumn {
    inner: Inner,
}

impl std::fmt::Debug for HostColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostColumn({}, {} rows)", self.name(), self.len())
    }
}

#[cfg(target_arch = "wasm32")]
fn host_error(e: wit::ColumnError) -> KernelError {
    match e {
        wit::ColumnError::WrongType(m) => KernelError::InvalidInput(m),
        wit::ColumnError::InvalidArgument(m) => KernelError::Failed(format!("host column: {m}")),
        wit::ColumnError::OutOfMemory(m) => {
            KernelError::Failed(format!("out of host memory for columns: {m}"))
        }
    }
}

impl HostColumn {
    /// A handle to `column` (on the host: one copy out of the kernel).
    pub fn from_column(column: Column) -> Result<HostColumn, KernelError> {
        #[cfg(target_arch = "wasm32")]
        {
            return wit::HostColumn::from_column(&column)
                .map(|h| HostColumn {
                    inner: Inner::Host(h),
                })
                .map_err(host_error);
        }
        #[allow(unreachable_code)]
        Ok(HostColumn {
            inner: Inner::Local(column.name.clone(), Rc::new(column)),
        })
    }

    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn from_host(handle: wit::HostColumn) -> HostColumn {
        HostColumn {
            inner: Inner::Host(handle),
        }
    }

    /// Whether the column is in the host (not a local copy).
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn is_host(&self) -> bool {
        matches!(self.inner, Inner::Host(_))
    }

    /// Back into the WIT handle the host gets (on the host) — the SDK's
    /// export code uses it.
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn into_host(self) -> Result<wit::HostColumn, KernelError> {
        match self.inner {
            Inner::Host(h) => Ok(h),
            local @ Inner::Local(..) => {
                let column = HostColumn { inner: local }.into_column()?;
                wit::HostColumn::from_column(&column).map_err(host_error)
            }
        }
    }

    /// The column with its values (natively, or after reading it all).
    #[doc(hidden)]
    pub fn into_column(self) -> Result<Column, KernelError> {
        match self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(_) => self.read(),
            Inner::Local(name, column) => {
                let mut column = Rc::try_unwrap(column).unwrap_or_else(|c| (*c).clone());
                column.name = name;
                Ok(column)
            }
        }
    }

    fn local(
        &self,
        f: impl FnOnce(&Column) -> Result<Column, String>,
    ) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(_) => unreachable!("host columns compute on the host"),
            Inner::Local(name, column) => {
                let made = f(column).map_err(KernelError::InvalidInput)?;
                Ok(HostColumn {
                    inner: Inner::Local(name.clone(), Rc::new(made)),
                })
            }
        }
    }

    pub fn name(&self) -> String {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.name(),
            Inner::Local(name, _) => name.clone(),
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.len() as usize,
            Inner::Local(_, c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> ColumnType {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => match h.kind() {
                wit::ColumnType::F64 => ColumnType::F64,
                wit::ColumnType::S64 => ColumnType::S64,
                wit::ColumnType::Bool => ColumnType::Bool,
                wit::ColumnType::String => ColumnType::String,
            },
            Inner::Local(_, c) => match c.values {
                ColumnValues::F64(_) => ColumnType::F64,
                ColumnValues::S64(_) => ColumnType::S64,
                ColumnValues::Bool(_) => ColumnType::Bool,
                ColumnValues::String(_) => ColumnType::String,
            },
        }
    }

    /// Rows that are null.
    pub fn null_count(&self) -> usize {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.null_count() as usize,
            Inner::Local(_, c) => column_ops::null_count(c),
        }
    }

    /// The whole column, copied into the kernel's memory.
    pub fn read(&self) -> Result<Column, KernelError> {
        self.read_rows(0, self.len())
    }

    /// Rows `start..end`, copied into the kernel's memory.
    pub fn read_rows(&self, start: usize, end: usize) -> Result<Column, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => {
                let narrow = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                if h.kind() != wit::ColumnType::String {
                    return h.read(narrow(start), narrow(end)).map_err(host_error);
                }
                // Strings cross as one buffer and offsets (two bulk copies),
                // not one allocation per cell.
                let text = self.read_text(start, end)?;
                Ok(Column {
                    name: h.name(),
                    values: ColumnValues::String(text.iter_all().map(str::to_owned).collect()),
                    nulls: text.nulls,
                })
            }
            Inner::Local(name, c) => {
                let mut out = column_ops::rows(c, start, end).map_err(KernelError::failed)?;
                out.name = name.clone();
                Ok(out)
            }
        }
    }

    /// Rows `start..end` of a string column as [`Text`]: one buffer and
    /// offsets, read without an allocation per cell.
    pub fn read_text(&self, start: usize, end: usize) -> Result<Text, KernelError> {
        let (utf8, offsets, nulls) = match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => {
                let narrow = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                let t = h
                    .read_text(narrow(start), narrow(end))
                    .map_err(host_error)?;
                (t.utf8, t.offsets, t.nulls)
            }
            Inner::Local(_, c) => {
                column_ops::text(c, start, end).map_err(KernelError::InvalidInput)?
            }
        };
        Text::new(utf8, offsets, nulls)
    }

    /// Another handle to the same column (no copy): return an input as is.
    pub fn share(&self) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.share().map(HostColumn::from_host).map_err(host_error),
            Inner::Local(name, c) => Ok(HostColumn {
                inner: Inner::Local(name.clone(), c.clone()),
            }),
        }
    }

    /// The same values under another name (no copy).
    pub fn renamed(&self, name: &str) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .renamed(name)
                .map(HostColumn::from_host)
                .map_err(host_error),
            Inner::Local(_, c) => Ok(HostColumn {
                inner: Inner::Local(name.to_string(), c.clone()),
            }),
        }
    }

    /// Count, mean, m2, min, max of a numeric column's present values,
    /// summed in row order (as a loop over [`crate::NumericColumn::present`]).
    pub fn moments(&self) -> Result<Moments, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .moments()
                .map(|m| Moments {
                    count: m.count,
                    sum: m.sum,
                    mean: m.mean,
                    m2: m.m2,
                    min: m.min,
                    max: m.max,
                })
                .map_err(host_error),
            Inner::Local(_, c) => column_ops::moments(c).map_err(KernelError::InvalidInput),
        }
    }

    /// `(x - shift) / divisor` over a numeric column, as f64; nulls stay null.
    pub fn affine(&self, shift: f64, divisor: f64) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .affine(shift, divisor)
                .map(HostColumn::from_host)
                .map_err(host_error),
            Inner::Local(..) => self.local(|c| column_ops::affine(c, shift, divisor)),
        }
    }

    /// [`HostColumn::affine`] of a column handed over: rewritten in place
    /// when nothing else shares its values (a column the host moved in).
    pub fn affine_into(self, shift: f64, divisor: f64) -> Result<HostColumn, KernelError> {
        match self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => wit::HostColumn::affine_into(h, shift, divisor)
                .map(HostColumn::from_host)
                .map_err(host_error),
            Inner::Local(name, column) => {
                let column = Rc::try_unwrap(column).unwrap_or_else(|c| (*c).clone());
                let made = column_ops::affine_into(column, shift, divisor)
                    .map_err(KernelError::InvalidInput)?;
                Ok(HostColumn {
                    inner: Inner::Local(name, Rc::new(made)),
                })
            }
        }
    }

    /// A numeric column as f64, nulls and NaN replaced by `value`.
    pub fn fill_nulls(&self, value: f64) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .fill_nulls(value)
                .map(HostColumn::from_host)
                .map_err(host_error),
            Inner::Local(..) => self.local(|c| column_ops::fill_nulls(c, value)),
        }
    }

    /// A string column, nulls replaced by `value`.
    pub fn fill_nulls_text(&self, value: &str) -> Result<HostColumn, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h
                .fill_nulls_text(value)
                .map(HostColumn::from_host)
                .map_err(host_error),
            Inner::Local(..) => self.local(|c| column_ops::fill_nulls_text(c, value)),
        }
    }

    /// A string column's distinct present values and their counts, in
    /// order of first occurrence.
    pub fn value_counts(&self) -> Result<Vec<(String, u64)>, KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => h.value_counts().map_err(host_error),
            Inner::Local(_, c) => column_ops::value_counts(c).map_err(KernelError::InvalidInput),
        }
    }

    /// One-hot encoding of a string column: one f64 column per category
    /// (`<name>_<category>`, 1 where the row holds it), and the first row
    /// holding none of them (a null counts), if any.
    pub fn one_hot(
        &self,
        categories: &[String],
    ) -> Result<(Vec<HostColumn>, Option<usize>), KernelError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(h) => {
                let (columns, unknown) = h.one_hot(categories).map_err(host_error)?;
                Ok((
                    columns.into_iter().map(HostColumn::from_host).collect(),
                    unknown.map(|r| r as usize),
                ))
            }
            Inner::Local(name, c) => {
                let (columns, unknown) =
                    column_ops::one_hot(c, name, categories).map_err(KernelError::InvalidInput)?;
                Ok((
                    columns
                        .into_iter()
                        .map(|c| HostColumn {
                            inner: Inner::Local(c.name.clone(), Rc::new(c)),
                        })
                        .collect(),
                    unknown,
                ))
            }
        }
    }
}

/// Rows of a string column as Arrow lays them out: one UTF-8 buffer and
/// offsets. [`Text::get`] borrows each value; nothing is allocated per
/// cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    buffer: String,
    offsets: Vec<u32>,
    nulls: Option<Vec<u8>>,
}

impl Text {
    /// Checks the layout once (offsets in order, on character boundaries)
    /// so that reading it cannot fail.
    fn new(utf8: Vec<u8>, offsets: Vec<u32>, nulls: Option<Vec<u8>>) -> Result<Text, KernelError> {
        let bad = |m: String| KernelError::Failed(format!("host text: {m}"));
        let buffer = String::from_utf8(utf8).map_err(|e| bad(e.to_string()))?;
        if offsets.first().is_some_and(|o| *o != 0)
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets
                .iter()
                .any(|o| !buffer.is_char_boundary(*o as usize))
            || offsets.is_empty()
        {
            return Err(bad(
                "offsets out of order or not on a character boundary".into()
            ));
        }
        if nulls.as_ref().is_some_and(|n| n.len() + 1 != offsets.len()) {
            return Err(bad("null mask of another length".into()));
        }
        Ok(Text {
            buffer,
            offsets,
            nulls,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `row`; `None` when it is null (or past the end).
    pub fn get(&self, row: usize) -> Option<&str> {
        if row >= self.len() || self.nulls.as_ref().is_some_and(|n| n[row] != 0) {
            return None;
        }
        Some(&self.buffer[self.offsets[row] as usize..self.offsets[row + 1] as usize])
    }

    /// Every row's slot, nulls included (a null's placeholder).
    #[cfg(target_arch = "wasm32")]
    fn iter_all(&self) -> impl Iterator<Item = &str> {
        self.offsets
            .windows(2)
            .map(|w| &self.buffer[w[0] as usize..w[1] as usize])
    }
}

/// A frame by reference: its columns, in order, and its height.
#[derive(Debug)]
pub struct FrameRef {
    pub rows: u32,
    pub columns: Vec<HostColumn>,
}

impl FrameRef {
    /// A frame's columns as handles (natively: the columns themselves).
    pub fn of(frame: crate::Frame) -> Result<FrameRef, KernelError> {
        Ok(FrameRef {
            rows: frame.rows,
            columns: frame
                .columns
                .into_iter()
                .map(HostColumn::from_column)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The columns the host lent for one call, as handles the kernel owns
    /// (the SDK's export code calls this).
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn lent(x: Vec<wit::HostColumn>, rows: u32) -> Result<FrameRef, KernelError> {
        Ok(FrameRef {
            rows,
            columns: x.into_iter().map(HostColumn::from_host).collect(),
        })
    }

    /// The handles to give back to the host (the SDK's export code).
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn into_host(self) -> Result<Vec<wit::HostColumn>, KernelError> {
        self.columns
            .into_iter()
            .map(HostColumn::into_host)
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<&HostColumn> {
        self.columns.iter().find(|c| c.name() == name)
    }

    /// Every column read into the kernel's memory: the plain frame.
    pub fn read(&self) -> Result<crate::Frame, KernelError> {
        Ok(crate::Frame {
            rows: self.rows,
            columns: self
                .columns
                .iter()
                .map(HostColumn::read)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Every column as one row-major matrix: what `read()?.to_matrix()`
    /// gives (and the same error, naming the first column that is not
    /// numeric or its first missing row), read from the host a block of
    /// rows at a time, so the kernel never holds the whole frame beside the
    /// matrix (for 2M rows of 16 columns: 244 MiB instead of 488 MiB).
    pub fn to_matrix(&self) -> Result<crate::Matrix, KernelError> {
        let columns: Vec<&HostColumn> = self.columns.iter().collect();
        let names = self.columns.iter().map(HostColumn::name).collect();
        self.matrix_of(&columns, names, |frame| frame.to_matrix())
    }

    /// The columns called `names`, in that order, as one row-major matrix:
    /// what `read()?.select_matrix(names)` gives (the same errors: a
    /// missing feature column by name, then the first column that is not
    /// numeric or its first missing row), read a block of rows at a time
    /// and without reading the columns it does not select (nor any, to
    /// name a missing one).
    pub fn select_matrix(&self, names: &[String]) -> Result<crate::Matrix, KernelError> {
        let has: Vec<String> = self.columns.iter().map(HostColumn::name).collect();
        let mut selected = Vec::with_capacity(names.len());
        for name in names {
            match has.iter().position(|c| c == name) {
                Some(j) => selected.push(&self.columns[j]),
                None => return Err(crate::frame::missing_feature(name, &has)),
            }
        }
        self.matrix_of(&selected, names.to_vec(), |frame| {
            frame.select_matrix(names)
        })
    }

    /// `columns` (called `names`) as one row-major matrix read a block of
    /// rows at a time; where a block is not numeric or has a gap, the
    /// whole frame read and `whole` of it instead, for its error.
    fn matrix_of(
        &self,
        columns: &[&HostColumn],
        names: Vec<String>,
        whole: impl FnOnce(&crate::Frame) -> Result<crate::Matrix, KernelError>,
    ) -> Result<crate::Matrix, KernelError> {
        let blocks = crate::frame::matrix_by_blocks(self.rows as usize, names, |j, start, end| {
            columns[j].read_rows(start, end)
        })?;
        match blocks {
            Some(matrix) => Ok(matrix),
            None => whole(&self.read()?),
        }
    }

    /// The plain frame, without a copy natively.
    #[doc(hidden)]
    pub fn into_frame(self) -> Result<crate::Frame, KernelError> {
        Ok(crate::Frame {
            rows: self.rows,
            columns: self
                .columns
                .into_iter()
                .map(HostColumn::into_column)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_borrows_each_value_and_knows_nulls() {
        let column = Column {
            name: "c".into(),
            values: ColumnValues::String(vec!["naïve".into(), String::new(), "b".into()]),
            nulls: Some(vec![0, 1, 0]),
        };
        let h = HostColumn::from_column(column).unwrap();
        let t = h.read_text(0, 3).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(0), Some("naïve"));
        assert_eq!(t.get(1), None, "null");
        assert_eq!(t.get(2), Some("b"));
        assert_eq!(t.get(3), None, "past the end");
        assert_eq!(h.read_text(1, 3).unwrap().get(1), Some("b"));
        assert!(h.read_text(2, 4).is_err());
        // a cut inside a character is refused when the layout is checked
        assert!(Text::new("ï".as_bytes().to_vec(), vec![0, 1, 2], None).is_err());
        assert!(Text::new(b"ab".to_vec(), vec![0, 2, 1], None).is_err());
    }

    #[test]
    fn labels_by_reference_encode_like_labels_by_copy() {
        let y = Column::string("y", ["b", "a", "b", "c"].map(String::from).to_vec());
        let h = HostColumn::from_column(y.clone()).unwrap();
        assert_eq!(
            crate::LabelType::encode_ref(&h).unwrap(),
            crate::LabelType::encode(&y).unwrap()
        );
        let holed = Column {
            nulls: Some(vec![0, 0, 1, 0]),
            ..y
        };
        let err =
            crate::LabelType::encode_ref(&HostColumn::from_column(holed).unwrap()).unwrap_err();
        assert!(err.to_string().contains("missing in row 2"), "{err}");
    }
}
