//! Dispatch from the WIT exports to a [`Kernel`]. The exported component
//! (through `export_kernel!`) and the native harness
//! ([`crate::testing::Local`]) both go through this one type, so what a unit
//! test sees is what the host sees.

use crate::{
    Capabilities, Column, Explanation, Frame, FrameRef, HostColumn, Kernel, KernelError,
    KernelInfo, Param, Params, error,
};
use serde::{Deserialize, Serialize};

/// The kernel value plus what the SDK tracks for it.
pub struct Runtime<K: Kernel> {
    kernel: K,
    fitted: bool,
}

/// The bytes `save-state` returns: who wrote them, then the kernel itself.
#[derive(Serialize, Deserialize)]
struct Saved<K> {
    name: String,
    version: String,
    fitted: bool,
    kernel: K,
}

impl<K: Kernel> Default for Runtime<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Kernel> Runtime<K> {
    /// An unfitted kernel with default parameters.
    pub fn new() -> Self {
        Runtime {
            kernel: K::new(K::Params::default()),
            fitted: false,
        }
    }

    pub fn describe() -> KernelInfo {
        let meta = K::meta();
        KernelInfo {
            name: meta.name.to_string(),
            version: meta.version.to_string(),
            kind: meta.kind,
            description: meta.description.to_string(),
            params: K::Params::specs(),
            capabilities: meta.capabilities,
        }
    }

    /// The kernel itself, for native tests that inspect what it learned.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn configure(&mut self, params: &[Param]) -> Result<(), KernelError> {
        let params = K::Params::from_params(params)?;
        K::check(&params).map_err(KernelError::InvalidParams)?;
        self.kernel = K::new(params);
        self.fitted = false;
        Ok(())
    }

    pub fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        check_input(x, y)?;
        self.fitted = false;
        self.kernel.fit(x, y)?;
        self.fitted = true;
        Ok(())
    }

    pub fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        check_input(x, y)?;
        self.kernel.partial_fit(x, y)?;
        self.fitted = true;
        Ok(())
    }

    fn require_fitted(&self) -> Result<(), KernelError> {
        if self.fitted {
            Ok(())
        } else {
            Err(error::not_fitted())
        }
    }

    pub fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        if !K::meta()
            .capabilities
            .contains(Capabilities::STATELESS_TRANSFORM)
        {
            self.require_fitted()?;
        }
        check_input(&x, None)?;
        let rows = x.rows;
        let out = self.kernel.transform(x)?;
        out.check()?;
        if out.rows != rows {
            return Err(KernelError::failed(format!(
                "transform returned {} rows for {rows} input rows",
                out.rows
            )));
        }
        Ok(out)
    }

    /// The operations the kernel declares by reference.
    pub fn by_reference() -> Vec<String> {
        K::meta()
            .by_reference
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        check_ref(&x, y)?;
        self.fitted = false;
        self.kernel.fit_ref(x, y)?;
        self.fitted = true;
        Ok(())
    }

    pub fn partial_fit_ref(
        &mut self,
        x: &FrameRef,
        y: Option<&HostColumn>,
    ) -> Result<(), KernelError> {
        check_ref(x, y)?;
        self.kernel.partial_fit_ref(x, y)?;
        self.fitted = true;
        Ok(())
    }

    pub fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        if !K::meta()
            .capabilities
            .contains(Capabilities::STATELESS_TRANSFORM)
        {
            self.require_fitted()?;
        }
        check_ref(&x, None)?;
        let rows = x.rows;
        let out = self.kernel.transform_ref(x)?;
        if out.rows != rows {
            return Err(KernelError::failed(format!(
                "transform returned {} rows for {rows} input rows",
                out.rows
            )));
        }
        let mut names = std::collections::HashSet::new();
        for column in &out.columns {
            let name = column.name();
            if column.len() != rows as usize {
                return Err(KernelError::failed(format!(
                    "transform returned column `{name}` of {} rows for {rows} input rows",
                    column.len()
                )));
            }
            if !names.insert(name.clone()) {
                return Err(KernelError::failed(format!(
                    "transform returned two columns named `{name}`"
                )));
            }
        }
        Ok(out)
    }

    pub fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        self.require_fitted()?;
        check_input(x, None)?;
        self.kernel.predict(x)
    }

    pub fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        self.require_fitted()?;
        check_input(x, None)?;
        self.kernel.predict_proba(x)
    }

    pub fn explain(&self) -> Result<Explanation, KernelError> {
        self.require_fitted()?;
        self.kernel.explain()
    }

    pub fn save_state(&self) -> Result<Vec<u8>, KernelError> {
        let meta = K::meta();
        let saved = Saved {
            name: meta.name.to_string(),
            version: meta.version.to_string(),
            fitted: self.fitted,
            kernel: &self.kernel,
        };
        postcard::to_allocvec(&saved)
            .map_err(|e| KernelError::failed(format!("could not encode state: {e}")))
    }

    pub fn load_state(&mut self, state: &[u8]) -> Result<(), KernelError> {
        let meta = K::meta();
        let saved: Saved<K> = postcard::from_bytes(state).map_err(|e| {
            KernelError::InvalidState(format!("state is not a saved `{}` kernel ({e})", meta.name))
        })?;
        if saved.name != meta.name {
            return Err(KernelError::InvalidState(format!(
                "state was saved by kernel `{}`, not `{}`",
                saved.name, meta.name
            )));
        }
        if major(&saved.version) != major(meta.version) {
            return Err(KernelError::InvalidState(format!(
                "state was saved by {}@{}, which is not compatible with version {}",
                saved.name, saved.version, meta.version
            )));
        }
        self.kernel = saved.kernel;
        self.fitted = saved.fitted;
        Ok(())
    }
}

/// The semver-compatibility part of a version: `1` for `1.4.2`, `0.3` for
/// `0.3.1`.
fn major(version: &str) -> &str {
    let mut parts = version.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(_)) => version
            .char_indices()
            .filter(|(_, c)| *c == '.')
            .nth(1)
            .map_or(version, |(i, _)| &version[..i]),
        (Some(m), _) => m,
        _ => version,
    }
}

fn check_ref(x: &FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
    if let Some(bad) = x.columns.iter().find(|c| c.len() != x.rows as usize) {
        return Err(KernelError::invalid_input(format!(
            "column `{}` does not have the frame's {} rows",
            bad.name(),
            x.rows
        )));
    }
    if let Some(y) = y
        && y.len() != x.rows as usize
    {
        return Err(KernelError::invalid_input(format!(
            "target column `{}` has {} rows but the input has {}",
            y.name(),
            y.len(),
            x.rows
        )));
    }
    Ok(())
}

fn check_input(x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
    x.check()?;
    if let Some(y) = y
        && y.len() != x.len()
    {
        return Err(KernelError::invalid_input(format!(
            "target column `{}` has {} rows but the input has {}",
            y.name,
            y.len(),
            x.rows
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::major;

    #[test]
    fn semver_compatibility_part() {
        assert_eq!(major("1.4.2"), "1");
        assert_eq!(major("0.3.1"), "0.3");
        assert_eq!(major("0.3"), "0.3");
    }
}
