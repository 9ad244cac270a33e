//! Constructors for [`KernelError`], so kernels write
//! `KernelError::invalid_input(format!(..))` rather than naming variants.

use crate::KernelError;

impl KernelError {
    pub fn invalid_params(message: impl Into<String>) -> Self {
        KernelError::InvalidParams(message.into())
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        KernelError::InvalidInput(message.into())
    }

    pub fn not_fitted(message: impl Into<String>) -> Self {
        KernelError::NotFitted(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        KernelError::Failed(message.into())
    }

    /// The human-readable text, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            KernelError::InvalidParams(m)
            | KernelError::InvalidInput(m)
            | KernelError::NotFitted(m)
            | KernelError::Unsupported(m)
            | KernelError::InvalidState(m)
            | KernelError::Failed(m) => m,
        }
    }
}

pub(crate) fn unsupported(operation: &str) -> KernelError {
    KernelError::Unsupported(format!("this kernel does not implement `{operation}`"))
}

/// The error every kernel returns when asked to use state it does not have.
pub(crate) fn not_fitted() -> KernelError {
    KernelError::not_fitted("call `fit` before using the kernel")
}
