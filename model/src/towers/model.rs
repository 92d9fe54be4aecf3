//! The LEARN tower (PCH): content projection → N-layer causal transformer (BERT-like, post-LN)
//! → projection to the output dimension → L2 normalisation.
//!
//! Mirrors the official code (adxcreative/LEARN): `Linear(content → d)`, an HF `BertEncoder`
//! without positional embeddings (order comes only from the causal mask), `Linear(d → out)`,
//! L2 normalisation. Learned absolute positions are an option. Sequences are right-padded: with a
//! causal (or diagonal) mask a valid position never sees a padding position, so no padding mask
//! is needed inside the encoder; padding is masked in the loss and when picking the last position.

use super::attention::{LayerNorm, SelfAttention, SelfAttentionConfig};
use super::config::{AttentionMask, ItemTowerVariant, TowerConfig};
use super::fused::Segment;
use super::fused_linear::{Activation, dense};
use burn::module::{Initializer, Module};
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// BERT's initialiser: N(0, 0.02).
pub(crate) fn bert_init() -> Initializer {
    Initializer::Normal { mean: 0.0, std: 0.02 }
}

/// A `Linear` over `[batch, len, in]` applied as one 2-D matmul on `[batch·len, in]`.
///
/// Burn's `linear` backward for a 3-D input computes the weight gradient as a batched matmul
/// (one `[in, out]` product per batch row, K = len) and then sums over the batch; flattened, it
/// is a single `[in, out]` product with K = batch·len — the same FLOPs at far better GEMM
/// efficiency and without the `[batch, in, out]` temporary.
///
/// # Shapes
/// `x`: `[batch, len, in]` → `[batch, len, out]`.
pub fn linear3<B: Backend>(lin: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, l, d] = x.dims();
    let y = dense(lin, x.reshape([b * l, d]), Activation::Identity);
    let o = y.dims()[1];
    y.reshape([b, l, o])
}

/// What a tower reads: content vectors or item ids.
#[derive(Debug, Clone)]
pub enum TowerInput<B: Backend> {
    /// Content embeddings, `[batch, len, input_dim]` (zeros at padding).
    Content(Tensor<B, 3>),
    /// Item ids + 1, `[batch, len]` (0 = padding).
    Ids(Tensor<B, 2, Int>),
}

impl<B: Backend> TowerInput<B> {
    /// `[batch, len]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            TowerInput::Content(x) => {
                let [b, l, _] = x.dims();
                [b, l]
            }
            TowerInput::Ids(x) => x.dims(),
        }
    }
}

/// One BERT layer (post-LN): `x = LN(x + Attn(x)); x = LN(x + W2·gelu(W1·x))`.
#[derive(Module, Debug)]
pub struct TowerLayer<B: Backend> {
    pub attention: SelfAttention<B>,
    pub norm_attn: LayerNorm<B>,
    pub ff_in: Linear<B>,
    pub ff_out: Linear<B>,
    pub norm_ff: LayerNorm<B>,
    pub dropout: Dropout,
}

impl<B: Backend> TowerLayer<B> {
    fn new(c: &TowerConfig, device: &B::Device) -> Self {
        let lin = |i, o| LinearConfig::new(i, o).with_initializer(bert_init()).init(device);
        TowerLayer {
            attention: SelfAttentionConfig::new(c.d_model, c.n_heads).init(device),
            norm_attn: LayerNorm::new(c.d_model, c.layer_norm_eps, device),
            ff_in: lin(c.d_model, c.d_ff),
            ff_out: lin(c.d_ff, c.d_model),
            norm_ff: LayerNorm::new(c.d_model, c.layer_norm_eps, device),
            dropout: DropoutConfig::new(c.dropout).init(),
        }
    }

    /// # Shapes
    /// `x`: `[batch, len, d]` → `[batch, len, d]`.
    pub fn forward(&self, x: Tensor<B, 3>, mask: AttentionMask) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let seg = Segment { batch: b, len: l, mask };
        self.forward_rows(x.reshape([b * l, d]), &[seg]).reshape([b, l, d])
    }

    /// The layer over stacked blocks of sequences (see [`SelfAttention::forward_rows`]); every
    /// part but the attention works token by token.
    ///
    /// # Shapes
    /// `x`: `[Σ batch·len, d]` → same.
    pub fn forward_rows(&self, x: Tensor<B, 2>, segs: &[Segment]) -> Tensor<B, 2> {
        let a = self.dropout.forward(self.attention.forward_rows(x.clone(), segs));
        let x = self.norm_attn.forward(x + a);
        let f = dense(&self.ff_out, dense(&self.ff_in, x.clone(), Activation::Gelu), Activation::Identity);
        let f = self.dropout.forward(f);
        self.norm_ff.forward(x + f)
    }
}

/// The LEARN tower: user tower, and item tower for variants 1 and 2 (same module and weights).
#[derive(Module, Debug)]
pub struct LearnTower<B: Backend> {
    /// Item-id table (`n_items + 1` rows, row 0 = padding) for the ID input.
    pub id_embedding: Option<Embedding<B>>,
    /// Content projection `input_dim → d`.
    pub content_proj: Linear<B>,
    /// Learned absolute positions (option; none in the official code).
    pub positions: Option<Embedding<B>>,
    pub layers: Vec<TowerLayer<B>>,
    /// Output projection `d → output_dim` (the content dim for item tower variant 3).
    pub output: Linear<B>,
}

impl TowerConfig {
    /// Builds a freshly initialised tower (validates the config first).
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<LearnTower<B>> {
        self.validate()?;
        let lin = |i, o| LinearConfig::new(i, o).with_initializer(bert_init()).init(device);
        let id_embedding = (!self.input.is_content()).then(|| {
            EmbeddingConfig::new(self.n_items + 1, self.input_dim)
                .with_initializer(bert_init())
                .init(device)
        });
        let positions = self.learned_positions.then(|| {
            EmbeddingConfig::new(self.max_len, self.d_model).with_initializer(bert_init()).init(device)
        });
        Ok(LearnTower {
            id_embedding,
            content_proj: lin(self.input_dim, self.d_model),
            positions,
            layers: (0..self.n_layers).map(|_| TowerLayer::new(self, device)).collect(),
            output: lin(self.d_model, self.embedding_dim()),
        })
    }
}

impl<B: Backend> LearnTower<B> {
    /// Embeddings at every position, L2-normalised.
    ///
    /// # Shapes
    /// `input`: `[batch, len, input_dim]` content or `[batch, len]` ids → `[batch, len, out]`.
    pub fn forward(&self, input: TowerInput<B>, mask: AttentionMask) -> Tensor<B, 3> {
        let [b, l] = input.dims();
        let x = self.content(input);
        let h = self.embed(x);
        let out = self.encode_rows(h, &[Segment { batch: b, len: l, mask }]);
        let o = out.dims()[1];
        out.reshape([b, l, o])
    }

    /// Content projection (+ learned positions) of one input, as rows.
    ///
    /// # Shapes
    /// `x`: `[batch, len, input_dim]` → `[batch·len, d]`.
    fn embed(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, l, _] = x.dims();
        let mut h = linear3(&self.content_proj, x); // [b, l, d]
        if let Some(pos) = &self.positions {
            let idx = Tensor::<B, 1, Int>::arange(0..l as i64, &h.device()).unsqueeze::<2>().expand([b, l]);
            h = h + pos.forward(idx);
        }
        let d = h.dims()[2];
        h.reshape([b * l, d])
    }

    /// The layers, output projection and L2 normalisation over stacked rows.
    ///
    /// # Shapes
    /// `h`: `[Σ batch·len, d]` → `[Σ batch·len, out]`.
    fn encode_rows(&self, mut h: Tensor<B, 2>, segs: &[Segment]) -> Tensor<B, 2> {
        for layer in &self.layers {
            h = layer.forward_rows(h, segs);
        }
        l2_normalize(dense(&self.output, h, Activation::Identity))
    }

    fn content(&self, input: TowerInput<B>) -> Tensor<B, 3> {
        match input {
            TowerInput::Content(x) => x,
            TowerInput::Ids(ids) => match &self.id_embedding {
                Some(e) => e.forward(ids),
                // A config mismatch is a programming error: `TowerConfig::init` ties them.
                None => panic!("tower built for content input was given item ids"),
            },
        }
    }

    /// User embeddings over the history and item embeddings over the target (variant 1 or 2) in
    /// one pass: the tokens of both are stacked into one `[B·Lh + B·Lt, ·]` matrix, so every
    /// projection is one matrix product (and each weight gradient one product with K = all
    /// tokens, instead of two products and a sum). Attention stays inside each sequence. Equal
    /// to [`Self::user_sequence`] and [`Self::item_sequence`] up to float rounding (tests).
    ///
    /// # Shapes
    /// `history` → `[batch, Lh, out]`, `target` → `[batch, Lt, out]`.
    pub fn user_and_item_sequences(
        &self,
        history: TowerInput<B>,
        target: TowerInput<B>,
        variant: ItemTowerVariant,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let ([b, lh], [bt, lt]) = (history.dims(), target.dims());
        let item_mask = match variant {
            ItemTowerVariant::SharedDiagonal => AttentionMask::Diagonal,
            _ => AttentionMask::Causal,
        };
        let (xh, xt) = (self.content(history), self.content(target));
        let h = if self.positions.is_none() {
            // One projection over all rows.
            let flat = |x: Tensor<B, 3>| {
                let [b, l, i] = x.dims();
                x.reshape([b * l, i])
            };
            dense(&self.content_proj, Tensor::cat(vec![flat(xh), flat(xt)], 0), Activation::Identity)
        } else {
            Tensor::cat(vec![self.embed(xh), self.embed(xt)], 0)
        };
        let segs = [
            Segment { batch: b, len: lh, mask: AttentionMask::Causal },
            Segment { batch: bt, len: lt, mask: item_mask },
        ];
        let out = self.encode_rows(h, &segs);
        let o = out.dims()[1];
        let users = out.clone().narrow(0, 0, b * lh).reshape([b, lh, o]);
        let items = out.narrow(0, b * lh, bt * lt).reshape([bt, lt, o]);
        (users, items)
    }

    /// User embeddings at every history position (`U_ij`).
    ///
    /// # Shapes
    /// `history` → `[batch, len, out]`.
    pub fn user_sequence(&self, history: TowerInput<B>) -> Tensor<B, 3> {
        self.forward(history, AttentionMask::Causal)
    }

    /// Item embeddings of a target sequence for item tower variants 1 and 2 (`I_ik`).
    /// Variant 3 (raw content) is handled by the caller ([`super::Towers`]).
    ///
    /// # Shapes
    /// `target` → `[batch, len, out]`.
    pub fn item_sequence(&self, target: TowerInput<B>, variant: ItemTowerVariant) -> Tensor<B, 3> {
        let mask = match variant {
            ItemTowerVariant::SharedDiagonal => AttentionMask::Diagonal,
            _ => AttentionMask::Causal,
        };
        self.forward(target, mask)
    }
}

/// L2 normalisation along the last dimension (with a 1e-12 floor on the norm).
///
/// # Shapes
/// `[.., dim]` → same.
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(D - 1).sqrt().clamp_min(1e-12);
    x / norm
}

/// The row at the last valid position of each sequence.
///
/// # Shapes
/// `x`: `[batch, len, dim]`, `lengths`: one per batch row (≥ 1) → `[batch, dim]`.
pub fn last_position<B: Backend>(x: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
    let [b, _, dim] = x.dims();
    let idx: Vec<i64> = lengths.iter().map(|&n| n.saturating_sub(1) as i64).collect();
    let idx = Tensor::<B, 1, Int>::from_data(burn::tensor::TensorData::new(idx, [b]), &x.device());
    let idx = idx.reshape([b, 1, 1]).expand([b, 1, dim]);
    x.gather(1, idx).reshape([b, dim])
}
