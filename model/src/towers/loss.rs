//! LEARN's dense all-action InfoNCE loss and the official code's simplified loss.

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

    // Host masks: positives [b, lh, lt], negatives per user [b, c].
    let mut pos = vec![0f32; b * lh * lt];
    let mut neg = vec![0f32; b * c];
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
                    neg[i * c + z * lt + k] = 1.0;
                }
            }
        }
    }
    let pos = Tensor::<B, 3>::from_data(TensorData::new(pos, [b, lh, lt]), &device);
    let neg = Tensor::<B, 2>::from_data(TensorData::new(neg, [b, c]), &device);

    // All scores [r, c] for the negatives.
    let scores = users.clone().reshape([r, dim]).matmul(items.clone().reshape([c, dim]).transpose()).mul_scalar(logit_scale);
    let m = scores.clone().max_dim(1).detach(); // [r, 1], a constant shift for stability
    let neg_sum = ((scores - m.clone()).exp().reshape([b, lh, c]) * neg.unsqueeze_dim::<3>(1))
        .sum_dim(2); // [b, lh, 1]
    // Own-user scores [b, lh, lt] for the positives.
    let s_pos = users.matmul(items.swap_dims(1, 2)).mul_scalar(logit_scale);
    let m = m.reshape([b, lh, 1]);
    let log_denom = ((s_pos.clone() - m.clone()).exp() + neg_sum).log() + m;
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
