//! `kernel-host inspect KERNEL.wasm`.

use kernel_host::{KernelComponent, Sandbox};
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host inspect target/guests/wasm32-wasip2/release/standard_scaler.wasm
  kernel-host inspect scaler.wasm --sha256 <64 hex digits> --json")]
pub struct InspectArgs {
    /// The kernel component (.wasm).
    pub kernel: PathBuf,
    /// Refuse the file unless its sha256 is this.
    #[arg(long)]
    pub sha256: Option<String>,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn inspect(args: InspectArgs) -> Result<(), kernel_host::Error> {
    let sandbox = Sandbox::builder().build()?;
    let id = super::common::kernel_id(&args.kernel);
    let component =
        KernelComponent::load(&sandbox, &id, &args.kernel, args.sha256.as_deref()).await?;
    let info = component.info();
    let caps = kernel_host::explain::capability_names(info);
    if args.json {
        let json = kernel_host::explain::component_json(&component);
        println!("{}", super::json(&json));
        return Ok(());
    }
    println!("{}@{}  ({})", info.name, info.version, info.kind);
    if !info.description.is_empty() {
        println!("  {}", super::one_line(&info.description));
    }
    println!(
        "wit:          kernel-host:kernel@{}",
        component.wit_version()
    );
    println!("sha256:       {}", component.sha256());
    if let Some(frozen) = component.frozen() {
        println!(
            "frozen:       from {} ({}), {} bytes of state, at {}; parameters baked in: {}",
            frozen.kernel,
            frozen.source_sha256,
            frozen.state_bytes,
            frozen.frozen_at,
            if frozen.params.is_empty() {
                "none".to_string()
            } else {
                frozen.params.join(", ")
            }
        );
    }
    println!(
        "by reference: {}",
        if component.by_reference().is_empty() {
            "nothing (frames are copied into the kernel)".to_string()
        } else {
            format!(
                "{} (frames stay in the host)",
                component.by_reference().join(", ")
            )
        }
    );
    println!(
        "snapshots:    {}",
        match component.snapshots() {
            Ok(()) => "transparent (memories and globals)".to_string(),
            Err(why) => format!("unavailable: {why}"),
        }
    );
    println!(
        "capabilities: {}",
        if caps.is_empty() {
            "none".into()
        } else {
            caps.join(", ")
        }
    );
    if info.params.is_empty() {
        println!("parameters:   none");
    } else {
        println!("parameters:");
        let name_w = info
            .params
            .iter()
            .map(|p| p.name.chars().count())
            .max()
            .unwrap_or(0);
        let kind_w = info
            .params
            .iter()
            .map(|p| {
                kernel_host::explain::param_type_text(&p.kind)
                    .chars()
                    .count()
            })
            .max()
            .unwrap_or(0);
        for p in &info.params {
            println!(
                "  {:<name_w$}  {:<kind_w$}  default {}",
                p.name,
                kernel_host::explain::param_type_text(&p.kind),
                p.default
            );
            if !p.description.trim().is_empty() {
                println!("      {}", super::one_line(&p.description));
            }
        }
    }
    Ok(())
}
