//! Serving latency: score requests of N candidates for one user and record per-request latency
//! in an HDR histogram.

use crate::data::{Batcher, RankingExample};
use crate::model::RankModel;
use crate::{Error, Result};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Latency percentiles of one model, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyReport {
    pub requests: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub mean_us: f64,
    pub max_us: u64,
}

/// `n_requests` requests of `candidates` items each, for random users of `n_users` and random
/// items of `n_items` (dense ids), deterministic in `seed`.
pub fn make_requests(
    n_users: usize,
    n_items: usize,
    n_requests: usize,
    candidates: usize,
    seed: u64,
) -> Vec<Vec<RankingExample>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n_requests)
        .map(|_| {
            let user = rng.random_range(0..n_users.max(1) as u32);
            (0..candidates)
                .map(|_| RankingExample {
                    user,
                    item: rng.random_range(0..n_items.max(1) as u32),
                    ts: 0,
                    label: 0.0,
                    weight: 1.0,
                })
                .collect()
        })
        .collect()
}

/// Scores every request with `model` (host batching + device transfer + forward + read-back, as a
/// server would), after `warmup` unrecorded requests.
pub fn bench_latency<B: Backend, M: RankModel<B>>(
    model: &M,
    batcher: &Batcher<'_>,
    requests: &[Vec<RankingExample>],
    warmup: usize,
    device: &B::Device,
) -> Result<LatencyReport> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| Error::Invalid(format!("histogram: {e}")))?;
    let mut checksum = 0f32;
    for (k, req) in requests
        .iter()
        .chain(requests.iter().take(warmup))
        .enumerate()
    {
        let t = Instant::now();
        let batch = batcher.batch(req).to_device::<B>(device);
        let logits = model.score_batch(&batch)?;
        let p: Vec<f32> = sigmoid(logits)
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("cannot read scores: {e:?}")))?;
        checksum += p.first().copied().unwrap_or(0.0);
        let us = t.elapsed().as_micros() as u64;
        if k >= warmup.min(requests.len()) || requests.len() <= warmup {
            hist.saturating_record(us.max(1));
        }
    }
    std::hint::black_box(checksum);
    Ok(LatencyReport {
        requests: hist.len(),
        p50_us: hist.value_at_quantile(0.5),
        p90_us: hist.value_at_quantile(0.9),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        mean_us: hist.mean(),
        max_us: hist.max(),
    })
}
