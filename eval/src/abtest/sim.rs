//! The simulation loop: days → active users → requests → retrieval → ranking → sampled outcomes,
//! then aggregation into a [`Report`].
//!
//! Determinism: every (day, user) gets its own RNG stream seeded from `(seed, day, user)`, users
//! are simulated in parallel (rayon) but collected in user order, and all sums run sequentially
//! in that order — so a seed gives bit-identical reports for any thread count.

use super::report::{
    ArmReport, BootstrapCi, Comparison, ConfigInfo, EnvInfo, Metric, MetricLift, Performance,
    Report, SegmentProportions, SegmentShare, Slice, SliceLifts, SliceMetrics,
};
use super::split::Split;
use super::stats::{self, Moments};
use super::{Arm, Environment, mix64, stream_seed};
use crate::segment::{Segment, Thresholds};
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// A/B (arms differ) or A/A (every arm runs the same policy: a check of the pipeline, whose
/// significant results are false positives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Control vs treatment(s).
    Ab,
    /// The same policy in every arm.
    Aa,
}

/// How much a shown slot's click probability is damped by its position (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PositionBias {
    /// `1 / log2(1 + pos)` (the DCG discount): 1 at the top slot, 0.5 at slot 3.
    InverseLog2,
    /// No position effect.
    None,
}

impl PositionBias {
    /// Examination probability of 1-based position `pos`.
    pub fn factor(self, pos: usize) -> f32 {
        match self {
            PositionBias::InverseLog2 => 1.0 / ((1 + pos) as f32).log2(),
            PositionBias::None => 1.0,
        }
    }
}

/// The candidate retrieval stage: per request, `popular` draws from the `popular_pool` most
/// popular available items, `personal` from the environment's personalised source, `new_items`
/// from items launched in the last `new_window_days`, then random available items fill up to
/// `total` (duplicates removed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalConfig {
    /// Candidates per request.
    pub total: usize,
    /// Draws from the popular pool.
    pub popular: usize,
    /// Size of the popular pool.
    pub popular_pool: usize,
    /// Personalised candidates asked from the environment.
    pub personal: usize,
    /// Draws from recently launched items.
    pub new_items: usize,
    /// An item is "new" for this many days after launch.
    pub new_window_days: u32,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            total: 200,
            popular: 60,
            popular_pool: 1000,
            personal: 100,
            new_items: 20,
            new_window_days: 3,
        }
    }
}

/// An experiment's settings (everything but the arms).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// Experiment name (report title).
    pub name: String,
    /// Salt of the traffic split (one per experiment layer).
    pub salt: String,
    /// Seed of the outcome randomness.
    pub seed: u64,
    /// First simulated day on the environment's clock.
    pub start_day: u32,
    /// Number of simulated days.
    pub days: u32,
    /// Shown slots per request (the top of each arm's ranking).
    pub slots: usize,
    /// Position bias on the shown slots.
    pub position_bias: PositionBias,
    /// Candidate retrieval.
    pub retrieval: RetrievalConfig,
    /// Segment thresholds (paper: users 0 / 1–35 / >35 interactions, items 0 / 1–29 / ≥30 conversions).
    pub thresholds: Thresholds,
    /// Significance level of the confidence intervals and tests.
    pub alpha: f64,
    /// User-level bootstrap resamples of the total lifts (0 = skip).
    pub bootstrap: usize,
    /// Worker threads (0 = rayon's default).
    pub threads: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// A/B or A/A.
    pub mode: Mode,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            name: "ab-sim".into(),
            salt: "learnrec-ab".into(),
            seed: 42,
            start_day: 0,
            days: 9,
            slots: 10,
            position_bias: PositionBias::InverseLog2,
            retrieval: RetrievalConfig::default(),
            thresholds: Thresholds::default(),
            alpha: 0.05,
            bootstrap: 200,
            threads: 0,
            progress: false,
            mode: Mode::Ab,
        }
    }
}

/// One arm of the experiment: a name, a traffic share (a whole number of 0.01% buckets) and a
/// policy. The first arm is the control; lifts are reported for every other arm against it.
#[derive(Clone)]
pub struct ArmSpec {
    /// Arm name (unique).
    pub name: String,
    /// Traffic share in (0, 1].
    pub share: f64,
    /// The ranking policy.
    pub arm: Arc<dyn Arm>,
}

impl ArmSpec {
    /// An arm.
    pub fn new(name: &str, share: f64, arm: Arc<dyn Arm>) -> Self {
        ArmSpec {
            name: name.to_string(),
            share,
            arm,
        }
    }
    /// The two arms of an A/A test: `A1` and `A2`, both running `arm` with `share` each.
    pub fn aa(share: f64, arm: Arc<dyn Arm>) -> Vec<ArmSpec> {
        vec![
            ArmSpec::new("A1", share, arm.clone()),
            ArmSpec::new("A2", share, arm),
        ]
    }
}

/// Per-user (or per-user-day) counts.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: f64,
    imps: f64,
    clicks: f64,
    convs: f64,
    revenue: f64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.imps += o.imps;
        self.clicks += o.clicks;
        self.convs += o.convs;
        self.revenue += o.revenue;
    }
    /// `(x, y)` of a metric for this user.
    fn xy(&self, m: Metric) -> (f64, f64) {
        match m {
            Metric::Ctr => (self.imps, self.clicks),
            Metric::Cvr => (self.clicks, self.convs),
            Metric::RevenuePerUser => (1.0, self.revenue),
            Metric::ConversionsPerUser => (1.0, self.convs),
            Metric::Auc | Metric::Uauc | Metric::Wuauc => (0.0, 0.0),
        }
    }
}

/// The ratio metrics, in report order.
const RATIO_METRICS: [Metric; 4] = [
    Metric::Ctr,
    Metric::Cvr,
    Metric::RevenuePerUser,
    Metric::ConversionsPerUser,
];

/// Accumulated slice: sums and per-metric moments over users.
#[derive(Debug, Clone, Default)]
struct Acc {
    users: u64,
    sum: Counts,
    m: [Moments; 4],
}

impl Acc {
    fn push(&mut self, c: &Counts) {
        self.users += 1;
        self.sum.add(c);
        for (k, &metric) in RATIO_METRICS.iter().enumerate() {
            let (x, y) = c.xy(metric);
            self.m[k].push(x, y);
        }
    }
    fn ratio(&self, metric: Metric) -> Option<(f64, f64)> {
        RATIO_METRICS
            .iter()
            .position(|&m| m == metric)
            .and_then(|k| self.m[k].ratio())
    }
}

/// One shown impression, kept for the AUC of the arm's scores.
#[derive(Debug, Clone, Copy)]
struct Imp {
    user: u32,
    score: f32,
    conv: bool,
    day: u32,
    useg: u8,
    iseg: u8,
}

/// A user's day in the experiment.
struct UserDay {
    user: u32,
    arm: u8,
    counts: Counts,
    by_iseg: [Counts; 3],
    imps: Vec<(f32, bool, u8)>,
}

/// Per-day shared retrieval inputs.
struct DayCtx {
    day: u32,
    available: Vec<u32>,
    popular: Vec<u32>,
    new_items: Vec<u32>,
}

/// Per-worker scratch space.
struct Scratch {
    stamp: Vec<u32>,
    generation: u32,
    cands: Vec<u32>,
    personal: Vec<u32>,
    scores: Vec<f32>,
    order: Vec<u32>,
}

impl Scratch {
    fn new(items: usize) -> Self {
        Scratch {
            stamp: vec![0; items],
            generation: 0,
            cands: Vec::new(),
            personal: Vec::new(),
            scores: Vec::new(),
            order: Vec::new(),
        }
    }
    fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
    }
}

fn seg_index(s: Segment) -> u8 {
    match s {
        Segment::ColdStart => 0,
        Segment::LongTail => 1,
        Segment::Regular => 2,
    }
}

/// Runs the experiment: `arms[0]` is the control. Validates the configuration, simulates
/// `cfg.days` days in parallel and returns the full report.
pub fn run<E: Environment + ?Sized>(
    env: &E,
    arms: &[ArmSpec],
    cfg: &ExperimentConfig,
) -> Result<Report> {
    validate(env, arms, cfg)?;
    let shares: Vec<(&str, f64)> = arms.iter().map(|a| (a.name.as_str(), a.share)).collect();
    let split = Split::new(&cfg.salt, &shares)?;
    let mut builder = rayon::ThreadPoolBuilder::new();
    if cfg.threads > 0 {
        builder = builder.num_threads(cfg.threads);
    }
    let pool = builder.build().map_err(|e| {
        Error::Invalid(format!("ab-sim: cannot start {} threads: {e}", cfg.threads))
    })?;
    pool.install(|| simulate(env, arms, cfg, split, pool.current_num_threads()))
}

fn validate<E: Environment + ?Sized>(
    env: &E,
    arms: &[ArmSpec],
    cfg: &ExperimentConfig,
) -> Result<()> {
    if arms.len() < 2 {
        return Err(Error::Invalid(format!(
            "ab-sim needs a control and at least one treatment arm, got {} arm(s)",
            arms.len()
        )));
    }
    if arms.len() > 250 {
        return Err(Error::Invalid(format!(
            "ab-sim supports at most 250 arms, got {}",
            arms.len()
        )));
    }
    if cfg.days == 0 {
        return Err(Error::Invalid("ab-sim: days must be at least 1".into()));
    }
    if cfg.slots == 0 {
        return Err(Error::Invalid("ab-sim: slots must be at least 1".into()));
    }
    if cfg.retrieval.total == 0 {
        return Err(Error::Invalid(
            "ab-sim: retrieval.total must be at least 1".into(),
        ));
    }
    if !(cfg.alpha > 0.0 && cfg.alpha < 1.0) {
        return Err(Error::Invalid(format!(
            "ab-sim: alpha must be in (0, 1), got {}",
            cfg.alpha
        )));
    }
    if env.num_users() == 0 {
        return Err(Error::Invalid(format!(
            "ab-sim: environment `{}` has no users",
            env.name()
        )));
    }
    if env.num_items() == 0 {
        return Err(Error::Invalid(format!(
            "ab-sim: environment `{}` has no items",
            env.name()
        )));
    }
    if cfg.mode == Mode::Aa && arms.iter().any(|a| !Arc::ptr_eq(&a.arm, &arms[0].arm)) {
        return Err(Error::Invalid(
            "ab-sim: A/A mode needs the same policy (the same Arc) in every arm".into(),
        ));
    }
    Ok(())
}

fn day_context<E: Environment + ?Sized>(env: &E, day: u32, r: &RetrievalConfig) -> DayCtx {
    let available: Vec<u32> = (0..env.num_items())
        .filter(|&i| env.available(i, day))
        .collect();
    let mut by_pop: Vec<(f32, u32)> = available
        .iter()
        .map(|&i| (env.popularity(i, day), i))
        .collect();
    let k = r.popular_pool.min(by_pop.len());
    let cmp = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if k > 0 && k < by_pop.len() {
        by_pop.select_nth_unstable_by(k - 1, cmp);
    }
    by_pop.truncate(k);
    by_pop.sort_by(cmp);
    let popular = by_pop.into_iter().map(|p| p.1).collect();
    let new_items = available
        .iter()
        .copied()
        .filter(|&i| {
            env.launch_day(i)
                .is_some_and(|l| l <= day && day - l < r.new_window_days.max(1))
        })
        .collect();
    DayCtx {
        day,
        available,
        popular,
        new_items,
    }
}

#[allow(clippy::too_many_arguments)]
fn simulate_user<E: Environment + ?Sized>(
    env: &E,
    arm: &dyn Arm,
    arm_idx: u8,
    user: u32,
    requests: u32,
    ctx: &DayCtx,
    cfg: &ExperimentConfig,
    item_seg: &[u8],
    s: &mut Scratch,
) -> UserDay {
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.seed, ctx.day, user));
    let r = &cfg.retrieval;
    let n_items = env.num_items();
    let mut out = UserDay {
        user,
        arm: arm_idx,
        counts: Counts::default(),
        by_iseg: [Counts::default(); 3],
        imps: Vec::new(),
    };
    for _ in 0..requests {
        out.counts.requests += 1.0;
        s.next_generation();
        s.cands.clear();
        let generation = s.generation;
        let total = r.total;
        let add = |stamp: &mut [u32], cands: &mut Vec<u32>, i: u32| {
            if cands.len() < total && stamp[i as usize] != generation {
                stamp[i as usize] = generation;
                cands.push(i);
            }
        };
        if !ctx.popular.is_empty() {
            for _ in 0..r.popular {
                add(
                    &mut s.stamp,
                    &mut s.cands,
                    ctx.popular[rng.random_range(0..ctx.popular.len())],
                );
            }
        }
        if r.personal > 0 {
            s.personal.clear();
            env.personal_candidates(user, ctx.day, r.personal, &mut rng, &mut s.personal);
            for &i in &s.personal {
                if i < n_items && env.available(i, ctx.day) {
                    add(&mut s.stamp, &mut s.cands, i);
                }
            }
        }
        if !ctx.new_items.is_empty() {
            for _ in 0..r.new_items {
                add(
                    &mut s.stamp,
                    &mut s.cands,
                    ctx.new_items[rng.random_range(0..ctx.new_items.len())],
                );
            }
        }
        if !ctx.available.is_empty() {
            let mut tries = 0;
            while s.cands.len() < total.min(ctx.available.len()) && tries < 4 * total {
                add(
                    &mut s.stamp,
                    &mut s.cands,
                    ctx.available[rng.random_range(0..ctx.available.len())],
                );
                tries += 1;
            }
        }
        let n = s.cands.len();
        if n == 0 {
            continue;
        }
        s.scores.clear();
        s.scores.resize(n, 0.0);
        arm.score(user, &s.cands, ctx.day, &mut s.scores);
        for x in s.scores.iter_mut() {
            if x.is_nan() {
                *x = f32::NEG_INFINITY;
            }
        }
        // Rank: score descending, then item id ascending (a total order, so deterministic).
        s.order.clear();
        s.order.extend(0..n as u32);
        let (scores, cands) = (&s.scores, &s.cands);
        let cmp = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(cands[*a as usize].cmp(&cands[*b as usize]))
        };
        let k = cfg.slots.min(n);
        if k < n {
            s.order.select_nth_unstable_by(k - 1, cmp);
        }
        s.order[..k].sort_by(cmp);
        for pos in 0..k {
            let idx = s.order[pos] as usize;
            let item = s.cands[idx];
            let pc = (env.p_click(user, item, ctx.day) * cfg.position_bias.factor(pos + 1))
                .clamp(0.0, 1.0);
            let clicked = rng.random::<f32>() < pc;
            let converted =
                clicked && rng.random::<f32>() < env.p_convert(user, item, ctx.day).clamp(0.0, 1.0);
            let rev = if converted {
                env.price(item) as f64
            } else {
                0.0
            };
            let seg = item_seg[item as usize];
            for c in [&mut out.counts, &mut out.by_iseg[seg as usize]] {
                c.imps += 1.0;
                c.clicks += clicked as u8 as f64;
                c.convs += converted as u8 as f64;
                c.revenue += rev;
            }
            out.imps.push((s.scores[idx], converted, seg));
        }
    }
    out
}

fn simulate<E: Environment + ?Sized>(
    env: &E,
    arms: &[ArmSpec],
    cfg: &ExperimentConfig,
    split: Split,
    threads: usize,
) -> Result<Report> {
    let t0 = Instant::now();
    let n_users = env.num_users() as usize;
    let n_items = env.num_items() as usize;
    let n_arms = arms.len();
    const UNASSIGNED: u8 = u8::MAX;
    // Assignment (one hash per user) and pre-period segments.
    let assign: Vec<u8> = (0..env.num_users())
        .into_par_iter()
        .map(|u| {
            split
                .assign(env.user_key(u))
                .map_or(UNASSIGNED, |a| a as u8)
        })
        .collect();
    let user_seg: Vec<u8> = (0..env.num_users())
        .map(|u| seg_index(cfg.thresholds.user(env.user_activity(u))))
        .collect();
    let item_seg: Vec<u8> = (0..env.num_items())
        .map(|i| seg_index(cfg.thresholds.item(env.item_conversions(i))))
        .collect();

    let pb = if cfg.progress {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} user-days ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );

    let mut ever_active = vec![false; n_users];
    let mut totals: Vec<(Counts, [Counts; 3])> =
        vec![(Counts::default(), [Counts::default(); 3]); n_users];
    let mut day_accs: Vec<Vec<Acc>> = Vec::with_capacity(cfg.days as usize);
    let mut imps: Vec<Vec<Imp>> = vec![Vec::new(); n_arms];
    let mut requests_total = 0u64;
    let mut candidates_total = 0u64;

    for d in 0..cfg.days {
        let day = cfg.start_day + d;
        pb.set_message(format!("day {}/{}", d + 1, cfg.days));
        let ctx = day_context(env, day, &cfg.retrieval);
        let mut active = env.active_users(day, cfg.seed);
        active.sort_unstable();
        active.dedup_by_key(|a| a.0);
        active.retain(|&(u, r)| (u as usize) < n_users && r > 0);
        for &(u, _) in &active {
            ever_active[u as usize] = true;
        }
        let work: Vec<(u32, u32, u8)> = active
            .iter()
            .filter(|(u, _)| assign[*u as usize] != UNASSIGNED)
            .map(|&(u, r)| (u, r, assign[u as usize]))
            .collect();
        pb.inc_length(work.len() as u64);
        let results: Vec<Vec<UserDay>> = work
            .par_chunks(256)
            .map_init(
                || Scratch::new(n_items),
                |s, chunk| {
                    let v: Vec<UserDay> = chunk
                        .iter()
                        .map(|&(u, r, a)| {
                            simulate_user(
                                env,
                                arms[a as usize].arm.as_ref(),
                                a,
                                u,
                                r,
                                &ctx,
                                cfg,
                                &item_seg,
                                s,
                            )
                        })
                        .collect();
                    pb.inc(chunk.len() as u64);
                    v
                },
            )
            .collect();
        let mut accs = vec![Acc::default(); n_arms];
        for ud in results.into_iter().flatten() {
            let a = ud.arm as usize;
            accs[a].push(&ud.counts);
            requests_total += ud.counts.requests as u64;
            let t = &mut totals[ud.user as usize];
            t.0.add(&ud.counts);
            for s in 0..3 {
                t.1[s].add(&ud.by_iseg[s]);
            }
            let useg = user_seg[ud.user as usize];
            imps[a].extend(ud.imps.iter().map(|&(score, conv, iseg)| Imp {
                user: ud.user,
                score,
                conv,
                day,
                useg,
                iseg,
            }));
        }
        candidates_total += ctx.available.len().min(cfg.retrieval.total) as u64
            * accs.iter().map(|a| a.sum.requests as u64).sum::<u64>();
        day_accs.push(accs);
    }
    pb.finish_and_clear();
    let simulate_seconds = t0.elapsed().as_secs_f64();

    // Totals and segments over users (the randomisation unit).
    let mut tot_accs = vec![Acc::default(); n_arms];
    let mut useg_accs = vec![vec![Acc::default(); 3]; n_arms];
    let mut iseg_accs = vec![vec![Acc::default(); 3]; n_arms];
    let mut arm_users: Vec<Vec<Counts>> = vec![Vec::new(); n_arms];
    let mut group_counts = vec![0u64; n_arms + 1];
    let mut user_seg_counts = [0u64; 3];
    for u in 0..n_users {
        if !ever_active[u] {
            continue;
        }
        let a = assign[u];
        if a == UNASSIGNED {
            group_counts[n_arms] += 1;
            continue;
        }
        let a = a as usize;
        group_counts[a] += 1;
        user_seg_counts[user_seg[u] as usize] += 1;
        let (c, by) = &totals[u];
        tot_accs[a].push(c);
        useg_accs[a][user_seg[u] as usize].push(c);
        for s in 0..3 {
            let mut cs = by[s];
            cs.requests = c.requests;
            iseg_accs[a][s].push(&cs);
        }
        arm_users[a].push(*c);
    }

    // SRM over arms (+ unassigned when it has a share).
    let unassigned = split.unassigned_share();
    let (obs, sh): (Vec<u64>, Vec<f64>) = if unassigned > 0.0 {
        (
            group_counts.clone(),
            split
                .arms
                .iter()
                .map(|a| a.share)
                .chain([unassigned])
                .collect(),
        )
    } else {
        (
            group_counts[..n_arms].to_vec(),
            split.arms.iter().map(|a| a.share).collect(),
        )
    };
    let srm = stats::srm_check(&obs, &sh);

    // Per-arm slices.
    let seg_of = |i: u8| Segment::ALL[i as usize];
    let mut arm_reports = Vec::with_capacity(n_arms);
    for a in 0..n_arms {
        let im = &imps[a];
        // Every slice of this arm, computed in parallel (AUCs sort their impressions).
        let mut slices: Vec<(Slice, &Acc)> = vec![(Slice::Total, &tot_accs[a])];
        slices.extend((0..cfg.days).map(|d| {
            (
                Slice::Day {
                    day: cfg.start_day + d,
                },
                &day_accs[d as usize][a],
            )
        }));
        slices.extend((0..3u8).map(|s| {
            (
                Slice::UserSegment { segment: seg_of(s) },
                &useg_accs[a][s as usize],
            )
        }));
        slices.extend((0..3u8).map(|s| {
            (
                Slice::ItemSegment { segment: seg_of(s) },
                &iseg_accs[a][s as usize],
            )
        }));
        let mut metrics: Vec<SliceMetrics> = slices
            .par_iter()
            .map(|&(slice, acc)| {
                let keep = |x: &Imp| match slice {
                    Slice::Total => true,
                    Slice::Day { day } => x.day == day,
                    Slice::UserSegment { segment } => x.useg == seg_index(segment),
                    Slice::ItemSegment { segment } => x.iseg == seg_index(segment),
                };
                let (s, l): (Vec<f32>, Vec<bool>) = im
                    .iter()
                    .filter(|x| keep(x))
                    .map(|x| (x.score, x.conv))
                    .unzip();
                let mut rec: Vec<(u32, f32, bool)> = im
                    .iter()
                    .filter(|x| keep(x))
                    .map(|x| (x.user, x.score, x.conv))
                    .collect();
                slice_metrics(slice, acc, (stats::auc(&s, &l), stats::user_auc(&mut rec)))
            })
            .collect();
        let item_segments = metrics.split_off(metrics.len() - 3);
        let user_segments = metrics.split_off(metrics.len() - 3);
        let days = metrics.split_off(1);
        let total = metrics
            .pop()
            .ok_or_else(|| Error::Invalid("ab-sim: internal: no total slice".into()))?;
        arm_reports.push(ArmReport {
            name: arms[a].name.clone(),
            share: arms[a].share,
            total,
            days,
            user_segments,
            item_segments,
        });
    }

    // Comparisons of each treatment against the control (arm 0).
    let mut comparisons = Vec::new();
    for t in 1..n_arms {
        let lifts_of =
            |c: &Acc, tr: &Acc, cm: &SliceMetrics, tm: &SliceMetrics| -> Vec<MetricLift> {
                let mut v: Vec<MetricLift> = RATIO_METRICS
                    .iter()
                    .map(|&m| {
                        let lift = match (c.ratio(m), tr.ratio(m)) {
                            (Some(cv), Some(tv)) => stats::relative_lift(cv, tv, cfg.alpha),
                            _ => None,
                        };
                        MetricLift::new(m, lift, cfg.alpha)
                    })
                    .collect();
                let auc_lift = match (cm.auc, tm.auc) {
                    (Some(c), Some(t)) => stats::absolute_diff(
                        (c.value, c.se * c.se),
                        (t.value, t.se * t.se),
                        cfg.alpha,
                    ),
                    _ => None,
                };
                v.push(MetricLift::new(Metric::Auc, auc_lift, cfg.alpha));
                let (cu, tu) = (cm.user_auc, tm.user_auc);
                let uauc = cu.zip(tu).and_then(|(c, t)| {
                    stats::absolute_diff(
                        (c.uauc, c.uauc_se.powi(2)),
                        (t.uauc, t.uauc_se.powi(2)),
                        cfg.alpha,
                    )
                });
                v.push(MetricLift::new(Metric::Uauc, uauc, cfg.alpha));
                let wuauc = cu.zip(tu).and_then(|(c, t)| {
                    stats::absolute_diff(
                        (c.wuauc, c.wuauc_se.powi(2)),
                        (t.wuauc, t.wuauc_se.powi(2)),
                        cfg.alpha,
                    )
                });
                v.push(MetricLift::new(Metric::Wuauc, wuauc, cfg.alpha));
                v
            };
        let (ca, ta) = (&arm_reports[0], &arm_reports[t]);
        let mut total = lifts_of(&tot_accs[0], &tot_accs[t], &ca.total, &ta.total);
        if cfg.bootstrap > 0 {
            for ml in total.iter_mut() {
                if ml.metric.relative() {
                    ml.bootstrap = bootstrap(
                        &arm_users[0],
                        &arm_users[t],
                        ml.metric,
                        cfg.bootstrap,
                        cfg.alpha,
                        cfg.seed ^ t as u64,
                    );
                }
            }
        }
        let days = (0..cfg.days as usize)
            .map(|d| SliceLifts {
                slice: Slice::Day {
                    day: cfg.start_day + d as u32,
                },
                lifts: lifts_of(&day_accs[d][0], &day_accs[d][t], &ca.days[d], &ta.days[d]),
            })
            .collect();
        let user_segments = (0..3)
            .map(|s| SliceLifts {
                slice: Slice::UserSegment {
                    segment: Segment::ALL[s],
                },
                lifts: lifts_of(
                    &useg_accs[0][s],
                    &useg_accs[t][s],
                    &ca.user_segments[s],
                    &ta.user_segments[s],
                ),
            })
            .collect();
        let item_segments = (0..3)
            .map(|s| SliceLifts {
                slice: Slice::ItemSegment {
                    segment: Segment::ALL[s],
                },
                lifts: lifts_of(
                    &iseg_accs[0][s],
                    &iseg_accs[t][s],
                    &ca.item_segments[s],
                    &ta.item_segments[s],
                ),
            })
            .collect();
        comparisons.push(Comparison {
            control: ca.name.clone(),
            treatment: ta.name.clone(),
            total,
            days,
            user_segments,
            item_segments,
        });
    }

    // Segment proportions (Table 7): users among the experiment's active users, items in the catalog.
    let n_exp_users: u64 = user_seg_counts.iter().sum();
    let mut item_seg_counts = [0u64; 3];
    for &s in &item_seg {
        item_seg_counts[s as usize] += 1;
    }
    let share = |c: &[u64; 3], n: u64| -> Vec<SegmentShare> {
        (0..3)
            .map(|s| SegmentShare {
                segment: Segment::ALL[s],
                count: c[s],
                proportion: if n > 0 { c[s] as f64 / n as f64 } else { 0.0 },
            })
            .collect()
    };
    let segment_proportions = SegmentProportions {
        users: share(&user_seg_counts, n_exp_users),
        items: share(&item_seg_counts, n_items as u64),
    };

    let seconds = t0.elapsed().as_secs_f64();
    let kind = env.kind();
    let mut notes = Vec::new();
    if kind == super::EnvKind::FittedOracle {
        notes.push(
            "The environment is a FITTED ORACLE: a model fitted on logged data stands in for the truth. Lifts measure how well a \
             ranker agrees with that model's preferences (and are biased toward rankers that resemble it); they are not predictions \
             of a real launch."
                .into(),
        );
    }
    if let Some(s) = srm.as_ref().filter(|s| s.mismatch) {
        notes.push(format!(
            "SAMPLE RATIO MISMATCH (chi-square p = {:.2e}): assigned user counts do not match the configured shares; do not trust the lifts.",
            s.p_value
        ));
    }
    if cfg.mode == Mode::Aa {
        notes.push(format!(
            "A/A test: every arm runs the same policy, so each significant result is a false positive (expected rate α = {}).",
            cfg.alpha
        ));
    }
    notes.push(
        "AUC standard errors (DeLong) treat impressions as independent and are optimistic; UAUC/WUAUC and ratio-metric CIs are \
         over users, the randomisation unit (delta method)."
            .into(),
    );
    Ok(Report {
        schema_version: 1,
        experiment: cfg.name.clone(),
        mode: cfg.mode,
        environment: EnvInfo {
            name: env.name(),
            kind,
            label: kind.label().into(),
            description: env.description(),
            users: env.num_users(),
            items: env.num_items(),
        },
        config: ConfigInfo {
            seed: cfg.seed,
            start_day: cfg.start_day,
            days: cfg.days,
            slots: cfg.slots,
            position_bias: cfg.position_bias,
            retrieval: cfg.retrieval,
            thresholds: cfg.thresholds,
            alpha: cfg.alpha,
            bootstrap: cfg.bootstrap,
        },
        split,
        srm,
        segment_proportions,
        arms: arm_reports,
        comparisons,
        performance: Performance {
            seconds,
            simulate_seconds,
            threads,
            requests: requests_total,
            requests_per_sec: if seconds > 0.0 {
                requests_total as f64 / seconds
            } else {
                0.0
            },
            candidates_scored: candidates_total,
        },
        notes,
    })
}

fn slice_metrics(
    slice: Slice,
    acc: &Acc,
    (auc, user_auc): (Option<stats::Auc>, Option<stats::UserAuc>),
) -> SliceMetrics {
    SliceMetrics {
        slice,
        users: acc.users,
        requests: acc.sum.requests as u64,
        impressions: acc.sum.imps as u64,
        clicks: acc.sum.clicks as u64,
        conversions: acc.sum.convs as u64,
        revenue: acc.sum.revenue,
        ctr: acc.ratio(Metric::Ctr).map(|r| r.0),
        cvr: acc.ratio(Metric::Cvr).map(|r| r.0),
        revenue_per_user: acc.ratio(Metric::RevenuePerUser).map(|r| r.0),
        conversions_per_user: acc.ratio(Metric::ConversionsPerUser).map(|r| r.0),
        auc,
        user_auc,
    }
}

/// User-level bootstrap percentile CI of the relative lift of `metric`.
fn bootstrap(
    control: &[Counts],
    treatment: &[Counts],
    metric: Metric,
    resamples: usize,
    alpha: f64,
    seed: u64,
) -> Option<BootstrapCi> {
    if control.len() < 2 || treatment.len() < 2 {
        return None;
    }
    let ratio = |users: &[Counts], rng: &mut ChaCha8Rng| -> Option<f64> {
        let (mut sx, mut sy) = (0.0, 0.0);
        for _ in 0..users.len() {
            let (x, y) = users[rng.random_range(0..users.len())].xy(metric);
            sx += x;
            sy += y;
        }
        (sx > 0.0).then(|| sy / sx)
    };
    let mut lifts: Vec<f64> = (0..resamples)
        .into_par_iter()
        .filter_map(|b| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix64(mix64(seed ^ 0xB007_57A9) ^ b as u64));
            let c = ratio(control, &mut rng)?;
            let t = ratio(treatment, &mut rng)?;
            (c > 0.0).then(|| t / c - 1.0)
        })
        .collect();
    if lifts.len() < resamples / 2 || lifts.is_empty() {
        return None;
    }
    lifts.sort_by(f64::total_cmp);
    let q = |p: f64| lifts[((p * (lifts.len() - 1) as f64).round() as usize).min(lifts.len() - 1)];
    Some(BootstrapCi {
        resamples: lifts.len(),
        low: q(alpha / 2.0),
        high: q(1.0 - alpha / 2.0),
    })
}
