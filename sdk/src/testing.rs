//! Run a kernel natively in its author's unit tests.
//!
//! [`Local`] drives a [`Kernel`] through the same dispatch code as the
//! exported component: parameters are validated from a WIT-style list,
//! `fit` marks the kernel fitted, state goes through `postcard`. Use it to
//! test numerics quickly with `cargo test`.
//!
//! [`conformance`] runs the contract's properties on a kernel type — the
//! same properties, generated frames and messages as `kernel-host test
//! KERNEL.wasm` runs on the built component (both come from
//! [`crate::conformance`]). Natively nothing is metered (no fuel, no memory
//! growth) and host tensors are not available: run `kernel-host test` on
//! the component before you ship it.
//!
//! ```no_run
//! # use kernel_sdk::prelude::*;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct MyKernel;
//! # kernel_sdk::params! { pub struct P {} }
//! # impl Kernel for MyKernel { type Params = P;
//! #   fn meta() -> Meta { Meta::new("k", "0.1.0", KernelKind::Transformer) }
//! #   fn new(_: P) -> Self { MyKernel }
//! #   fn fit(&mut self, _: &Frame, _: Option<&Column>) -> Result<(), KernelError> { Ok(()) } }
//! #[test]
//! fn keeps_the_contract() {
//!     kernel_sdk::testing::conformance::<MyKernel>();
//! }
//! ```

use crate::conformance::{self as props, Col, Failure, Outcome, Refusal, Table, Value};
use crate::runtime::Runtime;
use crate::{
    Capabilities, Column, ColumnValues, Explanation, Frame, Kernel, KernelError, KernelInfo,
    KernelKind, Param, ParamType, ParamValue,
};

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

    /// `fit` by reference, as the host calls it for a kernel that declares
    /// `"fit"` in [`crate::Meta::by_reference`] (natively, the handles hold
    /// the columns).
    pub fn fit_ref(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.cloned().map(crate::HostColumn::from_column).transpose()?;
        self.runtime
            .fit_ref(crate::FrameRef::of(x.clone())?, y.as_ref())
    }

    pub fn partial_fit_ref(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.cloned().map(crate::HostColumn::from_column).transpose()?;
        self.runtime
            .partial_fit_ref(&crate::FrameRef::of(x.clone())?, y.as_ref())
    }

    pub fn transform_ref(&self, x: Frame) -> Result<Frame, KernelError> {
        self.runtime
            .transform_ref(crate::FrameRef::of(x)?)?
            .into_frame()
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

/// Runs every conformance property on `K` with default parameters and
/// panics with the report's table if any fails: call it from a `#[test]`.
#[allow(clippy::panic)]
pub fn conformance<K: Kernel>() {
    let report = check::<K>(&props::Options::default());
    if !report.passed() {
        panic!("{}", report.table());
    }
}

/// Runs every conformance property on `K` and returns the report (to use
/// your own parameters or data: see [`props::Options`] and
/// [`frame_to_table`]).
pub fn check<K: Kernel>(options: &props::Options) -> props::Report {
    props::run(&mut Native::<K>::default(), options)
}

/// Asserts the `state` property on your own input: fitted on `x`/`y` with
/// `params`, then saved and loaded into a fresh instance, the kernel gives
/// bit-identical outputs, and corrupt state is refused.
#[allow(clippy::panic)]
pub fn assert_state_round_trip<K: Kernel>(
    params: &[(&str, ParamValue)],
    x: &Frame,
    y: Option<&Column>,
) {
    let verdict = props::state_round_trip(
        &mut Native::<K>::default(),
        &values(params),
        &frame_to_table(x),
        y.map(column_to_col).as_ref(),
    );
    if let props::Verdict::Fail(why) = verdict {
        panic!("state round trip: {why}");
    }
}

/// Asserts the `partial-fit` property on your own input: chunks of 1 and 7
/// rows give the outputs of one `partial-fit` of all rows, within
/// [`props::TOLERANCE`].
#[allow(clippy::panic)]
pub fn assert_chunk_invariance<K: Kernel>(
    params: &[(&str, ParamValue)],
    x: &Frame,
    y: Option<&Column>,
) {
    let verdict = props::chunk_invariance(
        &mut Native::<K>::default(),
        &values(params),
        &frame_to_table(x),
        y.map(column_to_col).as_ref(),
    );
    if let props::Verdict::Fail(why) = verdict {
        panic!("chunk invariance: {why}");
    }
}

/// Asserts that the operations `K` declares by reference
/// ([`crate::Meta::by_reference`]) give what the plain ones give, bit for
/// bit, on your input: the fitted state (`fit` and `partial-fit`) and the
/// transformed frame. The host calls whichever the kernel declares, so the
/// two paths must agree.
#[allow(clippy::panic)]
pub fn assert_by_reference_matches<K: Kernel>(
    params: &[(&str, ParamValue)],
    x: &Frame,
    y: Option<&Column>,
) {
    let declared = K::meta().by_reference;
    let fresh =
        || Local::<K>::with_params(params).unwrap_or_else(|e| panic!("parameters refused: {e:?}"));
    let (mut plain, mut by_ref) = (fresh(), fresh());
    let fitted = |r: Result<(), KernelError>, how: &str| {
        r.unwrap_or_else(|e| panic!("{how} refused the input: {e:?}"))
    };
    fitted(plain.fit(x, y), "fit");
    if declared.contains(&"fit") {
        fitted(by_ref.fit_ref(x, y), "fit by reference");
    } else {
        fitted(by_ref.fit(x, y), "fit");
    }
    let state = |k: &Local<K>| {
        k.save_state()
            .unwrap_or_else(|e| panic!("save-state: {e:?}"))
    };
    assert!(
        state(&plain) == state(&by_ref),
        "fit by reference learned something else than fit"
    );
    if declared.contains(&"partial-fit") {
        let (mut a, mut b) = (fresh(), fresh());
        match a.partial_fit(x, y) {
            // Refused with these parameters (say, a statistic that needs
            // every value at once): by reference must refuse too.
            Err(e) => assert!(
                b.partial_fit_ref(x, y).is_err(),
                "partial-fit refused ({e:?}) but partial-fit by reference accepted"
            ),
            Ok(()) => {
                fitted(b.partial_fit_ref(x, y), "partial-fit by reference");
                fitted(a.partial_fit(x, y), "partial-fit");
                fitted(b.partial_fit_ref(x, y), "partial-fit by reference");
                assert!(
                    state(&a) == state(&b),
                    "partial-fit by reference learned something else than partial-fit"
                );
            }
        }
    }
    if declared.contains(&"transform") {
        let want = plain.transform(x.clone());
        let got = by_ref.transform_ref(x.clone());
        match (want, got) {
            (Ok(want), Ok(got)) => {
                assert_eq!(got.rows, want.rows, "rows by reference");
                assert_eq!(
                    got.columns.len(),
                    want.columns.len(),
                    "columns by reference"
                );
                for (g, w) in got.columns.iter().zip(&want.columns) {
                    assert_eq!(g.name, w.name, "column names by reference");
                    assert_eq!(g.nulls, w.nulls, "null masks of `{}` by reference", w.name);
                    let bits = |c: &Column| match &c.values {
                        crate::ColumnValues::F64(v) => {
                            format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                        }
                        other => format!("{other:?}"),
                    };
                    assert!(
                        bits(g) == bits(w),
                        "values of `{}` differ by reference",
                        w.name
                    );
                }
            }
            (Err(_), Err(_)) => {}
            (want, got) => panic!(
                "transform and transform by reference disagree: {:?} vs {:?}",
                want.map(|f| f.rows),
                got.map(|f| f.rows)
            ),
        }
    }
}

fn values(params: &[(&str, ParamValue)]) -> Vec<(String, Value)> {
    params
        .iter()
        .map(|(n, v)| (n.to_string(), param_to_value(v)))
        .collect()
}

/// The kernel type as a conformance [`props::Subject`].
struct Native<K: Kernel>(std::marker::PhantomData<K>);

impl<K: Kernel> Default for Native<K> {
    fn default() -> Self {
        Native(std::marker::PhantomData)
    }
}

impl<K: Kernel> props::Subject for Native<K> {
    type Instance = Local<K>;

    fn describe(&mut self) -> Outcome<props::Info> {
        Ok(info_of(&Runtime::<K>::describe()))
    }

    fn instance(&mut self) -> Outcome<Local<K>> {
        Ok(Local::new())
    }
}

/// Runs `f`, turning a kernel error into a refusal and a panic into a
/// fault.
fn guarded<T>(f: impl FnOnce() -> Result<T, KernelError>) -> Outcome<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(refusal(e)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Failure::Fault(format!("panicked: {message}")))
        }
    }
}

fn refusal(e: KernelError) -> Failure {
    let (kind, m) = match e {
        KernelError::InvalidParams(m) => (Refusal::InvalidParams, m),
        KernelError::InvalidInput(m) => (Refusal::InvalidInput, m),
        KernelError::NotFitted(m) => (Refusal::NotFitted, m),
        KernelError::Unsupported(m) => (Refusal::Unsupported, m),
        KernelError::InvalidState(m) => (Refusal::InvalidState, m),
        KernelError::Failed(m) => (Refusal::Failed, m),
    };
    Failure::Refused(kind, m)
}

impl<K: Kernel> props::Instance for Local<K> {
    fn configure(&mut self, params: &[(String, Value)]) -> Outcome<()> {
        let params = params_of(params);
        guarded(|| self.runtime.configure(&params))
    }
    fn fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()> {
        let (x, y) = (table_to_frame(x), y.map(col_to_column));
        guarded(|| self.runtime.fit(&x, y.as_ref()))
    }
    fn partial_fit(&mut self, x: &Table, y: Option<&Col>) -> Outcome<()> {
        let (x, y) = (table_to_frame(x), y.map(col_to_column));
        guarded(|| self.runtime.partial_fit(&x, y.as_ref()))
    }
    fn transform(&mut self, x: &Table) -> Outcome<Table> {
        let x = table_to_frame(x);
        guarded(|| self.runtime.transform(x)).map(|f| frame_to_table(&f))
    }
    fn predict(&mut self, x: &Table) -> Outcome<Col> {
        let x = table_to_frame(x);
        guarded(|| self.runtime.predict(&x)).map(|c| column_to_col(&c))
    }
    fn predict_proba(&mut self, x: &Table) -> Outcome<Table> {
        let x = table_to_frame(x);
        guarded(|| self.runtime.predict_proba(&x)).map(|f| frame_to_table(&f))
    }
    fn save_state(&mut self) -> Outcome<Vec<u8>> {
        guarded(|| self.runtime.save_state())
    }
    fn load_state(&mut self, state: &[u8]) -> Outcome<()> {
        guarded(|| self.runtime.load_state(state))
    }
    fn explain(&mut self) -> Outcome<()> {
        guarded(|| self.runtime.explain()).map(|_| ())
    }
}

plain_conversions!(props);

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

    /// Centres numeric columns on the mean it learned; `partial_fit`
    /// forgets earlier chunks, which the native runner must catch.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Forgetful {
        mean: Vec<f64>,
    }

    crate::params! {
        pub struct NoParams {}
    }

    impl Kernel for Forgetful {
        type Params = NoParams;
        fn meta() -> Meta {
            Meta::new("forgetful", "0.1.0", KernelKind::Transformer)
                .capabilities(crate::Capabilities::PARTIAL_FIT)
        }
        fn new(_: NoParams) -> Self {
            Forgetful { mean: Vec::new() }
        }
        fn fit(&mut self, x: &Frame, _: Option<&Column>) -> Result<(), KernelError> {
            let m = x.to_matrix()?;
            let n = m.rows.max(1) as f64;
            self.mean = (0..m.cols)
                .map(|j| m.rows().map(|r| r[j]).sum::<f64>() / n)
                .collect();
            Ok(())
        }
        fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
            self.fit(x, y)
        }
        fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
            let m = x.to_matrix()?;
            if m.cols != self.mean.len() {
                return Err(KernelError::invalid_input("wrong number of columns"));
            }
            Frame::new(
                (0..m.cols)
                    .map(|j| {
                        Column::f64(
                            m.names[j].clone(),
                            m.rows().map(|r| r[j] - self.mean[j]).collect(),
                        )
                    })
                    .collect(),
            )
            .map(|mut f| {
                f.rows = x.rows;
                f
            })
        }
    }

    /// The native runner finds the fault, names it and says what to fix;
    /// the properties the kernel keeps pass.
    #[test]
    fn native_conformance_catches_a_forgetful_partial_fit() {
        let report = super::check::<Forgetful>(&crate::conformance::Options::default());
        let failed: Vec<&str> = report.failures().map(|c| c.property).collect();
        assert_eq!(failed, ["partial-fit"], "{}", report.table());
        let why = report
            .verdict("partial-fit")
            .map(|v| v.reason().to_string());
        assert!(
            why.as_deref()
                .is_some_and(|w| w.contains("must add to what was learned")),
            "{why:?}"
        );
        assert!(
            matches!(
                report.verdict("resources"),
                Some(crate::conformance::Verdict::Skip(_))
            ),
            "memory is not measured natively"
        );
    }

    #[test]
    #[should_panic(expected = "chunk invariance")]
    fn chunk_invariance_assertion_panics_with_the_reason() {
        let x = Frame::new(vec![Column::f64("a", (0..20).map(f64::from).collect())]).unwrap();
        super::assert_chunk_invariance::<Forgetful>(&[], &x, None);
    }

    #[test]
    fn state_round_trip_assertion_passes_on_a_kernel_that_saves_everything() {
        let x = Frame::new(vec![Column::f64("a", vec![1.0, 2.0, 4.0])]).unwrap();
        super::assert_state_round_trip::<Forgetful>(&[], &x, None);
    }
}
