//! `kernel-host inspect KERNEL.wasm`.

use kernel_host::bindings::{Capabilities, ParamType, ParamValue};
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

/// A bound written like a value: `0.5`, `1e-12`.
fn number(x: f64) -> String {
    ParamValue::F64(x).to_string()
}

fn bound<T: ToString>(b: &Option<T>) -> String {
    b.as_ref().map_or("..".into(), T::to_string)
}

fn kind(t: &ParamType) -> String {
    match t {
        ParamType::F64((lo, hi)) => format!(
            "f64 in [{}, {}]",
            lo.map_or("..".into(), number),
            hi.map_or("..".into(), number)
        ),
        ParamType::S64((lo, hi)) => format!("s64 in [{}, {}]", bound(lo), bound(hi)),
        ParamType::Bool => "bool".into(),
        ParamType::Choice(c) => format!("one of {}", c.join(" | ")),
        ParamType::Text => "string".into(),
    }
}

pub async fn inspect(args: InspectArgs) -> Result<(), kernel_host::Error> {
    let sandbox = Sandbox::builder().build()?;
    let id = super::common::kernel_id(&args.kernel);
    let component =
        KernelComponent::load(&sandbox, &id, &args.kernel, args.sha256.as_deref()).await?;
    let info = component.info();
    let caps: Vec<&str> = [
        (Capabilities::PARTIAL_FIT, "partial-fit"),
        (Capabilities::PREDICT_PROBA, "predict-proba"),
        (Capabilities::STATELESS_TRANSFORM, "stateless-transform"),
    ]
    .into_iter()
    .filter(|(flag, _)| info.capabilities.contains(*flag))
    .map(|(_, name)| name)
    .collect();
    if args.json {
        let json = serde_json::json!({
            "name": info.name,
            "version": info.version,
            "kind": info.kind.to_string(),
            "description": super::one_line(&info.description),
            "wit": component.wit_version(),
            "sha256": component.sha256(),
            "frozen": component.frozen().map(|f| serde_json::json!({
                "from": f.kernel, "source_sha256": f.source_sha256,
                "state_bytes": f.state_bytes, "at": f.frozen_at, "params": f.params,
            })),
            "snapshots": component.snapshots().map_or_else(|why| format!("unavailable: {why}"), |()| "transparent".into()),
            "capabilities": caps,
            "parameters": info.params.iter().map(|p| serde_json::json!({
                "name": p.name,
                "type": kind(&p.kind),
                "default": p.default.to_string(),
                "description": super::one_line(&p.description),
            })).collect::<Vec<_>>(),
        });
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
            .map(|p| kind(&p.kind).chars().count())
            .max()
            .unwrap_or(0);
        for p in &info.params {
            println!(
                "  {:<name_w$}  {:<kind_w$}  default {}",
                p.name,
                kind(&p.kind),
                p.default
            );
            if !p.description.trim().is_empty() {
                println!("      {}", super::one_line(&p.description));
            }
        }
    }
    Ok(())
}
