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
use learnrec_eval::abtest::{
    self, ArmSpec, Environment, ExperimentConfig, FittedOracle, FittedOracleConfig, Mode,
    Objective, OracleArm, PopularityArm, RandomArm, RetrievalConfig, ToyConfig, ToyEnv, WorldEnv,
};
use learnrec_eval::data::LabelRule;
use learnrec_eval::data::reader::read_dataset_dir;
use learnrec_eval::store::StoreKind;
use learnrec_eval::world::{World, WorldConfig};
use learnrec_fusion::arm::{RankerArm, RankerKind};
use learnrec_fusion::io::{SavedRankers, load_rankers};
use learnrec_fusion::lookup::load_store;
use learnrec_fusion::{CpuBackend, LearnLookup};
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
    /// Both shares at once, `CONTROL,TREATMENT` (e.g. `0.2,0.2`, the paper's set-up).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["control_share", "treatment_share"])]
    pub traffic: Option<Vec<f64>>,
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
    /// instead of generating one (the experiment runs on its evaluation window). `--world DIR`
    /// is the same.
    #[arg(long, alias = "world")]
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
        let cp = a
            .content_store
            .clone()
            .or_else(|| beside("content.safetensors"));
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
) -> anyhow::Result<(
    Arc<dyn Environment>,
    u32,
    Option<(Vec<String>, Vec<String>)>,
)> {
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
                (0..world.n_users() as u32)
                    .map(|u| world.user_id(u))
                    .collect(),
                (0..world.n_items() as u32)
                    .map(|i| world.item_id(i))
                    .collect(),
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
    let mut a = a;
    if let Some(t) = a.traffic.take() {
        anyhow::ensure!(t.len() == 2, "--traffic takes two shares, CONTROL,TREATMENT (got {} values)", t.len());
        a.control_share = t[0];
        a.treatment_share = t[1];
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use learnrec_eval::store::EmbeddingStore;
    use std::path::Path;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        Cli::parse_from(std::iter::once("ab-sim").chain(extra.iter().copied())).args
    }

    /// Stand-in LEARN stores for a world (the real ones come from `learnrec export`): a user's
    /// tastes and an item's one-hot subcategory/style/tier, so that `user · item` is the world's
    /// affinity term. Enough to give the fused ranker a signal in seconds.
    fn world_stores(world: &World, dir: &Path) -> (PathBuf, PathBuf) {
        let u0 = &world.users[0];
        let (ns, nst, nt) = (
            u0.sub_taste.len(),
            u0.style_taste.len(),
            u0.tier_taste.len(),
        );
        let dim = ns + nst + nt;
        let mut us = EmbeddingStore::new(StoreKind::User, dim);
        for (u, wu) in world.users.iter().enumerate() {
            let row: Vec<f32> = wu
                .sub_taste
                .iter()
                .chain(&wu.style_taste)
                .chain(&wu.tier_taste)
                .map(|&v| v as f32)
                .collect();
            us.insert(&world.user_id(u as u32), "", &row).unwrap();
        }
        let mut is = EmbeddingStore::new(StoreKind::Item, dim);
        for (i, it) in world.items.iter().enumerate() {
            let mut row = vec![0f32; dim];
            row[it.subcategory as usize] = 1.0;
            row[ns + it.style as usize] = 1.0;
            row[ns + nst + it.tier as usize] = 1.0;
            is.insert(&world.item_id(i as u32), "", &row).unwrap();
        }
        let (up, ip) = (dir.join("user.safetensors"), dir.join("item.safetensors"));
        us.save(&up).unwrap();
        is.save(&ip).unwrap();
        (up, ip)
    }

    /// Writes a world, its stand-in stores and trains both rankers on it; returns
    /// (world dir, rankers dir, user store, item store).
    fn world_with_rankers(
        root: &Path,
        users: u32,
        items: u32,
        days: u32,
        epochs: &str,
    ) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let wdir = root.join("world");
        let cfg = WorldConfig {
            users,
            items,
            days,
            eval_days: 3,
            seed: 5,
            ..WorldConfig::default()
        };
        let world = World::generate(&cfg).unwrap();
        let log = world.simulate(None);
        world.write(&wdir, &log).unwrap();
        let (up, ip) = world_stores(&world, root);
        let rdir = root.join("rank");
        let (w, u, i, r) = (
            wdir.to_str().unwrap(),
            up.to_str().unwrap(),
            ip.to_str().unwrap(),
            rdir.to_str().unwrap(),
        );
        crate::run_argv(&[
            "rank-train",
            "--data",
            "world",
            "--test-days",
            "3",
            "--valid-days",
            "3",
            "--dir",
            w,
            "--user-store",
            u,
            "--item-store",
            i,
            "--out",
            r,
            "--epochs",
            epochs,
            "--hidden",
            "32,16",
            "--aux-hidden",
            "16,8",
        ])
        .unwrap();
        (wdir, rdir.join("rankers"), up, ip)
    }

    fn arm_auc(report: &Path, arm: usize) -> (String, f64, u64) {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
        let a = &v["arms"][arm];
        (
            a["name"].as_str().unwrap().to_owned(),
            a["total"]["auc"]["value"].as_f64().unwrap_or(f64::NAN),
            a["total"]["impressions"].as_u64().unwrap(),
        )
    }

    #[test]
    fn world_baseline_vs_fused_and_random() {
        let tmp = tempfile::tempdir().unwrap();
        let (wdir, rankers, up, ip) = world_with_rankers(tmp.path(), 300, 120, 14, "3");
        let (w, r) = (wdir.to_str().unwrap(), rankers.to_str().unwrap());
        let (u, i) = (up.to_str().unwrap(), ip.to_str().unwrap());
        let out = tmp.path().join("ab");
        let common = [
            "--env",
            "world",
            "--world-dir",
            w,
            "--rankers",
            r,
            "--days",
            "1",
            "--control-share",
            "0.5",
            "--treatment-share",
            "0.5",
            "--bootstrap",
            "0",
            "--candidates",
            "60",
            "--quiet",
            "--user-store",
            u,
            "--item-store",
            i,
        ];
        let mut a1: Vec<&str> = common.to_vec();
        let o1 = out.join("bf");
        a1.extend([
            "--out",
            o1.to_str().unwrap(),
            "--control",
            "baseline",
            "--treatment",
            "fused",
        ]);
        crate::run_argv(&[&["ab-sim"][..], &a1].concat()).unwrap();
        for f in ["report.json", "report.md", "report.html"] {
            assert!(o1.join(f).is_file(), "{f} missing");
        }
        let (n0, auc_b, imp_b) = arm_auc(&o1, 0);
        let (n1, auc_f, imp_f) = arm_auc(&o1, 1);
        assert_eq!(n0, "control (baseline ranker)");
        assert_eq!(n1, "treatment (LEARN-fused ranker)");
        assert!(imp_b > 0 && imp_f > 0, "impressions {imp_b} {imp_f}");

        let mut a2: Vec<&str> = common.to_vec();
        let o2 = out.join("rf");
        a2.extend([
            "--out",
            o2.to_str().unwrap(),
            "--control",
            "random",
            "--treatment",
            "fused",
        ]);
        crate::run_argv(&[&["ab-sim"][..], &a2].concat()).unwrap();
        let (_, auc_r, _) = arm_auc(&o2, 0);
        let (_, auc_f2, _) = arm_auc(&o2, 1);
        eprintln!(
            "AUC: baseline {auc_b:.4}, fused {auc_f:.4} / random {auc_r:.4}, fused {auc_f2:.4}"
        );
        assert!(auc_b.is_finite() && auc_f.is_finite() && auc_r.is_finite());
        // The rankers' scores carry information the random arm's do not.
        assert!(
            (auc_f2 - auc_r).abs() > 1e-6,
            "fused {auc_f2} vs random {auc_r}"
        );

        // The arms themselves: one score per candidate, not constant, deterministic.
        let saved = load_rankers::<CpuBackend>(&rankers, &Default::default()).unwrap();
        let world = World::load(&wdir).unwrap();
        let names: (Vec<String>, Vec<String>) = (
            (0..world.n_users() as u32)
                .map(|u| world.user_id(u))
                .collect(),
            (0..world.n_items() as u32)
                .map(|i| world.item_id(i))
                .collect(),
        );
        let m = &saved.meta;
        let lookup = LearnLookup::new(
            &m.dataset_users,
            &m.dataset_items,
            &load_store(&up, StoreKind::User).unwrap(),
            &load_store(&ip, StoreKind::Item).unwrap(),
            None,
        )
        .unwrap();
        let items: Vec<u32> = (0..world.n_items() as u32).collect();
        for (kind, l) in [
            (RankerKind::Baseline, None),
            (RankerKind::Fused, Some(lookup)),
        ] {
            let arm = RankerArm::new(&saved, kind, l, &names.0, &names.1).unwrap();
            let mut s1 = vec![f32::NAN; items.len()];
            let mut s2 = vec![f32::NAN; items.len()];
            abtest::Arm::score(&arm, 3, &items, 0, &mut s1);
            abtest::Arm::score(&arm, 3, &items, 1, &mut s2);
            assert!(s1.iter().all(|v| v.is_finite()), "{kind:?}: {s1:?}");
            assert_eq!(s1, s2, "{kind:?} is not deterministic");
            let (lo, hi) = s1
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            assert!(hi - lo > 1e-4, "{kind:?}: constant scores {lo}..{hi}");
        }
        // A fused arm without stores is refused by name.
        let e = RankerArm::new(&saved, RankerKind::Fused, None, &names.0, &names.1).unwrap_err();
        assert!(e.to_string().contains("LEARN user and item stores"), "{e}");
    }

    /// End-to-end throughput on a real small world: `LEARNREC_AB_BENCH=users,items,days cargo test
    /// -p learnrec --bin learnrec bench_world_ab -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark; run explicitly"]
    fn bench_world_ab() {
        let spec = std::env::var("LEARNREC_AB_BENCH").unwrap_or_else(|_| "3000,800,40".into());
        let v: Vec<u32> = spec.split(',').map(|x| x.parse().unwrap()).collect();
        let tmp = tempfile::tempdir().unwrap();
        let t0 = std::time::Instant::now();
        let (wdir, rankers, up, ip) = world_with_rankers(tmp.path(), v[0], v[1], v[2], "3");
        eprintln!("world + rank-train: {:.1} s", t0.elapsed().as_secs_f64());
        let (w, r) = (wdir.to_str().unwrap(), rankers.to_str().unwrap());
        let (u, i) = (up.to_str().unwrap(), ip.to_str().unwrap());
        for threads in ["1", "0"] {
            let o = tmp.path().join(format!("ab{threads}"));
            crate::run_argv(&[
                "ab-sim",
                "--env",
                "world",
                "--world-dir",
                w,
                "--rankers",
                r,
                "--user-store",
                u,
                "--item-store",
                i,
                "--days",
                "3",
                "--control",
                "baseline",
                "--treatment",
                "fused",
                "--control-share",
                "0.5",
                "--treatment-share",
                "0.5",
                "--quiet",
                "--threads",
                threads,
                "--out",
                o.to_str().unwrap(),
            ])
            .unwrap();
            for k in 0..2 {
                let (n, auc, imp) = arm_auc(&o, k);
                eprintln!("threads {threads}: {n}: AUC {auc:.4} on {imp} impressions");
            }
        }
        // One arm's cost per request (200 candidates, one thread).
        let saved = load_rankers::<CpuBackend>(&rankers, &Default::default()).unwrap();
        let world = World::load(&wdir).unwrap();
        let users: Vec<String> = (0..world.n_users() as u32)
            .map(|u| world.user_id(u))
            .collect();
        let items: Vec<String> = (0..world.n_items() as u32)
            .map(|i| world.item_id(i))
            .collect();
        let m = &saved.meta;
        let lookup = LearnLookup::new(
            &m.dataset_users,
            &m.dataset_items,
            &load_store(&up, StoreKind::User).unwrap(),
            &load_store(&ip, StoreKind::Item).unwrap(),
            None,
        )
        .unwrap();
        let cands: Vec<u32> = (0..200)
            .map(|k| (k * 7919) % world.n_items() as u32)
            .collect();
        let mut out = vec![0f32; cands.len()];
        for (kind, l) in [
            (RankerKind::Baseline, None),
            (RankerKind::Fused, Some(lookup)),
        ] {
            let arm = RankerArm::new(&saved, kind, l, &users, &items).unwrap();
            let n = 2000u32;
            let t = std::time::Instant::now();
            for u in 0..n {
                abtest::Arm::score(&arm, u % users.len() as u32, &cands, 0, &mut out);
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            eprintln!(
                "{}: {us:.0} µs per 200-candidate request ({:.0} requests/s)",
                kind.label(),
                1e6 / us
            );
        }
    }

    #[test]
    fn traffic_sets_both_shares_and_runs_a_toy_experiment() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ab");
        let o = out.to_str().unwrap();
        let base = ["--out", o, "--env", "toy", "--users", "400", "--items", "100", "--days", "1", "--bootstrap", "0", "--quiet"];
        let a = args(&[&base[..], &["--traffic", "0.3,0.1"]].concat());
        assert_eq!((a.traffic.as_deref(), a.control_share), (Some(&[0.3, 0.1][..]), 0.2));
        run(a).unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        let shares: Vec<f64> = report["arms"].as_array().unwrap().iter().map(|a| a["share"].as_f64().unwrap()).collect();
        assert_eq!(shares, vec![0.3, 0.1], "--traffic reaches the arms");
        let e = Cli::try_parse_from(["ab-sim", "--out", o, "--traffic", "0.2,0.2", "--control-share", "0.1"]);
        assert!(e.is_err(), "--traffic conflicts with --control-share");
        let e = run(args(&[&base[..], &["--traffic", "0.2"]].concat())).unwrap_err().to_string();
        assert!(e.contains("--traffic takes two shares"), "{e}");
    }

    #[test]
    fn ranker_arms_need_rankers_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ab");
        let e = run(args(&[
            "--out",
            out.to_str().unwrap(),
            "--control",
            "fused",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rankers"), "{e}");
        assert!(e.starts_with("the fused arm"), "{e}");
        let e = run(args(&[
            "--out",
            out.to_str().unwrap(),
            "--treatment",
            "baseline",
            "--rankers",
            tmp.path().to_str().unwrap(),
            "--users",
            "50",
            "--items",
            "40",
            "--quiet",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("--env world or --env movielens"), "{e}");
    }

    #[test]
    fn missing_rankers_dir_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let wdir = tmp.path().join("w");
        let cfg = WorldConfig {
            users: 50,
            items: 20,
            days: 5,
            eval_days: 1,
            ..WorldConfig::default()
        };
        let world = World::generate(&cfg).unwrap();
        world.write(&wdir, &world.simulate(None)).unwrap();
        let e = run(args(&[
            "--out",
            tmp.path().join("ab").to_str().unwrap(),
            "--env",
            "world",
            "--world-dir",
            wdir.to_str().unwrap(),
            "--control",
            "baseline",
            "--rankers",
            tmp.path().join("nope").to_str().unwrap(),
            "--quiet",
        ]))
        .unwrap_err();
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        assert!(chain[0].contains("loading the rankers from"), "{chain:?}");
        assert!(
            chain.iter().any(|c| c.contains("rankers.json")),
            "{chain:?}"
        );
    }
}
