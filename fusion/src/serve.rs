//! Serving latency: score requests of N candidates for one user and record per-request latency
//! in an HDR histogram.

use crate::data::{Batcher, RankingExample};
use crate::model::RankModel;
use crate::{Error, Result};
use burn::tensor::activation::sigmoid;
use burn::tensor::activation::relu;
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
    Ok(report(&hist))
}

/// A serving fast path for plain-MLP rankers, baseline or fused, mathematically the same as
/// [`RankModel::score_batch`] (checked by the tests to float tolerance).
///
/// The ranker's first layer is a sum of matmuls over its input blocks
/// (`z = b + u_id·W_u + i_id·W_i + fields·W_f [+ h·W_h + u·W_lu + i·W_li]`), and the aux
/// network's first layer likewise (`b + u·A_u + i·A_i + (u⊙i)·A_p`). At serving time the model
/// is frozen, so
/// - the item-side blocks (`i_id·W_i + fields·W_f + i·W_li` and `i·A_i`) are precomputed once
///   per item when the plan is built;
/// - the user-side blocks (`b + u_id·W_u + u·W_lu`, `b + u·A_u`, and `diag(u)·A_p` for the
///   product feature) are computed once per request, not once per candidate;
/// - per candidate remain a row gather, the product feature's matmul, the aux network's later
///   layers, `h·W_h` and the ranker's later layers.
///
/// Both rankers get the same treatment, so comparing their latencies stays fair.
#[derive(Debug, Clone)]
pub struct ServePlan<B: Backend> {
    /// `[id_dim, H]` rows of the first layer for the user ID embedding.
    w_user_id: Tensor<B, 2>,
    /// `[1, H]` first-layer bias.
    bias: Tensor<B, 2>,
    /// `[n_items, H]` precomputed item-side first-layer sums.
    item_side: Tensor<B, 2>,
    /// The user ID table `[n_user_rows, id_dim]`.
    user_emb: Tensor<B, 2>,
    /// Ranker layers after the first, and the head.
    rest: Vec<burn::nn::Linear<B>>,
    head: burn::nn::Linear<B>,
    aux: Option<AuxPlan<B>>,
    n_items: usize,
}

/// The fused ranker's extra parts of a [`ServePlan`].
#[derive(Debug, Clone)]
struct AuxPlan<B: Backend> {
    /// `[user_dim, H]` ranker rows of the LEARN user embedding (`None` without
    /// `include_embeddings`).
    w_learn_user: Option<Tensor<B, 2>>,
    /// `[h_dim, H]` ranker rows of the aux network's last hidden layer.
    w_h: Tensor<B, 2>,
    /// `[user_dim, A]` aux first-layer rows of the user embedding, `[1, A]` its bias.
    a_user: Tensor<B, 2>,
    a_bias: Tensor<B, 2>,
    /// `[user_dim, A]` aux first-layer rows of `u ⊙ i` (product feature).
    a_prod: Option<Tensor<B, 2>>,
    /// `[n_items, A]` precomputed `i·A_i`.
    aux_item: Tensor<B, 2>,
    /// `[n_items, item_dim]` default-filled LEARN item embeddings (for the product feature).
    learn_item: Tensor<B, 2>,
    /// Aux layers after the first.
    rest: Vec<burn::nn::Linear<B>>,
    /// `[1, user_dim]` learned default user.
    default_user: Tensor<B, 2>,
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

impl<B: Backend> ServePlan<B> {
    /// Builds the plan of `ranker` (with the fusion `fusion` for the fused ranker) over the dense
    /// items `0..n_items` of `batcher`'s dataset; `None` when the model is not a plain MLP
    /// ranker (cross layers, no hidden layer, an aux network without hidden layers): serve it
    /// with [`RankModel::score_batch`].
    pub fn new(
        ranker: &crate::ranker::Ranker<B>,
        fusion: Option<&crate::fusion::LearnFusion<B>>,
        batcher: &Batcher<'_>,
        n_items: usize,
        device: &B::Device,
    ) -> Result<Option<Self>> {
        if !ranker.is_plain_mlp() || fusion.is_some_and(|f| f.mlp.is_empty()) || n_items == 0 {
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
        let examples: Vec<RankingExample> = (0..n_items as u32)
            .map(|item| RankingExample {
                user: 0,
                item,
                ts: 0,
                label: 0.0,
                weight: 1.0,
            })
            .collect();
        let host = batcher.batch(&examples);
        let batch = host.to_device::<B>(device);
        let n = n_items as i32;
        let item_id = ranker
            .item_emb
            .forward(batch.items.clone().unsqueeze_dim(1))
            .reshape([n, -1]);
        let mut item_side = item_id.matmul(rows(&w1, id, 2 * id));
        let mut at = 2 * id;
        if nf > 0 {
            let f = ranker.field_emb.forward(batch.fields.clone()).reshape([n, -1]);
            item_side = item_side + f.matmul(rows(&w1, at, at + nf * fd));
            at += nf * fd;
        }
        let aux = match fusion {
            None => None,
            Some(fu) => {
                let learn = batch.learn.clone().ok_or_else(|| {
                    Error::Invalid(
                        "the fused ranker's plan needs a batcher with a LearnLookup".into(),
                    )
                })?;
                let du = learn.user.dims()[1];
                let di = learn.item.dims()[1];
                let i = match learn.item_missing {
                    Some(m) => learn.item + fu.default_item.val() * m,
                    None => learn.item,
                };
                let (a1, a_bias) = first_layer(&fu.mlp[0]);
                let hd = fu.mlp.last().map_or(0, |l| l.weight.dims()[1]);
                let w_h = rows(&w1, at, at + hd);
                at += hd;
                let w_learn_user = if fu.include_embeddings {
                    let w = rows(&w1, at, at + du);
                    item_side = item_side + i.clone().matmul(rows(&w1, at + du, at + du + di));
                    Some(w)
                } else {
                    None
                };
                Some(AuxPlan {
                    w_learn_user,
                    w_h,
                    a_user: rows(&a1, 0, du),
                    a_bias,
                    a_prod: fu
                        .product_feature
                        .then(|| rows(&a1, du + di, du + di + du)),
                    aux_item: i.clone().matmul(rows(&a1, du, du + di)),
                    learn_item: i,
                    rest: fu.mlp[1..].iter().map(frozen).collect(),
                    default_user: fu.default_user.val(),
                })
            }
        };
        Ok(Some(ServePlan {
            w_user_id: rows(&w1, 0, id),
            bias,
            item_side,
            user_emb: ranker.user_emb.weight.val(),
            rest: ranker.mlp[1..].iter().map(frozen).collect(),
            head: frozen(&ranker.head),
            aux,
            n_items,
        }))
    }

    /// Logits of one request: `user` (dense id) and its candidate `items` (dense ids below the
    /// plan's `n_items`). `batcher` supplies the user's ID row and LEARN embedding.
    ///
    /// # Shapes
    /// - output `[items.len()]` logits
    pub fn score(
        &self,
        batcher: &Batcher<'_>,
        user: u32,
        items: &[u32],
        device: &B::Device,
    ) -> Result<Tensor<B, 1>> {
        if let Some(&bad) = items.iter().find(|&&i| i as usize >= self.n_items) {
            return Err(Error::Invalid(format!(
                "item {bad} is beyond the plan's {} items",
                self.n_items
            )));
        }
        let n = items.len();
        let host = batcher.batch(&[RankingExample {
            user,
            item: 0,
            ts: 0,
            label: 0.0,
            weight: 1.0,
        }]);
        let idx: Vec<i64> = items.iter().map(|&i| i64::from(i)).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), device);
        let urow = Tensor::<B, 1, Int>::from_data(TensorData::new(host.users.clone(), [1]), device);
        let uid = self.user_emb.clone().select(0, urow);
        let mut zu = self.bias.clone() + uid.matmul(self.w_user_id.clone());
        let mut z = self.item_side.clone().select(0, idx.clone());
        if let Some(a) = &self.aux {
            let learn = host.learn.as_ref().ok_or_else(|| {
                Error::Invalid("the fused ranker's plan needs a batcher with a LearnLookup".into())
            })?;
            let u = if learn.user_known.first().copied().unwrap_or(0.0) > 0.5 {
                Tensor::<B, 2>::from_data(
                    TensorData::new(learn.user.clone(), [1, learn.user_dim]),
                    device,
                )
            } else {
                a.default_user.clone()
            };
            if let Some(w) = &a.w_learn_user {
                zu = zu + u.clone().matmul(w.clone());
            }
            let mut h = a.aux_item.clone().select(0, idx.clone())
                + (a.a_bias.clone() + u.clone().matmul(a.a_user.clone()));
            if let Some(p) = &a.a_prod {
                // (u ⊙ i)·A_p = i·(diag(u)·A_p): one [du, A] matrix per request.
                let m = p.clone() * u.transpose();
                h = h + a.learn_item.clone().select(0, idx).matmul(m);
            }
            h = relu(h);
            for l in &a.rest {
                h = relu(l.forward(h));
            }
            z = z + h.matmul(a.w_h.clone());
        }
        let mut x = relu(z + zu);
        for l in &self.rest {
            x = relu(l.forward(x));
        }
        Ok(self.head.forward(x).reshape([n]))
    }
}

/// As [`bench_latency`], through a [`ServePlan`] (each request is one user's candidates).
pub fn bench_latency_plan<B: Backend>(
    plan: &ServePlan<B>,
    batcher: &Batcher<'_>,
    requests: &[Vec<RankingExample>],
    warmup: usize,
    device: &B::Device,
) -> Result<LatencyReport> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| Error::Invalid(format!("histogram: {e}")))?;
    let mut checksum = 0f32;
    let mut items = Vec::new();
    for (k, req) in requests
        .iter()
        .chain(requests.iter().take(warmup))
        .enumerate()
    {
        let Some(first) = req.first() else { continue };
        let t = Instant::now();
        items.clear();
        items.extend(req.iter().map(|e| e.item));
        let logits = plan.score(batcher, first.user, &items, device)?;
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
