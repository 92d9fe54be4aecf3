//! Building blocks shared by the backbones: a dense layer with its weight kept as `[in, out]`
//! (the layout Burn's matmul wants), LayerNorm, RMSNorm, rotate-half RoPE tables, attention
//! masks, activations and a weight reader over a [`TensorSource`].
//!
//! Everything here is inference-only (no dropout, no autodiff bookkeeping).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData, TensorPrimitive};
use serde::{Deserialize, Serialize};

use crate::weights::TensorSource;
use crate::{Error, Result};

/// Activation functions found in Hugging Face `config.json` files (`hidden_act`,
/// `hidden_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// SiLU / swish (Llama family; used gated, SwiGLU).
    #[default]
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// GELU with the exact erf form (BERT).
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU with the tanh approximation (Gemma: `gelu_pytorch_tanh`; `gelu_new` is the same
    /// formula).
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new")]
    GeluTanh,
    /// ReLU.
    #[serde(rename = "relu")]
    Relu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        use burn::tensor::activation as act;
        match self {
            Activation::Silu => act::silu(x),
            Activation::Gelu => act::gelu(x),
            Activation::GeluTanh => act::gelu_approximate(x),
            Activation::Relu => act::relu(x),
        }
    }
}

/// A linear layer `y = x W + b` with `W` stored as `[in, out]` (PyTorch stores `[out, in]`; the
/// transpose happens once, at load).
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Dense<B> {
    /// A randomly initialised layer (uniform in ±1/sqrt(d_in)), for tests and tiny models.
    pub fn random(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let dist = burn::tensor::Distribution::Uniform(-bound, bound);
        Dense {
            weight: Param::from_tensor(Tensor::random([d_in, d_out], dist, device)),
            bias: bias.then(|| Param::from_tensor(Tensor::random([d_out], dist, device))),
        }
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.weight.val().dims()[1]
    }

    /// # Shapes
    /// - `x`: `[n, d_in]`
    /// - output: `[n, d_out]`
    pub fn forward2(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// Applies the layer to every position; the batch and sequence axes are flattened into one
    /// matmul.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_in]`
    /// - output: `[batch, seq, d_out]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let y = self.forward2(x.reshape([b * s, d]));
        let out = y.dims()[1];
        y.reshape([b, s, out])
    }
}

/// LayerNorm with weight and bias (BERT), through the backend's fused kernel.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// `[d]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// `[d]`.
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// Identity-initialised LayerNorm.
    pub fn ones(d: usize, eps: f64, device: &B::Device) -> Self {
        LayerNorm {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            eps,
        }
    }

    /// # Shapes
    /// - `x`: `[..., d]`
    /// - output: `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
            x.into_primitive().tensor(),
            self.gamma.val().into_primitive().tensor(),
            Some(self.beta.val().into_primitive().tensor()),
            self.eps,
        )))
    }
}

/// RMSNorm `x / sqrt(mean(x²) + eps) * w`. Gemma's `(1 + w)` form is folded into `w` at load.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[d]` (already `1 + w` for Gemma).
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm with the given scale vector.
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        RmsNorm {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    /// # Shapes
    /// - `x`: `[..., d]`
    /// - output: `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let inv = (x.clone().square().mean_dim(D - 1) + self.eps)
            .sqrt()
            .recip();
        let w: Tensor<B, D> = self.weight.val().unsqueeze();
        x * inv * w
    }
}

/// How RoPE frequencies are rescaled (`rope_scaling` / `rope_parameters` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum RopeScaling {
    /// No rescaling.
    #[default]
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1's piecewise rescaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// `rope_scaling` as written in `config.json` (HF spells the kind `rope_type` or `type`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeScalingJson {
    #[serde(default)]
    rope_type: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    low_freq_factor: Option<f64>,
    #[serde(default)]
    high_freq_factor: Option<f64>,
    #[serde(default)]
    original_max_position_embeddings: Option<usize>,
    /// transformers ≥ 5 keeps theta inside `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

impl RopeScalingJson {
    /// Converts to [`RopeScaling`]; unknown kinds are an error naming the field.
    pub fn parse(&self, file: &str) -> Result<RopeScaling> {
        let kind = self
            .rope_type
            .as_deref()
            .or(self.kind.as_deref())
            .unwrap_or("default");
        let need = |v: Option<f64>, f: &str| {
            v.ok_or_else(|| {
                Error::Invalid(format!(
                    "{file}: field `rope_scaling.{f}` is missing for rope type `{kind}`"
                ))
            })
        };
        Ok(match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear { factor: need(self.factor, "factor")? },
            "llama3" => RopeScaling::Llama3 {
                factor: need(self.factor, "factor")?,
                low_freq_factor: need(self.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(self.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: self.original_max_position_embeddings.ok_or_else(|| {
                    Error::Invalid(format!("{file}: field `rope_scaling.original_max_position_embeddings` is missing"))
                })?,
            },
            other => {
                return Err(Error::Invalid(format!(
                    "{file}: field `rope_scaling.rope_type` = `{other}` is not supported (default, linear, llama3)"
                )));
            }
        })
    }
}

/// Inverse frequencies `1 / theta^(2i/d)` (computed in f32 like transformers), rescaled.
pub fn rope_inv_freq(head_dim: usize, theta: f64, scaling: RopeScaling) -> Vec<f32> {
    let half = head_dim / 2;
    let mut inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    match scaling {
        RopeScaling::Default => {}
        RopeScaling::Linear { factor } => inv.iter_mut().for_each(|f| *f /= factor as f32),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            for f in inv.iter_mut() {
                let wavelen = 2.0 * std::f64::consts::PI / *f as f64;
                let v = *f as f64;
                let scaled = if wavelen < high_wavelen {
                    v
                } else if wavelen > low_wavelen {
                    v / factor
                } else {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * v / factor + smooth * v
                };
                *f = scaled as f32;
            }
        }
    }
    inv
}

/// Precomputed rotate-half RoPE tables (Hugging Face layout: the two halves of each head are
/// the pair, not interleaved neighbours as in Burn's `RotaryEncoding`).
///
/// `apply(x) = x * cos + swap_halves(x) * sin_signed`, with `sin_signed = [-sin, sin]`, which
/// equals HF's `x * cos + rotate_half(x) * sin` without materialising the negation.
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    /// `[max_len, head_dim]`.
    cos: Tensor<B, 2>,
    /// `[max_len, head_dim]`: the first half negated.
    sin_signed: Tensor<B, 2>,
    /// Inverse frequencies, `[head_dim / 2]`, for positions past `max_len`.
    inv_freq: Vec<f32>,
}

/// Positions precomputed up front; longer inputs get a table built on the fly.
pub const ROPE_TABLE_LEN: usize = 4096;

impl<B: Backend> Rope<B> {
    /// Builds tables for positions `0..max_len`.
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: RopeScaling,
        max_len: usize,
        device: &B::Device,
    ) -> Self {
        let inv_freq = rope_inv_freq(head_dim, theta, scaling);
        let (cos, sin_signed) = Self::tables(&inv_freq, max_len.clamp(1, ROPE_TABLE_LEN), device);
        Rope {
            cos,
            sin_signed,
            inv_freq,
        }
    }

    /// Inverse frequencies, `[head_dim / 2]`.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    fn tables(inv_freq: &[f32], len: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let half = inv_freq.len();
        let d = 2 * half;
        let mut cos = vec![0f32; len * d];
        let mut sin = vec![0f32; len * d];
        for p in 0..len {
            for (i, f) in inv_freq.iter().enumerate() {
                // f32 product, as transformers computes `inv_freq @ position_ids` in f32.
                let angle = (p as f32 * f) as f64;
                let (s, c) = angle.sin_cos();
                cos[p * d + i] = c as f32;
                cos[p * d + half + i] = c as f32;
                sin[p * d + i] = -s as f32;
                sin[p * d + half + i] = s as f32;
            }
        }
        (
            Tensor::from_data(TensorData::new(cos, [len, d]), device),
            Tensor::from_data(TensorData::new(sin, [len, d]), device),
        )
    }

    /// Rotates queries or keys by their position `0..seq`.
    ///
    /// # Shapes
    /// - `x`: `[batch, heads, seq, head_dim]`
    /// - output: `[batch, heads, seq, head_dim]`
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, s, d] = x.dims();
        let (cos, sin) = if s <= self.cos.dims()[0] {
            (
                self.cos.clone().narrow(0, 0, s),
                self.sin_signed.clone().narrow(0, 0, s),
            )
        } else {
            Self::tables(&self.inv_freq, s, &x.device())
        };
        let cos: Tensor<B, 4> = cos.reshape([1, 1, s, d]);
        let sin: Tensor<B, 4> = sin.reshape([1, 1, s, d]);
        let half = d / 2;
        let swapped = Tensor::cat(
            vec![
                x.clone().narrow(3, half, half),
                x.clone().narrow(3, 0, half),
            ],
            3,
        );
        x * cos + swapped * sin
    }
}

/// Which key positions each query may attend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKind {
    /// Every non-padding key (BERT).
    Bidirectional,
    /// Keys at or before the query (decoders).
    Causal,
    /// Causal, and only the last `window` keys (`q - k < window`; Gemma 3 local layers, Mistral).
    SlidingCausal { window: usize },
}

/// Builds the boolean attention mask (`true` = masked out) from the sequence lengths of a
/// right-padded batch. Padding keys are always masked; padding queries see the real keys
/// (their outputs are ignored by pooling).
///
/// # Shapes
/// - output: `[batch, 1, seq, seq]`
pub fn attention_mask<B: Backend>(
    lengths: &[usize],
    seq: usize,
    kind: AttentionKind,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let mut m = vec![false; lengths.len() * seq * seq];
    for (b, &len) in lengths.iter().enumerate() {
        for q in 0..seq {
            let row = &mut m[(b * seq + q) * seq..(b * seq + q + 1) * seq];
            for (k, cell) in row.iter_mut().enumerate() {
                *cell = k >= len
                    || match kind {
                        AttentionKind::Bidirectional => false,
                        AttentionKind::Causal => k > q,
                        AttentionKind::SlidingCausal { window } => k > q || q - k >= window,
                    };
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [lengths.len(), 1, seq, seq]), device)
}

/// Reads the lengths (number of leading 1s… i.e. the count of non-zero entries) of each row of
/// a right-padded `[batch, seq]` 0/1 mask.
pub fn mask_lengths<B: Backend>(mask: &Tensor<B, 2, Int>) -> Vec<usize> {
    let [b, s] = mask.dims();
    let data = mask.to_data().convert::<i64>();
    let v: Vec<i64> = data.to_vec().unwrap_or_default();
    (0..b)
        .map(|i| v[i * s..(i + 1) * s].iter().filter(|&&x| x != 0).count())
        .collect()
}

/// Repeats grouped key/value heads so every query head has its own (GQA → MHA layout).
///
/// # Shapes
/// - `x`: `[batch, kv_heads, seq, head_dim]`
/// - output: `[batch, kv_heads * rep, seq, head_dim]`
pub fn repeat_kv<B: Backend>(x: Tensor<B, 4>, rep: usize) -> Tensor<B, 4> {
    if rep == 1 {
        return x;
    }
    let [b, h, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, h, rep, s, d])
        .reshape([b, h * rep, s, d])
}

/// Scaled dot-product attention through the backend's fused kernel.
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, heads, seq, head_dim]`
/// - `mask`: `[batch, 1, seq, seq]`, `true` = masked
/// - output: `[batch, heads, seq, head_dim]`
pub fn sdpa<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    scale: f64,
) -> Tensor<B, 4> {
    let options = burn::tensor::ops::AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    burn::tensor::module::attention(q, k, v, Some(mask), None, options)
}

/// Splits `[batch, seq, heads * head_dim]` into heads.
///
/// # Shapes
/// - `x`: `[batch, seq, heads * head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize, head_dim: usize) -> Tensor<B, 4> {
    let [b, s, _] = x.dims();
    x.reshape([b, s, heads, head_dim]).swap_dims(1, 2)
}

/// Merges heads back, flattening batch and sequence for the output projection.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`
/// - output: `[batch * seq, heads * head_dim]`
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [b, h, s, d] = x.dims();
    x.swap_dims(1, 2).reshape([b * s, h * d])
}

/// Transposes a row-major `[rows, cols]` matrix (blocked, for cache locality).
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    let mut out = vec![0f32; data.len()];
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

/// Reads tensors from a [`TensorSource`] into Burn tensors, checking shapes.
pub struct WeightReader<'a, B: Backend> {
    /// The source.
    pub src: &'a dyn TensorSource,
    /// Where tensors go.
    pub device: &'a B::Device,
}

impl<'a, B: Backend> WeightReader<'a, B> {
    /// Raw f32 values of `name`, checked against `shape`.
    pub fn raw(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.src.tensor_shaped(name, shape)?.data)
    }

    /// A vector `[d]`.
    pub fn vector(&self, name: &str, d: usize) -> Result<Tensor<B, 1>> {
        Ok(Tensor::from_data(
            TensorData::new(self.raw(name, &[d])?, [d]),
            self.device,
        ))
    }

    /// A matrix kept as stored (`[rows, cols]`), e.g. an embedding table.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Tensor<B, 2>> {
        Ok(Tensor::from_data(
            TensorData::new(self.raw(name, &[rows, cols])?, [rows, cols]),
            self.device,
        ))
    }

    /// A PyTorch linear `prefix.weight` `[out, in]` (+ `prefix.bias` `[out]`), transposed to
    /// `[in, out]`.
    pub fn dense(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Dense<B>> {
        self.dense_fused(&[prefix], d_in, &[d_out], bias)
    }

    /// Several PyTorch linears with the same input concatenated along their outputs into one
    /// `[in, sum(out)]` layer (q/k/v, gate/up), so one matmul serves them all.
    pub fn dense_fused(
        &self,
        prefixes: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
    ) -> Result<Dense<B>> {
        let total: usize = d_outs.iter().sum();
        let mut stacked = Vec::with_capacity(total * d_in);
        for (p, &o) in prefixes.iter().zip(d_outs) {
            stacked.extend_from_slice(&self.raw(&format!("{p}.weight"), &[o, d_in])?);
        }
        self.dense_from_rows(stacked, prefixes, d_in, d_outs, bias)
    }

    /// Builds a dense layer from `[sum(out), in]` row-major weights already read, plus biases
    /// read from `prefix.bias` for each prefix.
    pub fn dense_from_rows(
        &self,
        rows: Vec<f32>,
        prefixes: &[&str],
        d_in: usize,
        d_outs: &[usize],
        bias: bool,
    ) -> Result<Dense<B>> {
        let total: usize = d_outs.iter().sum();
        let w = transpose(&rows, total, d_in);
        drop(rows);
        let weight = Tensor::from_data(TensorData::new(w, [d_in, total]), self.device);
        let bias = if bias {
            let mut b = Vec::with_capacity(total);
            for (p, &o) in prefixes.iter().zip(d_outs) {
                b.extend_from_slice(&self.raw(&format!("{p}.bias"), &[o])?);
            }
            Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(b, [total]),
                self.device,
            )))
        } else {
            None
        };
        Ok(Dense {
            weight: Param::from_tensor(weight),
            bias,
        })
    }
}

/// Host-side (CPU slice) kernels for the packed, padding-free paths of [`super::bert`],
/// [`super::gemma3`] and [`super::llama`]:
/// everything between two matmuls runs here in one pass over the data instead of as several
/// Burn element-wise ops, each with its own allocation and strided copies. On x86-64 each kernel
/// is also compiled for AVX-512 and for AVX2 (both with FMA) and picked at run time by the CPU's features.
pub mod host {
    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Tensor, TensorData};
    use rayon::prelude::*;

    /// Defines `fn $name(args)` running `$body`, compiled for the baseline target and (on
    /// x86-64) for AVX-512 and AVX2 with FMA, chosen at run time. Helpers the body calls must be
    /// `#[inline(always)]` so they are compiled with the features too.
    macro_rules! simd_kernel {
        ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
            $(#[$m])*
            #[allow(clippy::too_many_arguments)]
            fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[allow(clippy::too_many_arguments)]
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    fn avx512($($arg: $ty),*) $body
                    #[allow(clippy::too_many_arguments)]
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2($($arg: $ty),*) $body
                    use std::arch::is_x86_feature_detected as has;
                    if has!("avx512f") && has!("avx2") && has!("fma") {
                        // SAFETY: the target features were detected on this CPU just above.
                        return unsafe { avx512($($arg),*) };
                    }
                    if has!("avx2") && has!("fma") {
                        // SAFETY: as above.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $body
            }
        };
    }

    /// The values of a float tensor as a row-major `Vec<f32>` (zero-copy on Flex when the
    /// tensor is contiguous and not shared).
    pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        let d = t.into_data();
        if d.dtype == DType::F32 {
            // Same dtype: only a misaligned buffer is copied.
            if let Ok(v) = d.into_vec::<f32>() {
                return v;
            }
            return Vec::new();
        }
        d.iter::<f32>().collect()
    }

    /// A `[rows, cols]` tensor over `v` (moved, not copied, on Flex).
    pub fn tensor<B: Backend>(
        v: Vec<f32>,
        rows: usize,
        cols: usize,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, [rows, cols]), device)
    }

    /// A float tensor's values borrowed in place: on the Flex backend a contiguous f32 tensor
    /// is read straight from its storage (sharing it, no copy), so weights can feed
    /// [`matmul_into`] without a round trip through `TensorData`. Other backends get `None`.
    #[derive(Clone)]
    pub struct HostView {
        tensor: burn::backend::flex::FlexTensor,
        start: usize,
        len: usize,
    }

    impl HostView {
        /// Views `t` when it is a contiguous f32 Flex tensor.
        pub fn of<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<Self> {
            let len = t.shape().num_elements();
            let prim: Box<dyn std::any::Any> = Box::new(t.into_primitive().tensor());
            let tensor = *prim.downcast::<burn::backend::flex::FlexTensor>().ok()?;
            if tensor.dtype() != DType::F32 || !tensor.is_contiguous() {
                return None;
            }
            let start = tensor.layout().start_offset();
            (tensor.storage::<f32>().len() >= start + len).then_some(HostView {
                tensor,
                start,
                len,
            })
        }

        /// The values, row-major.
        pub fn as_slice(&self) -> &[f32] {
            &self.tensor.storage::<f32>()[self.start..self.start + self.len]
        }
    }

    /// How a host matmul uses the threads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Threads {
        /// All of rayon's threads inside each matmul.
        All,
        /// The calling thread only (the caller runs independent work on the others).
        One,
    }

    /// `out ← x · w` (or `out ← out + x · w` with `accumulate`), all row-major: `x` `[m, k]`,
    /// `w` `[k, n]`, `out` `[m, n]`, through the `gemm` crate (the kernel Flex's matmul calls)
    /// straight on host slices.
    ///
    /// # Panics
    /// When a slice is shorter than its shape says (a caller bug, never input data).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_into(
        out: &mut [f32],
        x: &[f32],
        w: &[f32],
        m: usize,
        k: usize,
        n: usize,
        accumulate: bool,
        threads: Threads,
    ) {
        use crate::host_gemm::{Mat, Par, gemm};
        let par = match threads {
            Threads::One => Par::One,
            Threads::All => Par::AllFrom(64 * 64 * 64),
        };
        gemm(out, m, n, k, Mat::rows(x, k), Mat::rows(w, n), accumulate, par);
    }

    /// A `[d_in, d_out]` weight matrix for host matmuls: borrowed in place on Flex
    /// ([`HostView`], through the `gemm` crate), otherwise the backend's matmul with a copy in
    /// and out.
    pub enum HostMatrix<B: Backend> {
        /// Flex: the storage itself.
        View(HostView),
        /// Any other backend.
        Tensor(Tensor<B, 2>),
    }

    impl<B: Backend> HostMatrix<B> {
        /// Wraps a `[d_in, d_out]` weight.
        pub fn new(w: Tensor<B, 2>) -> Self {
            match HostView::of(w.clone()) {
                Some(v) => HostMatrix::View(v),
                None => HostMatrix::Tensor(w),
            }
        }

        /// `out ← x · W` (`out ← out + x · W` with `accumulate`) for `x` `[m, k]`.
        #[allow(clippy::too_many_arguments)]
        pub fn matmul(
            &self,
            out: &mut [f32],
            x: &[f32],
            m: usize,
            k: usize,
            n: usize,
            accumulate: bool,
            threads: Threads,
            device: &B::Device,
        ) {
            match self {
                HostMatrix::View(v) => {
                    matmul_into(out, x, v.as_slice(), m, k, n, accumulate, threads)
                }
                HostMatrix::Tensor(w) => {
                    let y =
                        to_vec(tensor::<B>(x[..m * k].to_vec(), m, k, device).matmul(w.clone()));
                    let out = &mut out[..m * n];
                    if accumulate {
                        out.iter_mut().zip(&y).for_each(|(o, v)| *o += v);
                    } else {
                        out.copy_from_slice(&y);
                    }
                }
            }
        }
    }

    /// Sum with eight independent accumulators (vectorises; f32 order differs from a serial
    /// sum only by rounding).
    #[inline(always)]
    pub fn sum(x: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let chunks = x.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] += c[i];
            }
        }
        acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
    }

    /// Maximum with sixteen independent lanes (vectorises); `-inf` for an empty slice.
    #[inline(always)]
    pub fn max_of(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 16];
        let chunks = x.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..16 {
                acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
            }
        }
        let m = rest
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        acc.iter().fold(m, |m, &v| if v > m { v } else { m })
    }

    /// Dot product with eight independent accumulators.
    #[inline(always)]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    /// `erf(x)` in f32 without branches or `exp` (so a loop over it vectorises): a rational
    /// minimax approximation `x·P(x²)/Q(x²)` on `[-4, 4]` (outside, erf is ±1 in f32); absolute
    /// error below 1e-6 (checked against a series in the tests).
    #[inline(always)]
    pub fn erf(x: f32) -> f32 {
        let x = x.clamp(-4.0, 4.0);
        let x2 = x * x;
        let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
        p = x2 * p - 2.101_024e-6;
        p = x2 * p - 5.692_506_4e-5;
        p = x2 * p - 7.349_906_3e-4;
        p = x2 * p - 2.954_6e-3;
        p = x2 * p - 1.609_603_3e-2;
        let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
        q = x2 * q - 1.682_827e-3;
        q = x2 * q - 7.373_329_2e-3;
        q = x2 * q - 1.426_473_9e-2;
        x * p / q
    }

    /// Rows per parallel task for a row width `d`: about 16K values.
    fn rows_per_task(d: usize) -> usize {
        (16_384 / d.max(1)).max(1)
    }

    simd_kernel! {
        fn bias_gelu_block(block: &mut [f32], bias: &[f32]) {
            for row in block.chunks_exact_mut(bias.len()) {
                for (v, b) in row.iter_mut().zip(bias) {
                    let y = *v + b;
                    *v = 0.5 * y * (1.0 + erf(y * std::f32::consts::FRAC_1_SQRT_2));
                }
            }
        }
    }

    /// `x ← gelu(x + bias)` with the exact erf form `0.5·x·(1 + erf(x/√2))` (BERT's `gelu`),
    /// row by row over a `[rows, bias.len()]` matrix, rows split across threads.
    pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
        let d = bias.len().max(1);
        x.par_chunks_mut(rows_per_task(d) * d)
            .for_each(|block| bias_gelu_block(block, bias));
    }

    #[inline(always)]
    fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let n = row.len() as f32;
        let mean = sum(row) / n;
        row.iter_mut().for_each(|v| *v -= mean);
        let var = dot(row, row) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * inv * g + b;
        }
    }

    simd_kernel! {
        fn residual_layer_norm_block(xb: &mut [f32], yb: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
            for (row, yr) in xb.chunks_exact_mut(gamma.len()).zip(yb.chunks_exact(gamma.len())) {
                for ((v, a), b) in row.iter_mut().zip(yr).zip(bias) {
                    *v += a + b;
                }
                layer_norm_row(row, gamma, beta, eps);
            }
        }
    }

    /// `x ← LayerNorm(x + y + bias)` row by row (post-LN residual), `[rows, gamma.len()]`,
    /// biased variance as PyTorch; rows split across threads.
    pub fn residual_layer_norm(
        x: &mut [f32],
        y: &[f32],
        bias: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let d = gamma.len().max(1);
        let n = rows_per_task(d) * d;
        x.par_chunks_mut(n)
            .zip(y.par_chunks(n))
            .for_each(|(xb, yb)| residual_layer_norm_block(xb, yb, bias, gamma, beta, eps));
    }

    simd_kernel! {
        fn bias_layer_norm_block(xb: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
            for row in xb.chunks_exact_mut(gamma.len()) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
                layer_norm_row(row, gamma, beta, eps);
            }
        }
    }

    /// `x ← LayerNorm(x + bias)` row by row, `[rows, gamma.len()]` (post-LN residual whose sum
    /// a [`matmul_into`] already accumulated into `x`); rows split across threads.
    pub fn bias_layer_norm(x: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let d = gamma.len().max(1);
        x.par_chunks_mut(rows_per_task(d) * d)
            .for_each(|xb| bias_layer_norm_block(xb, bias, gamma, beta, eps));
    }

    simd_kernel! {
        fn layer_norm_block(xb: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
            for row in xb.chunks_exact_mut(gamma.len()) {
                layer_norm_row(row, gamma, beta, eps);
            }
        }
    }

    /// `x ← LayerNorm(x)` over every row of `[rows, gamma.len()]`.
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let d = gamma.len().max(1);
        x.par_chunks_mut(rows_per_task(d) * d)
            .for_each(|b| layer_norm_block(b, gamma, beta, eps));
    }

    /// Bidirectional multi-head attention over packed sequences (no padding anywhere): row `t`
    /// of `qkv` (`[tokens, 3 · heads · head_dim]`, query | key | value) belongs to the sequence
    /// whose span in `lengths` covers it, and attends to every token of that sequence only.
    /// `bias` (`[3 · heads · head_dim]`, or empty for none) is the projection's bias, added on
    /// the fly: to queries and keys as they are read, and the value bias to the output (the
    /// probabilities of a row sum to 1), so the matmul before needs no bias pass. Softmax in f32
    /// with the row maximum subtracted.
    ///
    /// # Shapes
    /// - `qkv`: `[sum(lengths), 3 · heads · head_dim]`
    /// - `bias`: `[3 · heads · head_dim]` or `[]`
    /// - output: `[sum(lengths), heads · head_dim]`, heads concatenated as before the output
    ///   projection
    pub fn packed_attention(
        qkv: &[f32],
        bias: &[f32],
        lengths: &[usize],
        heads: usize,
        head_dim: usize,
        scale: f32,
    ) -> Vec<f32> {
        packed_sequences_attention(
            qkv,
            bias,
            lengths,
            heads,
            heads,
            head_dim,
            scale,
            false,
            usize::MAX,
        )
    }

    // ---- Decoder (Llama / Gemma 3) kernels: RMSNorm, RoPE, causal GQA attention, gated MLP.

    /// `tanh(x)` in f32 without branches or `exp` (vectorises): a rational approximation
    /// `x·P(x²)/Q(x²)` on `[-7.9, 7.9]` (outside, tanh is ±1 in f32); absolute error below 1e-6
    /// (checked against `f32::tanh` in the tests).
    #[inline(always)]
    #[allow(clippy::excessive_precision)] // coefficients as published (Eigen's fast tanh)
    pub fn tanh(x: f32) -> f32 {
        let x = x.clamp(-7.905_311, 7.905_311);
        let x2 = x * x;
        let mut p = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
        p = x2 * p - 8.604_671_5e-11;
        p = x2 * p + 5.122_297e-8;
        p = x2 * p + 1.485_722_4e-5;
        p = x2 * p + 6.372_619_3e-4;
        p = x2 * p + 4.893_524_6e-3;
        let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
        q = x2 * q + 2.268_434_6e-3;
        q = x2 * q + 4.893_525_2e-3;
        x * p / q
    }

    /// `exp(x)` in f32 without branches (vectorises): `2^k · e^r` with `r = x - k ln 2` in
    /// `[-ln2/2, ln2/2]` and a degree-6 polynomial for `e^r`; relative error below 1e-6 on
    /// `[-87, 88]` (checked in the tests). Inputs below -87 give 0-ish, above 88 saturate.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        let x = x.clamp(-87.0, 88.0);
        let k = (x * std::f32::consts::LOG2_E).round();
        let r = k.mul_add(-0.693_145_75, x);
        let r = k.mul_add(-1.428_606_8e-6, r);
        let mut p = 1.0 / 720.0f32;
        p = p.mul_add(r, 1.0 / 120.0);
        p = p.mul_add(r, 1.0 / 24.0);
        p = p.mul_add(r, 1.0 / 6.0);
        p = p.mul_add(r, 0.5);
        p = p.mul_add(r, 1.0);
        p = p.mul_add(r, 1.0);
        p * f32::from_bits((((k as i32) + 127) as u32) << 23)
    }

    /// The activation of a gated MLP's gate half (`act(gate) · up`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Gate {
        /// SwiGLU (Llama family).
        Silu,
        /// GeGLU with the tanh-approximated GELU (Gemma: `gelu_pytorch_tanh`).
        GeluTanh,
        /// GeGLU with the exact erf GELU.
        Gelu,
    }

    #[inline(always)]
    fn rms_row(row: &[f32], eps: f32) -> f32 {
        1.0 / (dot(row, row) / row.len() as f32 + eps).sqrt()
    }

    simd_kernel! {
        fn rms_norm_block(xb: &mut [f32], w: &[f32], eps: f32) {
            for row in xb.chunks_exact_mut(w.len()) {
                let inv = rms_row(row, eps);
                for (v, g) in row.iter_mut().zip(w) {
                    *v = *v * inv * g;
                }
            }
        }
    }

    /// `x ← x / sqrt(mean(x²) + eps) · w` over every row of `[rows, w.len()]` (RMSNorm; Gemma's
    /// `1 + w` already folded into `w`).
    pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
        let d = w.len().max(1);
        x.par_chunks_mut(rows_per_task(d) * d)
            .for_each(|b| rms_norm_block(b, w, eps));
    }

    simd_kernel! {
        fn rms_norm_copy_block(xb: &[f32], ob: &mut [f32], w: &[f32], eps: f32) {
            for (row, out) in xb.chunks_exact(w.len()).zip(ob.chunks_exact_mut(w.len())) {
                let inv = rms_row(row, eps);
                for ((o, v), g) in out.iter_mut().zip(row).zip(w) {
                    *o = *v * inv * g;
                }
            }
        }
    }

    /// RMSNorm of every row of `x` into a new matrix (the residual stream stays as it is).
    pub fn rms_norm_copy(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
        let d = w.len().max(1);
        let mut out = vec![0f32; x.len()];
        let n = rows_per_task(d) * d;
        x.par_chunks(n)
            .zip(out.par_chunks_mut(n))
            .for_each(|(xb, ob)| rms_norm_copy_block(xb, ob, w, eps));
        out
    }

    simd_kernel! {
        fn add_rms_norm_block(xb: &mut [f32], yb: &[f32], w: &[f32], eps: f32) {
            for (row, y) in xb.chunks_exact_mut(w.len()).zip(yb.chunks_exact(w.len())) {
                let inv = rms_row(y, eps);
                for ((v, a), g) in row.iter_mut().zip(y).zip(w) {
                    *v += a * inv * g;
                }
            }
        }
    }

    /// `x ← x + RMSNorm(y)` row by row (Gemma 3's post-attention / post-MLP norms on the
    /// residual branch).
    pub fn add_rms_norm(x: &mut [f32], y: &[f32], w: &[f32], eps: f32) {
        let d = w.len().max(1);
        let n = rows_per_task(d) * d;
        x.par_chunks_mut(n)
            .zip(y.par_chunks(n))
            .for_each(|(xb, yb)| add_rms_norm_block(xb, yb, w, eps));
    }

    /// `x ← x + y` (plain residual).
    pub fn add(x: &mut [f32], y: &[f32]) {
        x.par_chunks_mut(16_384)
            .zip(y.par_chunks(16_384))
            .for_each(|(xb, yb)| xb.iter_mut().zip(yb).for_each(|(a, b)| *a += b));
    }

    /// `x ← x + bias` on every row of `[rows, bias.len()]`.
    pub fn add_bias(x: &mut [f32], bias: &[f32]) {
        let d = bias.len().max(1);
        x.par_chunks_mut(rows_per_task(d) * d).for_each(|b| {
            b.chunks_exact_mut(d)
                .for_each(|row| row.iter_mut().zip(bias).for_each(|(v, c)| *v += c))
        });
    }

    simd_kernel! {
        fn gated_block(gu: &[f32], out: &mut [f32], inter: usize, gate: Gate) {
            for (row, o) in gu.chunks_exact(2 * inter).zip(out.chunks_exact_mut(inter)) {
                let (g, u) = row.split_at(inter);
                match gate {
                    Gate::Silu => {
                        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                            *o = g / (1.0 + exp(-g)) * u;
                        }
                    }
                    Gate::GeluTanh => {
                        const C: f32 = 0.797_884_6; // sqrt(2/pi)
                        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                            let t = tanh(C * (g + 0.044_715 * g * g * g));
                            *o = 0.5 * g * (1.0 + t) * u;
                        }
                    }
                    Gate::Gelu => {
                        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                            *o = 0.5 * g * (1.0 + erf(g * std::f32::consts::FRAC_1_SQRT_2)) * u;
                        }
                    }
                }
            }
        }
    }

    /// Gated MLP activation: rows of `gu` are `[gate | up]` (`2 · inter` wide); the output row is
    /// `act(gate) · up` (`inter` wide).
    pub fn gated(gu: &[f32], inter: usize, gate: Gate) -> Vec<f32> {
        let inter = inter.max(1);
        let rows = gu.len() / (2 * inter);
        let mut out = vec![0f32; rows * inter];
        let r = rows_per_task(2 * inter);
        gu.par_chunks(r * 2 * inter)
            .zip(out.par_chunks_mut(r * inter))
            .for_each(|(g, o)| gated_block(g, o, inter, gate));
        out
    }

    /// Host RoPE tables for positions `0..len`: `(cos, sin)`, each `[len, head_dim / 2]`, with
    /// the angles computed as [`super::Rope`] does (f32 product, like transformers).
    pub fn rope_tables(inv_freq: &[f32], len: usize) -> (Vec<f32>, Vec<f32>) {
        let half = inv_freq.len();
        let mut cos = vec![0f32; len * half];
        let mut sin = vec![0f32; len * half];
        for p in 0..len {
            for (i, f) in inv_freq.iter().enumerate() {
                let (s, c) = ((p as f32 * f) as f64).sin_cos();
                cos[p * half + i] = c as f32;
                sin[p * half + i] = s as f32;
            }
        }
        (cos, sin)
    }

    /// Per-head RMSNorm weights and epsilon for [`qk_norm_rope`] (Gemma 3's `q_norm`,
    /// `k_norm`); `None` for models without them.
    pub type HeadNorms<'a> = Option<(&'a [f32], &'a [f32], f32)>;

    simd_kernel! {
        fn qk_norm_rope_block(rows: &mut [f32], pos: &[usize], heads: usize, kv_heads: usize, d: usize, norms: HeadNorms<'_>, cos: &[f32], sin: &[f32]) {
            let w = (heads + 2 * kv_heads) * d;
            let half = d / 2;
            for (row, &p) in rows.chunks_exact_mut(w).zip(pos) {
                let (c, s) = (&cos[p * half..(p + 1) * half], &sin[p * half..(p + 1) * half]);
                for hd in 0..heads + kv_heads {
                    let x = &mut row[hd * d..(hd + 1) * d];
                    if let Some((qn, kn, eps)) = norms {
                        let g = if hd < heads { qn } else { kn };
                        let inv = rms_row(x, eps);
                        x.iter_mut().zip(g).for_each(|(v, g)| *v = *v * inv * g);
                    }
                    let (a, b) = x.split_at_mut(half);
                    for i in 0..half {
                        let (x1, x2) = (a[i], b[i]);
                        a[i] = x1 * c[i] - x2 * s[i];
                        b[i] = x2 * c[i] + x1 * s[i];
                    }
                }
            }
        }
    }

    /// Per-head RMSNorm (optional) then rotate-half RoPE, in place, on the query and key heads of
    /// every row of a fused `[tokens, (heads + 2 kv_heads) · d]` matrix (values untouched); row
    /// `t` is rotated by `positions[t]` (positions restart at 0 for each packed sequence).
    /// `cos`/`sin` come from [`rope_tables`] and must cover the largest position.
    #[allow(clippy::too_many_arguments)]
    pub fn qk_norm_rope(
        qkv: &mut [f32],
        positions: &[usize],
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        norms: HeadNorms<'_>,
        cos: &[f32],
        sin: &[f32],
    ) {
        let w = (heads + 2 * kv_heads) * head_dim;
        let r = rows_per_task(w);
        qkv.par_chunks_mut(r * w)
            .zip(positions.par_chunks(r))
            .for_each(|(rows, pos)| {
                qk_norm_rope_block(rows, pos, heads, kv_heads, head_dim, norms, cos, sin)
            });
    }

    /// Queries handled together by [`sequence_attention`]: eight independent accumulator chains
    /// per key (or value) vector loaded, enough to keep both FMA units busy.
    const QUERY_BLOCK: usize = 8;

    /// `acc[r][t] = Σ_i a[i·a_stride + r] · b[i·b_stride + t]` for `i < n`, `r < QB`, `t < 16`:
    /// a `[QB, 16]` block of a product whose left factor comes transposed (`[n, QB]`, rows
    /// `a_stride` apart) and whose right factor rows are `b_stride` apart. Written with AVX-512 intrinsics (QB accumulators of
    /// 16 lanes in registers, one load of `b` per QB FMAs), since the auto-vectoriser picks the
    /// wrong axis here; a plain loop elsewhere.
    ///
    /// # Panics
    /// When `a` is shorter than `(n-1)·a_stride + QB` or `b` than `(n-1)·b_stride + 16` (a
    /// caller bug).
    #[inline]
    fn outer_block(
        a: &[f32],
        a_stride: usize,
        b: &[f32],
        b_stride: usize,
        n: usize,
    ) -> [[f32; 16]; QUERY_BLOCK] {
        const QB: usize = QUERY_BLOCK;
        let mut acc = [[0f32; 16]; QB];
        if n == 0 {
            return acc;
        }
        assert!(
            a.len() >= (n - 1) * a_stride + QB && b.len() >= (n - 1) * b_stride + 16,
            "outer_block: short slices"
        );
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F was detected just above; the bounds were checked above.
                unsafe { outer_block_avx512(a, a_stride, b, b_stride, n, &mut acc) };
                return acc;
            }
        }
        for i in 0..n {
            let (ai, bi) = (
                &a[i * a_stride..i * a_stride + QB],
                &b[i * b_stride..i * b_stride + 16],
            );
            for r in 0..QB {
                for t in 0..16 {
                    acc[r][t] = ai[r].mul_add(bi[t], acc[r][t]);
                }
            }
        }
        acc
    }

    /// [`outer_block`] with AVX-512 intrinsics.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `a` must hold `(n-1)·a_stride + QB` values and `b`
    /// `(n-1)·b_stride + 16`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn outer_block_avx512(
        a: &[f32],
        a_stride: usize,
        b: &[f32],
        b_stride: usize,
        n: usize,
        acc: &mut [[f32; 16]; QUERY_BLOCK],
    ) {
        use std::arch::x86_64::*;
        const QB: usize = QUERY_BLOCK;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut v = [_mm512_setzero_ps(); QB];
        for i in 0..n {
            // SAFETY: i < n, so the reads stay inside the bounds the caller guarantees.
            unsafe {
                let bi = _mm512_loadu_ps(pb.add(i * b_stride));
                let ai = pa.add(i * a_stride);
                for (r, vr) in v.iter_mut().enumerate() {
                    *vr = _mm512_fmadd_ps(_mm512_set1_ps(*ai.add(r)), bi, *vr);
                }
            }
        }
        for (o, vr) in acc.iter_mut().zip(v) {
            // SAFETY: `o` holds 16 f32.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), vr) };
        }
    }

    simd_kernel! {
        /// Grouped-query attention of one sequence (`len` tokens from row `t0` of `qkv`, laid out
        /// queries | keys | values) into `out` (`[len, heads · head_dim]`). With `causal` query
        /// `i` sees keys `j ≤ i` with `i - j < window` (decoders); without, every key (BERT, where
        /// `kv_heads == heads`). Keys and (scaled) queries of one head are transposed to
        /// `[head_dim, len16]` (`len` rounded up to 16, zero columns after `len`); queries go in
        /// blocks of
        /// [`QUERY_BLOCK`], so every 16 keys (or 16 value columns) loaded feed that many
        /// independent FMA chains held in registers. Probabilities are normalised before the
        /// value product; outside a query's own key range they are zero. A non-empty `bias`
        /// (`[w]`, the fused projection's bias) is added to queries, keys and (through the
        /// output, since probabilities sum to 1) values as they are read.
        fn sequence_attention(qkv: &[f32], bias: &[f32], t0: usize, len: usize, heads: usize, kv_heads: usize, d: usize, scale: f32, causal: bool, window: usize, out: &mut [f32]) {
            const QB: usize = QUERY_BLOCK;
            let w = (heads + 2 * kv_heads) * d;
            let ho = heads * d;
            let group = heads / kv_heads;
            let len16 = len.div_ceil(16) * 16;
            let mut probs = vec![0f32; QB * len16];
            let mut pt = vec![0f32; len16 * QB];
            let mut qt = vec![0f32; d * len16];
            let mut kt = vec![0f32; d * len16];
            let zeros = vec![0f32; d];
            let range = |i: usize| if causal { ((i + 1).saturating_sub(window), i + 1) } else { (0, len) };
            let full = d / 16 * 16;
            for g in 0..kv_heads {
                let (ko, vo) = (heads * d + g * d, (heads + kv_heads) * d + g * d);
                // Without a bias, zeros (`bq` is only read when `bias` is not empty).
                let (bq, bk, bv) = if bias.is_empty() {
                    (&zeros[..], &zeros[..], &zeros[..])
                } else {
                    (bias, &bias[ko..ko + d], &bias[vo..vo + d])
                };
                // Column by column: strided loads, contiguous stores.
                let keys = &qkv[t0 * w + ko..];
                for (c, (row, &b)) in kt.chunks_exact_mut(len16).zip(bk).enumerate() {
                    for (j, o) in row[..len].iter_mut().enumerate() {
                        *o = keys[j * w + c] + b;
                    }
                }
                for hq in g * group..(g + 1) * group {
                    let qo = hq * d;
                    // Scaled queries transposed too, `[d, len16]`: a block of QB queries is
                    // QB adjacent columns. Columns past `len` stay zero; their results are
                    // dropped.
                    let queries = &qkv[t0 * w + qo..];
                    let b = if bias.is_empty() { &zeros[..] } else { &bq[qo..qo + d] };
                    for (c, (row, &b)) in qt.chunks_exact_mut(len16).zip(b).enumerate() {
                        for (j, o) in row[..len].iter_mut().enumerate() {
                            *o = (queries[j * w + c] + b) * scale;
                        }
                    }
                    for i0 in (0..len).step_by(QB) {
                        let nq = (len - i0).min(QB);
                        let (lo_u, hi_u) = (range(i0).0, range(i0 + nq - 1).1);
                        // One key load feeds QB FMAs, one per query of the block.
                        for j0 in (lo_u / 16 * 16..hi_u).step_by(16) {
                            let acc = outer_block(&qt[i0..], len16, &kt[j0..], len16, d);
                            for r in 0..QB {
                                probs[r * len16 + j0..r * len16 + j0 + 16].copy_from_slice(&acc[r]);
                            }
                        }
                        for r in 0..QB {
                            let row = &mut probs[r * len16..r * len16 + hi_u];
                            if r >= nq {
                                row[lo_u..].iter_mut().for_each(|p| *p = 0.0);
                                continue;
                            }
                            let (lo, hi) = range(i0 + r);
                            let sc = &mut row[lo..hi];
                            let max = max_of(sc);
                            // Separate passes so that each vectorises.
                            sc.iter_mut().for_each(|s| *s = exp(*s - max));
                            let inv = 1.0 / sum(sc);
                            sc.iter_mut().for_each(|s| *s *= inv);
                            row[lo_u..lo].iter_mut().for_each(|p| *p = 0.0);
                            row[hi..].iter_mut().for_each(|p| *p = 0.0);
                        }
                        // Probabilities transposed, `[key, QB]`, for the same reason.
                        for j in lo_u..hi_u {
                            for r in 0..QB {
                                pt[j * QB + r] = probs[r * len16 + j];
                            }
                        }
                        for c0 in (0..full).step_by(16) {
                            let acc = outer_block(
                                &pt[lo_u * QB..],
                                QB,
                                &qkv[(t0 + lo_u) * w + vo + c0..],
                                w,
                                hi_u - lo_u,
                            );
                            for (r, acc) in acc.iter().enumerate().take(nq) {
                                let o = (i0 + r) * ho + qo + c0;
                                for ((o, a), b) in out[o..o + 16].iter_mut().zip(acc).zip(&bv[c0..c0 + 16]) {
                                    *o = a + b;
                                }
                            }
                        }
                        for c in full..d {
                            for r in 0..nq {
                                let mut acc = 0f32;
                                for j in lo_u..hi_u {
                                    acc = pt[j * QB + r].mul_add(qkv[(t0 + j) * w + vo + c], acc);
                                }
                                out[(i0 + r) * ho + qo + c] = acc + bv[c];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Causal grouped-query attention over packed sequences (no padding anywhere, no repeated
    /// key/value heads): row `t` of `qkv` (`[tokens, (heads + 2 kv_heads) · head_dim]`, queries |
    /// keys | values, RoPE already applied) attends to the earlier tokens of its own sequence,
    /// at most `window` back counting itself (`usize::MAX` = no window); query head `h` reads
    /// key/value head `h / (heads / kv_heads)`. Softmax in f32 with the row maximum subtracted.
    ///
    /// # Shapes
    /// - `qkv`: `[sum(lengths), (heads + 2 kv_heads) · head_dim]`
    /// - output: `[sum(lengths), heads · head_dim]`
    pub fn packed_causal_attention(
        qkv: &[f32],
        lengths: &[usize],
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        scale: f32,
        window: usize,
    ) -> Vec<f32> {
        packed_sequences_attention(
            qkv,
            &[],
            lengths,
            heads,
            kv_heads,
            head_dim,
            scale,
            true,
            window,
        )
    }

    /// [`sequence_attention`] of every packed sequence in parallel, each into its own disjoint
    /// span of the output.
    #[allow(clippy::too_many_arguments)]
    fn packed_sequences_attention(
        qkv: &[f32],
        bias: &[f32],
        lengths: &[usize],
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        scale: f32,
        causal: bool,
        window: usize,
    ) -> Vec<f32> {
        let h = heads * head_dim;
        let total: usize = lengths.iter().sum();
        let mut ctx = vec![0f32; total * h];
        let mut spans = Vec::with_capacity(lengths.len());
        let (mut rest, mut t0) = (ctx.as_mut_slice(), 0usize);
        for &len in lengths {
            let (mine, tail) = rest.split_at_mut(len * h);
            spans.push((t0, len, mine));
            rest = tail;
            t0 += len;
        }
        spans.into_par_iter().for_each(|(t0, len, out)| {
            sequence_attention(
                qkv, bias, t0, len, heads, kv_heads, head_dim, scale, causal, window, out,
            )
        });
        ctx
    }

    /// A right-padded batch with its padding dropped: the real token ids of every sequence
    /// concatenated, each token's position inside its sequence (restarting at 0), and the
    /// sequence lengths — the input of the packed forwards.
    pub struct PackedBatch {
        /// `[tokens]` token ids.
        pub ids: Vec<i64>,
        /// `[tokens]` position of each token inside its sequence.
        pub positions: Vec<usize>,
        /// `[batch]` real tokens per sequence.
        pub lengths: Vec<usize>,
    }

    impl PackedBatch {
        /// Packs `ids` by `mask`; `None` when the ids do not read back as `[batch, seq]` integers
        /// (the caller then runs its padded path).
        ///
        /// # Shapes
        /// - `ids`, `mask`: `[batch, seq]`, right-padded, mask 1 for real tokens
        pub fn new<B: Backend>(
            ids: &Tensor<B, 2, burn::tensor::Int>,
            mask: &Tensor<B, 2, burn::tensor::Int>,
        ) -> Option<Self> {
            let [b, s] = ids.dims();
            let lengths = super::mask_lengths(mask);
            let host: Vec<i64> = ids.to_data().convert::<i64>().to_vec().ok()?;
            if host.len() != b * s {
                return None;
            }
            let total: usize = lengths.iter().sum();
            let mut packed = Vec::with_capacity(total);
            let mut positions = Vec::with_capacity(total);
            for (r, &len) in lengths.iter().enumerate() {
                packed.extend_from_slice(&host[r * s..r * s + len]);
                positions.extend(0..len);
            }
            Some(PackedBatch {
                ids: packed,
                positions,
                lengths,
            })
        }

        /// Real tokens in the batch.
        pub fn total(&self) -> usize {
            self.ids.len()
        }

        /// The longest sequence (at least 1, for RoPE tables).
        pub fn longest(&self) -> usize {
            self.lengths.iter().copied().max().unwrap_or(0).max(1)
        }
    }

    /// `x · W (+ b)` for a host matrix `x` (`[rows, d_in]`, moved in) through the backend's
    /// matmul; the result comes back as a host matrix `[rows, d_out]`.
    pub fn dense<B: Backend>(
        x: Vec<f32>,
        rows: usize,
        layer: &super::Dense<B>,
        device: &B::Device,
    ) -> Vec<f32> {
        let w = layer.weight.val();
        let d_in = w.dims()[0];
        let mut y = to_vec(tensor::<B>(x, rows, d_in, device).matmul(w));
        if let Some(b) = &layer.bias {
            add_bias(&mut y, &to_vec(b.val()));
        }
        y
    }

    /// Right-pads packed rows back to `[batch, seq, hidden]` with zeros at padding.
    pub fn unpack<B: Backend>(
        x: &[f32],
        lengths: &[usize],
        seq: usize,
        hidden: usize,
        device: &B::Device,
    ) -> Tensor<B, 3> {
        let mut out = vec![0f32; lengths.len() * seq * hidden];
        let mut t0 = 0;
        for (r, &len) in lengths.iter().enumerate() {
            out[r * seq * hidden..(r * seq + len) * hidden]
                .copy_from_slice(&x[t0 * hidden..(t0 + len) * hidden]);
            t0 += len;
        }
        Tensor::from_data(TensorData::new(out, [lengths.len(), seq, hidden]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend as B;

    #[test]
    fn transpose_matches_naive() {
        let (r, c) = (37, 70);
        let data: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
        let t = transpose(&data, r, c);
        for i in 0..r {
            for j in 0..c {
                assert_eq!(t[j * r + i], data[i * c + j]);
            }
        }
    }

    #[test]
    fn masks_combine_padding_causal_and_window() {
        let dev = Default::default();
        let m = attention_mask::<B>(&[3, 1], 3, AttentionKind::SlidingCausal { window: 2 }, &dev);
        let v: Vec<bool> = m.to_data().to_vec().unwrap();
        #[rustfmt::skip]
        let expect = vec![
            false, true, true,   false, false, true,   true, false, false, // len 3, window 2
            false, true, true,   false, true, true,    true, true, true,   // len 1: keys ≥1 masked
        ];
        assert_eq!(v, expect);
        let m = attention_mask::<B>(&[2], 3, AttentionKind::Bidirectional, &dev);
        let v: Vec<bool> = m.to_data().to_vec().unwrap();
        assert_eq!(
            v,
            vec![false, false, true, false, false, true, false, false, true]
        );
    }

    #[test]
    fn rope_matches_rotate_half_formula() {
        let dev = Default::default();
        let d = 4;
        let rope = Rope::<B>::new(d, 10_000.0, RopeScaling::Default, 8, &dev);
        let x: Vec<f32> = vec![0.1, 0.2, 0.3, 0.4, 1.0, -1.0, 0.5, 2.0];
        let t = Tensor::<B, 4>::from_data(TensorData::new(x.clone(), [1, 1, 2, d]), &dev);
        let y: Vec<f32> = rope.apply(t).to_data().to_vec().unwrap();
        let inv = rope_inv_freq(d, 10_000.0, RopeScaling::Default);
        for p in 0..2 {
            let xs = &x[p * d..(p + 1) * d];
            for i in 0..d {
                let f = inv[i % 2] * p as f32;
                let rot = if i < 2 { -xs[i + 2] } else { xs[i - 2] };
                let e = xs[i] * f.cos() + rot * f.sin();
                assert!(
                    (y[p * d + i] - e).abs() < 1e-5,
                    "pos {p} dim {i}: {} vs {e}",
                    y[p * d + i]
                );
            }
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies() {
        let base = rope_inv_freq(128, 500_000.0, RopeScaling::Default);
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let scaled = rope_inv_freq(128, 500_000.0, s);
        assert_eq!(base[0], scaled[0]);
        assert!((scaled[63] - base[63] / 8.0).abs() < 1e-12);
    }

    #[test]
    fn host_erf_matches_a_series_to_1e6() {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), in f64.
        let series = |x: f64| {
            let (mut term, mut total, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 * total.abs().max(1e-300) && n < 200.0 {
                n += 1.0;
                term *= -x * x / n;
                total += term / (2.0 * n + 1.0);
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        };
        // For x > 2.5 (where the series cancels badly): erfc by its continued fraction.
        let erfc_cf = |x: f64| {
            let mut t = x;
            for n in (1..=80).rev() {
                t = x + (n as f64 / 2.0) / t;
            }
            (-x * x).exp() / std::f64::consts::PI.sqrt() / t
        };
        let mut worst: f64 = 0.0;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let want = if x.abs() <= 2.5 {
                series(x)
            } else {
                x.signum() * (1.0 - erfc_cf(x.abs()))
            };
            worst = worst.max((host::erf(x as f32) as f64 - want).abs());
        }
        assert!(worst < 1e-6, "max |erf error| {worst}");
    }

    #[test]
    fn host_tanh_and_exp_match_std() {
        let mut worst_tanh: f32 = 0.0;
        let mut worst_exp: f32 = 0.0;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            worst_tanh = worst_tanh.max((host::tanh(x) - x.tanh()).abs());
        }
        for i in -8_700..=8_800 {
            let x = i as f32 / 100.0;
            let e = x.exp();
            worst_exp = worst_exp.max((host::exp(x) - e).abs() / e);
        }
        assert!(worst_tanh < 1e-6, "max |tanh error| {worst_tanh}");
        assert!(worst_exp < 1e-6, "max relative exp error {worst_exp}");
    }

    /// Two deterministic `[rows, d]` inputs with mixed signs for the host-kernel tests.
    fn kernel_inputs(rows: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let x = (0..rows * d)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
            .collect();
        let y = (0..rows * d)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 5.0)
            .collect();
        (x, y)
    }

    #[test]
    fn host_decoder_kernels_match_burn_ops() {
        let dev = Default::default();
        let (rows, d) = (5, 12);
        let (x, y) = kernel_inputs(rows, d);
        let w: Vec<f32> = (0..d).map(|i| 1.0 + i as f32 / 20.0).collect();
        let t = |v: &[f32], c: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [rows, c]), &dev)
        };
        let close = |a: &[f32], b: Vec<f32>| {
            assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 2e-5, "{p} vs {q}");
            }
        };
        let norm = RmsNorm::<B>::new(
            Tensor::from_data(TensorData::new(w.clone(), [d]), &dev),
            1e-6,
        );
        close(
            &host::rms_norm_copy(&x, &w, 1e-6),
            norm.forward(t(&x, d)).to_data().to_vec().unwrap(),
        );
        let mut r = x.clone();
        host::add_rms_norm(&mut r, &y, &w, 1e-6);
        close(
            &r,
            (t(&x, d) + norm.forward(t(&y, d)))
                .to_data()
                .to_vec()
                .unwrap(),
        );
        // Gated MLP activations: rows are [gate | up], each d/2 wide.
        let half = d / 2;
        for (gate, act) in [
            (host::Gate::Silu, Activation::Silu),
            (host::Gate::GeluTanh, Activation::GeluTanh),
            (host::Gate::Gelu, Activation::Gelu),
        ] {
            let xt = t(&x, d);
            let want = act.apply(xt.clone().narrow(1, 0, half)) * xt.narrow(1, half, half);
            close(
                &host::gated(&x, half, gate),
                want.to_data().to_vec().unwrap(),
            );
        }
    }

    #[test]
    fn host_kernels_match_burn_ops() {
        let dev = Default::default();
        let (rows, d) = (5, 12);
        let (x, y) = kernel_inputs(rows, d);
        let bias: Vec<f32> = (0..d).map(|i| i as f32 / 10.0 - 0.5).collect();
        let gamma: Vec<f32> = (0..d).map(|i| 1.0 + i as f32 / 20.0).collect();
        let beta: Vec<f32> = (0..d).map(|i| 0.1 - i as f32 / 50.0).collect();
        let t = |v: &[f32]| Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [rows, d]), &dev);
        let v1 = |v: &[f32]| Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [d]), &dev);
        let close = |a: &[f32], b: Vec<f32>| {
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 2e-5, "{p} vs {q}");
            }
        };
        // gelu(x + b)
        let mut g = x.clone();
        host::bias_gelu(&mut g, &bias);
        close(
            &g,
            Activation::Gelu
                .apply(t(&x) + v1(&bias).unsqueeze_dim(0))
                .to_data()
                .to_vec()
                .unwrap(),
        );
        // LN(x + y + b)
        let ln = LayerNorm::<B> {
            gamma: Param::from_tensor(v1(&gamma)),
            beta: Param::from_tensor(v1(&beta)),
            eps: 1e-12,
        };
        let mut r = x.clone();
        host::residual_layer_norm(&mut r, &y, &bias, &gamma, &beta, 1e-12);
        close(
            &r,
            ln.forward(t(&x) + t(&y) + v1(&bias).unsqueeze_dim(0))
                .to_data()
                .to_vec()
                .unwrap(),
        );
        let mut l = x.clone();
        host::layer_norm(&mut l, &gamma, &beta, 1e-12);
        close(&l, ln.forward(t(&x)).to_data().to_vec().unwrap());
    }

    /// Naive f64 attention of packed sequences: query head `h` reads key/value head
    /// `h / (heads / kv_heads)`; with `causal`, keys `j ≤ i` with `i - j < window`.
    #[allow(clippy::too_many_arguments)]
    fn naive_attention(
        qkv: &[f32],
        lengths: &[usize],
        heads: usize,
        kv_heads: usize,
        d: usize,
        scale: f32,
        causal: bool,
        window: usize,
    ) -> Vec<f32> {
        let w = (heads + 2 * kv_heads) * d;
        let total: usize = lengths.iter().sum();
        let mut out = vec![0f32; total * heads * d];
        let mut t0 = 0;
        for &len in lengths {
            for h in 0..heads {
                let g = h / (heads / kv_heads);
                let (qo, ko, vo) = (h * d, (heads + g) * d, (heads + kv_heads + g) * d);
                for i in 0..len {
                    let keys: Vec<usize> = (0..len)
                        .filter(|&j| !causal || (j <= i && i - j < window))
                        .collect();
                    let scores: Vec<f64> = keys
                        .iter()
                        .map(|&j| {
                            (0..d)
                                .map(|c| {
                                    qkv[(t0 + i) * w + qo + c] as f64
                                        * qkv[(t0 + j) * w + ko + c] as f64
                                })
                                .sum::<f64>()
                                * scale as f64
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let v: f64 = keys
                            .iter()
                            .zip(&e)
                            .map(|(&j, p)| p * qkv[(t0 + j) * w + vo + c] as f64)
                            .sum();
                        out[(t0 + i) * heads * d + h * d + c] = (v / z) as f32;
                    }
                }
            }
            t0 += len;
        }
        out
    }

    #[test]
    fn blocked_attention_matches_naive_attention() {
        // head_dim 20: one 16-wide block plus a scalar tail; lengths around the 8-query and
        // 16-key blocks; GQA with two query heads per key/value head; windows and none.
        let (heads, kv_heads, d) = (4, 2, 20);
        let lengths = [17usize, 1, 8, 9, 33];
        let total: usize = lengths.iter().sum();
        let qkv: Vec<f32> = (0..total * (heads + 2 * kv_heads) * d)
            .map(|i| (((i * 29) % 19) as f32 - 9.0) / 6.0)
            .collect();
        let check = |got: Vec<f32>, want: Vec<f32>, what: &str| {
            assert_eq!(got.len(), want.len());
            for (n, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-5, "{what}: value {n}: {a} vs {b}");
            }
        };
        for window in [usize::MAX, 5, 1] {
            check(
                host::packed_causal_attention(&qkv, &lengths, heads, kv_heads, d, 0.3, window),
                naive_attention(&qkv, &lengths, heads, kv_heads, d, 0.3, true, window),
                &format!("causal, window {window}"),
            );
        }
        // Bidirectional (BERT) needs kv_heads == heads.
        let qkv: Vec<f32> = (0..total * 3 * heads * d)
            .map(|i| (((i * 31) % 23) as f32 - 11.0) / 7.0)
            .collect();
        check(
            host::packed_attention(&qkv, &[], &lengths, heads, d, 0.3),
            naive_attention(&qkv, &lengths, heads, heads, d, 0.3, false, usize::MAX),
            "bidirectional",
        );
        // With the projection's bias folded in vs added to the input first.
        let w = 3 * heads * d;
        let bias: Vec<f32> = (0..w).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
        let biased: Vec<f32> = qkv
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % w])
            .collect();
        check(
            host::packed_attention(&qkv, &bias, &lengths, heads, d, 0.3),
            naive_attention(&biased, &lengths, heads, heads, d, 0.3, false, usize::MAX),
            "bidirectional with bias",
        );
    }

    #[test]
    fn packed_attention_matches_masked_sdpa() {
        let dev = Default::default();
        let (heads, hd) = (2, 4);
        let h = heads * hd;
        let lengths = [3usize, 1, 5];
        let s = 5;
        let total: usize = lengths.iter().sum();
        let qkv: Vec<f32> = (0..total * 3 * h)
            .map(|i| (((i * 31) % 17) as f32 - 8.0) / 7.0)
            .collect();
        let ctx = host::packed_attention(&qkv, &[], &lengths, heads, hd, 0.5);
        // Padded reference: [batch, seq, 3h] with zero rows past each length.
        let mut padded = vec![0f32; lengths.len() * s * 3 * h];
        let mut t0 = 0;
        for (b, &len) in lengths.iter().enumerate() {
            padded[b * s * 3 * h..(b * s + len) * 3 * h]
                .copy_from_slice(&qkv[t0 * 3 * h..(t0 + len) * 3 * h]);
            t0 += len;
        }
        let x = Tensor::<B, 3>::from_data(TensorData::new(padded, [lengths.len(), s, 3 * h]), &dev);
        let q = split_heads(x.clone().narrow(2, 0, h), heads, hd);
        let k = split_heads(x.clone().narrow(2, h, h), heads, hd);
        let v = split_heads(x.narrow(2, 2 * h, h), heads, hd);
        let mask = attention_mask::<B>(&lengths, s, AttentionKind::Bidirectional, &dev);
        let want: Vec<f32> = merge_heads(sdpa(q, k, v, mask, 0.5))
            .to_data()
            .to_vec()
            .unwrap();
        let mut t0 = 0;
        for (b, &len) in lengths.iter().enumerate() {
            for i in 0..len {
                for c in 0..h {
                    let (got, exp) = (ctx[(t0 + i) * h + c], want[(b * s + i) * h + c]);
                    assert!(
                        (got - exp).abs() < 1e-5,
                        "seq {b} token {i} col {c}: {got} vs {exp}"
                    );
                }
            }
            t0 += len;
        }
    }
}
