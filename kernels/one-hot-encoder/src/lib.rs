//! One-hot encoder: replaces each string (or bool) column by one 0/1 f64
//! column per category seen in `fit`, like scikit-learn's `OneHotEncoder`.
//!
//! - Categories are sorted, so output columns have a stable order; each is
//!   named `<column>_<category>`.
//! - A category not seen in `fit` becomes all zeros (`handle_unknown =
//!   "ignore"`, the default) or is refused with its row (`"error"`).
//! - Nulls are refused: impute first (the message says so).
//! - Numeric columns pass through untouched.
//! - Frames by reference (fit, partial-fit, transform): the host lists a
//!   string column's values and writes the 0/1 columns, so no string is
//!   copied into the kernel (a bool column, or a column with a null — to
//!   name its row — is read in). Same results, bit for bit.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

kernel_sdk::params! {
    /// Parameters of [`OneHotEncoder`].
    pub struct OneHotParams {
        /// What to do with a category not seen during fit.
        handle_unknown: String = "ignore", one_of["ignore", "error"];
    }
}

#[derive(Serialize, Deserialize)]
pub struct OneHotEncoder {
    params: OneHotParams,
    /// For each encoded column: its name and sorted categories.
    categories: Vec<(String, Vec<String>)>,
}

impl OneHotEncoder {
    pub fn categories(&self) -> &[(String, Vec<String>)] {
        &self.categories
    }
}

fn is_categorical(column: &Column) -> bool {
    matches!(
        column.values,
        ColumnValues::String(_) | ColumnValues::Bool(_)
    )
}

fn no_nulls(column: &Column) -> Result<(), KernelError> {
    match (0..column.len()).find(|row| column.is_null(*row)) {
        Some(row) => Err(KernelError::invalid_input(format!(
            "column `{}` has a missing value in row {row}; put an imputer before the encoder",
            column.name
        ))),
        None => Ok(()),
    }
}

impl OneHotEncoder {
    /// Adds the categories `seen` in a chunk of column `name`.
    fn merge(&mut self, name: String, seen: BTreeSet<String>) {
        match self.categories.iter_mut().find(|(n, _)| *n == name) {
            Some((_, known)) => {
                let all: BTreeSet<String> = known.drain(..).chain(seen).collect();
                *known = all.into_iter().collect();
            }
            None => self.categories.push((name, seen.into_iter().collect())),
        }
    }
}

impl Kernel for OneHotEncoder {
    type Params = OneHotParams;

    fn meta() -> Meta {
        Meta::new(
            "one-hot-encoder",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Transformer,
        )
        .description("encodes categorical columns as one 0/1 column per category")
        .capabilities(Capabilities::PARTIAL_FIT)
        .by_reference(&["fit", "partial-fit", "transform"])
    }

    fn new(params: OneHotParams) -> Self {
        OneHotEncoder {
            params,
            categories: Vec::new(),
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.categories.clear();
        self.partial_fit(x, y)
    }

    /// Adds the categories of one more chunk; the result does not depend on
    /// how the input was cut into chunks.
    fn partial_fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        for column in x.columns.iter().filter(|c| is_categorical(c)) {
            no_nulls(column)?;
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for row in 0..column.len() {
                if let Some(label) = column.label_str(row)
                    && !seen.contains(label.as_ref())
                {
                    seen.insert(label.into_owned());
                }
            }
            self.merge(column.name.clone(), seen);
        }
        Ok(())
    }

    fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        let rows = x.len();
        let mut columns = Vec::with_capacity(x.columns.len());
        for column in x.columns {
            let Some((_, categories)) = self.categories.iter().find(|(n, _)| *n == column.name)
            else {
                columns.push(column);
                continue;
            };
            if !is_categorical(&column) {
                return Err(KernelError::invalid_input(format!(
                    "column `{}` was categorical in fit but is {} now",
                    column.name,
                    column.type_name()
                )));
            }
            no_nulls(&column)?;
            // The category index of each row (`None`: unseen, all zeros).
            let mut hits = Vec::with_capacity(rows);
            for row in 0..rows {
                let label = column.label_str(row).unwrap_or_default();
                match categories.binary_search_by(|c| c.as_str().cmp(label.as_ref())) {
                    Ok(j) => hits.push(Some(j)),
                    Err(_) if self.params.handle_unknown == "error" => {
                        return Err(KernelError::invalid_input(format!(
                            "column `{}` row {row} has category \"{label}\", unseen in fit",
                            column.name
                        )));
                    }
                    Err(_) => hits.push(None),
                }
            }
            let encoded = (0..categories.len()).map(|j| {
                hits.iter()
                    .map(|h| f64::from(u8::from(*h == Some(j))))
                    .collect::<Vec<f64>>()
            });
            for (category, values) in categories.iter().zip(encoded) {
                columns.push(Column::f64(format!("{}_{category}", column.name), values));
            }
        }
        Frame::new(columns).map(|mut f| {
            // A frame whose columns were all dropped still keeps its height.
            f.rows = rows as u32;
            f
        })
    }

    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        self.categories.clear();
        self.partial_fit_ref(&x, y)
    }

    fn partial_fit_ref(
        &mut self,
        x: &FrameRef,
        _y: Option<&HostColumn>,
    ) -> Result<(), KernelError> {
        for column in &x.columns {
            match column.kind() {
                ColumnType::String if column.null_count() == 0 => {
                    let seen: BTreeSet<String> =
                        column.value_counts()?.into_iter().map(|(v, _)| v).collect();
                    self.merge(column.name(), seen);
                }
                ColumnType::String | ColumnType::Bool => {
                    let frame = Frame::new(vec![column.read()?])?;
                    self.partial_fit(&frame, None)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        let rows = x.rows;
        let mut columns = Vec::with_capacity(x.columns.len());
        for column in x.columns {
            let name = column.name();
            let Some((_, categories)) = self.categories.iter().find(|(n, _)| *n == name) else {
                columns.push(column);
                continue;
            };
            match column.kind() {
                ColumnType::String if column.null_count() == 0 => {
                    let (encoded, unknown) = column.one_hot(categories)?;
                    if let Some(row) = unknown
                        && self.params.handle_unknown == "error"
                    {
                        let cell = column.read_rows(row, row + 1)?;
                        let label = cell.label_str(0).unwrap_or_default().into_owned();
                        return Err(KernelError::invalid_input(format!(
                            "column `{name}` row {row} has category \"{label}\", unseen in fit"
                        )));
                    }
                    columns.extend(encoded);
                }
                // Bool columns, and nulls (refused with their row), by copy.
                _ => {
                    let frame = Frame::new(vec![column.read()?])?;
                    let out = self.transform(frame)?;
                    for c in out.columns {
                        columns.push(HostColumn::from_column(c)?);
                    }
                }
            }
        }
        Ok(FrameRef { rows, columns })
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        Ok(Explanation {
            summary: format!(
                "one-hot encodes {} categorical columns",
                self.categories.len()
            ),
            entries: self
                .categories
                .iter()
                .map(|(name, cats)| ExplainEntry {
                    name: name.clone(),
                    value: ExplainValue::Labels(cats.clone()),
                })
                .collect(),
        })
    }
}

kernel_sdk::export_kernel!(OneHotEncoder);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::OneHotEncoder>();
    }

    use super::*;
    use kernel_sdk::testing::Local;

    fn frame(labels: &[&str]) -> Frame {
        Frame::new(vec![
            Column::string("c", labels.iter().map(|s| s.to_string()).collect()),
            Column::f64("n", vec![1.0; labels.len()]),
        ])
        .unwrap()
    }

    /// By reference (host value lists and 0/1 columns) and by copy give
    /// the same categories and bits, unknown categories and bools included.
    #[test]
    fn by_reference_matches_the_plain_path() {
        let x = Frame::new(vec![
            Column::string("c", vec!["b".into(), "a".into(), "c".into(), "a".into()]),
            Column::f64("n", vec![1.0, 2.0, 3.0, 4.0]),
            Column::bool("f", vec![true, false, true, true]),
        ])
        .unwrap();
        for unknown in ["ignore", "error"] {
            kernel_sdk::testing::assert_by_reference_matches::<OneHotEncoder>(
                &[("handle_unknown", unknown.into())],
                &x,
                None,
            );
        }
        // A category unseen in fit: zeros, or the same refusal.
        let mut plain = Local::<OneHotEncoder>::new();
        let mut by_ref = Local::<OneHotEncoder>::new();
        plain.fit(&x, None).unwrap();
        by_ref.fit_ref(&x, None).unwrap();
        let new = Frame::new(vec![Column::string("c", vec!["z".into(), "a".into()])]).unwrap();
        assert_eq!(
            plain.transform(new.clone()).unwrap(),
            by_ref.transform_ref(new.clone()).unwrap()
        );
        let strict = [("handle_unknown", "error".into())];
        let mut plain = Local::<OneHotEncoder>::with_params(&strict).unwrap();
        let mut by_ref = Local::<OneHotEncoder>::with_params(&strict).unwrap();
        plain.fit(&x, None).unwrap();
        by_ref.fit_ref(&x, None).unwrap();
        assert_eq!(
            plain.transform(new.clone()).unwrap_err(),
            by_ref.transform_ref(new).unwrap_err()
        );
    }

    #[test]
    fn sorted_categories_and_unknown_ignored() {
        let mut k = Local::<OneHotEncoder>::new();
        k.fit(&frame(&["b", "a", "b"]), None).unwrap();
        let out = k.transform(frame(&["a", "z", "b"])).unwrap();
        assert_eq!(out.column_names(), ["c_a", "c_b", "n"]);
        assert_eq!(
            out.columns[0].values,
            ColumnValues::F64(vec![1.0, 0.0, 0.0])
        );
        assert_eq!(
            out.columns[1].values,
            ColumnValues::F64(vec![0.0, 0.0, 1.0])
        );
    }

    #[test]
    fn unknown_refused_with_row_when_asked() {
        let mut k =
            Local::<OneHotEncoder>::with_params(&[("handle_unknown", "error".into())]).unwrap();
        k.fit(&frame(&["a"]), None).unwrap();
        let err = k.transform(frame(&["a", "q"])).unwrap_err();
        assert!(err.message().contains("row 1"), "{err:?}");
    }
}
