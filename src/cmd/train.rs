//! `learnrec train`: train the LEARN towers (PCH) with the dense all-action loss.
//!
//! Data: a sequences file (JSON Lines `{"user", "history": [item ids], "target": [item ids]}`)
//! and, for content input, a content store from `learnrec embed`. `learnrec sequences` writes the
//! sequences file from a dataset with the temporal (or per-user) split.

use anyhow::Context;
use clap::ValueEnum;
use learnrec_eval::data::IdMap;
use learnrec_eval::store::EmbeddingStore;
use learnrec_model::towers::io::{self, UnknownItems};
use learnrec_model::towers::{self, InputKind, ItemFeatures, ItemTowerVariant, LearnConfig, LossKind, TrainOptions};
use learnrec_model::CpuAutodiff;
use std::path::PathBuf;

/// Input embeddings (flag values).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InputArg {
    Id,
    BertContent,
    LlmContent,
}

/// Item tower variants (flag values).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ItemTowerArg {
    /// Variant 1: same tower, causal mask over the target sequence.
    SharedCausal,
    /// Variant 2: same tower, each item attends only to itself.
    SharedDiagonal,
    /// Variant 3: raw content embedding as the item embedding.
    RawContent,
}

/// Losses (flag values).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LossArg {
    DenseAllAction,
    LastPosition,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Per-user sequences (JSON Lines: user, history, target).
    #[arg(long)]
    pub sequences: PathBuf,
    /// Content store (`learnrec embed` output); required unless `--input id`.
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Output directory: checkpoint.bin (per epoch), items.json, config.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Config file (TOML or JSON) with `[tower]` and `[train]` tables; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from OUT/checkpoint.bin (same config and data).
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum)]
    pub input: Option<InputArg>,
    #[arg(long, value_enum)]
    pub item_tower: Option<ItemTowerArg>,
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_frac: Option<f64>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub d_model: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    /// Feed-forward size (default 4·d when --d-model is given).
    #[arg(long)]
    pub d_ff: Option<usize>,
    #[arg(long)]
    pub output_dim: Option<usize>,
    /// ID table width for `--input id`.
    #[arg(long)]
    pub id_dim: Option<usize>,
    #[arg(long)]
    pub history_len: Option<usize>,
    #[arg(long)]
    pub target_len: Option<usize>,
    #[arg(long)]
    pub logit_scale: Option<f32>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Add learned absolute positions (the official code has none).
    #[arg(long)]
    pub learned_positions: bool,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many epochs in this run (resume later with --resume).
    #[arg(long)]
    pub max_epochs_this_run: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Applies flag overrides to a config.
pub fn apply_overrides(a: &Args, cfg: &mut LearnConfig) {
    let (t, r) = (&mut cfg.tower, &mut cfg.train);
    if let Some(v) = a.input {
        t.input = match v {
            InputArg::Id => InputKind::Id,
            InputArg::BertContent => InputKind::BertContent,
            InputArg::LlmContent => InputKind::LlmContent,
        };
    }
    if let Some(v) = a.item_tower {
        t.item_tower = match v {
            ItemTowerArg::SharedCausal => ItemTowerVariant::SharedCausal,
            ItemTowerArg::SharedDiagonal => ItemTowerVariant::SharedDiagonal,
            ItemTowerArg::RawContent => ItemTowerVariant::RawContent,
        };
    }
    if let Some(v) = a.loss {
        r.loss = match v {
            LossArg::DenseAllAction => LossKind::DenseAllAction,
            LossArg::LastPosition => LossKind::LastPosition,
        };
    }
    if let Some(v) = a.d_model {
        t.d_model = v;
        t.d_ff = 4 * v;
    }
    macro_rules! set {
        ($($flag:ident => $dst:expr),*) => { $( if let Some(v) = a.$flag { $dst = v; } )* };
    }
    set!(epochs => r.epochs, batch_size => r.batch_size, lr => r.lr, warmup_frac => r.warmup_frac,
         layers => t.n_layers, heads => t.n_heads, d_ff => t.d_ff, output_dim => t.output_dim,
         history_len => r.history_len, target_len => r.target_len, logit_scale => r.logit_scale,
         dropout => t.dropout, seed => r.seed);
    if a.learned_positions {
        t.learned_positions = true;
        t.max_len = t.max_len.max(r.history_len).max(r.target_len);
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = match &a.config {
        Some(p) => io::read_config(p)?,
        None => LearnConfig::default(),
    };
    apply_overrides(&a, &mut cfg);
    let (mut users, mut items) = (IdMap::new(), IdMap::new());
    let (seqs, features) = if cfg.tower.input.is_content() {
        let path = a.content.as_ref().context("`--content` is required for content input (or use `--input id`)")?;
        let store = EmbeddingStore::load(path)?;
        items = IdMap::from_names(store.ids.iter());
        let seqs = io::read_sequences(&a.sequences, &mut users, &mut items, UnknownItems::Reject)?;
        cfg.tower.input_dim = store.dim;
        (seqs, ItemFeatures::from_store(&store, &items, path)?)
    } else {
        let seqs = io::read_sequences(&a.sequences, &mut users, &mut items, UnknownItems::Intern)?;
        if a.id_dim.is_some() || a.config.is_none() {
            cfg.tower.input_dim = a.id_dim.unwrap_or(cfg.tower.d_model);
        }
        cfg.tower.n_items = items.len();
        (seqs, ItemFeatures::Ids { n_items: items.len() })
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    io::save_items(&a.out, &items)?;
    learnrec_eval::atomic::write(&a.out.join("config.json"), &serde_json::to_vec_pretty(&cfg)?)?;
    let opts = TrainOptions {
        out_dir: a.out.clone(),
        resume: a.resume,
        progress: !a.quiet,
        max_epochs_this_run: a.max_epochs_this_run,
    };
    let device = Default::default();
    let (_, rep) = towers::train::<CpuAutodiff>(&cfg, &seqs, &features, &opts, &device)?;
    eprintln!(
        "trained {} epochs ({} steps, {} users skipped for an empty history/target), {:.1} samples/s; epoch losses {:?}; checkpoint {}",
        rep.epochs,
        rep.steps,
        rep.skipped_users,
        rep.samples_per_sec,
        rep.epoch_losses,
        towers::train::checkpoint_path(&a.out).display()
    );
    Ok(())
}
