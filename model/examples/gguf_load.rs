//! Benchmark: load every tensor of a GGUF file dequantised to f32 (as a backbone would), and
//! report wall time and peak resident memory.
//!
//! `cargo run -p learnrec-model --example gguf_load -- PATH [--skip-output]`
//! (`--skip-output` leaves out `output.weight`, the LM head an embedding model never uses).

use learnrec_model::gguf::GgufFile;
use learnrec_model::weights::TensorSource;
use std::time::Instant;

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: gguf_load PATH [--skip-output]")?;
    let skip_output = args.iter().any(|a| a == "--skip-output");
    let t0 = Instant::now();
    let g = GgufFile::open(path)?;
    let header = t0.elapsed();
    let names: Vec<String> = g
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !(skip_output && n == "output.weight"))
        .collect();
    let mut kept = Vec::with_capacity(names.len());
    let mut n_values = 0usize;
    for n in &names {
        let t = g.tensor(n)?;
        n_values += t.data.len();
        kept.push(t);
    }
    let total = t0.elapsed();
    let gib = |kib: u64| kib as f64 / (1024.0 * 1024.0);
    println!(
        "{path}: header {:.3}s, {} tensors, {:.3}B f32 values ({:.2} GiB) in {:.2}s; RSS now {:.2} GiB, peak {:.2} GiB",
        header.as_secs_f64(),
        kept.len(),
        n_values as f64 / 1e9,
        n_values as f64 * 4.0 / (1u64 << 30) as f64,
        total.as_secs_f64(),
        gib(status_kib("VmRSS:").unwrap_or(0)),
        gib(status_kib("VmHWM:").unwrap_or(0)),
    );
    Ok(())
}
