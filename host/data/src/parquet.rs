//! Parquet input and output, through the `parquet` crate's Arrow reader and
//! writer, built with two codecs only: snappy (what Spark and pandas write
//! by default) and zstd (what we write). Columns map as in Arrow IPC (see
//! [`super::arrow`]), plus dictionary-encoded strings (a pandas
//! `category`), which become plain strings.
//!
//! Parquet keeps its footer at the end of the file, so it is read from a
//! regular file only, never a pipe. A file is read one batch at a time
//! (pages are decoded as the batch needs them), so a chunked run holds one
//! chunk whatever the file's size. Untrusted files: the footer's length is
//! checked against the file's size before it is read; the crate reads
//! through [`Source`], which refuses any read past the end of the file (a
//! forged length in a page header otherwise made the crate's Thrift skip
//! loop for minutes reading nothing at the end; found by the fuzzer) and
//! any range a footer claims beyond it before allocating for it; every
//! decoding step runs contained (a panic in the decoder becomes an error
//! naming the file); a schema frames cannot hold is refused by column
//! before any data is read; and so is a dictionary page that claims more
//! values than its bytes hold (the crate would allocate for the claim).
//! The page headers are read once at open for that: 2.5 % of reading a
//! 112 MB file (1.15 s against 1.12 s to profile it).

use super::arrow::{batch_to_frame, check_schema};
use arrow_array::RecordBatch;
use kernel_host_types::DataError;
use kernel_host_types::bindings::Frame;
use kernel_host_types::fsutil::FileKey;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};
use std::io::Read;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A Parquet file as the crate reads it: positional reads (readers do not
/// share a cursor) that stop at the file's length, where reading on is an
/// error rather than an endless run of empty reads.
#[derive(Clone)]
pub struct Source {
    file: Arc<std::fs::File>,
    len: u64,
}

impl Length for Source {
    fn len(&self) -> u64 {
        self.len
    }
}

/// Reads `[pos, end)` of a file; a read at `end` is an error.
pub struct Bounded {
    file: Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.end {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a read past the end of the file",
            ));
        }
        let want = buf
            .len()
            .min((self.end - self.pos).min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            // The file shrank under us.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ended early (was it truncated while being read?)",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl ChunkReader for Source {
    type T = std::io::BufReader<Bounded>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        if start > self.len {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "a read at byte {start} of a {}-byte file",
                self.len
            )));
        }
        Ok(std::io::BufReader::new(Bounded {
            file: self.file.clone(),
            pos: start,
            end: self.len,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let end = start.checked_add(length as u64).filter(|e| *e <= self.len);
        if end.is_none() {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{length} bytes at byte {start} of a {}-byte file",
                self.len
            )));
        }
        let mut buffer = vec![0u8; length];
        self.file.read_exact_at(&mut buffer, start)?;
        Ok(buffer.into())
    }
}

/// Rows per row group in the files we write: readers can stream them a
/// row group at a time, and the writer holds one encoded row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per batch when a whole file is read.
const WHOLE_BATCH_ROWS: usize = 64 * 1024;

/// Whether `path` names a Parquet file by its extension.
pub fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("parquet" | "pq")
    )
}

fn error(file: &Path, row: Option<u64>, message: String) -> DataError {
    DataError {
        file: file.to_path_buf(),
        row,
        column: None,
        message,
    }
}

/// Record batches of a Parquet file, decoded on demand.
pub struct ParquetBatches {
    path: PathBuf,
    /// Before the first batch: the batch size is the first caller's.
    builder: Option<ParquetRecordBatchReaderBuilder<Source>>,
    reader: Option<ParquetRecordBatchReader>,
    /// Rows the footer says the file holds, and rows returned so far.
    rows: u64,
    read: u64,
    /// A decoding step failed: nothing more is read.
    broken: bool,
}

impl ParquetBatches {
    /// Opens `path`, reads and checks its footer and schema.
    pub fn open(path: &Path) -> Result<ParquetBatches, DataError> {
        let file = super::input::open(path, false)?;
        let meta = file
            .metadata()
            .map_err(|e| error(path, None, format!("cannot read: {e}")))?;
        let size = meta.len();
        // What the open file is: a file this process checked unchanged is
        // not checked again (a chunked fit opens its input once a pass).
        let key = FileKey::of_metadata(path, &meta);
        let unreadable =
            |why: String| error(path, None, format!("not a readable Parquet file: {why}"));
        // The footer is 4 bytes of metadata length and the magic `PAR1`;
        // the crate checks the length against the file too, but a hostile
        // length should not even reach it.
        check_footer(&file, size).map_err(unreadable)?;
        let source = Source {
            file: Arc::new(file),
            len: size,
        };
        let builder =
            super::ipc::contained(|| ParquetRecordBatchReaderBuilder::try_new(source.clone()))
                .map_err(|e| unreadable(e.to_string()))?
                .map_err(|e| unreadable(e.to_string()))?;
        check_schema(builder.schema(), path)?;
        if !key.as_ref().is_some_and(|key| CHECKED.contains(key)) {
            super::ipc::contained(|| check_dictionaries(&source, builder.metadata()))
                .map_err(|e| unreadable(e.to_string()))?
                .map_err(unreadable)?;
            if let Some(key) = key {
                CHECKED.insert(key);
            }
        }
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows())
            .map_err(|_| unreadable("the footer claims a negative row count".into()))?;
        Ok(ParquetBatches {
            path: path.to_path_buf(),
            builder: Some(builder),
            reader: None,
            rows,
            read: 0,
            broken: false,
        })
    }

    /// The rows the file's footer claims.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows returned so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The next batch of at most `max_rows` rows (the first call fixes the
    /// batch size for the rest of the file); `None` at the end.
    pub fn next_batch(&mut self, max_rows: usize) -> Option<Result<RecordBatch, DataError>> {
        if self.broken {
            return None;
        }
        let at = self.read;
        let fail = |this: &mut Self, why: String| {
            this.broken = true;
            Some(Err(error(
                &this.path,
                Some(at + 1),
                format!("unreadable Parquet data: {why}"),
            )))
        };
        if let Some(builder) = self.builder.take() {
            let built = super::ipc::contained(|| builder.with_batch_size(max_rows.max(1)).build());
            match built {
                Ok(Ok(reader)) => self.reader = Some(reader),
                Ok(Err(e)) => return fail(self, e.to_string()),
                Err(e) => return fail(self, e.to_string()),
            }
        }
        let reader = self.reader.as_mut()?;
        match super::ipc::contained(|| reader.next()) {
            Ok(None) => None,
            Ok(Some(Ok(batch))) => {
                self.read += batch.num_rows() as u64;
                Some(Ok(batch))
            }
            Ok(Some(Err(e))) => fail(self, e.to_string()),
            Err(e) => fail(self, e.to_string()),
        }
    }

    /// The next batch as a frame.
    pub fn next_frame(&mut self, max_rows: usize) -> Option<Result<Frame, DataError>> {
        let first = self.read;
        Some(
            self.next_batch(max_rows)?
                .and_then(|batch| batch_to_frame(&batch, &self.path, first)),
        )
    }
}

/// Files whose dictionary pages passed [`check_dictionaries`] in this
/// process, as they were then (see [`FileKey`]: any rewrite is a new key).
static CHECKED: Checked = Checked(std::sync::Mutex::new(Vec::new()));

struct Checked(std::sync::Mutex<Vec<FileKey>>);

impl Checked {
    /// Files remembered at most; the oldest is forgotten first.
    const FILES: usize = 64;

    fn contains(&self, key: &FileKey) -> bool {
        self.0.lock().is_ok_and(|keys| keys.contains(key))
    }

    fn insert(&self, key: FileKey) {
        if let Ok(mut keys) = self.0.lock() {
            keys.retain(|k| k.path != key.path);
            if keys.len() >= Self::FILES {
                keys.remove(0);
            }
            keys.push(key);
        }
    }
}

/// Refuses a dictionary page that claims more values than its bytes can
/// hold. The crate sizes a column's dictionary by the page header's value
/// count before decoding it (`DictDecoder::set_dict` zero-fills that many
/// values): a forged count in a 14 KB file made it fill gigabytes (found
/// by the fuzzer). Every page header of every column chunk is read (data
/// pages are skipped without reading their bodies; a dictionary page is
/// read and decompressed, as the reader would), and a dictionary of `n`
/// values must have at least `n` values' worth of bytes in its plain
/// encoding: a bit for a boolean, the width of a number, 4 length bytes
/// for a byte array, the type length for a fixed-length one.
fn check_dictionaries(
    source: &Source,
    metadata: &parquet::file::metadata::ParquetMetaData,
) -> Result<(), String> {
    use parquet::basic::Type;
    use parquet::column::page::{Page, PageReader};
    use parquet::file::serialized_reader::SerializedPageReader;
    let source = Arc::new(source.clone());
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        for column in group.columns() {
            let where_ = || format!("row group {g}, column `{}`", column.column_path().string());
            let mut pages = SerializedPageReader::new(source.clone(), column, rows, None)
                .map_err(|e| format!("{}: {e}", where_()))?;
            while let Some(page) = pages
                .peek_next_page()
                .map_err(|e| format!("{}: {e}", where_()))?
            {
                if !page.is_dict {
                    pages
                        .skip_next_page()
                        .map_err(|e| format!("{}: {e}", where_()))?;
                    continue;
                }
                let Some(Page::DictionaryPage {
                    buf, num_values, ..
                }) = pages
                    .get_next_page()
                    .map_err(|e| format!("{}: {e}", where_()))?
                else {
                    continue;
                };
                let bits_each: u64 = match column.column_type() {
                    Type::BOOLEAN => 1,
                    Type::INT32 | Type::FLOAT | Type::BYTE_ARRAY => 32,
                    Type::INT64 | Type::DOUBLE => 64,
                    Type::INT96 => 96,
                    Type::FIXED_LEN_BYTE_ARRAY => {
                        8 * u64::try_from(column.column_descr().type_length())
                            .unwrap_or(0)
                            .max(1)
                    }
                };
                let room = buf.len() as u64 * 8 / bits_each;
                if u64::from(num_values) > room {
                    return Err(format!(
                        "{}: a dictionary page claims {num_values} values in {} bytes (room for at most {room})",
                        where_(),
                        buf.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks the last 8 bytes: a metadata length that fits in the file, and
/// the magic.
fn check_footer(file: &std::fs::File, size: u64) -> Result<(), String> {
    if size < 12 {
        return Err(format!(
            "{size} bytes is too short (a Parquet file starts and ends with `PAR1`)"
        ));
    }
    let mut footer = [0u8; 8];
    file.read_exact_at(&mut footer, size - 8)
        .map_err(|e| e.to_string())?;
    if &footer[4..] != b"PAR1" {
        return Err("it does not end with the magic `PAR1`".into());
    }
    let len = u64::from(u32::from_le_bytes([
        footer[0], footer[1], footer[2], footer[3],
    ]));
    if len + 12 > size {
        return Err(format!(
            "its footer claims {len} bytes of metadata in a file of {size} bytes"
        ));
    }
    Ok(())
}

/// Reads a whole Parquet file into one frame.
pub fn read_parquet(path: &Path) -> Result<Frame, DataError> {
    let mut batches = ParquetBatches::open(path)?;
    let mut parts = Vec::new();
    while let Some(frame) = batches.next_frame(WHOLE_BATCH_ROWS) {
        parts.push(frame?);
    }
    let frame = Frame::concat_rows(parts)
        .map_err(|m| error(path, None, format!("record batches disagree: {m}")))?;
    if u64::from(frame.rows) != batches.rows() {
        return Err(error(
            path,
            None,
            format!(
                "its footer claims {} rows but its row groups hold {}",
                batches.rows(),
                frame.rows
            ),
        ));
    }
    Ok(frame)
}

/// How we write Parquet: zstd (level 1), row groups of [`ROW_GROUP_ROWS`].
pub(crate) fn writer_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Writes `frame` as Parquet, atomically.
pub fn write_parquet(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    super::write_table(path, frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_host_types::bindings::{Column, ColumnValues};

    fn sample(rows: usize) -> Frame {
        Frame {
            rows: rows as u32,
            columns: vec![
                Column {
                    name: "f".into(),
                    // Missing values as every reader makes them (NaN).
                    values: ColumnValues::F64(
                        (0..rows)
                            .map(|i| {
                                if i % 7 == 3 {
                                    f64::NAN
                                } else {
                                    i as f64 * 0.5 - 3.0
                                }
                            })
                            .collect(),
                    ),
                    nulls: Some((0..rows).map(|i| u8::from(i % 7 == 3)).collect()),
                },
                Column {
                    name: "i".into(),
                    values: ColumnValues::S64((0..rows as i64).map(|i| i * i - 40).collect()),
                    nulls: None,
                },
                Column {
                    name: "b".into(),
                    values: ColumnValues::Bool((0..rows).map(|i| i % 3 == 0).collect()),
                    nulls: None,
                },
                Column {
                    name: "s".into(),
                    values: ColumnValues::String(
                        (0..rows)
                            .map(|i| {
                                if i % 5 == 1 {
                                    String::new()
                                } else {
                                    ["Adelie", "Gentoo", "Chinstrap"][i % 3].to_string()
                                }
                            })
                            .collect(),
                    ),
                    nulls: Some((0..rows).map(|i| u8::from(i % 5 == 1)).collect()),
                },
            ],
        }
    }

    #[test]
    fn frames_round_trip_through_parquet_whole_and_in_batches() {
        let dir = std::env::temp_dir().join(format!("kh-parquet-{}", std::process::id()));
        let path = dir.join("t.parquet");
        let frame = sample(300_000);
        write_parquet(&path, &frame).unwrap();
        let same = |a: &Frame, b: &Frame| {
            a.rows == b.rows
                && a.columns.len() == b.columns.len()
                && a.columns.iter().zip(&b.columns).all(|(x, y)| {
                    x.name == y.name
                        && x.nulls == y.nulls
                        && match (&x.values, &y.values) {
                            (ColumnValues::F64(p), ColumnValues::F64(q)) => p
                                .iter()
                                .map(|v| v.to_bits())
                                .eq(q.iter().map(|v| v.to_bits())),
                            (p, q) => p == q,
                        }
                })
        };
        assert!(
            same(&read_parquet(&path).unwrap(), &frame),
            "whole read differs"
        );
        // Batches of any size, across row groups, concatenate to the same.
        let mut batches = ParquetBatches::open(&path).unwrap();
        assert_eq!(batches.rows(), 300_000);
        let mut parts = Vec::new();
        while let Some(part) = batches.next_frame(100_003) {
            let part = part.unwrap();
            assert!(part.rows <= 100_003);
            parts.push(part);
        }
        assert_eq!(parts.len(), 3);
        assert!(
            same(&Frame::concat_rows(parts).unwrap(), &frame),
            "batched read differs"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_is_not_parquet_is_refused_for_what_it_is() {
        let dir = std::env::temp_dir().join(format!("kh-parquet-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.parquet");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let e = ParquetBatches::open(&path).err().unwrap();
        assert!(e.message.contains("too short"), "{e}");
        std::fs::write(&path, b"PAR1 not really a parquet file at all").unwrap();
        let e = ParquetBatches::open(&path).err().unwrap();
        assert!(e.message.contains("does not end with the magic"), "{e}");
        let mut claims = b"PAR1xxxxxxxx".to_vec();
        claims.extend_from_slice(&1000u32.to_le_bytes());
        claims.extend_from_slice(b"PAR1");
        std::fs::write(&path, &claims).unwrap();
        let e = ParquetBatches::open(&path).err().unwrap();
        assert!(
            e.message
                .contains("claims 1000 bytes of metadata in a file of 20 bytes"),
            "{e}"
        );
        // Truncating a real file anywhere: an error, never a panic.
        let good = dir.join("good.parquet");
        write_parquet(&good, &sample(1000)).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 9] {
            let mut damaged = bytes.clone();
            damaged.drain(cut..bytes.len() - 8);
            std::fs::write(&path, &damaged).unwrap();
            assert!(read_parquet(&path).is_err(), "cut at {cut}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The fuzzer's file: a dictionary page claiming 1.7 billion values
    /// in 2 352 bytes is refused at open, by row group and column, before
    /// the crate allocates for the claim; dictionaries of real files pass.
    #[test]
    fn a_dictionary_claiming_more_values_than_its_bytes_is_refused() {
        let forged = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/parquet/oom-forged-dictionary-value-count.parquet");
        let e = ParquetBatches::open(&forged).err().unwrap();
        assert!(
            e.message.contains(
                "row group 0, column `x2`: a dictionary page claims 1724750774 values in 2352 bytes"
            ),
            "{e}"
        );
        // Our writer dictionary-encodes strings and repeated numbers.
        let dir = std::env::temp_dir().join(format!("kh-parquet-dict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dict.parquet");
        let rows = 50_000;
        let frame = Frame {
            rows: rows as u32,
            columns: vec![
                Column {
                    name: "s".into(),
                    values: ColumnValues::String(
                        (0..rows).map(|i| ["a", "", "ccc"][i % 3]).collect(),
                    ),
                    nulls: None,
                },
                Column {
                    name: "b".into(),
                    values: ColumnValues::Bool((0..rows).map(|i| i % 5 == 0).collect()),
                    nulls: None,
                },
                Column {
                    name: "x".into(),
                    values: ColumnValues::F64((0..rows).map(|i| (i % 7) as f64).collect()),
                    nulls: None,
                },
            ],
        };
        write_parquet(&path, &frame).unwrap();
        assert_eq!(read_parquet(&path).unwrap(), frame);
        // Checked once a process while unchanged; the forged bytes written
        // over the checked file (same path, same name) are checked again.
        assert!(CHECKED.contains(&FileKey::of(&path).unwrap()));
        std::fs::copy(&forged, &path).unwrap();
        let e = ParquetBatches::open(&path).err().unwrap();
        assert!(e.message.contains("a dictionary page claims"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
