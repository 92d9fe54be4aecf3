//! Benchmark: training samples/s of the baseline and fused rankers (with a per-phase breakdown)
//! and their serving latency (p50/p99 of requests of N candidates), on the generated toy world.
//!
//! `cargo run --release -p learnrec-fusion --example bench_fusion -- [--users N] [--items N]
//!  [--batch N] [--steps N] [--candidates N] [--requests N] [--aux-hidden 128,64] [--no-embeddings] [--product] [--big-users N --big-items N]`

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::ElementConversion;
use learnrec_fusion::data::{Batcher, IdVocab, RankingExample, Split};
use learnrec_fusion::loss::weighted_bce_with_logits;
use learnrec_fusion::serve::{bench_latency, make_requests};
use learnrec_fusion::toy::{Toy, ToyConfig};
use learnrec_fusion::train::{EmbeddingUpdate, TrainConfig, train};
use learnrec_fusion::{
    CpuAutodiff, FusedRankerConfig, LearnFusionConfig, RankModel, RankerConfig,
};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One training step's phase timings.
#[derive(Default, Debug, Clone, Copy)]
struct Step {
    batch: Duration,
    fwd_bwd: Duration,
    optim: Duration,
}

impl Step {
    fn total(&self) -> Duration {
        self.batch + self.fwd_bwd + self.optim
    }
}

/// A model with its optimizer, stepped one batch at a time.
struct Trainer<M: AutodiffModule<CpuAutodiff>, O> {
    model: Option<M>,
    optim: O,
    steps: Vec<Step>,
}

impl<M, O> Trainer<M, O>
where
    M: RankModel<CpuAutodiff> + AutodiffModule<CpuAutodiff>,
    O: Optimizer<M, CpuAutodiff>,
{
    fn step(&mut self, batcher: &Batcher<'_>, chunk: &[RankingExample], record: bool) {
        let device = Default::default();
        let Some(model) = self.model.take() else {
            return;
        };
        let t0 = Instant::now();
        let b = batcher.batch(chunk).to_device::<CpuAutodiff>(&device);
        let t1 = Instant::now();
        let (logits, out) = model.forward_batch(&b).expect("forward");
        let mut loss = weighted_bce_with_logits(logits, b.labels.clone(), None);
        if let Some(aux) = out.as_ref().and_then(|o| model.aux_loss(o, &b, false)) {
            loss = loss + aux;
        }
        let _ = loss.clone().into_scalar().elem::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        self.model = Some(self.optim.step(1e-3, model, grads));
        let t3 = Instant::now();
        if record {
            self.steps.push(Step {
                batch: t1 - t0,
                fwd_bwd: t2 - t1,
                optim: t3 - t2,
            });
        }
    }

    /// Median step (by total time) and samples/s at that median.
    fn report(&self, name: &str, batch: usize) -> f64 {
        let mut s = self.steps.clone();
        s.sort_by_key(|x| x.total());
        let med = s.get(s.len() / 2).copied().unwrap_or_default();
        let sps = batch as f64 / med.total().as_secs_f64().max(1e-9);
        println!(
            "{name:>9} train: {sps:.0} samples/s at the median step  (batch {:.2} ms, fwd+bwd {:.2} ms, optim {:.2} ms)",
            med.batch.as_secs_f64() * 1e3,
            med.fwd_bwd.as_secs_f64() * 1e3,
            med.optim.as_secs_f64() * 1e3,
        );
        sps
    }
}

fn main() {
    let users: usize = arg("--users", 2000);
    let items: usize = arg("--items", 2000);
    let batch: usize = arg("--batch", 256);
    let steps: usize = arg("--steps", 200);
    let candidates: usize = arg("--candidates", 200);
    let requests: usize = arg("--requests", 1000);
    let id_dim: usize = arg("--id-dim", 16);
    let aux_hidden: String = arg("--aux-hidden", "64,16".to_string());
    let aux_hidden: Vec<usize> = aux_hidden
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();

    let toy = Toy::generate(&ToyConfig {
        n_users: users,
        n_items: items,
        impressions_per_user: (batch * (steps + 5) / users.max(1)).clamp(1, 200),
        ..Default::default()
    });
    let ex = &toy.data.examples;
    let uv = IdVocab::fit(&toy.data.users, ex.iter().map(|e| e.user));
    let iv = IdVocab::fit(&toy.data.items, ex.iter().map(|e| e.item));
    let lookup = toy.learn_lookup().expect("toy stores");
    println!(
        "toy: {users} users, {items} items, {} examples; batch {batch}, {steps} steps; id dim {id_dim}; aux hidden {aux_hidden:?}",
        ex.len()
    );
    let rc = RankerConfig::new(
        uv.n_rows(),
        iv.n_rows(),
        toy.data.features.n_rows(),
        toy.data.features.n_fields(),
    )
    .with_id_dim(id_dim);
    let fc = FusedRankerConfig::new(
        rc.clone(),
        LearnFusionConfig::new(lookup.user_dim(), lookup.item_dim())
            .with_hidden(aux_hidden)
            .with_include_embeddings(!std::env::args().any(|a| a == "--no-embeddings"))
            .with_product_feature(std::env::args().any(|a| a == "--product")),
    );
    let device = Default::default();
    let bb = Batcher::new(&toy.data, &uv, &iv, None);
    let fb = Batcher::new(&toy.data, &uv, &iv, Some(&lookup));
    // Steps of the two models alternate, so both see the same machine load (this machine is
    // shared); the median step is reported.
    let mut tb = Trainer {
        model: Some(rc.init::<CpuAutodiff>(&device)),
        optim: AdamConfig::new().init(),
        steps: vec![],
    };
    let mut tf = Trainer {
        model: Some(fc.init::<CpuAutodiff>(&device)),
        optim: AdamConfig::new().init(),
        steps: vec![],
    };
    for (k, chunk) in ex.chunks(batch).cycle().take(steps + 5).enumerate() {
        tb.step(&bb, chunk, k >= 5);
        tf.step(&fb, chunk, k >= 5);
    }
    let (sb, sf) = (tb.report("baseline", batch), tf.report("fused", batch));
    println!("fused/baseline training throughput: {:.2}x", sf / sb);
    let (Some(base), Some(fused)) = (tb.model, tf.model) else {
        return;
    };

    // Large ID tables: the library's training loop with dense vs sparse ID-table updates.
    let big_users: usize = arg("--big-users", 0);
    if big_users > 0 {
        let big_items: usize = arg("--big-items", big_users / 2);
        let big = Toy::generate(&ToyConfig {
            n_users: big_users,
            n_items: big_items,
            impressions_per_user: 1,
            ..Default::default()
        });
        let split = Split {
            train: big.data.examples.clone(),
            valid: big.data.examples[..2048.min(big.data.examples.len())].to_vec(),
            test: vec![],
        };
        let uv = IdVocab::fit(&big.data.users, split.train.iter().map(|e| e.user));
        let iv = IdVocab::fit(&big.data.items, split.train.iter().map(|e| e.item));
        let rc = RankerConfig::new(
            uv.n_rows(),
            iv.n_rows(),
            big.data.features.n_rows(),
            big.data.features.n_fields(),
        )
        .with_id_dim(id_dim);
        let b = Batcher::new(&big.data, &uv, &iv, None);
        for upd in [EmbeddingUpdate::Dense, EmbeddingUpdate::Sparse] {
            let tc = TrainConfig::new()
                .with_batch_size(batch)
                .with_max_epochs(1)
                .with_max_steps_per_epoch(steps / 2)
                .with_embedding_update(upd);
            let (_, r) = train::<CpuAutodiff, _>(
                "baseline",
                rc.init::<CpuAutodiff>(&device),
                &b,
                &split,
                &tc,
                &device,
                |_, _| {},
            )
            .expect("train");
            println!(
                "{big_users} users × {big_items} items, {upd:?} ID tables: {:.0} train samples/s",
                r.samples_per_sec
            );
        }
    }

    let reqs = make_requests(users, items, requests, candidates, 3);
    let rb = bench_latency(&base.valid(), &bb, &reqs, 50, &device).expect("bench");
    let rf = bench_latency(&fused.valid(), &fb, &reqs, 50, &device).expect("bench");
    for (n, r) in [("baseline", rb), ("fused", rf)] {
        println!(
            "{n:>9} serve ({candidates} candidates): p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs",
            r.p50_us, r.p90_us, r.p99_us, r.p999_us
        );
    }
    println!(
        "aux network adds {:+.1}% to p99",
        100.0 * (rf.p99_us as f64 / rb.p99_us as f64 - 1.0)
    );
}
