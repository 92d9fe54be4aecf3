//! Retrieval with the trained towers: user and item embeddings, exact top-K by chunked matmul,
//! and H@K / R@K / N@K overall and per user and item segment.

use super::config::ItemTowerVariant;
use super::data::{ItemFeatures, UserSequence, clip};
use super::model::{LearnTower, l2_normalize, last_position};
use crate::{Error, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use learnrec_eval::segment::Segment;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// The paper's cut-offs.
pub const DEFAULT_KS: [usize; 4] = [10, 50, 100, 200];

/// Row-major `[n, dim]` embeddings.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// User embeddings (serving: the output at the last non-padding history position), one row per
/// sequence in order. Every history must be non-empty.
pub fn user_embeddings<B: Backend>(
    model: &LearnTower<B>,
    users: &[&UserSequence],
    features: &ItemFeatures,
    history_len: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<Embeddings> {
    if let Some(u) = users.iter().find(|u| u.history.is_empty()) {
        return Err(Error::Invalid(format!("user {} has an empty history: no user embedding", u.user)));
    }
    let mut data = Vec::new();
    let mut dim = 0;
    for chunk in users.chunks(batch_size.max(1)) {
        let hist: Vec<&[u32]> = chunk.iter().map(|u| clip(u, history_len, 0).0).collect();
        let lens: Vec<usize> = hist.iter().map(|h| h.len()).collect();
        let out = model.user_sequence(features.input(&hist, device));
        let last = last_position(out, &lens);
        dim = last.dims()[1];
        data.extend(to_vec(last));
    }
    Ok(Embeddings { dim, data })
}

/// Item embeddings of `items` (dense ids): each item alone (length 1) through the tower for
/// variants 1 and 2 (the masks agree at length 1), or its L2-normalised content for variant 3.
pub fn item_embeddings<B: Backend>(
    model: &LearnTower<B>,
    items: &[u32],
    features: &ItemFeatures,
    variant: ItemTowerVariant,
    batch_size: usize,
    device: &B::Device,
) -> Result<Embeddings> {
    let mut data = Vec::new();
    let mut dim = 0;
    for chunk in items.chunks(batch_size.max(1)) {
        let seqs: Vec<[u32; 1]> = chunk.iter().map(|&i| [i]).collect();
        let seqs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let input = features.input::<B>(&seqs, device);
        let out: Tensor<B, 3> = match (variant, input) {
            (ItemTowerVariant::RawContent, super::model::TowerInput::Content(x)) => l2_normalize(x),
            (ItemTowerVariant::RawContent, _) => {
                return Err(Error::Invalid("item tower `raw-content` needs content features".into()));
            }
            (v, input) => model.item_sequence(input, v),
        };
        let [b, _, d] = out.dims();
        dim = d;
        data.extend(to_vec(out.reshape([b, d])));
    }
    Ok(Embeddings { dim, data })
}

/// Exact top-`k` item rows per user by inner product (cosine for L2-normalised rows), best
/// first, ties broken by the lower item row. Scores are computed by chunked matmuls of
/// `chunk` users at a time; `exclude[u]` lists item rows never returned for user `u`.
pub fn top_k<B: Backend>(
    users: &Embeddings,
    items: &Embeddings,
    k: usize,
    exclude: Option<&[Vec<usize>]>,
    chunk: usize,
    device: &B::Device,
) -> Result<Vec<Vec<usize>>> {
    if users.dim != items.dim {
        return Err(Error::Invalid(format!("user dim {} ≠ item dim {}", users.dim, items.dim)));
    }
    let (n_items, dim) = (items.len(), items.dim);
    let it = Tensor::<B, 2>::from_data(TensorData::new(items.data.clone(), [n_items, dim]), device).transpose();
    let mut out = Vec::with_capacity(users.len());
    for (c, rows) in users.data.chunks(chunk.max(1) * dim).enumerate() {
        let n = rows.len() / dim;
        let u = Tensor::<B, 2>::from_data(TensorData::new(rows.to_vec(), [n, dim]), device);
        let scores = to_vec(u.matmul(it.clone())); // [n, n_items]
        let base = c * chunk.max(1);
        let part: Vec<Vec<usize>> = scores
            .par_chunks(n_items.max(1))
            .enumerate()
            .map(|(r, s)| {
                let ex: HashSet<usize> =
                    exclude.and_then(|e| e.get(base + r)).map(|v| v.iter().copied().collect()).unwrap_or_default();
                let mut idx: Vec<usize> = (0..n_items).filter(|i| !ex.contains(i)).collect();
                let cmp = |a: &usize, b: &usize| s[*b].total_cmp(&s[*a]).then(a.cmp(b));
                if idx.len() > k {
                    idx.select_nth_unstable_by(k, cmp);
                    idx.truncate(k);
                }
                idx.sort_by(cmp);
                idx
            })
            .collect();
        out.extend(part);
    }
    Ok(out)
}

/// H@K, R@K and N@K of one user.
///
/// - H@K = 1 if any target item is in the top K, else 0.
/// - R@K = |top K ∩ targets| / |targets|.
/// - N@K = DCG / IDCG with DCG = Σ_{rank r < K, item ∈ targets} 1/log2(r + 2) and IDCG the DCG
///   of a perfect list (min(|targets|, K) hits first).
pub fn user_metrics(ranked: &[usize], targets: &HashSet<usize>, k: usize) -> (f64, f64, f64) {
    if targets.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut hits = 0usize;
    let mut dcg = 0.0;
    for (r, it) in ranked.iter().take(k).enumerate() {
        if targets.contains(it) {
            hits += 1;
            dcg += 1.0 / ((r + 2) as f64).log2();
        }
    }
    let idcg: f64 = (0..targets.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    ((hits > 0) as u8 as f64, hits as f64 / targets.len() as f64, dcg / idcg)
}

/// Mean metrics at one cut-off.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct AtK {
    pub k: usize,
    /// Hit rate H@K.
    pub hit: f64,
    /// Recall R@K.
    pub recall: f64,
    /// NDCG N@K.
    pub ndcg: f64,
}

/// Retrieval report: overall, per user segment, per item segment.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RetrievalReport {
    /// Users evaluated (users without targets are skipped and counted in `skipped_users`).
    pub users: usize,
    pub skipped_users: usize,
    pub overall: Vec<AtK>,
    /// Per user segment: users of the segment, mean metrics.
    pub by_user_segment: BTreeMap<Segment, (usize, Vec<AtK>)>,
    /// Per item segment: (user, target item) pairs whose item is in the segment, and the
    /// fraction of them retrieved in the user's top K (`recall`; `hit` and `ndcg` are 0 here).
    pub by_item_segment: BTreeMap<Segment, (usize, Vec<AtK>)>,
}

/// Computes the report from ranked lists (`ranked[u]`, at least max(ks) long when the pool
/// allows), target item rows per user, and segments.
pub fn evaluate(
    ranked: &[Vec<usize>],
    targets: &[Vec<usize>],
    ks: &[usize],
    user_segment: &[Segment],
    item_segment: &[Segment],
) -> Result<RetrievalReport> {
    if ranked.len() != targets.len() || user_segment.len() != targets.len() {
        return Err(Error::Invalid(format!(
            "evaluate: {} ranked lists, {} target lists, {} user segments",
            ranked.len(),
            targets.len(),
            user_segment.len()
        )));
    }
    let mut rep = RetrievalReport::default();
    let mut overall = vec![(0.0, 0.0, 0.0); ks.len()];
    let mut useg: BTreeMap<Segment, (usize, Vec<(f64, f64, f64)>)> = BTreeMap::new();
    let mut iseg: BTreeMap<Segment, (usize, Vec<usize>)> = BTreeMap::new();
    for (u, (r, t)) in ranked.iter().zip(targets).enumerate() {
        let set: HashSet<usize> = t.iter().copied().collect();
        if set.is_empty() {
            rep.skipped_users += 1;
            continue;
        }
        rep.users += 1;
        let e = useg.entry(user_segment[u]).or_insert_with(|| (0, vec![(0.0, 0.0, 0.0); ks.len()]));
        e.0 += 1;
        for (ki, &k) in ks.iter().enumerate() {
            let (h, rc, n) = user_metrics(r, &set, k);
            overall[ki].0 += h;
            overall[ki].1 += rc;
            overall[ki].2 += n;
            e.1[ki].0 += h;
            e.1[ki].1 += rc;
            e.1[ki].2 += n;
        }
        for &it in &set {
            let seg = *item_segment
                .get(it)
                .ok_or_else(|| Error::Invalid(format!("target item row {it} has no segment")))?;
            let e = iseg.entry(seg).or_insert_with(|| (0, vec![0; ks.len()]));
            e.0 += 1;
            for (ki, &k) in ks.iter().enumerate() {
                if let Some(pos) = r.iter().position(|&x| x == it) {
                    if pos < k {
                        e.1[ki] += 1;
                    }
                }
            }
        }
    }
    let mean = |v: &[(f64, f64, f64)], n: usize| -> Vec<AtK> {
        ks.iter()
            .zip(v)
            .map(|(&k, &(h, r, g))| {
                let n = n.max(1) as f64;
                AtK { k, hit: h / n, recall: r / n, ndcg: g / n }
            })
            .collect()
    };
    rep.overall = mean(&overall, rep.users);
    rep.by_user_segment = useg.into_iter().map(|(s, (n, v))| (s, (n, mean(&v, n)))).collect();
    rep.by_item_segment = iseg
        .into_iter()
        .map(|(s, (n, hits))| {
            let v = ks
                .iter()
                .zip(&hits)
                .map(|(&k, &h)| AtK { k, hit: 0.0, recall: h as f64 / n.max(1) as f64, ndcg: 0.0 })
                .collect();
            (s, (n, v))
        })
        .collect();
    Ok(rep)
}
