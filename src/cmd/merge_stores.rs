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
    eprintln!("merged {} stores: {} rows of dim {} -> {}", paths.len(), store.len(), store.dim, args.out.display());
    Ok(())
}
