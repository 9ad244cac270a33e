//! Helpers shared by the benchmarks (each bench includes this module).

#![allow(dead_code)]

use kernel_host::bindings::{Column, ColumnValues, Frame};
use std::time::Duration;

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `rows x cols` of deterministic pseudo-random f64 in `[j, j + 1)` for
/// column `j`, named `{prefix}{j}`.
pub fn random_frame(rows: usize, cols: usize, prefix: &str, seed: u64) -> Frame {
    let mut state = seed | 1;
    let columns = (0..cols)
        .map(|j| Column {
            name: format!("{prefix}{j}"),
            values: ColumnValues::F64(
                (0..rows)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 11) as f64 / (1u64 << 53) as f64 + j as f64
                    })
                    .collect(),
            ),
            nulls: None,
        })
        .collect();
    Frame {
        rows: rows as u32,
        columns,
    }
}
