//! Tabular data on the host side: reading and writing CSV, checking frames
//! that come back from kernels, and selecting columns.

mod csv;
mod frame;

pub use csv::{ColumnType, CsvOptions, read_csv, write_csv};
pub use frame::{cell_text, check_column, check_frame, column_len};
