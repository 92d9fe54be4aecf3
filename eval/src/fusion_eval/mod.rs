//! `fusion-eval`: AUC, UAUC and WUAUC overall and per user/item segment — the paper's Tables 6
//! and 7 — from a predictions file, fast and exact.
//!
//! # Definitions
//!
//! * **AUC** — global AUC over all rows, midranks for ties (= scikit-learn `roc_auc_score`).
//! * **UAUC** — uniform mean of per-user AUC over users with both classes.
//! * **WUAUC** — per-user AUC weighted by the user's impressions (rows) by default, or by
//!   positives, or by the sum of the `weight` column ([`UserWeight`]).
//! * One-class users are skipped (FuxiCTR, EasyRec, RecBole, xdl do the same) and counted.
//! * **User segments** (cold-start / long-tail / regular) group users with all their rows.
//! * **Item segments** keep only the rows whose item is in the segment and compute each user's
//!   AUC within those rows.
//! * **Deltas** are in percentage points (100·(model − baseline)); 95% CIs are the 2.5/97.5
//!   percentiles of a Poisson(1) bootstrap over users: replicate `r` gives user `u` the weight
//!   `Poisson1(hash(seed, u, r))`, a counter-based draw, so the bootstrap does not depend on row
//!   order or sharding. The AUC delta has no CI (it would need a global sort per replicate).
//! * Scores are evaluated as `f32` (a DOUBLE column is rounded to f32; this can create ties that
//!   a float64 evaluation would not have).
//!
//! Formulas: see [`crate::metrics`].
//!
//! # Speed
//!
//! Rows are read in parallel (CSV: memory-mapped chunks, a one-pass splitter and an exact fast
//! decimal parser; Parquet: row groups decoded in 64k-row batches) straight into blocks
//! bucketed by the top bits of the user hash (≤ 512 buckets), so every bucket holds complete
//! users; each bucket's rows are grouped by user with a small hash table and a counting sort,
//! each user's rows sorted by score once per model and walked once for all groups; the global
//! AUC is exact via a counting sort on the top 16 bits of the score key and exact counts within
//! each bin (models side by side). CSV lines are split 64 bytes at a time (SIMD masks; scan.rs).
//! HISTORY is scanned in parallel chunks, only the needed
//! fields, and counted in 64 key partitions. Big hash tables use transparent huge pages.
//! `LEARNREC_FE_STAGES=1` prints each stage's wall time, CPU time and RSS on stderr.
//!
//! # Shards
//!
//! [`emit_partial`] writes the per-user sufficient statistics of one shard (rows of users with
//! `hash(user) mod N = I`, or any partition that keeps each user in one file) plus the exact
//! score runs for the global AUC; [`merge_partials`] combines them into exactly the report of a
//! single run, bootstrap included (per-user records are re-sorted by user key, the global AUC
//! numerator is an integer).

mod compute;
pub mod generate;
mod partial;
pub mod plot;
mod read;
mod report;
mod scan;
mod table;

pub use read::{HistoryCounts, UserActivity, read_history};
pub use report::{
    BootstrapInfo, Delta, GroupKind, GroupReport, ModelMetrics, Report, SegmentSource, Warning, WarningKind,
};
pub use table::{id_key, int_key, shard_of};

pub use crate::metrics::UserWeight;
use crate::segment::{Segment, Thresholds};
use crate::{Error, Result};
use compute::UserSegments;
use report::State;
use std::path::{Path, PathBuf};
use std::time::Instant;
use table::{Layout, NONE, Sink, Table, flags, seg_code};

/// Stage timer for benchmarks: with `LEARNREC_FE_STAGES=1` in the environment, each stage's wall
/// time and the process's CPU time (user + system, from `/proc/self/stat`, Linux only) are
/// printed on stderr (`stage NAME: W s wall, C s CPU`).
pub(crate) struct Stages {
    on: bool,
    t: Instant,
    cpu: f64,
}

/// CPU seconds (user + system) of this process so far (0 where `/proc` is missing).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is field 3; utime, stime are fields 14, 15 (clock ticks).
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

impl Stages {
    pub(crate) fn new() -> Stages {
        let on = std::env::var_os("LEARNREC_FE_STAGES").is_some_and(|v| v == "1");
        Stages { on, t: Instant::now(), cpu: if on { cpu_seconds() } else { 0.0 } }
    }
    /// Prints the time since the previous mark under `name` (if enabled) and restarts the clock.
    pub(crate) fn mark(&mut self, name: &str) {
        if self.on {
            let c = cpu_seconds();
            let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let kb = |k: &str| {
                st.lines()
                    .find(|l| l.starts_with(k))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("?")
                    .to_owned()
            };
            eprintln!(
                "stage {name}: {:.3} s wall, {:.2} s CPU; RSS {} KB, peak {} KB",
                self.t.elapsed().as_secs_f64(),
                c - self.cpu,
                kb("VmRSS:"),
                kb("VmHWM:")
            );
            self.cpu = c;
        }
        self.t = Instant::now();
    }
}

/// How metrics are computed (independent of where the rows come from).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// WUAUC user weight.
    pub user_weight: UserWeight,
    /// Bootstrap replicates for the delta CIs (0 = none).
    pub bootstrap: u32,
    /// Bootstrap seed.
    pub seed: u64,
    /// Baseline score column for deltas (default: the first).
    pub baseline: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { user_weight: UserWeight::Rows, bootstrap: 200, seed: 42, baseline: None }
    }
}

/// Where rows and segments come from, for [`evaluate_file`] and [`emit_partial`].
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The predictions file (CSV/TSV with header, or Parquet).
    pub pred: PathBuf,
    /// Score columns (empty: every column whose name starts with `score`).
    pub scores: Vec<String>,
    /// Interactions of the period before the test, for segments without explicit columns.
    pub history: Option<PathBuf>,
    /// Which HISTORY rows count as user interactions.
    pub user_activity: UserActivity,
    /// Segment thresholds.
    pub thresholds: Thresholds,
    /// Keep only the users of shard `I` of `N` (`hash(user_id) mod N = I`).
    pub shard: Option<(u32, u32)>,
}

/// In-memory predictions for library callers: one entry per row.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// User id of each row (any integer id).
    pub users: Vec<u64>,
    /// Label of each row.
    pub labels: Vec<bool>,
    /// `(model name, score per row)`, at least one.
    pub scores: Vec<(String, Vec<f32>)>,
    /// Item id of each row (for item counts).
    pub items: Option<Vec<u64>>,
    /// Row weights (for `UserWeight::Weight`).
    pub weights: Option<Vec<f32>>,
    /// User segment of each row.
    pub user_segments: Option<Vec<Segment>>,
    /// Item segment of each row.
    pub item_segments: Option<Vec<Segment>>,
}

fn u64_key(v: u64) -> u64 {
    if let Ok(x) = i64::try_from(v) {
        return int_key(x);
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    id_key(&buf[i..])
}

/// Evaluates in-memory predictions (see the module docs for the definitions).
pub fn evaluate(p: &Predictions, opt: &Options) -> Result<Report> {
    let n = p.users.len();
    let bad = |what: &str, len: usize| Error::Invalid(format!("predictions: {len} {what} for {n} rows"));
    if p.labels.len() != n {
        return Err(bad("labels", p.labels.len()));
    }
    if p.scores.is_empty() {
        return Err(Error::Invalid("predictions: no score column".into()));
    }
    if n == 0 {
        return Err(Error::Invalid("predictions: no rows".into()));
    }
    let mut names: Vec<String> = Vec::new();
    for (name, s) in &p.scores {
        if names.contains(name) {
            return Err(Error::Invalid(format!("score `{name}` is named twice")));
        }
        if s.len() != n {
            return Err(bad(&format!("scores of `{name}`"), s.len()));
        }
        if let Some(i) = s.iter().position(|x| !x.is_finite()) {
            return Err(Error::Invalid(format!("predictions: score `{name}` of row {i} is NaN or Inf")));
        }
        names.push(name.clone());
    }
    for (what, len) in [
        ("items", p.items.as_ref().map(|v| v.len())),
        ("weights", p.weights.as_ref().map(|v| v.len())),
        ("user segments", p.user_segments.as_ref().map(|v| v.len())),
        ("item segments", p.item_segments.as_ref().map(|v| v.len())),
    ] {
        if let Some(l) = len.filter(|&l| l != n) {
            return Err(bad(what, l));
        }
    }
    if let Some(w) = &p.weights
        && let Some(i) = w.iter().position(|x| !x.is_finite() || *x < 0.0)
    {
        return Err(Error::Invalid(format!("predictions: weight of row {i} is not finite and ≥ 0")));
    }
    let m = names.len();
    let layout = Layout { m, weight: p.weights.is_some(), bits: Layout::bits_for(n as u64) };
    let mut sink = Sink::new(layout);
    let mut sc = vec![0f32; m];
    for r in 0..n {
        for (x, (_, s)) in sc.iter_mut().zip(&p.scores) {
            *x = s[r];
        }
        let is = p.item_segments.as_ref().map_or(NONE, |v| seg_code(v[r]));
        let us = p.user_segments.as_ref().map_or(NONE, |v| seg_code(v[r]));
        if let Some(it) = &p.items {
            sink.item(u64_key(it[r]), is);
        }
        let w = p.weights.as_ref().map_or(0.0, |v| v[r]);
        sink.push(u64_key(p.users[r]), flags(p.labels[r], is, us), &sc, w);
    }
    let table = Table::from_sinks(layout, vec![sink], p.items.is_some(), Vec::new());
    let src = |b: bool| {
        if b { SegmentSource::Column } else { SegmentSource::None }
    };
    let (st, _) = state(
        table,
        names,
        src(p.user_segments.is_some()),
        src(p.item_segments.is_some()),
        None,
        Thresholds::default(),
        false,
    )?;
    report::finish(&st, opt)
}

fn state(
    table: Table,
    models: Vec<String>,
    user_src: SegmentSource,
    item_src: SegmentSource,
    history: Option<&HistoryCounts>,
    thresholds: Thresholds,
    want_runs: bool,
) -> Result<(State, Vec<Vec<compute::Run>>)> {
    let m = models.len();
    let mut tm = Stages::new();
    let mut auc = Vec::with_capacity(m);
    let mut runs = Vec::new();
    for (c, r) in compute::global_aucs(&table, want_runs) {
        auc.push(c);
        runs.push(r.unwrap_or_default());
    }
    tm.mark("global AUC");
    let seg = match (user_src, history) {
        (SegmentSource::Column, _) => UserSegments::Column,
        (SegmentSource::History, Some(h)) => UserSegments::History { counts: &h.users, thresholds },
        _ => UserSegments::None,
    };
    let has_weight = table.layout.weight;
    let items = table.items;
    let users = compute::users(table.buckets, table.layout, &seg)?;
    tm.mark("per-user sort + AUC");
    Ok((State { models, users, auc, items, user_src, item_src, has_weight, thresholds }, runs))
}

fn load(input: &Input, want_runs: bool) -> Result<(State, Vec<Vec<compute::Run>>, u64)> {
    if let Some((i, n)) = input.shard
        && (n == 0 || i >= n)
    {
        return Err(Error::Invalid(format!("--shard {i}/{n}: need 0 ≤ I < N")));
    }
    let mut tm = Stages::new();
    // HISTORY's buffers go back to the slab pool for PRED's row blocks; closed after PRED.
    let pool = table::SlabPoolOpen::new();
    let mut history = match &input.history {
        Some(h) => Some(read_history(h, input.user_activity)?),
        None => None,
    };
    tm.mark("HISTORY read + count");
    let spec = read::ReadSpec {
        scores: &input.scores,
        shard: input.shard,
        item_history: history.as_ref().map(|h| &h.items),
        thresholds: input.thresholds,
    };
    let out = read::read_pred(&input.pred, &spec);
    drop(pool);
    let out = out?;
    // HISTORY's item counts are only needed while reading PRED.
    if let Some(h) = history.as_mut() {
        h.items = Default::default();
    }
    tm.mark("PRED read (decode + item bookkeeping + bucketing + merge of sinks)");
    let user_src = if out.cols.useg.is_some() {
        SegmentSource::Column
    } else if history.is_some() {
        SegmentSource::History
    } else {
        SegmentSource::None
    };
    let item_src = if out.cols.iseg.is_some() {
        SegmentSource::Column
    } else if history.is_some() && out.cols.item.is_some() {
        SegmentSource::History
    } else {
        SegmentSource::None
    };
    if history.is_some() && out.cols.item.is_none() && out.cols.iseg.is_none() {
        return Err(Error::file(&input.pred, "--history needs an `item_id` column for item segments"));
    }
    let (st, runs) =
        state(out.table, out.cols.score_names, user_src, item_src, history.as_ref(), input.thresholds, want_runs)?;
    Ok((st, runs, out.file_rows))
}

/// Evaluates a predictions file.
pub fn evaluate_file(input: &Input, opt: &Options) -> Result<Report> {
    let (st, _, _) = load(input, false)?;
    let mut tm = Stages::new();
    let r = report::finish(&st, opt);
    tm.mark("report");
    r
}

/// Writes the partial (sufficient statistics) of `input` (usually with `shard`) to `out`.
/// Returns the number of rows of the shard.
pub fn emit_partial(input: &Input, out: &Path) -> Result<u64> {
    let (st, runs, _) = load(input, true)?;
    let rows = st.users.rows.iter().map(|r| r[0] as u64).sum();
    partial::write(out, &st, &runs)?;
    Ok(rows)
}

/// Merges partial files into the report a single run over all their rows gives.
pub fn merge_partials(paths: &[PathBuf], opt: &Options) -> Result<Report> {
    let st = partial::merge(paths)?;
    report::finish(&st, opt)
}

/// Whether a path names a Parquet file (by extension).
pub fn is_parquet(p: &Path) -> bool {
    p.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_ascii_lowercase();
        e == "parquet" || e == "pq"
    })
}

/// How to run shards on Spark or Ray (also in `fusion-eval --help`).
pub const SHARDING_HELP: &str = "\
Sharded runs (Spark / Ray / any batch system):
  Each partial must hold ALL rows of its users; `merge` fails with an error if a user appears in
  two partials. Two ways to get there:

  A. fusion-eval shards: each of N tasks reads the whole PRED and keeps its users
       fusion-eval --pred preds.parquet [--history hist.csv] --shard I/N --emit-partial part-I.fep
     (shard of a user = key(user_id) mod N, key = fmix64(id XOR 0x9e3779b97f4a7c15) for an
     integer id (CSV text or Parquet INT), fmix64(FNV-1a-64(text)) for any other id). Simple; every task reads all of PRED.

  B. The engine partitions by user, one task per part file (reads each row once):
     Spark (PySpark):
       df.repartition(N, \"user_id\").write.parquet(\"preds_by_user/\")
       files = [...the N part files...]
       sc.parallelize(files, len(files)).foreach(lambda f: subprocess.run(
           [\"fusion-eval\", \"--pred\", f, \"--history\", H, \"--emit-partial\", f + \".fep\"], check=True))
     Ray:
       @ray.remote(num_cpus=2)
       def part(i, n):
           subprocess.run([\"fusion-eval\", \"--pred\", PRED, \"--shard\", f\"{i}/{n}\",
                           \"--emit-partial\", f\"/shared/part-{i}.fep\"], check=True)
       ray.get([part.remote(i, N) for i in range(N)])

  Then on one machine (partials on shared storage):
       fusion-eval merge part-*.fep [--bootstrap 200 --seed 42 --json r.json --markdown r.md]

  The merged report equals the single-run report exactly, bootstrap included: bootstrap draws
  are keyed by (seed, user, replicate), per-user records are summed in user-key order, and the
  global AUC is an exact integer count over the merged score runs. A partial holds per-user
  records (~42 + 32*models bytes per user, + 32 with a weight column), the items seen, and the
  sorted score runs for the global AUC (20 bytes per distinct score per model). HISTORY and the
  segment thresholds are applied when a partial is emitted (all partials must agree);
  --wuauc-weight, --bootstrap, --seed and --baseline are applied at merge.";
