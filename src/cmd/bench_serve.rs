//! `learnrec bench-serve`: serving latency of the baseline and fused rankers saved by
//! `rank-train`. Each request scores N candidates of one user (host batching, LEARN lookup,
//! forward, read-back); per-request latency goes into an HDR histogram and p50/p90/p99/p99.9 are
//! printed per model, with the aux network's added latency.

use anyhow::Context as _;
use learnrec_eval::store::StoreKind;
use learnrec_fusion::data::Batcher;
use learnrec_fusion::io::load_rankers;
use learnrec_fusion::lookup::load_store;
use learnrec_fusion::serve::{LatencyReport, bench_latency, make_requests};
use learnrec_fusion::{CpuBackend, LearnLookup};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rankers directory written by `rank-train` (`<out>/rankers`).
    #[arg(long)]
    pub rankers: PathBuf,
    /// LEARN user store (default: `user.safetensors` beside the rankers directory, as
    /// `rank-train --data toy` writes it).
    #[arg(long)]
    pub user_store: Option<PathBuf>,
    /// LEARN item store (default: `item.safetensors` beside the rankers directory).
    #[arg(long)]
    pub item_store: Option<PathBuf>,
    /// Content store for new items (default: `content.safetensors` beside, if present).
    #[arg(long)]
    pub content_store: Option<PathBuf>,
    /// Candidates per request.
    #[arg(long, default_value_t = 200)]
    pub candidates: usize,
    /// Measured requests per model.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Unmeasured warm-up requests per model.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
}

fn line(name: &str, r: &LatencyReport) {
    println!(
        "{name:>9}: {} requests  p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  mean {:.0} µs  max {} µs",
        r.requests, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.mean_us, r.max_us
    );
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.candidates == 0 || a.requests == 0 {
        anyhow::bail!("--candidates and --requests must be at least 1");
    }
    let device = Default::default();
    let saved = load_rankers::<CpuBackend>(&a.rankers, &device)?;
    let data = saved.meta.dataset();
    let reqs = make_requests(
        data.users.len(),
        data.items.len(),
        a.requests,
        a.candidates,
        a.seed,
    );
    println!(
        "{} requests × {} candidates (+{} warm-up)",
        a.requests, a.candidates, a.warmup
    );
    let base_batcher = Batcher::new(&data, &saved.meta.users, &saved.meta.items, None);
    let rb = bench_latency(&saved.baseline, &base_batcher, &reqs, a.warmup, &device)?;
    line("baseline", &rb);
    let Some(fused) = &saved.fused else {
        println!("no fused ranker in {}", a.rankers.display());
        return Ok(());
    };
    let beside = |name: &str| a.rankers.parent().map(|p| p.join(name));
    let up = a
        .user_store
        .clone()
        .or_else(|| beside("user.safetensors"))
        .context("--user-store is required")?;
    let ip = a
        .item_store
        .clone()
        .or_else(|| beside("item.safetensors"))
        .context("--item-store is required")?;
    let cp = a
        .content_store
        .clone()
        .or_else(|| beside("content.safetensors").filter(|p| p.exists()));
    let us = load_store(&up, StoreKind::User)?;
    let is = load_store(&ip, StoreKind::Item)?;
    let cs = cp
        .as_deref()
        .map(|p| load_store(p, StoreKind::Content))
        .transpose()?;
    let lookup = LearnLookup::new(&data.users, &data.items, &us, &is, cs.as_ref())?;
    let fused_batcher = Batcher::new(&data, &saved.meta.users, &saved.meta.items, Some(&lookup));
    let rf = bench_latency(fused, &fused_batcher, &reqs, a.warmup, &device)?;
    line("fused", &rf);
    let pct = |f: u64, b: u64| 100.0 * (f as f64 - b as f64) / (b.max(1) as f64);
    println!(
        "aux network adds: p50 {:+.1}%  p99 {:+.1}%  p99.9 {:+.1}%",
        pct(rf.p50_us, rb.p50_us),
        pct(rf.p99_us, rb.p99_us),
        pct(rf.p999_us, rb.p999_us)
    );
    Ok(())
}
