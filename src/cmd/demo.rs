//! `learnrec demo`: the whole LEARN pipeline in one command, resumable stage by stage.
//!
//! world/MovieLens → `embed` (content store) → `train` (LEARN towers) → `retrieval-eval`
//! (Tables 1/4 form) → `export` → `rank-train` (baseline vs fused) → `fusion-eval` (Tables 6/7)
//! → `ab-sim` → `index.html` / `index.md` linking every table and chart.
//!
//! Each stage records a marker `DIR/.stages/NAME.done` holding a key of its inputs; a rerun skips
//! a stage whose key matches and whose outputs exist, so a killed demo resumes where it stopped.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output (report) directory.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    anyhow::bail!("`demo` is being assembled: its stages land with the other subcommands")
}

/// Runs `f` unless stage `name` already completed with the same `key` and all `outputs` exist.
pub fn stage(dir: &Path, name: &str, key: &str, outputs: &[PathBuf], f: impl FnOnce() -> Result<()>) -> Result<()> {
    let marker = dir.join(".stages").join(format!("{name}.done"));
    let done = std::fs::read_to_string(&marker).ok().is_some_and(|k| k == key) && outputs.iter().all(|p| p.exists());
    if done {
        eprintln!("[demo] {name}: cached (delete {} to redo)", marker.display());
        return Ok(());
    }
    eprintln!("[demo] {name}: running");
    let t = Instant::now();
    f().with_context(|| format!("demo stage `{name}` failed"))?;
    learnrec_eval::atomic::write(&marker, key.as_bytes())?;
    eprintln!("[demo] {name}: done in {:.1}s", t.elapsed().as_secs_f64());
    Ok(())
}
