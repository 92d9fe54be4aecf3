//! `learnrec embed`: content extraction (CEG) — item texts through a frozen LLM/BERT into a
//! content embedding store.

use anyhow::{Context, bail};
use learnrec_eval::data::Item;
use learnrec_model::embed::{EmbedOptions, embed_items, parse_shard};
use learnrec_model::gguf::GgufFile;
use learnrec_model::text::TextTemplate;
use learnrec_model::tokenizer::{DEFAULT_MAX_LEN, Tokenizer};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Pooling of the last hidden states (the paper: attention-masked mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolingArg {
    Mean,
    First,
    Last,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a GGUF file, or a Hugging Face directory (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Item catalog (JSON Lines of items; CSV catalogs once the shared reader is wired).
    #[arg(long)]
    pub items: PathBuf,
    /// Output content store (SafeTensors); resumed when it exists.
    #[arg(long)]
    pub out: PathBuf,
    /// Text template with {field} placeholders (default: the paper's six fields).
    #[arg(long)]
    pub template: Option<String>,
    /// Unit printed after the price in the default template ("" for none).
    #[arg(long, default_value = "yuan")]
    pub price_unit: String,
    /// Pooling of the last hidden states.
    #[arg(long, value_enum, default_value_t = PoolingArg::Mean)]
    pub pooling: PoolingArg,
    /// L2-normalise embeddings.
    #[arg(long)]
    pub normalize: bool,
    /// Padded-token budget per batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_tokens: usize,
    /// Maximum tokens per item (special tokens included).
    #[arg(long, default_value_t = DEFAULT_MAX_LEN)]
    pub max_len: usize,
    /// Embed only shard I of N (items at positions p with p % N == I).
    #[arg(long)]
    pub shard: Option<String>,
    /// Also write the embeddings as JSON Lines ({"id":…, "embedding":[…]}).
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// Tokenizer threads (default: available cores, at most 8).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seconds between checkpoints of the store.
    #[arg(long, default_value_t = 60)]
    pub checkpoint_secs: u64,
}

/// Reads a catalog of items: JSON Lines of `Item` (one object per line).
// TODO(merge): CSV / RecBole catalogs go through `learnrec_eval::data::reader::read_catalog`.
pub fn read_items(path: &Path) -> anyhow::Result<Vec<Item>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "jsonl" {
        bail!(
            "{}: only JSON Lines catalogs (.jsonl) are read here until the shared catalog reader is wired",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect()
}

/// The tokenizer of a model path: the GGUF's metadata, or `tokenizer.json` beside/inside it.
pub fn load_tokenizer(model: &Path, max_len: usize) -> anyhow::Result<Tokenizer> {
    let tk = if model.is_dir() {
        Tokenizer::from_file(model.join("tokenizer.json"))?
    } else {
        Tokenizer::from_gguf(&GgufFile::open(model)?)?
    };
    Ok(tk.with_max_len(max_len)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let items = read_items(&args.items)?;
    let template = match &args.template {
        Some(t) => {
            let extra: Vec<String> = items
                .iter()
                .flat_map(|i| i.extra.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            TextTemplate::parse(t, &extra)?
        }
        None => TextTemplate::paper(Some(&args.price_unit)),
    };
    let tokenizer = load_tokenizer(&args.model, args.max_len)?;
    let pooling = format!("{:?}", args.pooling).to_lowercase();
    let mut opts = EmbedOptions {
        model_id: format!(
            "{}|pooling={pooling}|max_len={}",
            args.model.display(),
            args.max_len
        ),
        template,
        normalize: args.normalize,
        batch_tokens: args.batch_tokens,
        shard,
        checkpoint_secs: args.checkpoint_secs,
        progress: true,
        meta: vec![("pooling".into(), pooling)],
        ..Default::default()
    };
    if let Some(w) = args.workers {
        opts.workers = w;
    }
    // TODO(merge): build the backbone for `args.model` (learnrec_model::backbone) with
    // `args.pooling` and pass it as the `ContentEncoder`.
    let encoder: Box<dyn learnrec_model::embed::ContentEncoder> = bail_no_backbone(&args.model)?;
    let report = embed_items(&items, &tokenizer, encoder.as_ref(), &opts, &args.out)?;
    eprintln!(
        "embedded {} items ({} resumed, {} in shard) in {:.1}s: {} tokens, {:.0}% padding, {} batches -> {}",
        report.embedded,
        report.resumed,
        report.items,
        report.seconds,
        report.tokens,
        100.0 * (report.padded_tokens.saturating_sub(report.tokens)) as f64
            / report.padded_tokens.max(1) as f64,
        report.batches,
        args.out.display()
    );
    if let Some(path) = &args.jsonl {
        write_jsonl(
            &learnrec_eval::store::EmbeddingStore::load(&args.out)?,
            path,
        )?;
    }
    Ok(())
}

fn bail_no_backbone(
    model: &Path,
) -> anyhow::Result<Box<dyn learnrec_model::embed::ContentEncoder>> {
    bail!(
        "{}: no backbone is wired into `embed` yet (the backbones land separately)",
        model.display()
    )
}

/// Writes a store as JSON Lines, atomically.
pub fn write_jsonl(
    store: &learnrec_eval::store::EmbeddingStore,
    path: &Path,
) -> anyhow::Result<()> {
    learnrec_eval::atomic::write_with(path, |w| {
        for (r, id) in store.ids.iter().enumerate() {
            let line = serde_json::json!({ "id": id, "embedding": store.row(r) });
            writeln!(w, "{line}")?;
        }
        Ok(())
    })?;
    Ok(())
}
