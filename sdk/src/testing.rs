//! Run a kernel natively in its author's unit tests.
//!
//! [`Local`] drives a [`Kernel`] through the same dispatch code as the
//! exported component: parameters are validated from a WIT-style list,
//! `fit` marks the kernel fitted, state goes through `postcard`. Use it to
//! test numerics quickly with `cargo test`; use kernel-host's conformance
//! tests for the sandboxed component.

use crate::runtime::Runtime;
use crate::{Column, Explanation, Frame, Kernel, KernelError, KernelInfo, Param, ParamValue};

/// A kernel instance running in the test process.
pub struct Local<K: Kernel> {
    runtime: Runtime<K>,
}

impl<K: Kernel> Default for Local<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Kernel> Local<K> {
    /// A kernel with default parameters.
    pub fn new() -> Self {
        Local {
            runtime: Runtime::new(),
        }
    }

    /// A kernel configured with `params`, e.g. `[("alpha", 0.5.into())]`.
    pub fn with_params(params: &[(&str, ParamValue)]) -> Result<Self, KernelError> {
        let mut local = Self::new();
        let params: Vec<Param> = params
            .iter()
            .map(|(name, value)| Param {
                name: name.to_string(),
                value: value.clone(),
            })
            .collect();
        local.runtime.configure(&params)?;
        Ok(local)
    }

    pub fn describe(&self) -> KernelInfo {
        Runtime::<K>::describe()
    }

    /// The kernel value, to inspect what it learned.
    pub fn kernel(&self) -> &K {
        self.runtime.kernel()
    }

    pub fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.runtime.fit(x, y)
    }

    pub fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.runtime.partial_fit(x, y)
    }

    pub fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        self.runtime.transform(x)
    }

    pub fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        self.runtime.predict(x)
    }

    pub fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        self.runtime.predict_proba(x)
    }

    pub fn explain(&self) -> Result<Explanation, KernelError> {
        self.runtime.explain()
    }

    pub fn save_state(&self) -> Result<Vec<u8>, KernelError> {
        self.runtime.save_state()
    }

    pub fn load_state(&mut self, state: &[u8]) -> Result<(), KernelError> {
        self.runtime.load_state(state)
    }
}

impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::F64(v)
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::S64(v)
    }
}

impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}

impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Local;
    use crate::{Column, Frame, Kernel, KernelError, KernelKind, Meta, ParamValue};

    crate::params! {
        pub struct ClipParams {
            low: f64 = 0.0;
            high: f64 = 1.0;
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Clip {
        params: ClipParams,
    }

    impl Kernel for Clip {
        type Params = ClipParams;
        fn meta() -> Meta {
            Meta::new("clip", "0.1.0", KernelKind::Transformer)
        }
        fn check(p: &ClipParams) -> Result<(), String> {
            if p.low < p.high {
                Ok(())
            } else {
                Err(format!("low ({}) must be below high ({})", p.low, p.high))
            }
        }
        fn new(params: ClipParams) -> Self {
            Clip { params }
        }
        fn fit(&mut self, _: &Frame, _: Option<&Column>) -> Result<(), KernelError> {
            Ok(())
        }
    }

    /// A cross-parameter mistake is an `invalid-params` refusal at
    /// configure time, not a fault later in `fit`.
    #[test]
    fn check_refuses_parameters_that_disagree() {
        assert!(Local::<Clip>::with_params(&[("low", ParamValue::F64(0.5))]).is_ok());
        let refused = Local::<Clip>::with_params(&[("low", ParamValue::F64(2.0))]);
        assert!(
            matches!(&refused, Err(KernelError::InvalidParams(m)) if m == "low (2) must be below high (1)"),
            "{:?}",
            refused.err()
        );
    }
}
