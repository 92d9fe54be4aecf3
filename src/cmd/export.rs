//! `learnrec export`: write LEARN user and item embedding stores (SafeTensors, kinds user/item)
//! for the ranker.

use learnrec_eval::data::IdMap;
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use learnrec_model::towers::io::{self, UnknownItems};
use learnrec_model::towers::retrieval;
use learnrec_model::towers::UserSequence;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory written by `learnrec train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Sequences whose histories give the user embeddings (JSON Lines).
    #[arg(long)]
    pub sequences: PathBuf,
    /// Content store (required for content input).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Output user store.
    #[arg(long)]
    pub users_out: PathBuf,
    /// Output item store (every item of the model's vocabulary).
    #[arg(long)]
    pub items_out: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (ck, model, mut items, features) = super::retrieval_eval::load_model(&a.model, a.content.as_deref())?;
    let mut users = IdMap::new();
    let seqs = io::read_sequences(&a.sequences, &mut users, &mut items, UnknownItems::Reject)?;
    let cfg = &ck.meta.config;
    let dev = Default::default();
    let with_hist: Vec<&UserSequence> = seqs.iter().filter(|s| !s.history.is_empty()).collect();
    let ue = retrieval::user_embeddings(&model, &with_hist, &features, cfg.train.history_len, 64, &dev)?;
    let pool: Vec<u32> = (0..items.len() as u32).collect();
    let ie = retrieval::item_embeddings(&model, &pool, &features, cfg.tower.item_tower, 256, &dev)?;
    let meta = |s: &mut EmbeddingStore| {
        s.meta.insert("model".into(), "learn-pch-tower".into());
        s.meta.insert("input".into(), cfg.tower.input.name().into());
        s.meta.insert("config".into(), serde_json::to_string(cfg).unwrap_or_default());
    };
    let mut us = EmbeddingStore::new(StoreKind::User, ue.dim);
    meta(&mut us);
    for (r, s) in with_hist.iter().enumerate() {
        us.insert(users.name(s.user), "", ue.row(r))?;
    }
    let mut is = EmbeddingStore::new(StoreKind::Item, ie.dim);
    meta(&mut is);
    for i in 0..items.len() {
        is.insert(items.name(i as u32), "", ie.row(i))?;
    }
    us.save(&a.users_out)?;
    is.save(&a.items_out)?;
    eprintln!(
        "wrote {} user embeddings ({} users without history skipped) to {} and {} item embeddings to {}",
        us.len(),
        seqs.len() - with_hist.len(),
        a.users_out.display(),
        is.len(),
        a.items_out.display()
    );
    Ok(())
}
