//! Tests of the A/B engine (`learnrec_eval::abtest`) on the small toy world.

use learnrec_eval::abtest::report::Metric;
use learnrec_eval::abtest::stats::{chi2_sf, srm_check};
use learnrec_eval::abtest::{
    self, ArmSpec, Environment, ExperimentConfig, FittedOracle, FittedOracleConfig, Mode,
    Objective, OracleArm, PopularityArm, RandomArm, RetrievalConfig, Split, ToyConfig, ToyEnv,
    bucket, split::hash64,
};
use learnrec_eval::data::{Action, IdMap, Interaction, InteractionLog, LabelRule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Test vectors computed independently with Python:
/// `int.from_bytes(hashlib.sha256(f"{salt}:{uid}".encode()).digest()[:8], "big") % 10000`.
#[test]
fn hash_test_vectors() {
    let vectors: [(&str, u64, u64, u32); 6] = [
        ("exp1", 0, 0x7347f6f0c63fbe46, 9398),
        ("exp1", 1, 0xb269f4157839f92f, 7311),
        ("exp1", 42, 0x3f7f9afb00ac5bb0, 7744),
        ("learnrec-ab", 12345, 0xd0b16b59b0331757, 6503),
        ("", 7, 0x9ba402202d1e3b63, 2691),
        ("layer-2", 4294967295, 0x44bcfc3b19609a09, 4281),
    ];
    for (salt, user, h, b) in vectors {
        assert_eq!(hash64(salt, user), h, "hash of {salt}:{user}");
        assert_eq!(bucket(salt, user), b, "bucket of {salt}:{user}");
        // A string id hashes the same as the number it spells.
        assert_eq!(bucket(salt, user.to_string()), b);
    }
}

#[test]
fn buckets_are_uniform() {
    let n = 200_000u32;
    let mut counts = vec![0u64; 10_000];
    for u in 0..n {
        counts[bucket("uniformity", u) as usize] += 1;
    }
    let e = n as f64 / 10_000.0;
    let chi2: f64 = counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
    let p = chi2_sf(chi2, 9_999.0);
    assert!(p > 1e-4, "10,000-bucket chi-square {chi2:.1}, p = {p:.2e}");
    // And the default 20/20/60 split lands on its shares.
    let split = Split::new("uniformity", &[("control", 0.2), ("treatment", 0.2)]).unwrap();
    let mut g = [0u64; 3];
    for u in 0..n {
        g[split.assign(u).unwrap_or(2)] += 1;
    }
    let srm = srm_check(&g, &[0.2, 0.2, 0.6]).unwrap();
    assert!(!srm.mismatch, "{srm:?}");
    assert!((g[0] as f64 / n as f64 - 0.2).abs() < 0.005);
}

#[test]
fn salts_split_independently_and_stably() {
    let a = Split::new("layer-a", &[("c", 0.2), ("t", 0.2)]).unwrap();
    let b = Split::new("layer-b", &[("c", 0.2), ("t", 0.2)]).unwrap();
    let a2 = Split::new("layer-a", &[("c", 0.2), ("t", 0.2)]).unwrap();
    let n = 100_000u32;
    let mut table = [[0f64; 3]; 3];
    for u in 0..n {
        let x = a.assign(u).unwrap_or(2);
        assert_eq!(a2.assign(u).unwrap_or(2), x, "same salt, same arm");
        table[x][b.assign(u).unwrap_or(2)] += 1.0;
    }
    // Chi-square test of independence on the 3×3 table.
    let rows: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let cols: Vec<f64> = (0..3).map(|j| table.iter().map(|r| r[j]).sum()).collect();
    let mut chi2 = 0.0;
    for i in 0..3 {
        for j in 0..3 {
            let e = rows[i] * cols[j] / n as f64;
            chi2 += (table[i][j] - e).powi(2) / e;
        }
    }
    let p = chi2_sf(chi2, 4.0);
    assert!(p > 1e-4, "layers are dependent: chi2 {chi2:.2}, p {p:.2e}");
    // 20% of layer-a's treatment is in layer-b's treatment.
    let overlap = table[1][1] / rows[1];
    assert!((overlap - 0.2).abs() < 0.02, "overlap {overlap}");
}

#[test]
fn split_rejects_bad_shares() {
    let err = |s: &[(&str, f64)]| Split::new("x", s).unwrap_err().to_string();
    assert!(err(&[]).contains("no arms"));
    assert!(err(&[("c", 0.7), ("t", 0.4)]).contains("sum to more than 1"));
    assert!(err(&[("c", 0.12345), ("t", 0.2)]).contains("not a whole number"));
    assert!(err(&[("c", 0.2), ("c", 0.2)]).contains("appears twice"));
    assert!(err(&[("c", 0.0), ("t", 0.2)]).contains("must be in (0, 1]"));
    assert!(err(&[("", 0.2)]).contains("empty name"));
}

#[test]
fn srm_detects_a_broken_split() {
    let split = Split::new("srm", &[("control", 0.2), ("treatment", 0.2)]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut ok, mut broken) = ([0u64; 3], [0u64; 3]);
    for u in 0..300_000u32 {
        let g = split.assign(u).unwrap_or(2);
        ok[g] += 1;
        // The treatment crashes for 5% of its users, who are never logged.
        if !(g == 1 && rng.random::<f64>() < 0.05) {
            broken[g] += 1;
        }
    }
    let good = srm_check(&ok, &[0.2, 0.2, 0.6]).unwrap();
    assert!(!good.mismatch && good.p_value > 1e-3, "{good:?}");
    let bad = srm_check(&broken, &[0.2, 0.2, 0.6]).unwrap();
    assert!(bad.mismatch && bad.p_value < 1e-6, "{bad:?}");
    assert!(srm_check(&[0, 0], &[0.5, 0.5]).is_none());
}

fn small_env() -> Arc<ToyEnv> {
    Arc::new(ToyEnv::new(&ToyConfig {
        users: 3000,
        items: 400,
        dim: 6,
        categories: 10,
        activity: 0.5,
        ..ToyConfig::default()
    }))
}

fn small_cfg(seed: u64) -> ExperimentConfig {
    ExperimentConfig {
        name: "test".into(),
        salt: format!("salt-{seed}"),
        seed,
        days: 2,
        slots: 5,
        retrieval: RetrievalConfig {
            total: 40,
            popular: 10,
            popular_pool: 100,
            personal: 15,
            new_items: 3,
            new_window_days: 3,
        },
        bootstrap: 100,
        threads: 1,
        ..ExperimentConfig::default()
    }
}

#[test]
fn run_rejects_bad_configs() {
    let env = small_env();
    let rnd: Arc<dyn abtest::Arm> = Arc::new(RandomArm::new(1));
    let one = vec![ArmSpec::new("control", 0.2, rnd.clone())];
    let e = abtest::run(env.as_ref(), &one, &small_cfg(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one treatment arm, got 1"), "{e}");
    let two = vec![
        ArmSpec::new("control", 0.2, rnd.clone()),
        ArmSpec::new("treatment", 0.2, Arc::new(RandomArm::new(2))),
    ];
    let e = abtest::run(
        env.as_ref(),
        &two,
        &ExperimentConfig {
            days: 0,
            ..small_cfg(1)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("days must be at least 1"), "{e}");
    let e = abtest::run(
        env.as_ref(),
        &two,
        &ExperimentConfig {
            alpha: 1.5,
            ..small_cfg(1)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("alpha must be in (0, 1)"), "{e}");
    let e = abtest::run(
        env.as_ref(),
        &two,
        &ExperimentConfig {
            mode: Mode::Aa,
            ..small_cfg(1)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("A/A mode needs the same policy"), "{e}");
    let over = vec![
        ArmSpec::new("control", 0.6, rnd.clone()),
        ArmSpec::new("treatment", 0.6, rnd),
    ];
    let e = abtest::run(env.as_ref(), &over, &small_cfg(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sum to more than 1"), "{e}");
}

fn oracle_vs_random(env: &Arc<ToyEnv>) -> Vec<ArmSpec> {
    vec![
        ArmSpec::new("random", 0.2, Arc::new(RandomArm::new(11))),
        ArmSpec::new(
            "oracle",
            0.2,
            Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
        ),
    ]
}

#[test]
fn deterministic_across_thread_counts() {
    let env = small_env();
    let arms = oracle_vs_random(&env);
    let r1 = abtest::run(
        env.as_ref(),
        &arms,
        &ExperimentConfig {
            threads: 1,
            ..small_cfg(5)
        },
    )
    .unwrap();
    let r3 = abtest::run(
        env.as_ref(),
        &arms,
        &ExperimentConfig {
            threads: 3,
            ..small_cfg(5)
        },
    )
    .unwrap();
    let key = |r: &abtest::Report| {
        serde_json::to_string(&(&r.arms, &r.comparisons, &r.srm, &r.segment_proportions)).unwrap()
    };
    assert_eq!(key(&r1), key(&r3));
    assert!(r1.arms[0].total.impressions > 0);
    // A different seed gives different outcomes.
    let r4 = abtest::run(
        env.as_ref(),
        &arms,
        &ExperimentConfig {
            threads: 3,
            ..small_cfg(6)
        },
    )
    .unwrap();
    assert_ne!(key(&r1), key(&r4));
}

#[test]
fn oracle_beats_random_significantly() {
    let env = small_env();
    let r = abtest::run(env.as_ref(), &oracle_vs_random(&env), &small_cfg(9)).unwrap();
    let c = &r.comparisons[0];
    for m in [
        Metric::RevenuePerUser,
        Metric::Ctr,
        Metric::ConversionsPerUser,
    ] {
        let ml = c.total_lift(m).unwrap();
        let l = ml.lift.unwrap();
        assert!(
            ml.significant && l.lift > 0.0 && l.ci_low > 0.0 && l.p_value < 1e-3,
            "{m:?}: {l:?}"
        );
        let b = ml.bootstrap.unwrap();
        assert!(
            b.low > 0.0 && b.low < l.lift && l.lift < b.high,
            "{m:?}: bootstrap {b:?} vs {l:?}"
        );
    }
    let auc = c.total_lift(Metric::Auc).unwrap().lift.unwrap();
    assert!(
        auc.control > 0.4 && auc.control < 0.6,
        "random arm AUC {}",
        auc.control
    );
    assert!(auc.treatment > 0.6 && auc.abs_diff > 0.1, "{auc:?}");
    let uauc = c.total_lift(Metric::Uauc).unwrap();
    assert!(
        uauc.significant && uauc.lift.unwrap().abs_diff > 0.05,
        "{uauc:?}"
    );
    let ua = r.arms[1].total.user_auc.unwrap();
    assert!(ua.users > 0 && ua.uauc > 0.5 && ua.wuauc > 0.5, "{ua:?}");
    assert!(!r.srm.as_ref().unwrap().mismatch);
    // Segments are populated and proportions sum to 1.
    let sum: f64 = r
        .segment_proportions
        .users
        .iter()
        .map(|s| s.proportion)
        .sum();
    assert!((sum - 1.0).abs() < 1e-9);
    assert_eq!(
        r.arms[1].user_segments.iter().map(|s| s.users).sum::<u64>(),
        r.arms[1].total.users
    );
    assert_eq!(
        r.arms[1]
            .item_segments
            .iter()
            .map(|s| s.impressions)
            .sum::<u64>(),
        r.arms[1].total.impressions
    );
    assert_eq!(
        r.arms[1].days.iter().map(|s| s.impressions).sum::<u64>(),
        r.arms[1].total.impressions
    );
}

#[test]
fn popularity_beats_random_on_ctr() {
    let env = small_env();
    let arms = vec![
        ArmSpec::new("random", 0.2, Arc::new(RandomArm::new(3))),
        ArmSpec::new(
            "popularity",
            0.2,
            Arc::new(PopularityArm::from_env(env.as_ref(), 0)),
        ),
    ];
    let r = abtest::run(env.as_ref(), &arms, &small_cfg(4)).unwrap();
    let l = r.comparisons[0]
        .total_lift(Metric::Ctr)
        .unwrap()
        .lift
        .unwrap();
    assert!(l.lift > 0.0 && l.p_value < 0.01, "{l:?}");
}

/// An A/A test's false-positive rate at α = 0.05 over 200 seeds is within a binomial tolerance
/// of 5% (Binomial(200, 0.05): mean 10, sd 3.1; [2, 20] holds with probability > 99.5%).
#[test]
fn aa_false_positive_rate_is_about_alpha() {
    let env = Arc::new(ToyEnv::new(&ToyConfig {
        users: 4000,
        items: 200,
        dim: 4,
        categories: 8,
        activity: 0.5,
        ..ToyConfig::default()
    }));
    let policy: Arc<dyn abtest::Arm> =
        Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue));
    let arms = ArmSpec::aa(0.2, policy);
    let metrics = [
        Metric::Ctr,
        Metric::Cvr,
        Metric::RevenuePerUser,
        Metric::Uauc,
    ];
    let mut fp = [0usize; 4];
    let mut srm_alarms = 0;
    let seeds = 200;
    for seed in 0..seeds {
        let cfg = ExperimentConfig {
            mode: Mode::Aa,
            days: 1,
            slots: 4,
            bootstrap: 0,
            retrieval: RetrievalConfig {
                total: 20,
                popular: 6,
                popular_pool: 50,
                personal: 8,
                new_items: 2,
                new_window_days: 3,
            },
            ..small_cfg(1000 + seed)
        };
        let r = abtest::run(env.as_ref(), &arms, &cfg).unwrap();
        for (k, m) in metrics.iter().enumerate() {
            if r.comparisons[0].total_lift(*m).unwrap().significant {
                fp[k] += 1;
            }
        }
        srm_alarms += r.srm.as_ref().is_some_and(|s| s.mismatch) as usize;
    }
    eprintln!(
        "A/A false positives over {seeds} seeds (CTR, CVR, revenue/user, UAUC): {fp:?}; SRM alarms {srm_alarms}"
    );
    for (k, m) in metrics.iter().enumerate() {
        assert!(
            (2..=20).contains(&fp[k]),
            "{m:?}: {} false positives of {seeds}",
            fp[k]
        );
    }
    assert!(srm_alarms <= 3, "SRM alarms {srm_alarms}");
}

#[test]
fn report_files_are_written() {
    let env = small_env();
    let r = abtest::run(env.as_ref(), &oracle_vs_random(&env), &small_cfg(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    r.write_dir(dir.path()).unwrap();
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    let back: abtest::Report = serde_json::from_str(&json).unwrap();
    // Floats round-trip to the last digit or so; compare counts exactly and values closely.
    assert_eq!(back.arms.len(), r.arms.len());
    for (a, b) in back.arms.iter().zip(&r.arms) {
        assert_eq!(
            (a.name.as_str(), a.total.impressions, a.total.conversions),
            (b.name.as_str(), b.total.impressions, b.total.conversions)
        );
        assert!((a.total.revenue - b.total.revenue).abs() < 1e-9 * b.total.revenue.abs().max(1.0));
    }
    assert_eq!(back.split, r.split);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("## oracle vs random")
            && md.contains("Table 7 layout")
            && md.contains("Sample-ratio check")
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("<polygon")
            && html.contains("Table 7 layout")
            && html.ends_with("</html>")
    );
    assert!(!html.contains("NaN"));
    // p-values below 1e-15 print as "<1e-15", escaped in HTML; the page has no stray '<' in text.
    assert!(md.contains("<1e-15") && html.contains("&lt;1e-15") && !html.contains("<1e"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no temporary files left"
    );
}

/// Samples a ratings-like log from the toy world: each user rates items drawn with probability
/// proportional to p_click; the rating is ≥ 4 with probability p_convert.
fn toy_log(env: &ToyEnv, per_user: usize, seed: u64) -> InteractionLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for u in 0..env.num_users() {
        let mut n = 0;
        let mut tries = 0;
        while n < per_user && tries < 200 * per_user {
            tries += 1;
            let i = rng.random_range(0..env.num_items());
            if rng.random::<f32>() < env.p_click(u, i, 0) {
                let conv = rng.random::<f32>() < env.p_convert(u, i, 0);
                rows.push(Interaction {
                    user: u,
                    item: i,
                    ts: n as i64,
                    action: Action::Rating,
                    value: if conv { 5.0 } else { 2.0 },
                    revenue: None,
                });
                n += 1;
            }
        }
    }
    InteractionLog {
        users: IdMap::from_names((0..env.num_users()).map(|u| u.to_string())),
        items: IdMap::from_names((0..env.num_items()).map(|i| i.to_string())),
        rows,
    }
}

#[test]
fn fitted_oracle_recovers_toy_preferences() {
    let env = ToyEnv::new(&ToyConfig {
        users: 600,
        items: 200,
        dim: 4,
        categories: 8,
        ..ToyConfig::default()
    });
    let log = toy_log(&env, 25, 1);
    let cfg = FittedOracleConfig {
        dim: 4,
        epochs: 10,
        personal_pool: 30,
        ..FittedOracleConfig::default()
    };
    let fo = FittedOracle::fit("toy log", &log, &LabelRule::default(), None, &cfg).unwrap();
    assert_eq!(fo.kind(), abtest::EnvKind::FittedOracle);
    assert!(fo.description().contains("not what a launch would do"));
    // Rank agreement with the truth: AUC of the fitted p_click at separating the truly more
    // clickable item of random pairs.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut agree, mut total) = (0u32, 0u32);
    for _ in 0..5000 {
        let u = rng.random_range(0..600);
        let (i, j) = (rng.random_range(0..200), rng.random_range(0..200));
        let (ti, tj) = (env.p_click(u, i, 0), env.p_click(u, j, 0));
        if (ti - tj).abs() < 0.05 {
            continue;
        }
        total += 1;
        agree += ((fo.p_click(u, i, 0) > fo.p_click(u, j, 0)) == (ti > tj)) as u32;
    }
    let acc = agree as f64 / total as f64;
    assert!(
        acc > 0.7,
        "fitted oracle agrees with the truth on {acc:.3} of pairs"
    );
    // The report is labelled.
    let fo = Arc::new(fo);
    let arms = vec![
        ArmSpec::new("random", 0.2, Arc::new(RandomArm::new(1))),
        ArmSpec::new(
            "popularity",
            0.2,
            Arc::new(PopularityArm::from_env(fo.as_ref(), 0)),
        ),
    ];
    let r = abtest::run(
        fo.as_ref(),
        &arms,
        &ExperimentConfig {
            days: 1,
            ..small_cfg(3)
        },
    )
    .unwrap();
    assert!(r.environment.label.contains("FITTED ORACLE") && r.notes[0].contains("FITTED ORACLE"));
    assert!(r.to_markdown().contains("FITTED ORACLE"));
}

#[test]
fn fitted_oracle_rejects_bad_logs() {
    let empty = InteractionLog::default();
    let e = FittedOracle::fit(
        "empty",
        &empty,
        &LabelRule::default(),
        None,
        &FittedOracleConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fitted oracle `empty`: the log is empty"), "{e}");
    let env = ToyEnv::new(&ToyConfig {
        users: 50,
        items: 30,
        ..ToyConfig::default()
    });
    let mut log = toy_log(&env, 3, 1);
    let e = FittedOracle::fit(
        "prices",
        &log,
        &LabelRule::default(),
        Some(&[1.0; 3]),
        &FittedOracleConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("3 prices for 30 items"), "{e}");
    for r in log.rows.iter_mut() {
        r.value = 1.0;
    }
    let e = FittedOracle::fit(
        "no-conv",
        &log,
        &LabelRule::default(),
        None,
        &FittedOracleConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("needs both converted and non-converted clicks"),
        "{e}"
    );
}

#[test]
fn synthetic_world_adapter_oracle_beats_popularity() {
    use learnrec_eval::abtest::WorldEnv;
    use learnrec_eval::world::{World, WorldConfig};
    let world = World::generate(&WorldConfig {
        users: 3000,
        items: 300,
        days: 12,
        eval_days: 3,
        ..WorldConfig::default()
    })
    .unwrap();
    let log = world.simulate(None);
    // The same segments when the log's ids are interned in another order (as read from a file).
    let mut shuffled = log.clone();
    let n_u = shuffled.users.len() as u32;
    let names: Vec<String> = (0..n_u)
        .rev()
        .map(|d| log.users.name(d).to_string())
        .collect();
    shuffled.users = IdMap::from_names(names);
    for r in shuffled.rows.iter_mut() {
        r.user = n_u - 1 - r.user;
    }
    let env2 = WorldEnv::new(world.clone(), &shuffled);
    let env = Arc::new(WorldEnv::new(world, &log));
    assert!((0..env.num_users()).all(|u| env.user_activity(u) == env2.user_activity(u)));
    assert_eq!(env.first_experiment_day(), 9);
    assert_eq!(env.kind(), abtest::EnvKind::Synthetic);
    assert!(env.user_key(7).starts_with('u'));
    // Some users and items are warm after 9 days of history.
    assert!((0..env.num_users()).any(|u| env.user_activity(u) > 0));
    assert!((0..env.num_items()).any(|i| env.item_conversions(i) > 0));
    let arms = vec![
        ArmSpec::new(
            "popularity",
            0.2,
            Arc::new(PopularityArm::from_env(env.as_ref(), 9)),
        ),
        ArmSpec::new(
            "oracle",
            0.2,
            Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue)),
        ),
    ];
    let cfg = ExperimentConfig {
        start_day: env.first_experiment_day(),
        days: 3,
        ..small_cfg(8)
    };
    let r = abtest::run(env.as_ref(), &arms, &cfg).unwrap();
    assert!(r.arms[0].total.users > 0 && r.arms[1].total.impressions > 0);
    let l = r.comparisons[0].total_lift(Metric::RevenuePerUser).unwrap();
    assert!(l.significant && l.lift.unwrap().lift > 0.0, "{l:?}");
    assert!(r.environment.label.contains("ground truth"));
    // Deterministic for a seed.
    let r2 = abtest::run(env.as_ref(), &arms, &ExperimentConfig { threads: 2, ..cfg }).unwrap();
    assert_eq!(
        serde_json::to_string(&r.arms).unwrap(),
        serde_json::to_string(&r2.arms).unwrap()
    );
}

/// Real-data mode on MovieLens-1M (first 300 users, to stay fast), when the asset is there.
#[test]
fn fitted_oracle_on_movielens_when_present() {
    use learnrec_eval::assets::{Asset, path_of};
    let dir = path_of(Asset::Movielens1m);
    if !dir.join("ml-1m.inter").is_file() || !dir.join("ml-1m.item").is_file() {
        eprintln!("skipped: MovieLens-1M not in {}", dir.display());
        return;
    }
    let mut log = learnrec_eval::data::reader::read_dataset_dir(&dir)
        .unwrap()
        .log;
    log.rows.retain(|r| r.user < 300);
    let cfg = FittedOracleConfig {
        dim: 8,
        epochs: 3,
        ..FittedOracleConfig::default()
    };
    let env = Arc::new(
        FittedOracle::fit(
            "MovieLens-1M (300 users)",
            &log,
            &LabelRule::default(),
            None,
            &cfg,
        )
        .unwrap(),
    );
    // Users outside the kept rows exist in the id map but never rated: they are inactive.
    assert!(env.active_users(0, 1).iter().all(|&(u, _)| u < 300));
    let arms = vec![
        ArmSpec::new("random", 0.5, Arc::new(RandomArm::new(5))),
        ArmSpec::new(
            "oracle",
            0.5,
            Arc::new(OracleArm::new(env.clone(), Objective::Conversion)),
        ),
    ];
    let r = abtest::run(
        env.as_ref(),
        &arms,
        &ExperimentConfig {
            days: 2,
            bootstrap: 0,
            ..small_cfg(12)
        },
    )
    .unwrap();
    assert!(r.environment.label.contains("FITTED ORACLE"));
    let l = r.comparisons[0]
        .total_lift(Metric::ConversionsPerUser)
        .unwrap();
    assert!(l.significant && l.lift.unwrap().lift > 0.0, "{l:?}");
}
