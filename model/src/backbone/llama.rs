//! The Llama family of decoders as a frozen base model (no LM head): Llama, Mistral, Qwen2
//! (q/k/v biases) and Baichuan2-7B (fused `W_pack` q/k/v, split at load). LEARN's paper uses
//! Baichuan2-7B; it returns the last hidden state after the final RMSNorm.
//!
//! Block: `h += o(attn(rope(q(rms(h))), rope(k(..)), v(..)))`, `h += down(silu(gate(rms(h))) * up(rms(h)))`,
//! with rotate-half RoPE, grouped-query attention and a causal mask combined with the padding
//! mask (plus Mistral's sliding window when the config has one).
//!
//! Reference: transformers `models/llama/modeling_llama.py`, `models/qwen2/modeling_qwen2.py`,
//! Baichuan2-7B `modeling_baichuan.py`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::layers::{
    Activation, AttentionKind, Dense, RmsNorm, Rope, RopeScaling, RopeScalingJson, WeightReader,
    attention_mask, mask_lengths, merge_heads, repeat_kv, sdpa, split_heads,
};
use crate::weights::TensorSource;
use crate::{Error, Result};

/// Which member of the Llama family (`model_type` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlamaVariant {
    /// Meta Llama 2/3.
    Llama,
    /// Mistral (optional sliding window).
    Mistral,
    /// Qwen2 / Qwen2.5 (biases on q/k/v).
    Qwen2,
    /// Baichuan2-7B (fused `W_pack`; the 13B model uses ALiBi and is not supported).
    Baichuan,
}

/// Configuration of a Llama-family decoder, deserialised from a Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Family member.
    pub model_type: LlamaVariant,
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE rescaling, if any.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Longest position the model was trained for (Baichuan calls it `model_max_length`).
    #[serde(default = "default_max_pos", alias = "model_max_length")]
    pub max_position_embeddings: usize,
    /// MLP activation (SwiGLU gate).
    #[serde(default)]
    pub hidden_act: Activation,
    /// Biases on q/k/v (always true for Qwen2; `attention_bias` for Llama).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Sliding-window attention width (Mistral v0.1, Qwen2 with `use_sliding_window`).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2's switch for `sliding_window` (off in released models).
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    4096
}

/// The subset of `config.json` that needs converting before it becomes a [`LlamaConfig`].
#[derive(Deserialize)]
struct LlamaJson {
    #[serde(flatten)]
    base: serde_json::Value,
    #[serde(default)]
    rope_scaling: Option<RopeScalingJson>,
    #[serde(default)]
    rope_parameters: Option<RopeScalingJson>,
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json` (`file` names it in errors).
    pub fn from_hf_json(json: &serde_json::Value, file: &str) -> Result<Self> {
        let mut raw: LlamaJson = serde_json::from_value(json.clone())
            .map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
        let scaling = raw
            .rope_parameters
            .as_ref()
            .or(raw.rope_scaling.as_ref())
            .map(|s| s.parse(file))
            .transpose()?;
        let theta = raw.rope_parameters.as_ref().and_then(|p| p.rope_theta);
        if let Some(obj) = raw.base.as_object_mut() {
            obj.remove("rope_scaling");
            obj.remove("rope_parameters");
            if let Some(t) = theta {
                obj.insert("rope_theta".into(), t.into());
            }
            if obj
                .get("max_position_embeddings")
                .is_some_and(|v| v.is_null())
            {
                obj.remove("max_position_embeddings");
            }
        }
        let mut cfg: LlamaConfig =
            serde_json::from_value(raw.base).map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
        cfg.rope_scaling = scaling.filter(|s| *s != RopeScaling::Default);
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks the fields against each other; errors name the field.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::Invalid(format!("{file}: field `{field}`: {msg}")))
        };
        if self.num_attention_heads == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return bad(
                "hidden_size/num_attention_heads/num_hidden_layers",
                "must be positive".into(),
            );
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.kv_heads(),
                    self.num_attention_heads
                ),
            );
        }
        if self.head_dim() % 2 != 0 {
            return bad(
                "head_dim",
                format!("{} must be even for RoPE", self.head_dim()),
            );
        }
        if self.hidden_act != Activation::Silu {
            return bad(
                "hidden_act",
                format!("{:?} is not supported (silu)", self.hidden_act),
            );
        }
        if self.model_type == LlamaVariant::Baichuan && self.num_hidden_layers == 40 {
            return bad(
                "model_type",
                "Baichuan2-13B uses ALiBi, which is not supported (Baichuan2-7B is)".into(),
            );
        }
        Ok(())
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias
            .unwrap_or(self.model_type == LlamaVariant::Qwen2)
    }

    /// The attention pattern of every layer.
    pub fn attention_kind(&self) -> AttentionKind {
        let on = match self.model_type {
            LlamaVariant::Qwen2 => self.use_sliding_window.unwrap_or(false),
            _ => true,
        };
        match self.sliding_window {
            Some(w) if on && w < self.max_position_embeddings => {
                AttentionKind::SlidingCausal { window: w }
            }
            _ => AttentionKind::Causal,
        }
    }

    /// Qwen2.5-1.5B (and its Coder-Instruct sibling) as in its `config.json`.
    pub fn qwen2_5_1_5b() -> Self {
        LlamaConfig {
            model_type: LlamaVariant::Qwen2,
            vocab_size: 151_936,
            hidden_size: 1536,
            intermediate_size: 8960,
            num_hidden_layers: 28,
            num_attention_heads: 12,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            rope_scaling: None,
            max_position_embeddings: 32_768,
            hidden_act: Activation::Silu,
            attention_bias: None,
            sliding_window: None,
            use_sliding_window: Some(false),
        }
    }

    /// A tiny configuration for tests.
    pub fn tiny(model_type: LlamaVariant) -> Self {
        LlamaConfig {
            model_type,
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(if model_type == LlamaVariant::Baichuan {
                4
            } else {
                2
            }),
            head_dim: None,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 128,
            hidden_act: Activation::Silu,
            attention_bias: None,
            sliding_window: None,
            use_sliding_window: None,
        }
    }

    /// A randomly initialised model (tests, benchmarks of shape only).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Llama<B> {
        let (h, d, nh, nkv) = (
            self.hidden_size,
            self.head_dim(),
            self.num_attention_heads,
            self.kv_heads(),
        );
        let norm = |n: usize| RmsNorm::new(Tensor::ones([n], device), self.rms_norm_eps);
        let layers = (0..self.num_hidden_layers)
            .map(|_| LlamaLayer {
                input_norm: norm(h),
                qkv: Dense::random(h, (nh + 2 * nkv) * d, self.qkv_bias(), device),
                o: Dense::random(nh * d, h, false, device),
                post_norm: norm(h),
                gate_up: Dense::random(h, 2 * self.intermediate_size, false, device),
                down: Dense::random(self.intermediate_size, h, false, device),
            })
            .collect();
        let embed = Tensor::random(
            [self.vocab_size, h],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        );
        self.assemble(embed, layers, norm(h), device)
    }

    fn assemble<B: Backend>(
        &self,
        embed: Tensor<B, 2>,
        layers: Vec<LlamaLayer<B>>,
        norm: RmsNorm<B>,
        device: &B::Device,
    ) -> Llama<B> {
        let rope = Rope::new(
            self.head_dim(),
            self.rope_theta,
            self.rope_scaling.unwrap_or_default(),
            self.max_position_embeddings,
            device,
        );
        Llama {
            embed,
            layers,
            norm,
            rope,
            heads: self.num_attention_heads,
            kv_heads: self.kv_heads(),
            head_dim: self.head_dim(),
            intermediate: self.intermediate_size,
            window: match self.attention_kind() {
                AttentionKind::SlidingCausal { window } => window,
                _ => 0,
            },
        }
    }

    /// Loads the weights from `src` (Hugging Face names, see [`crate::loader`]); every tensor is
    /// shape-checked against this config.
    pub fn load<B: Backend>(&self, src: &dyn TensorSource, device: &B::Device) -> Result<Llama<B>> {
        // A causal-LM checkpoint names its tensors `model.…`; a saved base model has no prefix.
        let prefix =
            if !src.contains("model.embed_tokens.weight") && src.contains("embed_tokens.weight") {
                ""
            } else {
                "model."
            };
        let r = WeightReader::<B> { src, device };
        let (h, d, nh, nkv, inter) = (
            self.hidden_size,
            self.head_dim(),
            self.num_attention_heads,
            self.kv_heads(),
            self.intermediate_size,
        );
        let embed = r.matrix(&format!("{prefix}embed_tokens.weight"), self.vocab_size, h)?;
        let mut layers = Vec::with_capacity(self.num_hidden_layers);
        for i in 0..self.num_hidden_layers {
            let p = format!("{prefix}layers.{i}");
            let qkv = if self.model_type == LlamaVariant::Baichuan {
                // Baichuan's W_pack is q, k and v stacked along the output axis: exactly the
                // fused layout used here.
                let name = format!("{p}.self_attn.W_pack");
                let rows = r.raw(&format!("{name}.weight"), &[3 * h, h])?;
                r.dense_from_rows(rows, &[&name], h, &[3 * h], false)?
            } else {
                let (q, k, v) = (
                    format!("{p}.self_attn.q_proj"),
                    format!("{p}.self_attn.k_proj"),
                    format!("{p}.self_attn.v_proj"),
                );
                r.dense_fused(
                    &[&q, &k, &v],
                    h,
                    &[nh * d, nkv * d, nkv * d],
                    self.qkv_bias(),
                )?
            };
            layers.push(LlamaLayer {
                input_norm: RmsNorm::new(
                    r.vector(&format!("{p}.input_layernorm.weight"), h)?,
                    self.rms_norm_eps,
                ),
                qkv,
                o: r.dense(&format!("{p}.self_attn.o_proj"), nh * d, h, false)?,
                post_norm: RmsNorm::new(
                    r.vector(&format!("{p}.post_attention_layernorm.weight"), h)?,
                    self.rms_norm_eps,
                ),
                gate_up: r.dense_fused(
                    &[&format!("{p}.mlp.gate_proj"), &format!("{p}.mlp.up_proj")],
                    h,
                    &[inter, inter],
                    false,
                )?,
                down: r.dense(&format!("{p}.mlp.down_proj"), inter, h, false)?,
            });
        }
        let norm = RmsNorm::new(
            r.vector(&format!("{prefix}norm.weight"), h)?,
            self.rms_norm_eps,
        );
        Ok(self.assemble(embed, layers, norm, device))
    }
}

/// One decoder block.
#[derive(Module, Debug)]
pub struct LlamaLayer<B: Backend> {
    input_norm: RmsNorm<B>,
    /// q, k and v fused: `[hidden, (heads + 2 kv_heads) head_dim]`.
    qkv: Dense<B>,
    o: Dense<B>,
    post_norm: RmsNorm<B>,
    /// gate and up fused: `[hidden, 2 intermediate]`.
    gate_up: Dense<B>,
    down: Dense<B>,
}

/// A Llama-family decoder without its LM head.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// `[vocab, hidden]`.
    embed: Tensor<B, 2>,
    layers: Vec<LlamaLayer<B>>,
    norm: RmsNorm<B>,
    rope: Rope<B>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    /// Sliding window, 0 = none.
    window: usize,
}

impl<B: Backend> Llama<B> {
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
    /// Runs packed, as [`super::Gemma3::forward`]: the real tokens of all sequences are
    /// concatenated (positions restart at 0 for each), each attends causally within its own
    /// sequence (within the sliding window when the config has one) with grouped key/value heads
    /// read in place; matmuls through the backend, everything between them as fused host
    /// kernels. Same values as [`Llama::forward_padded`] at every real position; padding
    /// positions of the output are zero.
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
        let (cos, sin) = host::rope_tables(self.rope.inv_freq(), longest);
        let ids_t = Tensor::<B, 1, Int>::from_data(TensorData::new(packed, [total]), &device);
        let mut x = host::to_vec(self.embed.clone().select(0, ids_t)); // [tokens, hidden]
        let w = |n: &RmsNorm<B>| (host::to_vec(n.weight.val()), n.eps as f32);
        let (nh, nkv, d) = (self.heads, self.kv_heads, self.head_dim);
        let window = if self.window > 0 {
            self.window
        } else {
            usize::MAX
        };
        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            let (g, eps) = w(&layer.input_norm);
            let n = host::rms_norm_copy(&x, &g, eps);
            let mut qkv = host::dense(n, total, &layer.qkv, &device); // [tokens, (nh + 2 nkv) d]
            host::qk_norm_rope(&mut qkv, &positions, nh, nkv, d, None, &cos, &sin);
            let ctx = host::packed_causal_attention(&qkv, &lengths, nh, nkv, d, scale, window); // [tokens, nh d]
            drop(qkv);
            let o = host::dense(ctx, total, &layer.o, &device); // [tokens, hidden]
            host::add(&mut x, &o);

            let (g, eps) = w(&layer.post_norm);
            let n = host::rms_norm_copy(&x, &g, eps);
            let gu = host::dense(n, total, &layer.gate_up, &device); // [tokens, 2 inter]
            let a = host::gated(&gu, self.intermediate, host::Gate::Silu); // [tokens, inter]
            drop(gu);
            let y = host::dense(a, total, &layer.down, &device); // [tokens, hidden]
            host::add(&mut x, &y);
        }
        let (g, eps) = w(&self.norm);
        host::rms_norm(&mut x, &g, eps);
        host::unpack::<B>(&x, &lengths, s, h, &device)
    }

    /// The padded reference computation with Burn tensor ops (masked attention over
    /// `[batch, seq]`, repeated key/value heads); [`Llama::forward`] gives the same values at
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
        let kind = if self.window > 0 {
            AttentionKind::SlidingCausal {
                window: self.window,
            }
        } else {
            AttentionKind::Causal
        };
        let attn_mask = attention_mask::<B>(&lengths, s, kind, &device);
        let h = self.hidden_size();
        let mut x = self
            .embed
            .clone()
            .select(0, ids.reshape([b * s]))
            .reshape([b, s, h]); // [batch, seq, hidden]
        let (nh, nkv, d) = (self.heads, self.kv_heads, self.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(layer.input_norm.forward(x.clone())); // [batch, seq, (nh + 2 nkv) d]
            let q = split_heads(qkv.clone().narrow(2, 0, nh * d), nh, d); // [batch, nh, seq, d]
            let k = split_heads(qkv.clone().narrow(2, nh * d, nkv * d), nkv, d); // [batch, nkv, seq, d]
            let v = split_heads(qkv.narrow(2, (nh + nkv) * d, nkv * d), nkv, d);
            let q = self.rope.apply(q);
            let k = repeat_kv(self.rope.apply(k), nh / nkv);
            let v = repeat_kv(v, nh / nkv);
            let ctx = merge_heads(sdpa(q, k, v, attn_mask.clone(), scale)); // [batch * seq, nh d]
            x = x + layer.o.forward2(ctx).reshape([b, s, h]);

            let gu = layer.gate_up.forward(layer.post_norm.forward(x.clone())); // [batch, seq, 2 inter]
            let gate = gu.clone().narrow(2, 0, self.intermediate);
            let up = gu.narrow(2, self.intermediate, self.intermediate);
            x = x + layer
                .down
                .forward(burn::tensor::activation::silu(gate) * up);
        }
        self.norm.forward(x)
    }
}
