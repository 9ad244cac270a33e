//! kernel-host-types: the kernel contract as the host's Rust types.
//!
//! The one `bindgen!` site of the host ([`bindings`]: frames, columns,
//! parameters, kernel info, generated from `wit/`), helpers on frames and
//! columns that every other crate shares ([`frame`]), and the plain data a
//! manifest says about a kernel: its [`Limits`] and [`Grants`]. Nothing here
//! runs a kernel or reads a manifest.

pub mod bindings;
pub mod frame;
pub mod fsutil;
mod grants;
pub mod limits;
pub mod matrix;
pub mod text;
pub mod texts;
pub mod wit_types;

pub use frame::{
    ColumnType, DataError, Selection, cell_text, check_column, check_frame, column_len, concat,
    format_f64, type_of,
};
pub use grants::Grants;
pub use limits::{Limits, LimitsSpec};
pub use text::{make_printable, printable, printable_lines};
pub use texts::Texts;
