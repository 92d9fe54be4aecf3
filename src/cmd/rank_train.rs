//! `learnrec rank-train`: trains the baseline and the LEARN-fused rankers on the same temporal
//! split, writes the test predictions for `fusion-eval` and saves both rankers for `ab-sim`.
//!
//! Datasets are read with `learnrec_eval::data::reader::read_dataset_dir` (world or RecBole
//! directory) and turned into examples by `learnrec_fusion::io::from_log`.
//!
//! Split, one of:
//! * a global time split. With `--test-days N` the test period is the last N days of the log
//!   (`learnrec_eval::split::boundary_before_end`, the boundary of `learnrec sequences --split
//!   temporal --target-days N`), validation the `--valid-days` before it, training everything
//!   earlier — so LEARN user embeddings exported from histories before that boundary never see
//!   a test-period positive. The world's default (7 + 7 days).
//! * a per-user leave-last split by time, `--leave-last N` (`learnrec_eval::split::
//!   leave_last_cuts`, the cut of `learnrec sequences --split leave-last --target-len N`): a
//!   user's test rows are their last N ratings/clicks (plus ties) and the sampled negatives made
//!   from them, validation the N before, training everything earlier; the towers' test targets
//!   are exactly the rated test rows and their histories (hence exported user embeddings) end
//!   before them. MovieLens's default (N = 10): its last weeks are too sparse for a global cut.
//! * fractions of examples by time, `--train-frac 0.8 --valid-frac 0.1` (the toy's default; on
//!   a real log it can leak into LEARN stores exported from per-user splits).
//!
//! Output in `--out`: `predictions.csv` (`user_id,item_id,label,score_baseline,score_fused`
//! [`,weight`]`,user_segment,item_segment`), `rankers/` (`baseline.mpk`, `fused.mpk`,
//! `rankers.json`), `train_report.json`; with `--data toy` also the toy's stores
//! (`user.safetensors`, `item.safetensors`, `content.safetensors`) so that `bench-serve` can
//! reuse them. Segments (paper Tables 6, 7, default thresholds) are counted in the training
//! period — every log row before the test boundary (per user with `--leave-last`): users by interactions (clicks, conversions,
//! ratings), items by conversions (MovieLens: ratings ≥ 4); see `learnrec_fusion::io::Segments`.
//! The toy has no interaction log and writes no segment columns.

use anyhow::Context as _;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use learnrec_eval::data::reader::read_dataset_dir;
use learnrec_eval::data::{InteractionLog, LabelRule};
use learnrec_eval::segment::{Segment, Thresholds};
use learnrec_eval::split::{
    DAY, LeaveLastCuts, Part, SequenceSplit, boundary_before_end, leave_last_cuts,
};
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use learnrec_fusion::data::{Batcher, IdVocab, RankingData, Split};
use learnrec_fusion::io::{self, LabelSpace, RankersMeta, Segments};
use learnrec_fusion::lookup::load_store;
use learnrec_fusion::metrics::auc;
use learnrec_fusion::toy::{Toy, ToyConfig};
use learnrec_fusion::train::{
    EmbeddingUpdate, StopMetric, TrainConfig, TrainReport, predict, train,
};
use learnrec_fusion::{
    CpuAutodiff, FusedRankerConfig, Interaction, LearnFusionConfig, LearnLookup, RankerConfig,
};
use learnrec_fusion::RankModel;
use learnrec_fusion::burn::module::AutodiffModule;
use learnrec_fusion::burn::tensor::backend::{AutodiffBackend, Backend};
use std::path::PathBuf;

/// Which dataset to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The synthetic world written by `learnrec world` (`catalog.csv`, `interactions.csv`).
    World,
    /// MovieLens-1M in RecBole atomic format (`ml-1m.inter`, `ml-1m.item`).
    Movielens,
    /// A small generated world with oracle LEARN stores (benchmarks; needs no files).
    Toy,
}

/// Example space of the world log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Space {
    /// One example per impressed (user, item); label = converted.
    Impressions,
    /// Clicked pairs only; label = converted (post-click CVR).
    Clicks,
}

/// Feature interaction of the rankers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InteractionArg {
    Mlp,
    Dcn,
}

/// Early-stopping metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopArg {
    Auc,
    Logloss,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset kind.
    #[arg(long, value_enum, default_value_t = Source::World)]
    pub data: Source,
    /// Dataset directory (world or MovieLens); not used with `--data toy`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// LEARN user store (kind user), from `learnrec export`.
    #[arg(long)]
    pub user_store: Option<PathBuf>,
    /// LEARN item store (kind item), from `learnrec export`.
    #[arg(long)]
    pub item_store: Option<PathBuf>,
    /// Content store (kind content): new items absent from the item store get a content-derived
    /// LEARN embedding.
    #[arg(long)]
    pub content_store: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// World examples: impressions (default) or clicks.
    #[arg(long, value_enum, default_value_t = Space::Impressions)]
    pub space: Space,
    /// MovieLens: sampled unrated items per rating (as non-converted impressions).
    #[arg(long, default_value_t = 1)]
    pub negatives: usize,
    /// Keep only the first N users of the log file (0 = all; for quick MovieLens runs).
    #[arg(long, default_value_t = 0)]
    pub max_users: usize,
    /// Toy: users and items.
    #[arg(long, default_value_t = 2000)]
    pub toy_users: usize,
    #[arg(long, default_value_t = 2000)]
    pub toy_items: usize,
    /// λ: weight of the aux CVR loss.
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Stop the main loss's gradient at the fused features.
    #[arg(long)]
    pub stop_gradient: bool,
    /// Ranker feature interaction.
    #[arg(long, value_enum, default_value_t = InteractionArg::Mlp)]
    pub interaction: InteractionArg,
    /// DCN-v2 cross layers (with `--interaction dcn`).
    #[arg(long, default_value_t = 2)]
    pub cross_layers: usize,
    /// ID embedding width.
    #[arg(long, default_value_t = 16)]
    pub id_dim: usize,
    /// MLP hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128,64")]
    pub hidden: Vec<usize>,
    /// Aux network hidden widths, comma-separated (the last is the fused hidden width).
    #[arg(long, value_delimiter = ',', default_value = "64,16")]
    pub aux_hidden: Vec<usize>,
    /// Feed only the aux network's last hidden layer to the ranker, not the raw LEARN embeddings
    /// beside it (the paper feeds both; this is cheaper).
    #[arg(long)]
    pub hidden_only: bool,
    /// Also feed `u ⊙ i` to the aux network (a departure from the paper, off by default; see
    /// `learnrec_fusion::fusion`).
    #[arg(long)]
    pub product_feature: bool,
    /// Update ID tables with Burn's dense gradient + Adam instead of the sparse row-wise Adam.
    #[arg(long)]
    pub dense_embeddings: bool,
    /// Maximum epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Early-stopping patience (epochs).
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    #[arg(long, value_enum, default_value_t = StopArg::Auc)]
    pub stop_metric: StopArg,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Weight the losses by sample weights (and write a weight column).
    #[arg(long)]
    pub use_weights: bool,
    /// Per-user leave-last split by time: test = each user's last N positives (ratings or
    /// clicks, ties kept together) and their sampled negatives, validation the N before
    /// (default for MovieLens: 10, matching `learnrec sequences --split leave-last --target-len
    /// 10`).
    #[arg(long, conflicts_with_all = ["train_frac", "valid_frac", "test_days", "valid_days"])]
    pub leave_last: Option<usize>,
    /// Test period: the last N days of the log (global time split; default 7 for the world).
    #[arg(long, conflicts_with_all = ["train_frac", "valid_frac"])]
    pub test_days: Option<i64>,
    /// Validation period: the N days before the test period (default 7 with day splits).
    #[arg(long, conflicts_with_all = ["train_frac", "valid_frac"])]
    pub valid_days: Option<i64>,
    /// Alternative to days: fractions of examples (by time) for training (default 0.8) and
    /// validation (default 0.1); the rest is test. Default for MovieLens and the toy.
    #[arg(long)]
    pub train_frac: Option<f64>,
    #[arg(long)]
    pub valid_frac: Option<f64>,
    /// Cap steps per epoch (0 = none; for quick benchmarks).
    #[arg(long, default_value_t = 0)]
    pub max_steps: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Benchmark instead of training: N steps of the baseline and of the fused ranker on the
    /// same shuffled batches, alternating (so both see the same machine load), then the median
    /// time of each phase and samples/s of both; writes no predictions or rankers.
    #[arg(long, default_value_t = 0)]
    pub bench_steps: usize,
}

/// How the examples are split in time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SplitPlan {
    /// Test = the last `test` days of the log, validation the `valid` days before.
    Days { test: i64, valid: i64 },
    /// Fractions of examples by time.
    Fractions { train: f64, valid: f64 },
    /// Per-user leave-last cut by time: the last `n` positives of each user are test.
    LeaveLast { n: usize },
}

/// Where the test part starts.
#[derive(Debug, Clone)]
enum TestCut {
    /// One global boundary (first second of the test period).
    Global(i64),
    /// Per-user cuts.
    PerUser(LeaveLastCuts),
}

fn split_plan(a: &Args) -> anyhow::Result<SplitPlan> {
    let plan = if let Some(n) = a.leave_last {
        SplitPlan::LeaveLast { n }
    } else if a.test_days.is_some() || a.valid_days.is_some() {
        SplitPlan::Days {
            test: a.test_days.unwrap_or(7),
            valid: a.valid_days.unwrap_or(7),
        }
    } else if a.data == Source::Movielens && a.train_frac.is_none() && a.valid_frac.is_none() {
        SplitPlan::LeaveLast { n: 10 }
    } else if a.train_frac.is_some() || a.valid_frac.is_some() || a.data != Source::World {
        SplitPlan::Fractions {
            train: a.train_frac.unwrap_or(0.8),
            valid: a.valid_frac.unwrap_or(0.1),
        }
    } else {
        SplitPlan::Days { test: 7, valid: 7 }
    };
    match plan {
        SplitPlan::Days { test, valid } => {
            anyhow::ensure!(test >= 1, "--test-days must be at least 1 (got {test})");
            anyhow::ensure!(valid >= 0, "--valid-days must be at least 0 (got {valid})");
        }
        SplitPlan::Fractions { train, valid } => {
            if !(train > 0.0 && valid >= 0.0 && train + valid < 1.0) {
                anyhow::bail!("--train-frac and --valid-frac must be > 0, ≥ 0 and sum below 1");
            }
        }
        SplitPlan::LeaveLast { n } => {
            anyhow::ensure!(n >= 1, "--leave-last must be at least 1 (got {n})");
            anyhow::ensure!(
                a.data != Source::Toy,
                "--leave-last needs an interaction log (--data world or movielens)"
            );
        }
    }
    Ok(plan)
}

/// Splits `data`; returns the split and where its test part starts. `log` (when the data has
/// one) gives the log's time range for day splits and the positives for leave-last cuts.
fn make_split(
    plan: SplitPlan,
    data: &RankingData,
    log: Option<&InteractionLog>,
) -> anyhow::Result<(Split, TestCut)> {
    match plan {
        SplitPlan::LeaveLast { n } => {
            let log = log.context("--leave-last needs an interaction log")?;
            // The sequences' default configuration: every click/rating is a positive.
            let cuts = leave_last_cuts(log, &SequenceSplit::paper(0), n);
            let mut split = Split::default();
            for e in &data.examples {
                match cuts.part(e.user, e.ts) {
                    Part::Train => split.train.push(*e),
                    Part::Valid => split.valid.push(*e),
                    Part::Test => split.test.push(*e),
                }
            }
            if split.train.is_empty() {
                anyhow::bail!(
                    "--leave-last {n} leaves no training data: every user has at most 2×{n} positives"
                );
            }
            Ok((split, TestCut::PerUser(cuts)))
        }
        SplitPlan::Days { test, valid } => {
            let (first, last) = match log.and_then(InteractionLog::time_range) {
                Some(r) => r,
                None => {
                    let ts = data.examples.iter().map(|e| e.ts);
                    match (ts.clone().min(), ts.max()) {
                        (Some(a), Some(b)) => (a, b),
                        _ => anyhow::bail!("the dataset has no examples"),
                    }
                }
            };
            let test_from = match log {
                Some(l) => boundary_before_end(l, test).context("the interaction log is empty")?,
                None => last
                    .saturating_add(1)
                    .saturating_sub(test.saturating_mul(DAY)),
            };
            let valid_from = test_from.saturating_sub(valid.saturating_mul(DAY));
            let split = data.time_split(valid_from, test_from);
            if split.train.is_empty() {
                anyhow::bail!(
                    "--test-days {test} and --valid-days {valid} leave no training data: the log \
                     spans {:.1} days",
                    (last - first + 1) as f64 / DAY as f64
                );
            }
            Ok((split, TestCut::Global(test_from)))
        }
        SplitPlan::Fractions { train, valid } => {
            let split = data.temporal_split(train, valid);
            let test_from = split.test.first().map_or(i64::MAX, |e| e.ts);
            Ok((split, TestCut::Global(test_from)))
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let plan = split_plan(&a)?;
    let need_dir = || {
        a.dir
            .clone()
            .context("--dir is required with --data world/movielens")
    };
    let rule = LabelRule::default();
    let mut log: Option<InteractionLog> = None;
    let (data, stores): (
        RankingData,
        Option<(EmbeddingStore, EmbeddingStore, Option<EmbeddingStore>)>,
    ) = match a.data {
        Source::Toy => {
            let toy = Toy::generate(&ToyConfig {
                n_users: a.toy_users,
                n_items: a.toy_items,
                seed: a.seed,
                ..Default::default()
            });
            std::fs::create_dir_all(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            toy.user_store.save(&a.out.join("user.safetensors"))?;
            toy.item_store.save(&a.out.join("item.safetensors"))?;
            toy.content_store.save(&a.out.join("content.safetensors"))?;
            (
                toy.data,
                Some((toy.user_store, toy.item_store, Some(toy.content_store))),
            )
        }
        Source::World | Source::Movielens => {
            let space = match a.space {
                Space::Impressions => LabelSpace::Impressions,
                Space::Clicks => LabelSpace::Clicks,
            };
            let ds = read_dataset_dir(need_dir()?)?;
            let mut l = ds.log;
            if a.max_users > 0 {
                l.rows.retain(|r| (r.user as usize) < a.max_users);
            }
            let d = io::from_log(&ds.catalog, &l, &rule, space, a.negatives, a.seed);
            log = Some(l);
            (d, None)
        }
    };
    let stores = match (stores, &a.user_store, &a.item_store) {
        (Some(s), _, _) => Some(s),
        (None, Some(u), Some(i)) => Some((
            load_store(u, StoreKind::User)?,
            load_store(i, StoreKind::Item)?,
            a.content_store
                .as_deref()
                .map(|c| load_store(c, StoreKind::Content))
                .transpose()?,
        )),
        (None, None, None) => None,
        _ => anyhow::bail!(
            "give both --user-store and --item-store (or neither, for the baseline only)"
        ),
    };

    let (split, cut) = make_split(plan, &data, log.as_ref())?;
    eprintln!(
        "{} examples ({} users, {} items, item features: {}): train {}, valid {}, test {}",
        data.examples.len(),
        data.users.len(),
        data.items.len(),
        data.features.fields.join(", "),
        split.train.len(),
        split.valid.len(),
        split.test.len()
    );
    if split.test.is_empty() {
        anyhow::bail!("the test split is empty: not enough examples");
    }
    let segments = log
        .as_ref()
        .map(|l| segments_before_test(l, &rule, &cut, data.users.len(), data.items.len()));
    if let Some(sg) = &segments {
        let count = |f: &dyn Fn(&learnrec_fusion::data::RankingExample) -> Segment, s: Segment| {
            split.test.iter().filter(|e| f(e) == s).count()
        };
        let line = |name: &str, f: &dyn Fn(&learnrec_fusion::data::RankingExample) -> Segment| {
            let parts: Vec<String> = Segment::ALL
                .iter()
                .map(|&s| format!("{s} {}", count(f, s)))
                .collect();
            eprintln!("test rows by {name} segment: {}", parts.join(", "));
        };
        line("user", &|e| sg.user(e.user));
        line("item", &|e| sg.item(e.item));
    }
    let users = IdVocab::fit(&data.users, split.train.iter().map(|e| e.user));
    let items = IdVocab::fit(&data.items, split.train.iter().map(|e| e.item));
    let lookup = match &stores {
        Some((u, i, c)) => {
            let l = LearnLookup::new(&data.users, &data.items, u, i, c.as_ref())?;
            let s = l.stats;
            eprintln!(
                "LEARN lookup: users {}/{} in store; items {} in store, {} from content, {} default",
                s.users_in_store, s.users, s.items_in_store, s.items_from_content, s.items_default
            );
            Some(l)
        }
        None => {
            eprintln!("no LEARN stores given: training the baseline only");
            None
        }
    };

    let interaction = match a.interaction {
        InteractionArg::Mlp => Interaction::Mlp,
        InteractionArg::Dcn => Interaction::DcnV2 {
            layers: a.cross_layers,
        },
    };
    let rc = RankerConfig::new(
        users.n_rows(),
        items.n_rows(),
        data.features.n_rows(),
        data.features.n_fields(),
    )
    .with_id_dim(a.id_dim)
    .with_hidden(a.hidden.clone())
    .with_interaction(interaction);
    let tc = TrainConfig::new()
        .with_batch_size(a.batch_size)
        .with_lr(a.lr)
        .with_max_epochs(a.epochs)
        .with_patience(a.patience)
        .with_stop_metric(match a.stop_metric {
            StopArg::Auc => StopMetric::Auc,
            StopArg::Logloss => StopMetric::Logloss,
        })
        .with_use_weights(a.use_weights)
        .with_embedding_update(if a.dense_embeddings {
            EmbeddingUpdate::Dense
        } else {
            EmbeddingUpdate::Sparse
        })
        .with_seed(a.seed)
        .with_max_steps_per_epoch(a.max_steps);
    let device = Default::default();
    let labels: Vec<f32> = split.test.iter().map(|e| e.label).collect();
    let steps = (split.train.len().div_ceil(a.batch_size.max(1)) * a.epochs) as u64;

    // Seed Burn's initialisers so that a run is reproducible.
    CpuAutodiff::seed(&device, a.seed);
    let mut names = vec!["baseline"];
    let mut fused_scores = None;
    let mut reports = serde_json::Map::new();
    let b_batcher = Batcher::new(&data, &users, &items, None);
    // The fused ranker: the baseline's config plus the auxiliary network (`--bench-steps` and
    // training build it alike).
    let fused_config = |lookup: &LearnLookup| {
        FusedRankerConfig::new(
            rc.clone(),
            LearnFusionConfig::new(lookup.user_dim(), lookup.item_dim())
                .with_hidden(a.aux_hidden.clone())
                .with_include_embeddings(!a.hidden_only)
                .with_product_feature(a.product_feature)
                .with_aux_weight(a.lambda)
                .with_stop_gradient(a.stop_gradient),
        )
    };
    if a.bench_steps > 0 {
        let lookup = lookup.as_ref().context("--bench-steps needs LEARN stores")?;
        let fc = fused_config(lookup);
        let f_batcher = Batcher::new(&data, &users, &items, Some(lookup));
        return bench_steps(&a, &split, &tc, &rc, &fc, &b_batcher, &f_batcher, &device);
    }
    let run = Run { split: &split, tc: &tc, steps, labels: &labels, device: &device };
    let base = run.fit("baseline", rc.init::<CpuAutodiff>(&device), &b_batcher)?;
    reports.insert("baseline".into(), report_json(&base.report, base.auc));

    let mut fused_cfg = None;
    let mut fused_model = None;
    if let Some(lookup) = &lookup {
        let fc = fused_config(lookup);
        let f_batcher = Batcher::new(&data, &users, &items, Some(lookup));
        CpuAutodiff::seed(&device, a.seed);
        let fused = run.fit("fused", fc.init::<CpuAutodiff>(&device), &f_batcher)?;
        eprintln!(
            "fused/baseline training throughput: {:.2}x",
            fused.report.samples_per_sec / base.report.samples_per_sec.max(1e-9)
        );
        reports.insert("fused".into(), report_json(&fused.report, fused.auc));
        names.push("fused");
        fused_scores = Some(fused.scores);
        fused_cfg = Some(fc);
        fused_model = Some(fused.model);
    }
    let mut scores = vec![base.scores];
    scores.extend(fused_scores);

    let pred = a.out.join("predictions.csv");
    io::write_predictions_segmented(
        &pred,
        &data,
        &split.test,
        &names,
        &scores,
        a.use_weights,
        segments.as_ref(),
    )?;
    let meta = RankersMeta {
        baseline: rc,
        fused: fused_cfg,
        users,
        items,
        dataset_users: data.users.clone(),
        dataset_items: data.items.clone(),
        features: data.features.clone(),
    };
    io::save_rankers(&a.out.join("rankers"), &meta, &base.model, fused_model.as_ref())?;
    reports.insert(
        "split".into(),
        serde_json::json!({
            "test_from": match &cut { TestCut::Global(t) => serde_json::json!(t), TestCut::PerUser(_) => serde_json::Value::Null },
            "leave_last": match plan { SplitPlan::LeaveLast { n } => Some(n), _ => None },
            "train": split.train.len(),
            "valid": split.valid.len(),
            "test": split.test.len(),
        }),
    );
    let rep = serde_json::to_vec_pretty(&serde_json::Value::Object(reports))?;
    learnrec_eval::atomic::write(&a.out.join("train_report.json"), &rep)?;
    eprintln!(
        "wrote {} and {}",
        pred.display(),
        a.out.join("rankers").display()
    );
    Ok(())
}

/// The paper's segments counted on the log rows before the test part (per user for leave-last
/// cuts).
fn segments_before_test(
    log: &InteractionLog,
    rule: &LabelRule,
    cut: &TestCut,
    n_users: usize,
    n_items: usize,
) -> Segments {
    let th = Thresholds::default();
    match cut {
        TestCut::Global(t) => Segments::before(log, rule, *t, n_users, n_items, &th),
        TestCut::PerUser(c) => {
            let mut before = InteractionLog {
                users: log.users.clone(),
                items: log.items.clone(),
                rows: Vec::new(),
            };
            before.rows = log
                .rows
                .iter()
                .filter(|r| c.part(r.user, r.ts) != Part::Test)
                .cloned()
                .collect();
            Segments::before(&before, rule, i64::MAX, n_users, n_items, &th)
        }
    }
}

/// What one training run shares between the baseline and the fused ranker.
struct Run<'a> {
    split: &'a Split,
    tc: &'a TrainConfig,
    /// Steps of the whole run (progress bar length).
    steps: u64,
    /// Test labels, in `split.test` order.
    labels: &'a [f32],
    device: &'a learnrec_fusion::burn::tensor::Device<CpuAutodiff>,
}

/// A trained ranker: its inference model, training report, test scores and test AUC.
struct Fitted<M> {
    model: M,
    report: TrainReport,
    scores: Vec<f32>,
    auc: Option<f64>,
}

impl Run<'_> {
    /// Trains `model` (initialised by the caller right after seeding Burn) with a progress bar,
    /// scores the test split and prints a one-line summary.
    fn fit<M>(&self, name: &str, model: M, batcher: &Batcher<'_>) -> anyhow::Result<Fitted<M::InnerModule>>
    where
        M: RankModel<CpuAutodiff> + AutodiffModule<CpuAutodiff> + Clone,
        M::InnerModule: RankModel<<CpuAutodiff as AutodiffBackend>::InnerBackend>,
    {
        let pb = ProgressBar::new(self.steps);
        pb.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(name.to_owned());
        let (model, report) = train::<CpuAutodiff, _>(name, model, batcher, self.split, self.tc, self.device, |_, l| {
            pb.inc(1);
            pb.set_message(format!("loss {l:.4}"));
        })?;
        pb.finish_and_clear();
        let model = model.valid();
        let scores = predict(&model, batcher, &self.split.test, 4096, self.device)?;
        let auc = auc(&scores, self.labels);
        let best = report.epochs.get(report.best_epoch.saturating_sub(1));
        eprintln!(
            "{name}: {} epochs (best {}), valid AUC {}, test AUC {}, {:.0} train samples/s",
            report.epochs.len(),
            report.best_epoch,
            best.and_then(|b| b.valid_auc).map_or("undefined".into(), |v| format!("{v:.4}")),
            auc.map_or("undefined".into(), |v| format!("{v:.4}")),
            report.samples_per_sec
        );
        Ok(Fitted { model, report, scores, auc })
    }
}

/// `--bench-steps`: alternating training steps of the two rankers with per-phase timers.
#[allow(clippy::too_many_arguments)]
fn bench_steps(
    a: &Args,
    split: &Split,
    tc: &TrainConfig,
    rc: &RankerConfig,
    fc: &FusedRankerConfig,
    b_batcher: &Batcher<'_>,
    f_batcher: &Batcher<'_>,
    device: &learnrec_fusion::burn::tensor::Device<CpuAutodiff>,
) -> anyhow::Result<()> {
    use learnrec_fusion::train::{StepTimes, Trainer, epoch_order};
    CpuAutodiff::seed(device, a.seed);
    let mut tb = Trainer::new(rc.init::<CpuAutodiff>(device), tc, device)?;
    CpuAutodiff::seed(device, a.seed);
    let mut tf = Trainer::new(fc.init::<CpuAutodiff>(device), tc, device)?;
    let order = epoch_order(split.train.len(), a.seed);
    let warmup = 5;
    let (mut sb, mut sf) = (Vec::new(), Vec::new());
    let mut buf = Vec::with_capacity(a.batch_size);
    for (k, chunk) in order.chunks(a.batch_size.max(1)).cycle().take(a.bench_steps + warmup).enumerate() {
        buf.clear();
        buf.extend(chunk.iter().map(|&i| split.train[i]));
        let (mut b, mut f) = (StepTimes::default(), StepTimes::default());
        tb.step("baseline", b_batcher, &buf, Some(&mut b))?;
        tf.step("fused", f_batcher, &buf, Some(&mut f))?;
        if k >= warmup && buf.len() == a.batch_size {
            sb.push(b);
            sf.push(f);
        }
    }
    let median = |v: &[StepTimes], f: fn(&StepTimes) -> std::time::Duration| {
        let mut x: Vec<f64> = v.iter().map(|s| f(s).as_secs_f64() * 1e3).collect();
        x.sort_by(f64::total_cmp);
        x.get(x.len() / 2).copied().unwrap_or(0.0)
    };
    let total = |v: &[StepTimes]| v.iter().map(|s| s.total().as_secs_f64()).sum::<f64>();
    println!(
        "{} interleaved steps of batch {} (after {warmup} warm-up); median ms per phase:",
        sb.len(),
        a.batch_size
    );
    println!("{:>9} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7} {:>12}", "ranker", "batch", "gather", "forward", "backward", "sparse", "optim", "total", "samples/s");
    let mut sps = Vec::new();
    for (name, v) in [("baseline", &sb), ("fused", &sf)] {
        let r = (v.len() * a.batch_size) as f64 / total(v).max(1e-9);
        sps.push(r);
        println!(
            "{name:>9} {:>7.3} {:>7.3} {:>7.3} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {r:>12.0}",
            median(v, |s| s.batch),
            median(v, |s| s.gather),
            median(v, |s| s.forward),
            median(v, |s| s.backward),
            median(v, |s| s.sparse),
            median(v, |s| s.optim),
            median(v, |s| s.total()),
        );
    }
    println!(
        "fused/baseline training throughput: {:.2}x (samples/s over all measured steps)",
        sps[1] / sps[0].max(1e-9)
    );
    Ok(())
}

fn report_json(r: &TrainReport, test_auc: Option<f64>) -> serde_json::Value {
    serde_json::json!({
        "epochs": r.epochs.len(),
        "best_epoch": r.best_epoch,
        "train_samples_per_sec": r.samples_per_sec,
        "train_seconds": r.train_time.as_secs_f64(),
        "test_auc": test_auc,
        "valid_auc": r.epochs.iter().map(|e| e.valid_auc).collect::<Vec<_>>(),
        "valid_logloss": r.epochs.iter().map(|e| e.valid_logloss).collect::<Vec<_>>(),
        "train_loss": r.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["rank-train"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn toy_end_to_end_then_bench_serve() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let a = args(&[
            "--data",
            "toy",
            "--toy-users",
            "60",
            "--toy-items",
            "80",
            "--out",
            out,
            "--epochs",
            "1",
            "--interaction",
            "dcn",
        ]);
        run(a).unwrap();
        let text = std::fs::read_to_string(dir.path().join("predictions.csv")).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("user_id,item_id,label,score_baseline,score_fused")
        );
        assert!(text.lines().count() > 100);
        for f in [
            "rankers/baseline.mpk",
            "rankers/fused.mpk",
            "rankers/rankers.json",
            "train_report.json",
        ] {
            assert!(dir.path().join(f).is_file(), "{f} missing");
        }
        bench_serve_toy(dir.path(), 10, 2, false);
    }

    /// `bench-serve` on the toy rankers that `rank-train` wrote under `dir` (20 candidates).
    fn bench_serve_toy(dir: &std::path::Path, requests: usize, rounds: usize, reference: bool) {
        let b = crate::cmd::bench_serve::Args {
            rankers: dir.join("rankers"),
            user_store: None,
            item_store: None,
            content_store: None,
            candidates: 20,
            requests,
            warmup: 2,
            seed: 1,
            rounds,
            reference,
        };
        crate::cmd::bench_serve::run(b).unwrap();
    }

    #[test]
    fn toy_mlp_serve_plan_and_bench_steps() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let toy = ["--data", "toy", "--toy-users", "60", "--toy-items", "80", "--out", out];
        let mut v = toy.to_vec();
        v.extend(["--epochs", "1"]);
        run(args(&v)).unwrap();
        for reference in [false, true] {
            bench_serve_toy(dir.path(), 9, 3, reference);
        }
        // benchmark mode trains nothing to disk
        let bench = tempfile::tempdir().unwrap();
        let mut v = toy.to_vec();
        v[7] = bench.path().to_str().unwrap();
        v.extend(["--bench-steps", "3", "--batch-size", "32"]);
        run(args(&v)).unwrap();
        assert!(!bench.path().join("predictions.csv").exists());
    }

    /// A tiny world (generated here) in `dir`; returns its log's last timestamp.
    fn tiny_world(dir: &std::path::Path) -> i64 {
        use learnrec_eval::world::{World, WorldConfig};
        let w = World::generate(&WorldConfig {
            users: 120,
            items: 60,
            days: 20,
            eval_days: 3,
            ..Default::default()
        })
        .unwrap();
        let log = w.simulate(None);
        w.write(dir, &log).unwrap();
        log.time_range().unwrap().1
    }

    #[test]
    fn world_day_split_and_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let wdir = tmp.path().join("world");
        let last = tiny_world(&wdir);
        let out = tmp.path().join("out");
        let (w, o) = (wdir.to_str().unwrap(), out.to_str().unwrap());
        run(args(&[
            "--dir",
            w,
            "--out",
            o,
            "--epochs",
            "1",
            "--test-days",
            "3",
            "--valid-days",
            "2",
        ]))
        .unwrap();
        let boundary = last + 1 - 3 * DAY;
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("train_report.json")).unwrap()).unwrap();
        assert_eq!(rep["split"]["test_from"], boundary);
        // every test row is at or after the boundary, every train row before it (same examples
        // as rank-train builds)
        let ds = read_dataset_dir(&wdir).unwrap();
        let d = io::from_log(
            &ds.catalog,
            &ds.log,
            &LabelRule::default(),
            LabelSpace::Impressions,
            1,
            7,
        );
        assert_eq!(
            d.features.fields,
            [
                "category",
                "brand",
                "price_log2",
                "top_category",
                "price_bucket"
            ]
        );
        let (split, from) =
            make_split(SplitPlan::Days { test: 3, valid: 2 }, &d, Some(&ds.log)).unwrap();
        assert!(matches!(from, TestCut::Global(b) if b == boundary));
        assert!(!split.train.is_empty() && !split.test.is_empty());
        assert!(split.test.iter().all(|e| e.ts >= boundary));
        assert!(split.train.iter().all(|e| e.ts < boundary - 2 * DAY));
        assert!(
            split
                .valid
                .iter()
                .all(|e| e.ts >= boundary - 2 * DAY && e.ts < boundary)
        );
        assert_eq!(rep["split"]["test"], split.test.len());
        assert_eq!(rep["split"]["train"], split.train.len());

        let text = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("user_id,item_id,label,score_baseline,user_segment,item_segment")
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), split.test.len());
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            assert_eq!(r.len(), 6, "{r:?}");
            for s in &r[4..] {
                assert!(Segment::parse(s).is_some_and(|g| g.name() == *s), "{s}");
            }
            seen.insert((r[4], r[5]));
        }
        // the segments are counted before the boundary: check one user against the log
        let sg = Segments::before(
            &ds.log,
            &LabelRule::default(),
            boundary,
            d.users.len(),
            d.items.len(),
            &Thresholds::default(),
        );
        for (e, r) in split.test.iter().zip(&rows) {
            assert_eq!(r[0], d.users.name(e.user));
            assert_eq!(r[4], sg.user(e.user).name());
            assert_eq!(r[5], sg.item(e.item).name());
        }
        assert!(seen.len() > 1, "one segment pair only: {seen:?}");
    }

    #[test]
    fn bad_day_splits_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let wdir = tmp.path().join("world");
        tiny_world(&wdir);
        let (w, o) = (wdir.to_str().unwrap(), tmp.path().to_str().unwrap());
        let e = run(args(&["--dir", w, "--out", o, "--test-days", "0"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--test-days must be at least 1 (got 0)");
        let e = run(args(&[
            "--dir",
            w,
            "--out",
            o,
            "--test-days",
            "15",
            "--valid-days",
            "5",
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "--test-days 15 and --valid-days 5 leave no training data: the log spans"
            ),
            "{e}"
        );
        let e = run(args(&["--dir", w, "--out", o, "--valid-days=-1"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--valid-days must be at least 0 (got -1)");
        // fractions and days are alternatives
        let r = Cli::try_parse_from([
            "rank-train",
            "--out",
            o,
            "--test-days",
            "3",
            "--train-frac",
            "0.5",
        ]);
        assert!(r.is_err());
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = run(args(&["--data", "world", "--out", "/tmp/x"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--dir is required with --data world/movielens");
        let e = run(args(&[
            "--data",
            "toy",
            "--out",
            "/tmp/x",
            "--train-frac",
            "0.95",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--train-frac and --valid-frac"), "{e}");
    }

    /// A tiny MovieLens-format log in `dir`: 20 users × 12 ratings of distinct items, user `u`
    /// active after user `u − 1` (so a global time cut takes whole late users), with a tie across
    /// each user's leave-last cut (the 4th and 3rd last ratings share a second).
    fn tiny_movielens(dir: &std::path::Path) {
        use std::fmt::Write as _;
        std::fs::create_dir_all(dir).unwrap();
        let mut item =
            String::from("item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n");
        for i in 0..40 {
            writeln!(
                item,
                "m{i}\tMovie {i}\t{}\t{}",
                1990 + i % 10,
                ["Drama", "Comedy Drama", "Action"][i % 3]
            )
            .unwrap();
        }
        let mut inter =
            String::from("user_id:token\titem_id:token\trating:float\ttimestamp:float\n");
        for u in 0..20 {
            for k in 0..12i64 {
                let ts = 1_000_000 + u * 1000 + if k == 9 { 8 } else { k } * 10;
                writeln!(
                    inter,
                    "u{u}\tm{}\t{}\t{ts}",
                    (u * 7 + k * 3) % 40,
                    1 + (u + k) % 5
                )
                .unwrap();
            }
        }
        std::fs::write(dir.join("tiny.item"), item).unwrap();
        std::fs::write(dir.join("tiny.inter"), inter).unwrap();
    }

    type PerUser = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

    /// `(history, target)` item sets per user of a `learnrec sequences` JSON Lines file.
    fn read_seqs(path: &std::path::Path) -> (PerUser, PerUser) {
        let (mut h, mut t) = (PerUser::new(), PerUser::new());
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let u = v["user"].as_str().unwrap().to_string();
            let items = |k: &str| {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect()
            };
            h.insert(u.clone(), items("history"));
            t.insert(u, items("target"));
        }
        (h, t)
    }

    /// Runs `rank-train` on `dir` with `extra` flags; returns the test rows' items per user.
    fn ranker_test_rows(dir: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> PerUser {
        let mut v = vec![
            "--data",
            "movielens",
            "--dir",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
        ];
        v.extend_from_slice(extra);
        run(args(&v)).unwrap();
        let mut rows = PerUser::new();
        for line in std::fs::read_to_string(out.join("predictions.csv"))
            .unwrap()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split(',').collect();
            rows.entry(f[0].to_string())
                .or_default()
                .insert(f[1].to_string());
        }
        rows
    }

    /// The leak check of the MovieLens pipeline: with the shared leave-last cut, no item of a
    /// user's test history (what `export` embeds) and no item the towers train on (train
    /// histories and targets) is one of that user's ranker test rows, and the rated test rows are
    /// exactly the towers' test targets. The old global fraction split does leak (the control).
    #[test]
    fn movielens_leave_last_split_does_not_leak_into_learn_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ml");
        tiny_movielens(&data);
        let seq = tmp.path().join("seq");
        let d = data.to_str().unwrap();
        crate::run_argv(
            &[
                "sequences",
                "--data",
                d,
                "--out",
                seq.to_str().unwrap(),
                "--split",
                "leave-last",
                "--target-len",
                "3",
                "--history-len",
                "50",
            ]
            .map(String::from),
        )
        .unwrap();
        let (train_h, train_t) = read_seqs(&seq.join("train.jsonl"));
        let (test_h, test_t) = read_seqs(&seq.join("test.jsonl"));
        assert_eq!(test_t.len(), 20);
        let rated: PerUser = {
            let ds = read_dataset_dir(&data).unwrap();
            let mut m = PerUser::new();
            for r in &ds.log.rows {
                m.entry(ds.log.users.name(r.user).to_string())
                    .or_default()
                    .insert(ds.catalog.ids.name(r.item).to_string());
            }
            m
        };
        let rows = ranker_test_rows(&data, &tmp.path().join("rank"), &["--leave-last", "3"]);
        let rep: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join("rank/train_report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(rep["split"]["leave_last"], 3);
        for (u, targets) in &test_t {
            assert_eq!(
                targets.len(),
                4,
                "{u}: the last 3 ratings plus the one tied with the 3rd last"
            );
            let test_rows = &rows[u];
            let rated_test: std::collections::BTreeSet<String> =
                test_rows.intersection(&rated[u]).cloned().collect();
            assert_eq!(
                &rated_test, targets,
                "{u}: rated ranker test rows = towers' test targets"
            );
            assert!(
                test_rows.len() > targets.len(),
                "{u}: sampled negatives are test rows too"
            );
            assert!(
                test_h[u].is_disjoint(test_rows),
                "{u}: exported history contains a ranker test row"
            );
            assert!(
                train_h[u].is_disjoint(test_rows) && train_t[u].is_disjoint(test_rows),
                "{u}: towers train on a ranker test row"
            );
            assert!(
                train_h[u].is_disjoint(targets) && train_t[u].is_disjoint(targets),
                "{u}: towers train on a test target"
            );
            assert_eq!(train_t[u].len(), 3);
        }
        // Control: the fraction split takes whole late users as test, whose histories are exactly
        // the test rows — the leak the shared cut removes.
        let rows = ranker_test_rows(
            &data,
            &tmp.path().join("frac"),
            &["--train-frac", "0.8", "--valid-frac", "0.1"],
        );
        assert!(
            rows.iter()
                .any(|(u, r)| test_h.get(u).is_some_and(|h| !h.is_disjoint(r))),
            "the control found no leak"
        );
    }

    #[test]
    fn movielens_defaults_to_leave_last_10() {
        let a = args(&["--data", "movielens", "--dir", "x", "--out", "y"]);
        assert_eq!(split_plan(&a).unwrap(), SplitPlan::LeaveLast { n: 10 });
        let a = args(&[
            "--data",
            "movielens",
            "--dir",
            "x",
            "--out",
            "y",
            "--train-frac",
            "0.7",
        ]);
        assert!(matches!(
            split_plan(&a).unwrap(),
            SplitPlan::Fractions { .. }
        ));
        let a = args(&["--data", "world", "--dir", "x", "--out", "y"]);
        assert_eq!(
            split_plan(&a).unwrap(),
            SplitPlan::Days { test: 7, valid: 7 }
        );
        let e = split_plan(&args(&[
            "--data",
            "movielens",
            "--out",
            "y",
            "--leave-last",
            "0",
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "--leave-last must be at least 1 (got 0)");
        let e =
            split_plan(&args(&["--data", "toy", "--out", "y", "--leave-last", "3"])).unwrap_err();
        assert!(e.to_string().contains("needs an interaction log"), "{e}");
        assert!(
            Cli::try_parse_from([
                "rank-train",
                "--out",
                "y",
                "--leave-last",
                "3",
                "--test-days",
                "2"
            ])
            .is_err()
        );
    }
}
