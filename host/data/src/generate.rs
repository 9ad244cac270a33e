//! Deterministic synthetic data for tests and benchmarks: numeric,
//! integer and categorical columns with missing values, and a target from
//! a hidden model, written chunk by chunk so any size fits in memory.
//!
//! Columns: `x1`..`x6` (f64, about 2 % missing), `count` (s64), `colour`
//! and `region` (strings, about 1 % missing), and `label` (classes `A`,
//! `B`, `C`) or `value` (f64) depending on the task. The same seed gives the
//! same bytes.

use super::TableWriter;
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use std::path::Path;

/// What the target column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Classification,
    Regression,
}

const COLOURS: [&str; 4] = ["red", "green", "blue", "amber"];
const REGIONS: [&str; 5] = ["north", "south", "east", "west", "centre"];
const CHUNK: u64 = 65_536;

/// SplitMix64: small, fast and deterministic; good enough for sampling and
/// shuffling. The one RNG of the host (the generator and row splits).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (Irwin–Hall with 4 terms), mean 0, sd 1.
    pub fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

fn with_nulls(name: &str, values: ColumnValues, nulls: Vec<u8>) -> Column {
    Column {
        name: name.into(),
        values,
        nulls: nulls.contains(&1).then_some(nulls),
    }
}

/// One chunk of `rows` rows.
fn chunk(rng: &mut Rng, rows: usize, task: Task) -> Frame {
    let mut x = vec![vec![0.0; rows]; 6];
    let mut x_nulls = vec![vec![0u8; rows]; 6];
    let mut count = vec![0i64; rows];
    let mut colour = Vec::with_capacity(rows);
    let mut region = Vec::with_capacity(rows);
    let (mut colour_nulls, mut region_nulls) = (vec![0u8; rows], vec![0u8; rows]);
    let mut target_label = Vec::new();
    let mut target_value = Vec::new();
    for r in 0..rows {
        for j in 0..6 {
            x[j][r] = rng.normal() * (j + 1) as f64 + j as f64;
            x_nulls[j][r] = u8::from(rng.unit() < 0.02);
        }
        count[r] = (rng.unit() * 100.0) as i64;
        let c = (rng.next_u64() % COLOURS.len() as u64) as usize;
        let g = (rng.next_u64() % REGIONS.len() as u64) as usize;
        colour.push(COLOURS[c].to_string());
        region.push(REGIONS[g].to_string());
        colour_nulls[r] = u8::from(rng.unit() < 0.01);
        region_nulls[r] = u8::from(rng.unit() < 0.01);
        // The hidden model sees the true values, missing or not.
        let z = |w: [f64; 6]| w.iter().zip(&x).map(|(w, col)| w * col[r]).sum::<f64>();
        let noise = rng.normal() * 0.5;
        match task {
            Task::Classification => {
                let scores = [
                    z([1.0, -0.5, 0.2, 0.0, 0.1, 0.0]) + c as f64 * 0.8 + noise,
                    z([-0.5, 0.7, 0.0, 0.1, 0.0, -0.05]) + g as f64 * 0.6,
                    z([0.0, 0.0, -0.3, 0.2, 0.0, 0.05]) + count[r] as f64 * 0.02,
                ];
                let best = (0..3).fold(0, |b, k| if scores[k] > scores[b] { k } else { b });
                target_label.push(["A", "B", "C"][best].to_string());
            }
            Task::Regression => target_value.push(
                z([2.0, -1.0, 0.5, 0.0, 0.3, 0.1]) + c as f64 + count[r] as f64 * 0.1 + noise,
            ),
        }
    }
    let mut columns: Vec<Column> = x
        .into_iter()
        .zip(x_nulls)
        .enumerate()
        .map(|(j, (v, n))| with_nulls(&format!("x{}", j + 1), ColumnValues::F64(v), n))
        .collect();
    columns.push(with_nulls("count", ColumnValues::S64(count), Vec::new()));
    columns.push(with_nulls(
        "colour",
        ColumnValues::String(colour.into()),
        colour_nulls,
    ));
    columns.push(with_nulls(
        "region",
        ColumnValues::String(region.into()),
        region_nulls,
    ));
    columns.push(match task {
        Task::Classification => with_nulls(
            "label",
            ColumnValues::String(target_label.into()),
            Vec::new(),
        ),
        Task::Regression => with_nulls("value", ColumnValues::F64(target_value), Vec::new()),
    });
    Frame {
        rows: rows as u32,
        columns,
    }
}

/// Writes `rows` rows to `path` (CSV, or Arrow IPC by extension),
/// calling `progress` with the rows written so far.
pub fn generate(
    path: &Path,
    rows: u64,
    seed: u64,
    task: Task,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    let mut rng = Rng(seed);
    let mut writer = TableWriter::create(path)?;
    let mut done = 0;
    while done < rows {
        let n = (rows - done).min(CHUNK);
        writer.write(&chunk(&mut rng, n as usize, task))?;
        done += n;
        progress(done);
    }
    writer.finish()
}
