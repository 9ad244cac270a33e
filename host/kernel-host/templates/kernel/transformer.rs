//! __NAME__: a transformer kernel for kernel-host.
//!
//! This skeleton is a working min-max scaler: `fit` (or `partial_fit`, one
//! chunk at a time) learns each numeric column's minimum and maximum, and
//! `transform` maps them onto [low, high]. Replace the maths with yours;
//! keep the shape:
//!
//! - the struct holds the parameters and everything learned, and is
//!   serialized whole by `save-state` (keep it plain data);
//! - `transform` keeps the row count; columns it does not handle (strings
//!   here) pass through unchanged; missing values stay missing;
//! - refuse what you cannot use with `KernelError::invalid_input`, never
//!   panic; outputs depend only on parameters, what was learned and input.
//!
//! Build and check it (see README.md):
//!   cargo build --release --target wasm32-wasip2
//!   kernel-host test target/wasm32-wasip2/release/__CRATE__.wasm

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`__TYPE__`]: each becomes `params = { ... }` in a
    /// manifest, checked against its type and range before your code runs.
    pub struct __TYPE__Params {
        /// The value the smallest training value maps to.
        low: f64 = 0.0, range(-1e12, 1e12);
        /// The value the largest training value maps to.
        high: f64 = 1.0, range(-1e12, 1e12);
    }
}

/// The range of one column, as learned so far.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct __TYPE__Range {
    name: String,
    min: f64,
    max: f64,
}

#[derive(Serialize, Deserialize)]
pub struct __TYPE__ {
    params: __TYPE__Params,
    /// Empty until the first fit.
    ranges: Vec<__TYPE__Range>,
}

impl Kernel for __TYPE__ {
    type Params = __TYPE__Params;

    fn meta() -> Meta {
        Meta::new("__NAME__", env!("CARGO_PKG_VERSION"), KernelKind::Transformer)
            .description("scales numeric columns onto [low, high]")
            .capabilities(Capabilities::PARTIAL_FIT)
    }

    /// Checks between parameters, at configure time: the host reports a
    /// refusal with the manifest's line.
    fn check(p: &__TYPE__Params) -> Result<(), String> {
        if p.low < p.high {
            Ok(())
        } else {
            Err(format!("low ({}) must be below high ({})", p.low, p.high))
        }
    }

    fn new(params: __TYPE__Params) -> Self {
        __TYPE__ {
            params,
            ranges: Vec::new(),
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.ranges.clear();
        self.partial_fit(x, y)
    }

    /// One more chunk: widens the ranges, so any chunking of the rows
    /// learns what one call over all of them would.
    fn partial_fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        for column in &x.columns {
            // Strings are not scaled (they pass through `transform`).
            let Some(values) = column.numeric() else {
                continue;
            };
            let (min, max) = values
                .present()
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            match self.ranges.iter_mut().find(|r| r.name == column.name) {
                Some(r) => {
                    r.min = r.min.min(min);
                    r.max = r.max.max(max);
                }
                None => self.ranges.push(__TYPE__Range {
                    name: column.name.clone(),
                    min,
                    max,
                }),
            }
        }
        Ok(())
    }

    fn transform(&self, mut x: Frame) -> Result<Frame, KernelError> {
        let (low, high) = (self.params.low, self.params.high);
        for column in &mut x.columns {
            let Some(range) = self.ranges.iter().find(|r| r.name == column.name) else {
                continue;
            };
            // A constant column (or one never seen finite) maps to `low`.
            let width = range.max - range.min;
            let scale = if width > 0.0 && width.is_finite() {
                (high - low) / width
            } else {
                0.0
            };
            let scaled = |v: f64| low + (v - range.min) * scale;
            column.values = match &column.values {
                ColumnValues::F64(v) => ColumnValues::F64(v.iter().map(|v| scaled(*v)).collect()),
                ColumnValues::S64(v) => {
                    ColumnValues::F64(v.iter().map(|v| scaled(*v as f64)).collect())
                }
                ColumnValues::Bool(v) => {
                    ColumnValues::F64(v.iter().map(|v| scaled(f64::from(u8::from(*v)))).collect())
                }
                ColumnValues::String(_) => {
                    return Err(KernelError::invalid_input(format!(
                        "column `{}` was numeric in fit but holds strings now",
                        column.name
                    )));
                }
            };
        }
        Ok(x)
    }
}

kernel_sdk::export_kernel!(__TYPE__);

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn scales_onto_the_range() {
        let x = Frame::new(vec![Column::f64("a", vec![2.0, 4.0, 6.0])]).unwrap();
        let mut kernel = Local::<__TYPE__>::new();
        kernel.fit(&x, None).unwrap();
        let out = kernel.transform(x).unwrap();
        assert_eq!(out.columns[0].values, ColumnValues::F64(vec![0.0, 0.5, 1.0]));
    }

    /// The contract's properties, natively (`kernel-host test` runs the
    /// same ones on the built component, with fuel and memory measured).
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<__TYPE__>();
    }
}
