//! SIGKILL robustness of `learnrec train` and `learnrec demo` (the built binary, end to end).
//!
//! Each test runs the command once uninterrupted, then again in a fresh directory killed with
//! SIGKILL three times at seeded-random points (after a random number of finished epochs or
//! stages, plus a random delay, so the kills land inside the run however loaded the machine is)
//! and rerun (with `--resume` / plain rerun for the demo) until it finishes. After every kill each file in the output directory must be absent, a leftover
//! temporary file of `learnrec_eval::atomic` (`.NAME.tmpPID`, ignored by every reader), or
//! complete and valid. The final results must equal the uninterrupted run's: byte for byte for
//! every file whose bytes do not embed run-specific data, and value for value (bit-exact f32)
//! for the rest — Burn gives every parameter a random id and serialises the optimiser state from
//! a hash map, and SafeTensors writes its metadata from a hash map, so the bytes of a tower
//! checkpoint or an embedding store differ between two identical uninterrupted runs too.

mod common;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{Adam, AdamConfig, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use common::{Rng, files_under, is_atomic_temp, learnrec, write_sequences, write_tiny_minilm};
use learnrec_eval::store::EmbeddingStore;
use learnrec_model::CpuAutodiff as B;
use learnrec_model::towers::{Checkpoint, LearnTower};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Everything a checkpoint determines, with the random parameter ids replaced by module order:
/// the header (config, epoch, step, epoch losses) and, per parameter, its shape, its values and
/// its Adam moments and step count (all as raw f32 bytes).
#[derive(Debug, PartialEq)]
struct CheckpointState {
    header: String,
    params: Vec<(Vec<usize>, Vec<u8>)>,
    adam: Vec<(usize, Vec<u8>, Vec<u8>)>,
}

fn checkpoint_state(path: &Path) -> CheckpointState {
    let ck = Checkpoint::load(path).unwrap_or_else(|e| panic!("{e}"));
    let dev = Default::default();
    let model: LearnTower<B> = ck.model(&dev, path).unwrap_or_else(|e| panic!("{e}"));
    let rec = Recorder::<B>::load(
        &BinBytesRecorder::<FullPrecisionSettings>::default(),
        ck.optim.clone(),
        &dev,
    )
    .unwrap_or_else(|e| panic!("{}: optimizer record: {e}", path.display()));
    let optim: OptimizerAdaptor<Adam, LearnTower<B>, B> = AdamConfig::new().init();
    let records: Vec<(ParamId, AdaptorRecord<Adam, B>)> =
        optim.load_record(rec).to_record().into_iter().collect();
    struct V {
        params: Vec<(Vec<usize>, Vec<u8>)>,
        adam: Vec<(usize, Vec<u8>, Vec<u8>)>,
        records: Vec<(ParamId, AdaptorRecord<Adam, B>)>,
    }
    impl ModuleVisitor<B> for V {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            self.params
                .push((t.dims().to_vec(), t.into_data().as_bytes().to_vec()));
            if let Some(k) = self.records.iter().position(|(id, _)| *id == param.id) {
                let m = self.records.swap_remove(k).1.into_state::<D>().momentum;
                self.adam.push((
                    m.time,
                    m.moment_1.into_data().as_bytes().to_vec(),
                    m.moment_2.into_data().as_bytes().to_vec(),
                ));
            }
        }
    }
    let mut v = V {
        params: Vec::new(),
        adam: Vec::new(),
        records,
    };
    model.visit(&mut v);
    assert!(
        v.records.is_empty(),
        "{}: optimizer state of unknown parameters",
        path.display()
    );
    assert!(
        !v.params.is_empty() && (ck.meta.step == 0 || !v.adam.is_empty()),
        "{}: no parameters or no optimizer state",
        path.display()
    );
    CheckpointState {
        header: serde_json::to_string(&ck.meta).unwrap(),
        params: v.params,
        adam: v.adam,
    }
}

const TRAIN_EPOCHS: usize = 12;

fn train_cmd(cache: &Path, seq: &Path, out: &Path, resume: bool) -> Command {
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
        &TRAIN_EPOCHS.to_string(),
        "--layers",
        "2",
        "--d-model",
        "32",
    ]);
    c.args([
        "--heads",
        "2",
        "--batch-size",
        "32",
        "--history-len",
        "16",
        "--target-len",
        "8",
    ]);
    c.args(["--dropout", "0.1", "--seed", "3", "--quiet"]);
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn run_ok(mut c: Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Spawns `c` and SIGKILLs it `extra` after `reached()` first holds (a progress point: so
/// that the kill lands inside the run however loaded the machine is), unless it finished
/// first. Returns whether the kill landed while the process was running. A run that finished
/// on its own must succeed.
fn run_and_kill(mut c: Command, mut reached: impl FnMut() -> bool, extra: Duration) -> bool {
    c.stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut since: Option<Instant> = None;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{c:?} exited with {st}");
            return false;
        }
        if since.is_none() && reached() {
            since = Some(Instant::now());
        }
        if since.is_some_and(|t| t.elapsed() >= extra) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    !child.wait().unwrap().success()
}

/// Seeded-random kill points: `n` distinct values in `lo..hi`, increasing.
fn kill_points(rng: &mut Rng, n: usize, lo: u64, hi: u64) -> Vec<u64> {
    let mut v: Vec<u64> = Vec::new();
    while v.len() < n {
        let x = rng.range(lo, hi);
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v.sort();
    v
}

/// Completed epochs of the checkpoint in `dir` (0 without one), from its JSON header alone.
fn checkpoint_epoch(dir: &Path) -> u64 {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(dir.join("checkpoint.bin")) else {
        return 0;
    };
    let mut b = Vec::new();
    let _ = f.take(1 << 16).read_to_end(&mut b);
    let Some(n) = b
        .get(8..16)
        .map(|x| u64::from_le_bytes(x.try_into().unwrap()) as usize)
    else {
        return 0;
    };
    b.get(16..16 + n)
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0)
}

/// After a kill: every file of a train output directory is a temp file or complete and valid.
/// Returns the completed epochs of the checkpoint (0 when there is none yet).
fn check_train_dir(dir: &Path, reference: &Path) -> usize {
    let mut epochs = 0;
    for f in files_under(dir) {
        let name = f.to_string_lossy().into_owned();
        let p = dir.join(&f);
        if is_atomic_temp(&name) {
            continue;
        }
        match name.as_str() {
            // Written once before training starts; a partial one would differ.
            "config.json" | "items.json" => {
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(reference.join(&f)).unwrap(),
                    "{name} after a kill"
                )
            }
            "checkpoint.bin" => {
                let st = checkpoint_state(&p);
                let meta: serde_json::Value = serde_json::from_str(&st.header).unwrap();
                epochs = meta["epoch"].as_u64().unwrap() as usize;
                assert!((1..=TRAIN_EPOCHS).contains(&epochs), "{epochs}");
            }
            other => panic!("unexpected file {other} in the train output"),
        }
    }
    epochs
}

#[test]
fn train_killed_and_resumed_matches_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let seq = tmp.path().join("seq.jsonl");
    write_sequences(&seq, 256, 120, 5);
    let (reference, killed) = (tmp.path().join("ref"), tmp.path().join("killed"));
    let t = Instant::now();
    run_ok(train_cmd(&cache, &seq, &reference, false));
    let full = t.elapsed();
    let ref_state = checkpoint_state(&reference.join("checkpoint.bin"));

    // Kill after a random number of finished epochs plus a random part of an epoch.
    let mut rng = Rng(0x5EED_7A17);
    let epoch_ms = full.as_millis() as u64 / TRAIN_EPOCHS as u64;
    let (mut landed, mut last_epochs) = (0, 0);
    for at in kill_points(&mut rng, 3, 0, TRAIN_EPOCHS as u64 - 1) {
        let resume = killed.join("checkpoint.bin").exists();
        let extra = Duration::from_millis(rng.range(0, epoch_ms.max(1)));
        let dir = killed.clone();
        landed += run_and_kill(
            train_cmd(&cache, &seq, &killed, resume),
            move || checkpoint_epoch(&dir) >= at,
            extra,
        ) as usize;
        let epochs = check_train_dir(&killed, &reference);
        assert!(
            epochs >= last_epochs,
            "the checkpoint went back from epoch {last_epochs} to {epochs}"
        );
        last_epochs = epochs;
    }
    assert!(
        landed >= 2,
        "only {landed} of 3 kills landed while training ran (uninterrupted run took {full:?})"
    );
    // Finish: one uninterrupted rerun (resuming when a checkpoint exists).
    let resume = killed.join("checkpoint.bin").exists();
    run_ok(train_cmd(&cache, &seq, &killed, resume));
    assert_eq!(
        checkpoint_state(&killed.join("checkpoint.bin")),
        ref_state,
        "final checkpoint differs"
    );
    for f in ["config.json", "items.json"] {
        assert_eq!(
            std::fs::read(killed.join(f)).unwrap(),
            std::fs::read(reference.join(f)).unwrap(),
            "{f}"
        );
    }
    println!("train: uninterrupted {full:?}; {landed}/3 kills landed mid-run");
}

const DEMO_ARGS: &[&str] = &[
    "--users",
    "320",
    "--items",
    "40",
    "--days",
    "24",
    "--epochs",
    "6",
    "--layers",
    "1",
    "--d-model",
    "16",
    "--history-len",
    "8",
    "--target-len",
    "4",
    "--ab-days",
    "2",
    "--seed",
    "11",
];

fn demo_cmd(cache: &Path, out: &Path) -> Command {
    let mut c = learnrec(cache);
    c.arg("demo").arg("--out").arg(out).args(DEMO_ARGS);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// A JSON value without the keys that hold wall-clock measurements (`*seconds*`, `*per_sec*`).
fn without_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.contains("seconds") && !k.contains("per_sec"));
            m.values_mut().for_each(without_timings);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_timings),
        _ => {}
    }
}

fn json(p: &Path) -> serde_json::Value {
    let bytes = std::fs::read(p).unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn store_eq(a: &Path, b: &Path) {
    let (x, y) = (
        EmbeddingStore::load(a).unwrap(),
        EmbeddingStore::load(b).unwrap(),
    );
    assert_eq!(
        (x.kind, x.dim, &x.ids, &x.hashes, &x.meta),
        (y.kind, y.dim, &y.ids, &y.hashes, &y.meta),
        "{}",
        b.display()
    );
    let bits = |s: &EmbeddingStore| s.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(bits(&x) == bits(&y), "{}: embeddings differ", b.display());
}

/// How a demo output file compares with the uninterrupted run's.
enum Kind {
    /// Same bytes.
    Bytes,
    /// A stage marker: its command line, with the output directory substituted.
    Marker,
    /// An embedding store: same ids, metadata and bit-exact rows (metadata order is free).
    Store,
    /// A tower checkpoint: see [`CheckpointState`].
    Checkpoint,
    /// JSON equal after dropping wall-clock timings.
    JsonTimed,
    /// A Burn ranker record (random parameter ids): it must load; its predictions are compared.
    Ranker,
    /// A text report with throughput figures: same lines except those with `/s`.
    TextTimed,
}

fn kind(rel: &str) -> Kind {
    match rel {
        r if r.starts_with(".stages/") => Kind::Marker,
        r if r.ends_with(".safetensors") => Kind::Store,
        r if r.ends_with("checkpoint.bin") => Kind::Checkpoint,
        "ab/report.json" | "rank/train_report.json" => Kind::JsonTimed,
        r if r.ends_with(".mpk") => Kind::Ranker,
        "ab/report.md" | "ab/report.html" => Kind::TextTimed,
        _ => Kind::Bytes,
    }
}

fn text_without_rates(p: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(p).unwrap();
    // The HTML report is one long line per element; split on tags too.
    s.split(['\n', '<'])
        .filter(|l| !l.contains("/s") && !l.contains(" s ("))
        .map(str::to_owned)
        .collect()
}

/// Checks `rel` of the demo directory `dir` against the reference `reference`.
fn check_demo_file(dir: &Path, reference: &Path, rel: &str) {
    let (a, b) = (reference.join(rel), dir.join(rel));
    assert!(
        a.exists(),
        "{rel} is not an output of the uninterrupted demo"
    );
    match kind(rel) {
        Kind::Bytes => assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{rel} differs"
        ),
        Kind::Marker => {
            let want = std::fs::read_to_string(&a)
                .unwrap()
                .replace(&reference.display().to_string(), &dir.display().to_string());
            assert_eq!(std::fs::read_to_string(&b).unwrap(), want, "{rel}");
        }
        Kind::Store => store_eq(&a, &b),
        Kind::Checkpoint => assert!(
            checkpoint_state(&a) == checkpoint_state(&b),
            "{rel}: checkpoint state differs"
        ),
        Kind::JsonTimed => {
            let (mut x, mut y) = (json(&a), json(&b));
            without_timings(&mut x);
            without_timings(&mut y);
            assert_eq!(x, y, "{rel}");
        }
        Kind::Ranker => {
            let d = b.parent().unwrap();
            if d.join("rankers.json").exists() {
                learnrec_fusion::io::load_rankers::<learnrec_model::CpuBackend>(
                    d,
                    &Default::default(),
                )
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            }
        }
        Kind::TextTimed => assert_eq!(text_without_rates(&a), text_without_rates(&b), "{rel}"),
    }
}

/// After a kill: every file is a temp file, or a complete output of a finished step. A step's
/// outputs are only final once its marker exists, except a tower checkpoint (valid on its own,
/// resumed from); a file of an unfinished step must still be complete and valid.
fn check_demo_dir_after_kill(dir: &Path, reference: &Path) {
    for f in files_under(dir) {
        let rel = f.to_string_lossy().into_owned();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if is_atomic_temp(&name) {
            continue;
        }
        match kind(&rel) {
            Kind::Checkpoint => {
                checkpoint_state(&dir.join(&f));
            }
            Kind::Store => {
                EmbeddingStore::load(&dir.join(&f))
                    .unwrap_or_else(|e| panic!("{rel} after a kill: {e}"));
            }
            Kind::JsonTimed => {
                json(&dir.join(&f));
            }
            // Training writes items.json/config.json first, the checkpoint per epoch: the
            // marker and the final comparison cover them; other files are final when written.
            _ => check_demo_file(dir, reference, &rel),
        }
    }
}

#[test]
fn demo_killed_and_rerun_matches_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    write_tiny_minilm(&cache);
    let (reference, killed) = (tmp.path().join("ref"), tmp.path().join("killed"));
    let t = Instant::now();
    run_ok(demo_cmd(&cache, &reference));
    let full = t.elapsed();
    let ref_files = files_under(&reference);
    assert!(ref_files.iter().any(|f| f.ends_with("index.md")));

    // Kill after a random number of finished stages (of 12) plus a few random milliseconds.
    let mut rng = Rng(0xDE30_0001);
    let mut landed = 0;
    let stages = |d: &Path| {
        std::fs::read_dir(d.join(".stages")).map_or(0, |r| {
            r.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
                .count() as u64
        })
    };
    for at in kill_points(&mut rng, 3, 0, 11) {
        let extra = Duration::from_millis(rng.range(0, 150));
        let dir = killed.clone();
        landed +=
            run_and_kill(demo_cmd(&cache, &killed), move || stages(&dir) >= at, extra) as usize;
        check_demo_dir_after_kill(&killed, &reference);
    }
    assert!(
        landed >= 2,
        "only {landed} of 3 kills landed while the demo ran (uninterrupted run took {full:?})"
    );
    run_ok(demo_cmd(&cache, &killed));
    let got: Vec<PathBuf> = files_under(&killed)
        .into_iter()
        .filter(|f| !is_atomic_temp(&f.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(
        got, ref_files,
        "the rerun demo left a different set of files"
    );
    for f in &ref_files {
        check_demo_file(&killed, &reference, &f.to_string_lossy());
    }
    // The report tables themselves, for the record.
    assert_eq!(
        std::fs::read_to_string(killed.join("index.md")).unwrap(),
        std::fs::read_to_string(reference.join("index.md")).unwrap()
    );
    println!("demo: uninterrupted {full:?}; {landed}/3 kills landed mid-run");
}
