//! Kernels that each break one property `kernel-host test` checks, so the
//! tests can show every property catches its fault with a message that says
//! what to fix.
//!
//! [`Centroids`] is a correct nearest-centroid classifier written with the
//! SDK (partial-fit, probabilities, distances as `transform`). The
//! [`export_faulty!`] glue sits between the host and the SDK's dispatch and
//! injects one [`Fault`]; each example under `examples/` is one component.

#![allow(clippy::panic)]
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use kernel_sdk::prelude::*;
use kernel_sdk::runtime::Runtime;
use kernel_sdk::{KernelInfo, Param};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};

kernel_sdk::params! {
    /// Parameters of [`Centroids`].
    pub struct CentroidParams {
        /// Softmax temperature of the probabilities.
        temperature: f64 = 1.0, range(1e-3, 1e3);
        /// Distance: `euclidean` or `manhattan`.
        metric: String = "euclidean", one_of["euclidean", "manhattan"];
    }
}

/// Per-class sums and counts: chunked fits add up to one fit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Model {
    features: Vec<String>,
    /// Sorted.
    classes: Vec<String>,
    sums: Vec<Vec<f64>>,
    counts: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct Centroids {
    params: CentroidParams,
    model: Option<Model>,
}

impl Centroids {
    fn learn(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| KernelError::invalid_input("needs a target column"))?;
        let m = match &self.model {
            Some(model) => x.select_matrix(&model.features)?,
            None => x.to_matrix()?,
        };
        let model = self.model.get_or_insert_with(|| Model {
            features: m.names.clone(),
            ..Model::default()
        });
        for (i, row) in m.rows().enumerate() {
            let label = y.label(i).ok_or_else(|| {
                KernelError::invalid_input(format!("the target is missing in row {i}"))
            })?;
            let k = match model.classes.binary_search(&label) {
                Ok(k) => k,
                Err(k) => {
                    model.classes.insert(k, label);
                    model.sums.insert(k, vec![0.0; row.len()]);
                    model.counts.insert(k, 0);
                    k
                }
            };
            model.sums[k].iter_mut().zip(row).for_each(|(s, v)| *s += v);
            model.counts[k] += 1;
        }
        if model.classes.is_empty() {
            self.model = None;
            return Err(KernelError::invalid_input("no rows to learn from"));
        }
        Ok(())
    }

    fn model(&self) -> Result<&Model, KernelError> {
        self.model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))
    }

    /// Distance of every row to every centroid.
    fn distances(&self, x: &Frame) -> Result<Vec<Vec<f64>>, KernelError> {
        let model = self.model()?;
        let m = x.select_matrix(&model.features)?;
        let manhattan = self.params.metric == "manhattan";
        Ok(m.rows()
            .map(|row| {
                model
                    .sums
                    .iter()
                    .zip(&model.counts)
                    .map(|(sum, n)| {
                        let d = sum.iter().zip(row).map(|(s, v)| {
                            let diff = s / *n as f64 - v;
                            if manhattan { diff.abs() } else { diff * diff }
                        });
                        d.sum::<f64>()
                    })
                    .collect()
            })
            .collect())
    }

    fn probabilities(&self, x: &Frame) -> Result<Vec<Vec<f64>>, KernelError> {
        let t = self.params.temperature;
        Ok(self
            .distances(x)?
            .into_iter()
            .map(|d| {
                let best = d.iter().copied().fold(f64::INFINITY, f64::min);
                let e: Vec<f64> = d.iter().map(|v| (-(v - best) / t).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.iter().map(|v| v / sum).collect()
            })
            .collect())
    }
}

impl Kernel for Centroids {
    type Params = CentroidParams;

    fn meta() -> Meta {
        Meta::new("centroids", "0.1.0", KernelKind::Classifier)
            .description("nearest-centroid classifier (a test guest)")
            .capabilities(Capabilities::PARTIAL_FIT | Capabilities::PREDICT_PROBA)
    }

    fn new(params: CentroidParams) -> Self {
        Centroids {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.model = None;
        self.learn(x, y)
    }

    fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.learn(x, y)
    }

    fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        let model = self.model()?;
        let d = self.distances(&x)?;
        Frame::new(
            model
                .classes
                .iter()
                .enumerate()
                .map(|(k, c)| Column::f64(format!("dist_{c}"), d.iter().map(|r| r[k]).collect()))
                .collect(),
        )
        .map(|mut f| {
            f.rows = x.rows;
            f
        })
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self.model()?;
        let p = self.probabilities(x)?;
        let labels: Vec<String> = p
            .iter()
            .map(|r| {
                let k = (0..r.len()).fold(0, |b, k| if r[k] > r[b] { k } else { b });
                model.classes[k].clone()
            })
            .collect();
        Ok(Column::string("prediction", labels))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self.model()?;
        let p = self.probabilities(x)?;
        let mut f = Frame::new(
            model
                .classes
                .iter()
                .enumerate()
                .map(|(k, c)| Column::f64(c.clone(), p.iter().map(|r| r[k]).collect()))
                .collect(),
        )?;
        f.rows = x.rows;
        Ok(f)
    }
}

/// The one thing a faulty kernel does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    BadDescribe,
    DescribeTraps,
    AcceptsOutOfRange,
    RefusesRangeEnd,
    TrapsOnUnknownParam,
    NoNotFitted,
    PanicsOnEmpty,
    LoopsOnConstant,
    Nondeterministic,
    DropsRow,
    ForgetsState,
    PartialFitForgets,
    UnnormalizedProba,
    PredictNotArgmax,
    Leaks,
}

thread_local! {
    static RUNTIME: RefCell<Runtime<Centroids>> = RefCell::new(Runtime::new());
    static CALLS: Cell<u64> = const { Cell::new(0) };
    static LEAKED: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The dispatch, with `fault` injected.
pub mod glue {
    use super::*;

    pub fn describe(fault: Fault) -> KernelInfo {
        let mut info = Runtime::<Centroids>::describe();
        if fault == Fault::DescribeTraps {
            panic!("describe is not ready");
        }
        if fault == Fault::BadDescribe {
            info.params[0].default = ParamValue::F64(2e3);
        }
        info
    }

    pub fn configure(fault: Fault, mut params: Vec<Param>) -> Result<(), KernelError> {
        match fault {
            Fault::AcceptsOutOfRange => {
                for p in &mut params {
                    if let ParamValue::F64(v) = &mut p.value {
                        *v = if v.is_nan() { 1.0 } else { v.clamp(1e-3, 1e3) };
                    }
                }
            }
            Fault::RefusesRangeEnd => {
                // An off-by-one: the declared range includes 1000.
                if let Some(p) = params.iter().find(|p| p.name == "temperature")
                    && p.value == ParamValue::F64(1e3)
                {
                    return Err(KernelError::invalid_params(
                        "temperature must be below 1000",
                    ));
                }
            }
            Fault::TrapsOnUnknownParam => {
                if let Some(p) = params
                    .iter()
                    .find(|p| !["temperature", "metric"].contains(&p.name.as_str()))
                {
                    panic!("unexpected parameter {}", p.name);
                }
            }
            _ => {}
        }
        RUNTIME.with_borrow_mut(|rt| rt.configure(&params))
    }

    pub fn fit(fault: Fault, x: Frame, y: Option<Column>) -> Result<(), KernelError> {
        if fault == Fault::PanicsOnEmpty && x.rows == 0 {
            let rows: Vec<f64> = Vec::new();
            std::hint::black_box(rows[std::hint::black_box(0)]);
        }
        if fault == Fault::LoopsOnConstant
            && x.rows > 1
            && x.columns.iter().any(|c| match &c.values {
                ColumnValues::F64(v) => v.iter().all(|x| *x == v[0]),
                _ => false,
            })
        {
            // "Iterate until the spread shrinks", which never happens.
            let mut spread = 0.0f64;
            while std::hint::black_box(spread) <= 0.0 {
                spread = std::hint::black_box(spread * 0.5);
            }
        }
        RUNTIME.with_borrow_mut(|rt| rt.fit(&x, y.as_ref()))
    }

    pub fn partial_fit(fault: Fault, x: Frame, y: Option<Column>) -> Result<(), KernelError> {
        if fault == Fault::PartialFitForgets {
            return RUNTIME.with_borrow_mut(|rt| rt.fit(&x, y.as_ref()));
        }
        RUNTIME.with_borrow_mut(|rt| rt.partial_fit(&x, y.as_ref()))
    }

    pub fn transform(fault: Fault, x: Frame) -> Result<Frame, KernelError> {
        let mut out = RUNTIME.with_borrow(|rt| rt.transform(x))?;
        match fault {
            Fault::DropsRow if out.rows > 0 => {
                out.rows -= 1;
                for c in &mut out.columns {
                    if let ColumnValues::F64(v) = &mut c.values {
                        v.pop();
                    }
                }
            }
            Fault::Nondeterministic => {
                let n = CALLS.get() + 1;
                CALLS.set(n);
                for c in &mut out.columns {
                    if let ColumnValues::F64(v) = &mut c.values {
                        v.iter_mut().for_each(|x| *x += n as f64 * 1e-9);
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    pub fn predict(fault: Fault, x: Frame) -> Result<Column, KernelError> {
        match fault {
            Fault::Leaks => LEAKED.with_borrow_mut(|l| l.push(vec![1u8; 64 << 10])),
            Fault::NoNotFitted => {
                let fitted = RUNTIME.with_borrow(|rt| rt.predict(&x));
                if let Err(KernelError::NotFitted(_)) = fitted {
                    return Ok(Column::string("prediction", vec!["x".to_string(); x.len()]));
                }
                return fitted;
            }
            Fault::PredictNotArgmax => {
                let p = RUNTIME.with_borrow(|rt| rt.predict_proba(&x))?;
                let labels = (0..x.len())
                    .map(|i| {
                        let worst = p.columns.iter().min_by(|a, b| {
                            let v = |c: &Column| match &c.values {
                                ColumnValues::F64(v) => v[i],
                                _ => 0.0,
                            };
                            v(a).total_cmp(&v(b))
                        });
                        worst.map_or(String::new(), |c| c.name.clone())
                    })
                    .collect();
                return Ok(Column::string("prediction", labels));
            }
            _ => {}
        }
        RUNTIME.with_borrow(|rt| rt.predict(&x))
    }

    pub fn predict_proba(fault: Fault, x: Frame) -> Result<Frame, KernelError> {
        let mut out = RUNTIME.with_borrow(|rt| rt.predict_proba(&x))?;
        if fault == Fault::UnnormalizedProba {
            for c in &mut out.columns {
                if let ColumnValues::F64(v) = &mut c.values {
                    v.iter_mut().for_each(|p| *p *= 0.9);
                }
            }
        }
        Ok(out)
    }

    pub fn save_state(fault: Fault) -> Result<Vec<u8>, KernelError> {
        if fault == Fault::ForgetsState {
            // Saves the parameters, forgets the model.
            return Runtime::<Centroids>::new().save_state();
        }
        RUNTIME.with_borrow(|rt| rt.save_state())
    }

    pub fn load_state(state: Vec<u8>) -> Result<(), KernelError> {
        RUNTIME.with_borrow_mut(|rt| rt.load_state(&state))
    }

    pub fn explain() -> Result<kernel_sdk::Explanation, KernelError> {
        RUNTIME.with_borrow(|rt| rt.explain())
    }
}

/// Exports [`Centroids`] with `fault` injected.
#[macro_export]
macro_rules! export_faulty {
    ($fault:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use kernel_sdk::__bindings::exports::kernel_host::kernel::kernel::Guest;
            use kernel_sdk::{Column, Explanation, Frame, KernelError, KernelInfo, Param};
            use $crate::glue;

            struct Export;

            impl Guest for Export {
                fn describe() -> KernelInfo {
                    glue::describe($fault)
                }
                fn configure(params: Vec<Param>) -> Result<(), KernelError> {
                    glue::configure($fault, params)
                }
                fn fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
                    glue::fit($fault, x, y)
                }
                fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
                    glue::partial_fit($fault, x, y)
                }
                fn transform(x: Frame) -> Result<Frame, KernelError> {
                    glue::transform($fault, x)
                }
                fn predict(x: Frame) -> Result<Column, KernelError> {
                    glue::predict($fault, x)
                }
                fn predict_proba(x: Frame) -> Result<Frame, KernelError> {
                    glue::predict_proba($fault, x)
                }
                fn save_state() -> Result<Vec<u8>, KernelError> {
                    glue::save_state($fault)
                }
                fn load_state(state: Vec<u8>) -> Result<(), KernelError> {
                    glue::load_state(state)
                }
                fn explain() -> Result<Explanation, KernelError> {
                    glue::explain()
                }
            }

            kernel_sdk::__plain_kernel_ref!(Export);
            kernel_sdk::__bindings::__export_ml_kernel!(Export);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::Centroids;

    /// The base kernel itself keeps every property the native runner can
    /// check: each component's failures come from its fault alone.
    #[test]
    fn the_base_kernel_conforms() {
        kernel_sdk::testing::conformance::<Centroids>();
    }
}
