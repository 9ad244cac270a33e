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
        Self::encode_rows(&y.name, LabelType::of(y), y.len(), |row| y.label_str(row))
    }

    /// [`LabelType::encode`] of a target by reference: a string target is
    /// read as [`crate::Text`] (no allocation per row), others as values.
    pub fn encode_ref(
        y: &crate::HostColumn,
    ) -> Result<(Vec<String>, LabelType, Vec<usize>), KernelError> {
        if y.kind() != crate::ColumnType::String {
            return Self::encode(&y.read()?);
        }
        let text = y.read_text(0, y.len())?;
        Self::encode_rows(&y.name(), LabelType::Text, text.len(), |row| {
            text.get(row).map(std::borrow::Cow::Borrowed)
        })
    }

    fn encode_rows<'a>(
        name: &str,
        kind: LabelType,
        rows: usize,
        label: impl Fn(usize) -> Option<std::borrow::Cow<'a, str>>,
    ) -> Result<(Vec<String>, LabelType, Vec<usize>), KernelError> {
        // Distinct labels in order of first occurrence, and each row's
        // position among them: one pass, no copy of every label.
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut first: Vec<String> = Vec::new();
        let mut ids = Vec::with_capacity(rows);
        for row in 0..rows {
            let label = label(row).ok_or_else(|| {
                KernelError::invalid_input(format!("target `{name}` is missing in row {row}"))
            })?;
            let id = match seen.get(label.as_ref()) {
                Some(id) => *id,
                None => {
                    first.push(label.clone().into_owned());
                    seen.insert(label.into_owned(), first.len() - 1);
                    first.len() - 1
                }
            };
            ids.push(id);
        }
        let mut classes = first.clone();
        kind.sort(&mut classes);
        if classes.len() < 2 {
            return Err(KernelError::invalid_input(format!(
                "target `{name}` has {} class(es); a classifier needs at least 2",
                classes.len()
            )));
        }
        let index: std::collections::HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let class_of: Vec<usize> = first
            .iter()
            .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
            .collect();
        let targets = ids.into_iter().map(|id| class_of[id]).collect();
        Ok((classes, kind, targets))
    }

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
