//! Arrow IPC input and output (file and stream formats), using the split
//! arrow crates. Frames map to record batches column for column: f64 ↔
//! Float64, s64 ↔ Int64 (smaller integers are widened on input), bool ↔
//! Boolean, string ↔ Utf8/LargeUtf8, nulls ↔ validity bitmaps. Input goes
//! through [`BatchReader`], which checks every length a file claims before
//! arrow-ipc allocates or slices it; a schema with a type frames cannot
//! hold, or a column name twice, is refused before any batch is read.

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{DataError, Texts};
use std::path::Path;
use std::sync::Arc;

pub use super::ipc::{BatchReader, MAX_METADATA_BYTES};

/// The strings of an Arrow `Utf8` array as the host holds them: its value
/// buffer and offsets copied whole (no allocation per cell). Cells under
/// the array's nulls keep what the buffer holds there.
pub fn texts_of(array: &StringArray) -> Texts {
    let offsets = array.value_offsets();
    let first = offsets.first().map_or(0, |o| *o as usize);
    let last = offsets.last().map_or(0, |o| *o as usize);
    // Arrow checked the buffer is UTF-8 and each offset a boundary when
    // the array was built or read; both are checked again here, and the
    // cells are copied one by one if either check fails.
    let whole = std::str::from_utf8(&array.value_data()[first..last])
        .ok()
        .and_then(|text| {
            let ends = offsets[1.min(offsets.len())..]
                .iter()
                .map(|o| *o as usize - first)
                .collect();
            Texts::from_parts(text.to_string(), ends).ok()
        });
    whole.unwrap_or_else(|| (0..array.len()).map(|i| array.value(i)).collect())
}

/// Whether `path` names an Arrow IPC file by its extension.
pub fn is_arrow(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("arrow" | "arrows" | "ipc" | "feather")
    )
}

fn error(file: &Path, row: Option<u64>, column: Option<&str>, message: String) -> DataError {
    DataError {
        file: file.to_path_buf(),
        row,
        column: column.map(String::from),
        message,
    }
}

/// The Arrow types a frame column holds.
fn supported(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Float64
            | DataType::Float32
            | DataType::Int64
            | DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::UInt32
            | DataType::UInt16
            | DataType::UInt8
            | DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    ) || matches!(ty, DataType::Dictionary(_, values) if matches!(**values, DataType::Utf8 | DataType::LargeUtf8))
}

fn unsupported(file: &Path, name: &str, ty: &DataType) -> DataError {
    error(
        file,
        None,
        Some(name),
        format!(
            "has Arrow type {ty}; supported: Float64/32, Int64/32/16/8, UInt32/16/8, Boolean, Utf8 (or a dictionary of Utf8)"
        ),
    )
}

/// Refuses a schema that frames cannot hold: a column type they have not,
/// or a column name twice (as the CSV reader refuses a header).
pub fn check_schema(schema: &Schema, file: &Path) -> Result<(), DataError> {
    let mut seen = std::collections::HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().as_str()) {
            return Err(error(
                file,
                None,
                Some(field.name()),
                "column name appears twice in the schema".into(),
            ));
        }
        if !supported(field.data_type()) {
            return Err(unsupported(file, field.name(), field.data_type()));
        }
    }
    Ok(())
}

/// A record batch as a frame. `first_row` (0-based) locates errors.
pub fn batch_to_frame(
    batch: &RecordBatch,
    file: &Path,
    first_row: u64,
) -> Result<Frame, DataError> {
    check_schema(&batch.schema(), file)?;
    if batch.num_columns() == 0 && batch.num_rows() > 0 {
        // Nothing backs the count: it would only make phantom rows.
        return Err(error(
            file,
            Some(first_row + 1),
            None,
            format!(
                "a record batch claims {} rows but has no columns",
                batch.num_rows()
            ),
        ));
    }
    let rows = u32::try_from(batch.num_rows())
        .map_err(|_| error(file, None, None, "a batch of more than 2^32-1 rows".into()))?;
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        // Logical nulls: a dictionary's row is also null where its entry is.
        let nulls = array
            .logical_nulls()
            .filter(|n| n.null_count() > 0)
            .map(|n| (0..array.len()).map(|i| u8::from(n.is_null(i))).collect());
        let cast = |to: &DataType| {
            arrow_cast_like(array, to).map_err(|m| error(file, Some(first_row + 1), Some(name), m))
        };
        let mut values = match field.data_type() {
            DataType::Float64 | DataType::Float32 => ColumnValues::F64(
                cast(&DataType::Float64)?
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .map(|a| a.values().to_vec())
                    .unwrap_or_default(),
            ),
            DataType::Int64
            | DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::UInt32
            | DataType::UInt16
            | DataType::UInt8 => ColumnValues::S64(
                cast(&DataType::Int64)?
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.values().to_vec())
                    .unwrap_or_default(),
            ),
            DataType::Boolean => {
                let a = array.as_any().downcast_ref::<BooleanArray>();
                ColumnValues::Bool(
                    a.map(|a| (0..a.len()).map(|i| a.value(i)).collect())
                        .unwrap_or_default(),
                )
            }
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(..) => {
                let a = cast(&DataType::Utf8)?;
                let a = a.as_any().downcast_ref::<StringArray>();
                ColumnValues::String(a.map(texts_of).unwrap_or_default())
            }
            other => return Err(unsupported(file, name, other)),
        };
        // As in a CSV: an infinity is not a value kernels accept.
        if let ColumnValues::F64(v) = &values
            && let Some(i) = v
                .iter()
                .enumerate()
                .position(|(i, x)| x.is_infinite() && !array.is_null(i))
        {
            return Err(error(
                file,
                Some(first_row + i as u64 + 1),
                Some(name),
                format!(
                    "{} is an infinity, not a number kernels accept; replace it, or make the cell null for a missing value",
                    v[i]
                ),
            ));
        }
        let mut nulls = nulls;
        canonical_nulls(&mut values, &mut nulls);
        columns.push(Column {
            name: name.clone(),
            values,
            nulls,
        });
    }
    Ok(Frame { rows, columns })
}

/// Missing values as the CSV reader makes them, whatever a file stored
/// under its nulls (Parquet stores nothing there, Arrow anything): a null
/// f64 is NaN, and a NaN is null; a null integer is 0, a null bool false,
/// a null string empty. So a table reads the same from every format, and
/// no kernel sees bytes a file left under a null.
fn canonical_nulls(values: &mut ColumnValues, nulls: &mut Option<Vec<u8>>) {
    if let ColumnValues::F64(v) = values
        && v.iter().any(|x| x.is_nan())
    {
        let mask = nulls.get_or_insert_with(|| vec![0; v.len()]);
        for (m, x) in mask.iter_mut().zip(v.iter()) {
            *m |= u8::from(x.is_nan());
        }
    }
    let Some(mask) = nulls.as_ref() else {
        return;
    };
    let missing = mask
        .iter()
        .enumerate()
        .filter(|(_, m)| **m != 0)
        .map(|(i, _)| i);
    match values {
        ColumnValues::F64(v) => missing.for_each(|i| v[i] = f64::NAN),
        ColumnValues::S64(v) => missing.for_each(|i| v[i] = 0),
        ColumnValues::Bool(v) => missing.for_each(|i| v[i] = false),
        ColumnValues::String(v) => {
            v.rewrite(|i, cell| (mask[i] != 0 && !cell.is_empty()).then(String::new))
        }
    }
}

/// Widens numeric arrays and normalizes strings without the arrow-cast
/// crate (whose build pulls in much more than these few conversions).
fn arrow_cast_like(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if array.data_type() == to {
        return Ok(array.clone());
    }
    let nulls = array.nulls().cloned();
    let out: ArrayRef = match (array.data_type(), to) {
        (DataType::Float32, DataType::Float64) => {
            let a = array.as_primitive::<Float32Type>();
            Arc::new(Float64Array::new(
                a.values().iter().map(|v| f64::from(*v)).collect(),
                nulls,
            ))
        }
        (from, DataType::Int64) => {
            let values: Vec<i64> = match from {
                DataType::Int32 => array
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                DataType::Int16 => array
                    .as_primitive::<Int16Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                DataType::Int8 => array
                    .as_primitive::<Int8Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                DataType::UInt32 => array
                    .as_primitive::<UInt32Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                DataType::UInt16 => array
                    .as_primitive::<UInt16Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                DataType::UInt8 => array
                    .as_primitive::<UInt8Type>()
                    .values()
                    .iter()
                    .map(|v| i64::from(*v))
                    .collect(),
                other => return Err(format!("cannot read {other} as an integer")),
            };
            Arc::new(Int64Array::new(values.into(), nulls))
        }
        (DataType::LargeUtf8, DataType::Utf8) => {
            let a = array.as_string::<i64>();
            Arc::new(StringArray::from_iter(
                (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))),
            ))
        }
        (DataType::Utf8View, DataType::Utf8) => {
            let a = array.as_string_view();
            Arc::new(StringArray::from_iter(
                (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i))),
            ))
        }
        (DataType::Dictionary(..), DataType::Utf8) => {
            // A dictionary of strings (a pandas `category`): each row's
            // string, null where the row or its dictionary entry is.
            let Some(dictionary) = array.as_any_dictionary_opt() else {
                return Err(format!("cannot read {} as {to}", array.data_type()));
            };
            let keys = dictionary.normalized_keys();
            let values = dictionary.values();
            let text = |i: usize| -> Option<&str> {
                let k = *keys.get(i)?;
                if array.is_null(i) || k >= values.len() || values.is_null(k) {
                    return None;
                }
                match values.data_type() {
                    DataType::Utf8 => Some(values.as_string::<i32>().value(k)),
                    DataType::LargeUtf8 => Some(values.as_string::<i64>().value(k)),
                    _ => None,
                }
            };
            Arc::new(StringArray::from_iter((0..array.len()).map(text)))
        }
        (from, to) => return Err(format!("cannot read {from} as {to}")),
    };
    Ok(out)
}

/// A frame as a record batch.
pub fn frame_to_batch(frame: &Frame) -> Result<RecordBatch, ArrowError> {
    let mut fields = Vec::with_capacity(frame.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(frame.columns.len());
    for c in &frame.columns {
        let valid = |i: usize| {
            c.nulls
                .as_ref()
                .is_none_or(|n| n.get(i).is_none_or(|b| *b == 0))
        };
        let (ty, array): (DataType, ArrayRef) = match &c.values {
            ColumnValues::F64(v) => (
                DataType::Float64,
                Arc::new(Float64Array::from_iter(
                    (0..v.len()).map(|i| valid(i).then_some(v[i])),
                )),
            ),
            ColumnValues::S64(v) => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(
                    (0..v.len()).map(|i| valid(i).then_some(v[i])),
                )),
            ),
            ColumnValues::Bool(v) => (
                DataType::Boolean,
                Arc::new(BooleanArray::from_iter(
                    (0..v.len()).map(|i| valid(i).then_some(v[i])),
                )),
            ),
            ColumnValues::String(v) => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(
                    (0..v.len()).map(|i| valid(i).then_some(&v[i])),
                )),
            ),
        };
        fields.push(Field::new(&c.name, ty, true));
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(frame.rows as usize)),
    )
}

/// Reads a whole Arrow IPC file (or stream) into one frame.
pub fn read_arrow(path: &Path) -> Result<Frame, DataError> {
    let mut reader = open(path)?;
    let mut parts = Vec::new();
    let mut rows = 0u64;
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(|e| {
            error(
                path,
                Some(rows + 1),
                None,
                format!("unreadable record batch: {e}"),
            )
        })?;
        let frame = batch_to_frame(&batch, path, rows)?;
        rows += u64::from(frame.rows);
        parts.push(frame);
    }
    Frame::concat_rows(parts)
        .map_err(|m| error(path, None, None, format!("record batches disagree: {m}")))
}

/// Opens the Arrow IPC file (or stream, maybe through a pipe) at `path`,
/// its schema checked.
pub(crate) fn open(path: &Path) -> Result<BatchReader, DataError> {
    let reader = BatchReader::open(super::input::open(path, true)?).map_err(|e| {
        error(
            path,
            None,
            None,
            format!("not a readable Arrow IPC file: {e}"),
        )
    })?;
    check_schema(&reader.schema(), path)?;
    Ok(reader)
}

/// Writes `frame` as Arrow IPC (the stream format for `.arrows`, the file
/// format otherwise), atomically.
pub fn write_arrow(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    super::write_table(path, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_arrow() {
        let frame = Frame {
            rows: 3,
            columns: vec![
                Column {
                    name: "f".into(),
                    values: ColumnValues::F64(vec![1.5, 0.0, -2.0]),
                    nulls: Some(vec![0, 1, 0]),
                },
                Column {
                    name: "i".into(),
                    values: ColumnValues::S64(vec![1, 2, 3]),
                    nulls: None,
                },
                Column {
                    name: "b".into(),
                    values: ColumnValues::Bool(vec![true, false, true]),
                    nulls: None,
                },
                Column {
                    name: "s".into(),
                    values: ColumnValues::String(kernel_host_types::Texts::from(["x", "", "z"])),
                    nulls: Some(vec![0, 1, 0]),
                },
            ],
        };
        let dir = std::env::temp_dir().join(format!("kh-arrow-{}", std::process::id()));
        let path = dir.join("t.arrow");
        write_arrow(&path, &frame).unwrap();
        let mut back = read_arrow(&path).unwrap();
        // What a file holds under a null is not read: a null f64 is NaN, as
        // a missing CSV cell.
        let ColumnValues::F64(f) = &mut back.columns[0].values else {
            panic!("f is f64")
        };
        assert!(f[1].is_nan());
        f[1] = 0.0;
        assert_eq!(back, frame);
        let _ = std::fs::remove_dir_all(dir);
    }
}
