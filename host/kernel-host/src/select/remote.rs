//! Trials scored in another process, possibly on another machine (a Ray
//! task started by the Python package): what travels, and how the worker
//! turns it back into a plan it can cross-validate.
//!
//! A trial's plan travels as JSON with every kernel pinned by its sha256;
//! the kernels themselves travel once per search, keyed by that sha256
//! ([`kernels`]), and the rows and folds once ([`super::Dataset`]). The
//! worker writes each kernel it receives to a private folder under its
//! name by content and points the plan at it ([`localize`]); loading then
//! checks the pin, so a file swapped in that folder is refused, not run.

use crate::manifest::KernelSpec;
use crate::{Error, Plan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Calls `f` on every kernel spec of `plan`: each step's, then its shadow's.
fn each_spec(
    plan: &mut Plan,
    mut f: impl FnMut(&mut KernelSpec) -> Result<(), Error>,
) -> Result<(), Error> {
    for step in &mut plan.steps {
        f(step)?;
        if let Some(shadow) = step.shadow.as_deref_mut() {
            f(shadow)?;
        }
    }
    Ok(())
}

/// Every kernel `plans` run (steps and shadows), read once each, by sha256;
/// the plans are pinned to them so that the worker can check what it got.
pub fn kernels(plans: &mut [Plan]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    let mut read: BTreeMap<PathBuf, String> = BTreeMap::new();
    for plan in plans.iter_mut() {
        each_spec(plan, |spec| {
            let sha = match read.get(&spec.source) {
                Some(sha) => sha.clone(),
                None => {
                    let bytes = kernel_host_types::fsutil::read_limited(
                        &spec.source,
                        kernel_host_sandbox::MAX_KERNEL_BYTES,
                    )
                    .map_err(|e| Error::Io {
                        context: format!(
                            "reading kernel `{}` ({})",
                            spec.id,
                            spec.source.display()
                        ),
                        source: e,
                    })?;
                    let sha = crate::sha256_hex(&bytes);
                    if let Some(pinned) = &spec.sha256
                        && !pinned.eq_ignore_ascii_case(&sha)
                    {
                        return Err(Error::Usage(format!(
                            "kernel `{}` ({}) has sha256 {sha}, but the manifest pins {pinned}: \
                             rebuild it or update the pin",
                            spec.id,
                            spec.source.display()
                        )));
                    }
                    read.insert(spec.source.clone(), sha.clone());
                    out.insert(sha.clone(), bytes);
                    sha
                }
            };
            spec.sha256 = Some(sha);
            Ok(())
        })?;
    }
    Ok(out)
}

/// `plan` as the JSON a worker reads back with [`plan_of`].
pub fn plan_json(plan: &Plan) -> Result<String, Error> {
    serde_json::to_string(plan).map_err(|e| Error::Internal(format!("writing the plan: {e}")))
}

/// A plan sent as [`plan_json`].
pub fn plan_of(json: &str) -> Result<Plan, Error> {
    serde_json::from_str(json).map_err(|e| {
        Error::Usage(format!(
            "the trial's plan cannot be read ({e}): the driver and this worker must run the same \
             kernel-host version"
        ))
    })
}

/// The folder a worker keeps received kernels in: private to this user.
pub fn kernel_dir() -> Result<PathBuf, Error> {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("kernel-host-{user}-kernels"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir)
}

/// Points every kernel of `plan` at its bytes among `kernels` (by the
/// sha256 it is pinned to), written under `dir` once per content.
pub fn localize(
    mut plan: Plan,
    kernels: &BTreeMap<String, Vec<u8>>,
    dir: &Path,
) -> Result<Plan, Error> {
    each_spec(&mut plan, |spec| {
        let sha = spec.sha256.clone().ok_or_else(|| {
            Error::Usage(format!(
                "kernel `{}` travelled without its sha256: ship plans made by `remote::kernels`",
                spec.id
            ))
        })?;
        let bytes = kernels.get(&sha).ok_or_else(|| {
            Error::Usage(format!(
                "kernel `{}` (sha256 {sha}) is not among the kernels sent with the trial",
                spec.id
            ))
        })?;
        if !sha.bytes().all(|b| b.is_ascii_hexdigit()) || sha.len() != 64 {
            return Err(Error::Usage(format!(
                "kernel `{}`: `{sha}` is not a sha256",
                spec.id
            )));
        }
        let path = dir.join(format!("{sha}.wasm"));
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !present {
            kernel_host_types::fsutil::write_atomic(&path, bytes).map_err(|e| {
                Error::io(
                    format!("writing kernel `{}` to {}", spec.id, path.display()),
                    e,
                )
            })?;
        }
        spec.source = path;
        Ok(())
    })?;
    Ok(plan)
}
