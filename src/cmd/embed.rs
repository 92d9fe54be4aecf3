//! `learnrec embed`: content extraction (CEG) — item texts through a frozen LLM/BERT into a
//! content embedding store.

use anyhow::{Context, bail};
use learnrec_eval::data::Item;
use learnrec_model::CpuBackend;
use learnrec_model::backbone::Backbone;
use learnrec_model::embed::{BackboneEncoder, EmbedOptions, embed_items, parse_shard};
use learnrec_model::pooling::Pooling;
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
    /// Embed only shard I of N: the items whose id hashes to I (`fmix64(FNV-1a-64(id)) mod N`).
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

/// Reads a catalog of items: CSV/TSV, RecBole `*.item` (through the shared reader), or JSON
/// Lines of `Item` objects (`.jsonl`, one per line).
pub fn read_items(path: &Path) -> anyhow::Result<Vec<Item>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "jsonl" {
        let opts = learnrec_eval::data::reader::CatalogOptions::default();
        return Ok(learnrec_eval::data::reader::read_catalog(path, &opts)?.items);
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

/// Resolves `--model`: an existing path, or the name of a fetched asset (`minilm`,
/// `gemma3-270m`, `qwen2.5-1.5b`; run `learnrec fetch NAME` first).
pub fn resolve_model(model: &Path) -> anyhow::Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_path_buf());
    }
    let name = model.to_string_lossy();
    let Some(asset) = learnrec_eval::assets::Asset::parse(&name) else {
        bail!("--model {name}: no such file or directory, and not an asset name (minilm, gemma3-270m, qwen2.5-1.5b)");
    };
    let dir = learnrec_eval::assets::path_of(asset);
    let path = if dir.join("model.gguf").exists() { dir.join("model.gguf") } else { dir.clone() };
    if !path.join("config.json").exists() && !path.is_file() {
        bail!("--model {name}: the asset is not fetched yet (expected it in {}); run `learnrec fetch {name}`", dir.display());
    }
    // A corrupted cache is an error, not a silently different model (cheap: files whose size
    // and mtime match their verification stamp are not hashed again).
    learnrec_eval::assets::verify(asset)
        .with_context(|| format!("--model {name}: the cached asset does not verify; run `learnrec fetch {name}` to fetch it again"))?;
    Ok(path)
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
    let model = resolve_model(&args.model)?;
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
    let tokenizer = load_tokenizer(&model, args.max_len)?;
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
    let device = Default::default();
    let t = std::time::Instant::now();
    let (backbone, _config) = Backbone::<CpuBackend>::load(&model, &device)?;
    tokenizer.check_embedding_rows(backbone.vocab_size())?;
    eprintln!("loaded {} ({} hidden) in {:.1}s", model.display(), backbone.hidden_size(), t.elapsed().as_secs_f64());
    let pooling = match args.pooling {
        PoolingArg::Mean => Pooling::Mean,
        PoolingArg::First => Pooling::First,
        PoolingArg::Last => Pooling::Last,
    };
    let encoder = BackboneEncoder { backbone, pooling };
    let report = embed_items(&items, &tokenizer, &encoder, &opts, &args.out)?;
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
