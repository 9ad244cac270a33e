//! Compiles every kernel and guest test program to a `wasm32-wasip2`
//! component with one nested cargo call, and writes their paths into
//! `$OUT_DIR/guests.rs`.
//!
//! The nested build uses its own target directory (`target/guests`, shared
//! with `scripts/quickstart`, so neither rebuilds what the other built),
//! the same cargo binary as the outer build (`$CARGO`), and none of the
//! outer build's flags: RUSTFLAGS, wrappers (clippy-driver) and target
//! settings are stripped.

// A build script reports failure by panicking with a message for the user.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, constant name) of every guest.
const GUESTS: &[(&str, &str)] = &[
    ("standard-scaler", "STANDARD_SCALER"),
    ("simple-imputer", "SIMPLE_IMPUTER"),
    ("one-hot-encoder", "ONE_HOT_ENCODER"),
    ("logistic-regression", "LOGISTIC_REGRESSION"),
    ("ridge-regression", "RIDGE_REGRESSION"),
    ("k-means", "K_MEANS"),
    ("sgd-classifier", "SGD_CLASSIFIER"),
    ("mlp-classifier", "MLP_CLASSIFIER"),
    ("pca", "PCA"),
    ("hostile", "HOSTILE"),
    ("opaque", "OPAQUE"),
    ("tensor-probe", "TENSOR_PROBE"),
    ("other-world", "OTHER_WORLD"),
    ("future-kernel", "FUTURE_KERNEL"),
    ("legacy-kernel", "LEGACY_KERNEL"),
    ("column-thief", "COLUMN_THIEF"),
];

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir
        .join("../../..")
        .canonicalize()
        .expect("workspace root");
    for dir in [
        "kernels",
        "sdk",
        "wit",
        "tests/guests",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target/guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // Each faulty kernel is an example of the `faulty` package.
    cmd.args(["-p", "faulty", "--lib", "--examples"]);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the guest components");
    if !status.success() {
        panic!(
            "building the guest components failed (see the cargo output above). \
             If the wasm32-wasip2 target is missing, run `rustup target add wasm32-wasip2`."
        );
    }

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut consts = String::new();
    for (package, name) in GUESTS {
        let file = artifact(&target_dir, package);
        assert!(
            file.is_file(),
            "expected {} after the guest build",
            file.display()
        );
        consts.push_str(&format!(
            "/// The `{package}` component.\npub const {name}: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    for (version, name) in [("0.1.1", "CONTRACT_0_1_1"), ("0.1.2", "CONTRACT_0_1_2")] {
        let contract = target_dir.join(format!(
            "wasm32-wasip2/release/examples/contract_{}.wasm",
            version.replace('.', "_")
        ));
        assert!(
            contract.is_file(),
            "expected {} after the guest build",
            contract.display()
        );
        consts.push_str(&format!(
            "/// A kernel built against contract {version} (`tests/guests/legacy-kernel/examples`).\npub const {name}: &str = {:?};\n",
            contract.display().to_string()
        ));
    }
    consts.push_str(
        "/// The faulty kernels (`tests/guests/faulty/examples`): (name, component).\npub const FAULTY: &[(&str, &str)] = &[\n",
    );
    let examples = root.join("tests/guests/faulty/examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .expect("listing the faulty kernels")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_string))
        .collect();
    names.sort();
    for name in names {
        let file = target_dir
            .join("wasm32-wasip2/release/examples")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.is_file(),
            "expected {} after the guest build",
            file.display()
        );
        consts.push_str(&format!(
            "    ({name:?}, {:?}),\n",
            file.display().to_string()
        ));
    }
    consts.push_str("];\n");
    std::fs::write(out.join("guests.rs"), consts).expect("writing guests.rs");
}

fn artifact(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
