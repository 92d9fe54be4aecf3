//! BERT encoder as a frozen base model (no pooler), e.g. all-MiniLM-L6-v2.
//!
//! Post-LN blocks: `h = LN(h + o(attn(h)))`, `h = LN(h + out(gelu(inter(h))))`; embeddings are
//! `LN(word + position + token_type)` with absolute positions and token type 0. Attention is
//! bidirectional over the non-padding tokens. Reference: transformers
//! `models/bert/modeling_bert.py`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::layers::{
    Activation, AttentionKind, Dense, LayerNorm, WeightReader, attention_mask, host, mask_lengths,
    merge_heads, sdpa, split_heads,
};
use crate::weights::TensorSource;
use crate::{Error, Result};

/// Position embedding scheme (`position_embedding_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbedding {
    /// Learned absolute positions (the only kind supported).
    #[default]
    Absolute,
    /// Shaw-style relative keys (unsupported).
    RelativeKey,
    /// Huang-style relative keys and queries (unsupported).
    RelativeKeyQuery,
}

/// Configuration of a BERT encoder, deserialised from a Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Encoder blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// MLP activation (`gelu` = erf form).
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    /// Rows of the position table (longest input).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Position scheme.
    #[serde(default)]
    pub position_embedding_type: PositionEmbedding,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Parses a Hugging Face `config.json` (`file` names it in errors).
    pub fn from_hf_json(json: &serde_json::Value, file: &str) -> Result<Self> {
        let cfg: BertConfig = serde_json::from_value(json.clone())
            .map_err(|e| Error::Invalid(format!("{file}: {e}")))?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks the fields; errors name the field.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::Invalid(format!("{file}: field `{field}`: {msg}")))
        };
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if self.position_embedding_type != PositionEmbedding::Absolute {
            return bad(
                "position_embedding_type",
                format!(
                    "{:?} is not supported (absolute)",
                    self.position_embedding_type
                ),
            );
        }
        if self.type_vocab_size == 0 || self.max_position_embeddings == 0 {
            return bad(
                "type_vocab_size/max_position_embeddings",
                "must be positive".into(),
            );
        }
        Ok(())
    }

    /// all-MiniLM-L6-v2 as in its `config.json`.
    pub fn all_minilm_l6_v2() -> Self {
        BertConfig {
            vocab_size: 30_522,
            hidden_size: 384,
            num_hidden_layers: 6,
            num_attention_heads: 12,
            intermediate_size: 1536,
            hidden_act: Activation::Gelu,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: PositionEmbedding::Absolute,
        }
    }

    /// A tiny configuration for tests.
    pub fn tiny() -> Self {
        BertConfig {
            vocab_size: 64,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 48,
            hidden_act: Activation::Gelu,
            max_position_embeddings: 32,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: PositionEmbedding::Absolute,
        }
    }

    /// A randomly initialised model.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let ln = || LayerNorm::ones(h, self.layer_norm_eps, device);
        let normal = burn::tensor::Distribution::Normal(0.0, 0.5);
        Bert {
            word: Tensor::random([self.vocab_size, h], normal, device),
            position: Tensor::random([self.max_position_embeddings, h], normal, device),
            token_type: Tensor::random([self.type_vocab_size, h], normal, device),
            embed_norm: ln(),
            layers: (0..self.num_hidden_layers)
                .map(|_| BertLayer {
                    qkv: Dense::random(h, 3 * h, true, device),
                    attn_out: Dense::random(h, h, true, device),
                    attn_norm: ln(),
                    inter: Dense::random(h, i, true, device),
                    out: Dense::random(i, h, true, device),
                    out_norm: ln(),
                })
                .collect(),
            heads: self.num_attention_heads,
            act: self.hidden_act,
        }
    }

    /// Loads the weights from `src` (Hugging Face names, optionally under `bert.`; old
    /// checkpoints' `LayerNorm.gamma`/`beta` are accepted too). Every tensor is shape-checked.
    pub fn load<B: Backend>(&self, src: &dyn TensorSource, device: &B::Device) -> Result<Bert<B>> {
        let p = if src.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let r = WeightReader::<B> { src, device };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let ln = |name: &str| -> Result<LayerNorm<B>> {
            let (w, b) = if src.contains(&format!("{name}.gamma")) {
                ("gamma", "beta")
            } else {
                ("weight", "bias")
            };
            Ok(LayerNorm {
                gamma: burn::module::Param::from_tensor(r.vector(&format!("{name}.{w}"), h)?),
                beta: burn::module::Param::from_tensor(r.vector(&format!("{name}.{b}"), h)?),
                eps: self.layer_norm_eps,
            })
        };
        let mut layers = Vec::with_capacity(self.num_hidden_layers);
        for l in 0..self.num_hidden_layers {
            let q = format!("{p}encoder.layer.{l}");
            let a = format!("{q}.attention.self");
            layers.push(BertLayer {
                qkv: r.dense_fused(
                    &[
                        &format!("{a}.query"),
                        &format!("{a}.key"),
                        &format!("{a}.value"),
                    ],
                    h,
                    &[h, h, h],
                    true,
                )?,
                attn_out: r.dense(&format!("{q}.attention.output.dense"), h, h, true)?,
                attn_norm: ln(&format!("{q}.attention.output.LayerNorm"))?,
                inter: r.dense(&format!("{q}.intermediate.dense"), h, i, true)?,
                out: r.dense(&format!("{q}.output.dense"), i, h, true)?,
                out_norm: ln(&format!("{q}.output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word: r.matrix(
                &format!("{p}embeddings.word_embeddings.weight"),
                self.vocab_size,
                h,
            )?,
            position: r.matrix(
                &format!("{p}embeddings.position_embeddings.weight"),
                self.max_position_embeddings,
                h,
            )?,
            token_type: r.matrix(
                &format!("{p}embeddings.token_type_embeddings.weight"),
                self.type_vocab_size,
                h,
            )?,
            embed_norm: ln(&format!("{p}embeddings.LayerNorm"))?,
            layers,
            heads: self.num_attention_heads,
            act: self.hidden_act,
        })
    }
}

/// One post-LN encoder block.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// query, key and value fused: `[hidden, 3 hidden]`.
    qkv: Dense<B>,
    attn_out: Dense<B>,
    attn_norm: LayerNorm<B>,
    inter: Dense<B>,
    out: Dense<B>,
    out_norm: LayerNorm<B>,
}

/// One block's weights for the packed host forward: matrices borrowed in place, biases and
/// norms (`gamma`, `beta`, `eps`) as host vectors (missing biases are zeros).
struct HostLayer<B: Backend> {
    qkv: host::HostMatrix<B>,
    qkv_b: Vec<f32>,
    attn_out: host::HostMatrix<B>,
    attn_out_b: Vec<f32>,
    attn_norm: (Vec<f32>, Vec<f32>, f32),
    inter: host::HostMatrix<B>,
    inter_b: Vec<f32>,
    out: host::HostMatrix<B>,
    out_b: Vec<f32>,
    out_norm: (Vec<f32>, Vec<f32>, f32),
}

impl<B: Backend> HostLayer<B> {
    fn new(l: &BertLayer<B>) -> Self {
        let bias = |d: &Dense<B>| {
            d.bias
                .as_ref()
                .map_or_else(|| vec![0.0; d.d_out()], |b| host::to_vec(b.val()))
        };
        let norm = |n: &LayerNorm<B>| {
            (
                host::to_vec(n.gamma.val()),
                host::to_vec(n.beta.val()),
                n.eps as f32,
            )
        };
        HostLayer {
            qkv: host::HostMatrix::new(l.qkv.weight.val()),
            qkv_b: bias(&l.qkv),
            attn_out: host::HostMatrix::new(l.attn_out.weight.val()),
            attn_out_b: bias(&l.attn_out),
            attn_norm: norm(&l.attn_norm),
            inter: host::HostMatrix::new(l.inter.weight.val()),
            inter_b: bias(&l.inter),
            out: host::HostMatrix::new(l.out.weight.val()),
            out_b: bias(&l.out),
            out_norm: norm(&l.out_norm),
        }
    }
}

/// Splits the sequences into at most `threads` runs of whole sequences with about equal work
/// (index ranges into `lengths`); one run when there is one thread or one sequence. A
/// sequence of `len` tokens counts `len · (ATTENTION_WEIGHT + len)`: the matmuls are linear in
/// its length, attention quadratic.
fn thread_groups(lengths: &[usize], threads: usize) -> Vec<std::ops::Range<usize>> {
    /// Sequence length at which attention costs about as much as the matmuls (measured share
    /// of attention at the benchmark's ~33 tokens: ~10%).
    const ATTENTION_WEIGHT: usize = 330;
    let cost = |len: usize| len * (ATTENTION_WEIGHT + len);
    let total: usize = lengths.iter().map(|&l| cost(l)).sum();
    let parts = threads.min(lengths.len()).max(1);
    let mut groups = Vec::with_capacity(parts);
    let (mut start, mut seen) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        seen += cost(len);
        // Close a run once it reaches its share of the work.
        if groups.len() + 1 < parts && seen * parts >= total * (groups.len() + 1) {
            groups.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < lengths.len() {
        groups.push(start..lengths.len());
    }
    groups
}

/// A BERT encoder without its pooler.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    /// `[vocab, hidden]`.
    word: Tensor<B, 2>,
    /// `[max_positions, hidden]`.
    position: Tensor<B, 2>,
    /// `[type_vocab, hidden]`.
    token_type: Tensor<B, 2>,
    embed_norm: LayerNorm<B>,
    layers: Vec<BertLayer<B>>,
    heads: usize,
    #[module(skip)]
    act: Activation,
}

impl<B: Backend> Bert<B> {
    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.word.dims()[1]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.word.dims()[0]
    }

    /// Longest input the position table allows.
    pub fn max_len(&self) -> usize {
        self.position.dims()[0]
    }

    /// Last hidden states (after the last block's LayerNorm).
    ///
    /// Runs packed: the real tokens of all sequences are concatenated into one `[tokens,
    /// hidden]` matrix, so no matmul, activation or norm is spent on padding, and each token
    /// attends only within its own sequence (the same result as the padded, masked computation
    /// at every real position; [`Bert::forward_padded`] is that reference). The matmuls run on
    /// host buffers straight through the `gemm` crate with the weights borrowed from Flex's
    /// storage (other backends: their own matmul), everything between them as fused host
    /// kernels ([`super::layers::host`]); with several rayon threads each takes a group of
    /// whole sequences through the whole stack, with single-threaded matmuls. Padding
    /// positions of the output are zero.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded, `seq ≤ max_position_embeddings`
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, s] = ids.dims();
        let device = ids.device();
        let h = self.hidden_size();
        let Some(batch) = host::PackedBatch::new(&ids, &mask) else {
            return self.forward_padded(ids, mask);
        };
        let mut x = self.embed_packed(&batch, &device); // [tokens, hidden]
        let layers: Vec<HostLayer<B>> = self.layers.iter().map(HostLayer::new).collect();
        let groups = thread_groups(&batch.lengths, rayon::current_num_threads());
        if groups.len() > 1 {
            // One group of whole sequences per thread, each through the whole stack with
            // single-threaded matmuls: no synchronisation between the threads until the end.
            let mut spans = Vec::with_capacity(groups.len());
            let mut rest = x.as_mut_slice();
            for g in groups {
                let lengths = &batch.lengths[g];
                let (mine, tail) = rest.split_at_mut(lengths.iter().sum::<usize>() * h);
                spans.push((mine, lengths));
                rest = tail;
            }
            spans.into_par_iter().for_each(|(xs, lengths)| {
                self.encode_packed(&layers, xs, lengths, host::Threads::One, &device)
            });
        } else {
            self.encode_packed(&layers, &mut x, &batch.lengths, host::Threads::All, &device);
        }
        host::unpack::<B>(&x, &batch.lengths, s, h, &device)
    }

    /// `LN(word + position + token_type 0)` of every packed token, `[tokens, hidden]`: rows
    /// copied straight from the tables on Flex, Burn's `select` elsewhere.
    fn embed_packed(&self, batch: &host::PackedBatch, device: &B::Device) -> Vec<f32> {
        let h = self.hidden_size();
        let total = batch.total();
        let views = (
            host::HostView::of(self.word.clone()),
            host::HostView::of(self.position.clone()),
            host::HostView::of(self.token_type.clone()),
        );
        let in_range = batch
            .ids
            .iter()
            .all(|&t| t >= 0 && (t as usize) < self.vocab_size())
            && batch.positions.iter().all(|&p| p < self.max_len());
        let mut x = match views {
            (Some(word), Some(pos), Some(tt)) if in_range => {
                let (word, pos, tt) = (word.as_slice(), pos.as_slice(), &tt.as_slice()[..h]);
                let mut x = vec![0f32; total * h];
                for ((row, &id), &p) in x.chunks_exact_mut(h).zip(&batch.ids).zip(&batch.positions)
                {
                    let (w, q) = (&word[id as usize * h..][..h], &pos[p * h..][..h]);
                    for (((o, a), b), c) in row.iter_mut().zip(w).zip(q).zip(tt) {
                        *o = a + b + c;
                    }
                }
                x
            }
            _ => {
                let int = |v: Vec<i64>| {
                    Tensor::<B, 1, Int>::from_data(TensorData::new(v, [total]), device)
                };
                let positions = batch.positions.iter().map(|&p| p as i64).collect();
                host::to_vec(
                    self.word.clone().select(0, int(batch.ids.clone()))
                        + self.position.clone().select(0, int(positions))
                        + self.token_type.clone().narrow(0, 0, 1),
                )
            }
        };
        let n = &self.embed_norm;
        host::layer_norm(
            &mut x,
            &host::to_vec(n.gamma.val()),
            &host::to_vec(n.beta.val()),
            n.eps as f32,
        );
        x
    }

    /// All blocks over the packed tokens `x` (`[sum(lengths), hidden]`, updated in place) of
    /// the sequences `lengths`: four matmuls per block straight on host buffers, the residuals
    /// accumulated by the matmuls themselves, and the rest as fused host passes (attention,
    /// bias + LayerNorm, bias + GELU).
    fn encode_packed(
        &self,
        layers: &[HostLayer<B>],
        x: &mut [f32],
        lengths: &[usize],
        threads: host::Threads,
        device: &B::Device,
    ) {
        let h = self.hidden_size();
        let t: usize = lengths.iter().sum();
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut qkv = vec![0f32; t * 3 * h];
        let mut inner = Vec::new();
        for l in layers {
            let i = l.inter_b.len();
            inner.resize(t * i, 0.0);
            l.qkv
                .matmul(&mut qkv, x, t, h, 3 * h, false, threads, device); // [t, 3h], no bias
            let ctx = host::packed_attention(&qkv, &l.qkv_b, lengths, self.heads, d, scale); // [t, h]
            l.attn_out.matmul(x, &ctx, t, h, h, true, threads, device); // x += ctx Wo
            host::bias_layer_norm(
                x,
                &l.attn_out_b,
                &l.attn_norm.0,
                &l.attn_norm.1,
                l.attn_norm.2,
            );
            l.inter
                .matmul(&mut inner, x, t, h, i, false, threads, device); // [t, inter]
            if self.act == Activation::Gelu {
                host::bias_gelu(&mut inner, &l.inter_b);
            } else {
                host::add_bias(&mut inner, &l.inter_b);
                let y = self
                    .act
                    .apply(host::tensor::<B>(std::mem::take(&mut inner), t, i, device));
                inner = host::to_vec(y);
            }
            l.out.matmul(x, &inner, t, i, h, true, threads, device); // x += inner Wout
            host::bias_layer_norm(x, &l.out_b, &l.out_norm.0, &l.out_norm.1, l.out_norm.2);
        }
    }

    /// The padded reference computation with Burn tensor ops (masked attention over
    /// `[batch, seq]`); [`Bert::forward`] gives the same values at real positions.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded, `seq ≤ max_position_embeddings`
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward_padded(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, s] = ids.dims();
        let device = ids.device();
        let lengths = mask_lengths(&mask);
        let attn_mask = attention_mask::<B>(&lengths, s, AttentionKind::Bidirectional, &device);
        let h = self.hidden_size();
        let word = self
            .word
            .clone()
            .select(0, ids.reshape([b * s]))
            .reshape([b, s, h]);
        let pos = self.position.clone().narrow(0, 0, s) + self.token_type.clone().narrow(0, 0, 1); // [seq, hidden]
        let mut x = self.embed_norm.forward(word + pos.unsqueeze_dim::<3>(0)); // [batch, seq, hidden]
        let d = h / self.heads;
        let scale = 1.0 / (d as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(x.clone()); // [batch, seq, 3 hidden]
            let q = split_heads(qkv.clone().narrow(2, 0, h), self.heads, d); // [batch, heads, seq, d]
            let k = split_heads(qkv.clone().narrow(2, h, h), self.heads, d);
            let v = split_heads(qkv.narrow(2, 2 * h, h), self.heads, d);
            let ctx = merge_heads(sdpa(q, k, v, attn_mask.clone(), scale)); // [batch * seq, hidden]
            x = layer
                .attn_norm
                .forward(x + layer.attn_out.forward2(ctx).reshape([b, s, h]));
            let inner = self.act.apply(layer.inter.forward(x.clone())); // [batch, seq, inter]
            x = layer.out_norm.forward(x + layer.out.forward(inner));
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend as B;

    #[test]
    fn thread_groups_cover_every_sequence_once_with_balanced_work() {
        assert_eq!(thread_groups(&[5, 5, 5, 5], 2), vec![0..2, 2..4]);
        assert_eq!(thread_groups(&[7], 2), vec![0..1]);
        assert_eq!(thread_groups(&[3, 4], 1), vec![0..2]);
        assert!(thread_groups(&[], 2).is_empty());
        // Longer sequences weigh more than their tokens: the run of long ones is shorter.
        let lengths: Vec<usize> = (1..=40).map(|i| i * 10).collect();
        let g = thread_groups(&lengths, 2);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].start, g[0].end, g[1].end), (0, g[1].start, 40));
        assert!(g[0].len() > g[1].len(), "{g:?}");
    }

    /// Packed vs padded forward of a tiny random model on backend `Bk`, batch of mixed lengths.
    fn check_packed_equals_padded<Bk: Backend>() {
        let dev = Default::default();
        let model = BertConfig::tiny().init::<Bk>(&dev);
        let lengths = [5usize, 2, 7, 1];
        let s = 7;
        let mut ids = vec![0i64; lengths.len() * s];
        let mut mask = vec![0i64; lengths.len() * s];
        for (b, &len) in lengths.iter().enumerate() {
            for p in 0..len {
                ids[b * s + p] = ((b * 11 + p * 7) % 64) as i64;
                mask[b * s + p] = 1;
            }
        }
        let t = |v: Vec<i64>| {
            Tensor::<Bk, 2, Int>::from_data(TensorData::new(v, [lengths.len(), s]), &dev)
        };
        let packed: Vec<f32> = model
            .forward(t(ids.clone()), t(mask.clone()))
            .to_data()
            .to_vec()
            .unwrap();
        let padded: Vec<f32> = model
            .forward_padded(t(ids), t(mask))
            .to_data()
            .to_vec()
            .unwrap();
        let h = model.hidden_size();
        for (b, &len) in lengths.iter().enumerate() {
            for p in 0..s {
                for c in 0..h {
                    let i = (b * s + p) * h + c;
                    if p < len {
                        assert!(
                            (packed[i] - padded[i]).abs() < 1e-4,
                            "seq {b} pos {p} dim {c}: {} vs {}",
                            packed[i],
                            padded[i]
                        );
                    } else {
                        assert_eq!(packed[i], 0.0, "padding is zero");
                    }
                }
            }
        }
    }

    #[test]
    fn packed_forward_equals_padded_forward_at_real_positions() {
        // Flex: weights borrowed in place, one group of sequences per thread.
        check_packed_equals_padded::<B>();
        // One thread: the whole batch in one group, multi-threaded matmuls.
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(check_packed_equals_padded::<B>);
        // A backend whose tensors are not Flex's: the backend's matmul instead of gemm.
        check_packed_equals_padded::<crate::CpuAutodiff>();
    }
}
