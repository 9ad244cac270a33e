//! Quality metrics computed by the host from predictions and the truth.

use crate::bindings::Column;
use crate::data::cell_text;

/// Share of rows whose predicted label equals the true label, over rows
/// where the truth is known. Labels compare as text, so an s64 prediction
/// matches an s64 truth and a string matches a string.
pub fn accuracy(predicted: &Column, truth: &Column) -> Option<f64> {
    let rows = crate::data::column_len(truth).min(crate::data::column_len(predicted));
    let (mut known, mut right) = (0usize, 0usize);
    for row in 0..rows {
        if let Some(t) = cell_text(truth, row) {
            known += 1;
            right += usize::from(cell_text(predicted, row).as_deref() == Some(t.as_str()));
        }
    }
    (known > 0).then(|| right as f64 / known as f64)
}

/// Coefficient of determination, over rows where both values are known.
pub fn r2(predicted: &Column, truth: &Column) -> Option<f64> {
    let rows = crate::data::column_len(truth).min(crate::data::column_len(predicted));
    let pairs: Vec<(f64, f64)> = (0..rows)
        .filter_map(|r| {
            let t = cell_text(truth, r)?.parse::<f64>().ok()?;
            let p = cell_text(predicted, r)?.parse::<f64>().ok()?;
            Some((p, t))
        })
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let mean = pairs.iter().map(|(_, t)| t).sum::<f64>() / pairs.len() as f64;
    let ss_tot: f64 = pairs.iter().map(|(_, t)| (t - mean).powi(2)).sum();
    let ss_res: f64 = pairs.iter().map(|(p, t)| (t - p).powi(2)).sum();
    (ss_tot > 0.0).then(|| 1.0 - ss_res / ss_tot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::ColumnValues;

    fn col(values: ColumnValues) -> Column {
        Column {
            name: "c".into(),
            values,
            nulls: None,
        }
    }

    #[test]
    fn accuracy_and_r2() {
        let t = col(ColumnValues::String(vec![
            "a".into(),
            "b".into(),
            "a".into(),
            "b".into(),
        ]));
        let p = col(ColumnValues::String(vec![
            "a".into(),
            "b".into(),
            "b".into(),
            "b".into(),
        ]));
        assert_eq!(accuracy(&p, &t), Some(0.75));
        let t = col(ColumnValues::F64(vec![1.0, 2.0, 3.0]));
        assert_eq!(r2(&t, &t), Some(1.0));
        let p = col(ColumnValues::F64(vec![2.0, 2.0, 2.0]));
        assert_eq!(r2(&p, &t), Some(0.0));
    }
}
