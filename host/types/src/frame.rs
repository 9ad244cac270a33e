//! Helpers on the WIT [`Frame`] and [`Column`] types as the host sees them.
//! Kernels are untrusted, so every frame they return is checked before the
//! host uses it.

use crate::bindings::{Column, ColumnValues, Frame};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A column held by the host and handed to a kernel by reference
/// (`kernel-host:kernel/columns.host-column`): shared values under a name
/// of its own, so sharing and renaming copy nothing.
#[derive(Clone, Debug)]
pub struct SharedColumn {
    pub name: String,
    pub data: std::sync::Arc<Column>,
    /// Lent to the kernel for one call (revoked when the call returns).
    pub lent: bool,
    /// A lent handle the kernel kept past its call: it holds nothing, and
    /// every use of it is refused until the kernel drops it.
    pub revoked: bool,
}

impl SharedColumn {
    /// The column under this handle's name: the values are moved out when
    /// no other handle shares them, copied otherwise.
    pub fn into_column(self) -> Column {
        let mut column =
            std::sync::Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone());
        column.name = self.name;
        column
    }
}

/// Approximate bytes a column holds in memory (values, null mask, name,
/// strings' bytes and offsets).
pub fn column_bytes(column: &Column) -> usize {
    let values = match &column.values {
        ColumnValues::F64(v) => v.len() * 8,
        ColumnValues::S64(v) => v.len() * 8,
        ColumnValues::Bool(v) => v.len(),
        ColumnValues::String(v) => v.text_len() + v.len() * 8,
    };
    values + column.name.len() + column.nulls.as_ref().map_or(0, Vec::len)
}

pub fn column_len(column: &Column) -> usize {
    match &column.values {
        ColumnValues::F64(v) => v.len(),
        ColumnValues::S64(v) => v.len(),
        ColumnValues::Bool(v) => v.len(),
        ColumnValues::String(v) => v.len(),
    }
}

/// Checks a column has `rows` values and a null mask of the same length.
pub fn check_column(column: &Column, rows: u32) -> Result<(), String> {
    let len = column_len(column);
    if len != rows as usize {
        return Err(format!(
            "column `{}` has {len} rows, expected {rows}",
            column.name
        ));
    }
    if let Some(nulls) = &column.nulls
        && nulls.len() != len
    {
        return Err(format!(
            "column `{}` has a null mask of {} entries for {len} rows",
            column.name,
            nulls.len()
        ));
    }
    Ok(())
}

/// Checks every column has the frame's row count (and that the frame has
/// `expected_rows` rows, when given) and that column names are unique.
pub fn check_frame(frame: &Frame, expected_rows: Option<u32>) -> Result<(), String> {
    if let Some(expected) = expected_rows
        && frame.rows != expected
    {
        return Err(format!(
            "returned {} rows for {expected} input rows",
            frame.rows
        ));
    }
    // Linear: a kernel may return 100 000 columns.
    let mut names = std::collections::HashSet::with_capacity(frame.columns.len());
    for column in &frame.columns {
        check_column(column, frame.rows)?;
        if !names.insert(column.name.as_str()) {
            return Err(format!(
                "column name `{}` appears twice",
                crate::printable(&column.name)
            ));
        }
    }
    if frame.columns.is_empty() && frame.rows > 0 && expected_rows.is_none() {
        return Err(format!("claims {} rows but has no columns", frame.rows));
    }
    Ok(())
}

/// A number as text, shortest form that reads back to the same `f64`:
/// plain notation for everyday magnitudes (`1`, `0.25`, `12345.5`, so an
/// integral label prints like an integer), scientific outside them
/// (`2.2068993304007308e-23`, `1e300`) instead of hundreds of zeros.
pub fn format_f64(x: f64) -> String {
    let mut text = String::new();
    push_f64(&mut text, x);
    text
}

/// [`format_f64`], appended to `out`.
pub fn push_f64(out: &mut String, x: f64) {
    use std::fmt::Write;
    // Writing into a String cannot fail.
    let _ = if x == 0.0 || !x.is_finite() || (1e-5..1e16).contains(&x.abs()) {
        write!(out, "{x}")
    } else {
        write!(out, "{x:e}")
    };
}

/// The text of one cell as written to CSV; `None` when null.
pub fn cell_text(column: &Column, row: usize) -> Option<String> {
    cell_str(column, row, &mut String::new()).map(str::to_string)
}

/// [`cell_text`] without an allocation per cell: a string cell is
/// borrowed from the column, a number is written into `scratch`.
pub fn cell_str<'a>(column: &'a Column, row: usize, scratch: &'a mut String) -> Option<&'a str> {
    use std::fmt::Write;
    if column
        .nulls
        .as_ref()
        .is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
    {
        return None;
    }
    scratch.clear();
    match &column.values {
        ColumnValues::F64(v) => {
            let x = v.get(row).filter(|x| !x.is_nan())?;
            push_f64(scratch, *x);
        }
        ColumnValues::S64(v) => {
            // Writing into a String cannot fail.
            let _ = write!(scratch, "{}", v.get(row)?);
        }
        ColumnValues::Bool(v) => return v.get(row).map(|x| if *x { "true" } else { "false" }),
        ColumnValues::String(v) => return v.get(row),
    }
    Some(scratch)
}

impl Frame {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Removes and returns the column called `name`.
    pub fn take_column(&mut self, name: &str) -> Option<Column> {
        let index = self.columns.iter().position(|c| c.name == name)?;
        Some(self.columns.remove(index))
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Rows `start..end`, copied slice by slice.
    pub fn slice_rows(&self, start: usize, end: usize) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::F64(v) => ColumnValues::F64(v[start..end].to_vec()),
                    ColumnValues::S64(v) => ColumnValues::S64(v[start..end].to_vec()),
                    ColumnValues::Bool(v) => ColumnValues::Bool(v[start..end].to_vec()),
                    ColumnValues::String(v) => ColumnValues::String(v.slice(start, end)),
                },
                nulls: c.nulls.as_ref().map(|n| n[start..end].to_vec()),
            })
            .collect();
        Frame {
            rows: (end - start) as u32,
            columns,
        }
    }

    /// `n` contiguous chunks of (nearly) equal size, in row order.
    pub fn split_rows(&self, n: usize) -> Vec<Frame> {
        let rows = self.rows as usize;
        let n = n.clamp(1, rows.max(1));
        (0..n)
            .map(|k| self.slice_rows(k * rows / n, (k + 1) * rows / n))
            .collect()
    }

    /// Stacks frames with the same columns, in order.
    pub fn concat_rows(parts: Vec<Frame>) -> Result<Frame, String> {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else {
            return Ok(Frame {
                rows: 0,
                columns: Vec::new(),
            });
        };
        for part in parts {
            let names = |f: &Frame| f.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if names(&part) != names(&out) {
                return Err(format!(
                    "returned different columns for different chunks: {:?} and {:?}",
                    names(&out),
                    names(&part)
                ));
            }
            let before = out.rows as usize;
            for (column, more) in out.columns.iter_mut().zip(part.columns) {
                let added = column_len(&more);
                match (&mut column.values, more.values) {
                    (ColumnValues::F64(a), ColumnValues::F64(b)) => a.extend(b),
                    (ColumnValues::S64(a), ColumnValues::S64(b)) => a.extend(b),
                    (ColumnValues::Bool(a), ColumnValues::Bool(b)) => a.extend(b),
                    (ColumnValues::String(a), ColumnValues::String(b)) => a.append(&b),
                    _ => {
                        return Err(format!(
                            "returned column `{}` with different types for different chunks",
                            column.name
                        ));
                    }
                }
                if column.nulls.is_some() || more.nulls.is_some() {
                    let mut nulls = column.nulls.take().unwrap_or_else(|| vec![0; before]);
                    nulls.extend(more.nulls.unwrap_or_else(|| vec![0; added]));
                    column.nulls = Some(nulls);
                }
            }
            out.rows += part.rows;
        }
        Ok(out)
    }

    /// The columns of `schema`, in its order and with its types; extra
    /// columns are dropped. A missing column or another type is refused by
    /// name, with `file` and the frame's first data row for the message.
    pub fn conform(
        mut self,
        schema: &[(String, ColumnType)],
        file: &std::path::Path,
        first_row: u64,
    ) -> Result<Frame, DataError> {
        let error = |column: &str, message: String| DataError {
            file: file.to_path_buf(),
            row: Some(first_row),
            column: Some(column.to_string()),
            message,
        };
        let mut columns = Vec::with_capacity(schema.len());
        for (name, ty) in schema {
            let column = self
                .take_column(name)
                .ok_or_else(|| error(name, "is missing; the pipeline was fitted with it".into()))?;
            let found = type_of(&column);
            if found != *ty {
                return Err(error(
                    name,
                    format!("is {found:?}, but the pipeline was fitted on {ty:?}").to_lowercase(),
                ));
            }
            columns.push(column);
        }
        Ok(Frame {
            rows: self.rows,
            columns,
        })
    }

    /// Names and types of the columns.
    pub fn schema(&self) -> Vec<(String, ColumnType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), type_of(c)))
            .collect()
    }

    /// The rows at `indices`, in that order.
    pub fn take_rows(&self, indices: &[usize]) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::F64(v) => {
                        ColumnValues::F64(indices.iter().map(|i| v[*i]).collect())
                    }
                    ColumnValues::S64(v) => {
                        ColumnValues::S64(indices.iter().map(|i| v[*i]).collect())
                    }
                    ColumnValues::Bool(v) => {
                        ColumnValues::Bool(indices.iter().map(|i| v[*i]).collect())
                    }
                    ColumnValues::String(v) => {
                        ColumnValues::String(indices.iter().map(|i| &v[*i]).collect())
                    }
                },
                nulls: c
                    .nulls
                    .as_ref()
                    .map(|n| indices.iter().map(|i| n[*i]).collect()),
            })
            .collect();
        Frame {
            rows: indices.len() as u32,
            columns,
        }
    }
}

/// A column type, as declared in a manifest's `[data.schema]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    F64,
    S64,
    Bool,
    String,
}

/// As a manifest writes it: `f64`, `s64`, `bool`, `string`.
impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnType::F64 => "f64",
            ColumnType::S64 => "s64",
            ColumnType::Bool => "bool",
            ColumnType::String => "string",
        })
    }
}

/// Which columns of its input a step's kernel sees.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    #[default]
    All,
    /// These columns, in this order.
    Columns(Vec<String>),
    /// Every column of these types, in input order.
    Types(Vec<ColumnType>),
}

/// The type of a column's values.
pub fn type_of(column: &Column) -> ColumnType {
    match column.values {
        ColumnValues::F64(_) => ColumnType::F64,
        ColumnValues::S64(_) => ColumnType::S64,
        ColumnValues::Bool(_) => ColumnType::Bool,
        ColumnValues::String(_) => ColumnType::String,
    }
}

impl Selection {
    /// Splits `frame` into the selected columns and the rest.
    pub fn split(&self, frame: Frame) -> Result<(Frame, Frame), String> {
        let rows = frame.rows;
        let (selected, rest): (Vec<Column>, Vec<Column>) = match self {
            Selection::All => (frame.columns, Vec::new()),
            Selection::Types(types) => frame
                .columns
                .into_iter()
                .partition(|c| types.contains(&type_of(c))),
            Selection::Columns(names) => {
                let mut columns = frame.columns;
                let mut selected = Vec::with_capacity(names.len());
                for name in names {
                    let Some(i) = columns.iter().position(|c| &c.name == name) else {
                        let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                        return Err(format!(
                            "selects column `{name}`, which its input does not have (it has: {})",
                            have.join(", ")
                        ));
                    };
                    selected.push(columns.remove(i));
                }
                (selected, columns)
            }
        };
        Ok((
            Frame {
                rows,
                columns: selected,
            },
            Frame {
                rows,
                columns: rest,
            },
        ))
    }
}

/// Joins frames column-wise, in order. `sources` names where each frame
/// came from, for the error when two of them carry the same column name.
pub fn concat(frames: Vec<(String, Frame)>) -> Result<Frame, String> {
    let rows = frames.first().map_or(0, |(_, f)| f.rows);
    let mut columns: Vec<Column> = Vec::new();
    let mut owners: Vec<String> = Vec::new();
    for (source, frame) in frames {
        if frame.rows != rows {
            return Err(format!(
                "input `{source}` has {} rows, the others {rows}",
                frame.rows
            ));
        }
        for column in frame.columns {
            if let Some(i) = columns.iter().position(|c| c.name == column.name) {
                return Err(format!(
                    "column `{}` comes from both `{}` and `{source}`; select or rename so names are unique",
                    column.name, owners[i]
                ));
            }
            owners.push(source.clone());
            columns.push(column);
        }
    }
    Ok(Frame { rows, columns })
}

/// A problem in an input data file, located by row and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), row.map(|r| format!(": row {r}")).unwrap_or_default(), column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct DataError {
    pub file: PathBuf,
    /// 1-based data row (the header is row 0), when known.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl DataError {
    /// An error about the whole of `file`.
    pub fn new(file: &Path, message: impl Into<String>) -> DataError {
        DataError {
            file: file.to_path_buf(),
            row: None,
            column: None,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_f64;

    #[test]
    fn numbers_print_short_and_round_trip() {
        assert_eq!(format_f64(2.2068993304007308e-23), "2.2068993304007308e-23");
        assert_eq!(format_f64(1.0), "1");
        assert_eq!(format_f64(-0.25), "-0.25");
        assert_eq!(format_f64(1e300), "1e300");
        assert_eq!(format_f64(f64::INFINITY), "inf");
        for x in [1.5e-7, 3.0e17, 0.1 + 0.2, -7.25e-12, 123456.789] {
            assert_eq!(format_f64(x).parse::<f64>().unwrap(), x);
        }
    }
}
