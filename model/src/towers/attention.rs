//! Lean self-attention and LayerNorm for the LEARN tower.
//!
//! Burn's `MultiHeadAttention` runs three separate Q/K/V projections, materialises boolean masks
//! and returns the attention weights. Here Q, K and V come from one fused `d → 3d` projection,
//! the causal mask is a constant additive bias (no mask tensor enters the autodiff graph), and
//! the diagonal mask (item tower variant 2) skips the scores altogether: a position that sees
//! only itself has softmax weight exactly 1, so its context is its own value vector. All
//! projections run as 2-D matmuls on `[batch·len, ·]`. On the CPU backends the causal attention
//! and the LayerNorm run as fused kernels with hand-written backward passes ([`super::fused`]);
//! the composite code below is the reference they are tested against and the path of any other
//! backend.

use super::config::AttentionMask;
use super::fused::Segment;
use super::fused_linear::{Activation, dense};
use super::model::bert_init;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Configuration of [`SelfAttention`].
#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    /// Model width d.
    pub d_model: usize,
    /// Number of heads (d must be a multiple).
    pub n_heads: usize,
}

/// Multi-head self-attention with a fused QKV projection (weights `[d, 3d]`: Q | K | V).
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub qkv: Linear<B>,
    pub output: Linear<B>,
    pub n_heads: usize,
}

impl SelfAttentionConfig {
    /// Builds the module (BERT's N(0, 0.02) initialisation, zero biases).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SelfAttention<B> {
        SelfAttention {
            qkv: LinearConfig::new(self.d_model, 3 * self.d_model).with_initializer(bert_init()).init(device),
            output: LinearConfig::new(self.d_model, self.d_model).with_initializer(bert_init()).init(device),
            n_heads: self.n_heads,
        }
    }
}

/// Additive causal bias `[1, 1, len, len]`: 0 on and below the diagonal, -1e9 above.
pub fn causal_bias<B: Backend>(len: usize, device: &B::Device) -> Tensor<B, 4> {
    let mut v = vec![0f32; len * len];
    for i in 0..len {
        for j in i + 1..len {
            v[i * len + j] = -1e9;
        }
    }
    Tensor::from_data(TensorData::new(v, [1, 1, len, len]), device)
}

impl<B: Backend> SelfAttention<B> {
    /// # Shapes
    /// `x`: `[batch, len, d]` → `[batch, len, d]`.
    pub fn forward(&self, x: Tensor<B, 3>, mask: AttentionMask) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let seg = Segment { batch: b, len: l, mask };
        self.forward_rows(x.reshape([b * l, d]), &[seg]).reshape([b, l, d])
    }

    /// Self-attention over stacked blocks of sequences: the rows of `x` are the tokens of each
    /// [`Segment`] in order (e.g. the users' histories, then their targets); attention stays
    /// inside each sequence, under its segment's mask.
    ///
    /// # Shapes
    /// `x`: `[Σ batch·len, d]` → same.
    pub fn forward_rows(&self, x: Tensor<B, 2>, segs: &[Segment]) -> Tensor<B, 2> {
        let h = self.n_heads;
        let qkv = dense(&self.qkv, x, Activation::Identity); // [rows, 3d]
        let ctx = match super::fused::segment_attention(&qkv, segs, h) {
            Some(ctx) => ctx,
            None => {
                let mut parts = Vec::with_capacity(segs.len());
                let mut r0 = 0;
                for s in segs {
                    let rows = s.batch * s.len;
                    parts.push(attention_composite(qkv.clone().narrow(0, r0, rows), s.batch, s.len, h, s.mask));
                    r0 += rows;
                }
                if parts.len() == 1 { parts.pop().expect("one part") } else { Tensor::cat(parts, 0) }
            }
        };
        dense(&self.output, ctx, Activation::Identity)
    }
}

/// The composite attention of one segment (the reference of the fused kernel).
///
/// # Shapes
/// `qkv`: `[batch·len, 3d]` → `[batch·len, d]`.
fn attention_composite<B: Backend>(qkv: Tensor<B, 2>, b: usize, l: usize, h: usize, mask: AttentionMask) -> Tensor<B, 2> {
    let d = qkv.dims()[1] / 3;
    let dh = d / h;
    match mask {
        // A position that sees only itself has softmax weight exactly 1: its context is V.
        AttentionMask::Diagonal => qkv.narrow(1, 2 * d, d),
        AttentionMask::Causal => {
            // [batch, 3·heads, len, head_dim]
            let qkv = qkv.reshape([b, l, 3 * h, dh]).swap_dims(1, 2);
            let v = qkv.clone().narrow(1, 2 * h, h); // [batch, heads, len, head_dim]
            let q = qkv.clone().narrow(1, 0, h);
            let k = qkv.narrow(1, h, h);
            let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt())
                + causal_bias::<B>(l, &v.device()); // [batch, heads, len, len]
            softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b * l, d])
        }
    }
}

/// LayerNorm over the last dimension with a learned scale and shift.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Scale 1, shift 0.
    pub fn new(d: usize, epsilon: f64, device: &B::Device) -> Self {
        LayerNorm {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            epsilon,
        }
    }

    /// # Shapes
    /// `x`: `[.., d]` → same.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        if let Some(y) = super::fused::layer_norm(&x, &self.gamma.val(), &self.beta.val(), self.epsilon) {
            return y;
        }
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let xn = (x - mean) / (var + self.epsilon).sqrt();
        xn * self.gamma.val().unsqueeze::<D>() + self.beta.val().unsqueeze::<D>()
    }
}
