//! Simple imputer: fills missing values with a per-column statistic learned
//! in `fit`, like scikit-learn's `SimpleImputer`.
//!
//! - Numeric columns (f64, s64) use `strategy`: `mean`, `median`, `most_frequent`
//!   (ties go to the smallest value, as in scikit-learn) or `constant`
//!   (`fill_value`). They come out as f64 columns without nulls.
//! - String and bool columns use `string_strategy`: `most_frequent` (ties go
//!   to the lexicographically smallest) or `constant` (`string_fill_value`).
//! - A column with no value at all cannot be imputed from data: `fit`
//!   refuses it and names it, unless its strategy is `constant`.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

kernel_sdk::params! {
    /// Parameters of [`SimpleImputer`].
    pub struct ImputerParams {
        /// Statistic used for numeric columns.
        strategy: String = "mean", one_of["mean", "median", "most_frequent", "constant"];
        /// Fill value of numeric columns when `strategy` is `constant`.
        fill_value: f64 = 0.0;
        /// Statistic used for string and bool columns.
        string_strategy: String = "most_frequent", one_of["most_frequent", "constant"];
        /// Fill value of string columns when `string_strategy` is `constant`.
        string_fill_value: String = "missing";
    }
}

/// What a column's gaps are filled with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Fill {
    Number(f64),
    Text(String),
    Flag(bool),
}

#[derive(Serialize, Deserialize)]
pub struct SimpleImputer {
    params: ImputerParams,
    fills: Vec<(String, Fill)>,
}

impl SimpleImputer {
    /// The learned fill value of each column, in input order.
    pub fn fills(&self) -> &[(String, Fill)] {
        &self.fills
    }

    fn numeric_fill(&self, name: &str, values: &NumericColumn) -> Result<f64, KernelError> {
        if self.params.strategy == "constant" {
            return Ok(self.params.fill_value);
        }
        let mut present: Vec<f64> = values.present().collect();
        if present.is_empty() {
            return Err(KernelError::invalid_input(format!(
                "column `{name}` has no values to learn a {} from; drop it or use strategy \"constant\"",
                self.params.strategy
            )));
        }
        Ok(match self.params.strategy.as_str() {
            "median" => {
                present.sort_by(f64::total_cmp);
                let n = present.len();
                if n % 2 == 1 {
                    present[n / 2]
                } else {
                    (present[n / 2 - 1] + present[n / 2]) / 2.0
                }
            }
            "most_frequent" => {
                present.sort_by(f64::total_cmp);
                // Runs of equal values in sorted order; the first longest run
                // is the smallest of the most frequent values.
                let mut best = (present[0], 0usize);
                let mut i = 0;
                while i < present.len() {
                    let run = present[i..]
                        .iter()
                        .take_while(|v| **v == present[i])
                        .count();
                    if run > best.1 {
                        best = (present[i], run);
                    }
                    i += run;
                }
                best.0
            }
            _ => present.iter().sum::<f64>() / present.len() as f64,
        })
    }

    fn categorical_fill(&self, column: &Column) -> Result<Fill, KernelError> {
        let constant = self.params.string_strategy == "constant";
        match &column.values {
            ColumnValues::String(_) if constant => {
                Ok(Fill::Text(self.params.string_fill_value.clone()))
            }
            ColumnValues::String(_) | ColumnValues::Bool(_) => {
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for row in 0..column.len() {
                    if let Some(label) = column.label(row) {
                        *counts.entry(label).or_default() += 1;
                    }
                }
                // BTreeMap iterates in order, so max_by_key's last-wins rule
                // needs reversing to prefer the smallest of equal counts.
                let best = counts
                    .into_iter()
                    .rev()
                    .max_by_key(|(_, n)| *n)
                    .map(|(label, _)| label)
                    .ok_or_else(|| {
                        KernelError::invalid_input(format!(
                            "column `{}` has no values to learn the most frequent from",
                            column.name
                        ))
                    })?;
                Ok(match column.values {
                    ColumnValues::Bool(_) => Fill::Flag(best == "true"),
                    _ => Fill::Text(best),
                })
            }
            _ => Err(KernelError::failed("numeric column passed as categorical")),
        }
    }
}

impl Kernel for SimpleImputer {
    type Params = ImputerParams;

    fn meta() -> Meta {
        Meta::new(
            "simple-imputer",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Transformer,
        )
        .description("fills missing values with a per-column mean, median, mode or constant")
    }

    fn new(params: ImputerParams) -> Self {
        SimpleImputer {
            params,
            fills: Vec::new(),
        }
    }

    fn fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        let mut fills = Vec::with_capacity(x.columns.len());
        for column in &x.columns {
            let fill = match (&column.values, column.numeric()) {
                (ColumnValues::F64(_) | ColumnValues::S64(_), Some(values)) => {
                    Fill::Number(self.numeric_fill(&column.name, &values)?)
                }
                _ => self.categorical_fill(column)?,
            };
            fills.push((column.name.clone(), fill));
        }
        self.fills = fills;
        Ok(())
    }

    fn transform(&self, mut x: Frame) -> Result<Frame, KernelError> {
        for column in &mut x.columns {
            let Some((_, fill)) = self.fills.iter().find(|(name, _)| *name == column.name) else {
                continue;
            };
            let nulls = column.nulls.take();
            let is_null = |row: usize| nulls.as_ref().is_some_and(|n| n[row] != 0);
            let values = std::mem::replace(&mut column.values, ColumnValues::F64(Vec::new()));
            column.values = match (values, fill) {
                (ColumnValues::F64(mut v), Fill::Number(f)) => {
                    for (row, value) in v.iter_mut().enumerate() {
                        if is_null(row) || value.is_nan() {
                            *value = *f;
                        }
                    }
                    ColumnValues::F64(v)
                }
                (ColumnValues::S64(v), Fill::Number(f)) => ColumnValues::F64(
                    v.iter()
                        .enumerate()
                        .map(|(row, value)| if is_null(row) { *f } else { *value as f64 })
                        .collect(),
                ),
                (ColumnValues::String(mut v), Fill::Text(f)) => {
                    for (row, value) in v.iter_mut().enumerate() {
                        if is_null(row) {
                            value.clone_from(f);
                        }
                    }
                    ColumnValues::String(v)
                }
                (ColumnValues::Bool(mut v), Fill::Flag(f)) => {
                    for (row, value) in v.iter_mut().enumerate() {
                        if is_null(row) {
                            *value = *f;
                        }
                    }
                    ColumnValues::Bool(v)
                }
                (_, _) => {
                    return Err(KernelError::invalid_input(format!(
                        "column `{}` changed type since fit",
                        column.name
                    )));
                }
            };
        }
        Ok(x)
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let entries = self
            .fills
            .iter()
            .map(|(name, fill)| ExplainEntry {
                name: name.clone(),
                value: match fill {
                    Fill::Number(v) => ExplainValue::Scalar(*v),
                    Fill::Text(v) => ExplainValue::Text(v.clone()),
                    Fill::Flag(v) => ExplainValue::Text(v.to_string()),
                },
            })
            .collect();
        Ok(Explanation {
            summary: format!(
                "fills gaps: numeric columns with the {}, string columns with the {}",
                self.params.strategy.replace('_', " "),
                self.params.string_strategy.replace('_', " ")
            ),
            entries,
        })
    }
}

kernel_sdk::export_kernel!(SimpleImputer);

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_sdk::testing::Local;

    fn frame() -> Frame {
        Frame::new(vec![
            Column::f64("a", vec![1.0, 0.0, 3.0, 10.0]).with_nulls(vec![0, 1, 0, 0]),
            Column::string("s", vec!["b".into(), "a".into(), String::new(), "b".into()])
                .with_nulls(vec![0, 0, 1, 0]),
        ])
        .unwrap()
    }

    fn fill_of(params: &[(&str, ParamValue)]) -> Vec<(String, Fill)> {
        let mut k = Local::<SimpleImputer>::with_params(params).unwrap();
        k.fit(&frame(), None).unwrap();
        k.kernel().fills().to_vec()
    }

    #[test]
    fn strategies() {
        assert_eq!(fill_of(&[])[0].1, Fill::Number(14.0 / 3.0));
        assert_eq!(
            fill_of(&[("strategy", "median".into())])[0].1,
            Fill::Number(3.0)
        );
        assert_eq!(
            fill_of(&[("strategy", "most_frequent".into())])[0].1,
            Fill::Number(1.0)
        );
        assert_eq!(fill_of(&[])[1].1, Fill::Text("b".into()));
    }

    #[test]
    fn transform_fills_and_clears_nulls() {
        let mut k = Local::<SimpleImputer>::new();
        k.fit(&frame(), None).unwrap();
        let out = k.transform(frame()).unwrap();
        assert_eq!(
            out.columns[0].values,
            ColumnValues::F64(vec![1.0, 14.0 / 3.0, 3.0, 10.0])
        );
        assert_eq!(out.columns[0].nulls, None);
        assert_eq!(
            out.columns[1].values,
            ColumnValues::String(vec!["b".into(), "a".into(), "b".into(), "b".into()])
        );
    }

    #[test]
    fn all_null_column_is_refused_by_name() {
        let f = Frame::new(vec![
            Column::f64("empty", vec![0.0, 0.0]).with_nulls(vec![1, 1]),
        ])
        .unwrap();
        let err = Local::<SimpleImputer>::new().fit(&f, None).unwrap_err();
        assert!(err.message().contains("`empty`"), "{err:?}");
    }

    #[test]
    fn bad_strategy_is_refused() {
        let err = Local::<SimpleImputer>::with_params(&[("strategy", "mode".into())])
            .err()
            .unwrap();
        assert!(matches!(err, KernelError::InvalidParams(_)), "{err:?}");
    }
}
