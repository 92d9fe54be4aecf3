//! `learnrec ab-sim` (also the `ab-sim` binary): simulate an A/B test of ranking policies on a
//! world with known truth and write `report.json`, `report.md` and `report.html` (see
//! `learnrec_eval::abtest`).
//!
//! Arms: the built-in policies (popularity, random, oracle) and the rankers trained by
//! `learnrec rank-train` (baseline, LEARN-fused; `--rankers OUT/rankers`), on three worlds: the
//! toy world, the synthetic world (generated here, or loaded from a `learnrec world` directory)
//! and MovieLens-1M through a fitted oracle. The paper's set-up is
//! `--control baseline --treatment fused --rankers OUT/rankers`.

use anyhow::Context;
use clap::ValueEnum;
use learnrec_eval::store::StoreKind;
use learnrec_fusion::arm::{RankerArm, RankerKind};
use learnrec_fusion::io::{SavedRankers, load_rankers};
use learnrec_fusion::lookup::load_store;
use learnrec_fusion::{CpuBackend, LearnLookup};
use learnrec_eval::abtest::{
    self, ArmSpec, Environment, ExperimentConfig, FittedOracle, FittedOracleConfig, Mode,
    Objective, OracleArm, PopularityArm, RandomArm, RetrievalConfig, ToyConfig, ToyEnv, WorldEnv,
};
use learnrec_eval::data::LabelRule;
use learnrec_eval::data::reader::read_dataset_dir;
use learnrec_eval::world::{World, WorldConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// A built-in ranking policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Rank by the environment's popularity prior.
    Popularity,
    /// Rank at random.
    Random,
    /// Rank by the true expected revenue (p_click · p_convert · price): the upper bound.
    Oracle,
    /// The baseline ranker trained by `rank-train` (needs `--rankers`).
    Baseline,
    /// The LEARN-fused ranker trained by `rank-train` (needs `--rankers` and the LEARN stores).
    Fused,
}

impl Policy {
    /// Label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Policy::Popularity => "popularity",
            Policy::Random => "random",
            Policy::Oracle => "oracle",
            Policy::Baseline => "baseline ranker",
            Policy::Fused => "LEARN-fused ranker",
        }
    }
    fn ranker(self) -> Option<RankerKind> {
        match self {
            Policy::Baseline => Some(RankerKind::Baseline),
            Policy::Fused => Some(RankerKind::Fused),
            _ => None,
        }
    }
}

/// The world to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvChoice {
    /// The latent-factor toy world (`learnrec_eval::abtest::toy`).
    Toy,
    /// The synthetic e-commerce world (ground truth); the experiment runs on the days after its history.
    World,
    /// MovieLens-1M through a FITTED ORACLE (no ground truth; see `learnrec_eval::abtest::fitted`).
    Movielens,
}

/// Options of `ab-sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory for report.json, report.md and report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// The world.
    #[arg(long, value_enum, default_value_t = EnvChoice::Toy)]
    pub env: EnvChoice,
    /// Control policy.
    #[arg(long, value_enum, default_value_t = Policy::Popularity)]
    pub control: Policy,
    /// Treatment policy (ignored with --aa).
    #[arg(long, value_enum, default_value_t = Policy::Oracle)]
    pub treatment: Policy,
    /// A/A test: the control policy in both arms.
    #[arg(long)]
    pub aa: bool,
    /// Control traffic share (a multiple of 0.0001).
    #[arg(long, default_value_t = 0.2)]
    pub control_share: f64,
    /// Treatment traffic share (a multiple of 0.0001).
    #[arg(long, default_value_t = 0.2)]
    pub treatment_share: f64,
    /// Experiment name (report title).
    #[arg(long, default_value = "ab-sim")]
    pub name: String,
    /// Salt of the traffic split.
    #[arg(long, default_value = "learnrec-ab")]
    pub salt: String,
    /// Seed of the simulated outcomes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 9)]
    pub days: u32,
    /// Candidates per request.
    #[arg(long, default_value_t = 200)]
    pub candidates: usize,
    /// Shown slots per request.
    #[arg(long, default_value_t = 10)]
    pub slots: usize,
    /// Significance level.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// User-level bootstrap resamples (0 = skip).
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Toy or generated synthetic world: users.
    #[arg(long, default_value_t = 100_000)]
    pub users: u32,
    /// Toy or generated synthetic world: items.
    #[arg(long, default_value_t = 20_000)]
    pub items: u32,
    /// Toy or generated synthetic world: seed.
    #[arg(long, default_value_t = 1)]
    pub world_seed: u64,
    /// Generated synthetic world: days of history before the experiment.
    #[arg(long, default_value_t = 30)]
    pub history_days: u32,
    /// Synthetic world: load `world.json` + `interactions.csv` from this `learnrec world` directory
    /// instead of generating one (the experiment runs on its evaluation window).
    #[arg(long)]
    pub world_dir: Option<PathBuf>,
    /// MovieLens-1M directory (`ml-1m.item`, `ml-1m.inter`); default: the asset cache.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Rankers directory written by `rank-train` (`OUT/rankers`): required by the baseline and
    /// fused arms.
    #[arg(long)]
    pub rankers: Option<PathBuf>,
    /// LEARN user store of the fused arm (default: `user.safetensors` beside the rankers
    /// directory, as `rank-train --data toy` writes it).
    #[arg(long)]
    pub user_store: Option<PathBuf>,
    /// LEARN item store of the fused arm (default: `item.safetensors` beside the rankers directory).
    #[arg(long)]
    pub item_store: Option<PathBuf>,
    /// Content store for items absent from the item store (default: `content.safetensors` beside
    /// the rankers directory, if present).
    #[arg(long)]
    pub content_store: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Everything the arms are built from.
struct ArmContext<'a> {
    a: &'a Args,
    env: Arc<dyn Environment>,
    start_day: u32,
    /// External ids of the environment's dense users and items (`None`: the toy world, which no
    /// ranker was trained on).
    names: Option<(Vec<String>, Vec<String>)>,
    rankers: Option<SavedRankers<CpuBackend>>,
}

impl ArmContext<'_> {
    /// Loads the rankers once, if any arm needs them.
    fn load_rankers(&mut self, policies: &[Policy]) -> anyhow::Result<()> {
        let Some(p) = policies.iter().find(|p| p.ranker().is_some()) else {
            return Ok(());
        };
        let flag = format!("{p:?}").to_lowercase();
        let dir = self.a.rankers.as_ref().with_context(|| {
            format!(
                "the {flag} arm needs --rankers DIR (the `rankers/` directory written by `learnrec rank-train --out DIR`)"
            )
        })?;
        if self.names.is_none() {
            anyhow::bail!(
                "the {flag} arm needs --env world or --env movielens (no ranker is trained on the toy world)"
            );
        }
        let device = Default::default();
        self.rankers = Some(
            load_rankers::<CpuBackend>(dir, &device)
                .with_context(|| format!("loading the rankers from {}", dir.display()))?,
        );
        Ok(())
    }

    /// The LEARN lookup of the fused arm over the rankers' dataset ids.
    fn lookup(&self, saved: &SavedRankers<CpuBackend>) -> anyhow::Result<LearnLookup> {
        let a = self.a;
        let beside = |name: &str| {
            a.rankers
                .as_ref()
                .and_then(|r| r.parent())
                .map(|p| p.join(name))
                .filter(|p| p.exists())
        };
        let up = a.user_store.clone().or_else(|| beside("user.safetensors")).context(
            "the fused arm needs --user-store (the LEARN user store; none found beside --rankers)",
        )?;
        let ip = a.item_store.clone().or_else(|| beside("item.safetensors")).context(
            "the fused arm needs --item-store (the LEARN item store; none found beside --rankers)",
        )?;
        let cp = a.content_store.clone().or_else(|| beside("content.safetensors"));
        let us = load_store(&up, StoreKind::User)?;
        let is = load_store(&ip, StoreKind::Item)?;
        let cs = cp
            .as_deref()
            .map(|p| load_store(p, StoreKind::Content))
            .transpose()?;
        let m = &saved.meta;
        Ok(LearnLookup::new(
            &m.dataset_users,
            &m.dataset_items,
            &us,
            &is,
            cs.as_ref(),
        )?)
    }

    fn arm(&self, p: Policy, seed: u64) -> anyhow::Result<Arc<dyn abtest::Arm>> {
        let env = &self.env;
        Ok(match p {
            Policy::Popularity => Arc::new(PopularityArm::from_env(env.as_ref(), self.start_day)),
            Policy::Random => Arc::new(RandomArm::new(seed)),
            Policy::Oracle => Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
            Policy::Baseline | Policy::Fused => {
                let (Some(saved), Some((users, items)), Some(kind)) =
                    (&self.rankers, &self.names, p.ranker())
                else {
                    anyhow::bail!("internal: the rankers were not loaded");
                };
                let lookup = match kind {
                    RankerKind::Fused => Some(self.lookup(saved)?),
                    RankerKind::Baseline => None,
                };
                let arm = RankerArm::new(saved, kind, lookup, users, items)?;
                let c = arm.coverage;
                eprintln!(
                    "{}: users {}/{} known to the ranker ({} with a trained ID), items {}/{} ({} with a trained ID)",
                    kind.label(),
                    c.users_in_dataset,
                    c.users,
                    c.users_in_vocab,
                    c.items_in_dataset,
                    c.items,
                    c.items_in_vocab
                );
                Arc::new(arm)
            }
        })
    }
}

/// Builds the environment and the first experiment day.
#[allow(clippy::type_complexity)]
fn environment(
    a: &Args,
) -> anyhow::Result<(Arc<dyn Environment>, u32, Option<(Vec<String>, Vec<String>)>)> {
    Ok(match a.env {
        EnvChoice::Toy => {
            if a.users == 0 || a.items == 0 {
                anyhow::bail!("--users and --items must be positive");
            }
            (
                Arc::new(ToyEnv::new(&ToyConfig {
                    users: a.users,
                    items: a.items,
                    seed: a.world_seed,
                    ..ToyConfig::default()
                })),
                0,
                None,
            )
        }
        EnvChoice::World => {
            let (world, log) = match &a.world_dir {
                Some(dir) => {
                    let world = World::load(dir)
                        .with_context(|| format!("loading the world from {}", dir.display()))?;
                    let log = read_dataset_dir(dir)
                        .with_context(|| format!("reading the world's log in {}", dir.display()))?
                        .log;
                    (world, log)
                }
                None => {
                    let cfg = WorldConfig {
                        users: a.users,
                        items: a.items,
                        days: a.history_days + a.days,
                        eval_days: a.days,
                        seed: a.world_seed,
                        ..WorldConfig::default()
                    };
                    let world = World::generate(&cfg).context("generating the synthetic world")?;
                    eprintln!("simulating {} days of history …", a.history_days);
                    let log = world.simulate(None);
                    (world, log)
                }
            };
            let names = (
                (0..world.n_users() as u32).map(|u| world.user_id(u)).collect(),
                (0..world.n_items() as u32).map(|i| world.item_id(i)).collect(),
            );
            let env = WorldEnv::new(world, &log);
            let start = env.first_experiment_day();
            (Arc::new(env), start, Some(names))
        }
        EnvChoice::Movielens => {
            let dir = a.data.clone().unwrap_or_else(|| {
                learnrec_eval::assets::path_of(learnrec_eval::assets::Asset::Movielens1m)
            });
            let log = read_dataset_dir(&dir)
                .with_context(|| {
                    format!(
                        "reading MovieLens-1M from {} (fetch it with `learnrec fetch`)",
                        dir.display()
                    )
                })?
                .log;
            eprintln!("fitting the oracle on {} ratings …", log.rows.len());
            let env = FittedOracle::fit(
                "MovieLens-1M",
                &log,
                &LabelRule::default(),
                None,
                &FittedOracleConfig::default(),
            )?;
            let names = (log.users.names().to_vec(), log.items.names().to_vec());
            (Arc::new(env), 0, Some(names))
        }
    })
}

/// Builds the environment and the arms, simulates, writes the report and prints the lifts.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mut used = vec![a.control];
    if !a.aa {
        used.push(a.treatment);
    }
    // Fail on missing flags before the (possibly slow) environment is built.
    if let Some(p) = used.iter().find(|p| p.ranker().is_some())
        && a.rankers.is_none()
    {
        anyhow::bail!(
            "the {} arm needs --rankers DIR (the `rankers/` directory written by `learnrec rank-train --out DIR`)",
            format!("{p:?}").to_lowercase()
        );
    }
    let (env, start_day, names) = environment(&a)?;
    let mut ctx = ArmContext {
        a: &a,
        env: env.clone(),
        start_day,
        names,
        rankers: None,
    };
    ctx.load_rankers(&used)?;
    let control = ctx.arm(a.control, a.seed ^ 0xC0)?;
    let arms = if a.aa {
        ArmSpec::aa(a.control_share, control)
    } else {
        vec![
            ArmSpec::new(
                &format!("control ({})", a.control.label()),
                a.control_share,
                control,
            ),
            ArmSpec::new(
                &format!("treatment ({})", a.treatment.label()),
                a.treatment_share,
                ctx.arm(a.treatment, a.seed ^ 0x7E)?,
            ),
        ]
    };
    drop(ctx);
    let c = a.candidates;
    let cfg = ExperimentConfig {
        name: a.name.clone(),
        salt: a.salt.clone(),
        seed: a.seed,
        start_day,
        days: a.days,
        slots: a.slots,
        retrieval: RetrievalConfig {
            total: c,
            popular: c * 3 / 10,
            personal: c / 2,
            new_items: c / 10,
            ..RetrievalConfig::default()
        },
        alpha: a.alpha,
        bootstrap: a.bootstrap,
        threads: a.threads,
        progress: !a.quiet,
        mode: if a.aa { Mode::Aa } else { Mode::Ab },
        ..ExperimentConfig::default()
    };
    let report = abtest::run(env.as_ref(), &arms, &cfg)
        .with_context(|| format!("simulating on {}", env.name()))?;
    report
        .write_dir(&a.out)
        .with_context(|| format!("writing the report to {}", a.out.display()))?;
    for c in &report.comparisons {
        for m in &c.total {
            if let Some(l) = m.lift {
                println!(
                    "{} vs {}: {:<20} lift {:+.4} [{:+.4}, {:+.4}] p = {}{}",
                    c.treatment,
                    c.control,
                    m.metric.label(),
                    l.lift,
                    l.ci_low,
                    l.ci_high,
                    if l.p_value < 1e-4 {
                        format!("{:.1e}", l.p_value)
                    } else {
                        format!("{:.4}", l.p_value)
                    },
                    if m.significant { " *" } else { "" }
                );
            }
        }
    }
    if let Some(s) = report.srm.as_ref().filter(|s| s.mismatch) {
        eprintln!("warning: sample ratio mismatch (p = {:.2e})", s.p_value);
    }
    let p = &report.performance;
    println!(
        "{} requests in {:.2} s ({:.0}/s); report in {}",
        p.requests,
        p.seconds,
        p.requests_per_sec,
        a.out.display()
    );
    Ok(())
}

