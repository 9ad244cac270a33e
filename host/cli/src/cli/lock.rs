//! `kernel-host lock MANIFEST` and `kernel-host upgrade MANIFEST`.

use kernel_host::Plan;
use kernel_host::registry::Lock;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host lock pipeline.toml     # writes kernel-host.lock beside it
  kernel-host upgrade pipeline.toml  # moves the pins, printing what changed")]
pub struct LockArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
}

fn first(errors: Vec<kernel_host::ManifestError>) -> kernel_host::Error {
    errors
        .into_iter()
        .next()
        .map(Into::into)
        .unwrap_or_else(|| {
            kernel_host::Error::Internal(
                "the manifest could not be resolved, with no reason given".into(),
            )
        })
}

/// Prints how `new` differs from `old`.
fn changes(old: &Lock, new: &Lock) -> usize {
    let mut n = 0;
    for pin in &new.pins {
        match old.pin(&pin.id) {
            Some(before) if before.version == pin.version && before.sha256 == pin.sha256 => {}
            Some(before) => {
                println!(
                    "  {}: {} {} -> {}",
                    pin.id, pin.name, before.version, pin.version
                );
                n += 1;
            }
            None => {
                println!("  {}: {} {} (new)", pin.id, pin.name, pin.version);
                n += 1;
            }
        }
    }
    for pin in &old.pins {
        if new.pin(&pin.id).is_none() {
            println!("  {}: {} {} (removed)", pin.id, pin.name, pin.version);
            n += 1;
        }
    }
    n
}

/// Writes the lock: existing pins are kept where their range still allows
/// them, new kernels get the newest version.
pub async fn lock(args: LockArgs) -> Result<(), kernel_host::Error> {
    let old = Lock::read(&args.manifest)
        .map_err(|e| kernel_host::Error::io("reading kernel-host.lock", e))?
        .unwrap_or_default();
    let manifest =
        Plan::load_all_with(&args.manifest, &super::common::registry()).map_err(first)?;
    write(&args.manifest, &old, &manifest.pins())
}

/// Moves every pin to the newest version its range allows.
pub async fn upgrade(args: LockArgs) -> Result<(), kernel_host::Error> {
    let old = Lock::read(&args.manifest)
        .map_err(|e| kernel_host::Error::io("reading kernel-host.lock", e))?
        .unwrap_or_default();
    let manifest =
        Plan::load_unlocked(&args.manifest, &super::common::registry()).map_err(first)?;
    write(&args.manifest, &old, &manifest.pins())
}

fn write(manifest: &std::path::Path, old: &Lock, new: &Lock) -> Result<(), kernel_host::Error> {
    let path = Lock::path_for(manifest);
    println!("{}", path.display());
    if changes(old, new) == 0 {
        println!("  unchanged ({} pinned)", new.pins.len());
    }
    new.write(manifest)
        .map_err(|e| kernel_host::Error::io("writing kernel-host.lock", e))?;
    Ok(())
}
