//! `learnrec bench-serve`: serving latency of the baseline and fused rankers saved by
//! `rank-train`. Each request scores N candidates of one user (user-side inputs, LEARN lookup,
//! forward, read-back); per-request latency goes into an HDR histogram and p50/p90/p99/p99.9 are
//! printed per model, with the aux network's added latency. The requests are split into
//! `--rounds` parts and the two rankers alternate part by part (baseline, fused, baseline, …),
//! so both see the same machine load.
//!
//! By default both rankers serve through their [`ServePlan`] (item-side first-layer blocks
//! precomputed per item, user-side blocks once per request; the same for both rankers);
//! `--reference` scores every candidate with the full forward pass instead.

use anyhow::Context as _;
use learnrec_eval::store::StoreKind;
use learnrec_fusion::data::Batcher;
use learnrec_fusion::data::RankingExample;
use learnrec_fusion::io::load_rankers;
use learnrec_fusion::lookup::load_store;
use learnrec_fusion::serve::{
    LatencyReport, ServePlan, bench_latency, bench_latency_plan, make_requests,
};
use learnrec_fusion::{CpuBackend, LearnLookup, RankModel};
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
    /// Alternate the two rankers over this many parts of the requests.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Score every candidate with the full forward pass (`score_batch`) instead of the serving
    /// plan.
    #[arg(long)]
    pub reference: bool,
}

fn line(name: &str, r: &LatencyReport) {
    println!(
        "{name:>9}: {} requests  p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  mean {:.0} µs  max {} µs",
        r.requests, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.mean_us, r.max_us
    );
}

/// One ranker as served: through its plan, or the reference forward pass.
struct Served<'a, M> {
    model: &'a M,
    plan: Option<ServePlan<CpuBackend>>,
    batcher: Batcher<'a>,
}

impl<M: RankModel<CpuBackend>> Served<'_, M> {
    fn bench(&self, reqs: &[Vec<RankingExample>], warmup: usize) -> anyhow::Result<LatencyReport> {
        let device = Default::default();
        Ok(match &self.plan {
            Some(p) => bench_latency_plan(p, reqs, warmup, &device)?,
            None => bench_latency(self.model, &self.batcher, reqs, warmup, &device)?,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.candidates == 0 || a.requests == 0 || a.rounds == 0 {
        anyhow::bail!("--candidates, --requests and --rounds must be at least 1");
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
    let base_batcher = Batcher::new(&data, &saved.meta.users, &saved.meta.items, None);
    let plan_of = |m: &dyn Fn() -> anyhow::Result<Option<ServePlan<CpuBackend>>>| {
        if a.reference { Ok(None) } else { m() }
    };
    let base = Served {
        model: &saved.baseline,
        plan: plan_of(&|| {
            Ok(saved.baseline.serve_plan(
                &base_batcher,
                data.users.len(),
                data.items.len(),
                &device,
            )?)
        })?,
        batcher: base_batcher.clone(),
    };
    let path = |p: &Option<ServePlan<CpuBackend>>| {
        if p.is_some() {
            "serving plan"
        } else {
            "full forward"
        }
    };
    println!(
        "{} requests × {} candidates (+{} warm-up), {} interleaved rounds",
        a.requests, a.candidates, a.warmup, a.rounds
    );
    let per_round = a.requests.div_ceil(a.rounds);
    let Some(fused_model) = &saved.fused else {
        let rb = base.bench(&reqs, a.warmup)?;
        line(&format!("baseline ({})", path(&base.plan)), &rb);
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
    let fused = Served {
        model: fused_model,
        plan: plan_of(&|| {
            Ok(fused_model.serve_plan(
                &fused_batcher,
                data.users.len(),
                data.items.len(),
                &device,
            )?)
        })?,
        batcher: fused_batcher.clone(),
    };
    if let (Some(bp), Some(fp)) = (&base.plan, &fused.plan) {
        let (b, f) = (bp.macs_per_candidate(), fp.macs_per_candidate());
        println!(
            "multiply-adds per candidate after the precomputed tables: baseline {b}, fused {f} ({:+.0}%)",
            100.0 * (f as f64 - b as f64) / b.max(1) as f64
        );
    }
    let pct = |f: u64, b: u64| 100.0 * (f as f64 - b as f64) / (b.max(1) as f64);
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    let (mut b50, mut b99, mut f50, mut f99) = (vec![], vec![], vec![], vec![]);
    for (r, part) in reqs.chunks(per_round.max(1)).enumerate() {
        let warm = a.warmup.div_ceil(a.rounds);
        let rb = base.bench(part, warm)?;
        let rf = fused.bench(part, warm)?;
        println!("round {}:", r + 1);
        line(&format!("baseline ({})", path(&base.plan)), &rb);
        line(&format!("fused ({})", path(&fused.plan)), &rf);
        p50.push(pct(rf.p50_us, rb.p50_us));
        p99.push(pct(rf.p99_us, rb.p99_us));
        b50.push(rb.p50_us as f64);
        b99.push(rb.p99_us as f64);
        f50.push(rf.p50_us as f64);
        f99.push(rf.p99_us as f64);
    }
    println!(
        "median over rounds: baseline p50 {:.0} µs p99 {:.0} µs; fused p50 {:.0} µs p99 {:.0} µs",
        median(b50),
        median(b99),
        median(f50),
        median(f99)
    );
    println!(
        "aux network adds (median over rounds): p50 {:+.1}%  p99 {:+.1}%",
        median(p50),
        median(p99)
    );
    Ok(())
}
