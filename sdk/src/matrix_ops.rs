//! The arithmetic of host matrices (`kernel-host:kernel/columns`'s
//! `matrix`): f64, row-major. One definition: the host includes this file
//! (it runs the operations kernels ask for, on several threads), and the
//! SDK runs it natively on one thread, so a kernel's results do not depend
//! on where it runs.
//!
//! Determinism: row-wise results do not depend on how rows are split;
//! sums over rows run in fixed blocks of [`BLOCK_ROWS`] rows (row order
//! within a block, then block by block), whatever the number of threads.
//!
//! Standard library only; the parent module provides `Column` and
//! `ColumnValues` (the WIT types, host or guest side).

use super::{Column, ColumnValues};
use std::ops::Range;

/// Rows per block of a sum over rows.
pub const BLOCK_ROWS: usize = 65_536;

/// A row-major f64 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

/// How an operation runs: on how many threads, and when to give up (the
/// host's call deadline, checked between blocks).
pub struct Run<'a> {
    pub threads: usize,
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

impl Run<'_> {
    /// One thread, never cancelled (natively, in the SDK).
    pub const LOCAL: Run<'static> = Run {
        threads: 1,
        cancelled: &|| false,
    };
}

const CANCELLED: &str = "the call's time limit has passed";

impl Mat {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Mat, String> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(format!(
                "{rows} × {cols} matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            ));
        }
        Ok(Mat { rows, cols, data })
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Runs `f` on every block of `rows` rows, each with its slice of `out`
/// (`width` values per row), `run.threads` blocks at a time, and folds the
/// blocks' results in block order.
fn blocks<T: Send>(
    rows: usize,
    out: &mut [f64],
    width: usize,
    run: &Run,
    f: impl Fn(Range<usize>, &mut [f64]) -> T + Sync,
    mut fold: impl FnMut(T),
) -> Result<(), String> {
    let mut pieces: Vec<(Range<usize>, &mut [f64])> = Vec::new();
    let mut rest = out;
    for start in (0..rows).step_by(BLOCK_ROWS) {
        let end = (start + BLOCK_ROWS).min(rows);
        let take = ((end - start) * width).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(take);
        rest = tail;
        pieces.push((start..end, head));
    }
    let threads = run.threads.max(1);
    let mut pieces = pieces.into_iter();
    loop {
        if (run.cancelled)() {
            return Err(CANCELLED.into());
        }
        let wave: Vec<_> = pieces.by_ref().take(threads).collect();
        if wave.is_empty() {
            return Ok(());
        }
        if wave.len() == 1 {
            for (range, slice) in wave {
                fold(f(range, slice));
            }
            continue;
        }
        let f = &f;
        let results: Vec<T> = std::thread::scope(|s| {
            // The first block on this thread, the others on new ones.
            let mut wave = wave.into_iter();
            let first = wave.next();
            let handles: Vec<_> = wave
                .map(|(range, slice)| s.spawn(move || f(range, slice)))
                .collect();
            let mut results = Vec::with_capacity(handles.len() + 1);
            results.extend(first.map(|(range, slice)| f(range, slice)));
            results.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            results
        });
        for r in results {
            fold(r);
        }
    }
}

/// Whether to stop inside a block: the deadline is checked every 256 rows,
/// so one wide block cannot run far past it (the caller reports the stop:
/// [`blocks`] checks again after every wave).
fn stop(run: &Run, row: usize) -> bool {
    row % 256 == 255 && (run.cancelled)()
}

/// A `rows × width` matrix whose row `i` is written by `f(i, row)`, in
/// blocks on the run's threads (row-wise: results do not depend on them).
fn map_rows(
    rows: usize,
    width: usize,
    run: &Run,
    f: impl Fn(usize, &mut [f64]) + Sync,
) -> Result<Mat, String> {
    let mut out = vec![0.0; rows * width];
    blocks(
        rows,
        &mut out,
        width,
        run,
        |range, slice| {
            for (r, i) in range.enumerate() {
                if stop(run, r) {
                    return;
                }
                f(i, &mut slice[r * width..(r + 1) * width]);
            }
        },
        |()| (),
    )?;
    Mat::new(rows, width, out)
}

/// Adds `part` into `total`, element by element.
fn accumulate(total: &mut [f64], part: &[f64]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
}

/// Numeric columns side by side; a null is refused.
pub fn from_columns(columns: &[&Column]) -> Result<Mat, String> {
    let rows = columns.first().map_or(0, |c| len(&c.values));
    let cols = columns.len();
    let mut data = vec![0.0; rows * cols];
    for (j, c) in columns.iter().enumerate() {
        if len(&c.values) != rows {
            return Err(format!(
                "column `{}` has {} rows, the first column {rows}",
                c.name,
                len(&c.values)
            ));
        }
        if let Some(i) = c
            .nulls
            .as_ref()
            .and_then(|n| n.iter().position(|b| *b != 0))
        {
            return Err(format!(
                "column `{}` has a missing value in row {i}; impute it first",
                c.name
            ));
        }
        let mut put = |i: usize, v: f64| data[i * cols + j] = v;
        match &c.values {
            ColumnValues::F64(v) => v.iter().enumerate().for_each(|(i, x)| put(i, *x)),
            ColumnValues::S64(v) => v.iter().enumerate().for_each(|(i, x)| put(i, *x as f64)),
            ColumnValues::Bool(v) => v
                .iter()
                .enumerate()
                .for_each(|(i, x)| put(i, f64::from(u8::from(*x)))),
            ColumnValues::String(_) => {
                return Err(format!(
                    "column `{}` holds strings; this kernel needs numeric columns (encode it first)",
                    c.name
                ));
            }
        }
    }
    Ok(Mat { rows, cols, data })
}

fn len(values: &ColumnValues) -> usize {
    match values {
        ColumnValues::F64(v) => v.len(),
        ColumnValues::S64(v) => v.len(),
        ColumnValues::Bool(v) => v.len(),
        ColumnValues::String(v) => v.len(),
    }
}

/// The matrix's columns as f64 columns named `names`.
pub fn to_columns(m: &Mat, names: &[String]) -> Result<Vec<Column>, String> {
    if names.len() != m.cols {
        return Err(format!(
            "{} names for a matrix of {} columns",
            names.len(),
            m.cols
        ));
    }
    Ok(names
        .iter()
        .enumerate()
        .map(|(j, name)| Column {
            name: name.clone(),
            values: ColumnValues::F64((0..m.rows).map(|i| m.data[i * m.cols + j]).collect()),
            nulls: None,
        })
        .collect())
}

/// `x · wᵀ + b` (`rows × outputs`).
pub fn linear(
    x: &Mat,
    weights: &[f64],
    outputs: usize,
    bias: &[f64],
    run: &Run,
) -> Result<Mat, String> {
    let d = x.cols;
    if Some(weights.len()) != outputs.checked_mul(d) {
        return Err(format!(
            "{} weights for {outputs} outputs of {d} columns (need {})",
            weights.len(),
            outputs.saturating_mul(d)
        ));
    }
    if !bias.is_empty() && bias.len() != outputs {
        return Err(format!(
            "{} biases for {outputs} outputs (give none or one per output)",
            bias.len()
        ));
    }
    map_rows(x.rows, outputs, run, |i, out| {
        let row = x.row(i);
        for (o, z_out) in out.iter_mut().enumerate() {
            let mut z = 0.0;
            for (a, b) in weights[o * d..(o + 1) * d].iter().zip(row) {
                z += a * b;
            }
            *z_out = bias.get(o).map_or(z, |b| b + z);
        }
    })
}

/// `aᵀ · b` (`a.cols × b.cols`, row-major), summed over rows in blocks.
pub fn t_mul(a: &Mat, b: &Mat, run: &Run) -> Result<Vec<f64>, String> {
    if a.rows != b.rows {
        return Err(format!(
            "aᵀ·b needs equal rows: {} × {} and {} × {}",
            a.rows, a.cols, b.rows, b.cols
        ));
    }
    let (p, q) = (a.cols, b.cols);
    let mut total = vec![0.0; p * q];
    blocks(
        a.rows,
        &mut [],
        0,
        run,
        |range, _| {
            let mut part = vec![0.0; p * q];
            for (r, i) in range.enumerate() {
                if stop(run, r) {
                    break;
                }
                let (ra, rb) = (a.row(i), b.row(i));
                for (k, av) in ra.iter().enumerate() {
                    let target = &mut part[k * q..(k + 1) * q];
                    for (t, bv) in target.iter_mut().zip(rb) {
                        *t += av * bv;
                    }
                }
            }
            part
        },
        |part| accumulate(&mut total, &part),
    )?;
    Ok(total)
}

/// Each column's sum over the rows, in blocks.
pub fn column_sums(a: &Mat, run: &Run) -> Result<Vec<f64>, String> {
    let mut total = vec![0.0; a.cols];
    blocks(
        a.rows,
        &mut [],
        0,
        run,
        |range, _| {
            let mut part = vec![0.0; a.cols];
            for (r, i) in range.enumerate() {
                if stop(run, r) {
                    break;
                }
                accumulate(&mut part, a.row(i));
            }
            part
        },
        |part| accumulate(&mut total, &part),
    )?;
    Ok(total)
}

/// The class index in `labels` at row `i`, checked against `classes`.
fn label(labels: &Mat, i: usize, classes: usize) -> Result<usize, String> {
    let v = labels.data[i];
    if v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes {
        Ok(v as usize)
    } else {
        Err(format!(
            "label {v} at row {i} is not a class index below {classes}"
        ))
    }
}

/// Softmax cross-entropy of logits `z` against class indices: the summed
/// loss and the residual `softmax − onehot`. One column: logits `[0, z]`.
pub fn softmax_cross_entropy(z: &Mat, labels: &Mat, run: &Run) -> Result<(f64, Mat), String> {
    if labels.rows != z.rows || labels.cols != 1 {
        return Err(format!(
            "labels must be {} × 1 (one class index per row), got {} × {}",
            z.rows, labels.rows, labels.cols
        ));
    }
    if z.cols == 0 {
        return Err("logits need at least one column".into());
    }
    let k = z.cols;
    let classes = if k == 1 { 2 } else { k };
    let mut residual = vec![0.0; z.rows * k];
    let mut loss = 0.0;
    let mut bad = None;
    blocks(
        z.rows,
        &mut residual,
        k,
        run,
        |range, slice| -> Result<f64, String> {
            let mut part = 0.0;
            let mut logits = vec![0.0; classes];
            let mut exp = vec![0.0; classes];
            for (r, i) in range.enumerate() {
                if stop(run, r) {
                    break;
                }
                let y = label(labels, i, classes)?;
                let row = z.row(i);
                if k == 1 {
                    logits[0] = 0.0;
                    logits[1] = row[0];
                } else {
                    logits.copy_from_slice(row);
                }
                // One exp per class: softmax = e / Σe, lse = max + ln Σe.
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for (e, v) in exp.iter_mut().zip(&logits) {
                    *e = (v - max).exp();
                    sum += *e;
                }
                part += max + sum.ln() - logits[y];
                let out = &mut slice[r * k..(r + 1) * k];
                if k == 1 {
                    out[0] = exp[1] / sum - f64::from(u8::from(y == 1));
                } else {
                    for (c, o) in out.iter_mut().enumerate() {
                        *o = exp[c] / sum - f64::from(u8::from(y == c));
                    }
                }
            }
            Ok(part)
        },
        |part| match part {
            Ok(p) => loss += p,
            Err(e) => {
                bad.get_or_insert(e);
            }
        },
    )?;
    if let Some(e) = bad {
        return Err(e);
    }
    Ok((loss, Mat::new(z.rows, k, residual)?))
}

/// Each row's softmax; one column `z` gives `[1 − σ(z), σ(z)]`.
pub fn softmax(z: &Mat, run: &Run) -> Result<Mat, String> {
    let k = if z.cols == 1 { 2 } else { z.cols };
    map_rows(z.rows, k, run, |i, out| {
        let row = z.row(i);
        if z.cols == 1 {
            out[0] = 0.0;
            out[1] = row[0];
        } else {
            out.copy_from_slice(row);
        }
        let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for o in out.iter_mut() {
            *o = (*o - max).exp();
        }
        let sum: f64 = out.iter().sum();
        for o in out.iter_mut() {
            *o /= sum;
        }
    })
}

/// Squared Euclidean distance of every row of `x` to every row of
/// `centers`.
pub fn squared_distances(x: &Mat, centers: &Mat, run: &Run) -> Result<Mat, String> {
    if x.cols != centers.cols {
        return Err(format!(
            "rows of {} columns against centers of {}",
            x.cols, centers.cols
        ));
    }
    map_rows(x.rows, centers.rows, run, |i, out| {
        let row = x.row(i);
        for (c, d) in out.iter_mut().enumerate() {
            let mut s = 0.0;
            for (a, b) in row.iter().zip(centers.row(c)) {
                s += (a - b) * (a - b);
            }
            *d = s;
        }
    })
}

/// Each row's smallest entry's index (the first of equals) and the entry;
/// NaN never wins, and a row with nothing below +inf gives 0 and +inf.
pub fn argmin_rows(a: &Mat) -> Result<(Vec<u32>, Vec<f64>), String> {
    if a.cols == 0 {
        return Err("argmin of rows with no entries".into());
    }
    let mut index = Vec::with_capacity(a.rows);
    let mut value = Vec::with_capacity(a.rows);
    for i in 0..a.rows {
        let (mut best, mut least) = (0, f64::INFINITY);
        for (c, v) in a.row(i).iter().enumerate() {
            if *v < least {
                best = c;
                least = *v;
            }
        }
        index.push(best as u32);
        value.push(least);
    }
    Ok((index, value))
}

/// Per group, the sum of its rows (row order) and their count.
pub fn group_sums(a: &Mat, group: &[u32], groups: usize) -> Result<(Vec<f64>, Vec<u64>), String> {
    if group.len() != a.rows {
        return Err(format!("{} group indices for {} rows", group.len(), a.rows));
    }
    let mut sums = vec![0.0; groups * a.cols];
    let mut counts = vec![0u64; groups];
    for (i, g) in group.iter().enumerate() {
        let g = *g as usize;
        if g >= groups {
            return Err(format!("group {g} at row {i} is not below {groups}"));
        }
        accumulate(&mut sums[g * a.cols..(g + 1) * a.cols], a.row(i));
        counts[g] += 1;
    }
    Ok((sums, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(rows: usize, cols: usize, seed: u64) -> Mat {
        let mut s = seed;
        let data = (0..rows * cols)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
            })
            .collect();
        Mat { rows, cols, data }
    }

    #[test]
    fn results_do_not_depend_on_threads() {
        let x = mat(BLOCK_ROWS * 3 + 17, 5, 1);
        let r = mat(x.rows, 3, 2);
        let four = Run {
            threads: 4,
            cancelled: &|| false,
        };
        let labels = Mat::new(x.rows, 1, (0..x.rows).map(|i| (i % 3) as f64).collect()).unwrap();
        assert_eq!(t_mul(&r, &x, &Run::LOCAL), t_mul(&r, &x, &four));
        assert_eq!(column_sums(&x, &Run::LOCAL), column_sums(&x, &four));
        let w: Vec<f64> = (0..15).map(|v| v as f64 * 0.1).collect();
        let z1 = linear(&x, &w, 3, &[1.0, 2.0, 3.0], &Run::LOCAL).unwrap();
        assert_eq!(Ok(z1.clone()), linear(&x, &w, 3, &[1.0, 2.0, 3.0], &four));
        assert_eq!(
            softmax_cross_entropy(&z1, &labels, &Run::LOCAL),
            softmax_cross_entropy(&z1, &labels, &four)
        );
    }

    #[test]
    fn small_inputs_sum_in_row_order() {
        let x = mat(100, 2, 3);
        let sums = column_sums(&x, &Run::LOCAL).unwrap();
        let mut plain = [0.0; 2];
        for i in 0..100 {
            plain[0] += x.row(i)[0];
            plain[1] += x.row(i)[1];
        }
        assert_eq!(sums, plain);
    }

    #[test]
    fn cross_entropy_matches_its_definition() {
        // binomial: logits [0, z]
        let z = Mat::new(2, 1, vec![0.0, 2.0]).unwrap();
        let y = Mat::new(2, 1, vec![1.0, 0.0]).unwrap();
        let (loss, r) = softmax_cross_entropy(&z, &y, &Run::LOCAL).unwrap();
        let sigma = 1.0 / (1.0 + (-2.0f64).exp());
        let expected = 2f64.ln() + (1.0 + 2f64.exp()).ln();
        assert!((loss - expected).abs() < 1e-12);
        assert!((r.data[0] + 0.5).abs() < 1e-12);
        assert!((r.data[1] - sigma).abs() < 1e-12);
        // a label that is not a class index is refused
        let bad = Mat::new(2, 1, vec![2.0, 0.0]).unwrap();
        assert!(softmax_cross_entropy(&z, &bad, &Run::LOCAL).is_err());
        let p = softmax(&z, &Run::LOCAL).unwrap();
        assert_eq!((p.rows, p.cols), (2, 2));
        assert!((p.data[3] - sigma).abs() < 1e-12);
    }

    #[test]
    fn distances_argmin_and_groups() {
        let x = Mat::new(3, 2, vec![0.0, 0.0, 1.0, 1.0, 10.0, 10.0]).unwrap();
        let c = Mat::new(2, 2, vec![0.0, 0.0, 10.0, 10.0]).unwrap();
        let d = squared_distances(&x, &c, &Run::LOCAL).unwrap();
        assert_eq!(d.data, [0.0, 200.0, 2.0, 162.0, 200.0, 0.0]);
        let (idx, min) = argmin_rows(&d).unwrap();
        assert_eq!(idx, [0, 0, 1]);
        assert_eq!(min, [0.0, 2.0, 0.0]);
        let (sums, counts) = group_sums(&x, &idx, 2).unwrap();
        assert_eq!(sums, [1.0, 1.0, 10.0, 10.0]);
        assert_eq!(counts, [2, 1]);
        assert!(group_sums(&x, &[0, 0, 2], 2).is_err());
        let odd = Mat::new(2, 2, vec![f64::NAN, 3.0, f64::NAN, f64::NAN]).unwrap();
        assert_eq!(
            argmin_rows(&odd).unwrap(),
            (vec![1, 0], vec![3.0, f64::INFINITY])
        );
    }

    #[test]
    fn a_deadline_inside_one_block_stops_it() {
        // One block (fewer rows than BLOCK_ROWS), cancelled on the third
        // check: every operation reports the stop instead of a result.
        let x = mat(5_000, 3, 7);
        let labels = Mat::new(5_000, 1, vec![0.0; 5_000]).unwrap();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let later = || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2;
        let run = || {
            calls.store(0, std::sync::atomic::Ordering::Relaxed);
            Run {
                threads: 1,
                cancelled: &later,
            }
        };
        assert!(linear(&x, &[1.0; 6], 2, &[], &run()).is_err());
        assert!(t_mul(&x, &x, &run()).is_err());
        assert!(column_sums(&x, &run()).is_err());
        assert!(softmax(&x, &run()).is_err());
        assert!(squared_distances(&x, &x, &run()).is_err());
        let z = Mat::new(5_000, 2, vec![0.5; 10_000]).unwrap();
        assert!(softmax_cross_entropy(&z, &labels, &run()).is_err());
    }

    #[test]
    fn cancelled_runs_stop() {
        let x = mat(10, 2, 4);
        let stop = Run {
            threads: 1,
            cancelled: &|| true,
        };
        assert!(column_sums(&x, &stop).is_err());
    }
}
