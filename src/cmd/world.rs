//! `learnrec world`: generate the synthetic e-commerce world (catalog, users, interaction log and
//! the oracle's parameters) into a directory.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use learnrec_eval::data::Action;
use learnrec_eval::segment::Thresholds;
use learnrec_eval::world::{World, WorldConfig, segment_shares};
use std::path::PathBuf;
use std::time::Instant;

/// Options of `learnrec world`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory (created if missing): catalog.csv, interactions.csv, users.csv, world.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of users.
    #[arg(long, default_value_t = WorldConfig::default().users)]
    pub users: u32,
    /// Number of items.
    #[arg(long, default_value_t = WorldConfig::default().items)]
    pub items: u32,
    /// Number of simulated days.
    #[arg(long, default_value_t = WorldConfig::default().days)]
    pub days: u32,
    /// Random seed (the same seed gives byte-identical files).
    #[arg(long, default_value_t = WorldConfig::default().seed)]
    pub seed: u64,
    /// Last days that form the evaluation window of the segment report.
    #[arg(long, default_value_t = WorldConfig::default().eval_days)]
    pub eval_days: u32,
}

/// Generates, simulates, writes and summarises the world.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = WorldConfig {
        users: args.users,
        items: args.items,
        days: args.days,
        seed: args.seed,
        eval_days: args.eval_days,
        ..WorldConfig::default()
    };
    config.validate()?;
    if args.out.exists() && !args.out.is_dir() {
        anyhow::bail!("--out {}: exists and is not a directory", args.out.display());
    }
    let t0 = Instant::now();
    let world = World::generate(&config)?;

    let bar = ProgressBar::new(config.days as u64).with_style(
        ProgressStyle::with_template("simulating {bar:30} {pos}/{len} days [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, _total: u64| bar.set_position(done);
    let log = world.simulate(Some(&progress));
    bar.finish_and_clear();

    let spinner = ProgressBar::new_spinner().with_message(format!("writing {}", args.out.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    world.write(&args.out, &log).with_context(|| format!("writing the world to {}", args.out.display()))?;
    spinner.finish_and_clear();

    let count = |a: Action| log.rows.iter().filter(|r| r.action == a).count();
    let (imps, clicks, convs) = (count(Action::Impression), count(Action::Click), count(Action::Conversion));
    let revenue: f64 = log.rows.iter().filter(|r| r.action == Action::Conversion).map(|r| world.price(r.item)).sum();
    println!(
        "world: {} users, {} items, {} days, seed {} -> {} ({:.1}s)",
        config.users,
        config.items,
        config.days,
        config.seed,
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "log: {imps} impressions, {clicks} clicks (CTR {:.3}), {convs} conversions (CVR|click {:.3}), revenue {revenue:.1} yuan",
        clicks as f64 / imps.max(1) as f64,
        convs as f64 / clicks.max(1) as f64
    );
    let shares =
        segment_shares(&log.rows, world.n_users(), world.n_items(), world.history_end_ts(), &Thresholds::default());
    println!("segments (history = days before the last {}, default thresholds):\n{shares}", config.eval_days);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: PathBuf) -> Args {
        Args { out, users: 30, items: 20, days: 4, seed: 1, eval_days: 1 }
    }

    #[test]
    fn writes_the_four_files() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("w");
        run(args(out.clone())).unwrap();
        for f in ["catalog.csv", "interactions.csv", "users.csv", "world.json"] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        World::load(&out).unwrap();
    }

    #[test]
    fn bad_arguments_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let e = run(Args { users: 0, ..args(tmp.path().join("w")) }).unwrap_err().to_string();
        assert!(e.contains("--users must be at least 1"), "{e}");
        let file = tmp.path().join("file.txt");
        std::fs::write(&file, "x").unwrap();
        let e = run(args(file)).unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("not a directory"), "{e}");
    }
}
