//! `learnrec sequences`: the per-user history/target split that `train` and `retrieval-eval`
//! read, as two JSON Lines files (`train.jsonl`, `test.jsonl`) a user can open anywhere.

use anyhow::Context;
use clap::ValueEnum;
use learnrec_eval::data::reader::read_dataset_dir;
use learnrec_eval::split::{self, DAY, Positive, SequenceSplit, UserSequences};
use std::io::Write;
use std::path::PathBuf;

/// How the two splits are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The paper's global temporal split: test targets are the last `--target-days`, train targets
    /// the `--target-days` before them; histories are everything before each target window.
    Temporal,
    /// Per user, cut by time: the last `--target-len` positives (and any sharing the second of
    /// the first of them) are the test target, the `--target-len` before them the train target,
    /// histories everything earlier (for logs whose last weeks are sparse, e.g. MovieLens-1M).
    /// The same cut as `rank-train --leave-last N` with N = `--target-len`
    /// (`learnrec_eval::split::leave_last_cuts`), so the ranker's test rows are exactly the test
    /// targets and exported user embeddings never see them.
    LeaveLast,
}

/// Which actions make up the sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PositiveArg {
    /// Clicks, conversions and every rating.
    Clicks,
    /// Conversions only (purchases, ratings ≥ 4).
    Conversions,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset directory: a `learnrec world` directory or a RecBole directory (MovieLens-1M).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory for `train.jsonl` and `test.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = SplitArg::Temporal)]
    pub split: SplitArg,
    /// Length of each target window in days (temporal split).
    #[arg(long, default_value_t = 7)]
    pub target_days: i64,
    /// At most this many history items (paper: 80).
    #[arg(long, default_value_t = split::PAPER_HISTORY_LEN)]
    pub history_len: usize,
    /// At most this many target items (paper: 40); with `--split leave-last` the number of last
    /// positives per user in each target (not a cap: ties at the cut stay together).
    #[arg(long, default_value_t = split::PAPER_TARGET_LEN)]
    pub target_len: usize,
    #[arg(long, value_enum, default_value_t = PositiveArg::Clicks)]
    pub positive: PositiveArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.target_days > 0, "--target-days must be positive");
    anyhow::ensure!(args.history_len > 0 && args.target_len > 0, "--history-len and --target-len must be positive");
    let ds = read_dataset_dir(&args.data)?;
    let mut cfg = SequenceSplit::paper(0);
    cfg.history_len = args.history_len;
    cfg.target_len = args.target_len;
    cfg.positive = match args.positive {
        PositiveArg::Clicks => Positive::Clicks,
        PositiveArg::Conversions => Positive::Conversions,
    };
    let (train, test) = match args.split {
        SplitArg::Temporal => {
            let test_b = split::boundary_before_end(&ds.log, args.target_days)
                .with_context(|| format!("{}: the interaction log is empty", args.data.display()))?;
            let train_b = test_b - args.target_days * DAY;
            cfg.target_window = Some(args.target_days * DAY);
            cfg.boundary = train_b;
            let train = split::user_sequences(&ds.log, &cfg);
            cfg.boundary = test_b;
            let test = split::user_sequences(&ds.log, &cfg);
            (train, test)
        }
        SplitArg::LeaveLast => {
            let cuts = split::leave_last_cuts(&ds.log, &cfg, args.target_len);
            split::leave_last_split(&ds.log, &cfg, &cuts)
        }
    };
    let keep = |v: Vec<UserSequences>| -> Vec<UserSequences> {
        v.into_iter().filter(|s| !s.target.is_empty() && !s.history.is_empty()).collect()
    };
    let (train, test) = (keep(train), keep(test));
    anyhow::ensure!(!train.is_empty(), "no user has both a history and a train target; try a larger --target-days or --split leave-last");
    for (name, seqs) in [("train.jsonl", &train), ("test.jsonl", &test)] {
        let path = args.out.join(name);
        learnrec_eval::atomic::write_with(&path, |w| {
            for s in seqs.iter() {
                let line = serde_json::json!({
                    "user": ds.log.users.name(s.user),
                    "history": s.history.iter().map(|&i| ds.catalog.ids.name(i)).collect::<Vec<_>>(),
                    "target": s.target.iter().map(|&i| ds.catalog.ids.name(i)).collect::<Vec<_>>(),
                });
                writeln!(w, "{line}")?;
            }
            Ok(())
        })?;
    }
    let mean = |v: &[UserSequences], f: fn(&UserSequences) -> usize| {
        v.iter().map(f).sum::<usize>() as f64 / v.len().max(1) as f64
    };
    eprintln!(
        "sequences: train {} users (history {:.1}, target {:.1} items on average), test {} users (history {:.1}, target {:.1}) → {}",
        train.len(),
        mean(&train, |s| s.history.len()),
        mean(&train, |s| s.target.len()),
        test.len(),
        mean(&test, |s| s.history.len()),
        mean(&test, |s| s.target.len()),
        args.out.display()
    );
    Ok(())
}
