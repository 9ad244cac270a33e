//! kernel-host-data: tabular data on the host side. Reading and writing CSV,
//! Arrow IPC and Parquet, whole or a chunk at a time in bounded memory; the
//! deterministic synthetic generator and the one RNG the host uses; row
//! splits; and the streaming quality metrics every job reports. Nothing
//! here runs a kernel.

pub mod arrow;
mod chunks;
mod csv;
pub mod generate;
#[cfg(test)]
mod hostile_input_tests;
mod input;
mod ipc;
pub mod parquet;
pub mod profile;
pub mod score;
pub mod split;

pub use chunks::{Chunks, INFER_ROWS, TableWriter};
pub use csv::{CsvChunks, CsvOptions, MAX_RECORD_BYTES, read_csv, write_csv};
pub use ipc::read_full;
pub use kernel_host_types::{ColumnType, DataError, cell_text, column_len};

use kernel_host_types::bindings::Frame;
use std::path::Path;

/// Reads a table: Arrow IPC (`.arrow`, `.arrows`, `.ipc`, `.feather`) or
/// Parquet (`.parquet`, `.pq`) by extension, CSV otherwise.
pub fn read_table(path: &Path, csv: &CsvOptions) -> Result<Frame, DataError> {
    if arrow::is_arrow(path) {
        arrow::read_arrow(path)
    } else if parquet::is_parquet(path) {
        parquet::read_parquet(path)
    } else {
        read_csv(path, csv)
    }
}

/// Writes a table atomically, as Arrow IPC, Parquet or CSV by extension.
pub fn write_table(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    let mut writer = TableWriter::create(path)?;
    writer.write(frame)?;
    writer.finish()
}

/// Whether `path` names a columnar binary file (Arrow IPC or Parquet),
/// which is typed and cheap to read again, unlike CSV text.
pub fn is_columnar(path: &Path) -> bool {
    arrow::is_arrow(path) || parquet::is_parquet(path)
}
