//! Typed, validated kernel parameters.
//!
//! [`params!`](crate::params!) declares a plain struct together with the
//! specs `describe` reports and the parsing `configure` does: unknown names,
//! wrong types, out-of-range numbers and unknown choices are refused with
//! [`KernelError::InvalidParams`] naming the parameter, before the kernel's
//! own code runs.

use crate::{KernelError, Param, ParamSpec, ParamType, ParamValue};

/// A parameter struct made by [`params!`](crate::params!).
pub trait Params:
    Sized + Clone + Default + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    /// One spec per field, in declaration order.
    fn specs() -> Vec<ParamSpec>;

    /// Defaults overridden by `params`, validated against [`Params::specs`].
    fn from_params(params: &[Param]) -> Result<Self, KernelError>;
}

/// A Rust type usable as a parameter field.
pub trait ParamField: Sized {
    fn param_type(min: Option<f64>, max: Option<f64>, choices: &[&str]) -> ParamType;
    fn to_value(&self) -> ParamValue;
    /// Converts a value of a compatible type; `None` when the type is wrong.
    fn from_value(value: &ParamValue) -> Option<Self>;
}

impl ParamField for f64 {
    fn param_type(min: Option<f64>, max: Option<f64>, _: &[&str]) -> ParamType {
        ParamType::F64((min, max))
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::F64(*self)
    }
    fn from_value(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::F64(v) => Some(*v),
            // TOML writes `alpha = 1` as an integer; accept it for floats.
            ParamValue::S64(v) => Some(*v as f64),
            _ => None,
        }
    }
}

macro_rules! integer_field {
    ($($t:ty),*) => {$(
        impl ParamField for $t {
            fn param_type(min: Option<f64>, max: Option<f64>, _: &[&str]) -> ParamType {
                let lowest = <$t>::MIN as f64;
                let min = Some(min.unwrap_or(lowest).max(lowest));
                ParamType::S64((min.map(|m| m as i64), max.map(|m| m as i64)))
            }
            fn to_value(&self) -> ParamValue {
                ParamValue::S64(*self as i64)
            }
            fn from_value(value: &ParamValue) -> Option<Self> {
                match value {
                    ParamValue::S64(v) => <$t>::try_from(*v).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
integer_field!(i64, u32, u64, usize);

impl ParamField for bool {
    fn param_type(_: Option<f64>, _: Option<f64>, _: &[&str]) -> ParamType {
        ParamType::Bool
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Bool(*self)
    }
    fn from_value(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

impl ParamField for String {
    fn param_type(_: Option<f64>, _: Option<f64>, choices: &[&str]) -> ParamType {
        if choices.is_empty() {
            ParamType::Text
        } else {
            ParamType::Choice(choices.iter().map(|c| c.to_string()).collect())
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::String(self.clone())
    }
    fn from_value(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::String(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// Lets a default be written as a literal of a nearby type (`"mean"` for a
/// `String` field).
#[doc(hidden)]
pub trait IntoDefault<T> {
    fn into_default(self) -> T;
}

impl<T> IntoDefault<T> for T {
    fn into_default(self) -> T {
        self
    }
}

impl IntoDefault<String> for &str {
    fn into_default(self) -> String {
        self.to_string()
    }
}

/// Checks one supplied value against its spec. Used by the code
/// [`params!`](crate::params!) generates.
#[doc(hidden)]
pub fn check<T: ParamField>(spec: &ParamSpec, value: &ParamValue) -> Result<T, KernelError> {
    let name = &spec.name;
    let parsed = T::from_value(value).ok_or_else(|| {
        KernelError::invalid_params(format!(
            "parameter `{name}` expects {}, got {}",
            describe_type(&spec.kind),
            describe_value(value)
        ))
    })?;
    let out_of_range = |shown: String| {
        KernelError::invalid_params(format!(
            "parameter `{name}` = {shown} is out of range: expected {}",
            describe_type(&spec.kind)
        ))
    };
    match (&spec.kind, value) {
        (ParamType::F64((min, max)), _) => {
            let v = match value {
                ParamValue::F64(v) => *v,
                ParamValue::S64(v) => *v as f64,
                _ => f64::NAN,
            };
            if v.is_nan() || min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                return Err(out_of_range(v.to_string()));
            }
        }
        (ParamType::S64((min, max)), ParamValue::S64(v))
            if min.is_some_and(|m| *v < m) || max.is_some_and(|m| *v > m) =>
        {
            return Err(out_of_range(v.to_string()));
        }
        (ParamType::Choice(choices), ParamValue::String(v)) if !choices.contains(v) => {
            return Err(KernelError::invalid_params(format!(
                "parameter `{name}` = \"{v}\" is not one of {}",
                choices.join(", ")
            )));
        }
        _ => {}
    }
    Ok(parsed)
}

/// Refuses a parameter list naming a parameter twice or one that does not
/// exist. Used by the code [`params!`](crate::params!) generates.
#[doc(hidden)]
pub fn check_names(specs: &[ParamSpec], params: &[Param]) -> Result<(), KernelError> {
    for (i, param) in params.iter().enumerate() {
        if !specs.iter().any(|s| s.name == param.name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(KernelError::invalid_params(format!(
                "unknown parameter `{}`; this kernel accepts: {}",
                param.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if params[..i].iter().any(|p| p.name == param.name) {
            return Err(KernelError::invalid_params(format!(
                "parameter `{}` is given twice",
                param.name
            )));
        }
    }
    Ok(())
}

/// `0.5`, `1e-12`: plain notation where it stays short.
fn number(x: f64) -> String {
    if x == 0.0 || (1e-4..1e9).contains(&x.abs()) {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}

fn describe_type(t: &ParamType) -> String {
    let bound = |b: Option<String>| b.unwrap_or_else(|| "..".into());
    match t {
        ParamType::F64((min, max)) => format!(
            "a number in [{}, {}]",
            bound(min.map(number)),
            bound(max.map(number))
        ),
        ParamType::S64((min, max)) => format!(
            "an integer in [{}, {}]",
            bound(min.map(|v| v.to_string())),
            bound(max.map(|v| v.to_string()))
        ),
        ParamType::Bool => "true or false".into(),
        ParamType::Choice(c) => format!("one of {}", c.join(", ")),
        ParamType::Text => "a string".into(),
    }
}

fn describe_value(v: &ParamValue) -> String {
    match v {
        ParamValue::F64(v) => format!("the number {v}"),
        ParamValue::S64(v) => format!("the integer {v}"),
        ParamValue::Bool(v) => format!("the boolean {v}"),
        ParamValue::String(v) => format!("the string \"{v}\""),
    }
}

/// Declares a kernel's parameters: a struct, its defaults, and the specs
/// and validation behind `describe` and `configure`.
///
/// Each field is `name: Type = default` followed optionally by
/// `, range(min, max)` (numbers) or `, one_of["a", "b"]` (strings), and
/// ends with `;`. Doc comments become the parameter's description.
///
/// ```
/// kernel_sdk::params! {
///     pub struct RidgeParams {
///         /// L2 penalty strength.
///         alpha: f64 = 1.0, range(0.0, 1e12);
///         /// How to fill gaps.
///         strategy: String = "mean", one_of["mean", "median"];
///         fit_intercept: bool = true;
///     }
/// }
/// ```
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr
                $(, range($min:expr, $max:expr))?
                $(, one_of[$($choice:literal),* $(,)?])?
                ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $crate::__params::IntoDefault::<$ty>::into_default($default), )*
                }
            }
        }

        impl $crate::Params for $name {
            fn specs() -> ::std::vec::Vec<$crate::ParamSpec> {
                // Unused by a kernel without parameters.
                #[allow(unused_variables)]
                let defaults = <Self as ::core::default::Default>::default();
                ::std::vec![$(
                    $crate::ParamSpec {
                        name: ::core::stringify!($field).to_string(),
                        description: ::core::concat!($($doc, " ",)* "").trim().to_string(),
                        kind: <$ty as $crate::ParamField>::param_type(
                            None $(.or(Some($min as f64)))?,
                            None $(.or(Some($max as f64)))?,
                            &[$($($choice),*)?],
                        ),
                        default: <$ty as $crate::ParamField>::to_value(&defaults.$field),
                    },
                )*]
            }

            fn from_params(
                params: &[$crate::Param],
            ) -> ::core::result::Result<Self, $crate::KernelError> {
                let specs = <Self as $crate::Params>::specs();
                $crate::__params::check_names(&specs, params)?;
                #[allow(unused_mut)]
                let mut out = <Self as ::core::default::Default>::default();
                for param in params {
                    #[allow(unused_variables)]
                    let spec = specs.iter().find(|s| s.name == param.name);
                    $(
                        if param.name == ::core::stringify!($field) {
                            if let Some(spec) = spec {
                                out.$field = $crate::__params::check::<$ty>(spec, &param.value)?;
                            }
                        }
                    )*
                }
                Ok(out)
            }
        }
    };
}
