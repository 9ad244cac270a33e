//! Tabular data on the host side: reading and writing CSV, checking frames
//! that come back from kernels, and selecting columns.

pub mod arrow;
mod chunks;
mod csv;
mod frame;
pub mod generate;

pub use chunks::{Chunks, INFER_ROWS, TableWriter};
pub use csv::{ColumnType, CsvChunks, CsvOptions, read_csv, write_csv};
pub use frame::{cell_text, check_column, check_frame, column_len};

use crate::bindings::Frame;
use crate::error::DataError;
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
