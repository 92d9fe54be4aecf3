//! Losses shared by the rankers and the aux network.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Numerically stable (weighted) binary cross-entropy on logits:
/// `ℓ(x, y) = max(x, 0) − x·y + log(1 + e^{−|x|})`, reduced as `Σ w·ℓ / Σ w` (plain mean when
/// `weights` is `None`).
///
/// # Shapes
/// - `logits`, `labels`, `weights`: `[batch]` → `[1]`
pub fn weighted_bce_with_logits<B: Backend>(
    logits: Tensor<B, 1>,
    labels: Tensor<B, 1>,
    weights: Option<Tensor<B, 1>>,
) -> Tensor<B, 1> {
    let l = logits.clone().clamp_min(0.0) - logits.clone() * labels
        + logits.abs().neg().exp().add_scalar(1.0).log();
    match weights {
        Some(w) => (l * w.clone()).sum() / w.sum().clamp_min(1e-12),
        None => l.mean(),
    }
}
