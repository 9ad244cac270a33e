//! Class labels for classifiers: whatever the target column's type, a
//! classifier works with labels as text and gives predictions back in the
//! target's own type.

use crate::{Column, ColumnValues, KernelError};
use serde::{Deserialize, Serialize};

/// The type of a classifier's target column.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum LabelType {
    Text,
    Integer,
    Float,
    Flag,
}

impl LabelType {
    /// The label type of a target column.
    pub fn of(target: &Column) -> LabelType {
        match target.values {
            ColumnValues::String(_) => LabelType::Text,
            ColumnValues::S64(_) => LabelType::Integer,
            ColumnValues::F64(_) => LabelType::Float,
            ColumnValues::Bool(_) => LabelType::Flag,
        }
    }

    /// The classes of a classifier's target (ordered like scikit-learn's
    /// `classes_`), its label type, and each row's class index. Refuses a
    /// missing label, or fewer than two classes.
    pub fn encode(y: &Column) -> Result<(Vec<String>, LabelType, Vec<usize>), KernelError> {
        let labels: Vec<String> = (0..y.len())
            .map(|row| {
                y.label(row).ok_or_else(|| {
                    KernelError::invalid_input(format!(
                        "target `{}` is missing in row {row}",
                        y.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let kind = LabelType::of(y);
        let mut classes = labels.clone();
        kind.sort(&mut classes);
        classes.dedup();
        if classes.len() < 2 {
            return Err(KernelError::invalid_input(format!(
                "target `{}` has {} class(es); a classifier needs at least 2",
                y.name,
                classes.len()
            )));
        }
        let index: std::collections::HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let targets = labels
            .iter()
            .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
            .collect();
        Ok((classes, kind, targets))
    }

    /// Orders labels as scikit-learn orders `classes_`: numerically for
    /// numeric targets, as text otherwise.
    pub fn sort(self, labels: &mut [String]) {
        match self {
            LabelType::Integer | LabelType::Float => labels.sort_by(|a, b| {
                let v = |s: &String| s.parse::<f64>().unwrap_or(f64::NAN);
                v(a).total_cmp(&v(b))
            }),
            LabelType::Text | LabelType::Flag => labels.sort(),
        }
    }

    /// A column called `name` holding `labels` in this type.
    pub fn column(self, name: impl Into<String>, labels: &[&str]) -> Column {
        match self {
            LabelType::Text => Column::string(name, labels.iter().map(|l| l.to_string()).collect()),
            LabelType::Integer => Column::s64(
                name,
                labels
                    .iter()
                    .map(|l| l.parse().unwrap_or_default())
                    .collect(),
            ),
            LabelType::Float => Column::f64(
                name,
                labels
                    .iter()
                    .map(|l| l.parse().unwrap_or_default())
                    .collect(),
            ),
            LabelType::Flag => Column::bool(name, labels.iter().map(|l| *l == "true").collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_labels_sort_as_numbers_and_keep_their_type() {
        let mut labels = vec!["10".to_string(), "2".to_string(), "-1".to_string()];
        LabelType::Integer.sort(&mut labels);
        assert_eq!(labels, ["-1", "2", "10"]);
        let column = LabelType::Integer.column("y", &["2", "10"]);
        assert_eq!(column.values, ColumnValues::S64(vec![2, 10]));
    }
}
