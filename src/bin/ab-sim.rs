//! `ab-sim`: the `learnrec ab-sim` subcommand as its own binary (same flags; see
//! `src/cmd/ab_sim.rs`).

// The module's tests use sibling subcommands (`rank-train`), so they run in the `learnrec`
// binary only.
#[cfg(not(test))]
#[path = "../cmd/ab_sim.rs"]
mod ab_sim;

/// Simulate an A/B (or A/A) test of ranking policies and write a report.
#[cfg(not(test))]
#[derive(Debug, clap::Parser)]
#[command(name = "ab-sim", version, about)]
struct Cli {
    #[command(flatten)]
    args: ab_sim::Args,
}

#[cfg(not(test))]
fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    match ab_sim::run(Cli::parse().args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
fn main() {}
