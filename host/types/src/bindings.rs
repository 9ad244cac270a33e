//! The host's one `bindgen!` site: Rust types and call stubs generated from
//! the WIT package in `wit/`, the single source of truth shared with the
//! guest SDK.

wasmtime::component::bindgen!({
    path: "../../wit",
    // The larger world: its imports (log, tensor, columns) link every
    // kernel; its exports are looked up per interface, so a component that
    // exports only `kernel` (world `ml-kernel`, contracts 0.1.0 to 0.1.3)
    // runs too, and one that also exports `kernel-ref` takes frames by
    // reference.
    world: "kernel-host:kernel/ml-kernel-ref",
    // Every export is called asynchronously so that fuel-driven yields let
    // a timer cancel a runaway kernel without blocking the runtime.
    imports: { default: async },
    exports: { default: async },
    additional_derives: [PartialEq],
    with: {
        // Written out by hand so that a string column is one buffer.
        "kernel-host:kernel/types": crate::wit_types,
        "kernel-host:kernel/tensor.tensor": kernel_host_tensor::Tensor,
        "kernel-host:kernel/columns.host-column": crate::frame::SharedColumn,
        "kernel-host:kernel/columns.matrix": crate::matrix::Mat,
    },
});

pub use self::exports::kernel_host::kernel::kernel::Guest as KernelExports;
pub use self::exports::kernel_host::kernel::kernel_ref::Guest as KernelRefExports;
pub use self::kernel_host::kernel::types::{
    Capabilities, Column, ColumnValues, ExplainEntry, ExplainValue, Explanation, Frame,
    KernelError, KernelInfo, KernelKind, Param, ParamSpec, ParamType, ParamValue,
};
pub use crate::texts::Texts;

/// The interface name a kernel component must export, without version.
pub const KERNEL_INTERFACE: &str = "kernel-host:kernel/kernel";

/// The WIT package version this host implements, as a literal for
/// `concat!` (the CLI's `--version` prints it).
#[macro_export]
macro_rules! wit_version {
    () => {
        "0.1.3"
    };
}

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = wit_version!();

/// A parameter value as a manifest would write it: `0.5`, `1e-12`, `3`,
/// `true`, `"mean"`.
impl KernelInfo {
    /// The declared parameter `name`, or a message naming the kernel and
    /// the parameters it does declare.
    pub fn param(&self, name: &str) -> Result<&ParamSpec, String> {
        self.params.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            format!(
                "`{}` has no parameter `{name}` (it accepts: {})",
                self.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }
}

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

/// A parameter value as stored: `{"f64": 1.0}`, `{"string": "mean"}`.
mod stored {
    use super::ParamValue;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum Value {
        F64(f64),
        S64(i64),
        Bool(bool),
        String(String),
    }

    impl From<&ParamValue> for Value {
        fn from(v: &ParamValue) -> Value {
            match v {
                ParamValue::F64(x) => Value::F64(*x),
                ParamValue::S64(x) => Value::S64(*x),
                ParamValue::Bool(x) => Value::Bool(*x),
                ParamValue::String(x) => Value::String(x.clone()),
            }
        }
    }

    impl From<Value> for ParamValue {
        fn from(v: Value) -> ParamValue {
            match v {
                Value::F64(x) => ParamValue::F64(x),
                Value::S64(x) => ParamValue::S64(x),
                Value::Bool(x) => ParamValue::Bool(x),
                Value::String(x) => ParamValue::String(x),
            }
        }
    }
}

/// Parameters as plans and bundles store them: `{"name": "c", "f64": 1.0}`.
/// Use as `#[serde(with = "kernel_host_types::bindings::params_serde")]`.
pub mod params_serde {
    use super::Param;
    use super::stored::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Named {
        name: String,
        #[serde(flatten)]
        value: Value,
    }

    pub fn serialize<S: Serializer>(params: &[Param], s: S) -> Result<S::Ok, S::Error> {
        params
            .iter()
            .map(|p| Named {
                name: p.name.clone(),
                value: Value::from(&p.value),
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Param>, D::Error> {
        Ok(Vec::<Named>::deserialize(d)?
            .into_iter()
            .map(|n| Param {
                name: n.name,
                value: n.value.into(),
            })
            .collect())
    }
}

/// A kernel's `describe` answer as the load records beside the compiled
/// kernel store it (so a later process need not ask again). Use as
/// `#[serde(with = "kernel_host_types::bindings::info_serde")]`.
pub mod info_serde {
    use super::stored::Value;
    use super::{Capabilities, KernelInfo, KernelKind, ParamSpec, ParamType};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Info {
        name: String,
        version: String,
        kind: Kind,
        description: String,
        params: Vec<Spec>,
        capabilities: Vec<Capability>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Kind {
        Transformer,
        Classifier,
        Regressor,
        Clusterer,
    }

    #[derive(Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Capability {
        PartialFit,
        PredictProba,
        StatelessTransform,
    }

    const CAPABILITIES: [(Capability, Capabilities); 3] = [
        (Capability::PartialFit, Capabilities::PARTIAL_FIT),
        (Capability::PredictProba, Capabilities::PREDICT_PROBA),
        (
            Capability::StatelessTransform,
            Capabilities::STATELESS_TRANSFORM,
        ),
    ];

    #[derive(Serialize, Deserialize)]
    struct Spec {
        name: String,
        description: String,
        kind: Type,
        default: Value,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Type {
        F64(Option<f64>, Option<f64>),
        S64(Option<i64>, Option<i64>),
        Bool,
        Choice(Vec<String>),
        Text,
    }

    pub fn serialize<S: Serializer>(info: &KernelInfo, s: S) -> Result<S::Ok, S::Error> {
        Info {
            name: info.name.clone(),
            version: info.version.clone(),
            kind: match info.kind {
                KernelKind::Transformer => Kind::Transformer,
                KernelKind::Classifier => Kind::Classifier,
                KernelKind::Regressor => Kind::Regressor,
                KernelKind::Clusterer => Kind::Clusterer,
            },
            description: info.description.clone(),
            params: info
                .params
                .iter()
                .map(|p| Spec {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    kind: match &p.kind {
                        ParamType::F64((lo, hi)) => Type::F64(*lo, *hi),
                        ParamType::S64((lo, hi)) => Type::S64(*lo, *hi),
                        ParamType::Bool => Type::Bool,
                        ParamType::Choice(c) => Type::Choice(c.clone()),
                        ParamType::Text => Type::Text,
                    },
                    default: Value::from(&p.default),
                })
                .collect(),
            capabilities: CAPABILITIES
                .iter()
                .filter(|(_, flag)| info.capabilities.contains(*flag))
                .map(|(c, _)| *c)
                .collect(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KernelInfo, D::Error> {
        let info = Info::deserialize(d)?;
        Ok(KernelInfo {
            name: info.name,
            version: info.version,
            kind: match info.kind {
                Kind::Transformer => KernelKind::Transformer,
                Kind::Classifier => KernelKind::Classifier,
                Kind::Regressor => KernelKind::Regressor,
                Kind::Clusterer => KernelKind::Clusterer,
            },
            description: info.description,
            params: info
                .params
                .into_iter()
                .map(|p| ParamSpec {
                    name: p.name,
                    description: p.description,
                    kind: match p.kind {
                        Type::F64(lo, hi) => ParamType::F64((lo, hi)),
                        Type::S64(lo, hi) => ParamType::S64((lo, hi)),
                        Type::Bool => ParamType::Bool,
                        Type::Choice(c) => ParamType::Choice(c),
                        Type::Text => ParamType::Text,
                    },
                    default: p.default.into(),
                })
                .collect(),
            capabilities: CAPABILITIES
                .iter()
                .filter(|(c, _)| info.capabilities.contains(c))
                .fold(Capabilities::empty(), |all, (_, flag)| all | *flag),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `describe` answer with every parameter type and capability
    /// survives the load record's JSON exactly.
    #[test]
    fn a_kernel_info_round_trips_through_json() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Record {
            #[serde(with = "info_serde")]
            info: KernelInfo,
        }
        let spec = |name: &str, kind: ParamType, default: ParamValue| ParamSpec {
            name: name.into(),
            description: format!("the {name}"),
            kind,
            default,
        };
        let info = KernelInfo {
            name: "k".into(),
            version: "1.2.3".into(),
            kind: KernelKind::Clusterer,
            description: "all of it".into(),
            params: vec![
                spec(
                    "a",
                    ParamType::F64((Some(0.1), None)),
                    ParamValue::F64(1e-12),
                ),
                spec("b", ParamType::S64((None, Some(9))), ParamValue::S64(-3)),
                spec("c", ParamType::Bool, ParamValue::Bool(true)),
                spec(
                    "d",
                    ParamType::Choice(vec!["x".into(), "y".into()]),
                    ParamValue::String("y".into()),
                ),
                spec("e", ParamType::Text, ParamValue::String(String::new())),
            ],
            capabilities: Capabilities::PARTIAL_FIT | Capabilities::STATELESS_TRANSFORM,
        };
        let json = serde_json::to_string(&Record { info: info.clone() }).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back.info, info);
    }

    /// The SDK builds from its own copy of the contract (so it builds
    /// outside this repository): it must be the host's, byte for byte.
    #[test]
    fn the_sdk_carries_the_hosts_wit() {
        assert_eq!(
            include_str!("../../../sdk/wit/kernel.wit"),
            include_str!("../../../wit/kernel.wit"),
            "sdk/wit/kernel.wit differs from wit/kernel.wit: copy wit/ into sdk/wit/"
        );
    }
}
