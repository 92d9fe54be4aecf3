//! Unwritable output, full disk, missing asset, corrupted cache: each is a clear error naming
//! the file, and nothing already written is lost. Runs the built `learnrec` binary; no network
//! (`PATH` is emptied wherever a command could try to fetch).

mod common;

use common::{files_under, is_atomic_temp, learnrec, write_sequences, write_tiny_minilm};
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

/// The command failed with an error (not a panic) whose text contains every `want`.
fn assert_clear_error(out: &Output, want: &[&str]) -> String {
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "expected a failure, got success: {err}"
    );
    assert!(!err.contains("panicked"), "a panic, not an error: {err}");
    for w in want {
        assert!(err.contains(w), "the error does not mention `{w}`: {err}");
    }
    err
}

fn train(cache: &Path, seq: &Path, out: &Path) -> Command {
    let mut c = learnrec(cache);
    c.arg("train")
        .arg("--sequences")
        .arg(seq)
        .arg("--out")
        .arg(out);
    c.args([
        "--input",
        "id",
        "--epochs",
        "3",
        "--layers",
        "1",
        "--d-model",
        "32",
        "--heads",
        "2",
    ]);
    c.args([
        "--batch-size",
        "32",
        "--history-len",
        "8",
        "--target-len",
        "4",
        "--seed",
        "1",
        "--quiet",
    ]);
    c
}

/// `learnrec ARGS` under a file-size limit of `kib` KiB (`ulimit -f`), with SIGXFSZ ignored so
/// that an oversized write fails with EFBIG ("File too large") as on a full disk.
fn with_fsize_limit(c: &Command, kib: u64) -> Command {
    let mut sh = Command::new("sh");
    // POSIX `ulimit -f` counts 512-byte blocks (dash); bash counts 1 KiB blocks: both are
    // well below what the tests write past the limit.
    sh.arg("-c").arg(format!(
        "trap '' XFSZ; ulimit -f {} && exec \"$0\" \"$@\"",
        kib * 2
    ));
    sh.arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

fn no_temp_files(dir: &Path) {
    let tmp: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|f| is_atomic_temp(&f.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
}

#[test]
fn unwritable_output_is_an_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let seq = tmp.path().join("seq.jsonl");
    write_sequences(&seq, 64, 30, 1);
    // An output directory below a regular file: cannot be created (even as root).
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let below = file.join("out");
    let e = assert_clear_error(
        &run(train(&cache, &seq, &below)),
        &["a-file/out", "Not a directory"],
    );
    println!(
        "train --out under a file: {}",
        e.lines().next().unwrap_or("")
    );
    let mut world = learnrec(&cache);
    world
        .args([
            "world", "--users", "20", "--items", "10", "--days", "10", "--out",
        ])
        .arg(&below);
    assert_clear_error(&run(world), &["a-file/out"]);
    let mut demo = learnrec(&cache);
    demo.args(["demo", "--out"]).arg(&below);
    assert_clear_error(&run(demo), &["a-file/out"]);

    // A read-only directory (chmod 0o500).
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(ro.join("probe"), "x").is_ok() {
        println!(
            "skipped (read-only directory part): chmod 0o500 does not stop this user (root?) from writing"
        );
        return;
    }
    let e = assert_clear_error(
        &run(train(&cache, &seq, &ro)),
        &["ro/", "Permission denied"],
    );
    println!("train --out read-only: {}", e.lines().next().unwrap_or(""));
    let mut world = learnrec(&cache);
    world
        .args([
            "world", "--users", "20", "--items", "10", "--days", "10", "--out",
        ])
        .arg(&ro);
    assert_clear_error(&run(world), &["ro/", "Permission denied"]);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(files_under(&ro).is_empty());
}

#[test]
fn full_disk_keeps_the_previous_checkpoint_and_store() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let seq = tmp.path().join("seq.jsonl");
    write_sequences(&seq, 96, 60, 2);
    let out = tmp.path().join("t");
    // Epoch 1 of 3 without a limit: the checkpoint to keep.
    let mut first = train(&cache, &seq, &out);
    first.args(["--max-epochs-this-run", "1"]);
    let o = run(first);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ck = out.join("checkpoint.bin");
    let before = std::fs::read(&ck).unwrap();
    assert!(
        before.len() > 64 * 1024,
        "the checkpoint must be larger than the limit"
    );
    // Resume under a 32 KiB file-size limit: the epoch-2 checkpoint cannot be written.
    let mut resume = train(&cache, &seq, &out);
    resume.arg("--resume");
    let e = assert_clear_error(
        &run(with_fsize_limit(&resume, 32)),
        &["checkpoint.bin", "File too large"],
    );
    println!(
        "train under a full disk: {}",
        e.lines().last().unwrap_or("")
    );
    assert!(
        std::fs::read(&ck).unwrap() == before,
        "the previous checkpoint changed"
    );
    no_temp_files(&out);
    // And the kept checkpoint still resumes to the end.
    let mut resume = train(&cache, &seq, &out);
    resume.arg("--resume");
    let o = run(resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A store: `merge-stores` over an existing (valid) output.
    let mk = |name: &str, n: usize, dim: usize| {
        let mut s = EmbeddingStore::new(StoreKind::Content, dim);
        s.meta.insert("model".into(), "m".into());
        for r in 0..n {
            let row: Vec<f32> = (0..dim).map(|c| (r * dim + c) as f32).collect();
            s.insert(&format!("{name}{r}"), "h", &row).unwrap();
        }
        let p = tmp.path().join(format!("{name}.safetensors"));
        s.save(&p).unwrap();
        p
    };
    let (big, small) = (mk("big", 2000, 32), mk("small", 3, 32));
    let merged = tmp.path().join("stores").join("merged.safetensors");
    std::fs::create_dir_all(merged.parent().unwrap()).unwrap();
    std::fs::copy(&small, &merged).unwrap();
    let old = std::fs::read(&merged).unwrap();
    let mut m = learnrec(&cache);
    m.arg("merge-stores")
        .arg("--out")
        .arg(&merged)
        .arg(&big)
        .arg(&small);
    let e = assert_clear_error(
        &run(with_fsize_limit(&m, 64)),
        &["merged.safetensors", "File too large"],
    );
    println!(
        "merge-stores under a full disk: {}",
        e.lines().next().unwrap_or("")
    );
    assert!(
        std::fs::read(&merged).unwrap() == old,
        "the previous store changed"
    );
    EmbeddingStore::load(&merged).unwrap();
    no_temp_files(merged.parent().unwrap());
}

/// A catalog for `embed`.
fn catalog(dir: &Path) -> PathBuf {
    let p = dir.join("catalog.csv");
    std::fs::write(
        &p,
        "item_id,title,category,brand,price,keywords,attributes,available_from\n\
         a,Red Shoe,Sports,Acme,10,\"run, shoe\",color=red,\n\
         b,Blue Mug,Home,Mugs,5,mug,color=blue,\n",
    )
    .unwrap();
    p
}

#[test]
fn missing_asset_without_network_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let empty_path = tmp.path().join("no-tools");
    std::fs::create_dir(&empty_path).unwrap();
    let cat = catalog(tmp.path());
    // embed with an asset name that is not cached.
    let mut c = learnrec(&cache);
    c.args(["embed", "--model", "minilm", "--items"])
        .arg(&cat)
        .arg("--out")
        .arg(tmp.path().join("c.safetensors"));
    c.env("PATH", &empty_path);
    assert_clear_error(
        &run(c),
        &["--model minilm", "not fetched yet", "learnrec fetch minilm"],
    );
    // fetch with no way to download.
    let mut c = learnrec(&cache);
    c.args(["fetch", "minilm"]).env("PATH", &empty_path);
    assert_clear_error(
        &run(c),
        &["could not fetch minilm", "`python3` not found on PATH"],
    );
    // The demo stops at the fetch stage and names it; what it did before is kept and a rerun
    // (once the asset is there) resumes after it.
    let out = tmp.path().join("demo");
    let demo = |path: &Path| {
        let mut c = learnrec(&cache);
        c.arg("demo").arg("--out").arg(&out).args([
            "--users", "320", "--items", "40", "--days", "24", "--epochs", "1",
        ]);
        c.args([
            "--layers",
            "1",
            "--d-model",
            "16",
            "--history-len",
            "8",
            "--target-len",
            "4",
            "--ab-days",
            "1",
        ]);
        c.env("PATH", path);
        c
    };
    assert_clear_error(
        &run(demo(&empty_path)),
        &[
            "demo stage `fetch-encoder` failed",
            "could not fetch minilm",
        ],
    );
    assert!(out.join(".stages/world.done").exists() && out.join("world/catalog.csv").exists());
    write_tiny_minilm(&cache);
    let o = run(demo(&empty_path));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("[demo] world: cached"), "{err}");
}

fn flip_byte(p: &Path, at: usize) {
    let mut b = std::fs::read(p).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x10;
    std::fs::write(p, b).unwrap();
}

#[test]
fn corrupted_store_checkpoint_and_asset_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // A store: one flipped bit in the embeddings.
    let store = tmp.path().join("s.safetensors");
    let mut s = EmbeddingStore::new(StoreKind::Content, 4);
    s.insert("a", "h", &[1.0, 2.0, 3.0, 4.0]).unwrap();
    s.insert("b", "h", &[4.0, 3.0, 2.0, 1.0]).unwrap();
    s.save(&store).unwrap();
    let len = std::fs::metadata(&store).unwrap().len() as usize;
    flip_byte(&store, len - 3);
    let mut c = learnrec(&cache);
    c.args(["neighbors", "--item", "a", "--store"]).arg(&store);
    assert_clear_error(&run(c), &["s.safetensors", "checksum mismatch"]);

    // A tower checkpoint: one flipped byte in the model record.
    let seq = tmp.path().join("seq.jsonl");
    write_sequences(&seq, 64, 30, 3);
    let out = tmp.path().join("t");
    let mut first = train(&cache, &seq, &out);
    first.args(["--max-epochs-this-run", "1"]);
    assert!(run(first).status.success());
    let ck = out.join("checkpoint.bin");
    let len = std::fs::metadata(&ck).unwrap().len() as usize;
    flip_byte(&ck, len / 2);
    let mut resume = train(&cache, &seq, &out);
    resume.arg("--resume");
    assert_clear_error(&run(resume), &["checkpoint.bin", "checksum mismatch"]);
    let mut ev = learnrec(&cache);
    ev.args(["retrieval-eval", "--model"])
        .arg(&out)
        .arg("--sequences")
        .arg(&seq)
        .arg("--out")
        .arg(tmp.path().join("r.json"));
    assert_clear_error(&run(ev), &["checkpoint.bin", "checksum mismatch"]);

    // A cached asset: one flipped byte in the (tiny) MiniLM weights.
    let dir = write_tiny_minilm(&cache);
    learnrec_eval::assets::verify_in(&cache.join("assets"), learnrec_eval::assets::Asset::Minilm)
        .unwrap();
    flip_byte(&dir.join("model.safetensors"), 4000);
    let e = learnrec_eval::assets::verify_in(
        &cache.join("assets"),
        learnrec_eval::assets::Asset::Minilm,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("checksum mismatch") && e.contains("model.safetensors"),
        "{e}"
    );
    let no_tools = tmp.path().join("no-tools");
    std::fs::create_dir(&no_tools).unwrap();
    let mut c = learnrec(&cache);
    c.args(["embed", "--model", "minilm", "--items"])
        .arg(catalog(tmp.path()))
        .arg("--out")
        .arg(tmp.path().join("c.safetensors"));
    c.env("PATH", &no_tools);
    assert_clear_error(&run(c), &["model.safetensors", "checksum mismatch"]);
    let mut c = learnrec(&cache);
    c.args(["fetch", "minilm"]).env("PATH", &no_tools);
    let e = assert_clear_error(&run(c), &["could not fetch minilm"]);
    assert!(!e.contains("already present"), "{e}");
    assert!(!tmp.path().join("c.safetensors").exists());
}
