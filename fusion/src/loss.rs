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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    type B = learnrec_model::CpuBackend;

    fn t(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn scalar(x: Tensor<B, 1>) -> f32 {
        x.into_data().into_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn bce_matches_the_formula_and_weights_select_examples() {
        let (x, y) = ([2.0f32, -1.0, 0.5], [1.0f32, 0.0, 0.0]);
        let want: Vec<f32> = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| {
                let p = 1.0 / (1.0 + (-x).exp());
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .collect();
        let mean = scalar(weighted_bce_with_logits(t(&x), t(&y), None));
        assert!(
            (mean - want.iter().sum::<f32>() / 3.0).abs() < 1e-5,
            "{mean}"
        );
        // weight 0 drops an example; weights normalise by their sum
        let w = scalar(weighted_bce_with_logits(
            t(&x),
            t(&y),
            Some(t(&[0.0, 2.0, 2.0])),
        ));
        assert!((w - (want[1] + want[2]) / 2.0).abs() < 1e-5, "{w}");
        // large logits stay finite
        let big = scalar(weighted_bce_with_logits(
            t(&[80.0, -80.0]),
            t(&[0.0, 1.0]),
            None,
        ));
        assert!((big - 80.0).abs() < 1e-3, "{big}");
    }
}
