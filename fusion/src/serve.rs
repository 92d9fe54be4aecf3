//! Serving latency: score requests of N candidates for one user and record per-request latency
//! in an HDR histogram.

use crate::data::{Batcher, RankingExample};
use crate::model::RankModel;
use crate::{Error, Result};
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
    time_requests(requests, warmup, |req, out| {
        let batch = batcher.batch(req).to_device::<B>(device);
        let p: Vec<f32> = sigmoid(model.score_batch(&batch)?)
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("cannot read scores: {e:?}")))?;
        out.clear();
        out.extend(p);
        Ok(true)
    })
}

/// Times `score` on every request as a server would (it leaves the request's probabilities on
/// the host in its second argument), the first `warmup` unrecorded and then repeated at the end,
/// so every request is recorded once; `score` returning `false` (an empty request) records
/// nothing.
fn time_requests(
    requests: &[Vec<RankingExample>],
    warmup: usize,
    mut score: impl FnMut(&[RankingExample], &mut Vec<f32>) -> Result<bool>,
) -> Result<LatencyReport> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| Error::Invalid(format!("histogram: {e}")))?;
    let mut checksum = 0f32;
    let mut p = Vec::new();
    for (k, req) in requests
        .iter()
        .chain(requests.iter().take(warmup))
        .enumerate()
    {
        let t = Instant::now();
        if !score(req, &mut p)? {
            continue;
        }
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
/// and per request the product feature's `(u⊙i)·A_p = i·(diag(u)·A_p)` becomes one `[du, A]`
/// matrix, so per candidate remain `i·(diag(u)·A_p)`, the aux network's later layers, `h·W_h` and
/// the ranker's later layers.
///
/// The plan holds its tables and weights on the host and scores with small register-blocked
/// kernels (AVX-512 when the CPU has it): a request of a few hundred candidates is a few
/// million multiply-adds, too small for per-op tensor dispatch and allocation to pay. Both
/// rankers get the same treatment (the baseline's tables hold only its ID and categorical
/// blocks), so comparing their latencies stays fair.
#[derive(Debug, Clone)]
pub struct ServePlan<B: Backend> {
    /// `[n_items, H]` precomputed item-side blocks of the ranker's first layer.
    item_table: HostMat,
    /// `[n_users, H]` precomputed user-side blocks (with the bias).
    user_table: HostMat,
    /// Ranker layers after the first, and the head.
    rest: Vec<HostLinear>,
    head: HostLinear,
    aux: Option<AuxPlan>,
    n_users: usize,
    n_items: usize,
    backend: std::marker::PhantomData<fn() -> B>,
}

/// The fused ranker's extra parts of a [`ServePlan`].
#[derive(Debug, Clone)]
struct AuxPlan {
    /// `[n_items, A]` `i·A_i`; `[n_users, A]` `b' + u·A_u`.
    aux_item: HostMat,
    aux_user: HostMat,
    /// `[n_items, item_dim]`, `[n_users, user_dim]` default-filled LEARN embeddings.
    learn_item: HostMat,
    learn_user: HostMat,
    /// `[h_dim, H]` ranker rows of the aux network's last hidden layer.
    w_h: HostMat,
    /// `[user_dim, A]` aux first-layer rows of `u ⊙ i` (product feature).
    a_prod: Option<HostMat>,
    /// Aux layers after the first.
    rest: Vec<HostLinear>,
}

/// A row-major `f32` matrix on the host.
#[derive(Debug, Clone)]
struct HostMat {
    cols: usize,
    data: Vec<f32>,
}

impl HostMat {
    fn from_tensor<B: Backend>(t: Tensor<B, 2>, what: &str) -> Result<Self> {
        let [_, cols] = t.dims();
        let data = t
            .into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("serving plan: cannot read {what}: {e:?}")))?;
        Ok(HostMat { cols, data })
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// A frozen `Linear` on the host: `w [in, out]` (Burn's layout), `b [out]`.
#[derive(Debug, Clone)]
struct HostLinear {
    w: HostMat,
    b: Vec<f32>,
}

impl HostLinear {
    fn new<B: Backend>(l: &burn::nn::Linear<B>, what: &str) -> Result<Self> {
        let (w, b) = first_layer(l);
        let w = HostMat::from_tensor(w, what)?;
        let b = HostMat::from_tensor(b, what)?.data;
        Ok(HostLinear { w, b })
    }

    /// `out = relu(x·W + b)` for `n` rows of `x` (`[n, in]`); `out` is resized to `[n, out]`.
    fn forward_relu(&self, x: &[f32], n: usize, out: &mut Vec<f32>) {
        let m = self.w.cols;
        out.clear();
        for _ in 0..n {
            out.extend_from_slice(&self.b);
        }
        kernels::matmul_acc(x, n, self.w.data.len() / m.max(1), &self.w.data, m, out);
        kernels::relu(out);
    }
}

/// Reusable buffers of [`ServePlan::score_host`] (one per serving thread).
#[derive(Debug, Default)]
pub struct ServeScratch {
    z: Vec<f32>,
    y: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    x: Vec<f32>,
    m: Vec<f32>,
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

fn host_layers<B: Backend>(ls: &[burn::nn::Linear<B>], what: &str) -> Result<Vec<HostLinear>> {
    ls.iter().map(|l| HostLinear::new(l, what)).collect()
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
        let rest = host_layers(&ranker.mlp[1..], "a ranker layer")?;
        let head = HostLinear::new(&ranker.head, "the ranker's head")?;
        let Some(fu) = fusion else {
            return Ok(Some(ServePlan {
                item_table: HostMat::from_tensor(item_side, "the item table")?,
                user_table: HostMat::from_tensor(user_side, "the user table")?,
                rest,
                head,
                aux: None,
                n_users,
                n_items,
                backend: std::marker::PhantomData,
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
        let aux = AuxPlan {
            aux_user: HostMat::from_tensor(
                u.clone().matmul(rows(&a1, 0, du)) + a_bias,
                "the aux user table",
            )?,
            aux_item: HostMat::from_tensor(
                i.clone().matmul(rows(&a1, du, du + di)),
                "the aux item table",
            )?,
            learn_item: HostMat::from_tensor(i, "the LEARN item table")?,
            learn_user: HostMat::from_tensor(u, "the LEARN user table")?,
            w_h: HostMat::from_tensor(w_h, "the fused rows of the ranker's first layer")?,
            a_prod: fu
                .product_feature
                .then(|| HostMat::from_tensor(rows(&a1, du + di, du + di + du), "A_p"))
                .transpose()?,
            rest: host_layers(&fu.mlp[1..], "an aux layer")?,
        };
        Ok(Some(ServePlan {
            item_table: HostMat::from_tensor(item_side, "the item table")?,
            user_table: HostMat::from_tensor(user_side, "the user table")?,
            rest,
            head,
            aux: Some(aux),
            n_users,
            n_items,
            backend: std::marker::PhantomData,
        }))
    }

    /// Multiply-adds per candidate of [`ServePlan::score_host`] (the matmuls after the
    /// precomputed tables; the per-request `diag(u)·A_p` is not counted).
    pub fn macs_per_candidate(&self) -> usize {
        let dense = |l: &HostLinear| l.w.data.len();
        let mut n: usize = self.rest.iter().map(dense).sum::<usize>() + dense(&self.head);
        if let Some(a) = &self.aux {
            n += a.a_prod.as_ref().map_or(0, |p| p.data.len());
            n += a.rest.iter().map(dense).sum::<usize>() + a.w_h.data.len();
        }
        n
    }

    /// Logits of one request: `user` (dense id below the plan's `n_users`) and its candidate
    /// `items` (dense ids below the plan's `n_items`).
    ///
    /// # Shapes
    /// - output `[items.len()]` logits
    pub fn score(&self, user: u32, items: &[u32], device: &B::Device) -> Result<Tensor<B, 1>> {
        let mut out = Vec::with_capacity(items.len());
        self.score_host(user, items, &mut ServeScratch::default(), &mut out)?;
        let n = out.len();
        Ok(Tensor::from_data(TensorData::new(out, [n]), device))
    }

    /// As [`ServePlan::score`], on the host: the logits are written to `out` (cleared first),
    /// with `scratch`'s buffers reused between requests.
    pub fn score_host(
        &self,
        user: u32,
        items: &[u32],
        scratch: &mut ServeScratch,
        out: &mut Vec<f32>,
    ) -> Result<()> {
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
        let (u, n) = (user as usize, items.len());
        let ServeScratch { z, y, a, b, x, m } = scratch;
        gather_plus(&self.item_table, items, self.user_table.row(u), z);
        let h = self.item_table.cols;
        if let Some(ap) = &self.aux {
            gather_plus(&ap.aux_item, items, ap.aux_user.row(u), a);
            if let Some(p) = &ap.a_prod {
                // (u ⊙ i)·A_p = i·(diag(u)·A_p): one [du, A] matrix per request
                let (lu, cols) = (ap.learn_user.row(u), p.cols);
                m.clear();
                for (k, &uk) in lu.iter().enumerate() {
                    m.extend(p.row(k).iter().map(|&w| uk * w));
                }
                x.clear();
                for &i in items {
                    x.extend_from_slice(ap.learn_item.row(i as usize));
                }
                kernels::matmul_acc(x, n, lu.len(), m, cols, a);
            }
            kernels::relu(a);
            for l in &ap.rest {
                l.forward_relu(a, n, b);
                std::mem::swap(a, b);
            }
            kernels::matmul_acc(a, n, ap.w_h.data.len() / h.max(1), &ap.w_h.data, h, z);
        }
        kernels::relu(z);
        for l in &self.rest {
            l.forward_relu(z, n, y);
            std::mem::swap(z, y);
        }
        let k = self.head.w.data.len();
        let hb = self.head.b.first().copied().unwrap_or(0.0);
        out.clear();
        out.extend(z.chunks_exact(k.max(1)).take(n).map(|r| kernels::dot(r, &self.head.w.data) + hb));
        Ok(())
    }
}

/// `out[c] = table[items[c]] + add` (`[items.len(), cols]`).
fn gather_plus(table: &HostMat, items: &[u32], add: &[f32], out: &mut Vec<f32>) {
    out.clear();
    for &i in items {
        out.extend(table.row(i as usize).iter().zip(add).map(|(a, b)| a + b));
    }
}

/// Small dense kernels of the serving plan.
#[allow(clippy::needless_range_loop)]
pub(crate) mod kernels {
    /// `out[n, m] += x[n, k] · w[k, m]` (row-major).
    pub fn matmul_acc(x: &[f32], n: usize, k: usize, w: &[f32], m: usize, out: &mut [f32]) {
        debug_assert!(x.len() >= n * k && w.len() >= k * m && out.len() >= n * m);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX-512F and FMA (checked just above).
            return unsafe { matmul_acc_avx512(x, n, k, w, m, out) };
        }
        matmul_acc_any::<false>(x, n, k, w, m, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn matmul_acc_avx512(x: &[f32], n: usize, k: usize, w: &[f32], m: usize, out: &mut [f32]) {
        matmul_acc_any::<true>(x, n, k, w, m, out)
    }

    #[inline(always)]
    fn matmul_acc_any<const FMA: bool>(x: &[f32], n: usize, k: usize, w: &[f32], m: usize, out: &mut [f32]) {
        let mut j = 0;
        while j + 64 <= m {
            cols::<64, FMA>(x, n, k, w, m, out, j);
            j += 64;
        }
        while j + 32 <= m {
            cols::<32, FMA>(x, n, k, w, m, out, j);
            j += 32;
        }
        while j + 16 <= m {
            cols::<16, FMA>(x, n, k, w, m, out, j);
            j += 16;
        }
        for jj in j..m {
            for r in 0..n {
                let mut s = 0f32;
                for kk in 0..k {
                    s += x[r * k + kk] * w[kk * m + jj];
                }
                out[r * m + jj] += s;
            }
        }
    }

    /// Rows per register tile: 6 rows × 64 columns is 24 AVX-512 accumulators (as the `gemm`
    /// crate's 6×4 micro-kernel).
    const MR: usize = 6;

    /// Columns `j..j + NR` of all rows, [`MR`] rows at a time with the accumulators in
    /// registers, then the remaining rows one at a time.
    #[inline(always)]
    fn cols<const NR: usize, const FMA: bool>(
        x: &[f32],
        n: usize,
        k: usize,
        w: &[f32],
        m: usize,
        out: &mut [f32],
        j: usize,
    ) {
        let mut r = 0;
        while r + MR <= n {
            rows::<MR, NR, FMA>(x, r, k, w, m, out, j);
            r += MR;
        }
        while r < n {
            rows::<1, NR, FMA>(x, r, k, w, m, out, j);
            r += 1;
        }
    }

    /// Rows `r..r + R`, columns `j..j + NR`.
    #[inline(always)]
    fn rows<const R: usize, const NR: usize, const FMA: bool>(
        x: &[f32],
        r: usize,
        k: usize,
        w: &[f32],
        m: usize,
        out: &mut [f32],
        j: usize,
    ) {
        let mut acc = [[0f32; NR]; R];
        let xs: [&[f32]; R] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
        for kk in 0..k {
            let wr: &[f32; NR] = w[kk * m + j..kk * m + j + NR]
                .try_into()
                .unwrap_or_else(|_| unreachable!("NR columns"));
            for (a, xr) in acc.iter_mut().zip(&xs) {
                let xv = xr[kk];
                for t in 0..NR {
                    // one fused multiply-add where the CPU has FMA (otherwise `mul_add` would be
                    // a library call)
                    a[t] = if FMA { xv.mul_add(wr[t], a[t]) } else { a[t] + xv * wr[t] };
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let o = &mut out[(r + i) * m + j..(r + i) * m + j + NR];
            for t in 0..NR {
                o[t] += a[t];
            }
        }
    }

    /// In-place ReLU.
    pub fn relu(x: &mut [f32]) {
        for v in x {
            *v = v.max(0.0);
        }
    }

    /// `a · b`.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (a16.remainder(), b16.remainder());
        for (x, y) in a16.zip(b16) {
            for t in 0..16 {
                acc[t] += x[t] * y[t];
            }
        }
        acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn matmul_acc_matches_the_naive_product_on_ragged_shapes() {
            for (n, k, m) in [(7, 5, 51), (4, 64, 16), (1, 3, 32), (9, 17, 1), (0, 4, 16), (13, 9, 128 + 48 + 5)] {
                let x: Vec<f32> = (0..n * k).map(|v| ((v * 7 % 13) as f32 - 6.0) * 0.1).collect();
                let w: Vec<f32> = (0..k * m).map(|v| ((v * 5 % 11) as f32 - 5.0) * 0.2).collect();
                let init: Vec<f32> = (0..n * m).map(|v| v as f32 * 0.01).collect();
                // the dispatched kernel (AVX-512 + FMA here) and the portable one
                let mut fast = init.clone();
                matmul_acc(&x, n, k, &w, m, &mut fast);
                let mut portable = init.clone();
                matmul_acc_any::<false>(&x, n, k, &w, m, &mut portable);
                for out in [&fast, &portable] {
                    for r in 0..n {
                        for j in 0..m {
                            let want = init[r * m + j]
                                + (0..k).map(|t| x[r * k + t] * w[t * m + j]).sum::<f32>();
                            let got = out[r * m + j];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "({n},{k},{m}) [{r},{j}]: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }

        #[test]
        fn dot_and_relu() {
            let a: Vec<f32> = (0..37).map(|v| v as f32 - 18.0).collect();
            let want: f32 = a.iter().map(|v| v * v).sum();
            assert_eq!(dot(&a, &a), want);
            let mut r = a.clone();
            relu(&mut r);
            assert!(r.iter().zip(&a).all(|(r, a)| *r == a.max(0.0)));
        }
    }
}

/// As [`bench_latency`], through a [`ServePlan`] (each request is one user's candidates), on the
/// host with reused buffers, as a server thread would.
pub fn bench_latency_plan<B: Backend>(
    plan: &ServePlan<B>,
    requests: &[Vec<RankingExample>],
    warmup: usize,
    _device: &B::Device,
) -> Result<LatencyReport> {
    let mut items = Vec::new();
    let mut scratch = ServeScratch::default();
    let mut logits = Vec::new();
    time_requests(requests, warmup, |req, out| {
        let Some(first) = req.first() else {
            return Ok(false);
        };
        items.clear();
        items.extend(req.iter().map(|e| e.item));
        plan.score_host(first.user, &items, &mut scratch, &mut logits)?;
        out.clear();
        out.extend(logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())));
        Ok(true)
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
