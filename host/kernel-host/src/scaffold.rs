//! `kernel-host new NAME --kind KIND`: a kernel crate that builds at once to
//! a component and passes `kernel-host test`.
//!
//! The SDK is not on a registry, so the crate carries it: by default a copy
//! of the `kernel-sdk` this host was built with (its sources are embedded in
//! the binary) goes to `vendor/kernel-sdk`, which builds on a fresh machine
//! with only crates.io reachable and pins the crate to the contract this
//! host runs. `--sdk-path` points at a checkout's `sdk/` instead, for work
//! on the SDK itself.

use crate::Error;
use crate::bindings::KernelKind;
use crate::recommend::toml_string;
use std::path::{Path, PathBuf};

/// Where the new crate finds `kernel-sdk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// A copy in the crate, at `vendor/kernel-sdk`.
    Vendored,
    /// A path dependency on this directory (absolute, or relative to the
    /// new crate).
    Path(PathBuf),
}

/// What to make.
#[derive(Clone, Debug)]
pub struct NewKernel {
    /// Kebab-case, e.g. `naive-bayes`: the crate, the kernel's `describe`
    /// name, and the component's file stem (with `_`).
    pub name: String,
    pub kind: KernelKind,
    /// The crate's directory; must not exist or be empty.
    pub dir: PathBuf,
    pub sdk: Sdk,
}

/// The SDK's files, as this host was built with them (relative path,
/// content). A test checks the list covers every file under `sdk/`.
pub const SDK_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../sdk/Cargo.toml")),
    (
        "wit/kernel.wit",
        include_str!("../../../sdk/wit/kernel.wit"),
    ),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    (
        "src/column_ops.rs",
        include_str!("../../../sdk/src/column_ops.rs"),
    ),
    (
        "src/columns.rs",
        include_str!("../../../sdk/src/columns.rs"),
    ),
    (
        "src/conformance.rs",
        include_str!("../../../sdk/src/conformance.rs"),
    ),
    ("src/error.rs", include_str!("../../../sdk/src/error.rs")),
    ("src/frame.rs", include_str!("../../../sdk/src/frame.rs")),
    ("src/labels.rs", include_str!("../../../sdk/src/labels.rs")),
    ("src/log.rs", include_str!("../../../sdk/src/log.rs")),
    ("src/matrix.rs", include_str!("../../../sdk/src/matrix.rs")),
    (
        "src/matrix_ops.rs",
        include_str!("../../../sdk/src/matrix_ops.rs"),
    ),
    ("src/params.rs", include_str!("../../../sdk/src/params.rs")),
    (
        "src/runtime.rs",
        include_str!("../../../sdk/src/runtime.rs"),
    ),
    ("src/tensor.rs", include_str!("../../../sdk/src/tensor.rs")),
    (
        "src/testing.rs",
        include_str!("../../../sdk/src/testing.rs"),
    ),
];

const CARGO_TOML: &str = include_str!("../templates/kernel/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("../templates/kernel/config.toml");
const GITIGNORE: &str = include_str!("../templates/kernel/gitignore");
const README: &str = include_str!("../templates/kernel/README.md.tmpl");

fn skeleton(kind: KernelKind) -> &'static str {
    match kind {
        KernelKind::Transformer => include_str!("../templates/kernel/transformer.rs"),
        KernelKind::Classifier => include_str!("../templates/kernel/classifier.rs"),
        KernelKind::Regressor => include_str!("../templates/kernel/regressor.rs"),
        KernelKind::Clusterer => include_str!("../templates/kernel/clusterer.rs"),
    }
}

/// Refuses a name that cannot be a crate, a kernel name and a type.
pub fn check_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('-').collect();
    let fine = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !fine {
        return Err(format!(
            "`{name}` is not a kernel name: use kebab-case (lowercase letters, digits and single \
             `-`, starting with a letter, at most 64), e.g. `naive-bayes`"
        ));
    }
    if [
        "kernel-sdk",
        "test",
        "core",
        "std",
        "alloc",
        "serde",
        "proc-macro",
    ]
    .contains(&name)
    {
        return Err(format!(
            "`{name}` would clash with a crate the kernel depends on; choose another name"
        ));
    }
    if KEYWORDS.contains(&name.replace('-', "_").as_str()) {
        return Err(format!(
            "`{name}` is a Rust keyword and cannot name a crate; choose another name"
        ));
    }
    let ty = type_name(name);
    if TAKEN.contains(&ty.as_str()) {
        return Err(format!(
            "`{name}` would make the kernel type `{ty}`, which the SDK's prelude or Rust's \
             already uses; choose another name (e.g. `my-{name}`)"
        ));
    }
    Ok(())
}

/// Rust keywords, which cannot name a crate.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "try", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield",
];

/// Type names the skeletons see already: the SDK's prelude and Rust's.
const TAKEN: &[&str] = &[
    "Capabilities",
    "Column",
    "ColumnValues",
    "ExplainEntry",
    "ExplainValue",
    "Explanation",
    "Frame",
    "Kernel",
    "KernelError",
    "KernelKind",
    "LabelType",
    "Matrix",
    "Meta",
    "NumericColumn",
    "ParamValue",
    "Params",
    "Serialize",
    "Deserialize",
    "Vec",
    "String",
    "Option",
    "Result",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
    "Self",
];

/// `naive-bayes` → `NaiveBayes`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn kind_name(kind: KernelKind) -> &'static str {
    match kind {
        KernelKind::Transformer => "transformer",
        KernelKind::Classifier => "classifier",
        KernelKind::Regressor => "regressor",
        KernelKind::Clusterer => "clusterer",
    }
}

/// The files of the new crate (relative path, content).
pub fn files(new: &NewKernel) -> Result<Vec<(PathBuf, String)>, Error> {
    check_name(&new.name).map_err(Error::Usage)?;
    let krate = new.name.replace('-', "_");
    let (sdk_dep, sdk_note, sdk_readme) = match &new.sdk {
        Sdk::Vendored => (
            "{ path = \"vendor/kernel-sdk\" }".to_string(),
            "The SDK is vendored (see README.md, \"The SDK\").".to_string(),
            format!(
                "`kernel-sdk` is not on crates.io yet, so this crate carries a copy in\n\
                 `vendor/kernel-sdk` (the one kernel-host {} was built with, for WIT\n\
                 `kernel-host:kernel@{}`). It builds anywhere with only crates.io reachable.\n\
                 To move to a newer SDK, run `kernel-host new` of the newer host in another\n\
                 directory and copy its `vendor/kernel-sdk` over this one.",
                env!("CARGO_PKG_VERSION"),
                crate::wit_version!()
            ),
        ),
        Sdk::Path(path) => {
            let shown = path.display().to_string();
            (
                format!("{{ path = {} }}", toml_string(&shown)),
                "A path to a kernel-sdk checkout.".to_string(),
                format!("`kernel-sdk` comes from the checkout at `{shown}` (`--sdk-path`)."),
            )
        }
    };
    let fill = |text: &str| {
        text.replace("__NAME__", &new.name)
            .replace("__CRATE__", &krate)
            .replace("__TYPE__", &type_name(&new.name))
            .replace("__KIND__", kind_name(new.kind))
            .replace("__HOST_VERSION__", env!("CARGO_PKG_VERSION"))
            .replace("__WIT__", crate::wit_version!())
            .replace("__SDK_NOTE__", &sdk_note)
            .replace("__SDK_README__", &sdk_readme)
            .replace("__SDK__", &sdk_dep)
            .replace(
                "__TARGET_LINE__",
                match new.kind {
                    KernelKind::Classifier | KernelKind::Regressor => {
                        "target = \"label\"   # the column to predict\n"
                    }
                    _ => "",
                },
            )
    };
    let mut out = vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (
            PathBuf::from(".cargo/config.toml"),
            CARGO_CONFIG.to_string(),
        ),
        (PathBuf::from(".gitignore"), GITIGNORE.to_string()),
        (PathBuf::from("README.md"), fill(README)),
        (PathBuf::from("src/lib.rs"), fill(skeleton(new.kind))),
    ];
    if new.sdk == Sdk::Vendored {
        for (path, content) in SDK_FILES {
            out.push((
                Path::new("vendor/kernel-sdk").join(path),
                content.to_string(),
            ));
        }
    }
    Ok(out)
}

/// Writes the new crate: into a temporary directory beside `new.dir`,
/// renamed into place at the end, so a failure leaves nothing half-made.
/// Returns the files written (relative to `new.dir`).
pub fn create(new: &NewKernel) -> Result<Vec<PathBuf>, Error> {
    let files = files(new)?;
    let dir = &new.dir;
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Error::Usage(format!(
                "{} already exists and is not empty; choose another --path or name",
                dir.display()
            )));
        }
        std::fs::remove_dir(dir).map_err(|e| Error::Io {
            context: format!("replacing the empty directory {}", dir.display()),
            source: e,
        })?;
    } else if dir.exists() {
        return Err(Error::Usage(format!(
            "{} exists and is not a directory",
            dir.display()
        )));
    }
    let tmp = kernel_host_types::fsutil::temporary_beside(dir, "new")
        .map_err(|e| Error::io(format!("preparing {}", dir.display()), e))?;
    let written = (|| {
        for (path, content) in &files {
            let full = tmp.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, content)?;
        }
        std::fs::rename(&tmp, dir)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::Io {
            context: format!("writing the new kernel crate to {}", dir.display()),
            source: e,
        });
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("naive-bayes").is_ok());
        assert!(check_name("knn2").is_ok());
        for bad in [
            "",
            "Naive",
            "naive_bayes",
            "-x",
            "x-",
            "a--b",
            "2x",
            "kernel-sdk",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(type_name("naive-bayes"), "NaiveBayes");
        assert_eq!(type_name("knn2"), "Knn2");
    }

    /// Every file of `sdk/` is embedded: a vendored SDK is the whole SDK.
    #[test]
    fn the_embedded_sdk_is_complete() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    on_disk.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = SDK_FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update scaffold::SDK_FILES");
        for (path, content) in SDK_FILES {
            assert_eq!(
                std::fs::read_to_string(root.join(path)).unwrap(),
                *content,
                "{path}"
            );
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for kind in [
            KernelKind::Transformer,
            KernelKind::Classifier,
            KernelKind::Regressor,
            KernelKind::Clusterer,
        ] {
            for sdk in [Sdk::Vendored, Sdk::Path("/opt/kernel sdk/\"x\"".into())] {
                let new = NewKernel {
                    name: "my-kernel".into(),
                    kind,
                    dir: "unused".into(),
                    sdk,
                };
                for (path, content) in files(&new).unwrap() {
                    if path.starts_with("vendor") {
                        continue;
                    }
                    assert!(!content.contains("__"), "{}: {content}", path.display());
                }
            }
        }
    }
}
