//! `kernel-host freeze model.khb --step model --out model.wasm`.

use kernel_host::Sandbox;
use kernel_host::bundle::Bundle;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host freeze penguins.khb --step model --out model.wasm")]
pub struct FreezeArgs {
    /// A bundle written by `kernel-host fit --save`.
    pub bundle: PathBuf,
    /// The step to freeze (default: the last one).
    #[arg(long, value_name = "ID")]
    pub step: Option<String>,
    /// Where to write the frozen component.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
}

pub async fn freeze(args: FreezeArgs) -> Result<(), kernel_host::Error> {
    let mut bundle = Bundle::read(&args.bundle)?;
    // A frozen component carries no grants: the bundle's are not needed.
    bundle.without_rights();
    let sandbox = Sandbox::builder().build()?;
    let mut pipeline = bundle.load(&sandbox).await?;
    let ids: Vec<String> = pipeline.steps().iter().map(|s| s.spec.id.clone()).collect();
    let wanted = args.step.clone().or_else(|| ids.last().cloned());
    let Some(step) = pipeline
        .steps_mut()
        .iter_mut()
        .find(|s| Some(&s.spec.id) == wanted.as_ref())
    else {
        return Err(kernel_host::Error::Usage(format!(
            "{} has no step `{}`; its steps are: {}",
            args.bundle.display(),
            wanted.unwrap_or_default(),
            ids.join(", ")
        )));
    };
    let frozen = kernel_host::freeze::freeze(&step.component, &mut step.instance).await?;
    kernel_host::fsutil::write_atomic(&args.out, &frozen)
        .map_err(|e| kernel_host::Error::io(format!("writing {}", args.out.display()), e))?;
    println!(
        "froze step `{}` ({}) of {} into {} ({:.1} KiB): it predicts without configure or load-state",
        step.spec.id,
        step.kernel_name(),
        args.bundle.display(),
        args.out.display(),
        frozen.len() as f64 / 1024.0
    );
    Ok(())
}
