//! Helpers on the columnar [`Frame`]: building columns, reading numeric
//! values with their nulls, and the dense row-major [`Matrix`] that models
//! want. There is one data model (the WIT frame); the matrix is a view made
//! on demand.

use crate::{Column, ColumnValues, Frame, KernelError};

impl Frame {
    /// A frame from columns of equal length.
    pub fn new(columns: Vec<Column>) -> Result<Frame, KernelError> {
        let rows = columns.first().map_or(0, Column::len);
        if let Some(bad) = columns.iter().find(|c| c.len() != rows) {
            return Err(KernelError::invalid_input(format!(
                "column `{}` has {} rows but `{}` has {rows}",
                bad.name,
                bad.len(),
                columns[0].name
            )));
        }
        let rows = u32::try_from(rows)
            .map_err(|_| KernelError::invalid_input("a frame holds at most 2^32-1 rows"))?;
        Ok(Frame { rows, columns })
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows as usize
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Checks that every column has `rows` values (and a null mask of the
    /// same length); a frame from the host always passes, one built by hand
    /// may not.
    pub fn check(&self) -> Result<(), KernelError> {
        for c in &self.columns {
            if c.len() != self.len() || c.nulls.as_ref().is_some_and(|n| n.len() != self.len()) {
                return Err(KernelError::invalid_input(format!(
                    "column `{}` does not have the frame's {} rows",
                    c.name, self.rows
                )));
            }
        }
        Ok(())
    }

    /// All columns as a dense row-major matrix. Every column must be numeric
    /// (f64, s64 or bool) and free of nulls; the error names the first column
    /// that is not.
    pub fn to_matrix(&self) -> Result<Matrix, KernelError> {
        self.check()?;
        matrix_of(self.len(), self.columns.iter().collect())
    }

    /// The columns called `names`, in that order, as a dense matrix: how a
    /// fitted model reads its features from new data (extra columns are
    /// ignored, a missing one is refused by name).
    pub fn select_matrix(&self, names: &[String]) -> Result<Matrix, KernelError> {
        matrix_of(self.len(), self.selected(names)?)
    }

    /// The rows of `to_matrix()`, in order, a block of at most
    /// `block_rows` rows at a time: see [`Frame::select_row_blocks`]. For
    /// row-wise sums over every column (a fit's means and Gram matrix),
    /// without the whole matrix beside the frame.
    pub fn row_blocks(
        &self,
        block_rows: usize,
        f: impl FnMut(&Matrix) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        self.check()?;
        let names = self.columns.iter().map(|c| c.name.clone()).collect();
        blocks_of(
            self.len(),
            self.columns.iter().collect(),
            names,
            block_rows,
            f,
        )
    }

    /// The rows of `select_matrix(names)`, in order, a block of at most
    /// `block_rows` rows at a time (one small matrix, reused): the same
    /// checks and errors first, then `f` for each block. For row-wise work
    /// such as predictions: the kernel holds the frame and one block,
    /// never the whole matrix beside the frame.
    pub fn select_row_blocks(
        &self,
        names: &[String],
        block_rows: usize,
        f: impl FnMut(&Matrix) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        let columns = self.selected(names)?;
        blocks_of(self.len(), columns, names.to_vec(), block_rows, f)
    }

    /// The columns called `names`, in that order, of a checked frame.
    fn selected(&self, names: &[String]) -> Result<Vec<&Column>, KernelError> {
        self.check()?;
        names
            .iter()
            .map(|name| {
                self.column(name)
                    .ok_or_else(|| missing_feature(name, &self.column_names()))
            })
            .collect()
    }
}

/// `columns` (called `names`, `rows` long, of a checked frame) as
/// row-major blocks of at most `block_rows` rows, one reused matrix, each
/// handed to `f` in order; a column that is not numeric or has a gap is
/// refused first, as [`Frame::to_matrix`] refuses it.
fn blocks_of(
    rows: usize,
    columns: Vec<&Column>,
    names: Vec<String>,
    block_rows: usize,
    mut f: impl FnMut(&Matrix) -> Result<(), KernelError>,
) -> Result<(), KernelError> {
    let sources = numeric_sources(rows, &columns)?;
    let cols = sources.len();
    let block_rows = block_rows.max(1);
    let mut block = Matrix {
        rows: 0,
        cols,
        data: Vec::with_capacity(block_rows.min(rows) * cols),
        names,
    };
    for start in (0..rows).step_by(block_rows) {
        let end = (start + block_rows).min(rows);
        block.rows = end - start;
        block.data.clear();
        block.data.resize(block.rows * cols, 0.0);
        for (j, source) in sources.iter().enumerate() {
            copy_stripe(&mut block.data, cols, j, &source.rows(start..end));
        }
        f(&block)?;
    }
    Ok(())
}

/// A fitted model's feature column `name` is not in an input whose
/// columns are `has`.
pub(crate) fn missing_feature(name: &str, has: &[impl AsRef<str>]) -> KernelError {
    let has: Vec<&str> = has.iter().map(AsRef::as_ref).collect();
    KernelError::invalid_input(format!(
        "feature column `{name}` is missing (the input has: {})",
        has.join(", ")
    ))
}

fn matrix_of(rows: usize, columns: Vec<&Column>) -> Result<Matrix, KernelError> {
    let cols = columns.len();
    // Every column checked first, then copied in blocks of rows: a block
    // of the matrix stays in cache while each column writes its stripe of
    // it, instead of every column streaming through the whole matrix.
    let sources = numeric_sources(rows, &columns)?;
    // `check` made every column `rows` long.
    let mut data = vec![0.0; rows * cols];
    if cols > 0 {
        for (b, block) in data.chunks_mut(COPY_BLOCK_ROWS * cols).enumerate() {
            let rows = b * COPY_BLOCK_ROWS..b * COPY_BLOCK_ROWS + block.len() / cols;
            for (j, source) in sources.iter().enumerate() {
                // s64 and bool converted as they are copied: no f64 copy
                // of a whole column beside the matrix.
                copy_stripe(block, cols, j, &source.rows(rows.clone()));
            }
        }
    }
    Ok(Matrix {
        rows,
        cols,
        data,
        names: columns.iter().map(|c| c.name.clone()).collect(),
    })
}

/// `f64` output columns filled from row-major blocks of rows (each row
/// one value per column, in order): how a kernel turns a block's results
/// from the host (probabilities, projections, distances) into its output
/// frame without a row-major copy of every row.
pub struct F64Columns {
    columns: Vec<Vec<f64>>,
}

impl F64Columns {
    /// `width` empty columns with room for `rows` rows each.
    pub fn with_capacity(width: usize, rows: usize) -> F64Columns {
        F64Columns {
            columns: (0..width).map(|_| Vec::with_capacity(rows)).collect(),
        }
    }

    /// Appends the rows of `values` (row-major, `width` values a row),
    /// each value as `f64_of` makes it.
    pub fn push_rows<T: Copy>(&mut self, values: &[T], f64_of: impl Fn(T) -> f64) {
        for row in values.chunks(self.columns.len().max(1)) {
            for (column, &value) in self.columns.iter_mut().zip(row) {
                column.push(f64_of(value));
            }
        }
    }

    /// The columns, named in order by `names`.
    pub fn into_frame(self, names: impl IntoIterator<Item = String>) -> Result<Frame, KernelError> {
        Frame::new(
            names
                .into_iter()
                .zip(self.columns)
                .map(|(name, values)| Column::f64(name, values))
                .collect(),
        )
    }
}

/// Rows a kernel hands the host at once in [`Frame::select_row_blocks`]
/// when the host computes each row on its own (predictions on host
/// matrices and tensors): enough rows to spread each host call's cost,
/// few enough that the kernel holds its input frame and one block, not a
/// whole matrix beside it (8 192 rows of 16 features: 1 MiB).
pub const HOST_BLOCK_ROWS: usize = 8192;

/// Rows of a matrix written at once, every column's stripe of them in
/// turn (128 rows of 16 columns: 16 KiB, in L1 cache).
const COPY_BLOCK_ROWS: usize = 128;

/// The numeric values of each of `columns`, checked in order: the first
/// column that is not numeric, then its first missing row, is refused.
fn numeric_sources<'a>(
    rows: usize,
    columns: &[&'a Column],
) -> Result<Vec<NumericValues<'a>>, KernelError> {
    let mut sources: Vec<NumericValues<'a>> = Vec::with_capacity(columns.len());
    for column in columns {
        let values = column.numeric().ok_or_else(|| {
            KernelError::invalid_input(format!(
                "column `{}` is {}; this kernel needs numeric columns (encode it first)",
                column.name,
                column.type_name()
            ))
        })?;
        // Whole-column scans first (cheap); the row only when one fails.
        if !complete(column, &values)
            && let Some(i) = (0..rows).find(|&i| values.get(i).is_none())
        {
            return Err(KernelError::invalid_input(format!(
                "column `{}` has a missing value in row {i}; impute it first",
                column.name
            )));
        }
        sources.push(values.values);
    }
    Ok(sources)
}

/// Rows read in one block by [`matrix_by_blocks`]: 8 192 rows of a
/// 16-column matrix are 1 MiB, and a block of one column 64 KiB.
const READ_BLOCK_ROWS: usize = 8192;

/// The row-major matrix of `names.len()` columns of `rows` rows, read a
/// block of rows at a time by `read(j, start, end)` (column `j`'s rows
/// `start..end`): the kernel holds the matrix and one block of one column,
/// never the whole frame beside the matrix. `None` when a block is not
/// numeric or has a missing value: the caller then reports the error as
/// [`Frame::to_matrix`] does (the first bad column, its first missing row).
pub(crate) fn matrix_by_blocks(
    rows: usize,
    names: Vec<String>,
    mut read: impl FnMut(usize, usize, usize) -> Result<Column, KernelError>,
) -> Result<Option<Matrix>, KernelError> {
    let cols = names.len();
    let mut data = vec![0.0; rows * cols];
    for start in (0..rows).step_by(READ_BLOCK_ROWS) {
        let end = (start + READ_BLOCK_ROWS).min(rows);
        let block = &mut data[start * cols..end * cols];
        for j in 0..cols {
            let part = read(j, start, end)?;
            let Some(values) = part.numeric() else {
                return Ok(None);
            };
            if !complete(&part, &values) || values.len() != end - start {
                return Ok(None);
            }
            copy_stripe(block, cols, j, &values.values);
        }
    }
    Ok(Some(Matrix {
        rows,
        cols,
        data,
        names,
    }))
}

/// Whether `column` (whose numeric view is `values`) has no null and no
/// NaN: whole-column scans, no per-row lookup.
fn complete(column: &Column, values: &NumericColumn<'_>) -> bool {
    column
        .nulls
        .as_deref()
        .is_none_or(|n| n.iter().all(|b| *b == 0))
        && !matches!(values.values, NumericValues::F64(v) if v.iter().any(|x| x.is_nan()))
}

/// Writes `source` as column `j` of `block` (rows of `cols` cells),
/// converting s64 and bool as it copies.
fn copy_stripe(block: &mut [f64], cols: usize, j: usize, source: &NumericValues<'_>) {
    match source {
        NumericValues::F64(v) => stripe(block, cols, j, v, |x| x),
        NumericValues::S64(v) => stripe(block, cols, j, v, |x| x as f64),
        NumericValues::Bool(v) => stripe(block, cols, j, v, |x| f64::from(u8::from(x))),
    }
}

/// Writes `values` as column `j` of `block`, rows of `cols` cells.
fn stripe<T: Copy>(
    block: &mut [f64],
    cols: usize,
    j: usize,
    values: &[T],
    f64_of: impl Fn(T) -> f64,
) {
    for (row, x) in block.chunks_exact_mut(cols).zip(values) {
        row[j] = f64_of(*x);
    }
}

impl Column {
    fn with(name: impl Into<String>, values: ColumnValues) -> Column {
        Column {
            name: name.into(),
            values,
            nulls: None,
        }
    }

    pub fn f64(name: impl Into<String>, values: Vec<f64>) -> Column {
        Column::with(name, ColumnValues::F64(values))
    }

    pub fn s64(name: impl Into<String>, values: Vec<i64>) -> Column {
        Column::with(name, ColumnValues::S64(values))
    }

    pub fn bool(name: impl Into<String>, values: Vec<bool>) -> Column {
        Column::with(name, ColumnValues::Bool(values))
    }

    pub fn string(name: impl Into<String>, values: Vec<String>) -> Column {
        Column::with(name, ColumnValues::String(values))
    }

    /// Marks rows as missing: one byte per row, non-zero meaning null.
    pub fn with_nulls(mut self, nulls: Vec<u8>) -> Column {
        self.nulls = Some(nulls);
        self
    }

    pub fn len(&self) -> usize {
        match &self.values {
            ColumnValues::F64(v) => v.len(),
            ColumnValues::S64(v) => v.len(),
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::String(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.nulls
            .as_ref()
            .is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
    }

    pub fn null_count(&self) -> usize {
        self.nulls
            .as_ref()
            .map_or(0, |n| n.iter().filter(|b| **b != 0).count())
    }

    /// `f64`, `s64`, `bool` or `string`.
    pub fn type_name(&self) -> &'static str {
        match &self.values {
            ColumnValues::F64(_) => "f64",
            ColumnValues::S64(_) => "s64",
            ColumnValues::Bool(_) => "bool",
            ColumnValues::String(_) => "string",
        }
    }

    /// A numeric view (f64, s64 and bool columns), `None` for strings.
    pub fn numeric(&self) -> Option<NumericColumn<'_>> {
        let values = match &self.values {
            ColumnValues::F64(v) => NumericValues::F64(v),
            ColumnValues::S64(v) => NumericValues::S64(v),
            ColumnValues::Bool(v) => NumericValues::Bool(v),
            ColumnValues::String(_) => return None,
        };
        Some(NumericColumn {
            values,
            nulls: self.nulls.as_deref(),
        })
    }

    /// Like [`Column::label`], borrowing string cells instead of copying
    /// them: the per-row accessor for hot loops.
    pub fn label_str(&self, row: usize) -> Option<std::borrow::Cow<'_, str>> {
        if self.is_null(row) {
            return None;
        }
        match &self.values {
            ColumnValues::String(v) => v.get(row).map(|s| std::borrow::Cow::Borrowed(s.as_str())),
            _ => self.label(row).map(std::borrow::Cow::Owned),
        }
    }

    /// The value of `row` as text (`None` when null): how classifiers see
    /// their labels whatever the column type.
    pub fn label(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        match &self.values {
            ColumnValues::F64(v) => v.get(row).map(|x| x.to_string()),
            ColumnValues::S64(v) => v.get(row).map(|x| x.to_string()),
            ColumnValues::Bool(v) => v.get(row).map(|x| x.to_string()),
            ColumnValues::String(v) => v.get(row).cloned(),
        }
    }
}

enum NumericValues<'a> {
    F64(&'a [f64]),
    S64(&'a [i64]),
    Bool(&'a [bool]),
}

impl<'a> NumericValues<'a> {
    /// The values of `rows`.
    fn rows(&self, rows: std::ops::Range<usize>) -> NumericValues<'a> {
        match self {
            NumericValues::F64(v) => NumericValues::F64(&v[rows]),
            NumericValues::S64(v) => NumericValues::S64(&v[rows]),
            NumericValues::Bool(v) => NumericValues::Bool(&v[rows]),
        }
    }
}

/// Read access to a numeric column as `f64`, nulls as `None`.
pub struct NumericColumn<'a> {
    values: NumericValues<'a>,
    nulls: Option<&'a [u8]>,
}

impl NumericColumn<'_> {
    /// The value at `row`; `None` when it is null or out of range.
    pub fn get(&self, row: usize) -> Option<f64> {
        if self
            .nulls
            .is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
        {
            return None;
        }
        match self.values {
            NumericValues::F64(v) => v.get(row).copied().filter(|x| !x.is_nan()),
            NumericValues::S64(v) => v.get(row).map(|x| *x as f64),
            NumericValues::Bool(v) => v.get(row).map(|x| f64::from(u8::from(*x))),
        }
    }

    pub fn len(&self) -> usize {
        match self.values {
            NumericValues::F64(v) => v.len(),
            NumericValues::S64(v) => v.len(),
            NumericValues::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The non-null values, in row order.
    pub fn present(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// A dense row-major matrix of `f64`, with the names of its columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    /// `data[i * cols + j]` is row `i`, column `j`.
    pub data: Vec<f64>,
    pub names: Vec<String>,
}

impl Matrix {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Every row in order: `rows` of them, empty ones when the matrix has
    /// no column.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let empty = if self.cols == 0 { self.rows } else { 0 };
        self.data
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .chain(std::iter::repeat_n(&[][..], empty))
    }

    /// Refuses NaN and ±infinity with `invalid-input`, naming the first
    /// cell: for models whose training cannot survive them (an optimizer
    /// would diverge instead of saying why).
    pub fn require_finite(&self) -> Result<(), KernelError> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(at) => Err(KernelError::invalid_input(format!(
                "column `{}` holds {} in row {}; this kernel needs finite values \
                 (impute or drop them first)",
                self.names
                    .get(at % self.cols.max(1))
                    .map_or("?", String::as_str),
                self.data[at],
                at / self.cols.max(1)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix as the plain definition makes it: cell by cell.
    fn naive(frame: &Frame) -> Vec<f64> {
        let mut data = Vec::new();
        for i in 0..frame.len() {
            for c in &frame.columns {
                data.push(c.numeric().unwrap().get(i).unwrap());
            }
        }
        data
    }

    fn frame(rows: usize, cols: usize) -> Frame {
        let columns = (0..cols)
            .map(|j| {
                let name = format!("c{j}");
                match j % 3 {
                    0 => Column::f64(name, (0..rows).map(|i| (i * 31 + j) as f64 / 7.0).collect()),
                    1 => Column::s64(
                        name,
                        (0..rows).map(|i| (i as i64 - 50) * (j as i64)).collect(),
                    ),
                    _ => Column::bool(name, (0..rows).map(|i| (i + j) % 3 == 0).collect()),
                }
            })
            .collect();
        Frame {
            rows: rows as u32,
            columns,
        }
    }

    #[test]
    fn the_matrix_holds_every_cell_in_row_major_order() {
        for rows in [0, 1, 127, 128, 129, 300, 1000] {
            for cols in [0, 1, 2, 3, 20] {
                let f = frame(rows, cols);
                let m = f.to_matrix().unwrap();
                assert_eq!((m.rows, m.cols), (rows, cols));
                assert_eq!(m.data, naive(&f), "{rows} x {cols}");
                assert_eq!(m.names, f.column_names());
                let reversed: Vec<String> = f
                    .column_names()
                    .into_iter()
                    .rev()
                    .map(str::to_string)
                    .collect();
                let s = f.select_matrix(&reversed).unwrap();
                assert_eq!(s.names, reversed);
                for (i, row) in s.rows().enumerate() {
                    let forward: Vec<f64> =
                        m.rows().nth(i).unwrap().iter().rev().copied().collect();
                    assert_eq!(row, forward.as_slice());
                }
            }
        }
    }

    #[test]
    fn the_first_bad_column_and_its_first_missing_row_are_named() {
        let mut f = frame(300, 4);
        f.columns[3] = Column::string("text", vec![String::new(); 300]);
        f.columns[2] = std::mem::replace(&mut f.columns[2], Column::f64("x", Vec::new()))
            .with_nulls((0..300).map(|i| u8::from(i == 250 || i == 290)).collect());
        let mut values: Vec<f64> = (0..300).map(f64::from).collect();
        values[200] = f64::NAN;
        f.columns[1] = Column::f64("c1", values);
        let message = |f: &Frame| format!("{:?}", f.to_matrix().unwrap_err());
        assert!(
            message(&f).contains("`c1` has a missing value in row 200"),
            "{}",
            message(&f)
        );
        f.columns.remove(1);
        assert!(
            message(&f).contains("`c2` has a missing value in row 250"),
            "{}",
            message(&f)
        );
        f.columns.remove(1);
        assert!(message(&f).contains("`text` is"), "{}", message(&f));
    }

    /// `by_blocks` is `whole`: shape, names and every value's bits.
    fn assert_same_matrix(by_blocks: &Matrix, whole: &Matrix, case: &str) {
        assert_eq!(
            (by_blocks.rows, by_blocks.cols, &by_blocks.names),
            (whole.rows, whole.cols, &whole.names),
            "{case}"
        );
        assert!(
            by_blocks
                .data
                .iter()
                .zip(&whole.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case}"
        );
    }

    /// A frame by reference read into a matrix a block of rows at a time
    /// gives the matrix of the frame read whole, across block edges, and
    /// the same error for the same bad column and row.
    #[test]
    fn a_matrix_read_by_blocks_is_the_matrix_read_whole() {
        use crate::FrameRef;
        for rows in [0, 1, 8191, 8192, 8193, 20_000] {
            for cols in [0, 1, 5] {
                let f = frame(rows, cols);
                let by_blocks = FrameRef::of(f.clone()).unwrap().to_matrix().unwrap();
                assert_same_matrix(
                    &by_blocks,
                    &f.to_matrix().unwrap(),
                    &format!("{rows} x {cols}"),
                );
            }
        }
        // A NaN in the second block of a later column, a null in the first
        // block of an earlier one: the earlier column is named, as whole.
        let mut f = frame(20_000, 4);
        let mut late: Vec<f64> = (0..20_000).map(f64::from).collect();
        late[9_000] = f64::NAN;
        f.columns[3] = Column::f64("late", late);
        f.columns[1] = std::mem::replace(&mut f.columns[1], Column::f64("x", Vec::new()))
            .with_nulls((0..20_000).map(|i| u8::from(i == 15_000)).collect());
        let error = |f: &Frame| {
            format!(
                "{:?}",
                FrameRef::of(f.clone()).unwrap().to_matrix().unwrap_err()
            )
        };
        assert_eq!(error(&f), format!("{:?}", f.to_matrix().unwrap_err()));
        assert!(
            error(&f).contains("`c1` has a missing value in row 15000"),
            "{}",
            error(&f)
        );
        f.columns[0] = Column::string("text", vec![String::new(); 20_000]);
        assert!(error(&f).contains("`text` is"), "{}", error(&f));
    }

    #[test]
    fn a_matrix_without_columns_still_has_its_rows() {
        let m = Matrix {
            rows: 3,
            cols: 0,
            data: Vec::new(),
            names: Vec::new(),
        };
        assert_eq!(m.rows().collect::<Vec<_>>(), vec![&[] as &[f64]; 3]);
        let m = Matrix {
            rows: 2,
            cols: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
            names: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            m.rows().collect::<Vec<_>>(),
            vec![&[1.0, 2.0][..], &[3.0, 4.0]]
        );
    }

    #[test]
    fn output_columns_fill_from_row_major_blocks() {
        // Three columns, rows pushed in blocks of 0, 1 and 2 rows.
        let mut columns = F64Columns::with_capacity(3, 3);
        for block in [
            &[][..],
            &[1.0f32, 2.0, 3.0],
            &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        ] {
            columns.push_rows(block, |x| f64::from(x) * 10.0);
        }
        let frame = columns
            .into_frame(["a", "b", "c"].map(String::from))
            .unwrap();
        assert_eq!(frame.rows, 3);
        assert_eq!(
            frame.columns,
            vec![
                Column::f64("a", vec![10.0, 40.0, 70.0]),
                Column::f64("b", vec![20.0, 50.0, 80.0]),
                Column::f64("c", vec![30.0, 60.0, 90.0]),
            ]
        );
        // No columns: an empty frame, whatever was pushed.
        let mut none = F64Columns::with_capacity(0, 5);
        none.push_rows(&[] as &[f64], |x| x);
        let frame = none.into_frame(Vec::new()).unwrap();
        assert_eq!((frame.rows, frame.columns.len()), (0, 0));
    }

    /// The blocks `walk` hands out, stacked back into one matrix.
    fn stacked(
        names: Vec<String>,
        walk: impl FnOnce(&mut dyn FnMut(&Matrix) -> Result<(), KernelError>),
    ) -> Matrix {
        let mut all = Matrix {
            rows: 0,
            cols: names.len(),
            data: Vec::new(),
            names,
        };
        walk(&mut |m| {
            assert_eq!((m.cols, &m.names), (all.cols, &all.names));
            all.rows += m.rows;
            all.data.extend_from_slice(&m.data);
            Ok(())
        });
        all
    }

    #[test]
    fn row_blocks_are_the_selected_matrix_cut_by_rows() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for rows in [0, 1, 127, 128, 129, 1000] {
            let f = frame(rows, 5);
            for selection in [names(&["c3", "c0", "c4"]), names(&["c1"]), Vec::new()] {
                let whole = f.select_matrix(&selection).unwrap();
                for block_rows in [0, 1, 7, 128, 5000] {
                    let mut blocks = 0;
                    let by_blocks = stacked(selection.clone(), |keep| {
                        f.select_row_blocks(&selection, block_rows, |m| {
                            assert!(m.rows >= 1 && m.rows <= block_rows.max(1));
                            blocks += 1;
                            keep(m)
                        })
                        .unwrap();
                    });
                    let case = format!("{rows} rows, {selection:?}, blocks of {block_rows}");
                    assert_eq!(blocks, rows.div_ceil(block_rows.max(1)), "{case}");
                    assert_same_matrix(&by_blocks, &whole, &case);
                }
            }
        }
        // The same errors as the whole selection, before any block; and an
        // error from a block ends the walk with it.
        let mut f = frame(300, 3);
        f.columns[1] = std::mem::replace(&mut f.columns[1], Column::f64("x", Vec::new()))
            .with_nulls((0..300).map(|i| u8::from(i == 250)).collect());
        for selection in [names(&["c0", "nope"]), names(&["c2", "c1"])] {
            let mut called = false;
            let e = f
                .select_row_blocks(&selection, 10, |_| {
                    called = true;
                    Ok(())
                })
                .unwrap_err();
            assert!(!called);
            assert_eq!(e, f.select_matrix(&selection).unwrap_err());
        }
        let mut seen = 0;
        let e = f
            .select_row_blocks(&names(&["c0"]), 100, |_| {
                seen += 1;
                Err(KernelError::failed("stop"))
            })
            .unwrap_err();
        assert_eq!((seen, e.message()), (1, "stop"));
    }

    #[test]
    fn row_blocks_are_the_whole_matrix_cut_by_rows() {
        for rows in [0, 1, 511, 512, 513, 2000] {
            let f = frame(rows, 4);
            let whole = f.to_matrix().unwrap();
            let by_blocks = stacked(whole.names.clone(), |keep| {
                f.row_blocks(512, keep).unwrap();
            });
            assert_same_matrix(&by_blocks, &whole, &format!("{rows} rows"));
        }
        // A column with a gap: `to_matrix`'s error, before any block, even
        // for a frame of no rows with a string column.
        let mut f = frame(300, 3);
        f.columns[2] = std::mem::replace(&mut f.columns[2], Column::f64("x", Vec::new()))
            .with_nulls((0..300).map(|i| u8::from(i == 7)).collect());
        let e = f.row_blocks(10, |_| panic!("no block")).unwrap_err();
        assert_eq!(e, f.to_matrix().unwrap_err());
        let empty = Frame::new(vec![Column::string("s", Vec::new())]).unwrap();
        let e = empty.row_blocks(10, |_| panic!("no block")).unwrap_err();
        assert_eq!(e, empty.to_matrix().unwrap_err());
    }

    #[test]
    fn a_selection_read_by_blocks_is_the_selection_read_whole() {
        use crate::FrameRef;
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for rows in [0, 1, 8193, 20_000] {
            let mut f = frame(rows, 5);
            // A column it does not select may be anything.
            f.columns
                .push(Column::string("text", vec![String::new(); rows]).with_nulls(vec![1; rows]));
            for selection in [names(&["c4", "c0", "c2"]), names(&["c1"]), Vec::new()] {
                let by_blocks = FrameRef::of(f.clone())
                    .unwrap()
                    .select_matrix(&selection)
                    .unwrap();
                let whole = f.select_matrix(&selection).unwrap();
                assert_same_matrix(&by_blocks, &whole, &format!("{rows} x {selection:?}"));
            }
        }
        // The same errors: a missing feature, then a selected column that
        // is not numeric or has a hole.
        let mut f = frame(20_000, 3);
        f.columns[1] = std::mem::replace(&mut f.columns[1], Column::f64("x", Vec::new()))
            .with_nulls((0..20_000).map(|i| u8::from(i == 12_345)).collect());
        f.columns
            .push(Column::string("text", vec![String::new(); 20_000]));
        for (selection, expected) in [
            (names(&["c0", "nope"]), "`nope` is missing"),
            (
                names(&["c2", "c1"]),
                "`c1` has a missing value in row 12345",
            ),
            (names(&["c0", "text"]), "`text` is"),
        ] {
            let by_blocks = FrameRef::of(f.clone())
                .unwrap()
                .select_matrix(&selection)
                .unwrap_err();
            let whole = f.select_matrix(&selection).unwrap_err();
            assert_eq!(format!("{by_blocks:?}"), format!("{whole:?}"));
            assert!(by_blocks.message().contains(expected), "{by_blocks:?}");
        }
    }
}
