//! The stream loop behind `kernel-host stream`: Arrow IPC record batches in,
//! one output batch per input batch out, flushed as it goes, through the
//! job driver's [`Predictor`] (so a batch is checked, predicted and scored
//! exactly as a file would be). The pipeline comes from [`crate::job`]: a
//! bundle restored without refitting (the cluster path), or a plan fitted
//! first, in chunks when it says so.

use crate::data::arrow::{BatchReader, batch_to_frame, frame_to_batch};
use crate::error::{DataError, Error};
use crate::job::{Fitted, Predicted, Predictor};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::ArrowError;
use std::io::{Read, Write};
use std::path::Path;

const STDIN: &str = "<stdin>";

/// A failure reading the input: broken data is the sender's to fix, a
/// failing pipe may pass.
fn input_error(e: ArrowError, what: String) -> Error {
    match e {
        ArrowError::IoError(context, source) => Error::Io {
            context: format!("{what}: {context}"),
            source,
        },
        other => DataError::new(Path::new(STDIN), format!("{what}: {other}")).into(),
    }
}

fn output_error(e: impl Into<anyhow::Error>) -> Error {
    Error::io("writing Arrow IPC to stdout", e.into())
}

/// Predicts every batch of the Arrow IPC stream `input` with `fitted`,
/// writing each output batch to `output` as soon as it is made. Returns
/// what was predicted (rows, and the metric when batches carry the target).
pub async fn serve(
    fitted: &mut Fitted,
    input: impl Read,
    output: impl Write,
) -> Result<Predicted, Error> {
    // The checked reader: every length a message claims is checked before
    // anything is allocated, so a forged stream is an error, not a crash.
    let mut reader =
        BatchReader::stream(input).map_err(|e| input_error(e, "not an Arrow IPC stream".into()))?;
    let mut predictor = Predictor::new(fitted, None)?;
    let mut writer: Option<StreamWriter<_>> = None;
    let mut output = Some(output);
    let mut rows = 0u64;
    while let Some(batch) = reader.next_batch() {
        let batch = batch
            .map_err(|e| input_error(e, format!("unreadable record batch after {rows} rows")))?;
        let frame = batch_to_frame(&batch, Path::new(STDIN), rows)?;
        rows += u64::from(frame.rows);
        let out = predictor.batch(frame, Path::new(STDIN)).await?;
        let out = frame_to_batch(&out)
            .map_err(|e| Error::Internal(format!("the output table is not valid Arrow: {e}")))?;
        if let Some(sink) = output.take() {
            writer = Some(StreamWriter::try_new(sink, &out.schema()).map_err(output_error)?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&out).map_err(output_error)?;
            w.get_mut().flush().map_err(output_error)?;
        }
    }
    if let Some(mut w) = writer {
        w.finish().map_err(output_error)?;
        w.get_mut().flush().map_err(output_error)?;
    }
    predictor.finish()
}
