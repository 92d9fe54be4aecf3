//! `learnrec retrieval-eval` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`retrieval-eval` is not implemented yet")
}
