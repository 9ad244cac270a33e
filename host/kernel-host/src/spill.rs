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
//! Each chunk is one LZ4 block (`lz4_flex`, pure Rust): the Arrow IPC
//! messages written for it (the schema before the first chunk, the end of
//! the stream after the last), compressed whole, behind their raw and
//! compressed lengths (`u32`, little-endian). Writing a spill into the
//! page cache was the largest single cost of a 5 GB chunked run (37 % of
//! all CPU samples, `copy_folio_from_iter_atomic`), and one-hot columns,
//! masks and repeated labels shrink many times: on 1M generated rows the
//! three spills went 89, 90 and 153 MB -> 68, 68 and 66 MB, the 5 GB run
//! 116-128 s -> 86 s. (Arrow's own `LZ4_FRAME` compression, used first,
//! compresses each buffer as a frame and decodes it through `read_to_end`,
//! which zeroes and copies every buffer once more.)

use crate::bindings::{Column, ColumnValues, Frame};
use crate::error::Error;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};
use std::collections::HashMap;
use std::io::{Read, Write as _};
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
    file: std::io::BufWriter<std::fs::File>,
    /// Encodes into memory; its bytes become a block at each chunk.
    writer: Option<arrow_ipc::writer::StreamWriter<Vec<u8>>>,
    /// The last block, compressed (reused).
    compressed: Vec<u8>,
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
            file: std::io::BufWriter::with_capacity(1 << 20, writing),
            writer: None,
            compressed: Vec::new(),
        })
    }

    /// Appends one chunk: `frames` by name and the target `y` (copied:
    /// numbers and masks as they are, strings into one buffer a column).
    pub fn write(&mut self, frames: &[(&str, &Frame)], y: Option<&Column>) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let path = self.spill.path.clone();
        let context = || format!("spilling chunks to {}", path.display());
        let batch = encode(frames, y)
            .map_err(anyhow::Error::msg)
            .with_context(context)?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(
                arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
                    .with_context(context)?,
            ),
        };
        writer.write(&batch).with_context(context)?;
        self.block().with_context(context)
    }

    /// Compresses what the encoder wrote since the last block and appends
    /// it to the file.
    fn block(&mut self) -> anyhow::Result<()> {
        let Some(writer) = &mut self.writer else {
            return Ok(());
        };
        let raw = writer.get_mut();
        if raw.is_empty() {
            return Ok(());
        }
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| anyhow::anyhow!("a chunk of {} bytes (4 GiB at most)", raw.len()))?;
        self.compressed
            .resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
        let n = lz4_flex::block::compress_into(raw, &mut self.compressed)?;
        raw.clear();
        let n_len = u32::try_from(n).map_err(|_| anyhow::anyhow!("a block over 4 GiB"))?;
        self.file.write_all(&raw_len.to_le_bytes())?;
        self.file.write_all(&n_len.to_le_bytes())?;
        self.file.write_all(&self.compressed[..n])?;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<Spill> {
        use anyhow::Context as _;
        let path = self.spill.path.clone();
        let context = || format!("spilling chunks to {}", path.display());
        // No chunk at all: nothing to read back either way.
        let Some(writer) = &mut self.writer else {
            anyhow::bail!("{}: no chunks", context());
        };
        writer.finish().with_context(context)?;
        self.block().with_context(context)?;
        self.file.flush().with_context(context)?;
        Ok(self.spill)
    }
}

/// Reads a [`Spill`] back, a chunk at a time.
pub struct SpillReader {
    file: std::io::BufReader<At>,
    decoder: arrow_ipc::reader::StreamDecoder,
    /// The last block read, compressed (reused).
    compressed: Vec<u8>,
    /// The memory of the last block decompressed, once its chunk was
    /// copied out (reused).
    spare: Vec<u8>,
    /// The block after the last chunk was read.
    ended: bool,
    read: u64,
    path: PathBuf,
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

impl SpillReader {
    pub fn open(spill: &Spill) -> Result<SpillReader, Error> {
        let file = At {
            file: spill.file.clone(),
            offset: 0,
        };
        Ok(SpillReader {
            file: std::io::BufReader::with_capacity(1 << 20, file),
            decoder: arrow_ipc::reader::StreamDecoder::new(),
            compressed: Vec::new(),
            spare: Vec::new(),
            ended: false,
            read: 0,
            path: spill.path.clone(),
        })
    }

    /// The next chunk's frames and target.
    #[allow(clippy::type_complexity)]
    pub fn next_chunk(
        &mut self,
    ) -> Result<Option<(HashMap<String, Frame>, Option<Column>)>, Error> {
        let path = self.path.clone();
        let failed = |m: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "reading back the chunks spilled to {}: {m}",
                path.display()
            ))
        };
        match self.next_batch() {
            Ok(Some((batch, block))) => {
                let chunk = decode(&batch).map(Some).map_err(|m| failed(&m));
                drop(batch);
                // The chunk was copied out: the block's memory serves the
                // next one (a fresh buffer of a chunk's size every time
                // faulted its pages in anew: twice the system time).
                if let Ok(spare) = block.into_vec::<u8>() {
                    self.spare = spare;
                }
                chunk
            }
            Ok(None) => Ok(None),
            Err(e) => Err(failed(&format!("{e:#}"))),
        }
    }

    /// The next record batch: blocks are read and decoded until one
    /// completes (the first block also holds the schema, the last only
    /// the end of the stream), with the block it was decoded from.
    fn next_batch(&mut self) -> anyhow::Result<Option<(RecordBatch, arrow_buffer::Buffer)>> {
        loop {
            let mut header = [0u8; 8];
            let got = kernel_host_data::read_full(&mut self.file, &mut header)?;
            if got == 0 {
                // Cut at a block boundary, the stream would look whole.
                if !self.ended {
                    anyhow::bail!("the file ends before the end of the stream was written");
                }
                self.decoder.finish()?;
                return Ok(None);
            }
            if got < header.len() {
                anyhow::bail!("the file ends inside a block header");
            }
            let [a, b, c, d, e, f, g, h] = header;
            let raw = u32::from_le_bytes([a, b, c, d]) as usize;
            let len = u32::from_le_bytes([e, f, g, h]) as usize;
            self.compressed.resize(len, 0);
            self.file.read_exact(&mut self.compressed)?;
            self.read += (header.len() + len) as u64;
            let mut bytes = std::mem::take(&mut self.spare);
            bytes.resize(raw, 0);
            let n = lz4_flex::block::decompress_into(&self.compressed, &mut bytes)?;
            if n != raw {
                anyhow::bail!("a block of {n} bytes where {raw} were written");
            }
            let block = arrow_buffer::Buffer::from_vec(bytes);
            let mut buffer = block.clone();
            let mut batch = None;
            while !buffer.is_empty() {
                if let Some(decoded) = self.decoder.decode(&mut buffer)? {
                    if batch.is_some() {
                        anyhow::bail!("two chunks in one block");
                    }
                    batch = Some(decoded);
                }
            }
            drop(buffer);
            if let Some(batch) = batch {
                return Ok(Some((batch, block)));
            }
            // Only the last block holds no chunk: the end of the stream.
            self.ended = true;
            if let Ok(spare) = block.into_vec::<u8>() {
                self.spare = spare;
            }
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.read
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
            DataType::Utf8 => any
                .downcast_ref::<StringArray>()
                .map(|a| ColumnValues::String(kernel_host_data::arrow::texts_of(a))),
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

    /// A spill cut short (a full disk, a file someone truncated) is an
    /// error naming the spill, never a panic or a silent end.
    #[test]
    fn a_truncated_spill_is_an_error_not_an_end() {
        let chunk = |k: usize| Frame {
            rows: 1000,
            columns: vec![Column {
                name: "x".into(),
                values: ColumnValues::F64((0..1000).map(|i| (i * (k + 1)) as f64).collect()),
                nulls: None,
            }],
        };
        let spilled = || {
            let mut writer = SpillWriter::create().unwrap();
            for k in 0..3 {
                writer.write(&[("source", &chunk(k))], None).unwrap();
            }
            writer.finish().unwrap()
        };
        let size = spilled().size();
        // Without the last block (the end of the stream) the cut falls
        // between blocks.
        let end = 8 + lz4_flex::block::compress(&[255, 255, 255, 255, 0, 0, 0, 0]).len() as u64;
        for cut in [3, size / 2, size - 3, size - end] {
            // A whole spill each time, then cut (cutting one file again
            // and again would lengthen it with zeros).
            let spill = spilled();
            spill.file.set_len(cut).unwrap();
            assert_eq!(spill.size(), cut);
            let mut reader = SpillReader::open(&spill).unwrap();
            let mut outcome = Ok(None);
            for _ in 0..4 {
                outcome = reader.next_chunk();
                if !matches!(outcome, Ok(Some(_))) {
                    break;
                }
            }
            let e = outcome.expect_err("a truncated spill must not end quietly");
            assert!(
                e.to_string().contains("reading back the chunks spilled to"),
                "{e}"
            );
        }
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
                    ColumnValues::String(kernel_host_types::Texts::from(["é", "", "z"])),
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
            ColumnValues::String(kernel_host_types::Texts::from(["A", "B", "A"])),
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
