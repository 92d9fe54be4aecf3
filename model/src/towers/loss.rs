//! LEARN's dense all-action InfoNCE loss and the official code's simplified loss.

use super::fused::DenseLossPlan;
use super::model::last_position;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use std::collections::HashSet;

/// Which items and positions of a batch are real (host side; builds the loss masks).
#[derive(Debug, Clone)]
pub struct LossMasks {
    /// Valid history length per user (≥ 1).
    pub history_lens: Vec<usize>,
    /// Target item ids per user (valid positions only, in order; ≥ 1 each).
    pub targets: Vec<Vec<u32>>,
}

/// Dense all-action InfoNCE (paper, Eq. 2–3). For user i, history position j and target item k:
///
/// `ℓ_ijk = −log( e^{s(U_ij, I_ik)} / ( e^{s(U_ij, I_ik)} + Σ_{z≠i} Σ_k' e^{s(U_ij, I_zk')} ) )`
///
/// with `s = cosine × logit_scale` (embeddings are L2-normalised). Padding positions (history and
/// target) are masked. A negative `(z, k')` is masked when its item is one of user i's own target
/// items — this covers "the same item as the positive" and also keeps the user's other positives
/// from being counted as negatives. The loss is the sum over valid `(i, j, k)` divided by the
/// number of valid pairs `Σ_i len_h(i)·len_t(i)`.
///
/// # Shapes
/// `users`: `[batch, Lh, dim]`, `items`: `[batch, Lt, dim]` (both L2-normalised) → scalar `[1]`.
pub fn dense_all_action_loss<B: Backend>(
    users: Tensor<B, 3>,
    items: Tensor<B, 3>,
    masks: &LossMasks,
    logit_scale: f32,
) -> Tensor<B, 1> {
    let [b, lh, dim] = users.dims();
    let [_, lt, _] = items.dims();
    let device = users.device();
    let (r, c) = (b * lh, b * lt);

    // Host masks: positives [b, lh, lt]; negatives per user as an additive bias [b, c]
    // (0 = a negative of user i, -1e9 = masked: padding, user i's own targets, or an item that
    // is one of user i's targets).
    let mut pos = vec![0f32; b * lh * lt];
    let mut neg_bias = vec![-1e9f32; b * c];
    let mut n_pairs = 0usize;
    let own: Vec<HashSet<u32>> = masks.targets.iter().map(|t| t.iter().copied().collect()).collect();
    for i in 0..b {
        let (nh, nt) = (masks.history_lens[i].min(lh), masks.targets[i].len().min(lt));
        for j in 0..nh {
            for k in 0..nt {
                pos[(i * lh + j) * lt + k] = 1.0;
            }
        }
        n_pairs += nh * nt;
        for z in (0..b).filter(|&z| z != i) {
            for (k, item) in masks.targets[z].iter().take(lt).enumerate() {
                if !own[i].contains(item) {
                    neg_bias[i * c + z * lt + k] = 0.0;
                }
            }
        }
    }
    // Fused path (CPU backends): user by user, the scores, the loss and the gradients of the
    // embeddings (softmax–cross-entropy written by hand), see `fused::dense_loss_from_embeddings`.
    if super::fused::active() {
        let plan = DenseLossPlan {
            b,
            lh,
            lt,
            nh: (0..b).map(|i| masks.history_lens[i].min(lh)).collect(),
            nt: (0..b).map(|i| masks.targets[i].len().min(lt)).collect(),
            neg: neg_bias.iter().map(|&v| v == 0.0).collect(),
            n_pairs,
            scale: logit_scale,
        };
        let (u, it) = (users.clone().reshape([r, dim]), items.clone().reshape([c, dim]));
        if let Some(loss) = super::fused::dense_loss_from_embeddings(&u, &it, &plan) {
            return loss;
        }
    }
    let pos = Tensor::<B, 3>::from_data(TensorData::new(pos, [b, lh, lt]), &device);
    let neg_bias = Tensor::<B, 2>::from_data(TensorData::new(neg_bias, [b, c]), &device);

    // Negatives: scores of every history position against every target of the batch [b, lh, c].
    let scores = users.clone().reshape([r, dim]).matmul(items.clone().reshape([c, dim]).transpose());
    let neg_scores = scores.mul_scalar(logit_scale).reshape([b, lh, c]) + neg_bias.unsqueeze_dim::<3>(1);
    // Stable log-sum-exp: with M = max over the negatives, Σ e^{s} = e^{M} · Σ e^{s − M}, and
    // m = max(s_pos, M) makes one of the two terms below exactly e^0, so the log is finite even for
    // rows without negatives. M and m are constants for the gradient (the result does not depend
    // on them).
    let max_neg = neg_scores.clone().max_dim(2).detach(); // [b, lh, 1]
    let neg_sum = (neg_scores - max_neg.clone()).exp().sum_dim(2); // [b, lh, 1]
    // Positives: own-user scores [b, lh, lt].
    let s_pos = users.matmul(items.swap_dims(1, 2)).mul_scalar(logit_scale);
    let m = s_pos.clone().detach().max_pair(max_neg.clone().expand([b, lh, lt]));
    let log_denom = ((s_pos.clone() - m.clone()).exp() + (max_neg - m.clone()).exp() * neg_sum).log() + m;
    let per_pair = (log_denom - s_pos) * pos;
    per_pair.sum().div_scalar(n_pairs.max(1) as f32)
}

/// The official code's simplified loss: the user embedding at the last valid history position
/// against the first target item, in-batch negatives (the other users' first target items),
/// negatives with the same item as the positive masked; mean over users.
///
/// # Shapes
/// `users`: `[batch, Lh, dim]`, `items`: `[batch, Lt, dim]` → scalar `[1]`.
pub fn last_position_loss<B: Backend>(
    users: Tensor<B, 3>,
    items: Tensor<B, 3>,
    masks: &LossMasks,
    logit_scale: f32,
) -> Tensor<B, 1> {
    let [b, _, dim] = items.dims();
    let device = users.device();
    let u = last_position(users, &masks.history_lens); // [b, dim]
    let it = items.narrow(1, 0, 1).reshape([b, dim]); // [b, dim]
    let first: Vec<u32> = masks.targets.iter().map(|t| t[0]).collect();
    let mut bias = vec![0f32; b * b];
    let mut eye = vec![0f32; b * b];
    for i in 0..b {
        eye[i * b + i] = 1.0;
        for z in 0..b {
            if z != i && first[z] == first[i] {
                bias[i * b + z] = -1e9;
            }
        }
    }
    let bias = Tensor::<B, 2>::from_data(TensorData::new(bias, [b, b]), &device);
    let eye = Tensor::<B, 2>::from_data(TensorData::new(eye, [b, b]), &device);
    let s = u.matmul(it.transpose()).mul_scalar(logit_scale) + bias; // [b, b]
    let m = s.clone().max_dim(1).detach();
    let lse = (s.clone() - m.clone()).exp().sum_dim(1).log() + m; // [b, 1]
    let pos = (s * eye).sum_dim(1);
    (lse - pos).mean()
}
