//! A local, content-addressed registry of kernels by `name@version`.
//!
//! Components are stored once under their sha256 (`blobs/<sha256>.wasm`);
//! `index.json` maps each name and semver version, as the kernel's own
//! `describe` reports them, to a blob. Manifests may name a kernel as
//! `kernel = "standard-scaler@^1.0"`; `kernel-host lock` pins each such
//! kernel to an exact version and sha256 in `kernel-host.lock` beside the
//! manifest (like Cargo.lock), `run` honours the lock, and `kernel-host
//! upgrade` moves the pins to the newest versions the ranges allow.
//!
//! The directory is `$KERNEL_HOST_REGISTRY`, else
//! `$XDG_DATA_HOME/kernel-host/registry`, else
//! `~/.local/share/kernel-host/registry`. Every write is atomic.

use crate::KernelComponent;
use crate::error::Error;
use crate::{Sandbox, sha256_hex};
use anyhow::Context as _;
pub use kernel_host_manifest::{Lock, Pin, parse_reference};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One registered version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sha256: String,
    pub kind: String,
    pub description: String,
    /// The kernel-host WIT version it was built for.
    pub wit: String,
    pub added: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    /// name → version → entry.
    kernels: BTreeMap<String, BTreeMap<String, Entry>>,
}

/// A registry directory.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// `$KERNEL_HOST_REGISTRY`, `$XDG_DATA_HOME/kernel-host/registry` or
    /// `~/.local/share/kernel-host/registry`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KERNEL_HOST_REGISTRY").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("kernel-host/registry");
        }
        std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".local/share/kernel-host/registry"))
            .unwrap_or_else(|| PathBuf::from(".kernel-host-registry"))
    }

    pub fn open(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index(&self) -> anyhow::Result<Index> {
        let path = self.dir.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, index: &Index) -> anyhow::Result<()> {
        crate::fsutil::write_atomic(
            &self.dir.join("index.json"),
            &serde_json::to_vec_pretty(index)?,
        )
    }

    /// Where the component with this sha256 is stored.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{sha256}.wasm"))
    }

    /// Verifies the component at `path` (as `run` would), asks it its name
    /// and version, and stores it. Adding the same bytes again is a no-op;
    /// different bytes under a registered version are refused.
    pub async fn add(
        &self,
        sandbox: &Sandbox,
        path: &Path,
    ) -> Result<(String, Version, Entry), Error> {
        let component = KernelComponent::load(sandbox, "registry", path, None).await?;
        let info = component.info();
        let version = Version::parse(&info.version).map_err(|e| {
            Error::Usage(format!(
                "{} describes its version as \"{}\", which is not semver: {e}; fix the kernel's describe",
                path.display(),
                info.version
            ))
        })?;
        let mut index = self
            .index()
            .map_err(|e| Error::io("reading the registry index", e))?;
        let versions = index.kernels.entry(info.name.clone()).or_default();
        if let Some(existing) = versions.get(&version.to_string()) {
            if existing.sha256 == component.sha256() {
                return Ok((info.name.clone(), version, existing.clone()));
            }
            return Err(Error::Usage(format!(
                "{}@{version} is already registered with sha256 {}; this file hashes to {}: bump the kernel's version",
                info.name,
                existing.sha256,
                component.sha256()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        if sha256_hex(&bytes) != component.sha256() {
            return Err(Error::Usage(format!(
                "{} changed while it was being added; add it again",
                path.display()
            )));
        }
        crate::fsutil::write_atomic(&self.blob(component.sha256()), &bytes)
            .map_err(|e| Error::io("storing the component in the registry", e))?;
        let entry = Entry {
            sha256: component.sha256().to_string(),
            kind: info.kind.to_string(),
            description: info.description.clone(),
            wit: component.wit_version().to_string(),
            added: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        versions.insert(version.to_string(), entry.clone());
        self.save(&index)
            .map_err(|e| Error::io("writing the registry index", e))?;
        Ok((info.name.clone(), version, entry))
    }

    /// Every registered kernel version, by name then version.
    pub fn list(&self) -> anyhow::Result<Vec<(String, Version, Entry)>> {
        let index = self.index()?;
        let mut out = Vec::new();
        for (name, versions) in index.kernels {
            let mut sorted: Vec<(Version, Entry)> = versions
                .into_iter()
                .filter_map(|(v, e)| Version::parse(&v).ok().map(|v| (v, e)))
                .collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(sorted.into_iter().map(|(v, e)| (name.clone(), v, e)));
        }
        Ok(out)
    }

    /// The versions of `name`, oldest first.
    pub fn versions(&self, name: &str) -> anyhow::Result<Vec<(Version, Entry)>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, v, e)| (v, e))
            .collect())
    }

    /// The newest version of `name` that `req` allows.
    pub fn resolve(&self, name: &str, req: &VersionReq) -> anyhow::Result<(Version, Entry)> {
        let versions = self.versions(name)?;
        if versions.is_empty() {
            anyhow::bail!(
                "no kernel `{name}` in the registry at {}; add it with `kernel-host registry add`",
                self.dir.display()
            );
        }
        versions
            .iter()
            .rev()
            .find(|(v, _)| req.matches(v))
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = versions.iter().map(|(v, _)| v.to_string()).collect();
                anyhow::anyhow!(
                    "no version of `{name}` matches {req}; registered: {}",
                    known.join(", ")
                )
            })
    }

    /// Removes `name@version`; its blob goes when nothing else uses it.
    pub fn remove(&self, name: &str, version: &Version) -> anyhow::Result<Entry> {
        let mut index = self
            .index()
            .map_err(|e| Error::io("reading the registry index", e))?;
        let entry = index
            .kernels
            .get_mut(name)
            .and_then(|v| v.remove(&version.to_string()))
            .ok_or_else(|| anyhow::anyhow!("{name}@{version} is not in the registry"))?;
        index.kernels.retain(|_, v| !v.is_empty());
        self.save(&index)?;
        if !index
            .kernels
            .values()
            .flat_map(|v| v.values())
            .any(|e| e.sha256 == entry.sha256)
        {
            let _ = std::fs::remove_file(self.blob(&entry.sha256));
        }
        Ok(entry)
    }
}

/// Manifests find `registry = "name@range"` kernels here.
impl kernel_host_manifest::KernelResolver for Registry {
    fn resolve(
        &self,
        name: &str,
        req: &VersionReq,
    ) -> Result<kernel_host_manifest::Resolved, String> {
        let (version, entry) = Registry::resolve(self, name, req).map_err(|e| e.to_string())?;
        Ok(kernel_host_manifest::Resolved {
            version,
            blob: self.blob(&entry.sha256),
            sha256: entry.sha256,
        })
    }

    fn blob(&self, sha256: &str) -> Option<PathBuf> {
        Some(Registry::blob(self, sha256)).filter(|p| p.is_file())
    }

    fn location(&self) -> String {
        format!("the registry at {}", self.dir.display())
    }
}
