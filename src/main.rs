//! The `learnrec` command line: thin, one subcommand per pipeline stage.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// LEARN (LLM-to-Rec knowledge adaptation) as a plug-in for industrial ranking models.
#[derive(Debug, Parser)]
#[command(name = "learnrec", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the synthetic e-commerce world (catalog, interactions, oracle parameters).
    World(cmd::world::Args),
    /// Profile a dataset: counts, time range, sequence lengths, segment proportions.
    Stats(cmd::stats::Args),
    /// Fetch real assets (MovieLens-1M, MiniLM, Gemma-3-270M, Qwen2.5-1.5B) and verify them.
    Fetch(cmd::fetch::Args),
    /// Content extraction: embed item texts with a frozen LLM or BERT into a content store.
    Embed(cmd::embed::Args),
    /// Merge shard stores written by `embed --shard I/N`.
    MergeStores(cmd::merge_stores::Args),
    /// I2I retrieval by cosine over a content store.
    Neighbors(cmd::neighbors::Args),
    /// Per-user history/target sequences (train and test) for the LEARN towers.
    Sequences(cmd::sequences::Args),
    /// Train the LEARN towers (PCH) with the dense all-action loss.
    Train(cmd::train::Args),
    /// Retrieval metrics (H@K, R@K, N@K) of trained towers, overall and per segment.
    RetrievalEval(cmd::retrieval_eval::Args),
    /// Export LEARN user and item embedding stores for the ranker.
    Export(cmd::export::Args),
    /// Train baseline and fused rankers and write test predictions for `fusion-eval`.
    RankTrain(cmd::rank_train::Args),
    /// Serving latency of the baseline and fused rankers (HDR histogram).
    BenchServe(cmd::bench_serve::Args),
    /// Simulate an A/B test of ranking policies (built-in or trained rankers) and write a report.
    AbSim(cmd::ab_sim::Args),
    /// Run the whole pipeline and write a report directory.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    cmd::finish(dispatch(Cli::parse().command))
}

/// Runs `learnrec ARGS…` in-process (the demo chains stages this way, so each stage is exactly
/// the command a user would type).
pub(crate) fn run_argv<S: AsRef<str>>(args: &[S]) -> anyhow::Result<()> {
    let argv = std::iter::once("learnrec").chain(args.iter().map(|a| a.as_ref()));
    let cli = Cli::try_parse_from(argv)?;
    dispatch(cli.command)
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::World(a) => cmd::world::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Fetch(a) => cmd::fetch::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::MergeStores(a) => cmd::merge_stores::run(a),
        Command::Neighbors(a) => cmd::neighbors::run(a),
        Command::Sequences(a) => cmd::sequences::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::RetrievalEval(a) => cmd::retrieval_eval::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::RankTrain(a) => cmd::rank_train::run(a),
        Command::BenchServe(a) => cmd::bench_serve::run(a),
        Command::AbSim(a) => cmd::ab_sim::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
