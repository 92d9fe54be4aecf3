//! `learnrec neighbors` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`neighbors` is not implemented yet")
}
