//! What a chunked fit keeps between its passes: for each chunk, the frames
//! the next pass needs (the parsed input after the first pass, then the
//! outputs of the steps fitted so far that later steps read) and the
//! target, as an Arrow IPC stream in the temporary directory, one record
//! batch per chunk.
//!
//! The encoding is exact, unlike a table file: every value is stored as
//! the kernel made it (a NaN is not turned into a null, values under nulls
//! are kept) and each column's null mask rides in a `UInt8` column of its
//! own, null where the column had no mask. A column is named
//! `<frame>\u{1f}<column>`, the target `\u{1f}<column>`.
//!
//! Record batches are LZ4-compressed (`lz4_flex`, pure Rust): writing a
//! spill into the page cache was the largest single cost of a 5 GB
//! chunked run (37 % of all CPU samples, `copy_folio_from_iter_atomic`),
//! and one-hot columns, masks and repeated labels shrink many times. On
//! 1M generated rows the three spills went 89, 90 and 153 MB -> 68, 68
//! and 66 MB; the 5 GB run 116-128 s -> 86 s, system time 48 -> 29 s.

use crate::bindings::{Column, ColumnValues, Frame};
use crate::error::Error;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Separates a frame's name from its column's.
const SEP: char = '\u{1f}';

/// A spill file. On Unix its name is removed as soon as it is created, so
/// nothing is left behind however the process ends (killed included); the
/// data lives while a handle is open. Elsewhere the file is removed when
/// dropped.
pub struct Spill {
    /// Where it was created (for messages).
    pub path: PathBuf,
    file: Arc<std::fs::File>,
}

impl Spill {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        #[cfg(not(unix))]
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes a [`Spill`] chunk by chunk (no fsync: it lives as long as the
/// fit).
pub struct SpillWriter {
    spill: Spill,
    file: Option<std::io::BufWriter<std::fs::File>>,
    writer: Option<arrow_ipc::writer::StreamWriter<std::io::BufWriter<std::fs::File>>>,
}

impl SpillWriter {
    pub fn create() -> anyhow::Result<SpillWriter> {
        use anyhow::Context as _;
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "kernel-host-spill-{}-{n}.arrows",
            std::process::id()
        ));
        let context = || format!("cannot spill the chunks to {}", path.display());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(context)?;
        #[cfg(unix)]
        std::fs::remove_file(&path).with_context(context)?;
        let writing = file.try_clone().with_context(context)?;
        Ok(SpillWriter {
            spill: Spill {
                path,
                file: Arc::new(file),
            },
            file: Some(std::io::BufWriter::with_capacity(1 << 20, writing)),
            writer: None,
        })
    }

    /// Appends one chunk: `frames` by name and the target `y` (copied:
    /// numbers and masks as they are, strings into one buffer a column).
    pub fn write(&mut self, frames: &[(&str, &Frame)], y: Option<&Column>) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let context = || format!("spilling chunks to {}", self.spill.path.display());
        let batch = encode(frames, y)
            .map_err(anyhow::Error::msg)
            .with_context(context)?;
        if self.writer.is_none()
            && let Some(file) = self.file.take()
        {
            let options = arrow_ipc::writer::IpcWriteOptions::default()
                .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))
                .with_context(context)?;
            self.writer = Some(
                arrow_ipc::writer::StreamWriter::try_new_with_options(
                    file,
                    &batch.schema(),
                    options,
                )
                .with_context(context)?,
            );
        }
        match &mut self.writer {
            Some(writer) => writer.write(&batch).with_context(context),
            None => anyhow::bail!("{}: the writer is gone", context()),
        }
    }

    pub fn finish(mut self) -> anyhow::Result<Spill> {
        use anyhow::Context as _;
        let context = || format!("spilling chunks to {}", self.spill.path.display());
        // No chunk at all: nothing to read back either way.
        let Some(mut writer) = self.writer.take() else {
            anyhow::bail!("{}: no chunks", context());
        };
        writer.finish().with_context(context)?;
        writer
            .into_inner()
            .with_context(context)?
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(context)?;
        Ok(self.spill)
    }
}

/// Reads a [`Spill`] back, a chunk at a time.
pub struct SpillReader {
    reader: arrow_ipc::reader::StreamReader<Counting>,
    read: Arc<AtomicU64>,
    path: PathBuf,
}

/// Counts the bytes read through it (for progress).
struct Counting {
    inner: std::io::BufReader<At>,
    read: Arc<AtomicU64>,
}

/// Reads a shared file from its own offset, so readers of one spill do not
/// move each other's position.
struct At {
    file: Arc<std::fs::File>,
    offset: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.offset)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl SpillReader {
    pub fn open(spill: &Spill) -> Result<SpillReader, Error> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "reading back the chunks spilled to {}: {e}",
                spill.path.display()
            ))
        };
        let file = At {
            file: spill.file.clone(),
            offset: 0,
        };
        let read = Arc::new(AtomicU64::new(0));
        let counting = Counting {
            inner: std::io::BufReader::with_capacity(1 << 20, file),
            read: read.clone(),
        };
        let reader =
            arrow_ipc::reader::StreamReader::try_new(counting, None).map_err(|e| failed(&e))?;
        Ok(SpillReader {
            reader,
            read,
            path: spill.path.clone(),
        })
    }

    /// The next chunk's frames and target.
    #[allow(clippy::type_complexity)]
    pub fn next_chunk(
        &mut self,
    ) -> Result<Option<(HashMap<String, Frame>, Option<Column>)>, Error> {
        match self.reader.next() {
            None => Ok(None),
            Some(Ok(batch)) => decode(&batch).map(Some).map_err(|m| {
                Error::Internal(format!(
                    "reading back the chunks spilled to {}: {m}",
                    self.path.display()
                ))
            }),
            Some(Err(e)) => Err(Error::Internal(format!(
                "reading back the chunks spilled to {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

/// One chunk as a record batch (frames in name order).
fn encode(frames: &[(&str, &Frame)], y: Option<&Column>) -> Result<RecordBatch, String> {
    let mut named = frames.to_vec();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut rows = y.map(|y| kernel_host_types::frame::column_len(y) as u32);
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut push = |name: String, column: &Column| {
        let (ty, array): (DataType, ArrayRef) = match &column.values {
            ColumnValues::F64(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
            ColumnValues::S64(v) => (DataType::Int64, Arc::new(Int64Array::from(v.clone()))),
            ColumnValues::Bool(v) => (DataType::Boolean, Arc::new(BooleanArray::from(v.clone()))),
            ColumnValues::String(v) => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter_values(v.iter())),
            ),
        };
        let len = array.len();
        let mask: ArrayRef = match &column.nulls {
            Some(mask) => Arc::new(UInt8Array::from(mask.clone())),
            None => Arc::new(UInt8Array::new_null(len)),
        };
        fields.push(Field::new(&name, ty, false));
        arrays.push(array);
        fields.push(Field::new(
            format!("{name}{SEP}nulls"),
            DataType::UInt8,
            true,
        ));
        arrays.push(mask);
    };
    for (frame_name, frame) in named {
        if frame_name.contains(SEP) {
            return Err(format!("a frame named `{frame_name}` cannot be spilled"));
        }
        rows.get_or_insert(frame.rows);
        for column in &frame.columns {
            push(format!("{frame_name}{SEP}{}", column.name), column);
        }
    }
    if let Some(y) = y {
        push(format!("{SEP}{}", y.name), y);
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.unwrap_or(0) as usize)),
    )
    .map_err(|e| e.to_string())
}

/// A record batch of [`encode`] back as frames and the target, exactly.
#[allow(clippy::type_complexity)]
fn decode(batch: &RecordBatch) -> Result<(HashMap<String, Frame>, Option<Column>), String> {
    let rows = u32::try_from(batch.num_rows()).map_err(|_| "a chunk of over 2^32 rows")?;
    let mut frames: HashMap<String, Frame> = HashMap::new();
    let mut y = None;
    let schema = batch.schema();
    let columns = batch.columns();
    if !columns.len().is_multiple_of(2) {
        return Err("a column without its null mask".into());
    }
    for pair in 0..columns.len() / 2 {
        let (array, mask) = (&columns[2 * pair], &columns[2 * pair + 1]);
        let field = schema.field(2 * pair);
        let (frame, name) = field
            .name()
            .split_once(SEP)
            .ok_or_else(|| format!("column `{}` names no frame", field.name()))?;
        let any = array.as_any();
        let values = match field.data_type() {
            DataType::Float64 => any
                .downcast_ref::<Float64Array>()
                .map(|a| ColumnValues::F64(a.values().to_vec())),
            DataType::Int64 => any
                .downcast_ref::<Int64Array>()
                .map(|a| ColumnValues::S64(a.values().to_vec())),
            DataType::Boolean => any
                .downcast_ref::<BooleanArray>()
                .map(|a| ColumnValues::Bool((0..a.len()).map(|i| a.value(i)).collect())),
            DataType::Utf8 => any.downcast_ref::<StringArray>().map(|a| {
                ColumnValues::String((0..a.len()).map(|i| a.value(i).to_string()).collect())
            }),
            _ => None,
        }
        .ok_or_else(|| format!("column `{name}` has an unexpected type"))?;
        let mask = mask
            .as_any()
            .downcast_ref::<UInt8Array>()
            .ok_or_else(|| format!("the null mask of `{name}` has an unexpected type"))?;
        let nulls = (mask.null_count() < mask.len()).then(|| mask.values().to_vec());
        let column = Column {
            name: name.to_string(),
            values,
            nulls,
        };
        if frame.is_empty() {
            y = Some(column);
        } else {
            frames
                .entry(frame.to_string())
                .or_insert_with(|| Frame {
                    rows,
                    columns: Vec::new(),
                })
                .columns
                .push(column);
        }
    }
    Ok((frames, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks written to a spill file come back in order, exactly, and
    /// compressed: one-hot columns of 0/1 take a fraction of their bytes.
    #[test]
    fn a_spill_file_gives_back_its_chunks_compressed() {
        let chunk = |k: usize| Frame {
            rows: 4096,
            columns: vec![
                Column {
                    name: "hot".into(),
                    values: ColumnValues::F64(
                        (0..4096)
                            .map(|i| f64::from(u8::from((i + k).is_multiple_of(7))))
                            .collect(),
                    ),
                    nulls: None,
                },
                Column {
                    name: "s".into(),
                    values: ColumnValues::String(
                        (0..4096).map(|i| format!("v{}", (i * k) % 5)).collect(),
                    ),
                    nulls: Some(
                        (0..4096u32)
                            .map(|i| u8::from(i.is_multiple_of(11)))
                            .collect(),
                    ),
                },
            ],
        };
        let y = |k: usize| Column {
            name: "label".into(),
            values: ColumnValues::S64((0..4096).map(|i| ((i + k) % 3) as i64).collect()),
            nulls: None,
        };
        let mut writer = SpillWriter::create().unwrap();
        for k in 0..3 {
            writer.write(&[("encode", &chunk(k))], Some(&y(k))).unwrap();
        }
        let spill = writer.finish().unwrap();
        #[cfg(unix)]
        assert!(!spill.path.exists(), "no name left to leak");
        let size = spill.size();
        // Uncompressed: 3 chunks x 4096 rows x (8 + ~2 + 4 + 1 + 1 + 8 + 1) bytes.
        assert!(size < 3 * 4096 * 25 / 3, "{size} bytes");
        let mut reader = SpillReader::open(&spill).unwrap();
        for k in 0..3 {
            let (frames, label) = reader.next_chunk().unwrap().unwrap();
            assert_eq!(frames["encode"], chunk(k));
            assert_eq!(label, Some(y(k)));
        }
        assert!(reader.next_chunk().unwrap().is_none());
        // A second reader starts from the beginning.
        let mut again = SpillReader::open(&spill).unwrap();
        assert_eq!(again.next_chunk().unwrap().unwrap().0["encode"], chunk(0));
        let path = spill.path.clone();
        drop((reader, again, spill));
        assert!(!path.exists(), "removed");
    }

    #[test]
    fn chunks_round_trip_exactly() {
        let f = |name: &str, values, nulls| Column {
            name: name.into(),
            values,
            nulls,
        };
        let a = Frame {
            rows: 3,
            columns: vec![
                // A NaN that is not a null, a value under a null, -0.0.
                f(
                    "x",
                    ColumnValues::F64(vec![f64::NAN, 7.5, -0.0]),
                    Some(vec![0, 1, 0]),
                ),
                f("n", ColumnValues::S64(vec![1, -2, i64::MAX]), None),
                f(
                    "b",
                    ColumnValues::Bool(vec![true, false, true]),
                    Some(vec![0, 0, 0]),
                ),
                f(
                    "s",
                    ColumnValues::String(vec!["é".into(), String::new(), "z".into()]),
                    None,
                ),
            ],
        };
        let b = Frame {
            rows: 3,
            columns: vec![f("p", ColumnValues::F64(vec![1.0, 2.0, 3.0]), None)],
        };
        let y = f(
            "label",
            ColumnValues::String(vec!["A".into(), "B".into(), "A".into()]),
            None,
        );
        let batch = encode(&[("source", &a), ("scale", &b)], Some(&y)).unwrap();
        let (back, back_y) = decode(&batch).unwrap();
        assert_eq!(back_y.as_ref(), Some(&y));
        assert_eq!(back["scale"], b);
        let source = &back["source"];
        assert_eq!(source.rows, 3);
        let (ColumnValues::F64(got), ColumnValues::F64(want)) =
            (&source.columns[0].values, &a.columns[0].values)
        else {
            panic!("not f64");
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(want));
        assert_eq!(source.columns[0].nulls, a.columns[0].nulls);
        assert_eq!(source.columns[1..], a.columns[1..]);
        // Frames without the target, and a frame with no columns.
        let empty = Frame {
            rows: 4,
            columns: vec![],
        };
        let (back, y) = decode(&encode(&[("e", &empty)], None).unwrap()).unwrap();
        assert!(y.is_none());
        assert!(back.is_empty() || back["e"].columns.is_empty());
    }
}
