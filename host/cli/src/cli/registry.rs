//! `kernel-host registry add|list|show|remove`.

use kernel_host::Sandbox;
use kernel_host::registry::Registry;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host registry add target/guests/wasm32-wasip2/release/standard_scaler.wasm
  kernel-host registry list --json
  kernel-host registry remove standard-scaler@1.0.0")]
pub struct RegistryArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Clone, clap::Subcommand)]
pub enum Action {
    /// Verify components and store them under the name@version they describe.
    Add {
        #[arg(required = true)]
        kernels: Vec<PathBuf>,
    },
    /// List every registered kernel version.
    List {
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the versions of one kernel.
    Show { name: String },
    /// Remove NAME@VERSION.
    Remove { kernel: String },
}

fn host(e: anyhow::Error) -> kernel_host::Error {
    kernel_host::Error::io("the registry", e)
}

pub async fn registry(args: RegistryArgs) -> Result<(), kernel_host::Error> {
    let registry = Registry::open(Registry::default_dir());
    match args.action {
        Action::Add { kernels } => {
            let sandbox = Sandbox::builder().build()?;
            for path in kernels {
                let (name, version, entry) = registry.add(&sandbox, &path).await?;
                println!("{name}@{version}  {}  ({})", entry.sha256, path.display());
            }
        }
        Action::List { json } => {
            let all = registry.list().map_err(host)?;
            if json {
                let list: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(name, version, e)| {
                        serde_json::json!({
                            "name": name,
                            "version": version.to_string(),
                            "kind": e.kind,
                            "description": e.description,
                            "sha256": e.sha256,
                            "wit": e.wit,
                            "added": e.added,
                        })
                    })
                    .collect();
                println!("{}", super::json(&serde_json::Value::Array(list)));
                return Ok(());
            }
            if all.is_empty() {
                println!("the registry at {} is empty", registry.dir().display());
            }
            for (name, version, entry) in all {
                println!(
                    "{:<24} {:<10} {:<12} {}",
                    name,
                    version.to_string(),
                    entry.kind,
                    &entry.sha256[..16]
                );
            }
        }
        Action::Show { name } => {
            let versions = registry.versions(&name).map_err(host)?;
            if versions.is_empty() {
                return Err(host(anyhow::anyhow!(
                    "no kernel `{name}` in the registry at {}",
                    registry.dir().display()
                )));
            }
            for (version, entry) in versions {
                println!(
                    "{name}@{version}\n  {}\n  kind {}, WIT {}, added {}\n  sha256 {}",
                    entry.description, entry.kind, entry.wit, entry.added, entry.sha256
                );
            }
        }
        Action::Remove { kernel } => {
            let (name, version) = kernel
                .split_once('@')
                .and_then(|(n, v)| semver::Version::parse(v).ok().map(|v| (n.to_string(), v)))
                .ok_or_else(|| {
                    host(anyhow::anyhow!(
                        "write NAME@VERSION with an exact version, e.g. standard-scaler@1.0.0"
                    ))
                })?;
            registry.remove(&name, &version).map_err(host)?;
            println!("removed {name}@{version}");
        }
    }
    Ok(())
}
