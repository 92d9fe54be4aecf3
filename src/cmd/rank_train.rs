//! `learnrec rank-train` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`rank-train` is not implemented yet")
}
