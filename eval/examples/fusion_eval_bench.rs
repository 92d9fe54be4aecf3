//! Benchmark of `fusion-eval` (not a test): generates a predictions file (+ HISTORY) if missing,
//! evaluates it end to end (read, all segments, global AUC, bootstrap) and prints rows/s, CPU
//! time and peak RSS per row.
//!
//! ```text
//! cargo run --release -p learnrec-eval --example fusion_eval_bench -- \
//!     --rows 10000000 --users 200000 --format parquet --dir /tmp/fe [--bootstrap 200]
//! ```
//! Run one configuration per process (peak RSS is per process). On a shared machine the numbers
//! are noisy: compare `user+sys` CPU seconds per row as well as wall time.

use learnrec_eval::fusion_eval::{Input, Options, evaluate_file, generate};
use std::path::PathBuf;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn cpu_seconds() -> f64 {
    // utime + stime from /proc/self/stat, in clock ticks (100 Hz on Linux).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = arg(&args, "--rows", "10000000").parse()?;
    let users: u64 = arg(&args, "--users", &(rows / 50).max(1).to_string()).parse()?;
    let format = arg(&args, "--format", "parquet");
    let dir = PathBuf::from(arg(&args, "--dir", "/tmp/fusion-eval-bench"));
    let bootstrap: u32 = arg(&args, "--bootstrap", "200").parse()?;
    std::fs::create_dir_all(&dir)?;
    let pred = dir.join(format!("pred-{rows}-{users}.{format}"));
    let hist = dir.join(format!("hist-{rows}-{users}.csv"));
    if !pred.exists() || !hist.exists() {
        let t = Instant::now();
        let spec = generate::GenSpec {
            rows,
            users,
            items: (users / 2).max(1),
            seed: 7,
            out: pred.clone(),
            history: Some(hist.clone()),
            row_group: 1 << 20,
        };
        generate::generate(&spec)?;
        eprintln!("generated {} in {:.1}s", pred.display(), t.elapsed().as_secs_f64());
    }
    let input = Input { pred: pred.clone(), history: Some(hist), ..Input::default() };
    let opt = Options { bootstrap, ..Options::default() };
    let (c0, t) = (cpu_seconds(), Instant::now());
    let r = evaluate_file(&input, &opt)?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let rss = peak_rss_kb();
    println!(
        "{format} rows={} users={} models={} bootstrap={bootstrap} threads={}: wall {wall:.2}s = {:.2} M rows/s; \
         cpu {cpu:.2}s = {:.2} M rows per cpu-second; peak RSS {:.0} MB = {:.1} B/row",
        r.rows,
        r.users,
        r.models.len(),
        rayon::current_num_threads(),
        r.rows as f64 / wall / 1e6,
        r.rows as f64 / cpu.max(1e-9) / 1e6,
        rss as f64 / 1024.0,
        rss as f64 * 1024.0 / r.rows as f64
    );
    Ok(())
}
