//! Tables read and written a chunk at a time, so a run's memory holds one
//! chunk whatever the size of its files.

use super::arrow::{BatchReader, batch_to_frame, frame_to_batch, is_arrow};
use super::parquet::{ParquetBatches, is_parquet};
use super::{CsvChunks, CsvOptions};
use anyhow::Context as _;
use kernel_host_types::DataError;
use kernel_host_types::bindings::Frame;
use std::path::{Path, PathBuf};

/// Rows read to infer CSV column types before the first chunk.
pub const INFER_ROWS: usize = 10_000;

/// Chunks of a CSV, Arrow IPC or Parquet file.
pub enum Chunks {
    Csv(Box<CsvChunks>),
    Arrow {
        path: PathBuf,
        reader: Box<BatchReader>,
        /// Rows of the current batch not yet returned.
        pending: Option<Frame>,
        rows: u64,
        bytes: u64,
        size: u64,
    },
    /// Batches decoded at the chunk size, across row groups.
    Parquet {
        batches: Box<ParquetBatches>,
        size: u64,
    },
}

impl Chunks {
    pub fn open(path: &Path, csv: &CsvOptions) -> Result<Chunks, DataError> {
        if is_parquet(path) {
            let batches = ParquetBatches::open(path)?;
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            return Ok(Chunks::Parquet {
                batches: Box::new(batches),
                size,
            });
        }
        if !is_arrow(path) {
            return Ok(Chunks::Csv(Box::new(CsvChunks::open(
                path, csv, INFER_ROWS,
            )?)));
        }
        // For progress only: a pipe has no size.
        let size = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map_or(0, |m| m.len());
        let reader = super::arrow::open(path)?;
        Ok(Chunks::Arrow {
            path: path.to_path_buf(),
            reader: Box::new(reader),
            pending: None,
            rows: 0,
            bytes: 0,
            size,
        })
    }

    /// The next (up to) `max_rows` rows; `None` at the end.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Frame>, DataError> {
        match self {
            Chunks::Csv(csv) => csv.next_chunk(max_rows),
            Chunks::Parquet { batches, .. } => batches.next_frame(max_rows).transpose(),
            Chunks::Arrow {
                path,
                reader,
                pending,
                rows,
                bytes,
                size,
            } => {
                if pending.is_none() {
                    let Some(batch) = reader.next_batch() else {
                        return Ok(None);
                    };
                    let batch = batch.map_err(|e| DataError {
                        file: path.clone(),
                        row: Some(*rows + 1),
                        column: None,
                        message: format!("unreadable record batch: {e}"),
                    })?;
                    *bytes = (*bytes + batch.get_array_memory_size() as u64).min(*size);
                    *pending = Some(batch_to_frame(&batch, path, *rows)?);
                }
                let Some(frame) = pending.take() else {
                    return Ok(None);
                };
                let n = frame.rows as usize;
                if n <= max_rows {
                    *rows += n as u64;
                    return Ok(Some(frame));
                }
                let head = frame.slice_rows(0, max_rows);
                *pending = Some(frame.slice_rows(max_rows, n));
                *rows += max_rows as u64;
                Ok(Some(head))
            }
        }
    }

    /// Bytes consumed so far (approximate for Arrow), for progress.
    pub fn bytes_read(&self) -> u64 {
        match self {
            Chunks::Csv(csv) => csv.bytes_read(),
            Chunks::Arrow { bytes, .. } => *bytes,
            // In proportion to the rows read.
            Chunks::Parquet { batches, size } => {
                let total = batches.rows().max(1);
                (u128::from(*size) * u128::from(batches.read().min(total)) / u128::from(total))
                    as u64
            }
        }
    }
}

type Out = std::io::BufWriter<std::fs::File>;

/// An Arrow writer: the IPC file format, or the stream format for
/// `.arrows` files (what pipes carry).
enum ArrowSink {
    File(arrow_ipc::writer::FileWriter<Out>),
    Stream(arrow_ipc::writer::StreamWriter<Out>),
}

enum Sink {
    Csv(::csv::Writer<Out>),
    Arrow(Option<ArrowSink>),
    Parquet(Option<Box<parquet::arrow::ArrowWriter<Out>>>),
}

/// Writes a table chunk by chunk into a temporary file beside `path` and
/// renames it into place on [`TableWriter::finish`]; dropped unfinished,
/// it removes the temporary file, so no half-written output appears.
pub struct TableWriter {
    path: PathBuf,
    tmp: PathBuf,
    sink: Option<Sink>,
    header: bool,
    /// The first frame's columns: every later frame must match them, or
    /// the file would be a corrupt table.
    schema: Option<Vec<(String, kernel_host_types::ColumnType)>>,
}

impl TableWriter {
    pub fn create(path: &Path) -> anyhow::Result<TableWriter> {
        let tmp = kernel_host_types::fsutil::temporary_beside(path, "partial")?;
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let writer = std::io::BufWriter::new(file);
        let sink = if is_arrow(path) {
            // The Arrow writer needs the schema: created on the first chunk.
            drop(writer);
            Sink::Arrow(None)
        } else if is_parquet(path) {
            drop(writer);
            Sink::Parquet(None)
        } else {
            Sink::Csv(::csv::Writer::from_writer(writer))
        };
        Ok(TableWriter {
            path: path.to_path_buf(),
            tmp,
            sink: Some(sink),
            header: false,
            schema: None,
        })
    }

    pub fn write(&mut self, frame: &Frame) -> anyhow::Result<()> {
        let schema = frame.schema();
        match &self.schema {
            None => self.schema = Some(schema),
            Some(first) if *first != schema => anyhow::bail!(
                "a table's batches must share one schema: the first had {} columns ({}), this one {} ({})",
                first.len(),
                first
                    .iter()
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                schema.len(),
                schema
                    .iter()
                    .map(|(n, t)| format!("{n} {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(_) => {}
        }
        match self.sink.as_mut() {
            Some(Sink::Csv(w)) => {
                if !self.header {
                    w.write_record(frame.columns.iter().map(|c| c.name.as_str()))?;
                    self.header = true;
                }
                super::csv::write_rows(w, frame)?;
            }
            Some(Sink::Arrow(writer)) => {
                let batch = frame_to_batch(frame)?;
                if writer.is_none() {
                    let file = std::io::BufWriter::new(std::fs::File::create(&self.tmp)?);
                    let stream = self.path.extension().is_some_and(|e| e == "arrows");
                    *writer = Some(if stream {
                        ArrowSink::Stream(arrow_ipc::writer::StreamWriter::try_new(
                            file,
                            &batch.schema(),
                        )?)
                    } else {
                        ArrowSink::File(arrow_ipc::writer::FileWriter::try_new(
                            file,
                            &batch.schema(),
                        )?)
                    });
                }
                match writer.as_mut() {
                    Some(ArrowSink::File(w)) => w.write(&batch)?,
                    Some(ArrowSink::Stream(w)) => w.write(&batch)?,
                    None => {}
                }
            }
            Some(Sink::Parquet(writer)) => {
                let batch = frame_to_batch(frame)?;
                let writer = match writer {
                    Some(writer) => writer,
                    None => {
                        let file = std::io::BufWriter::new(std::fs::File::create(&self.tmp)?);
                        writer.insert(Box::new(parquet::arrow::ArrowWriter::try_new(
                            file,
                            batch.schema(),
                            Some(super::parquet::writer_properties()),
                        )?))
                    }
                };
                writer.write(&batch)?;
            }
            None => anyhow::bail!("the writer is already finished"),
        }
        Ok(())
    }

    /// Flushes, syncs and moves the file into place.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let file = match self.sink.take() {
            Some(Sink::Csv(w)) => w
                .into_inner()
                .map_err(|e| anyhow::anyhow!("{}", e.error()))?
                .into_inner()?,
            Some(Sink::Arrow(Some(ArrowSink::File(mut w)))) => {
                w.finish()?;
                w.into_inner()?.into_inner()?
            }
            Some(Sink::Arrow(Some(ArrowSink::Stream(mut w)))) => {
                w.finish()?;
                w.into_inner()?.into_inner()?
            }
            Some(Sink::Parquet(writer)) => {
                let mut w = match writer {
                    Some(w) => w,
                    // No frame was written: a file with no columns or rows.
                    None => Box::new(parquet::arrow::ArrowWriter::try_new(
                        std::io::BufWriter::new(std::fs::File::create(&self.tmp)?),
                        std::sync::Arc::new(arrow_schema::Schema::empty()),
                        Some(super::parquet::writer_properties()),
                    )?),
                };
                // The footer; the writer then refuses to hand its sink back.
                w.finish()?;
                let out = w.inner_mut();
                std::io::Write::flush(out)?;
                out.get_ref().try_clone()?
            }
            Some(Sink::Arrow(None)) | None => std::fs::File::create(&self.tmp)?,
        };
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming into {}", self.path.display()))?;
        Ok(())
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if self.sink.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
