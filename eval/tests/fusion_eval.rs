//! fusion-eval: brute-force oracles (ties included), file readers, partial merge, bad inputs, CLI.

use learnrec_eval::fusion_eval::{
    self, GroupKind, Input, Options, Predictions, Report, UserWeight, WarningKind, emit_partial, evaluate,
    evaluate_file, generate, merge_partials,
};
use learnrec_eval::metrics;
use learnrec_eval::segment::{Segment, Thresholds};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Direct O(n²) pairwise AUC: P(s+ > s-) + ½ P(s+ = s-), `None` if one class.
fn pairwise_auc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    let (mut num, mut pairs) = (0.0f64, 0u64);
    for i in 0..labels.len() {
        for j in 0..labels.len() {
            if labels[i] && !labels[j] {
                pairs += 1;
                if scores[i] > scores[j] {
                    num += 1.0;
                } else if scores[i] == scores[j] {
                    num += 0.5;
                }
            }
        }
    }
    (pairs > 0).then(|| num / pairs as f64)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-12,
        (None, None) => true,
        _ => false,
    }
}

/// Oracle UAUC/WUAUC over a subset of rows: (uauc, wuauc, counted, skipped).
fn oracle_user(rows: &[(u64, bool, f32, f32)], weight: UserWeight) -> (Option<f64>, Option<f64>, u64, u64) {
    let mut by: BTreeMap<u64, Vec<(bool, f32, f32)>> = BTreeMap::new();
    for &(u, l, s, w) in rows {
        by.entry(u).or_default().push((l, s, w));
    }
    let (mut sum, mut ws, mut wa, mut c, mut k) = (0.0, 0.0, 0.0, 0, 0);
    for v in by.values() {
        let l: Vec<bool> = v.iter().map(|x| x.0).collect();
        let s: Vec<f32> = v.iter().map(|x| x.1).collect();
        match pairwise_auc(&l, &s) {
            Some(a) => {
                c += 1;
                let w = match weight {
                    UserWeight::Rows => v.len() as f64,
                    UserWeight::Positives => l.iter().filter(|&&x| x).count() as f64,
                    UserWeight::Weight => v.iter().map(|x| x.2 as f64).sum(),
                };
                sum += a;
                ws += w;
                wa += w * a;
            }
            None => k += 1,
        }
    }
    ((c > 0).then(|| sum / c as f64), (ws > 0.0).then(|| wa / ws), c, k)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn auc_equals_pairwise_oracle(rows in prop::collection::vec((any::<bool>(), 0u8..6), 0..40)) {
        let labels: Vec<bool> = rows.iter().map(|r| r.0).collect();
        let scores: Vec<f32> = rows.iter().map(|r| r.1 as f32 / 4.0).collect();
        let got = metrics::auc(&labels, &scores).unwrap();
        prop_assert!(close(got, pairwise_auc(&labels, &scores)), "{got:?}");
        let s64: Vec<f64> = scores.iter().map(|&x| x as f64).collect();
        prop_assert!(close(metrics::auc(&labels, &s64).unwrap(), got));
    }

    #[test]
    fn evaluate_equals_oracle_per_group(
        rows in prop::collection::vec((0u64..8, any::<bool>(), 0u8..5, 0u8..7, 0u8..3, 0u8..3, 0u8..4), 1..80),
        wmode in 0usize..3,
    ) {
        let weight = [UserWeight::Rows, UserWeight::Positives, UserWeight::Weight][wmode];
        let useg_of = |u: u64| Segment::ALL[(u % 3) as usize];
        let p = Predictions {
            users: rows.iter().map(|r| r.0).collect(),
            labels: rows.iter().map(|r| r.1).collect(),
            scores: vec![
                ("a".into(), rows.iter().map(|r| r.2 as f32 * 0.25).collect()),
                ("b".into(), rows.iter().map(|r| -(r.3 as f32)).collect()),
            ],
            items: Some(rows.iter().map(|r| r.4 as u64 * 10 + r.5 as u64).collect()),
            weights: Some(rows.iter().map(|r| r.6 as f32 * 0.5).collect()),
            user_segments: Some(rows.iter().map(|r| useg_of(r.0)).collect()),
            item_segments: Some(rows.iter().map(|r| Segment::ALL[r.5 as usize]).collect()),
        };
        let opt = Options { user_weight: weight, bootstrap: 0, ..Options::default() };
        let rep = evaluate(&p, &opt).unwrap();
        let mut groups = vec![rep.overall.clone()];
        groups.extend(rep.segments.iter().cloned());
        prop_assert_eq!(groups.len(), 7);
        for g in &groups {
            let keep = |r: &(u64, bool, u8, u8, u8, u8, u8)| match g.group {
                GroupKind::Overall => true,
                GroupKind::User(s) => useg_of(r.0) == s,
                GroupKind::Item(s) => Segment::ALL[r.5 as usize] == s,
            };
            for (j, mm) in g.models.iter().enumerate() {
                let sub: Vec<(u64, bool, f32, f32)> = rows
                    .iter()
                    .filter(|r| keep(r))
                    .map(|r| (r.0, r.1, if j == 0 { r.2 as f32 * 0.25 } else { -(r.3 as f32) }, r.6 as f32 * 0.5))
                    .collect();
                let (u, w, c, k) = oracle_user(&sub, weight);
                prop_assert!(close(mm.uauc, u), "{:?} {}: uauc {:?} vs {:?}", g.group, mm.model, mm.uauc, u);
                prop_assert!(close(mm.wuauc, w), "{:?} {}: wuauc {:?} vs {:?}", g.group, mm.model, mm.wuauc, w);
                prop_assert_eq!((g.users_counted, g.users_skipped), (c, k));
                prop_assert_eq!(g.rows, sub.len() as u64);
                if g.group == GroupKind::Overall {
                    let l: Vec<bool> = sub.iter().map(|x| x.1).collect();
                    let s: Vec<f32> = sub.iter().map(|x| x.2).collect();
                    prop_assert!(close(mm.auc, pairwise_auc(&l, &s)));
                }
            }
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn input(pred: &Path) -> Input {
    Input { pred: pred.to_path_buf(), ..Input::default() }
}

fn err_of(r: learnrec_eval::Result<Report>) -> String {
    r.expect_err("expected an error").to_string()
}

const GOOD: &str = "user_id,item_id,label,score_a,score_b\n\
u1,i1,1,0.9,0.8\nu1,i2,0,0.1,0.9\nu1,i3,0,0.5,0.1\n\
u2,i1,1,0.3,0.7\nu2,i2,1,0.3,0.2\nu2,i4,0,0.3,0.1\n\
u3,i1,0,0.2,0.2\nu3,i3,0,0.4,0.6\n";

#[test]
fn csv_good_path_matches_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.csv", GOOD);
    let r = evaluate_file(&input(&p), &Options { bootstrap: 0, ..Options::default() }).unwrap();
    assert_eq!(r.models, vec!["score_a", "score_b"]);
    assert_eq!((r.rows, r.users, r.items), (8, 3, Some(4)));
    let o = &r.overall;
    assert_eq!((o.users_counted, o.users_skipped), (2, 1));
    // score_a: u1 AUC 1.0, u2 (all tied) 0.5 -> UAUC 0.75; WUAUC (3·1 + 3·0.5)/6 = 0.75
    assert_eq!(o.models[0].uauc, Some(0.75));
    // score_b: u1 (0.8 vs 0.9, 0.1) = 0.5, u2 (0.7, 0.2 vs 0.1) = 1.0
    assert_eq!(o.models[1].uauc, Some(0.75));
    let labels = [true, false, false, true, true, false, false, false];
    let sa = [0.9f32, 0.1, 0.5, 0.3, 0.3, 0.3, 0.2, 0.4];
    assert_eq!(o.models[0].auc, pairwise_auc(&labels, &sa));
    assert!(r.segments.is_empty());
    assert!(r.warnings.iter().any(|w| w.kind == WarningKind::OneClassUsers && w.count == 1));
    let t = r.to_text();
    assert!(t.contains("Table 6") && t.contains("score_b") && t.contains("1 of 3 users"), "{t}");
    assert!(r.to_markdown().contains("| score_a |"));
}

#[test]
fn tsv_and_quoted_fields_read() {
    let d = tempfile::tempdir().unwrap();
    let tsv = GOOD.replace(',', "\t");
    let p = write(d.path(), "p.tsv", &tsv);
    let a = evaluate_file(&input(&p), &Options { bootstrap: 0, ..Options::default() }).unwrap();
    let q = GOOD.replace("u1,", "\"u1\",").replace("u2,i1", "\"u2\",\"i1\"");
    let p2 = write(d.path(), "q.csv", &q);
    let b = evaluate_file(&input(&p2), &Options { bootstrap: 0, ..Options::default() }).unwrap();
    let c = evaluate_file(&input(&write(d.path(), "c.csv", GOOD)), &Options { bootstrap: 0, ..Options::default() })
        .unwrap();
    assert_eq!(a, c);
    assert_eq!(b, c);
}

#[test]
fn segments_from_history_and_absent_users() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.csv", GOOD);
    // u1: 1 click (long-tail with max 2), u2: 3 interactions (regular), u3 absent (cold-start).
    // i1: 1 conversion (long-tail), i2: 0 conversions (cold-start, known), i3/i4 absent.
    let h = write(
        d.path(),
        "h.csv",
        "user_id,item_id,timestamp,action,value,revenue\n\
         u1,i1,1,click,,\nu2,i1,2,conversion,,9.9\nu2,i2,3,click,,\nu2,i2,4,impression,,\nu2,i2,5,click,,\nu9,i1,6,impression,,\n",
    );
    let inp = Input {
        history: Some(h),
        thresholds: Thresholds { user_long_tail_max: 2, item_long_tail_max: 29 },
        ..input(&p)
    };
    let r = evaluate_file(&inp, &Options { bootstrap: 0, ..Options::default() }).unwrap();
    let g = |k: GroupKind| r.segments.iter().find(|g| g.group == k).unwrap().clone();
    assert_eq!(g(GroupKind::User(Segment::ColdStart)).users, 1);
    assert_eq!(g(GroupKind::User(Segment::LongTail)).users, 1);
    assert_eq!(g(GroupKind::User(Segment::Regular)).users, 1);
    assert_eq!(g(GroupKind::User(Segment::LongTail)).models[0].uauc, Some(1.0));
    assert_eq!(g(GroupKind::Item(Segment::LongTail)).rows, 3); // i1 rows
    assert_eq!(g(GroupKind::Item(Segment::ColdStart)).rows, 5);
    assert_eq!(g(GroupKind::Item(Segment::ColdStart)).items, Some(3));
    let w = |k: WarningKind| r.warnings.iter().find(|w| w.kind == k).map(|w| w.count);
    assert_eq!(w(WarningKind::UsersAbsentFromHistory), Some(1));
    assert_eq!(w(WarningKind::ItemsAbsentFromHistory), Some(2));
    // Counting impressions too makes u2 regular still and u1 long-tail; with max 0 all are regular.
    let inp2 = Input { thresholds: Thresholds { user_long_tail_max: 0, item_long_tail_max: 0 }, ..inp };
    let r2 = evaluate_file(&inp2, &Options { bootstrap: 0, ..Options::default() }).unwrap();
    assert_eq!(r2.segments.iter().find(|g| g.group == GroupKind::User(Segment::Regular)).unwrap().users, 2);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let o = Options { bootstrap: 0, ..Options::default() };
    let run = |name: &str, text: &str| err_of(evaluate_file(&input(&write(d.path(), name, text)), &o));
    let e = run("missing.csv", "user_id,score_a\nu1,0.5\n");
    assert!(e.contains("missing column `label`"), "{e}");
    let e = run("label.csv", "user_id,label,score\nu1,1,0.5\nu1,2,0.4\n");
    assert!(e.contains("label.csv:3: field `label`: label must be 0 or 1, got `2`"), "{e}");
    let e = run("nan.csv", "user_id,label,score\nu1,1,0.5\nu1,0,NaN\n");
    assert!(e.contains("nan.csv:3: field `score`: score is NaN or Inf"), "{e}");
    let e = run("inf.csv", "user_id,label,score\nu1,1,inf\n");
    assert!(e.contains("inf.csv:2: field `score`: score is NaN or Inf"), "{e}");
    let e = run("num.csv", "user_id,label,score\nu1,1,abc\n");
    assert!(e.contains("num.csv:2: field `score`: not a number: `abc`"), "{e}");
    let e = run("empty.csv", "");
    assert!(e.contains("empty.csv: empty file"), "{e}");
    let e = run("header.csv", "user_id,label,score\n");
    assert!(e.contains("no data rows"), "{e}");
    let e = run("fields.csv", "user_id,label,score\nu1,1\n");
    assert!(e.contains("fields.csv:2: field `line`: 2 fields, the header has 3"), "{e}");
    let e = run("dup.csv", "user_id,label,score,score\nu1,1,0.1,0.2\n");
    assert!(e.contains("duplicate column `score`"), "{e}");
    let e = run("noscore.csv", "user_id,label,x\nu1,1,0.1\n");
    assert!(e.contains("no score column"), "{e}");
    let e = run("seg.csv", "user_id,label,score,user_segment\nu1,1,0.1,warm\n");
    assert!(e.contains("seg.csv:2: field `user_segment`: unknown segment `warm`"), "{e}");
    let e = run("w.csv", "user_id,label,score,weight\nu1,1,0.1,-1\n");
    assert!(e.contains("w.csv:2: field `weight`: weight must be finite and ≥ 0"), "{e}");
    // Duplicate --score names.
    let p = write(d.path(), "ok.csv", GOOD);
    let inp = Input { scores: vec!["score_a".into(), "score_a".into()], ..input(&p) };
    let e = err_of(evaluate_file(&inp, &o));
    assert!(e.contains("score `score_a` is named twice"), "{e}");
    let inp = Input { scores: vec!["score_z".into()], ..input(&p) };
    let e = err_of(evaluate_file(&inp, &o));
    assert!(e.contains("missing column `score_z`"), "{e}");
    // Bad HISTORY action.
    let h = write(d.path(), "h.csv", "user_id,item_id,timestamp,action,value,revenue\nu1,i1,1,like,,\n");
    let e = err_of(evaluate_file(&Input { history: Some(h), ..input(&p) }, &o));
    assert!(e.contains("h.csv:2: field `action`: unknown action `like`"), "{e}");
    // Unknown baseline; weight mode without a weight column.
    let e = err_of(evaluate_file(&input(&p), &Options { baseline: Some("nope".into()), ..o.clone() }));
    assert!(e.contains("--baseline `nope`"), "{e}");
    let e = err_of(evaluate_file(&input(&p), &Options { user_weight: UserWeight::Weight, ..o.clone() }));
    assert!(e.contains("needs a `weight` column"), "{e}");
    // In-memory API.
    let e = err_of(evaluate(
        &Predictions {
            users: vec![1],
            labels: vec![true],
            scores: vec![("s".into(), vec![f32::NAN])],
            ..Default::default()
        },
        &o,
    ));
    assert!(e.contains("NaN or Inf"), "{e}");
}

#[test]
fn one_class_only_is_undefined_not_half() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.csv", "user_id,label,score\nu1,1,0.5\nu1,1,0.4\nu2,1,0.1\n");
    let r = evaluate_file(&input(&p), &Options::default()).unwrap();
    assert_eq!(r.overall.models[0].auc, None);
    assert_eq!(r.overall.models[0].uauc, None);
    assert_eq!(r.overall.models[0].wuauc, None);
    assert_eq!((r.overall.users_counted, r.overall.users_skipped), (0, 2));
    assert!(r.to_text().contains('—'));
}

fn gen_file(dir: &Path, name: &str, rows: u64, users: u64) -> (PathBuf, PathBuf) {
    let out = dir.join(name);
    let hist = dir.join(format!("{name}.hist.csv"));
    let spec = generate::GenSpec {
        rows,
        users,
        items: 300,
        seed: 3,
        out: out.clone(),
        history: Some(hist.clone()),
        row_group: 4000,
    };
    assert_eq!(generate::generate(&spec).unwrap(), rows);
    (out, hist)
}

#[test]
fn csv_and_parquet_give_the_same_report() {
    let d = tempfile::tempdir().unwrap();
    let (c, h) = gen_file(d.path(), "g.csv", 20_000, 500);
    let (p, _) = gen_file(d.path(), "g.parquet", 20_000, 500);
    let o = Options { bootstrap: 20, ..Options::default() };
    let a = evaluate_file(&Input { history: Some(h.clone()), ..input(&c) }, &o).unwrap();
    let b = evaluate_file(&Input { history: Some(h), ..input(&p) }, &o).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.segments.len(), 6);
    assert!(a.overall.deltas[0].uauc_ci.is_some());
}

#[test]
fn merged_partials_equal_the_single_run() {
    let d = tempfile::tempdir().unwrap();
    let (c, h) = gen_file(d.path(), "g.csv", 30_000, 700);
    let o = Options { bootstrap: 30, seed: 5, ..Options::default() };
    let base = Input { history: Some(h), ..input(&c) };
    let single = evaluate_file(&base, &o).unwrap();
    let n = 3;
    let parts: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = d.path().join(format!("part{i}.fep"));
            emit_partial(&Input { shard: Some((i, n)), ..base.clone() }, &p).unwrap();
            p
        })
        .collect();
    let merged = merge_partials(&parts, &o).unwrap();
    assert_eq!(merged, single);
    assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&single).unwrap());
    // A shard on its own is a smaller population.
    let one = merge_partials(&parts[..1], &o).unwrap();
    assert!(one.users < single.users);
    // The same partial twice splits users: an error.
    let e = err_of(merge_partials(&[parts[0].clone(), parts[0].clone()], &o));
    assert!(e.contains("appears in more than one partial"), "{e}");
    // Truncated partial.
    let bytes = std::fs::read(&parts[1]).unwrap();
    let t = d.path().join("trunc.fep");
    std::fs::write(&t, &bytes[..bytes.len() - 5]).unwrap();
    let e = err_of(merge_partials(&[t], &o));
    assert!(e.contains("trunc.fep") && e.contains("partial file"), "{e}");
    // A version-1 partial (other user keys) and a file that is no partial at all.
    let (v1, junk) = (d.path().join("v1.fep"), d.path().join("junk.fep"));
    std::fs::write(&v1, [&b"LRFEVP01"[..], &bytes[8..]].concat()).unwrap();
    std::fs::write(&junk, b"user_id,label\n1,0\n").unwrap();
    let e = err_of(merge_partials(&[parts[0].clone(), v1], &o));
    assert!(e.contains("v1.fep") && e.contains("version-1 partial"), "{e}");
    let e = err_of(merge_partials(&[junk], &o));
    assert!(e.contains("junk.fep") && e.contains("bad magic"), "{e}");
    // Partials of different score sets do not merge.
    let p4 = d.path().join("p4.fep");
    emit_partial(&Input { scores: vec!["score_learn".into()], shard: Some((1, 3)), ..base.clone() }, &p4).unwrap();
    let e = err_of(merge_partials(&[parts[0].clone(), p4], &o));
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn bootstrap_is_seeded_and_brackets_the_delta() {
    let d = tempfile::tempdir().unwrap();
    let (c, _) = gen_file(d.path(), "g.csv", 20_000, 400);
    let o = Options { bootstrap: 100, seed: 1, ..Options::default() };
    let a = evaluate_file(&input(&c), &o).unwrap();
    let b = evaluate_file(&input(&c), &o).unwrap();
    assert_eq!(a, b);
    let dlt = &a.overall.deltas[0];
    let [lo, hi] = dlt.uauc_ci.unwrap();
    let x = dlt.uauc_pp.unwrap();
    assert!(lo < x && x < hi, "{lo} {x} {hi}");
    let c2 = evaluate_file(&input(&c), &Options { seed: 2, ..o }).unwrap();
    assert_ne!(c2.overall.deltas[0].uauc_ci, dlt.uauc_ci);
}

#[test]
fn plot_and_outputs_via_cli() {
    let d = tempfile::tempdir().unwrap();
    let (c, h) = gen_file(d.path(), "g.csv", 5_000, 200);
    let bin = env!("CARGO_BIN_EXE_fusion-eval");
    let (js, md, svg) = (d.path().join("r.json"), d.path().join("r.md"), d.path().join("r.svg"));
    let out = std::process::Command::new(bin)
        .args(["--pred", c.to_str().unwrap(), "--history", h.to_str().unwrap(), "--bootstrap", "20"])
        .args(["--json", js.to_str().unwrap(), "--markdown", md.to_str().unwrap(), "--plot", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Table 6") && stdout.contains("Table 7") && stdout.contains("item long-tail"), "{stdout}");
    let r: Report = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
    assert_eq!(r.rows, 5_000);
    assert!(std::fs::read_to_string(&md).unwrap().contains("### Table 7"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // merge via the CLI
    let p0 = d.path().join("a.fep");
    let st = std::process::Command::new(bin)
        .args(["--pred", c.to_str().unwrap(), "--emit-partial", p0.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(st.status.success());
    let png = d.path().join("r.png");
    let out = std::process::Command::new(bin)
        .args(["merge", p0.to_str().unwrap(), "--bootstrap", "10", "--plot", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Table 6"));
    // A clear error with exit code 1.
    let bad = write(d.path(), "bad.csv", "user_id,score\nu1,0.5\n");
    let out = std::process::Command::new(bin).args(["--pred", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && err.contains("missing column `label`"), "{err}");
    let out = std::process::Command::new(bin).args(["--pred", "x.csv", "--shard", "3/2"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need 0 ≤ I < N"));
}

#[test]
fn user_auc_api_matches_evaluate() {
    let users = [1u64, 1, 1, 2, 2, 2, 3, 3];
    let labels = [true, false, false, true, true, false, false, true];
    let scores = [0.2f32, 0.3, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9];
    let s = metrics::user_auc(&users, &labels, &scores, UserWeight::Rows, None).unwrap();
    let p = Predictions {
        users: users.to_vec(),
        labels: labels.to_vec(),
        scores: vec![("s".into(), scores.to_vec())],
        ..Default::default()
    };
    let r = evaluate(&p, &Options { bootstrap: 0, ..Options::default() }).unwrap();
    assert!(close(r.overall.models[0].uauc, s.uauc));
    assert!(close(r.overall.models[0].wuauc, s.wuauc));
    assert_eq!(r.overall.users_counted, s.users_counted);
    let _ = fusion_eval::SHARDING_HELP;
}

#[test]
fn explicit_segment_columns_and_conflicts_are_counted() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "s.csv",
        "user_id,item_id,label,score,user_segment,item_segment\n\
         u1,i1,1,0.9,regular,cold-start\nu1,i2,0,0.1,regular,long_tail\n\
         u2,i1,1,0.4,cold,regular\nu2,i3,0,0.6,long-tail,regular\n",
    );
    let r = evaluate_file(&input(&p), &Options { bootstrap: 0, ..Options::default() }).unwrap();
    assert_eq!(r.user_segments, fusion_eval::SegmentSource::Column);
    let g = |k: GroupKind| r.segments.iter().find(|g| g.group == k).unwrap().clone();
    // u2 has conflicting user segments: the lowest (cold-start) is used, and it is reported.
    assert_eq!(g(GroupKind::User(Segment::ColdStart)).users, 1);
    assert_eq!(g(GroupKind::User(Segment::Regular)).models[0].uauc, Some(1.0));
    assert_eq!(g(GroupKind::User(Segment::ColdStart)).models[0].uauc, Some(0.0));
    let w = |k: WarningKind| r.warnings.iter().find(|w| w.kind == k).map(|w| w.count);
    assert_eq!(w(WarningKind::ConflictingUserSegment), Some(1));
    // i1 is cold-start on one row and regular on another.
    assert_eq!(w(WarningKind::ConflictingItemSegment), Some(1));
    assert_eq!(g(GroupKind::Item(Segment::Regular)).items, Some(2));
    assert_eq!(g(GroupKind::Item(Segment::Regular)).users_counted, 1);
    assert_eq!(g(GroupKind::Item(Segment::ColdStart)).users_skipped, 1);
}

/// A Parquet column for [`write_parquet`].
enum PqCol {
    I64(Vec<i64>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Str(Vec<&'static str>),
    /// Optional (nullable) f32: `None` is a null.
    OptF32(Vec<Option<f32>>),
    /// Optional (nullable) i64.
    OptI64(Vec<Option<i64>>),
}

/// Writes a one-row-group Parquet file (`message` = the schema's fields) with the parquet crate's
/// low-level writer; `cols` in schema order. No columns' data (`rows == 0`) writes no row group.
fn write_parquet(dir: &Path, name: &str, fields: &str, cols: Vec<PqCol>) -> PathBuf {
    use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let p = dir.join(name);
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&format!("message t {{ {fields} }}")).unwrap());
    let file = std::fs::File::create(&p).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let rows = match cols.first() {
        Some(PqCol::I64(v)) => v.len(),
        Some(PqCol::Str(v)) => v.len(),
        Some(PqCol::OptI64(v)) => v.len(),
        _ => 1,
    };
    if rows > 0 {
        let mut rg = w.next_row_group().unwrap();
        let mut it = cols.into_iter();
        while let Some(mut col) = rg.next_column().unwrap() {
            match it.next().unwrap() {
                PqCol::I64(v) => col.typed::<Int64Type>().write_batch(&v, None, None),
                PqCol::I32(v) => col.typed::<Int32Type>().write_batch(&v, None, None),
                PqCol::F32(v) => col.typed::<FloatType>().write_batch(&v, None, None),
                PqCol::Str(v) => {
                    let v: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(*s)).collect();
                    col.typed::<ByteArrayType>().write_batch(&v, None, None)
                }
                PqCol::OptF32(v) => {
                    let defs: Vec<i16> = v.iter().map(|x| x.is_some() as i16).collect();
                    let vals: Vec<f32> = v.iter().flatten().copied().collect();
                    col.typed::<FloatType>().write_batch(&vals, Some(&defs), None)
                }
                PqCol::OptI64(v) => {
                    let defs: Vec<i16> = v.iter().map(|x| x.is_some() as i16).collect();
                    let vals: Vec<i64> = v.iter().flatten().copied().collect();
                    col.typed::<Int64Type>().write_batch(&vals, Some(&defs), None)
                }
            }
            .unwrap();
            col.close().unwrap();
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
    p
}

#[test]
fn parquet_bad_inputs_give_clear_errors() {
    use PqCol::*;
    let d = tempfile::tempdir().unwrap();
    let o = Options { bootstrap: 0, ..Options::default() };
    let run = |p: PathBuf| err_of(evaluate_file(&input(&p), &o));
    let users = || I64(vec![1, 1, 2]);
    // The good path first: the same rows as CSV give the same report.
    let good = write_parquet(
        d.path(),
        "good.parquet",
        "required int64 user_id; required int32 label; required float score_a; required float score_b;",
        vec![users(), I32(vec![1, 0, 1]), F32(vec![0.9, 0.1, 0.5]), F32(vec![0.2, 0.8, 0.5])],
    );
    let csv = write(d.path(), "good.csv", "user_id,label,score_a,score_b\n1,1,0.9,0.2\n1,0,0.1,0.8\n2,1,0.5,0.5\n");
    let a = evaluate_file(&input(&good), &o).unwrap();
    let b = evaluate_file(&input(&csv), &o).unwrap();
    assert_eq!(a.overall, b.overall);
    assert_eq!(a.overall.models[0].uauc, Some(1.0));
    assert_eq!(a.overall.models[1].uauc, Some(0.0));

    let e = run(write_parquet(
        d.path(),
        "missing.parquet",
        "required int64 user_id; required float score;",
        vec![users(), F32(vec![0.1, 0.2, 0.3])],
    ));
    assert!(e.contains("missing.parquet") && e.contains("missing column `label`"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "label.parquet",
        "required int64 user_id; required int32 label; required float score;",
        vec![users(), I32(vec![1, 2, 0]), F32(vec![0.1, 0.2, 0.3])],
    ));
    assert!(e.contains("label.parquet:2: field `label`: label must be 0 or 1, got `2`"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "strlabel.parquet",
        "required int64 user_id; required binary label (UTF8); required float score;",
        vec![users(), Str(vec!["1", "yes", "0"]), F32(vec![0.1, 0.2, 0.3])],
    ));
    assert!(e.contains("strlabel.parquet:2: field `label`"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "nan.parquet",
        "required int64 user_id; required int32 label; required float score;",
        vec![users(), I32(vec![1, 0, 0]), F32(vec![0.1, 0.2, f32::NAN])],
    ));
    assert!(e.contains("nan.parquet:3: field `score`: score is NaN or Inf"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "inf.parquet",
        "required int64 user_id; required int32 label; required float score;",
        vec![users(), I32(vec![1, 0, 0]), F32(vec![f32::INFINITY, 0.2, 0.3])],
    ));
    assert!(e.contains("inf.parquet:1: field `score`: score is NaN or Inf"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "null.parquet",
        "required int64 user_id; required int32 label; optional float score;",
        vec![users(), I32(vec![1, 0, 0]), OptF32(vec![Some(0.1), None, Some(0.3)])],
    ));
    assert!(e.contains("null.parquet:2: field `score`: null value"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "seg.parquet",
        "required int64 user_id; required int32 label; required float score; required binary user_segment (UTF8);",
        vec![users(), I32(vec![1, 0, 0]), F32(vec![0.1, 0.2, 0.3]), Str(vec!["regular", "warm", "regular"])],
    ));
    assert!(e.contains("seg.parquet:2: field `user_segment`: unknown segment `warm`"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "intseg.parquet",
        "required int64 user_id; required int32 label; required float score; required int32 item_segment;",
        vec![users(), I32(vec![1, 0, 0]), F32(vec![0.1, 0.2, 0.3]), I32(vec![0, 1, 2])],
    ));
    assert!(e.contains("intseg.parquet") && e.contains("column `item_segment` must be a string column"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "neglabel.parquet",
        "required int64 user_id; required int32 label; required float score;",
        vec![users(), I32(vec![1, 0, -1]), F32(vec![0.1, 0.2, 0.3])],
    ));
    assert!(e.contains("neglabel.parquet:3: field `label`: label must be 0 or 1, got `-1`"), "{e}");
    let e = run(write_parquet(
        d.path(),
        "rows0.parquet",
        "required int64 user_id; required int32 label; required float score;",
        vec![I64(vec![]), I32(vec![]), F32(vec![])],
    ));
    assert!(e.contains("rows0.parquet") && e.contains("no data rows"), "{e}");
    let e = run(write(d.path(), "empty.parquet", ""));
    assert!(e.contains("empty.parquet: empty file"), "{e}");
    let e = run(write(d.path(), "text.parquet", "user_id,label,score\n1,1,0.5\n"));
    assert!(e.contains("text.parquet") && e.contains("not a Parquet file"), "{e}");
    // Duplicate --score names, and a score column that is not there.
    let inp = Input { scores: vec!["score_a".into(), "score_a".into()], ..input(&good) };
    let e = err_of(evaluate_file(&inp, &o));
    assert!(e.contains("score `score_a` is named twice"), "{e}");
    let inp = Input { scores: vec!["score_z".into()], ..input(&good) };
    let e = err_of(evaluate_file(&inp, &o));
    assert!(e.contains("missing column `score_z`"), "{e}");
}

/// HISTORY from Parquet: the same rows as CSV give the same report (generated, several row
/// groups; and by hand: string ids, every action, ratings with a nullable value, users out of
/// runs), and bad HISTORY files name the file, row and field.
#[test]
fn parquet_history_equals_csv_history_and_bad_inputs() {
    use PqCol::*;
    let d = tempfile::tempdir().unwrap();
    let o = Options { bootstrap: 0, ..Options::default() };
    let (p, hc) = gen_file(d.path(), "g.parquet", 20_000, 500);
    let hp = d.path().join("g.hist.parquet");
    let spec = generate::GenSpec {
        rows: 20_000,
        users: 500,
        items: 300,
        seed: 3,
        out: d.path().join("again.parquet"),
        history: Some(hp.clone()),
        row_group: 1000,
    };
    generate::generate(&spec).unwrap();
    let a = evaluate_file(&Input { history: Some(hc), ..input(&p) }, &o).unwrap();
    let b = evaluate_file(&Input { history: Some(hp), ..input(&p) }, &o).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.segments.len(), 6);
    assert!(a.segments.iter().all(|g| g.rows > 0), "every segment is populated");

    let pred = write(d.path(), "p.csv", GOOD);
    let acts = ["click", "rating", "impression", "Purchase", "rating", "conversion", "rating", "click"];
    let users = ["u1", "u2", "u2", "u1", "u2", "u9", "u1", "u2"];
    let items = ["i1", "i1", "i2", "i2", "i3", "i1", "i4", "i4"];
    let values = [None, Some(4.0), None, None, Some(3.5), None, Some(5.0), None];
    let mut text = String::from("user_id,item_id,timestamp,action,value,revenue\n");
    for r in 0..acts.len() {
        let v = values[r].map(|x: f32| x.to_string()).unwrap_or_default();
        text += &format!("{},{},{r},{},{v},\n", users[r], items[r], acts[r]);
    }
    let hc = write(d.path(), "h.csv", &text);
    let hp = write_parquet(
        d.path(),
        "h.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required binary action (UTF8); \
         optional float value;",
        vec![Str(users.to_vec()), Str(items.to_vec()), Str(acts.to_vec()), OptF32(values.to_vec())],
    );
    let th = Thresholds { user_long_tail_max: 2, item_long_tail_max: 1 };
    let run = |h: &Path| evaluate_file(&Input { history: Some(h.to_path_buf()), thresholds: th, ..input(&pred) }, &o);
    let (a, b) = (run(&hc).unwrap(), run(&hp).unwrap());
    assert_eq!(a, b);
    // The same with integer ids (int64 user, int32 item) and a required int32 `value` (MovieLens
    // ratings; 0 where there is no rating): the same counts, so the same segments.
    let hi = write_parquet(
        d.path(),
        "hi.parquet",
        "required int64 user_id; required int32 item_id; required binary action (UTF8); required int32 value;",
        vec![
            I64(vec![1, 2, 2, 1, 2, 9, 1, 2]),
            I32(vec![1, 1, 2, 2, 3, 1, 4, 4]),
            Str(acts.to_vec()),
            I32(vec![0, 4, 0, 0, 3, 0, 5, 0]),
        ],
    );
    let body = GOOD.split_once('\n').unwrap().1.replace(['u', 'i'], "");
    let pred_int = write(d.path(), "pi.csv", &format!("user_id,item_id,label,score_a,score_b\n{body}"));
    let ri = evaluate_file(&Input { history: Some(hi), thresholds: th, ..input(&pred_int) }, &o).unwrap();
    assert_eq!(ri.segments, a.segments);
    // u1: click, Purchase, rating = 3 (regular with max 2); u2: 3 of 4 (the impression is not
    // counted); u3 absent. i1: 2 conversions (rating 4, conversion) = regular with max 1;
    // i2, i4: 1 (long-tail); i3: rating 3.5 is not a conversion (cold-start, known).
    let g = |k: GroupKind| a.segments.iter().find(|g| g.group == k).unwrap().clone();
    assert_eq!(g(GroupKind::User(Segment::Regular)).users, 2);
    assert_eq!(g(GroupKind::User(Segment::ColdStart)).users, 1);
    assert_eq!(g(GroupKind::Item(Segment::Regular)).rows, 3);
    assert_eq!(g(GroupKind::Item(Segment::LongTail)).rows, 3); // i2 2 rows, i4 1
    assert_eq!(g(GroupKind::Item(Segment::ColdStart)).rows, 2); // i3

    let bad = |name: &str, fields: &str, cols: Vec<PqCol>| err_of(run(&write_parquet(d.path(), name, fields, cols)));
    let ids = || (Str(vec!["u1", "u2", "u3"]), Str(vec!["i1", "i1", "i2"]));
    let (u, i) = ids();
    let e = bad("noact.parquet", "required binary user_id (UTF8); required binary item_id (UTF8);", vec![u, i]);
    assert!(e.contains("noact.parquet") && e.contains("missing column `action`"), "{e}");
    let (u, i) = ids();
    let e = bad(
        "act.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required binary action (UTF8);",
        vec![u, i, Str(vec!["click", "click", "like"])],
    );
    assert!(e.contains("act.parquet:3: field `action`: unknown action `like`"), "{e}");
    let (u, i) = ids();
    let e = bad(
        "intact.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required int32 action;",
        vec![u, i, I32(vec![1, 2, 3])],
    );
    assert!(e.contains("intact.parquet") && e.contains("column `action` must be a string column"), "{e}");
    let (u, i) = ids();
    let e = bad(
        "nullrating.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required binary action (UTF8); \
         optional float value;",
        vec![u, i, Str(vec!["rating", "click", "rating"]), OptF32(vec![Some(5.0), None, None])],
    );
    assert!(e.contains("nullrating.parquet:3: field `value`: rating value is null"), "{e}");
    let (u, i) = ids();
    let e = bad(
        "norating.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required binary action (UTF8);",
        vec![u, i, Str(vec!["click", "rating", "click"])],
    );
    assert!(e.contains("norating.parquet:2: field `value`: rating value is null"), "{e}");
    let (u, i) = ids();
    let e = bad(
        "nanrating.parquet",
        "required binary user_id (UTF8); required binary item_id (UTF8); required binary action (UTF8); \
         optional float value;",
        vec![u, i, Str(vec!["rating", "click", "rating"]), OptF32(vec![Some(f32::NAN), None, Some(1.0)])],
    );
    assert!(e.contains("nanrating.parquet:1: field `value`: rating value is not a number"), "{e}");
    let e = bad(
        "nulluser.parquet",
        "optional int64 user_id; required binary item_id (UTF8); required binary action (UTF8);",
        vec![OptI64(vec![Some(1), None, Some(3)]), Str(vec!["i1", "i1", "i2"]), Str(vec!["click"; 3])],
    );
    assert!(e.contains("nulluser.parquet:2: field `user_id`: null value"), "{e}");
    let e = bad(
        "floatid.parquet",
        "required float user_id; required binary item_id (UTF8); required binary action (UTF8);",
        vec![F32(vec![1.0, 2.0, 3.0]), Str(vec!["i1", "i1", "i2"]), Str(vec!["click"; 3])],
    );
    assert!(e.contains("floatid.parquet") && e.contains("ids must be strings or integers"), "{e}");
    let e = err_of(run(&write(d.path(), "hempty.parquet", "")));
    assert!(e.contains("hempty.parquet: empty file"), "{e}");
    let e = err_of(run(&write(d.path(), "htext.parquet", "user_id,item_id,action\nu1,i1,click\n")));
    assert!(e.contains("htext.parquet") && e.contains("not a Parquet file"), "{e}");
    // A Parquet file without the Parquet extension, and binary data, as CSV PRED and HISTORY.
    let pq_bytes = std::fs::read(&hp).unwrap();
    let as_csv = write(d.path(), "h-parquet.csv", "");
    std::fs::write(&as_csv, &pq_bytes).unwrap();
    let e = err_of(run(&as_csv));
    assert!(e.contains("h-parquet.csv:1: field `header`: this is a Parquet file: name it `.parquet`"), "{e}");
    let e = err_of(evaluate_file(&input(&as_csv), &o));
    assert!(e.contains("h-parquet.csv:1: field `header`: this is a Parquet file"), "{e}");
    let bin = write(d.path(), "bin.csv", "user_id,\u{1}item\nu1,i1\n");
    let e = err_of(run(&bin));
    assert!(e.contains("bin.csv:1: field `header`: binary data, not a CSV/TSV header"), "{e}");
    std::fs::write(&bin, b"user_id,item_id,\xff\xfe\nu1,i1,x\n").unwrap();
    let e = err_of(evaluate_file(&input(&bin), &o));
    assert!(e.contains("bin.csv:1: field `header`: binary data"), "{e}");
    // A CSV rating of `NaN` is an error too (it used to count as "not a conversion").
    let h = write(d.path(), "nan.csv", "user_id,item_id,action,value\nu1,i1,rating,NaN\n");
    let e = err_of(run(&h));
    assert!(e.contains("nan.csv:2: field `value`: rating value is not a number: `NaN`"), "{e}");
}

#[test]
fn png_plot_draws_the_bars() {
    let d = tempfile::tempdir().unwrap();
    let (c, h) = gen_file(d.path(), "g.csv", 5_000, 200);
    let r = evaluate_file(&Input { history: Some(h), ..input(&c) }, &Options { bootstrap: 20, ..Options::default() })
        .unwrap();
    let p = d.path().join("deltas.png");
    learnrec_eval::fusion_eval::plot::deltas_plot(&r, &p).unwrap();
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&p).unwrap()));
    let mut rd = dec.read_info().unwrap();
    let mut buf = vec![0; rd.output_buffer_size().unwrap()];
    let info = rd.next_frame(&mut buf).unwrap();
    // 7 groups (overall + 6 segments) of 130 px plus margins.
    assert_eq!((info.width, info.height), (70 + 7 * 130 + 20, 480));
    let px = &buf[..info.buffer_size()];
    // The first model's UAUC bars are drawn in the first palette colour.
    let blue = px.chunks(3).filter(|c| *c == [31, 90, 200]).count();
    assert!(blue > 100, "{blue} bar pixels");
    let e = learnrec_eval::fusion_eval::plot::deltas_plot(&r, &d.path().join("deltas.jpg")).unwrap_err().to_string();
    assert!(e.contains("must end in .svg or .png"), "{e}");
}

/// Segments computed from HISTORY equal explicit segment columns computed here from the same
/// HISTORY by the definition (users: counted non-impression rows; items: conversions), on a
/// generated file (integer ids) with extra rows of users and items absent from HISTORY.
#[test]
fn history_segments_equal_explicit_columns_by_the_definition() {
    let d = tempfile::tempdir().unwrap();
    let (c, h) = gen_file(d.path(), "g.csv", 20_000, 600);
    let th = Thresholds { user_long_tail_max: 30, item_long_tail_max: 20 };
    let (mut ucount, mut iconv) = (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
    for line in std::fs::read_to_string(&h).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        *ucount.entry(f[0].into()).or_insert(0) += (f[3] != "impression") as u64;
        *iconv.entry(f[1].into()).or_insert(0) += (f[3] == "conversion") as u64;
    }
    let text = std::fs::read_to_string(&c).unwrap();
    let mut lines = text.lines();
    let hdr = lines.next().unwrap().to_string();
    let cols: Vec<&str> = hdr.split(',').collect();
    let (cu, ci) =
        (cols.iter().position(|&x| x == "user_id").unwrap(), cols.iter().position(|&x| x == "item_id").unwrap());
    // Absent users (90001..) and items (70001..), and a user present with absent items.
    let mut rows: Vec<String> = lines.map(String::from).collect();
    let first = rows[0].clone();
    for k in 0..40 {
        let mut f: Vec<String> = first.split(',').map(String::from).collect();
        f[cu] = if k % 2 == 0 { format!("{}", 90_001 + k % 5) } else { f[cu].clone() };
        f[ci] = format!("{}", 70_001 + k % 7);
        let label = cols.iter().position(|&x| x == "label").unwrap();
        f[label] = if k % 3 == 0 { "1" } else { "0" }.into();
        rows.push(f.join(","));
    }
    let plain = write(d.path(), "plain.csv", &format!("{hdr}\n{}\n", rows.join("\n")));
    let seg = |c: Option<&u64>, user: bool| {
        let c = c.copied().unwrap_or(0);
        if user { th.user(c) } else { th.item(c) }.name()
    };
    let with: Vec<String> = rows
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            format!("{r},{},{}", seg(ucount.get(f[cu]), true), seg(iconv.get(f[ci]), false))
        })
        .collect();
    let explicit = write(d.path(), "explicit.csv", &format!("{hdr},user_segment,item_segment\n{}\n", with.join("\n")));
    let o = Options { bootstrap: 0, ..Options::default() };
    let a = evaluate_file(&Input { history: Some(h), thresholds: th, ..input(&plain) }, &o).unwrap();
    let b = evaluate_file(&input(&explicit), &o).unwrap();
    assert_eq!(a.segments.len(), 6);
    assert_eq!((a.rows, a.users, a.items), (b.rows, b.users, b.items));
    for (x, y) in a.segments.iter().zip(&b.segments) {
        assert_eq!(x.group, y.group);
        assert_eq!(
            (x.users, x.rows, x.items, x.users_counted, x.users_skipped),
            (y.users, y.rows, y.items, y.users_counted, y.users_skipped),
            "{:?}",
            x.group
        );
        assert_eq!(x.models, y.models, "{:?}", x.group);
    }
    let absent = |col: usize, m: &BTreeMap<String, u64>| {
        let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.split(',').nth(col).unwrap()).collect();
        ids.into_iter().filter(|i| !m.contains_key(*i)).count() as u64
    };
    let (au, ai) = (absent(cu, &ucount), absent(ci, &iconv));
    assert!(au >= 5 && ai >= 7, "{au} {ai}");
    let w = |r: &Report, k: WarningKind| r.warnings.iter().find(|w| w.kind == k).map(|w| w.count);
    assert_eq!(w(&a, WarningKind::UsersAbsentFromHistory), Some(au));
    assert_eq!(w(&a, WarningKind::ItemsAbsentFromHistory), Some(ai));
    assert!(a.segments.iter().any(|g| g.group == GroupKind::Item(Segment::ColdStart) && g.items.unwrap() >= 7));
}
