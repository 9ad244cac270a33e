//! CSV input with a schema inferred from the data or declared in the
//! manifest, and CSV output written atomically.
//!
//! Inference looks at every non-null cell of a column: all integers → s64,
//! all numbers → f64, all `true`/`false` → bool, anything else → string.
//! A cell equal to one of the null tokens (by default empty, `NA`, `N/A`,
//! `NaN`, `nan`, `null`, `NULL`, `None`) is missing, and so is any other
//! spelling of NaN in a number column. With a declared type, a cell that
//! does not parse is an error naming its row and column.
//!
//! Hostile or broken input is refused where it is found, never passed on to
//! fail far away: a record longer than [`MAX_RECORD_BYTES`] (no newline, or
//! a quote left open), an infinity in a number column, and a column that
//! inference would read as strings although nearly all of its cells are
//! numbers (a typo such as `46.1.`), unless `[data.schema]` declares it.

use super::input::{RecordBound, RecordStart};
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{ColumnType, DataError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The longest CSV record read: one line, or the lines inside a quoted
/// field. Real records are far shorter (the longest line of the datasets we
/// ship is under 100 bytes); a longer one is a file without line ends or a
/// quote left open, which would otherwise be held in memory whole.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Blocks of at least this many rows build their columns on several
/// threads.
const PARALLEL_ROWS: usize = 50_000;

/// Rows read before a block's buffers are sized for the rest of a read.
const SIZING_ROWS: usize = 4096;

/// The CSV parser's read buffer: how far it reads ahead of the record it
/// is parsing.
const READ_BUFFER: u64 = 64 << 10;

/// Inference refuses to read a column as strings when at least this share
/// (numerator, denominator) of its non-null cells are numbers (or
/// booleans): the others are then more likely typos than data.
const MOSTLY: (usize, usize) = (9, 10);

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

/// A number cell: `Ok(None)` for a NaN (a missing value, however spelled),
/// an error for an infinity (what `inf`, `-Infinity` or `1e999` read as).
fn parse_f64(cell: &str) -> Result<Option<f64>, CellError> {
    match cell.parse::<f64>() {
        Ok(x) if x.is_nan() => Ok(None),
        Ok(x) if x.is_infinite() => Err(CellError::Infinite),
        Ok(x) => Ok(Some(x)),
        Err(_) => Err(CellError::Unreadable),
    }
}

enum CellError {
    Unreadable,
    Infinite,
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

/// What the non-null cells of a column inferred as strings would also
/// read as, counted as they pass: a column of numbers (or booleans) but a
/// few is refused at its first odd cell, since those are more likely typos
/// than data. Counted over a whole file, chunked or not, so both reads
/// refuse the same column with the same message.
#[derive(Clone, Debug, Default)]
struct Tally {
    present: usize,
    numbers: usize,
    bools: usize,
    /// The first (row, cell) that is not a number, and not a boolean.
    odd_number: Option<(u64, String)>,
    odd_bool: Option<(u64, String)>,
}

impl Tally {
    fn add(&mut self, row: u64, cell: &str) {
        self.present += 1;
        if cell.parse::<f64>().is_ok() {
            self.numbers += 1;
        } else if self.odd_number.is_none() {
            self.odd_number = Some((row, cell.to_string()));
        }
        if parse_bool(cell).is_some() {
            self.bools += 1;
        } else if self.odd_bool.is_none() {
            self.odd_bool = Some((row, cell.to_string()));
        }
    }

    /// The refusal, when nearly every cell is a number (or a boolean).
    fn refusal(&self, source: &Source, column: &str) -> Result<(), DataError> {
        let mostly = |n: usize| n * MOSTLY.1 >= self.present * MOSTLY.0;
        let (looks, what, fits, odd) = if mostly(self.numbers) {
            ("numeric", "numbers", self.numbers, &self.odd_number)
        } else if mostly(self.bools) {
            ("boolean", "true or false", self.bools, &self.odd_bool)
        } else {
            return Ok(());
        };
        let Some((row, cell)) = odd else {
            return Ok(());
        };
        Err(source.error(
            Some(*row),
            Some(column),
            format!(
                "the column looks {looks} ({fits} of {} non-empty cells are {what}) but this cell holds `{cell}`; \
                 fix the cell, list the value in [data] `null-values` if it marks a missing value, \
                 or declare the column's type in [data.schema] (`{column} = \"string\"`) to read it as strings",
                self.present
            ),
        ))
    }
}

/// An open CSV file with a validated header; records are read on demand.
struct Source {
    path: std::path::PathBuf,
    reader: ::csv::Reader<RecordBound<std::fs::File>>,
    /// Told where each record ends, so the next one is bounded from there.
    record_start: RecordStart,
    headers: Vec<String>,
    /// 1-based data row of the next record.
    next_row: u64,
    /// Size of the file (`None` for a pipe): sizes the read's buffers.
    size: Option<u64>,
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

    /// Opens `path` (a regular file or a pipe), refusing records longer
    /// than `max_record` bytes.
    fn open(path: &Path, options: &CsvOptions, max_record: u64) -> Result<Source, DataError> {
        let error = |row: Option<u64>, column: Option<&str>, message: String| DataError {
            file: path.to_path_buf(),
            row,
            column: column.map(String::from),
            message,
        };
        let read_ahead = READ_BUFFER.min(max_record).max(1);
        let (input, record_start) =
            RecordBound::new(super::input::open(path, true)?, max_record, read_ahead);
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .buffer_capacity(usize::try_from(read_ahead).unwrap_or(usize::MAX))
            .from_reader(input);
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
        record_start.mark(reader.position().byte());
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            record_start,
            headers,
            next_row: 1,
            size: std::fs::metadata(path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
        })
    }

    /// Up to `max` more records, stored column by column.
    fn read(&mut self, max: usize) -> Result<Block, DataError> {
        let mut block = Block::new(self.headers.len());
        let start = self.reader.position().byte();
        let mut record = ::csv::StringRecord::new();
        while block.rows < max {
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
                    ::csv::ErrorKind::Io(io) => self.error(Some(row), None, io.to_string()),
                    _ => self.error(Some(row), None, e.to_string()),
                })?;
            if !more {
                break;
            }
            self.record_start.mark(self.reader.position().byte());
            block
                .push(&record)
                .map_err(|m| self.error(Some(row), None, m))?;
            self.next_row += 1;
            if block.rows == SIZING_ROWS {
                self.reserve(&mut block, max, start);
            }
        }
        Ok(block)
    }

    /// Sizes `block`'s buffers for the rest of the read from its first
    /// [`SIZING_ROWS`] rows and the bytes left in the file, so they do not
    /// grow by doubling (up to twice the text, and a copy at each step).
    fn reserve(&self, block: &mut Block, max: usize, start: u64) {
        let Some(size) = self.size else {
            return;
        };
        let read = self.reader.position().byte().saturating_sub(start).max(1);
        let left = size.saturating_sub(self.reader.position().byte());
        // Rows still to come, as the rows so far suggest, with 5 % slack.
        let rows = (left as f64 / read as f64 * block.rows as f64 * 1.05) as usize;
        let rows = rows.min(max.saturating_sub(block.rows));
        for (text, ends) in &mut block.columns {
            let per_row = text.len() as f64 / block.rows as f64;
            text.reserve((per_row * rows as f64) as usize);
            ends.reserve(rows);
        }
    }

    /// The type of column `name` (declared, else inferred from its
    /// `cells`). A column inferred as strings that is nearly all numbers
    /// (or booleans) is refused at its first odd cell (see [`Tally`]): a
    /// typo must not turn a number column into strings that some later
    /// step fails on.
    fn column_type(
        &self,
        name: &str,
        cells: &[Option<&str>],
        options: &CsvOptions,
    ) -> Result<ColumnType, DataError> {
        if let Some(ty) = options.schema.get(name) {
            return Ok(*ty);
        }
        let ty = infer(cells);
        if ty == ColumnType::String {
            let mut tally = Tally::default();
            for (i, cell) in cells.iter().enumerate() {
                if let Some(cell) = cell {
                    tally.add(i as u64 + 1, cell);
                }
            }
            tally.refusal(self, name)?;
        }
        Ok(ty)
    }

    /// Declared types, else inferred from `block` (data rows from 1).
    fn types(&self, block: &Block, options: &CsvOptions) -> Result<Vec<ColumnType>, DataError> {
        self.headers
            .iter()
            .enumerate()
            .map(|(j, name)| self.column_type(name, &block.cells(j, options), options))
            .collect()
    }

    /// `block` (its first row being data row `first_row`) as a frame of
    /// columns of `types`; `None` infers each column's type from the block
    /// (the cells of each column are gathered once for both). Each
    /// column's text is freed as soon as its column is built, so the read
    /// never holds the whole text and the whole frame at once.
    fn frame(
        &self,
        block: Block,
        types: Option<&[ColumnType]>,
        first_row: u64,
        options: &CsvOptions,
    ) -> Result<Frame, DataError> {
        let rows = u32::try_from(block.rows).map_err(|_| {
            self.error(
                None,
                None,
                "more than 2^32-1 rows at once; set a chunk size".into(),
            )
        })?;
        let build = |j: usize, (text, ends): (String, Vec<u32>)| -> Result<Column, DataError> {
            let name = &self.headers[j];
            let cells = cells_of(&text, &ends, options);
            let ty = match types {
                Some(types) => types[j],
                None if !options.schema.contains_key(name) => {
                    // Numbers are parsed once, while inferring.
                    if let Some(column) = self.inferred_number(name, &cells, first_row)? {
                        return Ok(column);
                    }
                    self.column_type(name, &cells, options)?
                }
                None => self.column_type(name, &cells, options)?,
            };
            if ty == ColumnType::String
                && cells.iter().all(Option::is_some)
                && ends.last().map_or(0, |e| *e as usize) == text.len()
            {
                // No null token: the block's buffer is the column's, as is.
                drop(cells);
                let ends = ends.iter().map(|e| *e as usize).collect();
                match kernel_host_types::Texts::from_parts(text, ends) {
                    Ok(texts) => {
                        return Ok(Column {
                            name: name.clone(),
                            values: ColumnValues::String(texts),
                            nulls: None,
                        });
                    }
                    Err(e) => return Err(self.error(None, Some(name), e)),
                }
            }
            self.column(name, ty, &cells, first_row, options)
        };
        let n = self.headers.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(n)
            .min(8);
        // Columns are independent: large blocks build them on several
        // threads; the first error in column order wins either way.
        let parallel = threads > 1 && block.rows >= PARALLEL_ROWS;
        let texts = block.columns.into_iter().enumerate();
        let built: Vec<Result<Column, DataError>> = if parallel {
            let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
            for (j, text) in texts {
                shares[j % threads].push((j, text));
            }
            let mut built: Vec<(usize, Result<Column, DataError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = shares
                    .into_iter()
                    .map(|share| {
                        let build = &build;
                        s.spawn(move || {
                            share
                                .into_iter()
                                .map(|(j, text)| (j, build(j, text)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            built.sort_by_key(|(j, _)| *j);
            built.into_iter().map(|(_, c)| c).collect()
        } else {
            texts.map(|(j, text)| build(j, text)).collect()
        };
        let columns = built.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Frame { rows, columns })
    }

    /// Column `name` as s64 when every present cell is an integer, else as
    /// f64 when every present cell is a number (what inference decides),
    /// parsed in the same pass; `None` when it is neither.
    fn inferred_number(
        &self,
        name: &str,
        cells: &[Option<&str>],
        first_row: u64,
    ) -> Result<Option<Column>, DataError> {
        let mut nulls: Vec<u8> = cells.iter().map(|c| u8::from(c.is_none())).collect();
        let integers: Option<Vec<i64>> = cells
            .iter()
            .map(|c| c.map_or(Some(0), |c| c.parse().ok()))
            .collect();
        let values = match integers {
            Some(v) => ColumnValues::S64(v),
            None => {
                let mut values = Vec::with_capacity(cells.len());
                let mut infinite = None;
                for (row, cell) in cells.iter().enumerate() {
                    let Some(c) = cell else {
                        values.push(f64::NAN);
                        continue;
                    };
                    match c.parse::<f64>() {
                        Ok(x) if x.is_nan() => {
                            nulls[row] = 1;
                            values.push(f64::NAN);
                        }
                        Ok(x) => {
                            if x.is_infinite() {
                                infinite.get_or_insert((row, *c));
                            }
                            values.push(x);
                        }
                        Err(_) => return Ok(None),
                    }
                }
                if let Some((row, c)) = infinite {
                    return Err(self.infinite(name, first_row + row as u64, c));
                }
                ColumnValues::F64(values)
            }
        };
        Ok(Some(Column {
            name: name.to_string(),
            values,
            nulls: nulls.contains(&1).then_some(nulls),
        }))
    }

    fn infinite(&self, name: &str, row: u64, cell: &str) -> DataError {
        self.error(
            Some(row),
            Some(name),
            format!(
                "`{cell}` is infinite, and infinity is not a number kernels accept; \
                 replace it, or leave the cell empty for a missing value"
            ),
        )
    }

    /// Column `name`'s `cells` read as `ty`.
    fn column(
        &self,
        name: &str,
        ty: ColumnType,
        cells: &[Option<&str>],
        first_row: u64,
        options: &CsvOptions,
    ) -> Result<Column, DataError> {
        let mut nulls: Vec<u8> = cells.iter().map(|c| u8::from(c.is_none())).collect();
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
                let mut values = Vec::with_capacity(cells.len());
                for (row, cell) in cells.iter().enumerate() {
                    let Some(c) = cell else {
                        values.push(f64::NAN);
                        continue;
                    };
                    match parse_f64(c) {
                        Ok(Some(x)) => values.push(x),
                        Ok(None) => {
                            nulls[row] = 1;
                            values.push(f64::NAN);
                        }
                        Err(CellError::Unreadable) => return Err(bad(row, c)),
                        Err(CellError::Infinite) => {
                            return Err(self.infinite(name, first_row + row as u64, c));
                        }
                    }
                }
                ColumnValues::F64(values)
            }
            ColumnType::S64 => ColumnValues::S64(parse_all(cells, 0, |c| c.parse().ok(), bad)?),
            ColumnType::Bool => ColumnValues::Bool(parse_all(cells, false, parse_bool, bad)?),
            ColumnType::String => {
                let bytes = cells.iter().map(|c| c.map_or(0, str::len)).sum();
                let mut texts = kernel_host_types::Texts::with_capacity(cells.len(), bytes);
                texts.extend(cells.iter().map(|c| c.unwrap_or("")));
                ColumnValues::String(texts)
            }
        };
        Ok(Column {
            name: name.to_string(),
            values,
            nulls: nulls.contains(&1).then_some(nulls),
        })
    }
}

/// Records read from a CSV file, stored column by column: each column's
/// cells (trimmed) back to back in one string, with their end offsets. One
/// allocation per column, not one per record.
struct Block {
    rows: usize,
    columns: Vec<(String, Vec<u32>)>,
}

impl Block {
    fn new(columns: usize) -> Block {
        Block {
            rows: 0,
            columns: vec![(String::new(), Vec::new()); columns],
        }
    }

    /// Appends a record (the parser checked it has a field per column).
    fn push(&mut self, record: &::csv::StringRecord) -> Result<(), String> {
        for (j, (text, ends)) in self.columns.iter_mut().enumerate() {
            text.push_str(record.get(j).unwrap_or("").trim());
            ends.push(u32::try_from(text.len()).map_err(|_| {
                "column text over 4 GiB in one read; set a chunk size (`--chunk-rows`)".to_string()
            })?);
        }
        self.rows += 1;
        Ok(())
    }

    /// Column `j`'s cells, `None` where a cell is a null token.
    fn cells(&self, j: usize, options: &CsvOptions) -> Vec<Option<&str>> {
        let (text, ends) = &self.columns[j];
        cells_of(text, ends, options)
    }

    /// The first `n` rows, taken out.
    fn take_front(&mut self, n: usize) -> Block {
        let n = n.min(self.rows);
        let mut front = Block::new(self.columns.len());
        for ((text, ends), (front_text, front_ends)) in
            self.columns.iter_mut().zip(&mut front.columns)
        {
            let cut = if n == 0 { 0 } else { ends[n - 1] };
            *front_text = text[..cut as usize].to_string();
            *front_ends = ends[..n].to_vec();
            text.replace_range(..cut as usize, "");
            ends.drain(..n);
            ends.iter_mut().for_each(|e| *e -= cut);
        }
        front.rows = n;
        self.rows -= n;
        front
    }

    /// Appends `other`'s rows.
    fn append(&mut self, other: Block) -> Result<(), String> {
        for ((text, ends), (other_text, other_ends)) in self.columns.iter_mut().zip(other.columns) {
            let base = u32::try_from(text.len()).ok();
            text.push_str(&other_text);
            for e in other_ends {
                ends.push(base.and_then(|b| b.checked_add(e)).ok_or_else(|| {
                    "column text over 4 GiB in one read; set a chunk size (`--chunk-rows`)"
                        .to_string()
                })?);
            }
        }
        self.rows += other.rows;
        Ok(())
    }
}

/// A column's cells from its text and cell ends, `None` where a cell is a
/// null token.
fn cells_of<'a>(text: &'a str, ends: &[u32], options: &CsvOptions) -> Vec<Option<&'a str>> {
    let mut start = 0;
    ends.iter()
        .map(|end| {
            let cell = &text[start..*end as usize];
            start = *end as usize;
            (!options.null_values.iter().any(|n| n == cell)).then_some(cell)
        })
        .collect()
}

/// Reads a whole CSV file with a header row into a frame, inferring types
/// from every row.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Frame, DataError> {
    read_csv_bounded(path, options, MAX_RECORD_BYTES)
}

pub(crate) fn read_csv_bounded(
    path: &Path,
    options: &CsvOptions,
    max_record: u64,
) -> Result<Frame, DataError> {
    let mut source = Source::open(path, options, max_record)?;
    let block = source.read(usize::MAX)?;
    source.frame(block, None, 1, options)
}

/// A CSV file read a chunk at a time, with types inferred from its first
/// rows (or declared). Memory holds one chunk, whatever the file's size.
pub struct CsvChunks {
    source: Source,
    types: Vec<ColumnType>,
    /// For each column inferred as strings, its cells so far: the sample
    /// may hide that the whole column is numbers but a few, which only the
    /// end of the file tells.
    tallies: Vec<Option<Tally>>,
    /// Rows read for inference, not yet returned.
    pending: Block,
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
        Self::open_bounded(path, options, sample_rows, MAX_RECORD_BYTES)
    }

    pub(crate) fn open_bounded(
        path: &Path,
        options: &CsvOptions,
        sample_rows: usize,
        max_record: u64,
    ) -> Result<CsvChunks, DataError> {
        let mut source = Source::open(path, options, max_record)?;
        let sample = source.read(sample_rows.max(1))?;
        let types = source.types(&sample, options)?;
        let tallies = source
            .headers
            .iter()
            .zip(&types)
            .map(|(name, ty)| {
                (*ty == ColumnType::String && !options.schema.contains_key(name))
                    .then(Tally::default)
            })
            .collect();
        Ok(CsvChunks {
            source,
            types,
            tallies,
            pending: sample,
            returned: 0,
            options: options.clone(),
        })
    }

    /// The next (up to) `rows` rows; `None` at the end.
    pub fn next_chunk(&mut self, rows: usize) -> Result<Option<Frame>, DataError> {
        let mut block = self.pending.take_front(rows);
        if block.rows < rows {
            let more = self.source.read(rows - block.rows)?;
            block
                .append(more)
                .map_err(|m| self.source.error(None, None, m))?;
        }
        if block.rows == 0 {
            // Once: the file has ended, every tally is whole.
            for (name, tally) in self.source.headers.iter().zip(&mut self.tallies) {
                if let Some(tally) = tally.take() {
                    tally.refusal(&self.source, name)?;
                }
            }
            return Ok(None);
        }
        for (j, tally) in self.tallies.iter_mut().enumerate() {
            if let Some(tally) = tally {
                let cells = block.cells(j, &self.options);
                for (i, cell) in cells.iter().enumerate() {
                    if let Some(cell) = cell {
                        tally.add(self.returned + 1 + i as u64, cell);
                    }
                }
            }
        }
        let frame =
            self.source
                .frame(block, Some(&self.types), self.returned + 1, &self.options)?;
        self.returned += u64::from(frame.rows);
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

/// Writes the rows of `frame` as CSV records (no header); nulls are empty
/// cells. No allocation per cell: strings are borrowed, numbers written
/// into one buffer.
pub(crate) fn write_rows<W: std::io::Write>(
    writer: &mut ::csv::Writer<W>,
    frame: &Frame,
) -> ::csv::Result<()> {
    let mut scratch = String::new();
    for row in 0..frame.rows as usize {
        for column in &frame.columns {
            let cell = kernel_host_types::frame::cell_str(column, row, &mut scratch);
            writer.write_field(cell.unwrap_or_default())?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    Ok(())
}

/// Writes `frame` as CSV with a header row; nulls are empty cells. The file
/// appears whole or not at all.
pub fn write_csv(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    kernel_host_types::fsutil::write_atomic_with(path, |file| {
        let mut writer = ::csv::Writer::from_writer(std::io::BufWriter::new(file));
        writer.write_record(frame.columns.iter().map(|c| c.name.as_str()))?;
        write_rows(&mut writer, frame)?;
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

    /// Every kind of cell is written as `cell_text` gives it: numbers in
    /// their shortest form, strings quoted where CSV needs it, nulls and
    /// NaN as empty cells.
    #[test]
    fn every_kind_of_cell_is_written_as_its_text() {
        let column = |name: &str, values, nulls| Column {
            name: name.into(),
            values,
            nulls,
        };
        let frame = Frame {
            rows: 4,
            columns: vec![
                column(
                    "x",
                    ColumnValues::F64(vec![0.25, f64::NAN, 1e300, 3.0]),
                    Some(vec![0, 0, 0, 1]),
                ),
                column("n", ColumnValues::S64(vec![-7, 0, 9_000_000_000, 1]), None),
                column(
                    "b",
                    ColumnValues::Bool(vec![true, false, true, false]),
                    Some(vec![0, 1, 0, 0]),
                ),
                column(
                    "s",
                    ColumnValues::String(kernel_host_types::Texts::from([
                        "a,b",
                        "say \"hi\"",
                        "",
                        "日本",
                    ])),
                    Some(vec![0, 0, 1, 0]),
                ),
            ],
        };
        let path = write("");
        write_csv(&path.0, &frame).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path.0).unwrap(),
            "x,n,b,s\n0.25,-7,true,\"a,b\"\n,0,,\"say \"\"hi\"\"\"\n1e300,9000000000,true,\n,1,false,日本\n"
        );
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
