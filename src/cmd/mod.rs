//! One module per subcommand: `Args` (clap) and `run(Args)`, which validates and calls the
//! libraries. Errors are printed once, with their chain, by [`finish`].

pub mod ab_sim;
pub mod bench_serve;
pub mod demo;
pub mod embed;
pub mod export;
pub mod fetch;
pub mod merge_stores;
pub mod neighbors;
pub mod rank_train;
pub mod retrieval_eval;
pub mod sequences;
pub mod stats;
pub mod train;
pub mod world;

use std::process::ExitCode;

/// Prints an error chain once and maps it to an exit code (0 ok, 1 error; quiet on broken pipe).
pub fn finish(res: anyhow::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
