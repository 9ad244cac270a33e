//! # kernel-sdk: write machine-learning kernels for kernel-host
//!
//! A *kernel* is a preprocessor, model or metric compiled to a WebAssembly
//! component that kernel-host runs in a sandbox. With this crate an author
//! writes plain Rust:
//!
//! 1. declare typed parameters with [`params!`];
//! 2. implement [`Kernel`] on a `serde` type that holds the parameters and
//!    whatever the kernel learns;
//! 3. call [`export_kernel!`] once.
//!
//! State is saved and restored for you (the whole kernel value goes through
//! `postcard`), parameters are validated against the declared types and
//! ranges before your code sees them, and the generated WIT bindings stay
//! hidden. The same kernel runs natively in unit tests through
//! [`testing::Local`], which goes through exactly the same dispatch code as
//! the exported component, and [`testing::conformance`] checks the
//! contract's properties on it (the same ones, with the same messages, as
//! `kernel-host test` checks on the built component: see [`conformance`]).
//! `kernel-host new NAME --kind KIND` writes a crate to start from.
//!
//! ```no_run
//! use kernel_sdk::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! kernel_sdk::params! {
//!     /// Parameters of [`Shift`].
//!     pub struct ShiftParams {
//!         /// Amount added to every numeric value.
//!         by: f64 = 1.0, range(-1e9, 1e9);
//!     }
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Shift { params: ShiftParams }
//!
//! impl Kernel for Shift {
//!     type Params = ShiftParams;
//!     fn meta() -> Meta {
//!         Meta::new("shift", env!("CARGO_PKG_VERSION"), KernelKind::Transformer)
//!             .description("adds a constant to numeric columns")
//!             .capabilities(Capabilities::STATELESS_TRANSFORM)
//!     }
//!     fn new(params: ShiftParams) -> Self { Shift { params } }
//!     fn fit(&mut self, _x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> { Ok(()) }
//!     fn transform(&self, mut x: Frame) -> Result<Frame, KernelError> {
//!         for column in &mut x.columns {
//!             if let ColumnValues::F64(values) = &mut column.values {
//!                 values.iter_mut().for_each(|v| *v += self.params.by);
//!             }
//!         }
//!         Ok(x)
//!     }
//! }
//!
//! kernel_sdk::export_kernel!(Shift);
//! ```
//!
//! ## The contract, in practice
//!
//! What the WIT (`wit/kernel.wit`, carried in this crate) leaves to the
//! host, as kernel-host does it:
//!
//! - **Calls**: `describe` (at load, under the step's limits), `configure`
//!   (parameters: unknown names, wrong types, out-of-range values and
//!   [`Kernel::check`] refusals are `invalid-params`, reported with the
//!   manifest's line), then `fit` or `partial-fit`, then `transform`,
//!   `predict`, `predict-proba`, `explain`. A call before any fit gets
//!   `not-fitted` (the SDK answers it for you). Every call runs under the
//!   step's fuel, memory and wall-clock limits; a trap or a limit rolls the
//!   kernel back to its last good state.
//! - **Which columns a kernel sees**: the columns its step selects
//!   (`columns = [...]` or `column-types = [...]` in the manifest; all of its
//!   input otherwise). With `passthrough = true` the host re-joins the
//!   columns it did not select after the kernel's output. A transformer
//!   given columns it does not handle (e.g. strings for a scaler) should
//!   return them unchanged, as the kernels in `kernels/` do; `transform`
//!   must keep the row count, and column names must stay unique.
//! - **The target** (`y`) is passed to every step's `fit` and `partial-fit`
//!   when the manifest names one, transformers included (they may ignore
//!   it); it never reaches `transform` or `predict`.
//! - **Predictions**: `predict` returns one column of one value per row;
//!   the host names it `prediction` in the output (beside `<target>_true`),
//!   whatever the kernel called it. `predict-proba` returns one column per
//!   class, named by the class label (the host writes `proba_<label>`), in
//!   the order of the kernel's classes.
//! - **`partial-fit`** is called once per chunk of a chunked run (only when
//!   the kernel declares the `partial-fit` capability); the first call
//!   starts from the configured, unfitted kernel. A chunk may hold a single
//!   class, or rows of classes never seen before: keep a growing class list
//!   (see `kernels/sgd-classifier`) rather than `LabelType::encode`, which
//!   refuses fewer than two classes and is meant for a whole `fit`.
//! - **Randomness and time**: `wasi:random` is a seeded stream (the same on
//!   every run, per step) unless the manifest grants `entropy`; clocks read
//!   zero unless it grants `clocks`. Seed your own generators from a
//!   parameter for results that do not depend on the host.
//! - **Errors**: return [`KernelError`] for what the input or parameters
//!   make impossible (`invalid-input`, `invalid-params`, `unsupported`);
//!   a panic is reported as a trap with its message, and strings a kernel
//!   returns are shown escaped (control characters cannot reach a terminal).

#[doc(hidden)]
#[path = "params.rs"]
pub mod __params;
mod column_ops;
pub mod columns;
#[macro_use]
pub mod conformance;
mod error;
mod frame;
mod labels;
pub mod log;
pub mod matrix;
#[doc(hidden)]
pub mod matrix_ops;
#[doc(hidden)]
pub mod runtime;
pub mod tensor;
pub mod testing;

#[doc(hidden)]
pub mod __bindings {
    // The one place guests generate bindings from `wit/`. Kernel crates never
    // see these modules directly: the SDK re-exports the types and implements
    // the exported trait through `export_kernel!`.
    wit_bindgen::generate!({
        // The SDK's own copy of the contract (identical to the repository's
        // `wit/`, checked by a test), so a copied `sdk/` builds on its own.
        path: "wit",
        world: "kernel-host:kernel/ml-kernel-ref",
        default_bindings_module: "kernel_sdk::__bindings",
        pub_export_macro: true,
        export_macro_name: "__export_ml_kernel",
        additional_derives: [PartialEq],
    });
}

pub use __bindings::kernel_host::kernel::types::{
    Capabilities, Column, ColumnValues, ExplainEntry, ExplainValue, Explanation, Frame,
    KernelError, KernelInfo, KernelKind, Param, ParamSpec, ParamType, ParamValue,
};
pub use __params::{ParamField, Params};
pub use columns::{ColumnType, FrameRef, HostColumn, Moments, Text};
pub use frame::{F64Columns, HOST_BLOCK_ROWS, Matrix, NumericColumn};
pub use labels::LabelType;
pub use matrix::HostMatrix;
#[doc(hidden)]
pub use postcard as __postcard;

/// The WIT package version this SDK builds kernels against.
pub const WIT_VERSION: &str = "0.1.3";

/// Everything a kernel author needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Capabilities, Column, ColumnType, ColumnValues, ExplainEntry, ExplainValue, Explanation,
        F64Columns, Frame, FrameRef, HostColumn, HostMatrix, Kernel, KernelError, KernelKind,
        LabelType, Matrix, Meta, NumericColumn, ParamValue, Params,
    };
}

/// Static facts about a kernel, reported by `describe`.
#[derive(Clone, Debug)]
pub struct Meta {
    pub name: &'static str,
    pub version: &'static str,
    pub kind: KernelKind,
    pub description: &'static str,
    pub capabilities: Capabilities,
    /// The operations the kernel implements on frames by reference
    /// (`"fit"`, `"partial-fit"`, `"transform"`): the host calls
    /// [`Kernel::fit_ref`], [`Kernel::partial_fit_ref`],
    /// [`Kernel::transform_ref`] for these and the plain methods otherwise.
    pub by_reference: &'static [&'static str],
}

impl Meta {
    /// A kernel called `name` (kebab-case), at semver `version`.
    pub fn new(name: &'static str, version: &'static str, kind: KernelKind) -> Self {
        Meta {
            name,
            version,
            kind,
            description: "",
            capabilities: Capabilities::empty(),
            by_reference: &[],
        }
    }

    /// Declares the operations implemented by reference (see
    /// [`Meta::by_reference`]).
    pub fn by_reference(mut self, operations: &'static [&'static str]) -> Self {
        self.by_reference = operations;
        self
    }

    pub fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }
}

/// A machine-learning kernel.
///
/// The value holds the parameters and everything learned; it is serialized
/// whole by `save-state` and restored by `load-state`, so keep it plain data.
/// Every operation has a default that refuses with
/// [`KernelError::Unsupported`]: implement the ones your kernel offers.
pub trait Kernel: serde::Serialize + serde::de::DeserializeOwned + 'static {
    /// The typed parameters, declared with [`params!`].
    type Params: Params;

    /// Name, version, kind and capabilities.
    fn meta() -> Meta;

    /// Checks that go beyond each parameter's own range (`min < max`, a
    /// choice that needs another parameter...), run by `configure` before
    /// [`Kernel::new`]. An `Err(reason)` refuses the parameters as
    /// `invalid-params`, so the host reports it at configure time with the
    /// manifest's line (and `kernel-host validate` finds it) instead of as a
    /// fault in `fit`. By default every combination is accepted.
    fn check(params: &Self::Params) -> Result<(), String> {
        let _ = params;
        Ok(())
    }

    /// A fresh, unfitted kernel with validated parameters.
    fn new(params: Self::Params) -> Self;

    /// Learns from `x` (and the target `y` for supervised kernels).
    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError>;

    /// Learns from one more chunk; declare [`Capabilities::PARTIAL_FIT`].
    fn partial_fit(&mut self, _x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        Err(error::unsupported("partial-fit"))
    }

    /// Maps `x` to a frame with the same number of rows. Takes `x` by value
    /// so that columns can be rewritten in place without a copy.
    fn transform(&self, _x: Frame) -> Result<Frame, KernelError> {
        Err(error::unsupported("transform"))
    }

    /// One prediction per row.
    fn predict(&self, _x: &Frame) -> Result<Column, KernelError> {
        Err(error::unsupported("predict"))
    }

    /// One probability column per class; declare
    /// [`Capabilities::PREDICT_PROBA`].
    fn predict_proba(&self, _x: &Frame) -> Result<Frame, KernelError> {
        Err(error::unsupported("predict-proba"))
    }

    /// What the kernel learned.
    fn explain(&self) -> Result<Explanation, KernelError> {
        Err(error::unsupported("explain"))
    }

    /// [`Kernel::fit`] on a frame by reference: its columns stay in the
    /// host (see [`columns`]). Implement it, and name `"fit"` in
    /// [`Meta::by_reference`], to fit without copying the frame into the
    /// kernel; the result must be the one `fit` gives. By default the
    /// columns are read and `fit` is called.
    /// The target `y` is a handle too: read it (`y.map(HostColumn::read)`)
    /// only if the kernel needs it. The frame is the kernel's: a column
    /// dropped (or consumed by [`HostMatrix::from_columns`]) is freed in
    /// the host as soon as nothing else holds it, so a kernel that builds
    /// a host matrix does not keep its input alive while it iterates.
    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        let y = y.map(HostColumn::read).transpose()?;
        self.fit(&x.read()?, y.as_ref())
    }

    /// [`Kernel::partial_fit`] by reference (`"partial-fit"`).
    fn partial_fit_ref(&mut self, x: &FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        let y = y.map(HostColumn::read).transpose()?;
        self.partial_fit(&x.read()?, y.as_ref())
    }

    /// [`Kernel::transform`] by reference (`"transform"`): return handles —
    /// inputs unchanged with [`HostColumn::share`], what the host computed,
    /// or columns built with [`HostColumn::from_column`].
    fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        FrameRef::of(self.transform(x.into_frame()?)?)
    }
}

/// For components that implement the WIT `kernel` exports by hand (test
/// guests): the `kernel-ref` export of a kernel that takes nothing by
/// reference, so the host always calls its plain functions.
#[doc(hidden)]
#[macro_export]
macro_rules! __plain_kernel_ref {
    ($export:ty) => {
        const _: () = {
            use $crate::__bindings::exports::kernel_host::kernel::kernel_ref as wit_ref;
            use $crate::__bindings::kernel_host::kernel::columns::HostColumn;

            fn unsupported(op: &str) -> $crate::KernelError {
                $crate::KernelError::Unsupported(format!("`{op}` by reference"))
            }

            impl wit_ref::Guest for $export {
                fn by_reference() -> Vec<String> {
                    Vec::new()
                }
                fn fit_ref(
                    _x: Vec<HostColumn>,
                    _rows: u32,
                    _y: Option<HostColumn>,
                ) -> Result<(), $crate::KernelError> {
                    Err(unsupported("fit"))
                }
                fn partial_fit_ref(
                    _x: Vec<HostColumn>,
                    _rows: u32,
                    _y: Option<HostColumn>,
                ) -> Result<(), $crate::KernelError> {
                    Err(unsupported("partial-fit"))
                }
                fn transform_ref(
                    _x: Vec<HostColumn>,
                    _rows: u32,
                ) -> Result<Vec<HostColumn>, $crate::KernelError> {
                    Err(unsupported("transform"))
                }
            }
        };
    };
}

/// Exports a [`Kernel`] type as the component's `kernel` interface.
///
/// Call it once, at the root of the kernel crate. On targets other than
/// wasm32 it expands to nothing, so the crate still builds and tests
/// natively.
#[macro_export]
macro_rules! export_kernel {
    ($kernel:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__bindings::exports::kernel_host::kernel::kernel as wit;
            use $crate::__bindings::exports::kernel_host::kernel::kernel_ref as wit_ref;
            use $crate::runtime::Runtime;

            ::std::thread_local! {
                static RUNTIME: ::std::cell::RefCell<Runtime<$kernel>> =
                    ::std::cell::RefCell::new(Runtime::new());
            }

            struct Export;

            impl wit::Guest for Export {
                fn describe() -> $crate::KernelInfo {
                    Runtime::<$kernel>::describe()
                }
                fn configure(params: Vec<$crate::Param>) -> Result<(), $crate::KernelError> {
                    RUNTIME.with_borrow_mut(|rt| rt.configure(&params))
                }
                fn fit(
                    x: $crate::Frame,
                    y: Option<$crate::Column>,
                ) -> Result<(), $crate::KernelError> {
                    RUNTIME.with_borrow_mut(|rt| rt.fit(&x, y.as_ref()))
                }
                fn partial_fit(
                    x: $crate::Frame,
                    y: Option<$crate::Column>,
                ) -> Result<(), $crate::KernelError> {
                    RUNTIME.with_borrow_mut(|rt| rt.partial_fit(&x, y.as_ref()))
                }
                fn transform(x: $crate::Frame) -> Result<$crate::Frame, $crate::KernelError> {
                    RUNTIME.with_borrow(|rt| rt.transform(x))
                }
                fn predict(x: $crate::Frame) -> Result<$crate::Column, $crate::KernelError> {
                    RUNTIME.with_borrow(|rt| rt.predict(&x))
                }
                fn predict_proba(x: $crate::Frame) -> Result<$crate::Frame, $crate::KernelError> {
                    RUNTIME.with_borrow(|rt| rt.predict_proba(&x))
                }
                fn save_state() -> Result<Vec<u8>, $crate::KernelError> {
                    RUNTIME.with_borrow(|rt| rt.save_state())
                }
                fn load_state(state: Vec<u8>) -> Result<(), $crate::KernelError> {
                    RUNTIME.with_borrow_mut(|rt| rt.load_state(&state))
                }
                fn explain() -> Result<$crate::Explanation, $crate::KernelError> {
                    RUNTIME.with_borrow(|rt| rt.explain())
                }
            }

            impl wit_ref::Guest for Export {
                fn by_reference() -> Vec<String> {
                    Runtime::<$kernel>::by_reference()
                }
                fn fit_ref(
                    x: Vec<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                    rows: u32,
                    y: Option<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                ) -> Result<(), $crate::KernelError> {
                    let x = $crate::FrameRef::lent(x, rows)?;
                    let y = y.map($crate::HostColumn::from_host);
                    RUNTIME.with_borrow_mut(|rt| rt.fit_ref(x, y.as_ref()))
                }
                fn partial_fit_ref(
                    x: Vec<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                    rows: u32,
                    y: Option<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                ) -> Result<(), $crate::KernelError> {
                    let x = $crate::FrameRef::lent(x, rows)?;
                    let y = y.map($crate::HostColumn::from_host);
                    RUNTIME.with_borrow_mut(|rt| rt.partial_fit_ref(&x, y.as_ref()))
                }
                fn transform_ref(
                    x: Vec<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                    rows: u32,
                ) -> Result<
                    Vec<$crate::__bindings::kernel_host::kernel::columns::HostColumn>,
                    $crate::KernelError,
                > {
                    let x = $crate::FrameRef::lent(x, rows)?;
                    RUNTIME.with_borrow(|rt| rt.transform_ref(x))?.into_host()
                }
            }

            $crate::__bindings::__export_ml_kernel!(Export);
        };
    };
}
