//! Quality metrics of one held-out fold, computed by the host from the
//! predictions, the truth and (for clusterers) the features.

use crate::bindings::{Column, ColumnValues, Frame, KernelKind};
use crate::data::cell_text;
use std::collections::BTreeMap;

/// Every metric the host computes.
pub const NAMES: &[&str] = &[
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "log_loss",
    "r2",
    "rmse",
    "mae",
    "silhouette",
    "inertia",
];

/// `name` as the host's own metric name, if it is one.
pub fn known(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

/// The metric a kind is judged by unless `--metric` says otherwise.
pub fn primary(kind: KernelKind) -> Option<&'static str> {
    match kind {
        KernelKind::Classifier => Some("accuracy"),
        KernelKind::Regressor => Some("r2"),
        KernelKind::Clusterer => Some("silhouette"),
        KernelKind::Transformer => None,
    }
}

/// Whether a larger value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "log_loss" | "rmse" | "mae" | "inertia")
}

/// Every metric of `kind` that the fold allows.
pub fn score(
    kind: KernelKind,
    predicted: &Column,
    truth: Option<&Column>,
    probabilities: Option<&Frame>,
    features: &Frame,
) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    match (kind, truth) {
        (KernelKind::Classifier, Some(truth)) => {
            classification(&mut out, predicted, truth, probabilities)
        }
        (KernelKind::Regressor, Some(truth)) => regression(&mut out, predicted, truth),
        (KernelKind::Clusterer, _) => clustering(&mut out, predicted, features),
        _ => {}
    }
    out
}

fn classification(
    out: &mut BTreeMap<&'static str, f64>,
    predicted: &Column,
    truth: &Column,
    probabilities: Option<&Frame>,
) {
    let rows: Vec<(String, Option<String>)> = (0..crate::data::column_len(truth))
        .filter_map(|r| cell_text(truth, r).map(|t| (t, cell_text(predicted, r))))
        .collect();
    if rows.is_empty() {
        return;
    }
    let n = rows.len() as f64;
    let right = rows.iter().filter(|(t, p)| p.as_deref() == Some(t)).count();
    out.insert("accuracy", right as f64 / n);
    let mut classes: Vec<&str> = rows
        .iter()
        .flat_map(|(t, p)| std::iter::once(t.as_str()).chain(p.as_deref()))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let (mut recall_sum, mut recalled, mut f1_sum) = (0.0, 0, 0.0);
    for class in &classes {
        let tp = rows
            .iter()
            .filter(|(t, p)| t == class && p.as_deref() == Some(class))
            .count() as f64;
        let actual = rows.iter().filter(|(t, _)| t == class).count() as f64;
        let guessed = rows
            .iter()
            .filter(|(_, p)| p.as_deref() == Some(class))
            .count() as f64;
        if actual > 0.0 {
            recall_sum += tp / actual;
            recalled += 1;
        }
        // scikit-learn's F1 with zero_division=0.
        if actual + guessed > 0.0 {
            f1_sum += 2.0 * tp / (actual + guessed);
        }
    }
    out.insert("balanced_accuracy", recall_sum / f64::from(recalled.max(1)));
    out.insert("macro_f1", f1_sum / classes.len() as f64);
    if let Some(proba) = probabilities {
        let truth_rows: Vec<Option<String>> = (0..crate::data::column_len(truth))
            .map(|r| cell_text(truth, r))
            .collect();
        let mut loss = 0.0;
        let mut counted = 0usize;
        for (r, t) in truth_rows.iter().enumerate() {
            let Some(t) = t else { continue };
            let p = proba
                .columns
                .iter()
                .find(|c| c.name == *t)
                .and_then(|c| match &c.values {
                    ColumnValues::F64(v) => v.get(r).copied(),
                    _ => None,
                })
                .unwrap_or(0.0);
            // scikit-learn clips at machine epsilon.
            loss -= p.clamp(f64::EPSILON, 1.0 - f64::EPSILON).ln();
            counted += 1;
        }
        if counted > 0 {
            out.insert("log_loss", loss / counted as f64);
        }
    }
}

fn regression(out: &mut BTreeMap<&'static str, f64>, predicted: &Column, truth: &Column) {
    let pairs: Vec<(f64, f64)> = (0..crate::data::column_len(truth))
        .filter_map(|r| {
            let t = cell_text(truth, r)?.parse::<f64>().ok()?;
            let p = cell_text(predicted, r)?.parse::<f64>().ok()?;
            Some((t, p))
        })
        .collect();
    if pairs.len() < 2 {
        return;
    }
    let n = pairs.len() as f64;
    let mean = pairs.iter().map(|(t, _)| t).sum::<f64>() / n;
    let total: f64 = pairs.iter().map(|(t, _)| (t - mean) * (t - mean)).sum();
    let residual: f64 = pairs.iter().map(|(t, p)| (t - p) * (t - p)).sum();
    if total > 0.0 {
        out.insert("r2", 1.0 - residual / total);
    }
    out.insert("rmse", (residual / n).sqrt());
    out.insert(
        "mae",
        pairs.iter().map(|(t, p)| (t - p).abs()).sum::<f64>() / n,
    );
}

/// Rows whose numeric features are all present, as points.
fn points(features: &Frame) -> Vec<(usize, Vec<f64>)> {
    let numeric: Vec<&Column> = features
        .columns
        .iter()
        .filter(|c| matches!(c.values, ColumnValues::F64(_) | ColumnValues::S64(_)))
        .collect();
    (0..features.rows as usize)
        .filter_map(|r| {
            let p: Option<Vec<f64>> = numeric
                .iter()
                .map(|c| {
                    cell_text(c, r)?
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                })
                .collect();
            p.map(|p| (r, p))
        })
        .collect()
}

/// Silhouette is quadratic: at most this many rows (the first ones).
const SILHOUETTE_ROWS: usize = 2000;

fn clustering(out: &mut BTreeMap<&'static str, f64>, predicted: &Column, features: &Frame) {
    let labelled: Vec<(String, Vec<f64>)> = points(features)
        .into_iter()
        .filter_map(|(r, p)| cell_text(predicted, r).map(|l| (l, p)))
        .collect();
    if labelled.is_empty() {
        return;
    }
    let dim = labelled[0].1.len();
    let mut means: BTreeMap<&str, (Vec<f64>, f64)> = BTreeMap::new();
    for (l, p) in &labelled {
        let e = means
            .entry(l.as_str())
            .or_insert_with(|| (vec![0.0; dim], 0.0));
        e.0.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        e.1 += 1.0;
    }
    let inertia: f64 = labelled
        .iter()
        .map(|(l, p)| {
            let (sum, n) = &means[l.as_str()];
            p.iter()
                .zip(sum)
                .map(|(v, s)| (v - s / n).powi(2))
                .sum::<f64>()
        })
        .sum();
    out.insert("inertia", inertia);
    let sample = &labelled[..labelled.len().min(SILHOUETTE_ROWS)];
    if means.len() < 2 || sample.len() < 3 {
        return;
    }
    let dist = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut total = 0.0;
    for (i, (li, pi)) in sample.iter().enumerate() {
        let mut per: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (j, (lj, pj)) in sample.iter().enumerate() {
            if i != j {
                let e = per.entry(lj.as_str()).or_default();
                e.0 += dist(pi, pj);
                e.1 += 1;
            }
        }
        let a = per
            .get(li.as_str())
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| s / *n as f64);
        let b = per
            .iter()
            .filter(|(l, (_, n))| **l != li.as_str() && *n > 0)
            .map(|(_, (s, n))| s / *n as f64)
            .fold(f64::INFINITY, f64::min);
        // A point alone in its cluster scores 0 (scikit-learn's convention).
        if let Some(a) = a
            && b.is_finite()
        {
            total += (b - a) / a.max(b).max(f64::MIN_POSITIVE);
        }
    }
    out.insert("silhouette", total / sample.len() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, v: &[&str]) -> Column {
        Column {
            name: name.into(),
            values: ColumnValues::String(v.iter().map(|s| s.to_string()).collect()),
            nulls: None,
        }
    }

    #[test]
    fn classification_matches_scikit_learn() {
        // sklearn: accuracy 0.6, balanced 0.5833.., macro F1 0.5555..
        let truth = text("y", &["a", "a", "a", "b", "c"]);
        let pred = text("p", &["a", "a", "b", "b", "a"]);
        let s = score(
            KernelKind::Classifier,
            &pred,
            Some(&truth),
            None,
            &Frame {
                rows: 5,
                columns: vec![],
            },
        );
        assert!((s["accuracy"] - 0.6).abs() < 1e-12);
        assert!((s["balanced_accuracy"] - (2.0 / 3.0 + 1.0 + 0.0) / 3.0).abs() < 1e-12);
        // F1: a = 2·2/(3+3) = 0.667, b = 2·1/(1+2) = 0.667, c = 0.
        assert!((s["macro_f1"] - (2.0 / 3.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn regression_metrics() {
        let f = |v: &[f64]| Column {
            name: "v".into(),
            values: ColumnValues::F64(v.to_vec()),
            nulls: None,
        };
        let s = score(
            KernelKind::Regressor,
            &f(&[1.0, 2.0, 4.0]),
            Some(&f(&[1.0, 3.0, 5.0])),
            None,
            &Frame {
                rows: 3,
                columns: vec![],
            },
        );
        assert!((s["mae"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((s["rmse"] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // Truth mean 3: total 8, residual 2.
        assert!((s["r2"] - 0.75).abs() < 1e-12);
    }
}
