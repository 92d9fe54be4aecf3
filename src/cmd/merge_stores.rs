//! `learnrec merge-stores`: joins the shard stores written by `embed --shard I/N`.

use learnrec_model::embed::merge_stores;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shard stores to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Merged store.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let paths: Vec<&std::path::Path> = args.inputs.iter().map(PathBuf::as_path).collect();
    let store = merge_stores(&paths)?;
    store.save(&args.out)?;
    eprintln!(
        "merged {} stores: {} rows of dim {} -> {}",
        paths.len(),
        store.len(),
        store.dim,
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use learnrec_eval::store::{EmbeddingStore, StoreKind};

    #[test]
    fn merge_then_neighbors_on_tiny_stores() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, rows: &[(&str, [f32; 2])]| {
            let mut s = EmbeddingStore::new(StoreKind::Content, 2);
            s.meta.insert("model".into(), "m".into());
            for (id, v) in rows {
                s.insert(id, &format!("h-{id}"), v).unwrap();
            }
            let p = dir.path().join(name);
            s.save(&p).unwrap();
            p
        };
        let a = mk("a.st", &[("x", [1.0, 0.0]), ("y", [0.0, 1.0])]);
        let b = mk("b.st", &[("z", [1.0, 0.1])]);
        let out = dir.path().join("m.st");
        super::run(super::Args {
            inputs: vec![a, b],
            out: out.clone(),
        })
        .unwrap();
        let m = EmbeddingStore::load(&out).unwrap();
        assert_eq!(m.ids, vec!["x", "y", "z"]);
        assert_eq!(m.get("z"), Some(&[1.0, 0.1][..]));
        let args = crate::cmd::neighbors::Args {
            store: out.clone(),
            item: Some("x".into()),
            k: 1,
            ..Default::default()
        };
        crate::cmd::neighbors::run(args).unwrap();
        let args = crate::cmd::neighbors::Args {
            store: out,
            item: Some("nope".into()),
            k: 1,
            ..Default::default()
        };
        let e = crate::cmd::neighbors::run(args).unwrap_err().to_string();
        assert!(e.contains("`nope` is not in the store"), "{e}");
    }

    #[test]
    fn catalog_reader_takes_jsonl_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(&p, "{\"id\":\"a\",\"title\":\"T\",\"category\":\"\",\"brand\":\"\",\"price\":1.5,\"keywords\":\"\",\"attributes\":\"\",\"extra\":{},\"available_from\":null}\n\n{oops}\n").unwrap();
        let e = crate::cmd::embed::read_items(&p).unwrap_err();
        assert!(format!("{e:#}").contains("c.jsonl: line 3"), "{e:#}");
        let csv = dir.path().join("c.csv");
        std::fs::write(&csv, "item_id\n").unwrap();
        let e = crate::cmd::embed::read_items(&csv).unwrap_err().to_string();
        assert!(e.contains("c.csv") && e.contains("no data rows after the header"), "{e}");
    }
}
