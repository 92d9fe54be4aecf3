//! Pooling of a backbone's last hidden states into one content embedding per item.
//!
//! LEARN (CEG) uses the attention-masked mean of the last hidden layer, L2-normalised
//! ([`Pooling::Mean`], the default). `First` (BERT's `[CLS]`) and `Last` (the last real token,
//! common for decoder embedders) are offered for comparison; they depart from the paper.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How hidden states become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-padding positions (the paper's choice).
    #[default]
    Mean,
    /// The first position (`[CLS]` for BERT, BOS for decoders).
    #[serde(alias = "cls")]
    First,
    /// The last non-padding position.
    Last,
}

impl std::str::FromStr for Pooling {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Pooling::Mean),
            "first" | "cls" => Ok(Pooling::First),
            "last" => Ok(Pooling::Last),
            other => Err(crate::Error::Invalid(format!(
                "unknown pooling `{other}` (mean, first, cls, last)"
            ))),
        }
    }
}

impl Pooling {
    /// Pools right-padded hidden states.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding (each row has ≥ 1 real token)
    /// - output: `[batch, hidden]`
    pub fn pool<B: Backend>(self, hidden: Tensor<B, 3>, mask: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [b, s, h] = hidden.dims();
        match self {
            Pooling::Mean => {
                let m: Tensor<B, 3> = mask.float().reshape([b, s, 1]);
                let count = m.clone().sum_dim(1).clamp_min(1.0); // [batch, 1, 1]
                (hidden * m).sum_dim(1).div(count).reshape([b, h])
            }
            Pooling::First => hidden.narrow(1, 0, 1).reshape([b, h]),
            Pooling::Last => {
                let lengths = crate::backbone::layers::mask_lengths(&mask);
                let idx: Vec<i64> = lengths
                    .iter()
                    .flat_map(|&l| std::iter::repeat_n(l.saturating_sub(1) as i64, h))
                    .collect();
                let idx = Tensor::<B, 3, Int>::from_data(
                    TensorData::new(idx, [b, 1, h]),
                    &hidden.device(),
                );
                hidden.gather(1, idx).reshape([b, h])
            }
        }
    }
}

/// Scales each row to unit L2 norm (rows of zeros stay zero).
///
/// # Shapes
/// - `x`: `[batch, hidden]`
/// - output: `[batch, hidden]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend as B;

    fn batch() -> (Tensor<B, 3>, Tensor<B, 2, Int>) {
        let dev = Default::default();
        // Row 0: 3 real tokens; row 1: 1 real token then padding full of large values.
        #[rustfmt::skip]
        let h = vec![
            1.0, 2.0,   3.0, 4.0,   5.0, 6.0,
            7.0, 8.0,   100.0, 100.0,   -100.0, 5.0,
        ];
        let hidden = Tensor::<B, 3>::from_data(TensorData::new(h, [2, 3, 2]), &dev);
        let mask = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 1, 0, 0], [2, 3]),
            &dev,
        );
        (hidden, mask)
    }

    fn rows(t: Tensor<B, 2>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    #[test]
    fn mean_ignores_padding() {
        let (h, m) = batch();
        assert_eq!(rows(Pooling::Mean.pool(h, m)), vec![3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn first_and_last_pick_real_tokens() {
        let (h, m) = batch();
        assert_eq!(
            rows(Pooling::First.pool(h.clone(), m.clone())),
            vec![1.0, 2.0, 7.0, 8.0]
        );
        assert_eq!(rows(Pooling::Last.pool(h, m)), vec![5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let dev = Default::default();
        let x =
            Tensor::<B, 2>::from_data(TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0], [2, 2]), &dev);
        assert_eq!(rows(l2_normalize(x)), vec![0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn pooling_parses_names() {
        assert_eq!("CLS".parse::<Pooling>().unwrap(), Pooling::First);
        assert_eq!("mean".parse::<Pooling>().unwrap(), Pooling::Mean);
        let err = "max".parse::<Pooling>().unwrap_err().to_string();
        assert!(err.contains("unknown pooling `max`"), "{err}");
    }
}

/// Cosine similarity of two content embeddings, accumulated in `f64` (how the golden and
/// packed-vs-padded tests compare vectors).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
