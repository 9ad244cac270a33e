//! Helpers on the WIT [`Frame`] and [`Column`] types as the host sees them.
//! Kernels are untrusted, so every frame they return is checked before the
//! host uses it.

use crate::bindings::{Column, ColumnValues, Frame};

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
    for (i, column) in frame.columns.iter().enumerate() {
        check_column(column, frame.rows)?;
        if frame.columns[..i].iter().any(|c| c.name == column.name) {
            return Err(format!("column name `{}` appears twice", column.name));
        }
    }
    Ok(())
}

/// The text of one cell as written to CSV; `None` when null.
pub fn cell_text(column: &Column, row: usize) -> Option<String> {
    if column
        .nulls
        .as_ref()
        .is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
    {
        return None;
    }
    match &column.values {
        ColumnValues::F64(v) => v.get(row).filter(|x| !x.is_nan()).map(|x| x.to_string()),
        ColumnValues::S64(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Bool(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::String(v) => v.get(row).cloned(),
    }
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
                    ColumnValues::String(v) => ColumnValues::String(v[start..end].to_vec()),
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
                let added = crate::data::column_len(&more);
                match (&mut column.values, more.values) {
                    (ColumnValues::F64(a), ColumnValues::F64(b)) => a.extend(b),
                    (ColumnValues::S64(a), ColumnValues::S64(b)) => a.extend(b),
                    (ColumnValues::Bool(a), ColumnValues::Bool(b)) => a.extend(b),
                    (ColumnValues::String(a), ColumnValues::String(b)) => a.extend(b),
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
        schema: &[(String, crate::data::ColumnType)],
        file: &std::path::Path,
        first_row: u64,
    ) -> Result<Frame, crate::error::DataError> {
        let error = |column: &str, message: String| crate::error::DataError {
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
            let found = crate::graph::type_of(&column);
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
    pub fn schema(&self) -> Vec<(String, crate::data::ColumnType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), crate::graph::type_of(c)))
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
                        ColumnValues::String(indices.iter().map(|i| v[*i].clone()).collect())
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
