//! Integration tests of the synthetic world: files, determinism, proportions, oracle.

use learnrec_eval::data::{Action, Field, format_price};
use learnrec_eval::segment::{Segment, Thresholds};
use learnrec_eval::world::{self, World, WorldConfig, segment_shares, taxonomy};
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn cfg(users: u32, items: u32, days: u32, seed: u64) -> WorldConfig {
    WorldConfig { users, items, days, seed, eval_days: 7.min(days - 1), ..WorldConfig::default() }
}

fn build(c: &WorldConfig, dir: &Path) -> (World, learnrec_eval::data::InteractionLog) {
    let w = World::generate(c).unwrap();
    let log = w.simulate(None);
    w.write(dir, &log).unwrap();
    (w, log)
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_owned).collect()).collect();
    (header, rows)
}

const FILES: [&str; 4] = ["catalog.csv", "interactions.csv", "users.csv", "world.json"];

#[test]
fn same_seed_same_files_other_seed_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    build(&cfg(150, 60, 12, 11), &a);
    build(&cfg(150, 60, 12, 11), &b);
    build(&cfg(150, 60, 12, 12), &c);
    for f in FILES {
        let fa = std::fs::read(a.join(f)).unwrap();
        assert!(!fa.is_empty(), "{f} is empty");
        assert_eq!(fa, std::fs::read(b.join(f)).unwrap(), "{f} differs for the same seed");
        assert_ne!(fa, std::fs::read(c.join(f)).unwrap(), "{f} is the same for another seed");
    }
    // No temporary files are left behind.
    let names: HashSet<String> =
        std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, FILES.iter().map(|s| s.to_string()).collect());
}

#[test]
fn log_does_not_depend_on_the_thread_count() {
    let w = World::generate(&cfg(200, 80, 10, 9)).unwrap();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| w.simulate(None));
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| w.simulate(None));
    assert!(!one.rows.is_empty());
    assert_eq!(one.rows, three.rows);
}

#[test]
fn csv_headers_and_catalog_text_carry_the_six_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, _) = build(&cfg(100, 80, 15, 3), tmp.path());
    let (h, rows) = read_csv(&tmp.path().join("catalog.csv"));
    assert_eq!(h, world::CATALOG_HEADER);
    assert_eq!(rows.len(), 80);
    let (h, users) = read_csv(&tmp.path().join("users.csv"));
    assert_eq!(h, world::USERS_HEADER);
    assert_eq!(users.len(), 100);
    let (h, _) = read_csv(&tmp.path().join("interactions.csv"));
    assert_eq!(h, world::INTERACTIONS_HEADER);

    let mut late = 0;
    for (i, row) in rows.iter().enumerate() {
        let it = &w.items[i];
        assert_eq!(row[0], w.item_id(i as u32));
        for (k, v) in row.iter().enumerate().take(7) {
            assert!(!v.is_empty(), "item {i} column {} is empty", world::CATALOG_HEADER[k]);
        }
        // The text reveals the subcategory (category field + noun), style and price.
        let sub = taxonomy::subcategory(it.subcategory as usize);
        assert_eq!(row[2], sub.name);
        assert!(sub.nouns.iter().any(|n| row[1].contains(n)), "title {:?} lacks a {} noun", row[1], sub.name);
        assert!(row[5].starts_with(sub.nouns[0]), "keywords {:?}", row[5]);
        assert!(taxonomy::STYLES[it.style as usize].words.iter().any(|s| row[1].contains(s)), "title {:?}", row[1]);
        assert_eq!(row[4], format_price(it.price));
        assert_eq!(row[4].parse::<f64>().unwrap(), it.price);
        assert_eq!(row[9], it.tier.to_string());
        if it.available_day > 0 {
            late += 1;
            assert_eq!(row[7].parse::<i64>().unwrap(), w.day_start(it.available_day));
        } else {
            assert_eq!(row[7], "");
        }
        let text = w.item_text(i as u32);
        for f in Field::ALL {
            assert!(text.contains(&format!("{}: ", f.label())), "{text:?} lacks {}", f.label());
        }
        assert!(text.contains(" yuan;"), "{text}");
    }
    assert!(late > 0, "no cold-start arrivals");
    // The paper's example format.
    let t = w.item_text(0);
    assert!(t.starts_with("Title: ") && t.contains("; Category: ") && t.contains("; Attribute: "), "{t}");
}

#[test]
fn revenue_is_price_times_conversion_and_conversions_follow_clicks() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, log) = build(&cfg(300, 100, 20, 5), tmp.path());
    let (_, rows) = read_csv(&tmp.path().join("interactions.csv"));
    assert_eq!(rows.len(), log.rows.len());
    let price: HashMap<String, f64> = (0..w.n_items() as u32).map(|i| (w.item_id(i), w.price(i))).collect();
    let mut clicked = HashSet::new();
    let (mut conversions, mut revenue) = (0, 0.0);
    let mut last_ts = i64::MIN;
    for r in &rows {
        let ts: i64 = r[2].parse().unwrap();
        assert!(ts >= last_ts, "rows not sorted by time");
        last_ts = ts;
        assert_eq!(r[4], "", "value is empty");
        match Action::parse(&r[3]).unwrap() {
            Action::Impression => assert_eq!(r[5], ""),
            Action::Click => {
                assert_eq!(r[5], "");
                clicked.insert((r[0].clone(), r[1].clone()));
            }
            Action::Conversion => {
                let p = price[&r[1]];
                assert_eq!(r[5].parse::<f64>().unwrap(), p, "revenue of a conversion = price × 1");
                assert!(clicked.contains(&(r[0].clone(), r[1].clone())), "conversion without click");
                conversions += 1;
                revenue += p;
            }
            Action::Rating => panic!("no ratings in the world"),
        }
    }
    assert!(conversions > 0);
    let expected: f64 = log.rows.iter().filter(|r| r.action == Action::Conversion).map(|r| w.price(r.item)).sum();
    assert!((revenue - expected).abs() < 1e-6 * expected);
}

#[test]
fn oracle_rebuilt_from_world_json_matches_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, log) = build(&cfg(600, 150, 20, 21), tmp.path());
    let back = World::load(tmp.path()).unwrap();
    assert_eq!(back.config, w.config);
    assert_eq!(back.items, w.items);
    assert_eq!(back.users, w.users);

    // Empirical CTR / CVR ≈ mean oracle probability over the logged impressions / clicks.
    let (mut imps, mut clicks, mut convs) = (0.0, 0.0, 0.0);
    let (mut p_clicks, mut p_convs, mut var_click, mut var_conv) = (0.0, 0.0, 0.0, 0.0);
    for r in &log.rows {
        let day = back.day_of(r.ts);
        match r.action {
            Action::Impression => {
                let p = back.p_click(r.user, r.item, day);
                assert!((0.0..=1.0).contains(&p) && p > 0.0, "shown item has p_click {p}");
                assert_eq!(p, w.p_click(r.user, r.item, day), "rebuilt oracle differs");
                imps += 1.0;
                p_clicks += p;
                var_click += p * (1.0 - p);
            }
            Action::Click => {
                let p = back.p_convert(r.user, r.item, day);
                assert!((0.0..=1.0).contains(&p));
                clicks += 1.0;
                p_convs += p;
                var_conv += p * (1.0 - p);
            }
            Action::Conversion => convs += 1.0,
            Action::Rating => {}
        }
    }
    // Within 4 standard errors of the Poisson-binomial sums.
    assert!(
        (clicks - p_clicks).abs() < 4.0 * var_click.sqrt(),
        "clicks {clicks} vs oracle {p_clicks:.1} (imps {imps})"
    );
    assert!((convs - p_convs).abs() < 4.0 * var_conv.sqrt(), "conversions {convs} vs oracle {p_convs:.1}");
    assert!(clicks / imps > 0.05 && clicks / imps < 0.6, "CTR {}", clicks / imps);
}

#[test]
fn segment_proportions_are_near_the_papers() {
    // Paper: users 7% cold / 27% long-tail / 66% regular; items 3% / 26% / 71%. Small worlds
    // have fewer clicks per user, so the bounds are loose; the default size is measured by the
    // `world_gen` example.
    let w = World::generate(&cfg(1000, 200, 60, 1)).unwrap();
    let log = w.simulate(None);
    let s = segment_shares(&log.rows, w.n_users(), w.n_items(), w.history_end_ts(), &Thresholds::default());
    let (u, i) = (&s.eval_users, &s.eval_items);
    let within = |x: f64, lo: f64, hi: f64| x >= lo && x <= hi;
    assert!(within(u.share(Segment::ColdStart), 0.03, 0.13), "{s}");
    assert!(within(u.share(Segment::LongTail), 0.15, 0.47), "{s}");
    assert!(within(u.share(Segment::Regular), 0.45, 0.80), "{s}");
    assert!(within(i.share(Segment::ColdStart), 0.0, 0.08), "{s}");
    assert!(within(i.share(Segment::LongTail), 0.10, 0.40), "{s}");
    assert!(within(i.share(Segment::Regular), 0.55, 0.90), "{s}");
    // Activity is heavy-tailed: the top 10% of users log far more clicks than the median user.
    let mut clicks = vec![0u64; w.n_users()];
    for r in log.rows.iter().filter(|r| r.action == Action::Click) {
        clicks[r.user as usize] += 1;
    }
    clicks.sort_unstable();
    let (p50, p90) = (clicks[clicks.len() / 2], clicks[clicks.len() * 9 / 10]);
    assert!(p90 > 3 * p50.max(1), "p50 {p50}, p90 {p90}");
}

#[test]
fn content_and_quality_both_drive_the_oracle() {
    // Taste (what text reveals) and quality (what only IDs learn) each move p_click.
    let w = World::generate(&cfg(200, 300, 10, 4)).unwrap();
    let day = 9;
    let n = w.n_available(day) as u32;
    let (mut by_taste, mut by_quality) = ((0.0, 0.0), (0.0, 0.0));
    for u in 0..200 {
        let mut items: Vec<u32> = (0..n).collect();
        items.sort_by(|&a, &b| w.taste(u, a).total_cmp(&w.taste(u, b)));
        let k = items.len() / 4;
        by_taste.0 += items[..k].iter().map(|&i| w.p_click(u, i, day)).sum::<f64>() / k as f64;
        by_taste.1 += items[items.len() - k..].iter().map(|&i| w.p_click(u, i, day)).sum::<f64>() / k as f64;
        items.sort_by(|&a, &b| w.items[a as usize].quality.total_cmp(&w.items[b as usize].quality));
        by_quality.0 += items[..k].iter().map(|&i| w.p_click(u, i, day)).sum::<f64>() / k as f64;
        by_quality.1 += items[items.len() - k..].iter().map(|&i| w.p_click(u, i, day)).sum::<f64>() / k as f64;
    }
    assert!(by_taste.1 > 2.0 * by_taste.0, "taste {by_taste:?}");
    assert!(by_quality.1 > 1.5 * by_quality.0, "quality {by_quality:?}");
}

#[test]
fn active_users_follow_activity_rates() {
    let w = World::generate(&cfg(2000, 50, 30, 8)).unwrap();
    let mut rng = rand_chacha_rng(5);
    let day = 20;
    let expected: f64 = (0..2000).map(|u| w.activity(u, day)).sum();
    let got = w.active_users(day, &mut rng);
    assert!(got.windows(2).all(|p| p[0] < p[1]));
    assert!(got.iter().all(|&u| w.users[u as usize].signup_day <= day));
    assert!((got.len() as f64 - expected).abs() < 4.0 * expected.sqrt(), "{} vs {expected}", got.len());
}

fn rand_chacha_rng(seed: u64) -> impl rand::Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn bad_arguments_and_files_give_clear_errors() {
    let e = World::generate(&cfg(0, 50, 10, 1)).unwrap_err().to_string();
    assert!(e.contains("--users must be at least 1"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let w = World::generate(&cfg(20, 20, 3, 1)).unwrap();
    let log = w.simulate(None);
    let e = w.write(&file, &log).unwrap_err().to_string();
    assert!(e.contains("not-a-dir") && e.contains("not a directory"), "{e}");

    let missing = tmp.path().join("nowhere");
    let e = World::load(&missing).unwrap_err().to_string();
    assert!(e.contains("nowhere"), "{e}");

    let dir = tmp.path().join("w");
    w.write(&dir, &log).unwrap();
    let json = dir.join("world.json");
    std::fs::write(&json, "{\"format_version\": 1, \"oops\": ").unwrap();
    let e = World::load(&dir).unwrap_err().to_string();
    assert!(e.contains("world.json") && e.contains("not a learnrec world file"), "{e}");

    w.save_json(&json).unwrap();
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, text.replacen("\"format_version\":1", "\"format_version\":99", 1)).unwrap();
    let e = World::load(&dir).unwrap_err().to_string();
    assert!(e.contains("format_version") && e.contains("99"), "{e}");

    std::fs::write(&json, text.replacen("\"subcategory\":", "\"subcategory\":200,\"_x\":", 1)).unwrap();
    let e = World::load(&json).unwrap_err().to_string();
    assert!(e.contains("items[0].subcategory"), "{e}");
}
