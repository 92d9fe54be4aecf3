//! `fusion-eval`: AUC / UAUC / WUAUC overall and per user and item segment (paper Tables 6, 7).
//! Thin CLI over `learnrec_eval::fusion_eval`.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use learnrec_eval::fusion_eval::{self, Input, Options, Report, UserActivity, UserWeight, generate};
use learnrec_eval::segment::Thresholds;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const ABOUT: &str = "AUC, UAUC and WUAUC per model, overall (Table 6) and per user/item segment (Table 7), \
with bootstrap CIs of the deltas between models.";

const LONG_ABOUT: &str = "\
AUC, UAUC and WUAUC per model, overall (Table 6) and per user/item segment (Table 7), with
bootstrap CIs of the deltas between models.

PRED: CSV/TSV with header, or Parquet (.parquet/.pq). Columns: user_id, label (0/1), score
columns (--score NAME, repeatable; default: every column whose name starts with `score`),
optional item_id, weight, user_segment, item_segment (cold-start|long-tail|regular).

Segments come from the explicit columns, else from --history (interactions before the test:
CSV/TSV `user_id,item_id,timestamp,action,value,revenue`, or Parquet with columns user_id,
item_id, action and optional value; other columns are not read): users by interactions (clicks,
conversions, ratings; --user-activity all counts impressions too), items by conversions, with
the paper's thresholds (user long-tail 1..=35, item long-tail 1..=29; 0 = cold-start). Users
and items absent from HISTORY are cold-start and counted in a warning.

AUC ties get midranks (= scikit-learn roc_auc_score). UAUC = mean per-user AUC, WUAUC = per-user
AUC weighted by rows (or positives, or the weight column). One-class users are skipped and
counted. Scores are read as f32.";

#[derive(Parser, Debug)]
#[command(name = "fusion-eval", about = ABOUT, long_about = LONG_ABOUT, after_long_help = fusion_eval::SHARDING_HELP, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    eval: EvalArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Merge partial files (from --emit-partial) into the report of a single run.
    Merge(MergeArgs),
    /// Generate a synthetic predictions file (and HISTORY) for benchmarks.
    Gen(GenArgs),
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Predictions file (CSV/TSV with header, or Parquet).
    #[arg(long, value_name = "PRED")]
    pred: Option<PathBuf>,
    /// Interactions before the test period, for segments (CSV/TSV with header, or Parquet).
    #[arg(long, value_name = "HISTORY")]
    history: Option<PathBuf>,
    /// Score column to evaluate (repeatable; default: all columns starting with `score`).
    #[arg(long = "score", value_name = "NAME")]
    scores: Vec<String>,
    /// Largest user interaction count that is still long-tail.
    #[arg(long, default_value_t = Thresholds::default().user_long_tail_max)]
    user_long_tail_max: u64,
    /// Largest item conversion count that is still long-tail.
    #[arg(long, default_value_t = Thresholds::default().item_long_tail_max)]
    item_long_tail_max: u64,
    /// Which HISTORY rows count as user interactions: engaged (click, conversion, rating) | all.
    #[arg(long, default_value = "engaged", value_parser = parse_activity)]
    user_activity: UserActivity,
    /// Evaluate only the users of shard I of N (hash(user_id) mod N = I), e.g. `3/16`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Write this shard's sufficient statistics to FILE (for `fusion-eval merge`) instead of a report.
    #[arg(long, value_name = "FILE")]
    emit_partial: Option<PathBuf>,
    #[command(flatten)]
    metric: MetricArgs,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args, Debug)]
struct MetricArgs {
    /// WUAUC user weight: rows (impressions) | positives | weight (sum of the weight column).
    #[arg(long, default_value = "rows", value_parser = parse_weight)]
    wuauc_weight: UserWeight,
    /// Bootstrap replicates over users for the 95% CIs of deltas (0 = none).
    #[arg(long, default_value_t = 200)]
    bootstrap: u32,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Baseline score column for deltas (default: the first).
    #[arg(long)]
    baseline: Option<String>,
}

#[derive(Args, Debug)]
struct OutArgs {
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the tables as Markdown.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also draw the per-segment deltas as a chart: SVG or PNG by the extension.
    #[arg(long, value_name = "FILE.svg|png")]
    plot: Option<PathBuf>,
    /// Do not print the tables on stdout.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// Partial files written by `--emit-partial`.
    #[arg(required = true, value_name = "PARTIAL")]
    partials: Vec<PathBuf>,
    #[command(flatten)]
    metric: MetricArgs,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Rows.
    #[arg(long)]
    rows: u64,
    /// Users.
    #[arg(long)]
    users: u64,
    /// Items (default: users).
    #[arg(long)]
    items: Option<u64>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output file (.csv, .tsv or .parquet).
    #[arg(long)]
    out: PathBuf,
    /// Also write a HISTORY file (.csv, or .parquet).
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Parquet row-group size.
    #[arg(long, default_value_t = 1 << 20)]
    row_group: usize,
}

fn parse_shard(s: &str) -> std::result::Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("`{s}`: expected I/N, e.g. 0/4"))?;
    let i: u32 = i.trim().parse().map_err(|_| format!("`{s}`: I is not a number"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("`{s}`: N is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("`{s}`: need 0 ≤ I < N"));
    }
    Ok((i, n))
}

fn parse_weight(s: &str) -> std::result::Result<UserWeight, String> {
    UserWeight::parse(s).ok_or_else(|| format!("`{s}`: expected rows, positives or weight"))
}

fn parse_activity(s: &str) -> std::result::Result<UserActivity, String> {
    match s {
        "engaged" => Ok(UserActivity::Engaged),
        "all" => Ok(UserActivity::All),
        _ => Err(format!("`{s}`: expected engaged or all")),
    }
}

fn options(m: &MetricArgs) -> Options {
    Options { user_weight: m.wuauc_weight, bootstrap: m.bootstrap, seed: m.seed, baseline: m.baseline.clone() }
}

fn outputs(r: &Report, o: &OutArgs) -> Result<()> {
    if !o.quiet {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(r.to_text().as_bytes())?;
        out.flush()?;
    }
    if let Some(p) = &o.json {
        let s = serde_json::to_string_pretty(r)?;
        learnrec_eval::atomic::write(p, s.as_bytes())?;
    }
    if let Some(p) = &o.markdown {
        learnrec_eval::atomic::write(p, r.to_markdown().as_bytes())?;
    }
    if let Some(p) = &o.plot {
        fusion_eval::plot::deltas_plot(r, p)?;
    }
    Ok(())
}

fn spinner(msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Some(Cmd::Merge(a)) => {
            let pb = spinner(format!("merging {} partials", a.partials.len()));
            let r = fusion_eval::merge_partials(&a.partials, &options(&a.metric));
            pb.finish_and_clear();
            outputs(&r?, &a.out)
        }
        Some(Cmd::Gen(a)) => {
            let spec = generate::GenSpec {
                rows: a.rows,
                users: a.users,
                items: a.items.unwrap_or(a.users),
                seed: a.seed,
                out: a.out.clone(),
                history: a.history_out,
                row_group: a.row_group.max(1),
            };
            let t = Instant::now();
            let n = generate::generate(&spec)?;
            eprintln!("wrote {n} rows to {} in {:.1}s", a.out.display(), t.elapsed().as_secs_f64());
            Ok(())
        }
        None => {
            let e = cli.eval;
            let pred = e.pred.clone().context("--pred PRED is required (or use `merge` / `gen`)")?;
            let input = Input {
                pred: pred.clone(),
                scores: e.scores,
                history: e.history,
                user_activity: e.user_activity,
                thresholds: Thresholds {
                    user_long_tail_max: e.user_long_tail_max,
                    item_long_tail_max: e.item_long_tail_max,
                },
                shard: e.shard,
            };
            let t = Instant::now();
            let pb = spinner(format!("evaluating {}", pred.display()));
            if let Some(p) = &e.emit_partial {
                let n = fusion_eval::emit_partial(&input, p);
                pb.finish_and_clear();
                let n = n?;
                eprintln!("wrote partial {} ({n} rows) in {:.2}s", p.display(), t.elapsed().as_secs_f64());
                return Ok(());
            }
            let r = fusion_eval::evaluate_file(&input, &options(&e.metric));
            pb.finish_and_clear();
            let r = r?;
            let s = t.elapsed().as_secs_f64();
            eprintln!("evaluated {} rows in {s:.2}s ({:.2} M rows/s)", r.rows, r.rows as f64 / s / 1e6);
            outputs(&r, &e.out)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for c in e.chain().skip(1) {
                eprintln!("  caused by: {c}");
            }
            ExitCode::FAILURE
        }
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
