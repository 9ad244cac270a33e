//! `extism-peer PLUGIN.wasm ROWS COLS RUNS`: fits the Extism scaler plug-in
//! once, then times `transform` RUNS times on the same deterministic frame
//! as `cargo bench --bench sandbox` (the same generator and seed), with
//! limits like kernel-host's defaults: 10^10 fuel, 512 MiB of memory, a
//! 30 s timeout. Prints `median_s=<seconds> checksum=<sum of |outputs|>`.

use extism::{Manifest, PluginBuilder, Wasm};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, plugin, rows, cols, runs] = args.as_slice() else {
        return Err("usage: extism-peer PLUGIN.wasm ROWS COLS RUNS".into());
    };
    let (rows, cols, runs): (usize, usize, usize) = (rows.parse()?, cols.parse()?, runs.parse()?);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut input = Vec::with_capacity(8 + rows * cols * 8);
    input.extend_from_slice(&(rows as u32).to_le_bytes());
    input.extend_from_slice(&(cols as u32).to_le_bytes());
    for j in 0..cols {
        for _ in 0..rows {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = (state >> 11) as f64 / (1u64 << 53) as f64 * 100.0 + j as f64;
            input.extend_from_slice(&v.to_le_bytes());
        }
    }
    let manifest = Manifest::new([Wasm::data(std::fs::read(plugin)?)])
        .with_memory_max(8192) // 512 MiB in 64 KiB pages
        .with_timeout(Duration::from_secs(30));
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(false)
        .with_fuel_limit(10_000_000_000)
        .build()?;
    let _: Vec<u8> = plugin.call("fit", input.as_slice())?;
    // Warm up: grow the plug-in's memory once, as the sandbox benchmark does.
    let _: Vec<u8> = plugin.call("transform", input.as_slice())?;
    let mut times = Vec::with_capacity(runs);
    let mut checksum = 0.0;
    for _ in 0..runs {
        let started = Instant::now();
        let out: Vec<u8> = plugin.call("transform", input.as_slice())?;
        times.push(started.elapsed());
        if out.len() != input.len() {
            return Err(format!(
                "transform returned {} bytes, not {}",
                out.len(),
                input.len()
            )
            .into());
        }
        // |values| summed column by column, as the benchmark sums the
        // scaler's output.
        checksum = out[8..]
            .chunks_exact(rows.max(1) * 8)
            .map(|column| {
                column
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])).abs())
                    .sum::<f64>()
            })
            .sum::<f64>();
    }
    times.sort();
    println!(
        "median_s={} checksum={checksum}",
        times[times.len() / 2].as_secs_f64()
    );
    Ok(())
}
