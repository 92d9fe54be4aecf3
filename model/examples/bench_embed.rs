//! Throughput of CEG content embedding (tokens/s of real, non-padding tokens) for one backbone,
//! on the token ids of a golden file (`/work/shared/golden/*.json`), cycled to `--n` sequences and
//! embedded in batches of `--batch` in file order (mean pooling, L2-normalised); with
//! `--sort-by-length` the sequences are sorted by length first (little padding, as `embed`'s
//! length-bucketed batches); `--padded` runs the padded reference forward instead of the packed
//! one (BERT, Gemma 3), for before/after comparisons. Besides wall-clock tokens/s it prints tokens
//! per CPU-second of the whole process, which other processes on a loaded machine disturb less. The PyTorch counterpart is `scripts/bench_embed_torch.py` with the
//! same arguments.
//!
//! ```text
//! cargo run --release -p learnrec-model --example bench_embed -- \
//!     --model ~/.cache/learnrec/assets/minilm --golden /work/shared/golden/all-MiniLM-L6-v2.json
//! ```
//!
//! `--model` is a Hugging Face directory (config.json + safetensors).

use std::time::Instant;

use learnrec_model::CpuBackend as B;
use learnrec_model::backbone::Backbone;
use learnrec_model::pooling::Pooling;

struct Args {
    model: String,
    golden: String,
    batch: usize,
    n: usize,
    repeats: usize,
    sort_by_length: bool,
    padded: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: String::new(),
        golden: String::new(),
        batch: 16,
        n: 96,
        repeats: 3,
        sort_by_length: false,
        padded: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--golden" => a.golden = val()?,
            "--batch" => a.batch = val()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--n" => a.n = val()?.parse().map_err(|e| format!("--n: {e}"))?,
            "--repeats" => a.repeats = val()?.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--sort-by-length" => a.sort_by_length = true,
            "--padded" => a.padded = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.model.is_empty() || a.golden.is_empty() {
        return Err(
            "usage: bench_embed --model DIR --golden FILE [--batch 16] [--n 96] [--repeats 3] [--sort-by-length] [--padded]"
                .into(),
        );
    }
    Ok(a)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// CPU time of the whole process (all threads), in seconds; NaN where unavailable. Under load
/// wall-clock throughput mostly measures the other processes, CPU time much less so.
fn cpu_seconds() -> f64 {
    // /proc/self/schedstat is per thread; sum utime + stime over the process's tasks instead.
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        * 1e-9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&args.golden)?)?;
    let texts: Vec<Vec<u32>> = golden["items"]
        .as_array()
        .ok_or("golden file has no `items`")?
        .iter()
        .map(|it| {
            it["ids"].as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect()
            })
        })
        .collect::<Option<_>>()
        .ok_or("an item has no `ids`")?;
    let mut seqs: Vec<Vec<u32>> = texts.iter().cycle().take(args.n).cloned().collect();
    if args.sort_by_length {
        seqs.sort_by_key(Vec::len); // stable, like Python's sorted(key=len)
    }
    let padded: usize = seqs
        .chunks(args.batch.max(1))
        .map(|c| c.len() * c.iter().map(Vec::len).max().unwrap_or(0))
        .sum();
    let tokens: usize = seqs.iter().map(Vec::len).sum();

    let t0 = Instant::now();
    let (model, config) = Backbone::<B>::load_hf_dir(&args.model, &Default::default())?;
    println!(
        "loaded {:?} (hidden {}) in {:.2}s, RSS {:.0} MiB",
        config.arch(),
        config.hidden_size(),
        t0.elapsed().as_secs_f64(),
        rss_mib()
    );

    let encode = |chunk: &[Vec<u32>]| {
        if args.padded {
            model.encode_pooled_padded(chunk, Pooling::Mean, true)
        } else {
            model.encode_pooled(chunk, Pooling::Mean, true)
        }
    };
    encode(&seqs[..args.batch.min(seqs.len())])?; // warm-up
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    for r in 0..args.repeats {
        let (t, c) = (Instant::now(), cpu_seconds());
        for chunk in seqs.chunks(args.batch) {
            std::hint::black_box(encode(chunk)?);
        }
        let s = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c;
        best = best.min(s);
        best_cpu = best_cpu.min(cpu);
        println!(
            "run {r}: {} sequences, {tokens} tokens in {s:.3}s = {:.0} tokens/s ({:.0} tokens per CPU-second)",
            seqs.len(),
            tokens as f64 / s,
            tokens as f64 / cpu
        );
    }
    println!(
        "burn{}: best {:.0} tokens/s (batch {}, {:.0}% padding, threads {}), RSS {:.0} MiB, best {:.0} tokens per CPU-second",
        if args.padded {
            " (padded reference path)"
        } else {
            ""
        },
        tokens as f64 / best,
        args.batch,
        100.0 * (padded - tokens) as f64 / padded.max(1) as f64,
        rayon::current_num_threads(),
        rss_mib(),
        tokens as f64 / best_cpu
    );
    Ok(())
}
