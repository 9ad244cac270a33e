//! CUDA when kernel-host is built without the `cuda` feature: never
//! available, and saying so. Keeps `cudarc` out of builds that cannot use it.

use super::Backend;
use std::sync::Arc;

/// No CUDA buffer can exist in this build.
pub enum Buffer {}

/// Whether CUDA can be used here: never, in this build.
#[derive(Clone)]
pub enum CudaProbe {
    Ready(Arc<dyn Backend>),
    Unavailable(String),
}

pub fn probe() -> CudaProbe {
    CudaProbe::Unavailable(
        "this kernel-host was built without the `cuda` feature; rebuild with `--features cuda`"
            .into(),
    )
}
