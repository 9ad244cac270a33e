//! The host's one `bindgen!` site: Rust types and call stubs generated from
//! the WIT package in `wit/`, the single source of truth shared with the
//! guest SDK.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kernel-host:kernel/ml-kernel",
    // Every export is called asynchronously so that fuel-driven yields let
    // a timer cancel a runaway kernel without blocking the runtime.
    imports: { default: async },
    exports: { default: async },
    additional_derives: [PartialEq],
    with: {
        "kernel-host:kernel/tensor.tensor": crate::tensor::Tensor,
    },
});

pub use self::exports::kernel_host::kernel::kernel::Guest as KernelExports;
pub use self::kernel_host::kernel::types::{
    Capabilities, Column, ColumnValues, ExplainEntry, ExplainValue, Explanation, Frame,
    KernelError, KernelInfo, KernelKind, Param, ParamSpec, ParamType, ParamValue,
};

/// The interface name a kernel component must export, without version.
pub const KERNEL_INTERFACE: &str = "kernel-host:kernel/kernel";

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.1";

/// A parameter value as a manifest would write it: `0.5`, `1e-12`, `3`,
/// `true`, `"mean"`.
impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Plain notation where it stays short.
            ParamValue::F64(x) if *x == 0.0 || (1e-4..1e9).contains(&x.abs()) => write!(f, "{x}"),
            ParamValue::F64(x) => write!(f, "{x:e}"),
            ParamValue::S64(x) => write!(f, "{x}"),
            ParamValue::Bool(x) => write!(f, "{x}"),
            ParamValue::String(x) => write!(f, "\"{x}\""),
        }
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelKind::Transformer => "transformer",
            KernelKind::Classifier => "classifier",
            KernelKind::Regressor => "regressor",
            KernelKind::Clusterer => "clusterer",
        })
    }
}
