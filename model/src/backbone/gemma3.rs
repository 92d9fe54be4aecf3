//! Gemma 3 text model as a frozen base model (no LM head), e.g. Gemma-3-270M.
//!
//! Differences from Llama, all following transformers' `models/gemma3/modeling_gemma3.py`:
//! - token embeddings scaled by `sqrt(hidden_size)`;
//! - RMSNorm multiplies by `(1 + w)` (folded into the weight at load, computed in f32);
//! - four norms per block: `h += post_attn_norm(attn(input_norm(h)))`,
//!   `h += post_ff_norm(mlp(pre_ff_norm(h)))`;
//! - RMSNorm over each head of q and k (`q_norm`, `k_norm`) before RoPE;
//! - attention scale `query_pre_attn_scalar^-1/2` instead of `head_dim^-1/2`;
//! - sliding-window (local) layers and global layers (`layer_types`, or every
//!   `sliding_window_pattern`-th layer global), each with its own RoPE base
//!   (`rope_local_base_freq` = 10k for local, `rope_theta` = 1M with `rope_scaling` for global);
//! - GeGLU MLP with the tanh-approximated GELU.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::layers::{
    Activation, AttentionKind, Dense, RmsNorm, Rope, RopeScaling, RopeScalingJson, WeightReader,
    attention_mask, mask_lengths, merge_heads, repeat_kv, sdpa,
};
use crate::weights::TensorSource;
use crate::{Error, Result};

/// Attention type of a layer (`layer_types` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    /// Local layer: causal within `sliding_window` tokens, RoPE base `rope_local_base_freq`.
    SlidingAttention,
    /// Global layer: full causal attention, RoPE base `rope_theta` with `rope_scaling`.
    FullAttention,
}

/// Configuration of a Gemma 3 text model, deserialised from a Hugging Face `config.json`
/// (`model_type` `gemma3_text`, or `gemma3` with the fields under `text_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gemma3Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    pub num_key_value_heads: usize,
    /// Per-head width.
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    /// Attention scores are scaled by `query_pre_attn_scalar^-1/2`.
    #[serde(default = "default_head_dim_f")]
    pub query_pre_attn_scalar: f64,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base of global layers.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// RoPE base of local (sliding-window) layers.
    #[serde(default = "default_local_theta")]
    pub rope_local_base_freq: f64,
    /// RoPE rescaling of global layers (local layers never rescale).
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Window of the local layers.
    #[serde(default = "default_window")]
    pub sliding_window: usize,
    /// Every `sliding_window_pattern`-th layer is global (used when `layer_types` is absent).
    #[serde(default = "default_pattern")]
    pub sliding_window_pattern: usize,
    /// Per-layer attention type; derived from `sliding_window_pattern` when absent.
    #[serde(default)]
    pub layer_types: Option<Vec<LayerType>>,
    /// MLP activation.
    #[serde(default = "default_act", alias = "hidden_act")]
    pub hidden_activation: Activation,
    /// Longest trained position.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Biases on the attention projections (false in released models).
    #[serde(default)]
    pub attention_bias: bool,
    /// Soft-capping of attention logits (None in Gemma 3).
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// Bidirectional attention (EmbeddingGemma); only the causal model is supported.
    #[serde(default)]
    pub use_bidirectional_attention: bool,
}

fn default_head_dim() -> usize {
    256
}
fn default_head_dim_f() -> f64 {
    256.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    1_000_000.0
}
fn default_local_theta() -> f64 {
    10_000.0
}
fn default_window() -> usize {
    4096
}
fn default_pattern() -> usize {
    6
}
fn default_act() -> Activation {
    Activation::GeluTanh
}
fn default_max_pos() -> usize {
    131_072
}

impl Gemma3Config {
    /// Parses a Hugging Face `config.json` (`file` names it in errors).
    pub fn from_hf_json(json: &serde_json::Value, file: &str) -> Result<Self> {
        let mut j = json
            .get("text_config")
            .cloned()
            .unwrap_or_else(|| json.clone());
        let obj = j
            .as_object_mut()
            .ok_or_else(|| Error::Invalid(format!("{file}: not a JSON object")))?;
        let parse = |key: &str,
                     obj: &mut serde_json::Map<String, serde_json::Value>|
         -> Result<Option<RopeScalingJson>> {
            match obj.remove(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| Error::Invalid(format!("{file}: field `{key}`: {e}"))),
            }
        };
        let mut scaling = parse("rope_scaling", obj)?
            .map(|s| s.parse(file))
            .transpose()?;
        // transformers ≥ 5: {"rope_parameters": {"full_attention": {...}, "sliding_attention": {...}}}
        if let Some(params) = obj.remove("rope_parameters") {
            let get = |k: &str| -> Result<Option<RopeScalingJson>> {
                params
                    .get(k)
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| {
                        Error::Invalid(format!("{file}: field `rope_parameters.{k}`: {e}"))
                    })
            };
            if let Some(full) = get("full_attention")? {
                if let Some(t) = full.rope_theta {
                    obj.insert("rope_theta".into(), t.into());
                }
                scaling = Some(full.parse(file)?);
            }
            if let Some(t) = get("sliding_attention")?.and_then(|s| s.rope_theta) {
                obj.insert("rope_local_base_freq".into(), t.into());
            }
        }
        for k in [
            "sliding_window",
            "head_dim",
            "query_pre_attn_scalar",
            "layer_types",
            "max_position_embeddings",
        ] {
            if obj.get(k).is_some_and(|v| v.is_null()) {
                obj.remove(k);
            }
        }
        let mut cfg: Gemma3Config =
            serde_json::from_value(j).map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
        cfg.rope_scaling = scaling.filter(|s| *s != RopeScaling::Default);
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks the fields against each other; errors name the field.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::Invalid(format!("{file}: field `{field}`: {msg}")))
        };
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || self.num_hidden_layers == 0
        {
            return bad(
                "num_attention_heads/num_key_value_heads/num_hidden_layers",
                "must be positive".into(),
            );
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            );
        }
        if self.head_dim % 2 != 0 {
            return bad(
                "head_dim",
                format!("{} must be even for RoPE", self.head_dim),
            );
        }
        if let Some(t) = &self.layer_types
            && t.len() != self.num_hidden_layers
        {
            return bad(
                "layer_types",
                format!(
                    "has {} entries for {} layers",
                    t.len(),
                    self.num_hidden_layers
                ),
            );
        }
        if self.sliding_window == 0 || self.sliding_window_pattern == 0 {
            return bad("sliding_window", "must be positive".into());
        }
        if let Some(c) = self.attn_logit_softcapping {
            return bad(
                "attn_logit_softcapping",
                format!("{c}: soft-capping is not supported (Gemma 3 has none)"),
            );
        }
        if self.use_bidirectional_attention {
            return bad(
                "use_bidirectional_attention",
                "bidirectional Gemma (EmbeddingGemma) is not supported".into(),
            );
        }
        if matches!(self.hidden_activation, Activation::Silu) {
            return bad(
                "hidden_activation",
                "Gemma 3 uses GeGLU (gelu_pytorch_tanh)".into(),
            );
        }
        Ok(())
    }

    /// The attention type of layer `i`.
    pub fn layer_type(&self, i: usize) -> LayerType {
        match &self.layer_types {
            Some(t) => t[i],
            None if (i + 1) % self.sliding_window_pattern == 0 => LayerType::FullAttention,
            None => LayerType::SlidingAttention,
        }
    }

    /// Gemma-3-270M as in its `config.json`.
    pub fn gemma3_270m() -> Self {
        Gemma3Config {
            vocab_size: 262_144,
            hidden_size: 640,
            intermediate_size: 2048,
            num_hidden_layers: 18,
            num_attention_heads: 4,
            num_key_value_heads: 1,
            head_dim: 256,
            query_pre_attn_scalar: 256.0,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_local_base_freq: 10_000.0,
            rope_scaling: None,
            sliding_window: 512,
            sliding_window_pattern: 6,
            layer_types: None,
            hidden_activation: Activation::GeluTanh,
            max_position_embeddings: 32_768,
            attention_bias: false,
            attn_logit_softcapping: None,
            use_bidirectional_attention: false,
        }
    }

    /// A tiny configuration for tests (window 3 so that sliding layers differ from global ones).
    pub fn tiny() -> Self {
        Gemma3Config {
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 3,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            query_pre_attn_scalar: 16.0,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_local_base_freq: 10_000.0,
            rope_scaling: None,
            sliding_window: 3,
            sliding_window_pattern: 3,
            layer_types: None,
            hidden_activation: Activation::GeluTanh,
            max_position_embeddings: 128,
            attention_bias: false,
            attn_logit_softcapping: None,
            use_bidirectional_attention: false,
        }
    }

    /// A randomly initialised model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Gemma3<B> {
        let (h, d, nh, nkv, inter) = (
            self.hidden_size,
            self.head_dim,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.intermediate_size,
        );
        let norm = |n: usize| {
            RmsNorm::new(
                Tensor::random([n], burn::tensor::Distribution::Uniform(0.5, 1.5), device),
                self.rms_norm_eps,
            )
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| Gemma3Layer {
                input_norm: norm(h),
                qkv: Dense::random(h, (nh + 2 * nkv) * d, self.attention_bias, device),
                q_norm: norm(d),
                k_norm: norm(d),
                o: Dense::random(nh * d, h, self.attention_bias, device),
                post_attn_norm: norm(h),
                pre_ff_norm: norm(h),
                gate_up: Dense::random(h, 2 * inter, false, device),
                down: Dense::random(inter, h, false, device),
                post_ff_norm: norm(h),
            })
            .collect();
        let embed = Tensor::random(
            [self.vocab_size, h],
            burn::tensor::Distribution::Normal(0.0, 0.05),
            device,
        );
        self.assemble(embed, layers, norm(h), device)
    }

    fn assemble<B: Backend>(
        &self,
        embed: Tensor<B, 2>,
        layers: Vec<Gemma3Layer<B>>,
        norm: RmsNorm<B>,
        device: &B::Device,
    ) -> Gemma3<B> {
        let max = self.max_position_embeddings;
        Gemma3 {
            embed,
            layers,
            norm,
            rope_local: Rope::new(
                self.head_dim,
                self.rope_local_base_freq,
                RopeScaling::Default,
                max,
                device,
            ),
            rope_global: Rope::new(
                self.head_dim,
                self.rope_theta,
                self.rope_scaling.unwrap_or_default(),
                max,
                device,
            ),
            global: (0..self.num_hidden_layers)
                .map(|i| self.layer_type(i) == LayerType::FullAttention)
                .collect(),
            heads: self.num_attention_heads,
            kv_heads: self.num_key_value_heads,
            head_dim: self.head_dim,
            intermediate: self.intermediate_size,
            window: self.sliding_window,
            scale: self.query_pre_attn_scalar.powf(-0.5),
            embed_scale: (self.hidden_size as f64).sqrt(),
            act: self.hidden_activation == Activation::Gelu,
        }
    }

    /// Loads the weights from `src` (Hugging Face names, see [`crate::loader`]); every tensor is
    /// shape-checked. Accepts the names of the causal-LM checkpoint (`model.…`), of the
    /// multimodal one (`language_model.model.…`, `model.language_model.…`) and of a saved base
    /// model (no prefix).
    pub fn load<B: Backend>(
        &self,
        src: &dyn TensorSource,
        device: &B::Device,
    ) -> Result<Gemma3<B>> {
        let prefix = [
            "model.",
            "language_model.model.",
            "model.language_model.",
            "",
        ]
        .into_iter()
        .find(|p| src.contains(&format!("{p}embed_tokens.weight")))
        .unwrap_or("model.");
        let r = WeightReader::<B> { src, device };
        let (h, d, nh, nkv, inter) = (
            self.hidden_size,
            self.head_dim,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.intermediate_size,
        );
        // Gemma's RMSNorm scales by (1 + w); fold the 1 in once.
        let norm = |name: &str, n: usize| -> Result<RmsNorm<B>> {
            Ok(RmsNorm::new(r.vector(name, n)? + 1.0, self.rms_norm_eps))
        };
        let embed = r.matrix(&format!("{prefix}embed_tokens.weight"), self.vocab_size, h)?;
        let mut layers = Vec::with_capacity(self.num_hidden_layers);
        for i in 0..self.num_hidden_layers {
            let p = format!("{prefix}layers.{i}");
            let a = format!("{p}.self_attn");
            layers.push(Gemma3Layer {
                input_norm: norm(&format!("{p}.input_layernorm.weight"), h)?,
                qkv: r.dense_fused(
                    &[
                        &format!("{a}.q_proj"),
                        &format!("{a}.k_proj"),
                        &format!("{a}.v_proj"),
                    ],
                    h,
                    &[nh * d, nkv * d, nkv * d],
                    self.attention_bias,
                )?,
                q_norm: norm(&format!("{a}.q_norm.weight"), d)?,
                k_norm: norm(&format!("{a}.k_norm.weight"), d)?,
                o: r.dense(&format!("{a}.o_proj"), nh * d, h, self.attention_bias)?,
                post_attn_norm: norm(&format!("{p}.post_attention_layernorm.weight"), h)?,
                pre_ff_norm: norm(&format!("{p}.pre_feedforward_layernorm.weight"), h)?,
                gate_up: r.dense_fused(
                    &[&format!("{p}.mlp.gate_proj"), &format!("{p}.mlp.up_proj")],
                    h,
                    &[inter, inter],
                    false,
                )?,
                down: r.dense(&format!("{p}.mlp.down_proj"), inter, h, false)?,
                post_ff_norm: norm(&format!("{p}.post_feedforward_layernorm.weight"), h)?,
            });
        }
        let final_norm = norm(&format!("{prefix}norm.weight"), h)?;
        Ok(self.assemble(embed, layers, final_norm, device))
    }
}

/// One Gemma 3 decoder block.
#[derive(Module, Debug)]
pub struct Gemma3Layer<B: Backend> {
    input_norm: RmsNorm<B>,
    /// q, k and v fused: `[hidden, (heads + 2 kv_heads) head_dim]`.
    qkv: Dense<B>,
    q_norm: RmsNorm<B>,
    k_norm: RmsNorm<B>,
    o: Dense<B>,
    post_attn_norm: RmsNorm<B>,
    pre_ff_norm: RmsNorm<B>,
    /// gate and up fused: `[hidden, 2 intermediate]`.
    gate_up: Dense<B>,
    down: Dense<B>,
    post_ff_norm: RmsNorm<B>,
}

/// A Gemma 3 text decoder without its LM head.
#[derive(Module, Debug)]
pub struct Gemma3<B: Backend> {
    /// `[vocab, hidden]`, unscaled (the `sqrt(hidden)` factor is applied after lookup).
    embed: Tensor<B, 2>,
    layers: Vec<Gemma3Layer<B>>,
    norm: RmsNorm<B>,
    rope_local: Rope<B>,
    rope_global: Rope<B>,
    /// Per layer: global (true) or sliding-window (false).
    global: Vec<bool>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    window: usize,
    scale: f64,
    embed_scale: f64,
    /// true = exact (erf) GELU, false = tanh approximation.
    act: bool,
}

impl<B: Backend> Gemma3<B> {
    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.embed.dims()[1]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed.dims()[0]
    }

    /// Last hidden states after the final norm.
    ///
    /// Runs packed: the real tokens of all sequences are concatenated into one `[tokens,
    /// hidden]` matrix (positions restart at 0 for each sequence), so no matmul, norm or
    /// activation is spent on padding, and each token attends causally within its own sequence
    /// (within `sliding_window` on local layers) with grouped key/value heads read in place,
    /// never repeated. The matmuls go through the backend; everything between them runs as fused
    /// host kernels ([`super::layers::host`]). Same values as the padded, masked computation
    /// at every real position ([`Gemma3::forward_padded`] is that reference); padding positions
    /// of the output are zero.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        use super::layers::host;
        let s = ids.dims()[1];
        let device = ids.device();
        let Some(batch) = host::PackedBatch::new(&ids, &mask) else {
            return self.forward_padded(ids, mask);
        };
        let h = self.hidden_size();
        let total = batch.total();
        let longest = batch.longest();
        let host::PackedBatch { ids: packed, positions, lengths } = batch;
        let (cos_l, sin_l) = host::rope_tables(self.rope_local.inv_freq(), longest);
        let (cos_g, sin_g) = host::rope_tables(self.rope_global.inv_freq(), longest);
        let ids_t = Tensor::<B, 1, Int>::from_data(TensorData::new(packed, [total]), &device);
        // Embedding rows × sqrt(hidden), as transformers' scaled embedding (scale in f32).
        let mut x = host::to_vec(self.embed.clone().select(0, ids_t)); // [tokens, hidden]
        let es = self.embed_scale as f32;
        x.iter_mut().for_each(|v| *v *= es);
        let w = |n: &RmsNorm<B>| (host::to_vec(n.weight.val()), n.eps as f32);
        let (nh, nkv, d) = (self.heads, self.kv_heads, self.head_dim);
        let gate = if self.act {
            host::Gate::Gelu
        } else {
            host::Gate::GeluTanh
        };
        for (layer, &global) in self.layers.iter().zip(&self.global) {
            let (cos, sin, window) = if global {
                (&cos_g, &sin_g, usize::MAX)
            } else {
                (&cos_l, &sin_l, self.window)
            };
            let (g, eps) = w(&layer.input_norm);
            let n = host::rms_norm_copy(&x, &g, eps);
            let mut qkv = host::dense(n, total, &layer.qkv, &device); // [tokens, (nh + 2 nkv) d]
            let ((qn, qe), (kn, _)) = (w(&layer.q_norm), w(&layer.k_norm));
            host::qk_norm_rope(
                &mut qkv,
                &positions,
                nh,
                nkv,
                d,
                Some((&qn, &kn, qe)),
                cos,
                sin,
            );
            let ctx = host::packed_causal_attention(
                &qkv,
                &lengths,
                nh,
                nkv,
                d,
                self.scale as f32,
                window,
            ); // [tokens, nh d]
            drop(qkv);
            let o = host::dense(ctx, total, &layer.o, &device); // [tokens, hidden]
            let (g, eps) = w(&layer.post_attn_norm);
            host::add_rms_norm(&mut x, &o, &g, eps);

            let (g, eps) = w(&layer.pre_ff_norm);
            let n = host::rms_norm_copy(&x, &g, eps);
            let gu = host::dense(n, total, &layer.gate_up, &device); // [tokens, 2 inter]
            let a = host::gated(&gu, self.intermediate, gate); // [tokens, inter]
            drop(gu);
            let y = host::dense(a, total, &layer.down, &device); // [tokens, hidden]
            let (g, eps) = w(&layer.post_ff_norm);
            host::add_rms_norm(&mut x, &y, &g, eps);
        }
        let (g, eps) = w(&self.norm);
        host::rms_norm(&mut x, &g, eps);
        host::unpack::<B>(&x, &lengths, s, h, &device)
    }

    /// The padded reference computation with Burn tensor ops (masked attention over
    /// `[batch, seq]`, repeated key/value heads); [`Gemma3::forward`] gives the same values at
    /// real positions.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward_padded(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let device = ids.device();
        let lengths = mask_lengths(&mask);
        let global_mask = attention_mask::<B>(&lengths, s, AttentionKind::Causal, &device);
        let local_mask = if self.window < s {
            attention_mask::<B>(
                &lengths,
                s,
                AttentionKind::SlidingCausal {
                    window: self.window,
                },
                &device,
            )
        } else {
            global_mask.clone()
        };
        let h = self.hidden_size();
        let mut x = self
            .embed
            .clone()
            .select(0, ids.reshape([b * s]))
            .reshape([b, s, h])
            * self.embed_scale; // [batch, seq, hidden]
        let (nh, nkv, d) = (self.heads, self.kv_heads, self.head_dim);
        for (layer, &global) in self.layers.iter().zip(&self.global) {
            let (rope, mask) = if global {
                (&self.rope_global, &global_mask)
            } else {
                (&self.rope_local, &local_mask)
            };
            let qkv = layer.qkv.forward(layer.input_norm.forward(x.clone())); // [batch, seq, (nh + 2 nkv) d]
            // Per-head norms act on [batch, seq, heads, d] before the heads move forward.
            let q = layer
                .q_norm
                .forward(qkv.clone().narrow(2, 0, nh * d).reshape([b, s, nh, d]))
                .swap_dims(1, 2); // [batch, nh, seq, d]
            let k = layer
                .k_norm
                .forward(
                    qkv.clone()
                        .narrow(2, nh * d, nkv * d)
                        .reshape([b, s, nkv, d]),
                )
                .swap_dims(1, 2); // [batch, nkv, seq, d]
            let v = qkv
                .narrow(2, (nh + nkv) * d, nkv * d)
                .reshape([b, s, nkv, d])
                .swap_dims(1, 2);
            let q = rope.apply(q);
            let k = repeat_kv(rope.apply(k), nh / nkv);
            let v = repeat_kv(v, nh / nkv);
            let ctx = merge_heads(sdpa(q, k, v, mask.clone(), self.scale)); // [batch * seq, nh d]
            let attn = layer.o.forward2(ctx).reshape([b, s, h]);
            x = x + layer.post_attn_norm.forward(attn);

            let gu = layer.gate_up.forward(layer.pre_ff_norm.forward(x.clone())); // [batch, seq, 2 inter]
            let gate = gu.clone().narrow(2, 0, self.intermediate);
            let up = gu.narrow(2, self.intermediate, self.intermediate);
            let act = if self.act {
                Activation::Gelu
            } else {
                Activation::GeluTanh
            };
            x = x + layer
                .post_ff_norm
                .forward(layer.down.forward(act.apply(gate) * up));
        }
        self.norm.forward(x)
    }
}
