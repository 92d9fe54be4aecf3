//! `learnrec retrieval-eval`: H@K, R@K and N@K of trained towers, overall and per user and item
//! segment.
//!
//! Segments: a user's segment comes from the length of their history (interactions in the
//! lookback window); an item's from how often it occurs in all histories of the file — a proxy for
//! the paper's conversion count, which the sequences file does not carry (departure).

use anyhow::Context;
use learnrec_eval::data::IdMap;
use learnrec_eval::segment::{Segment, Thresholds};
use learnrec_model::CpuBackend;
use learnrec_model::towers::io::{self, UnknownItems};
use learnrec_model::towers::retrieval::{self, DEFAULT_KS};
use learnrec_model::towers::train::{Checkpoint, checkpoint_path};
use learnrec_model::towers::{ItemFeatures, UserSequence};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory written by `learnrec train` (checkpoint.bin, items.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation sequences (JSON Lines: user, history, target).
    #[arg(long)]
    pub sequences: PathBuf,
    /// Content store (required for content input).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Cut-offs K.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_KS)]
    pub ks: Vec<usize>,
    /// Never retrieve an item of the user's own history.
    #[arg(long)]
    pub exclude_history: bool,
    /// Write the report as JSON here (stdout gets a table either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Users per matmul chunk.
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
}

/// Loads a trained model directory: checkpoint, item vocabulary, item features.
pub fn load_model(
    dir: &Path,
    content: Option<&Path>,
) -> anyhow::Result<(Checkpoint, learnrec_model::towers::LearnTower<CpuBackend>, IdMap, ItemFeatures)> {
    let p = checkpoint_path(dir);
    let ck = Checkpoint::load(&p)?;
    let model = ck.model::<CpuBackend>(&Default::default(), &p)?;
    let items = io::load_items(dir)?;
    let features = if ck.meta.config.tower.input.is_content() {
        let c = content.context("`--content` is required: the model reads content embeddings")?;
        let store = learnrec_eval::store::EmbeddingStore::load(c)?;
        ItemFeatures::from_store(&store, &items, c)?
    } else {
        ItemFeatures::Ids { n_items: items.len() }
    };
    Ok((ck, model, items, features))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.ks.is_empty() || a.ks.contains(&0) {
        anyhow::bail!("`--ks` must list positive cut-offs");
    }
    let (ck, model, mut items, features) = load_model(&a.model, a.content.as_deref())?;
    // Items the model has never seen (new items for an ID model) cannot be embedded: they stay
    // as targets (every such target is a miss, as it would be in serving) and are dropped from
    // histories; both are counted and printed.
    let n_known = items.len();
    let mut users = IdMap::new();
    let mut seqs = io::read_sequences(&a.sequences, &mut users, &mut items, UnknownItems::Intern)?;
    let (mut unknown_hist, mut unknown_tgt) = (0usize, 0usize);
    for s in &mut seqs {
        let before = s.history.len();
        s.history.retain(|&i| (i as usize) < n_known);
        unknown_hist += before - s.history.len();
        unknown_tgt += s.target.iter().filter(|&&i| i as usize >= n_known).count();
    }
    if unknown_hist + unknown_tgt > 0 {
        eprintln!(
            "note: {} item ids in {} are unknown to the model ({} history entries dropped, {} targets kept as unreachable misses)",
            items.len() - n_known,
            a.sequences.display(),
            unknown_hist,
            unknown_tgt
        );
    }
    let dev = Default::default();
    let cfg = &ck.meta.config;
    let eval: Vec<&UserSequence> = seqs.iter().filter(|s| !s.history.is_empty()).collect();
    let skipped_no_history = seqs.len() - eval.len();
    let ue = retrieval::user_embeddings(&model, &eval, &features, cfg.train.history_len, 64, &dev)?;
    let pool: Vec<u32> = (0..n_known as u32).collect();
    let ie = retrieval::item_embeddings(&model, &pool, &features, cfg.tower.item_tower, 256, &dev)?;
    let kmax = *a.ks.iter().max().expect("non-empty");
    let exclude: Option<Vec<Vec<usize>>> =
        a.exclude_history.then(|| eval.iter().map(|s| s.history.iter().map(|&i| i as usize).collect()).collect());
    let ranked = retrieval::top_k::<CpuBackend>(&ue, &ie, kmax, exclude.as_deref(), a.chunk, &dev)?;
    let targets: Vec<Vec<usize>> = eval.iter().map(|s| s.target.iter().map(|&i| i as usize).collect()).collect();
    let th = Thresholds::default();
    let useg: Vec<Segment> = eval.iter().map(|s| th.user(s.history.len() as u64)).collect();
    let mut counts = vec![0u64; items.len()];
    for s in &seqs {
        for &i in &s.history {
            counts[i as usize] += 1;
        }
    }
    let iseg: Vec<Segment> = counts.iter().map(|&c| th.item(c)).collect();
    let rep = retrieval::evaluate(&ranked, &targets, &a.ks, &useg, &iseg)?;
    println!("users evaluated {} (skipped: {} without target, {} without history), item pool {}", rep.users, rep.skipped_users, skipped_no_history, n_known);
    println!("{:<22} {:>6} {:>8} {:>8} {:>8}", "slice", "K", "H@K", "R@K", "N@K");
    for m in &rep.overall {
        println!("{:<22} {:>6} {:>8.4} {:>8.4} {:>8.4}", "overall", m.k, m.hit, m.recall, m.ndcg);
    }
    for (s, (n, v)) in &rep.by_user_segment {
        for m in v {
            println!("{:<22} {:>6} {:>8.4} {:>8.4} {:>8.4}", format!("user {s} ({n})"), m.k, m.hit, m.recall, m.ndcg);
        }
    }
    for (s, (n, v)) in &rep.by_item_segment {
        for m in v {
            println!("{:<22} {:>6} {:>8} {:>8.4} {:>8}", format!("item {s} ({n} pairs)"), m.k, "-", m.recall, "-");
        }
    }
    if let Some(out) = &a.out {
        learnrec_eval::atomic::write(out, &serde_json::to_vec_pretty(&rep)?)?;
    }
    Ok(())
}
