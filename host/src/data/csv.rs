//! CSV input with a schema inferred from the data or declared in the
//! manifest, and CSV output written atomically.
//!
//! Inference looks at every non-null cell of a column: all integers → s64,
//! all numbers → f64, all `true`/`false` → bool, anything else → string.
//! A cell equal to one of the null tokens (by default empty, `NA`, `N/A`,
//! `NaN`, `nan`, `null`, `NULL`, `None`) is missing. With a declared type, a
//! cell that does not parse is an error naming its row and column.

use crate::bindings::{Column, ColumnValues, Frame};
use crate::error::DataError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A column type, as declared in a manifest's `[data.schema]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    F64,
    S64,
    Bool,
    String,
}

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    pub null_values: Vec<String>,
    /// Declared types by column name; other columns are inferred.
    pub schema: BTreeMap<String, ColumnType>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            null_values: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
                .map(String::from)
                .to_vec(),
            schema: BTreeMap::new(),
        }
    }
}

fn parse_bool(cell: &str) -> Option<bool> {
    match cell {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn infer(cells: &[Option<&str>]) -> ColumnType {
    let present = || cells.iter().flatten();
    if present().all(|c| c.parse::<i64>().is_ok()) {
        ColumnType::S64
    } else if present().all(|c| c.parse::<f64>().is_ok()) {
        ColumnType::F64
    } else if present().all(|c| parse_bool(c).is_some()) {
        ColumnType::Bool
    } else {
        ColumnType::String
    }
}

/// Reads a whole CSV file with a header row into a frame.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Frame, DataError> {
    let error = |row: Option<u64>, column: Option<&str>, message: String| DataError {
        file: path.to_path_buf(),
        row,
        column: column.map(String::from),
        message,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| error(None, None, format!("cannot open: {}", io_message(&e))))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| error(Some(0), None, format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() {
        return Err(error(Some(0), None, "the file has no header row".into()));
    }
    for (i, name) in headers.iter().enumerate() {
        if name.is_empty() {
            return Err(error(
                Some(0),
                None,
                format!("header field {} is empty; every column needs a name", i + 1),
            ));
        }
        if headers[..i].contains(name) {
            return Err(error(
                Some(0),
                Some(name),
                "column name appears twice in the header".into(),
            ));
        }
    }
    for declared in options.schema.keys() {
        if !headers.contains(declared) {
            return Err(error(
                None,
                Some(declared),
                format!(
                    "the schema declares this column but the file has no such column (it has: {})",
                    headers.join(", ")
                ),
            ));
        }
    }
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 1;
        let record = record.map_err(|e| match e.kind() {
            ::csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => error(
                Some(row),
                None,
                format!("has {len} fields but the header has {expected_len}"),
            ),
            ::csv::ErrorKind::Utf8 { err, .. } => error(
                Some(row),
                headers.get(err.field()).map(String::as_str),
                "is not valid UTF-8".into(),
            ),
            _ => error(Some(row), None, e.to_string()),
        })?;
        records.push(record);
    }
    let rows = u32::try_from(records.len()).map_err(|_| {
        error(
            None,
            None,
            "more than 2^32-1 rows; use streaming mode".into(),
        )
    })?;
    let mut columns = Vec::with_capacity(headers.len());
    for (j, name) in headers.iter().enumerate() {
        let cells: Vec<Option<&str>> = records
            .iter()
            .map(|r| {
                let cell = r.get(j).unwrap_or("").trim();
                (!options.null_values.iter().any(|n| n == cell)).then_some(cell)
            })
            .collect();
        let ty = options
            .schema
            .get(name)
            .copied()
            .unwrap_or_else(|| infer(&cells));
        let nulls: Vec<u8> = cells.iter().map(|c| u8::from(c.is_none())).collect();
        let bad = |row: usize, cell: &str| {
            error(
                Some(row as u64 + 1),
                Some(name),
                format!("cannot read \"{cell}\" as {ty:?}").to_lowercase(),
            )
        };
        let values = match ty {
            ColumnType::F64 => {
                ColumnValues::F64(parse_all(&cells, f64::NAN, |c| c.parse().ok(), bad)?)
            }
            ColumnType::S64 => ColumnValues::S64(parse_all(&cells, 0, |c| c.parse().ok(), bad)?),
            ColumnType::Bool => ColumnValues::Bool(parse_all(&cells, false, parse_bool, bad)?),
            ColumnType::String => {
                ColumnValues::String(cells.iter().map(|c| c.unwrap_or("").to_string()).collect())
            }
        };
        columns.push(Column {
            name: name.clone(),
            values,
            nulls: nulls.contains(&1).then_some(nulls),
        });
    }
    Ok(Frame { rows, columns })
}

fn parse_all<T: Copy>(
    cells: &[Option<&str>],
    placeholder: T,
    parse: impl Fn(&str) -> Option<T>,
    bad: impl Fn(usize, &str) -> DataError,
) -> Result<Vec<T>, DataError> {
    cells
        .iter()
        .enumerate()
        .map(|(row, cell)| match cell {
            None => Ok(placeholder),
            Some(c) => parse(c).ok_or_else(|| bad(row, c)),
        })
        .collect()
}

fn io_message(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

/// Writes `frame` as CSV with a header row; nulls are empty cells. The file
/// appears whole or not at all.
pub fn write_csv(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    crate::fsutil::write_atomic_with(path, |file| {
        let mut writer = ::csv::Writer::from_writer(std::io::BufWriter::new(file));
        writer.write_record(frame.columns.iter().map(|c| c.name.as_str()))?;
        for row in 0..frame.rows as usize {
            writer.write_record(
                frame
                    .columns
                    .iter()
                    .map(|c| super::cell_text(c, row).unwrap_or_default()),
            )?;
        }
        writer.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(content)
    }

    /// A tiny temp-file helper so unit tests need no extra crate.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(content: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "kh-csv-{}-{}.csv",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&p, content).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn infers_types_and_nulls() {
        let f = write("a,b,c,d\n1,1.5,x,true\nNA,2,,false\n3,,y,\n");
        let frame = read_csv(&f.0, &CsvOptions::default()).unwrap();
        assert_eq!(frame.rows, 3);
        assert_eq!(frame.columns[0].values, ColumnValues::S64(vec![1, 0, 3]));
        assert_eq!(frame.columns[0].nulls, Some(vec![0, 1, 0]));
        assert!(matches!(frame.columns[1].values, ColumnValues::F64(_)));
        assert!(matches!(frame.columns[2].values, ColumnValues::String(_)));
        assert_eq!(
            frame.columns[3].values,
            ColumnValues::Bool(vec![true, false, false])
        );
    }

    #[test]
    fn ragged_row_and_bad_declared_cell_are_located() {
        let f = write("a,b\n1,2\n3\n");
        let e = read_csv(&f.0, &CsvOptions::default()).unwrap_err();
        assert_eq!(e.row, Some(2));
        let f = write("a,b\n1,2\n3,oops\n");
        let mut options = CsvOptions::default();
        options.schema.insert("b".into(), ColumnType::F64);
        let e = read_csv(&f.0, &options).unwrap_err();
        assert_eq!((e.row, e.column.as_deref()), (Some(2), Some("b")));
        assert!(
            e.to_string()
                .contains("row 2, column `b`: cannot read \"oops\" as f64"),
            "{e}"
        );
    }
}
