//! Serving latency: score requests of N candidates for one user and record per-request latency
//! in an HDR histogram.

use crate::data::{Batcher, RankingExample};
use crate::model::RankModel;
use crate::{Error, Result};
use burn::tensor::activation::relu;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
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
    time_requests::<B>(requests, warmup, |req| {
        let batch = batcher.batch(req).to_device::<B>(device);
        model.score_batch(&batch).map(Some)
    })
}

/// Times `score` on every request as a server would (its scores are read back to the host), the
/// first `warmup` unrecorded and then repeated at the end, so every request is recorded once;
/// `score` returning `None` (an empty request) records nothing.
fn time_requests<B: Backend>(
    requests: &[Vec<RankingExample>],
    warmup: usize,
    mut score: impl FnMut(&[RankingExample]) -> Result<Option<Tensor<B, 1>>>,
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
        let Some(logits) = score(req)? else { continue };
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
    Ok(report(&hist))
}

/// A serving fast path for plain-MLP rankers, baseline or fused, mathematically the same as
/// [`RankModel::score_batch`] (checked by the tests to float tolerance).
///
/// The ranker's first layer is a sum of matmuls over its input blocks
/// (`z = b + u_id·W_u + i_id·W_i + fields·W_f [+ h·W_h + u·W_lu + i·W_li]`), and the aux
/// network's first layer likewise (`a = b' + u·A_u + i·A_i + (u⊙i)·A_p`). At serving time the
/// model and the LEARN embeddings are frozen, so the plan precomputes
/// - per item: `i_id·W_i + fields·W_f + i·W_li`, `i·A_i` and the default-filled `i` (row
///   gathers per candidate);
/// - per user: `b + u_id·W_u + u·W_lu`, `b' + u·A_u` and `u` (one row each per request, not one
///   per candidate);
///
/// and per candidate remain the product feature's `(i⊙u)·A_p`, the aux network's later layers,
/// `h·W_h` and the ranker's later layers. Both rankers get the same treatment (the baseline's
/// tables hold only its ID and categorical blocks), so comparing their latencies stays fair.
#[derive(Debug, Clone)]
pub struct ServePlan<B: Backend> {
    /// `[n_items, H]` precomputed item-side blocks of the ranker's first layer.
    item_table: Tensor<B, 2>,
    /// `[n_users, H]` precomputed user-side blocks (with the bias).
    user_table: Tensor<B, 2>,
    /// Ranker layers after the first, and the head.
    rest: Vec<burn::nn::Linear<B>>,
    head: burn::nn::Linear<B>,
    aux: Option<AuxPlan<B>>,
    n_users: usize,
    n_items: usize,
}

/// The fused ranker's extra parts of a [`ServePlan`].
#[derive(Debug, Clone)]
struct AuxPlan<B: Backend> {
    /// `[n_items, A]` `i·A_i`; `[n_users, A]` `b' + u·A_u`.
    aux_item: Tensor<B, 2>,
    aux_user: Tensor<B, 2>,
    /// `[n_items, item_dim]`, `[n_users, user_dim]` default-filled LEARN embeddings.
    learn_item: Tensor<B, 2>,
    learn_user: Tensor<B, 2>,
    /// `[h_dim, H]` ranker rows of the aux network's last hidden layer.
    w_h: Tensor<B, 2>,
    /// `[user_dim, A]` aux first-layer rows of `u ⊙ i` (product feature).
    a_prod: Option<Tensor<B, 2>>,
    /// Aux layers after the first.
    rest: Vec<burn::nn::Linear<B>>,
}

fn first_layer<B: Backend>(l: &burn::nn::Linear<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let w = l.weight.val();
    let [_, h] = w.dims();
    let b = match &l.bias {
        Some(b) => b.val().reshape([1, h]),
        None => Tensor::zeros([1, h], &w.device()),
    };
    (w, b)
}

/// A copy of `l` holding its current values (a fresh model's parameters are initialised lazily,
/// and a clone of an uninitialised parameter would draw its own values).
fn frozen<B: Backend>(l: &burn::nn::Linear<B>) -> burn::nn::Linear<B> {
    burn::nn::Linear {
        weight: burn::module::Param::from_tensor(l.weight.val()),
        bias: l
            .bias
            .as_ref()
            .map(|b| burn::module::Param::from_tensor(b.val())),
    }
}

fn rows<B: Backend>(w: &Tensor<B, 2>, from: usize, to: usize) -> Tensor<B, 2> {
    w.clone().slice([from..to])
}

fn fill<B: Backend>(
    x: Tensor<B, 2>,
    missing: Option<Tensor<B, 2>>,
    default: Tensor<B, 2>,
) -> Tensor<B, 2> {
    match missing {
        Some(m) => x + default * m,
        None => x,
    }
}

fn examples(n: usize, f: impl Fn(u32) -> (u32, u32)) -> Vec<RankingExample> {
    (0..n as u32)
        .map(|k| {
            let (user, item) = f(k);
            RankingExample {
                user,
                item,
                ts: 0,
                label: 0.0,
                weight: 1.0,
            }
        })
        .collect()
}

impl<B: Backend> ServePlan<B> {
    /// Builds the plan of `ranker` (with the fusion `fusion` for the fused ranker) over the dense
    /// users `0..n_users` and items `0..n_items` of `batcher`'s dataset; `None` when the model is
    /// not a plain MLP ranker (cross layers, no hidden layer, an aux network without hidden
    /// layers): serve it with [`RankModel::score_batch`].
    pub fn new(
        ranker: &crate::ranker::Ranker<B>,
        fusion: Option<&crate::fusion::LearnFusion<B>>,
        batcher: &Batcher<'_>,
        n_users: usize,
        n_items: usize,
        device: &B::Device,
    ) -> Result<Option<Self>> {
        if !ranker.is_plain_mlp()
            || fusion.is_some_and(|f| f.mlp.is_empty())
            || n_items == 0
            || n_users == 0
        {
            return Ok(None);
        }
        if fusion.is_none() && ranker.extra_dim() > 0 {
            return Err(Error::Invalid(
                "this ranker expects extra features: build its plan with its fusion".into(),
            ));
        }
        let (w1, bias) = first_layer(&ranker.mlp[0]);
        let id = ranker.user_emb.weight.dims()[1];
        let fd = ranker.field_emb.weight.dims()[1];
        let nf = ranker.n_fields;
        let ib = batcher
            .batch(&examples(n_items, |k| (0, k)))
            .to_device::<B>(device);
        let ub = batcher
            .batch(&examples(n_users, |k| (k, 0)))
            .to_device::<B>(device);
        let emb = |e: &burn::nn::Embedding<B>, ids: Tensor<B, 1, Int>, n: usize| {
            e.forward(ids.unsqueeze_dim(1)).reshape([n as i32, -1])
        };
        let mut item_side =
            emb(&ranker.item_emb, ib.items.clone(), n_items).matmul(rows(&w1, id, 2 * id));
        let mut user_side =
            emb(&ranker.user_emb, ub.users.clone(), n_users).matmul(rows(&w1, 0, id)) + bias;
        let mut at = 2 * id;
        if nf > 0 {
            let f = ranker
                .field_emb
                .forward(ib.fields.clone())
                .reshape([n_items as i32, -1]);
            item_side = item_side + f.matmul(rows(&w1, at, at + nf * fd));
            at += nf * fd;
        }
        let Some(fu) = fusion else {
            return Ok(Some(ServePlan {
                item_table: item_side,
                user_table: user_side,
                rest: ranker.mlp[1..].iter().map(frozen).collect(),
                head: frozen(&ranker.head),
                aux: None,
                n_users,
                n_items,
            }));
        };
        let no_learn =
            || Error::Invalid("the fused ranker's plan needs a batcher with a LearnLookup".into());
        let il = ib.learn.ok_or_else(no_learn)?;
        let ul = ub.learn.ok_or_else(no_learn)?;
        let (du, di) = (ul.user.dims()[1], il.item.dims()[1]);
        let i = fill(il.item, il.item_missing, fu.default_item.val());
        let u = fill(ul.user, ul.user_missing, fu.default_user.val());
        let (a1, a_bias) = first_layer(&fu.mlp[0]);
        let hd = fu.mlp.last().map_or(0, |l| l.weight.dims()[1]);
        let w_h = rows(&w1, at, at + hd);
        at += hd;
        if fu.include_embeddings {
            user_side = user_side + u.clone().matmul(rows(&w1, at, at + du));
            item_side = item_side + i.clone().matmul(rows(&w1, at + du, at + du + di));
        }
        Ok(Some(ServePlan {
            item_table: item_side,
            user_table: user_side,
            rest: ranker.mlp[1..].iter().map(frozen).collect(),
            head: frozen(&ranker.head),
            aux: Some(AuxPlan {
                aux_user: u.clone().matmul(rows(&a1, 0, du)) + a_bias,
                aux_item: i.clone().matmul(rows(&a1, du, du + di)),
                learn_item: i,
                learn_user: u,
                w_h,
                a_prod: fu.product_feature.then(|| rows(&a1, du + di, du + di + du)),
                rest: fu.mlp[1..].iter().map(frozen).collect(),
            }),
            n_users,
            n_items,
        }))
    }

    /// Logits of one request: `user` (dense id below the plan's `n_users`) and its candidate
    /// `items` (dense ids below the plan's `n_items`).
    ///
    /// # Shapes
    /// - output `[items.len()]` logits
    pub fn score(&self, user: u32, items: &[u32], device: &B::Device) -> Result<Tensor<B, 1>> {
        if let Some(&bad) = items.iter().find(|&&i| i as usize >= self.n_items) {
            return Err(Error::Invalid(format!(
                "item {bad} is beyond the plan's {} items",
                self.n_items
            )));
        }
        if user as usize >= self.n_users {
            return Err(Error::Invalid(format!(
                "user {user} is beyond the plan's {} users",
                self.n_users
            )));
        }
        let n = items.len();
        let idx: Vec<i64> = items.iter().map(|&i| i64::from(i)).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), device);
        let urow =
            Tensor::<B, 1, Int>::from_data(TensorData::new(vec![i64::from(user)], [1]), device);
        let z = self.item_table.clone().select(0, idx.clone())
            + self.user_table.clone().select(0, urow.clone());
        let z = match &self.aux {
            None => z,
            Some(a) => {
                let mut x = a.aux_item.clone().select(0, idx.clone())
                    + a.aux_user.clone().select(0, urow.clone());
                if let Some(p) = &a.a_prod {
                    let u = a.learn_user.clone().select(0, urow);
                    let i = a.learn_item.clone().select(0, idx);
                    x = x + (i * u).matmul(p.clone());
                }
                let mut x = relu(x);
                for l in &a.rest {
                    x = relu(l.forward(x));
                }
                z + x.matmul(a.w_h.clone())
            }
        };
        let mut x = relu(z);
        for l in &self.rest {
            x = relu(l.forward(x));
        }
        Ok(self.head.forward(x).reshape([n]))
    }
}

/// As [`bench_latency`], through a [`ServePlan`] (each request is one user's candidates).
pub fn bench_latency_plan<B: Backend>(
    plan: &ServePlan<B>,
    requests: &[Vec<RankingExample>],
    warmup: usize,
    device: &B::Device,
) -> Result<LatencyReport> {
    let mut items = Vec::new();
    time_requests::<B>(requests, warmup, |req| {
        let Some(first) = req.first() else { return Ok(None) };
        items.clear();
        items.extend(req.iter().map(|e| e.item));
        plan.score(first.user, &items, device).map(Some)
    })
}

fn report(hist: &Histogram<u64>) -> LatencyReport {
    LatencyReport {
        requests: hist.len(),
        p50_us: hist.value_at_quantile(0.5),
        p90_us: hist.value_at_quantile(0.9),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        mean_us: hist.mean(),
        max_us: hist.max(),
    }
}
