//! Benchmark of the A/B engine on the toy world: a 9-day experiment (default 100k users, 200
//! candidates per request, 10 slots), popularity (control) vs the oracle (treatment), and
//! optionally the synthetic world (`--world`, oracle vs popularity on the days after its
//! history) or the fitted-oracle (real data) mode on MovieLens-1M (`--movielens DIR`).
//!
//! ```text
//! cargo run --release -p learnrec-eval --example bench_abtest -- [--users N] [--items N] [--days N]
//!     [--candidates N] [--threads N] [--share F] [--out DIR] [--movielens DIR] [--world]
//! ```
//!
//! Prints wall time and requests/s; `--out` writes report.{json,md,html}.

use learnrec_eval::abtest::report::Metric;
use learnrec_eval::abtest::{
    self, ArmSpec, ExperimentConfig, FittedOracle, FittedOracleConfig, Objective, OracleArm,
    PopularityArm, RandomArm, RetrievalConfig, ToyConfig, ToyEnv, WorldEnv,
};
use learnrec_eval::data::LabelRule;
use learnrec_eval::world::{World, WorldConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut users = 100_000u32;
    let mut items = 20_000u32;
    let mut days = 9u32;
    let mut candidates = 200usize;
    let mut threads = 0usize;
    let mut share = 0.2f64;
    let mut out: Option<PathBuf> = None;
    let mut movielens: Option<PathBuf> = None;
    let mut world = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--users" => users = val()?.parse()?,
            "--items" => items = val()?.parse()?,
            "--days" => days = val()?.parse()?,
            "--candidates" => candidates = val()?.parse()?,
            "--threads" => threads = val()?.parse()?,
            "--share" => share = val()?.parse()?,
            "--out" => out = Some(val()?.into()),
            "--movielens" => movielens = Some(val()?.into()),
            "--world" => world = true,
            other => anyhow::bail!("unknown argument `{other}`"),
        }
    }
    let retrieval = RetrievalConfig {
        total: candidates,
        popular: candidates * 3 / 10,
        personal: candidates / 2,
        new_items: candidates / 10,
        ..RetrievalConfig::default()
    };
    let cfg = ExperimentConfig {
        days,
        threads,
        retrieval,
        progress: true,
        ..ExperimentConfig::default()
    };

    let report = if let Some(path) = movielens {
        let t = Instant::now();
        let log = learnrec_eval::data::reader::read_dataset_dir(&path)?.log;
        eprintln!(
            "read {} ratings of {} users on {} items in {:.1} s",
            log.rows.len(),
            log.users.len(),
            log.items.len(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let env = Arc::new(FittedOracle::fit(
            "MovieLens-1M",
            &log,
            &LabelRule::default(),
            None,
            &FittedOracleConfig::default(),
        )?);
        eprintln!("fitted oracle in {:.1} s", t.elapsed().as_secs_f64());
        let arms = vec![
            ArmSpec::new("random", share, Arc::new(RandomArm::new(1))),
            ArmSpec::new(
                "popularity",
                share,
                Arc::new(PopularityArm::from_env(env.as_ref(), 0)),
            ),
        ];
        abtest::run(
            env.as_ref(),
            &arms,
            &ExperimentConfig {
                name: "MovieLens-1M (fitted oracle)".into(),
                ..cfg
            },
        )?
    } else if world {
        let t = Instant::now();
        let w = World::generate(&WorldConfig {
            users,
            items,
            days: 30 + days,
            eval_days: days,
            ..WorldConfig::default()
        })?;
        let log = w.simulate(None);
        let env = Arc::new(WorldEnv::new(w, &log));
        eprintln!(
            "generated and simulated the world ({users} users, {items} items, {} log rows) in {:.1} s",
            log.rows.len(),
            t.elapsed().as_secs_f64()
        );
        let start = env.first_experiment_day();
        let arms = vec![
            ArmSpec::new(
                "popularity",
                share,
                Arc::new(PopularityArm::from_env(env.as_ref(), start)),
            ),
            ArmSpec::new(
                "oracle",
                share,
                Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
            ),
        ];
        abtest::run(
            env.as_ref(),
            &arms,
            &ExperimentConfig {
                name: "bench: synthetic world".into(),
                start_day: start,
                ..cfg
            },
        )?
    } else {
        let t = Instant::now();
        let env = Arc::new(ToyEnv::new(&ToyConfig {
            users,
            items,
            ..ToyConfig::default()
        }));
        eprintln!(
            "built toy world ({users} users, {items} items) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let arms = vec![
            ArmSpec::new(
                "popularity",
                share,
                Arc::new(PopularityArm::from_env(env.as_ref(), 0)),
            ),
            ArmSpec::new(
                "oracle",
                share,
                Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
            ),
        ];
        abtest::run(
            env.as_ref(),
            &arms,
            &ExperimentConfig {
                name: "bench: oracle vs popularity".into(),
                ..cfg
            },
        )?
    };
    let p = &report.performance;
    println!(
        "{} days, {} simulated requests ({} candidates each) in {:.2} s ({:.2} s simulating, {:.0} requests/s) on {} threads: {:.0} requests/s overall",
        report.config.days,
        p.requests,
        report.config.retrieval.total,
        p.seconds,
        p.simulate_seconds,
        p.requests as f64 / p.simulate_seconds.max(1e-9),
        p.threads,
        p.requests_per_sec
    );
    for c in &report.comparisons {
        for m in [
            Metric::RevenuePerUser,
            Metric::Ctr,
            Metric::Cvr,
            Metric::Auc,
        ] {
            if let Some(l) = c.total_lift(m).and_then(|x| x.lift) {
                println!(
                    "{} vs {}: {} {:.4} → {:.4}, lift {:+.4} [{:+.4}, {:+.4}], p = {:.2e}",
                    c.treatment,
                    c.control,
                    m.label(),
                    l.control,
                    l.treatment,
                    l.lift,
                    l.ci_low,
                    l.ci_high,
                    l.p_value
                );
            }
        }
    }
    if let Some(srm) = &report.srm {
        println!(
            "SRM: chi2 {:.3}, p {:.3}, mismatch {}",
            srm.chi2, srm.p_value, srm.mismatch
        );
    }
    if let Some(dir) = out {
        report.write_dir(&dir)?;
        println!("wrote {}", dir.display());
    }
    Ok(())
}
