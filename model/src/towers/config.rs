//! Configuration of the LEARN towers (PCH) and of their training.
//!
//! Defaults follow the paper (12 layers, d = 768, 12 heads, output 64, history 80, target 40,
//! Adam lr 5e-5 with 10% linear warm-up then cosine, 10 epochs) and the official code
//! (adxcreative/LEARN: BERT-like post-LN encoder, no positional embedding, logit scale 20).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// What the tower reads at each sequence position (the paper's input-embedding ablation rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A learned item-id embedding table (the paper's "ID" row); row 0 is padding.
    Id,
    /// Frozen content embeddings of a BERT encoder (a content `EmbeddingStore`).
    BertContent,
    /// Frozen content embeddings of an LLM (CEG output, a content `EmbeddingStore`).
    LlmContent,
}

impl InputKind {
    /// Whether the input is a frozen content store (BERT or LLM).
    pub fn is_content(self) -> bool {
        !matches!(self, InputKind::Id)
    }
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Id => "id",
            InputKind::BertContent => "bert-content",
            InputKind::LlmContent => "llm-content",
        }
    }
}

/// How item embeddings are computed (the paper's item-tower variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemTowerVariant {
    /// Variant 1 (default): the user tower's module and weights over the target sequence with the
    /// causal mask; at inference one item (length 1).
    SharedCausal,
    /// Variant 2: the same module, but each target item attends only to itself (diagonal mask).
    SharedDiagonal,
    /// Variant 3: the raw (frozen, L2-normalised) content embedding is the item embedding. To
    /// make users comparable, the user tower's output projection maps to the content dimension
    /// (no truncation; `output_dim` is ignored). The paper reports that it cannot train.
    RawContent,
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// The paper's dense all-action InfoNCE: every (history position, target item) pair of a user
    /// is a positive; the other users' target items are the negatives.
    DenseAllAction,
    /// The official code's simplified loss: the user embedding at the last history position, the
    /// first target item, in-batch negatives (a comparison row).
    LastPosition,
}

/// Attention mask of the tower's self-attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionMask {
    /// Position j attends to positions 0..=j (user tower, item tower variant 1).
    Causal,
    /// Position j attends only to itself (item tower variant 2).
    Diagonal,
}

/// The LEARN tower architecture (PCH).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TowerConfig {
    /// What each position reads.
    pub input: InputKind,
    /// Input dimension: the content store's dim, or the ID table's dim for [`InputKind::Id`].
    pub input_dim: usize,
    /// Number of items (ID table rows, padding excluded); used only by [`InputKind::Id`].
    pub n_items: usize,
    /// Hidden size d (paper: 768).
    pub d_model: usize,
    /// Transformer layers (paper: 12).
    pub n_layers: usize,
    /// Attention heads (paper: 12).
    pub n_heads: usize,
    /// Feed-forward size (BERT: 4·d).
    pub d_ff: usize,
    /// Output dimension of user and item embeddings (paper: 64).
    pub output_dim: usize,
    /// Dropout in the encoder (BERT: 0.1). learnrec defaults to 0 (a departure: with dropout the
    /// run is still reproducible, since the backend RNG is re-seeded from (seed, step) each step).
    pub dropout: f64,
    /// Learned absolute positions (an option; the official code has none and relies on the
    /// causal mask).
    pub learned_positions: bool,
    /// Largest sequence length when `learned_positions` is on.
    pub max_len: usize,
    /// LayerNorm epsilon (BERT: 1e-12).
    pub layer_norm_eps: f64,
    /// Item tower variant.
    pub item_tower: ItemTowerVariant,
}

impl Default for TowerConfig {
    fn default() -> Self {
        TowerConfig {
            input: InputKind::LlmContent,
            input_dim: 1536,
            n_items: 0,
            d_model: 768,
            n_layers: 12,
            n_heads: 12,
            d_ff: 3072,
            output_dim: 64,
            dropout: 0.0,
            learned_positions: false,
            max_len: 128,
            layer_norm_eps: 1e-12,
            item_tower: ItemTowerVariant::SharedCausal,
        }
    }
}

impl TowerConfig {
    /// The paper's tower (12 layers, d = 768, 12 heads, output 64) over content of `input_dim`.
    pub fn paper(input: InputKind, input_dim: usize) -> Self {
        TowerConfig { input, input_dim, ..Default::default() }
    }

    /// A tiny tower for tests and smoke runs (2 layers, d = 32, 4 heads, output 16).
    pub fn tiny(input: InputKind, input_dim: usize) -> Self {
        TowerConfig {
            input,
            input_dim,
            d_model: 32,
            n_layers: 2,
            n_heads: 4,
            d_ff: 64,
            output_dim: 16,
            ..Default::default()
        }
    }

    /// The dimension of the user and item embeddings this config produces.
    pub fn embedding_dim(&self) -> usize {
        match self.item_tower {
            ItemTowerVariant::RawContent => self.input_dim,
            _ => self.output_dim,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("tower config: {m}")));
        if self.d_model == 0 || self.n_heads == 0 || self.d_model % self.n_heads != 0 {
            return bad(format!(
                "`d_model` ({}) must be a positive multiple of `n_heads` ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.input_dim == 0 || self.d_ff == 0 || self.output_dim == 0 {
            return bad("`input_dim`, `d_ff` and `output_dim` must be positive".into());
        }
        if self.input == InputKind::Id && self.n_items == 0 {
            return bad("input `id` needs `n_items` > 0".into());
        }
        if self.item_tower == ItemTowerVariant::RawContent && !self.input.is_content() {
            return bad("item tower `raw-content` needs a content input (bert-content or llm-content)".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("`dropout` must be in [0, 1), got {}", self.dropout));
        }
        if self.learned_positions && self.max_len == 0 {
            return bad("`max_len` must be positive with learned positions".into());
        }
        Ok(())
    }
}

/// Training hyper-parameters of `learnrec train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs (paper: 10).
    pub epochs: usize,
    /// Users per batch.
    pub batch_size: usize,
    /// Peak learning rate (paper: 5e-5).
    pub lr: f64,
    /// Fraction of all steps used for the linear warm-up (paper: 0.1).
    pub warmup_frac: f64,
    /// Smallest learning rate at the end of the cosine.
    pub min_lr: f64,
    /// Adam epsilon (PyTorch's 1e-8, not Burn's default 1e-5).
    pub adam_eps: f32,
    /// Adam beta1.
    pub beta1: f32,
    /// Adam beta2.
    pub beta2: f32,
    /// History length (paper: 80): the most recent items are kept.
    pub history_len: usize,
    /// Target length (paper: 40): the first items after the history are kept.
    pub target_len: usize,
    /// Cosine-similarity logit scale (official code: 20).
    pub logit_scale: f32,
    /// Loss.
    pub loss: LossKind,
    /// Seed of initialisation, data order and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            lr: 5e-5,
            warmup_frac: 0.1,
            min_lr: 0.0,
            adam_eps: 1e-8,
            beta1: 0.9,
            beta2: 0.999,
            history_len: 80,
            target_len: 40,
            logit_scale: 20.0,
            loss: LossKind::DenseAllAction,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("train config: {m}")));
        if self.epochs == 0 || self.batch_size < 2 {
            return bad(format!(
                "`epochs` must be ≥ 1 and `batch_size` ≥ 2 (in-batch negatives), got {} and {}",
                self.epochs, self.batch_size
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) || self.min_lr < 0.0 || self.min_lr > self.lr {
            return bad(format!("`lr` must be > 0 and 0 ≤ `min_lr` ≤ `lr`, got {} and {}", self.lr, self.min_lr));
        }
        if !(0.0..1.0).contains(&self.warmup_frac) {
            return bad(format!("`warmup_frac` must be in [0, 1), got {}", self.warmup_frac));
        }
        if self.history_len == 0 || self.target_len == 0 {
            return bad("`history_len` and `target_len` must be positive".into());
        }
        if !(self.logit_scale > 0.0 && self.logit_scale.is_finite()) {
            return bad(format!("`logit_scale` must be positive, got {}", self.logit_scale));
        }
        Ok(())
    }

    /// Learning rate at optimiser step `step` (0-based) of `total` steps: linear warm-up from
    /// lr/warmup to lr over the first `warmup_frac` of the steps, then a cosine down to `min_lr`
    /// that stays at `min_lr` after `total` (it never rises again).
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let total = total.max(1) as f64;
        let warm = (self.warmup_frac * total).floor();
        let s = step as f64;
        if s < warm {
            return self.lr * (s + 1.0) / warm;
        }
        let span = (total - warm).max(1.0);
        let t = ((s - warm) / span).clamp(0.0, 1.0);
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Everything `learnrec train` needs: the architecture and the training hyper-parameters.
/// Read from TOML/JSON (`[tower]` and `[train]` tables), then overridden by flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnConfig {
    pub tower: TowerConfig,
    pub train: TrainConfig,
}
