//! CSV input with a schema inferred from the data or declared in the
//! manifest, and CSV output written atomically.
//!
//! Inference looks at every non-null cell of a column: all integers → s64,
//! all numbers → f64, all `true`/`false` → bool, anything else → string.
//! A cell equal to one of the null tokens (by default empty, `NA`, `N/A`,
//! `NaN`, `nan`, `null`, `NULL`, `None`) is missing. With a declared type, a
//! cell that does not parse is an error naming its row and column.

use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{ColumnType, DataError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
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

/// An open CSV file with a validated header; records are read on demand.
struct Source {
    path: std::path::PathBuf,
    reader: ::csv::Reader<std::fs::File>,
    headers: Vec<String>,
    /// 1-based data row of the next record.
    next_row: u64,
}

impl Source {
    fn error(&self, row: Option<u64>, column: Option<&str>, message: String) -> DataError {
        DataError {
            file: self.path.clone(),
            row,
            column: column.map(String::from),
            message,
        }
    }

    fn open(path: &Path, options: &CsvOptions) -> Result<Source, DataError> {
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
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            headers,
            next_row: 1,
        })
    }

    /// Up to `max` more records.
    fn read(&mut self, max: usize) -> Result<Vec<::csv::StringRecord>, DataError> {
        let mut records = Vec::new();
        let mut record = ::csv::StringRecord::new();
        while records.len() < max {
            let row = self.next_row;
            let more = self
                .reader
                .read_record(&mut record)
                .map_err(|e| match e.kind() {
                    ::csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => self.error(
                        Some(row),
                        None,
                        format!("has {len} fields but the header has {expected_len}"),
                    ),
                    ::csv::ErrorKind::Utf8 { err, .. } => self.error(
                        Some(row),
                        self.headers.get(err.field()).map(String::as_str),
                        "is not valid UTF-8".into(),
                    ),
                    _ => self.error(Some(row), None, e.to_string()),
                })?;
            if !more {
                break;
            }
            records.push(record.clone());
            self.next_row += 1;
        }
        Ok(records)
    }

    fn cells<'a>(
        records: &'a [::csv::StringRecord],
        j: usize,
        options: &CsvOptions,
    ) -> Vec<Option<&'a str>> {
        records
            .iter()
            .map(|r| {
                let cell = r.get(j).unwrap_or("").trim();
                (!options.null_values.iter().any(|n| n == cell)).then_some(cell)
            })
            .collect()
    }

    /// Declared types, else inferred from `records`.
    fn types(&self, records: &[::csv::StringRecord], options: &CsvOptions) -> Vec<ColumnType> {
        self.headers
            .iter()
            .enumerate()
            .map(|(j, name)| {
                options
                    .schema
                    .get(name)
                    .copied()
                    .unwrap_or_else(|| infer(&Self::cells(records, j, options)))
            })
            .collect()
    }

    /// `records` (the first being data row `first_row`) as a frame.
    fn frame(
        &self,
        records: &[::csv::StringRecord],
        types: &[ColumnType],
        first_row: u64,
        options: &CsvOptions,
    ) -> Result<Frame, DataError> {
        let rows = u32::try_from(records.len()).map_err(|_| {
            self.error(
                None,
                None,
                "more than 2^32-1 rows at once; set a chunk size".into(),
            )
        })?;
        let mut columns = Vec::with_capacity(self.headers.len());
        for (j, (name, ty)) in self.headers.iter().zip(types).enumerate() {
            let cells = Self::cells(records, j, options);
            let nulls: Vec<u8> = cells.iter().map(|c| u8::from(c.is_none())).collect();
            let bad = |row: usize, cell: &str| {
                let hint = if options.schema.contains_key(name) {
                    ""
                } else {
                    "; declare the column's type in [data.schema] if the first rows misled the inference"
                };
                self.error(
                    Some(first_row + row as u64),
                    Some(name),
                    format!(
                        "cannot read \"{cell}\" as {}{hint}",
                        format!("{ty:?}").to_lowercase()
                    ),
                )
            };
            let values = match ty {
                ColumnType::F64 => {
                    ColumnValues::F64(parse_all(&cells, f64::NAN, |c| c.parse().ok(), bad)?)
                }
                ColumnType::S64 => {
                    ColumnValues::S64(parse_all(&cells, 0, |c| c.parse().ok(), bad)?)
                }
                ColumnType::Bool => ColumnValues::Bool(parse_all(&cells, false, parse_bool, bad)?),
                ColumnType::String => ColumnValues::String(
                    cells.iter().map(|c| c.unwrap_or("").to_string()).collect(),
                ),
            };
            columns.push(Column {
                name: name.clone(),
                values,
                nulls: nulls.contains(&1).then_some(nulls),
            });
        }
        Ok(Frame { rows, columns })
    }
}

/// Reads a whole CSV file with a header row into a frame, inferring types
/// from every row.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Frame, DataError> {
    let mut source = Source::open(path, options)?;
    let records = source.read(usize::MAX)?;
    let types = source.types(&records, options);
    source.frame(&records, &types, 1, options)
}

/// A CSV file read a chunk at a time, with types inferred from its first
/// rows (or declared). Memory holds one chunk, whatever the file's size.
pub struct CsvChunks {
    source: Source,
    types: Vec<ColumnType>,
    /// Rows read for inference, not yet returned.
    pending: std::collections::VecDeque<::csv::StringRecord>,
    returned: u64,
    options: CsvOptions,
}

impl CsvChunks {
    /// Opens `path`, inferring types from its first `sample_rows` rows.
    pub fn open(
        path: &Path,
        options: &CsvOptions,
        sample_rows: usize,
    ) -> Result<CsvChunks, DataError> {
        let mut source = Source::open(path, options)?;
        let sample = source.read(sample_rows.max(1))?;
        let types = source.types(&sample, options);
        Ok(CsvChunks {
            source,
            types,
            pending: sample.into(),
            returned: 0,
            options: options.clone(),
        })
    }

    /// The next (up to) `rows` rows; `None` at the end.
    pub fn next_chunk(&mut self, rows: usize) -> Result<Option<Frame>, DataError> {
        let take = rows.min(self.pending.len());
        let mut records: Vec<::csv::StringRecord> = self.pending.drain(..take).collect();
        if records.len() < rows {
            records.extend(self.source.read(rows - records.len())?);
        }
        if records.is_empty() {
            return Ok(None);
        }
        let frame = self
            .source
            .frame(&records, &self.types, self.returned + 1, &self.options)?;
        self.returned += records.len() as u64;
        Ok(Some(frame))
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.source.reader.position().byte()
    }
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
    kernel_host_types::fsutil::write_atomic_with(path, |file| {
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
