//! `ab-sim`: simulate an A/B test of ranking policies on a world with known truth and write
//! `report.json`, `report.md` and `report.html` (see `learnrec_eval::abtest`).
//!
//! This binary wires the built-in policies (popularity, random, oracle) on three worlds: the toy
//! world, the synthetic world (generated here, or loaded from a `learnrec world` directory) and
//! MovieLens-1M through a fitted oracle. Trained rankers plug in as further `Policy` variants,
//! each building an `ArmSpec` before the one call to `abtest::run`.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use learnrec_eval::abtest::{
    self, ArmSpec, Environment, ExperimentConfig, FittedOracle, FittedOracleConfig, Mode,
    Objective, OracleArm, PopularityArm, RandomArm, RetrievalConfig, ToyConfig, ToyEnv, WorldEnv,
};
use learnrec_eval::data::LabelRule;
use learnrec_eval::data::reader::read_dataset_dir;
use learnrec_eval::world::{World, WorldConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A built-in ranking policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Policy {
    /// Rank by the environment's popularity prior.
    Popularity,
    /// Rank at random.
    Random,
    /// Rank by the true expected revenue (p_click · p_convert · price): the upper bound.
    Oracle,
}

/// The world to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EnvChoice {
    /// The latent-factor toy world (`learnrec_eval::abtest::toy`).
    Toy,
    /// The synthetic e-commerce world (ground truth); the experiment runs on the days after its history.
    World,
    /// MovieLens-1M through a FITTED ORACLE (no ground truth; see `learnrec_eval::abtest::fitted`).
    Movielens,
}

/// Simulate an A/B (or A/A) test of ranking policies and write a report.
#[derive(Debug, Parser)]
#[command(name = "ab-sim", version, about)]
struct Args {
    /// Output directory for report.json, report.md and report.html.
    #[arg(long)]
    out: PathBuf,
    /// The world.
    #[arg(long, value_enum, default_value_t = EnvChoice::Toy)]
    env: EnvChoice,
    /// Control policy.
    #[arg(long, value_enum, default_value_t = Policy::Popularity)]
    control: Policy,
    /// Treatment policy (ignored with --aa).
    #[arg(long, value_enum, default_value_t = Policy::Oracle)]
    treatment: Policy,
    /// A/A test: the control policy in both arms.
    #[arg(long)]
    aa: bool,
    /// Control traffic share (a multiple of 0.0001).
    #[arg(long, default_value_t = 0.2)]
    control_share: f64,
    /// Treatment traffic share (a multiple of 0.0001).
    #[arg(long, default_value_t = 0.2)]
    treatment_share: f64,
    /// Experiment name (report title).
    #[arg(long, default_value = "ab-sim")]
    name: String,
    /// Salt of the traffic split.
    #[arg(long, default_value = "learnrec-ab")]
    salt: String,
    /// Seed of the simulated outcomes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 9)]
    days: u32,
    /// Candidates per request.
    #[arg(long, default_value_t = 200)]
    candidates: usize,
    /// Shown slots per request.
    #[arg(long, default_value_t = 10)]
    slots: usize,
    /// Significance level.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// User-level bootstrap resamples (0 = skip).
    #[arg(long, default_value_t = 200)]
    bootstrap: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Toy or generated synthetic world: users.
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Toy or generated synthetic world: items.
    #[arg(long, default_value_t = 20_000)]
    items: u32,
    /// Toy or generated synthetic world: seed.
    #[arg(long, default_value_t = 1)]
    world_seed: u64,
    /// Generated synthetic world: days of history before the experiment.
    #[arg(long, default_value_t = 30)]
    history_days: u32,
    /// Synthetic world: load `world.json` + `interactions.csv` from this `learnrec world` directory
    /// instead of generating one (the experiment runs on its evaluation window).
    #[arg(long)]
    world_dir: Option<PathBuf>,
    /// MovieLens-1M directory (`ml-1m.item`, `ml-1m.inter`); default: the asset cache.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn policy(
    p: Policy,
    env: &Arc<dyn Environment>,
    start_day: u32,
    seed: u64,
) -> Arc<dyn abtest::Arm> {
    match p {
        Policy::Popularity => Arc::new(PopularityArm::from_env(env.as_ref(), start_day)),
        Policy::Random => Arc::new(RandomArm::new(seed)),
        Policy::Oracle => Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
    }
}

/// Builds the environment and the first experiment day.
fn environment(a: &Args) -> anyhow::Result<(Arc<dyn Environment>, u32)> {
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
            let env = WorldEnv::new(world, &log);
            let start = env.first_experiment_day();
            (Arc::new(env), start)
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
            (Arc::new(env), 0)
        }
    })
}

fn run(a: Args) -> anyhow::Result<()> {
    let (env, start_day) = environment(&a)?;
    let control = policy(a.control, &env, start_day, a.seed ^ 0xC0);
    let arms = if a.aa {
        ArmSpec::aa(a.control_share, control)
    } else {
        vec![
            ArmSpec::new(
                &format!("control ({:?})", a.control).to_lowercase(),
                a.control_share,
                control,
            ),
            ArmSpec::new(
                &format!("treatment ({:?})", a.treatment).to_lowercase(),
                a.treatment_share,
                policy(a.treatment, &env, start_day, a.seed ^ 0x7E),
            ),
        ]
    };
    let c = a.candidates;
    let cfg = ExperimentConfig {
        name: a.name,
        salt: a.salt,
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

fn main() -> ExitCode {
    let res = run(Args::parse());
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
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
        super::Args::command().debug_assert();
    }
}
