//! `learnrec neighbors`: I2I retrieval by cosine over a content store.

use learnrec_eval::store::EmbeddingStore;
use learnrec_model::embed::nearest;
use learnrec_model::text::TextTemplate;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Content (or item) embedding store.
    #[arg(long)]
    pub store: PathBuf,
    /// Query item id.
    #[arg(long)]
    pub item: String,
    /// Number of neighbours.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Catalog (JSON Lines of items) to print each item's fields.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = EmbeddingStore::load(&args.store)?;
    let hits = nearest(&store, &args.item, args.k)?;
    let catalog = args
        .catalog
        .as_deref()
        .map(super::embed::read_items)
        .transpose()?;
    let text = |id: &str| -> String {
        catalog
            .as_ref()
            .and_then(|c| c.iter().find(|i| i.id == id))
            .map(|i| TextTemplate::default().render(i))
            .unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "query\t{}\t{}", args.item, text(&args.item))?;
    for (rank, (id, cos)) in hits.iter().enumerate() {
        writeln!(out, "{}\t{id}\t{cos:.4}\t{}", rank + 1, text(id))?;
    }
    Ok(())
}
