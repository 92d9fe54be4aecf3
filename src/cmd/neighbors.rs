//! `learnrec neighbors`: I2I retrieval by cosine over a content store, for one item (printed like
//! the paper's figure), or for every item as a quantitative check (`--share-field`): how often the
//! top-k neighbours share a catalog value (e.g. a genre) with the query, against random
//! neighbours.

use anyhow::{Context, bail};
use learnrec_eval::i2i::{ShareOptions, field_share};
use learnrec_eval::store::EmbeddingStore;
use learnrec_model::embed::nearest;
use learnrec_model::text::TextTemplate;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Content (or item) embedding store.
    #[arg(long)]
    pub store: PathBuf,
    /// Query item id (prints its top-k neighbours).
    #[arg(
        long,
        required_unless_present = "share_field",
        conflicts_with = "share_field"
    )]
    pub item: Option<String>,
    /// Number of neighbours.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Catalog (CSV, RecBole `*.item` or JSON Lines) to print each item's fields; required with
    /// `--share-field`.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Quantitative I2I check: for every item (or `--queries N` of them), the share of its top-k
    /// neighbours with at least one value of this catalog field in common (e.g. `category`),
    /// against random neighbours.
    #[arg(long)]
    pub share_field: Option<String>,
    /// Characters splitting the field into values.
    #[arg(long, default_value = "|,")]
    pub separators: String,
    /// Evaluate only N queries sampled with `--seed` (default: every item).
    #[arg(long)]
    pub queries: Option<usize>,
    /// Seed of the query sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the share report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = EmbeddingStore::load(&args.store)?;
    if let Some(field) = &args.share_field {
        let Some(cat_path) = &args.catalog else {
            bail!("--share-field needs --catalog (the catalog the store was embedded from)");
        };
        let catalog = super::embed::read_items(cat_path)?;
        let opts = ShareOptions {
            field: field.clone(),
            separators: args.separators.chars().collect(),
            k: args.k,
            queries: args.queries,
            seed: args.seed,
        };
        let report = field_share(&store, &catalog, &cat_path.display().to_string(), &opts)?;
        print!("{}", report.table());
        if let Some(path) = &args.json {
            let mut v = serde_json::to_value(&report)?;
            v["store"] = args.store.display().to_string().into();
            v["model"] = store.meta.get("model").cloned().unwrap_or_default().into();
            v["template"] = store
                .meta
                .get("template")
                .cloned()
                .unwrap_or_default()
                .into();
            let bytes = serde_json::to_vec_pretty(&v)?;
            learnrec_eval::atomic::write(path, &bytes)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let Some(item) = args.item.as_deref() else {
        bail!("give --item ID (or --share-field FIELD for the quantitative check)");
    };
    let hits = nearest(&store, item, args.k)?;
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
    writeln!(out, "query\t{item}\t{}", text(item))?;
    for (rank, (id, cos)) in hits.iter().enumerate() {
        writeln!(out, "{}\t{id}\t{cos:.4}\t{}", rank + 1, text(id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use learnrec_eval::store::{EmbeddingStore, StoreKind};

    /// A store of four items in two clusters and a CSV catalog whose categories follow them.
    fn fixture(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut s = EmbeddingStore::new(StoreKind::Content, 2);
        for (id, v) in [
            ("a", [1.0, 0.0]),
            ("b", [0.9, 0.1]),
            ("c", [0.0, 1.0]),
            ("d", [0.1, 0.9]),
        ] {
            s.insert(id, "h", &v).unwrap();
        }
        let store = dir.join("s.safetensors");
        s.save(&store).unwrap();
        let cat = dir.join("catalog.csv");
        std::fs::write(
            &cat,
            "item_id,title,category,brand,price,keywords,attributes,available_from\n\
             a,A,Action|Comedy,,,,,\nb,B,Action,,,,,\nc,C,Drama,,,,,\nd,D,Drama|Comedy,,,,,\n",
        )
        .unwrap();
        (store, cat)
    }

    #[test]
    fn share_field_writes_the_report_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let (store, catalog) = fixture(dir.path());
        let json = dir.path().join("share.json");
        super::run(super::Args {
            store,
            catalog: Some(catalog),
            share_field: Some("category".into()),
            separators: "|,".into(),
            k: 1,
            json: Some(json.clone()),
            ..Default::default()
        })
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        // Top-1: a→b, b→a, c→d, d→c all share; chance: a shares with b,d; b with a; c with d;
        // d with a,c → (2+1+1+2)/3/4 = 0.5.
        assert_eq!(v["neighbours"]["top1"], 1.0);
        assert_eq!(v["random"]["share_at_k"], 0.5);
        assert_eq!(v["queries"], 4);
    }

    #[test]
    fn share_field_bad_inputs_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (store, catalog) = fixture(dir.path());
        let base = || super::Args {
            store: store.clone(),
            share_field: Some("category".into()),
            separators: "|,".into(),
            k: 3,
            ..Default::default()
        };
        let e = super::run(base()).unwrap_err().to_string();
        assert!(e.contains("--share-field needs --catalog"), "{e}");
        let e = super::run(super::Args {
            catalog: Some(catalog.clone()),
            share_field: Some("genre".into()),
            ..base()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--share-field `genre`: no such field in") && e.contains("catalog.csv"),
            "{e}"
        );
        let other = dir.path().join("other.csv");
        std::fs::write(
            &other,
            "item_id,title,category,brand,price,keywords,attributes,available_from\na,A,X,,,,,\n",
        )
        .unwrap();
        let e = super::run(super::Args {
            catalog: Some(other),
            ..base()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("3 of 4 store ids are not in the catalog") && e.contains("other.csv"),
            "{e}"
        );
    }
}
