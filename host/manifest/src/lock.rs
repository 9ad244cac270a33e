//! `kernel-host.lock` and registry references: which exact version and
//! blob each `registry = "name@range"` kernel of a manifest runs, and how a
//! manifest finds registry kernels at all ([`KernelResolver`], which the
//! registry implements; the parser never looks for a registry itself).

use anyhow::Context as _;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A registry kernel as a [`KernelResolver`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub version: Version,
    pub sha256: String,
    /// The component file.
    pub blob: PathBuf,
}

/// Where a manifest's registry kernels come from. The registry implements
/// it; [`NoRegistry`] refuses every registry kernel with a message saying
/// how to give one.
pub trait KernelResolver {
    /// The newest version of `name` that `req` allows.
    fn resolve(&self, name: &str, req: &VersionReq) -> Result<Resolved, String>;
    /// The stored component with this sha256, when it is there.
    fn blob(&self, sha256: &str) -> Option<PathBuf>;
    /// Where the kernels come from, for messages (e.g. the registry's path).
    fn location(&self) -> String;
}

/// No registry: a manifest that names registry kernels is refused.
pub struct NoRegistry;

impl KernelResolver for NoRegistry {
    fn resolve(&self, name: &str, _: &VersionReq) -> Result<Resolved, String> {
        Err(format!(
            "registry kernel `{name}` cannot be resolved: this plan was loaded without a registry \
             (the CLI uses $KERNEL_HOST_REGISTRY or the default one; from Rust, pass a \
             `Registry` to `Plan::load_with`)"
        ))
    }

    fn blob(&self, _: &str) -> Option<PathBuf> {
        None
    }

    fn location(&self) -> String {
        "no registry".into()
    }
}

/// `name@range`, as a manifest names a registry kernel.
pub fn parse_reference(reference: &str) -> Result<(String, VersionReq), String> {
    let (name, req) = reference.split_once('@').unwrap_or((reference, "*"));
    if name.is_empty() {
        return Err(format!(
            "\"{reference}\" names no kernel; write name@range, e.g. standard-scaler@^1.0"
        ));
    }
    let req = VersionReq::parse(req).map_err(|e| {
        format!("\"{req}\" is not a version range ({e}); e.g. ^1.2, ~1.2.3, =1.0.0")
    })?;
    Ok((name.to_string(), req))
}

/// One pin of `kernel-host.lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The `[kernels.*]` entry.
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// The largest lock file read: a pin takes about 150 bytes, so 16 MiB is
/// over 100 000 pinned kernels; the bound keeps a device or a huge file in
/// its place from being read into memory.
pub const MAX_LOCK_BYTES: u64 = 16 << 20;

/// `kernel-host.lock`: exact versions and hashes of a manifest's registry
/// kernels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default, rename = "kernel")]
    pub pins: Vec<Pin>,
}

impl Lock {
    /// The lock file of the manifest at `manifest`.
    pub fn path_for(manifest: &Path) -> PathBuf {
        manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join("kernel-host.lock")
    }

    /// Reads the lock beside `manifest`, if there is one. Anything but a
    /// regular file of at most [`MAX_LOCK_BYTES`] is refused with what it is.
    pub fn read(manifest: &Path) -> anyhow::Result<Option<Lock>> {
        let path = Self::path_for(manifest);
        match kernel_host_types::fsutil::read_limited_string(&path, MAX_LOCK_BYTES) {
            Ok(text) => Ok(Some(
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write(&self, manifest: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# Written by `kernel-host lock`: exact versions of the registry kernels this\n# manifest uses. Commit it; `kernel-host upgrade` moves the pins.\n\n{}",
            toml::to_string(self)?
        );
        kernel_host_types::fsutil::write_atomic(&Self::path_for(manifest), text.as_bytes())
    }

    pub fn pin(&self, id: &str) -> Option<&Pin> {
        self.pins.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_that_is_a_device_is_refused_not_read_forever() {
        let dir = std::env::temp_dir().join(format!("kh-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("m.toml");
        assert_eq!(Lock::read(&manifest).unwrap(), None);
        let lock = Lock::path_for(&manifest);
        std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
        let e = Lock::read(&manifest).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            format!("{e:#}").ends_with("is a character device, not a regular file"),
            "{e:#}"
        );
        let io = e.root_cause().downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    }
}
