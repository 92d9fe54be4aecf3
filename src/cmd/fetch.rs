//! `learnrec fetch` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`fetch` is not implemented yet")
}
