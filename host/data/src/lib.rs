//! kernel-host-data: tabular data on the host side. Reading and writing CSV
//! and Arrow IPC, whole or a chunk at a time in bounded memory; the
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
pub mod score;
pub mod split;

pub use chunks::{Chunks, INFER_ROWS, TableWriter};
pub use csv::{CsvChunks, CsvOptions, MAX_RECORD_BYTES, read_csv, write_csv};
pub use kernel_host_types::{ColumnType, DataError, cell_text, column_len};

use kernel_host_types::bindings::Frame;
use std::path::Path;

/// Reads a table: Arrow IPC by extension (`.arrow`, `.arrows`, `.ipc`,
/// `.feather`), CSV otherwise.
pub fn read_table(path: &Path, csv: &CsvOptions) -> Result<Frame, DataError> {
    if arrow::is_arrow(path) {
        arrow::read_arrow(path)
    } else {
        read_csv(path, csv)
    }
}

/// Writes a table atomically, as Arrow IPC or CSV by extension.
pub fn write_table(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    if arrow::is_arrow(path) {
        arrow::write_arrow(path, frame)
    } else {
        write_csv(path, frame)
    }
}
