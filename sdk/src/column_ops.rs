//! The arithmetic of the host column operations (`kernel-host:kernel/columns`),
//! on plain columns. One definition: the host includes this file (it runs
//! the operations kernels ask for), and the SDK runs it natively so that a
//! kernel's by-reference path can be unit-tested without a host. Every sum
//! runs in row order in f64, as a kernel's own loop would, so by reference
//! and by copy give bit-identical results.
//!
//! Standard library only; the parent module provides `Column` and
//! `ColumnValues` (the WIT types, host or guest side). A string column's
//! values are a `Vec<String>` on the guest side and the host's one-buffer
//! `Texts` on the host side: the ops reach them through [`StringCells`].

use super::{Column, ColumnValues};

/// What the ops need of a string column's values. Implemented here for the
/// guest's `Vec<String>`, and by the host for its `Texts`.
pub trait StringCells: Sized {
    /// Values made of `cells`, in order.
    fn from_cells<'a>(cells: impl Iterator<Item = &'a str>) -> Self;
    /// Rows `start..end` (within the values).
    fn cell_rows(&self, start: usize, end: usize) -> Self;
    /// Rows `start..end` as one UTF-8 buffer and the offsets of Arrow's
    /// layout (`end - start + 1`, from 0), or the buffer's length when it
    /// would not fit a `u32`.
    fn utf8_rows(&self, start: usize, end: usize) -> Result<(Vec<u8>, Vec<u32>), usize>;
}

impl StringCells for Vec<String> {
    fn from_cells<'a>(cells: impl Iterator<Item = &'a str>) -> Self {
        cells.map(str::to_string).collect()
    }

    fn cell_rows(&self, start: usize, end: usize) -> Self {
        self[start..end].to_vec()
    }

    fn utf8_rows(&self, start: usize, end: usize) -> Result<(Vec<u8>, Vec<u32>), usize> {
        let slice = &self[start..end];
        let bytes: usize = slice.iter().map(String::len).sum();
        if u32::try_from(bytes).is_err() {
            return Err(bytes);
        }
        let mut utf8 = Vec::with_capacity(bytes);
        let mut offsets = Vec::with_capacity(slice.len() + 1);
        offsets.push(0);
        for s in slice {
            utf8.extend_from_slice(s.as_bytes());
            offsets.push(utf8.len() as u32);
        }
        Ok((utf8, offsets))
    }
}

/// Statistics of a numeric column's present values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub count: u64,
    /// Sum in row order, from 0.
    pub sum: f64,
    /// Sum in row order / count; 0 when there is no present value.
    pub mean: f64,
    /// Sum in row order of squared deviations from `mean`.
    pub m2: f64,
    /// NaN when there is no present value.
    pub min: f64,
    pub max: f64,
}

fn null(nulls: Option<&[u8]>, row: usize) -> bool {
    nulls.is_some_and(|n| n.get(row).is_some_and(|b| *b != 0))
}

/// Positions of distinct strings: a list searched in order while there
/// are few (a column's categories, typically; comparing a few short
/// strings costs less than hashing one), a hash map beyond.
#[derive(Default)]
struct StrIndex<'a> {
    few: Vec<(&'a str, usize)>,
    many: std::collections::HashMap<&'a str, usize>,
}

impl<'a> StrIndex<'a> {
    /// Entries kept in the list before moving to the map.
    const FEW: usize = 16;

    fn get(&self, key: &str) -> Option<usize> {
        if self.many.is_empty() {
            self.few.iter().find(|(k, _)| *k == key).map(|(_, i)| *i)
        } else {
            self.many.get(key).copied()
        }
    }

    /// Sets the position of `key` (replacing an earlier one).
    fn insert(&mut self, key: &'a str, at: usize) {
        if !self.many.is_empty() {
            self.many.insert(key, at);
        } else if let Some(entry) = self.few.iter_mut().find(|(k, _)| *k == key) {
            entry.1 = at;
        } else if self.few.len() < Self::FEW {
            self.few.push((key, at));
        } else {
            self.many.extend(self.few.drain(..));
            self.many.insert(key, at);
        }
    }
}

/// The numeric value at `row` (s64 and bool as f64), `None` when the row is
/// null or (for f64) NaN; `Err` for a string column.
fn present(values: &ColumnValues, nulls: Option<&[u8]>, row: usize) -> Option<f64> {
    if null(nulls, row) {
        return None;
    }
    match values {
        ColumnValues::F64(v) => v.get(row).copied().filter(|x| !x.is_nan()),
        ColumnValues::S64(v) => v.get(row).map(|x| *x as f64),
        ColumnValues::Bool(v) => v.get(row).map(|x| f64::from(u8::from(*x))),
        ColumnValues::String(_) => None,
    }
}

fn len(values: &ColumnValues) -> usize {
    match values {
        ColumnValues::F64(v) => v.len(),
        ColumnValues::S64(v) => v.len(),
        ColumnValues::Bool(v) => v.len(),
        ColumnValues::String(v) => v.len(),
    }
}

fn numeric(column: &Column) -> Result<(), String> {
    match column.values {
        ColumnValues::String(_) => Err(format!(
            "column `{}` holds strings; the operation needs a numeric column",
            column.name
        )),
        _ => Ok(()),
    }
}

/// Count, mean, m2, min and max of the present values.
pub fn moments(column: &Column) -> Result<Stats, String> {
    numeric(column)?;
    let nulls = column.nulls.as_deref();
    let rows = len(&column.values);
    let (mut count, mut sum) = (0u64, 0.0f64);
    let (mut min, mut max) = (f64::NAN, f64::NAN);
    for row in 0..rows {
        if let Some(v) = present(&column.values, nulls, row) {
            count += 1;
            sum += v;
            if min.is_nan() || v < min {
                min = v;
            }
            if max.is_nan() || v > max {
                max = v;
            }
        }
    }
    let mean = if count > 0 { sum / count as f64 } else { 0.0 };
    let mut m2 = 0.0;
    for row in 0..rows {
        if let Some(v) = present(&column.values, nulls, row) {
            m2 += (v - mean) * (v - mean);
        }
    }
    Ok(Stats {
        count,
        sum,
        mean,
        m2,
        min,
        max,
    })
}

/// `(x - shift) / divisor` over every slot of a numeric column (null slots
/// hold placeholders and stay null), as f64.
pub fn affine(column: &Column, shift: f64, divisor: f64) -> Result<Column, String> {
    numeric(column)?;
    let values = match &column.values {
        ColumnValues::F64(v) => v.iter().map(|x| (*x - shift) / divisor).collect(),
        ColumnValues::S64(v) => v.iter().map(|x| (*x as f64 - shift) / divisor).collect(),
        ColumnValues::Bool(v) => v
            .iter()
            .map(|x| (f64::from(u8::from(*x)) - shift) / divisor)
            .collect(),
        ColumnValues::String(_) => return Err(format!("column `{}` holds strings", column.name)),
    };
    Ok(Column {
        name: column.name.clone(),
        values: ColumnValues::F64(values),
        nulls: column.nulls.clone(),
    })
}

/// [`affine`] rewriting an f64 column's values in place (other types are
/// converted into a new buffer).
pub fn affine_into(mut column: Column, shift: f64, divisor: f64) -> Result<Column, String> {
    if let ColumnValues::F64(values) = &mut column.values {
        for v in values.iter_mut() {
            *v = (*v - shift) / divisor;
        }
        return Ok(column);
    }
    affine(&column, shift, divisor)
}

/// A numeric column as f64 with every null and NaN replaced by `value`.
pub fn fill_nulls(column: &Column, value: f64) -> Result<Column, String> {
    numeric(column)?;
    let nulls = column.nulls.as_deref();
    let values = (0..len(&column.values))
        .map(|row| present(&column.values, nulls, row).unwrap_or(value))
        .collect();
    Ok(Column {
        name: column.name.clone(),
        values: ColumnValues::F64(values),
        nulls: None,
    })
}

/// A string column with every null replaced by `value`.
pub fn fill_nulls_text(column: &Column, value: &str) -> Result<Column, String> {
    let ColumnValues::String(v) = &column.values else {
        return Err(format!("column `{}` is not a string column", column.name));
    };
    let nulls = column.nulls.as_deref();
    let values = StringCells::from_cells(v.iter().enumerate().map(|(row, s)| -> &str {
        if null(nulls, row) { value } else { s }
    }));
    Ok(Column {
        name: column.name.clone(),
        values: ColumnValues::String(values),
        nulls: None,
    })
}

/// A string column's distinct present values and their counts, in order of
/// first occurrence.
pub fn value_counts(column: &Column) -> Result<Vec<(String, u64)>, String> {
    let ColumnValues::String(v) = &column.values else {
        return Err(format!("column `{}` is not a string column", column.name));
    };
    let nulls = column.nulls.as_deref();
    let mut index = StrIndex::default();
    let mut out: Vec<(String, u64)> = Vec::new();
    for (row, s) in v.iter().enumerate() {
        if null(nulls, row) {
            continue;
        }
        match index.get(s) {
            Some(i) => out[i].1 += 1,
            None => {
                index.insert(s, out.len());
                out.push((s.to_string(), 1));
            }
        }
    }
    Ok(out)
}

/// Refuses a row range past the end of `column`.
fn check_rows(column: &Column, start: usize, end: usize) -> Result<(), String> {
    let n = len(&column.values);
    if start > end || end > n {
        return Err(format!(
            "rows {start}..{end} of column `{}`, which has {n}",
            column.name
        ));
    }
    Ok(())
}

/// The null bytes of rows `start..end` (all present where the mask is
/// short).
fn null_rows(column: &Column, start: usize, end: usize) -> Option<Vec<u8>> {
    column.nulls.as_ref().map(|n| {
        n.get(start..end)
            .map_or_else(|| vec![0; end - start], <[u8]>::to_vec)
    })
}

/// Rows `start..end` of `column`.
pub fn rows(column: &Column, start: usize, end: usize) -> Result<Column, String> {
    check_rows(column, start, end)?;
    let values = match &column.values {
        ColumnValues::F64(v) => ColumnValues::F64(v[start..end].to_vec()),
        ColumnValues::S64(v) => ColumnValues::S64(v[start..end].to_vec()),
        ColumnValues::Bool(v) => ColumnValues::Bool(v[start..end].to_vec()),
        ColumnValues::String(v) => ColumnValues::String(v.cell_rows(start, end)),
    };
    Ok(Column {
        name: column.name.clone(),
        values,
        nulls: null_rows(column, start, end),
    })
}

/// UTF-8 buffer, offsets and null bytes of a string slice.
pub type Text = (Vec<u8>, Vec<u32>, Option<Vec<u8>>);

/// Rows `start..end` of a string column as one UTF-8 buffer and offsets
/// (`end - start + 1` of them, Arrow's layout), with its null bytes.
pub fn text(column: &Column, start: usize, end: usize) -> Result<Text, String> {
    let ColumnValues::String(v) = &column.values else {
        return Err(format!("column `{}` is not a string column", column.name));
    };
    check_rows(column, start, end)?;
    let (utf8, offsets) = v.utf8_rows(start, end).map_err(|bytes| {
        format!(
            "rows {start}..{end} of column `{}` hold {bytes} bytes of text, over 4 GiB: read fewer rows at a time",
            column.name
        )
    })?;
    Ok((utf8, offsets, null_rows(column, start, end)))
}

/// Rows that are null.
pub fn null_count(column: &Column) -> usize {
    column
        .nulls
        .as_ref()
        .map_or(0, |n| n.iter().filter(|b| **b != 0).count())
}

/// One f64 column per category (`<name>_<category>`, 1 where the row holds
/// it), and the first row that holds none of them (a null counts), if any.
pub fn one_hot(
    column: &Column,
    name: &str,
    categories: &[String],
) -> Result<(Vec<Column>, Option<usize>), String> {
    let ColumnValues::String(v) = &column.values else {
        return Err(format!("column `{}` is not a string column", column.name));
    };
    let nulls = column.nulls.as_deref();
    // A category listed twice: its last column is the one set.
    let mut index = StrIndex::default();
    for (j, c) in categories.iter().enumerate() {
        index.insert(c, j);
    }
    let mut out: Vec<Vec<f64>> = vec![vec![0.0; v.len()]; categories.len()];
    let mut unknown = None;
    for (row, value) in v.iter().enumerate() {
        let hit = if null(nulls, row) {
            None
        } else {
            index.get(value)
        };
        match hit {
            Some(j) => out[j][row] = 1.0,
            None => {
                unknown.get_or_insert(row);
            }
        }
    }
    let columns = categories
        .iter()
        .zip(out)
        .map(|(category, values)| Column {
            name: format!("{name}_{category}"),
            values: ColumnValues::F64(values),
            nulls: None,
        })
        .collect();
    Ok((columns, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[String], nulls: Option<Vec<u8>>) -> Column {
        Column {
            name: "s".into(),
            values: ColumnValues::String(StringCells::from_cells(
                values.iter().map(String::as_str),
            )),
            nulls,
        }
    }

    /// Few and many distinct values (the index moves from a list to a
    /// map past 16), nulls skipped: counts in order of first occurrence,
    /// as a hash map of every value gives them.
    #[test]
    fn value_counts_and_one_hot_agree_with_a_hash_map() {
        for distinct in [1, 3, 16, 17, 40] {
            let values: Vec<String> = (0..500)
                .map(|i| format!("v{}", (i * 7 + i / 3) % distinct))
                .collect();
            let nulls: Vec<u8> = (0..500).map(|i| u8::from(i % 11 == 4)).collect();
            let column = strings(&values, Some(nulls.clone()));
            let mut expected: Vec<(String, u64)> = Vec::new();
            let mut at = std::collections::HashMap::new();
            for (row, v) in values.iter().enumerate() {
                if nulls[row] != 0 {
                    continue;
                }
                let i = *at.entry(v.clone()).or_insert_with(|| {
                    expected.push((v.clone(), 0));
                    expected.len() - 1
                });
                expected[i].1 += 1;
            }
            assert_eq!(value_counts(&column).unwrap(), expected, "{distinct}");

            // Categories: all but the last seen, one listed twice.
            let mut categories: Vec<String> = expected.iter().map(|(v, _)| v.clone()).collect();
            let left_out = categories.pop();
            if let Some(first) = categories.first().cloned() {
                categories.push(first);
            }
            let (columns, unknown) = one_hot(&column, "s", &categories).unwrap();
            let last_index: std::collections::HashMap<&str, usize> = categories
                .iter()
                .enumerate()
                .map(|(j, c)| (c.as_str(), j))
                .collect();
            let first_unknown =
                (0..500).find(|&row| nulls[row] != 0 || Some(&values[row]) == left_out.as_ref());
            assert_eq!(unknown, first_unknown, "{distinct}");
            for (j, c) in columns.iter().enumerate() {
                let ColumnValues::F64(v) = &c.values else {
                    panic!("one-hot columns are f64")
                };
                for row in 0..500 {
                    let hot = nulls[row] == 0 && last_index.get(values[row].as_str()) == Some(&j);
                    assert_eq!(v[row], f64::from(u8::from(hot)), "{distinct} {j} {row}");
                }
            }
        }
    }
}
