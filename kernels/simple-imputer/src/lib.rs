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
//! - `partial_fit` keeps running tallies (sums and counts, value counts),
//!   so fitting in chunks gives exactly the whole-input result for `mean`,
//!   `most_frequent` and `constant`. `median` needs every value at once and
//!   refuses chunks.
//! - Frames by reference (`fit`, `transform`): the host sums numeric
//!   columns, counts string values and fills the gaps, so neither the
//!   frame nor its strings are copied into the kernel; a median, a numeric
//!   mode or a bool column is read in. Same results, bit for bit.

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

/// Running statistics of one column, for `partial_fit`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Tally {
    name: String,
    /// f64/s64 (numeric), bool, or string.
    kind: u8,
    count: u64,
    sum: f64,
    /// Occurrences of each numeric value (keyed in numeric order).
    numbers: BTreeMap<i64, u64>,
    /// Occurrences of each string (or `true`/`false`).
    labels: BTreeMap<String, u64>,
}

const NUMERIC: u8 = 0;
const FLAG: u8 = 1;
const TEXT: u8 = 2;

/// An integer key that sorts like the float (IEEE total order).
fn ordered(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

fn from_ordered(k: i64) -> f64 {
    f64::from_bits((k ^ ((((k >> 63) as u64) >> 1) as i64)) as u64)
}

/// The most frequent key; ties go to the smallest.
fn mode<K: Clone + Ord>(counts: &BTreeMap<K, u64>) -> Option<K> {
    let mut best: Option<(&K, u64)> = None;
    for (k, n) in counts {
        if best.is_none_or(|(_, m)| *n > m) {
            best = Some((k, *n));
        }
    }
    best.map(|(k, _)| k.clone())
}

#[derive(Serialize, Deserialize)]
pub struct SimpleImputer {
    params: ImputerParams,
    fills: Vec<(String, Fill)>,
    tallies: Vec<Tally>,
}

impl SimpleImputer {
    /// The fill value a tally gives, if it has seen a value (or the
    /// strategy needs none).
    fn fill_of(&self, t: &Tally) -> Option<Fill> {
        match t.kind {
            NUMERIC => match self.params.strategy.as_str() {
                "constant" => Some(Fill::Number(self.params.fill_value)),
                "most_frequent" => mode(&t.numbers).map(|k| Fill::Number(from_ordered(k))),
                _ => (t.count > 0).then(|| Fill::Number(t.sum / t.count as f64)),
            },
            _ if t.kind == TEXT && self.params.string_strategy == "constant" => {
                Some(Fill::Text(self.params.string_fill_value.clone()))
            }
            FLAG => mode(&t.labels).map(|l| Fill::Flag(l == "true")),
            _ => mode(&t.labels).map(Fill::Text),
        }
    }

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

/// Adds to `tally`'s running count and sum, in row order, every value of
/// `values` that no null byte of `nulls` hides and `value` keeps.
fn add_present<T: Copy>(
    tally: &mut Tally,
    values: &[T],
    nulls: Option<&[u8]>,
    value: impl Fn(T) -> Option<f64>,
) {
    let (mut count, mut sum) = (tally.count, tally.sum);
    for (row, &v) in values.iter().enumerate() {
        if nulls.is_none_or(|n| n[row] == 0)
            && let Some(v) = value(v)
        {
            count += 1;
            sum += v;
        }
    }
    (tally.count, tally.sum) = (count, sum);
}

impl SimpleImputer {
    /// The tally of column `name`, made on first sight; a column that
    /// changes type between chunks is refused.
    fn tally(&mut self, name: &str, kind: u8) -> Result<&mut Tally, KernelError> {
        let index = match self.tallies.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                self.tallies.push(Tally {
                    name: name.to_string(),
                    kind,
                    ..Tally::default()
                });
                self.tallies.len() - 1
            }
        };
        let tally = &mut self.tallies[index];
        if tally.kind != kind {
            return Err(KernelError::invalid_input(format!(
                "column `{name}` changed type between chunks"
            )));
        }
        Ok(tally)
    }

    /// Adds a column's values to its tally.
    fn tally_column(&mut self, column: &Column) -> Result<(), KernelError> {
        let kind = match column.values {
            ColumnValues::F64(_) | ColumnValues::S64(_) => NUMERIC,
            ColumnValues::Bool(_) => FLAG,
            ColumnValues::String(_) => TEXT,
        };
        // Value counts only when the strategy needs them: they grow with
        // the number of distinct values.
        let count_values = self.params.strategy == "most_frequent";
        let tally = self.tally(&column.name, kind)?;
        // Null bytes, one a row (`None`: no row is null).
        let nulls = match column.nulls.as_deref() {
            Some(n) if n.len() == column.len() => Some(Some(n)),
            Some(_) => None,
            None => Some(None),
        };
        match (&column.values, column.numeric(), nulls) {
            // Without value counts: the running count and sum over the
            // values themselves (the same additions, in the same order, as
            // the general loop below; a null or NaN is missing).
            (ColumnValues::F64(values), _, Some(n)) if !count_values => {
                add_present(tally, values, n, |v| (!v.is_nan()).then_some(v));
            }
            (ColumnValues::S64(values), _, Some(n)) if !count_values => {
                add_present(tally, values, n, |v| Some(v as f64));
            }
            (_, Some(values), _) if kind == NUMERIC => {
                for v in values.present() {
                    tally.count += 1;
                    tally.sum += v;
                    if count_values {
                        *tally.numbers.entry(ordered(v)).or_default() += 1;
                    }
                }
            }
            _ => {
                for row in 0..column.len() {
                    if let Some(label) = column.label_str(row) {
                        tally.count += 1;
                        match tally.labels.get_mut(label.as_ref()) {
                            Some(n) => *n += 1,
                            None => {
                                tally.labels.insert(label.into_owned(), 1);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a string column's value counts, made by the host, to its tally.
    fn tally_counts(&mut self, column: &HostColumn) -> Result<(), KernelError> {
        let counts = column.value_counts()?;
        let tally = self.tally(&column.name(), TEXT)?;
        for (label, n) in counts {
            tally.count += n;
            *tally.labels.entry(label).or_default() += n;
        }
        Ok(())
    }

    /// The fill of every tally that has one.
    fn refresh_fills(&mut self) {
        self.fills = self
            .tallies
            .iter()
            .filter_map(|t| self.fill_of(t).map(|f| (t.name.clone(), f)))
            .collect();
    }

    /// A whole input with no value in a column is a mistake worth naming.
    fn check_learned<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), KernelError> {
        for name in names {
            if !self.fills.iter().any(|(n, _)| n == name) {
                return Err(KernelError::invalid_input(format!(
                    "column `{name}` has no values to learn from; drop it or use a constant strategy"
                )));
            }
        }
        Ok(())
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
        .capabilities(Capabilities::PARTIAL_FIT)
        .by_reference(&["fit", "partial-fit", "transform"])
    }

    fn new(params: ImputerParams) -> Self {
        SimpleImputer {
            params,
            fills: Vec::new(),
            tallies: Vec::new(),
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.tallies.clear();
        self.fills.clear();
        if self.params.strategy == "median" {
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
            return Ok(());
        }
        self.partial_fit(x, y)?;
        self.check_learned(x.columns.iter().map(|c| c.name.as_str()))
    }

    fn partial_fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        if self.params.strategy == "median" {
            return Err(KernelError::Unsupported(
                "the median needs every value at once: use `fit`, or strategy mean or most_frequent for chunked runs".into(),
            ));
        }
        for column in &x.columns {
            self.tally_column(column)?;
        }
        self.refresh_fills();
        Ok(())
    }

    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        if self.params.strategy == "median" {
            // The median needs every value in the kernel; the target, never.
            let _ = y;
            return self.fit(&x.read()?, None);
        }
        self.tallies.clear();
        self.fills.clear();
        for column in &x.columns {
            let name = column.name();
            match column.kind() {
                // Sums in row order from 0, as the loop in `tally_column`.
                ColumnType::F64 | ColumnType::S64 if self.params.strategy != "most_frequent" => {
                    let m = column.moments()?;
                    let tally = self.tally(&name, NUMERIC)?;
                    tally.count += m.count;
                    tally.sum += m.sum;
                }
                ColumnType::String => self.tally_counts(column)?,
                _ => self.tally_column(&column.read()?)?,
            }
        }
        self.refresh_fills();
        let names: Vec<String> = x.columns.iter().map(HostColumn::name).collect();
        self.check_learned(names.iter().map(String::as_str))
    }

    /// A chunk of a chunked fit: the host counts the strings
    /// (`value-counts`), so no text is copied into the kernel; numbers are
    /// read and added one by one to the running sums, so the state does not
    /// depend on where the chunks were cut (a chunk's `moments` sum added
    /// to the running sum would).
    fn partial_fit_ref(
        &mut self,
        x: &FrameRef,
        _y: Option<&HostColumn>,
    ) -> Result<(), KernelError> {
        if self.params.strategy == "median" {
            return self.partial_fit(&Frame::new(Vec::new())?, None);
        }
        for column in &x.columns {
            match column.kind() {
                ColumnType::String => self.tally_counts(column)?,
                _ => self.tally_column(&column.read()?)?,
            }
        }
        self.refresh_fills();
        Ok(())
    }

    fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        let columns = x
            .columns
            .into_iter()
            .map(|column| {
                let name = column.name();
                let Some((_, fill)) = self.fills.iter().find(|(n, _)| *n == name) else {
                    if self.tallies.iter().any(|t| t.name == name) {
                        return Err(KernelError::invalid_input(format!(
                            "column `{name}` had no values to learn a fill value from"
                        )));
                    }
                    return Ok(column);
                };
                match (column.kind(), fill) {
                    (ColumnType::F64 | ColumnType::S64, Fill::Number(f)) => column.fill_nulls(*f),
                    (ColumnType::String, Fill::Text(f)) => column.fill_nulls_text(f),
                    (ColumnType::Bool, Fill::Flag(_)) => {
                        let frame = Frame::new(vec![column.read()?])?;
                        let mut out = self.transform(frame)?;
                        HostColumn::from_column(out.columns.remove(0))
                    }
                    _ => Err(KernelError::invalid_input(format!(
                        "column `{name}` changed type since fit"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FrameRef {
            rows: x.rows,
            columns,
        })
    }

    fn transform(&self, mut x: Frame) -> Result<Frame, KernelError> {
        for column in &mut x.columns {
            let Some((_, fill)) = self.fills.iter().find(|(name, _)| *name == column.name) else {
                if self.tallies.iter().any(|t| t.name == column.name) {
                    return Err(KernelError::invalid_input(format!(
                        "column `{}` had no values to learn a fill value from",
                        column.name
                    )));
                }
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
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::SimpleImputer>();
    }

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
    fn chunks_give_exactly_the_whole_fit() {
        let values: Vec<f64> = (0..50).map(|i| (i * 7 % 13) as f64 * 0.1).collect();
        let nulls: Vec<u8> = (0..50).map(|i| u8::from(i % 5 == 0)).collect();
        let frame = Frame::new(vec![
            Column::f64("a", values.clone()).with_nulls(nulls.clone()),
        ])
        .unwrap();
        for strategy in ["mean", "most_frequent"] {
            let params = [("strategy", strategy.into())];
            let mut whole = Local::<SimpleImputer>::with_params(&params).unwrap();
            whole.fit(&frame, None).unwrap();
            let mut chunked = Local::<SimpleImputer>::with_params(&params).unwrap();
            for start in (0..50).step_by(7) {
                let end = (start + 7).min(50);
                let chunk = Frame::new(vec![
                    Column::f64("a", values[start..end].to_vec())
                        .with_nulls(nulls[start..end].to_vec()),
                ])
                .unwrap();
                chunked.partial_fit(&chunk, None).unwrap();
            }
            assert_eq!(
                whole.kernel().fills(),
                chunked.kernel().fills(),
                "{strategy}"
            );
        }
    }

    /// Numeric columns are summed over their values and null bytes
    /// directly (strategies other than `most_frequent`); `most_frequent`
    /// still sums them row by row through the general loop. Both give the same
    /// counts and the same bits of the running sums, NaN skipped, chunk
    /// after chunk.
    #[test]
    fn the_direct_sum_adds_what_the_row_loop_adds() {
        let f = vec![0.1, 0.7, 1e16, f64::NAN, -1e16, 0.3, 2.5e-8, -0.0];
        let i = [3i64, -7, 1 << 40, 5, -(1 << 40), 9, 0, 1];
        let chunk = |k: usize| {
            Frame::new(vec![
                Column::f64("f", f.iter().map(|v| v * (k as f64 + 1.0)).collect())
                    .with_nulls((0..8).map(|r| u8::from(r == k % 8)).collect()),
                Column::s64("i", i.iter().map(|v| v * (k as i64 + 1)).collect())
                    .with_nulls((0..8).map(|r| u8::from(r == (k + 3) % 8)).collect()),
                Column::f64("z", vec![1.5; 8]).with_nulls(vec![0; 8]),
                Column::f64("n", f.clone()),
            ])
            .unwrap()
        };
        let tallies = |strategy: &str| {
            let mut k =
                Local::<SimpleImputer>::with_params(&[("strategy", strategy.into())]).unwrap();
            for c in 0..5 {
                k.partial_fit(&chunk(c), None).unwrap();
            }
            k.kernel()
                .tallies
                .iter()
                .map(|t| (t.name.clone(), t.count, t.sum.to_bits()))
                .collect::<Vec<_>>()
        };
        let general = tallies("most_frequent");
        assert_eq!(general.len(), 4);
        assert_eq!(tallies("mean"), general);
        assert_eq!(tallies("constant"), general);
    }

    /// By reference (host sums, value counts and fills) and by copy give
    /// the same fills and the same bits, for every strategy.
    #[test]
    fn by_reference_matches_the_plain_path() {
        let x = Frame::new(vec![
            Column::f64("a", vec![1.0, 0.0, 3.0, 10.0, f64::NAN, 3.0])
                .with_nulls(vec![0, 1, 0, 0, 0, 0]),
            Column::s64("i", vec![4, 7, 7, 1, 2, 9]).with_nulls(vec![0, 0, 0, 1, 0, 0]),
            Column::string(
                "s",
                vec![
                    "b".into(),
                    "a".into(),
                    String::new(),
                    "b".into(),
                    "a".into(),
                    "c".into(),
                ],
            )
            .with_nulls(vec![0, 0, 1, 0, 0, 0]),
            Column::bool("f", vec![true, false, false, true, false, true])
                .with_nulls(vec![0, 0, 0, 0, 1, 0]),
        ])
        .unwrap();
        // Fractions whose sum depends on the order of the additions: two
        // partial fits must add them in the same order on both paths.
        let fractions = Frame::new(vec![
            Column::f64("a", vec![0.1, 0.7, 1e16, 0.2, -1e16, 0.3])
                .with_nulls(vec![0, 0, 0, 1, 0, 0]),
        ])
        .unwrap();
        for x in [&x, &fractions] {
            for strategy in ["mean", "median", "most_frequent", "constant"] {
                for string_strategy in ["most_frequent", "constant"] {
                    kernel_sdk::testing::assert_by_reference_matches::<SimpleImputer>(
                        &[
                            ("strategy", strategy.into()),
                            ("string_strategy", string_strategy.into()),
                        ],
                        x,
                        None,
                    );
                }
            }
        }
    }

    #[test]
    fn bad_strategy_is_refused() {
        let err = Local::<SimpleImputer>::with_params(&[("strategy", "mode".into())])
            .err()
            .unwrap();
        assert!(matches!(err, KernelError::InvalidParams(_)), "{err:?}");
    }
}
