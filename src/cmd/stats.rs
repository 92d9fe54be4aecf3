//! `learnrec stats`: profile a dataset (counts, time range, sequence lengths, segment shares).

use anyhow::Context;
use learnrec_eval::data::LabelRule;
use learnrec_eval::data::reader::{
    CatalogOptions, Format, InteractionOptions, UnknownItems, parse_column_map, read_catalog, read_interactions_report,
};
use learnrec_eval::segment::Thresholds;
use learnrec_eval::split::{DAY, Positive, SequenceSplit, boundary_before_end};
use learnrec_eval::stats::{StatsConfig, dataset_stats};
use std::io::Write;
use std::path::PathBuf;

/// Profile a dataset: counts of users, items and interactions per action, time range, the
/// history/target length distribution at a boundary, and the user/item segment proportions.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Item catalog (CSV/TSV/JSONL/RecBole `.item`); optional.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Interaction log (CSV/TSV/JSONL/RecBole `.inter`).
    #[arg(long)]
    pub interactions: PathBuf,
    /// Print JSON instead of a text table.
    #[arg(long)]
    pub json: bool,
    /// Split boundary (unix seconds); the first second of the target window.
    #[arg(long, conflicts_with = "target_days")]
    pub boundary: Option<i64>,
    /// Put the boundary this many days before the last interaction (default 30, the paper's
    /// one-month target window); also the target window's length.
    #[arg(long)]
    pub target_days: Option<i64>,
    /// History window in days (paper: 9 months = 270).
    #[arg(long, default_value_t = 270)]
    pub history_days: i64,
    /// Lookback window in days for the segment counts (default: the history window).
    #[arg(long)]
    pub lookback_days: Option<i64>,
    /// At most this many history items per user (paper: 80).
    #[arg(long, default_value_t = 80)]
    pub history_len: usize,
    /// At most this many target items per user (paper: 40).
    #[arg(long, default_value_t = 40)]
    pub target_len: usize,
    /// Which actions make up sequences: clicks (clicks, conversions, all ratings) or conversions.
    #[arg(long, default_value = "clicks", value_parser = parse_positive)]
    pub positive: Positive,
    /// A rating at or above this is a conversion (MovieLens proxy).
    #[arg(long, default_value_t = 4.0)]
    pub convert_min_rating: f32,
    /// Largest user interaction count that is long-tail (paper: 35).
    #[arg(long, default_value_t = 35)]
    pub user_long_tail_max: u64,
    /// Largest item conversion count that is long-tail (paper: 29).
    #[arg(long, default_value_t = 29)]
    pub item_long_tail_max: u64,
    /// Skip log rows whose item is not in the catalog (counted) instead of failing.
    #[arg(long)]
    pub skip_unknown_items: bool,
    /// Catalog format override (csv, tsv, jsonl, atomic).
    #[arg(long, value_parser = parse_format)]
    pub catalog_format: Option<Format>,
    /// Interaction format override (csv, tsv, jsonl, atomic).
    #[arg(long, value_parser = parse_format)]
    pub interactions_format: Option<Format>,
    /// Catalog column map, e.g. `title=name,category=genre`.
    #[arg(long, default_value = "")]
    pub catalog_columns: String,
    /// Interaction column map, e.g. `user=uid,timestamp=time`.
    #[arg(long, default_value = "")]
    pub interaction_columns: String,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("unknown format `{s}` (expected csv, tsv, jsonl or atomic)"))
}

fn parse_positive(s: &str) -> Result<Positive, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "clicks" | "click" => Ok(Positive::Clicks),
        "conversions" | "conversion" => Ok(Positive::Conversions),
        _ => Err(format!("unknown positive `{s}` (expected clicks or conversions)")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let copts = CatalogOptions {
        format: args.catalog_format,
        columns: parse_column_map(&args.catalog_columns).context("--catalog-columns")?,
    };
    let iopts = InteractionOptions {
        format: args.interactions_format,
        columns: parse_column_map(&args.interaction_columns).context("--interaction-columns")?,
        unknown_items: if args.skip_unknown_items { UnknownItems::Skip } else { UnknownItems::Error },
        ..Default::default()
    };
    for (flag, v) in [("--history-days", args.history_days), ("--target-days", args.target_days.unwrap_or(30))] {
        anyhow::ensure!(v > 0, "{flag} must be positive, got {v}");
    }
    let catalog = args.catalog.as_ref().map(|p| read_catalog(p, &copts)).transpose()?;
    let (log, report) = read_interactions_report(&args.interactions, catalog.as_ref(), &iopts)?;
    if report.skipped_unknown_items > 0 {
        let (line, id) = report.first_unknown.clone().unwrap_or_default();
        eprintln!(
            "skipped {} of {} rows whose item is not in the catalog (first: line {line}, `{id}`)",
            report.skipped_unknown_items, report.rows_read
        );
    }
    let target_days = args.target_days.unwrap_or(30);
    let boundary = match args.boundary {
        Some(b) => b,
        None => boundary_before_end(&log, target_days).context("the interaction log is empty")?,
    };
    let split = SequenceSplit {
        boundary,
        history_window: Some(args.history_days * DAY),
        target_window: Some(target_days * DAY),
        history_len: args.history_len,
        target_len: args.target_len,
        positive: args.positive,
        label: LabelRule { convert_min_rating: args.convert_min_rating },
        dedup_consecutive: true,
    };
    let cfg = StatsConfig {
        split,
        lookback: args.lookback_days.unwrap_or(args.history_days) * DAY,
        thresholds: Thresholds {
            user_long_tail_max: args.user_long_tail_max,
            item_long_tail_max: args.item_long_tail_max,
        },
    };
    let stats = dataset_stats(catalog.as_ref(), &log, &cfg);
    // Written (not `println!`) so a closed pipe is an error `finish` keeps quiet about.
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
    } else {
        write!(out, "{stats}")?;
    }
    out.flush()?;
    Ok(())
}
