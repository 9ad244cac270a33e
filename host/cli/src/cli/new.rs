//! `kernel-host new NAME --kind KIND [--path DIR] [--sdk-path DIR]`.

use kernel_host::Error;
use kernel_host::bindings::KernelKind;
use kernel_host::scaffold::{self, NewKernel, Sdk};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Transformer,
    Classifier,
    Regressor,
    Clusterer,
}

#[derive(Clone, clap::Args)]
#[command(
    after_help = "The crate carries its own copy of kernel-sdk (vendor/kernel-sdk), so it builds anywhere crates.io is reachable.

Examples:
  kernel-host new naive-bayes --kind classifier
  cd naive-bayes && cargo build --release --target wasm32-wasip2
  kernel-host test target/wasm32-wasip2/release/naive_bayes.wasm"
)]
pub struct NewArgs {
    /// The kernel's name, kebab-case (e.g. `naive-bayes`): crate, kernel and component name.
    pub name: String,
    /// What the kernel does; the skeleton is a working kernel of that kind.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The crate's directory (default: ./NAME). It must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Depend on the kernel-sdk at DIR (a checkout's `sdk/`) instead of vendoring a copy.
    #[arg(long, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

pub fn new(args: NewArgs) -> Result<(), Error> {
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = match args.sdk_path {
        None => Sdk::Vendored,
        Some(path) => {
            let path = std::fs::canonicalize(&path).map_err(|e| Error::Io {
                context: format!("--sdk-path {}", path.display()),
                source: e,
            })?;
            if !path.join("Cargo.toml").is_file() || !path.join("wit/kernel.wit").is_file() {
                return Err(Error::Usage(format!(
                    "--sdk-path {} is not a kernel-sdk (no Cargo.toml and wit/kernel.wit)",
                    path.display()
                )));
            }
            Sdk::Path(path)
        }
    };
    let kind_name = clap::ValueEnum::to_possible_value(&args.kind)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let new = NewKernel {
        name: args.name.clone(),
        kind: match args.kind {
            Kind::Transformer => KernelKind::Transformer,
            Kind::Classifier => KernelKind::Classifier,
            Kind::Regressor => KernelKind::Regressor,
            Kind::Clusterer => KernelKind::Clusterer,
        },
        dir: dir.clone(),
        sdk,
    };
    let files = scaffold::create(&new)?;
    println!(
        "created {} ({} files): a working {} kernel to start from",
        dir.display(),
        files.len(),
        kind_name
    );
    let component = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        args.name.replace('-', "_")
    );
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo build --release --target wasm32-wasip2   # the component: {component}");
    println!(
        "  cargo test                                     # native tests + the contract's properties"
    );
    println!("  kernel-host test {component}");
    Ok(())
}
