//! A standard scaler as an Extism plug-in. A frame crosses as bytes:
//! `rows: u32`, `cols: u32` (little-endian), then each column's `rows` f64
//! values. `fit` keeps each column's mean and population standard
//! deviation (a constant column keeps scale 1, as scikit-learn does);
//! `transform` returns the scaled frame in the same layout.

use extism_pdk::*;
use std::sync::Mutex;

static STATS: Mutex<Vec<(f64, f64)>> = Mutex::new(Vec::new());

fn frame(input: &[u8]) -> Result<(usize, usize, Vec<f64>), Error> {
    let word = |at: usize| -> Result<usize, Error> {
        let bytes: [u8; 4] = input
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::msg("frame header is short"))?;
        Ok(u32::from_le_bytes(bytes) as usize)
    };
    let (rows, cols) = (word(0)?, word(4)?);
    let body = &input[8..];
    if body.len() != rows * cols * 8 {
        return Err(Error::msg("frame body does not match its header"));
    }
    let values = body
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    Ok((rows, cols, values))
}

#[plugin_fn]
pub fn fit(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let (rows, cols, values) = frame(&input)?;
    let mut stats = Vec::with_capacity(cols);
    for column in values.chunks_exact(rows.max(1)).take(cols) {
        let n = rows as f64;
        let mean = column.iter().sum::<f64>() / n;
        let var = column.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        stats.push((mean, scale));
    }
    *STATS.lock().map_err(|_| Error::msg("poisoned"))? = stats;
    Ok(Vec::new())
}

#[plugin_fn]
pub fn transform(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let (rows, cols, values) = frame(&input)?;
    let stats = STATS.lock().map_err(|_| Error::msg("poisoned"))?;
    if stats.len() != cols {
        return Err(WithReturnCode::from(Error::msg("fit first")));
    }
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..8]);
    for (column, (mean, scale)) in values.chunks_exact(rows.max(1)).zip(stats.iter()) {
        for v in column {
            out.extend_from_slice(&((v - mean) / scale).to_le_bytes());
        }
    }
    Ok(out)
}
