//! SIGKILL robustness of `learnrec train` and `learnrec demo` (the built binary, end to end).
//!
//! Each test runs the command once uninterrupted, then again in a fresh directory killed with
//! SIGKILL at seeded-random moments and rerun (with `--resume` / plain rerun for the demo) until
//! it finishes. After every kill each file in the output directory must be absent, a leftover
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
    let rec = Recorder::<B>::load(&BinBytesRecorder::<FullPrecisionSettings>::default(), ck.optim.clone(), &dev)
        .unwrap_or_else(|e| panic!("{}: optimizer record: {e}", path.display()));
    let optim: OptimizerAdaptor<Adam, LearnTower<B>, B> = AdamConfig::new().init();
    let records: Vec<(ParamId, AdaptorRecord<Adam, B>)> = optim.load_record(rec).to_record().into_iter().collect();
    struct V {
        params: Vec<(Vec<usize>, Vec<u8>)>,
        adam: Vec<(usize, Vec<u8>, Vec<u8>)>,
        records: Vec<(ParamId, AdaptorRecord<Adam, B>)>,
    }
    impl ModuleVisitor<B> for V {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            self.params.push((t.dims().to_vec(), t.into_data().as_bytes().to_vec()));
            if let Some(k) = self.records.iter().position(|(id, _)| *id == param.id) {
                let m = self.records.swap_remove(k).1.into_state::<D>().momentum;
                self.adam.push((m.time, m.moment_1.into_data().as_bytes().to_vec(), m.moment_2.into_data().as_bytes().to_vec()));
            }
        }
    }
    let mut v = V { params: Vec::new(), adam: Vec::new(), records };
    model.visit(&mut v);
    assert!(!v.params.is_empty() && !v.adam.is_empty() && v.records.is_empty(), "{}: optimizer state of unknown parameters", path.display());
    CheckpointState {
        header: serde_json::to_string(&ck.meta).unwrap(),
        params: v.params,
        adam: v.adam,
    }
}

const TRAIN_EPOCHS: usize = 12;

fn train_cmd(cache: &Path, seq: &Path, out: &Path, resume: bool) -> Command {
    let mut c = learnrec(cache);
    c.arg("train").arg("--sequences").arg(seq).arg("--out").arg(out);
    c.args(["--input", "id", "--epochs", &TRAIN_EPOCHS.to_string(), "--layers", "2", "--d-model", "32"]);
    c.args(["--heads", "2", "--batch-size", "32", "--history-len", "16", "--target-len", "8"]);
    c.args(["--dropout", "0.1", "--seed", "3", "--quiet"]);
    if resume {
        c.arg("--resume");
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn run_ok(mut c: Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", c, String::from_utf8_lossy(&out.stderr));
}

/// Spawns `c`, SIGKILLs it after `delay` unless it finished first; returns whether the kill
/// landed while the process was still running. A run that finished on its own must succeed.
fn run_and_kill(mut c: Command, delay: Duration) -> bool {
    c.stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let t = Instant::now();
    while t.elapsed() < delay {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{c:?} exited with {st}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let st = child.wait().unwrap();
    if st.success() {
        return false; // it exited between the last poll and the kill
    }
    true
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
                assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(reference.join(&f)).unwrap(), "{name} after a kill")
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

    let mut rng = Rng(0x5EED_7A17);
    let (mut landed, mut last_epochs) = (0, 0);
    for _ in 0..3 {
        let resume = killed.join("checkpoint.bin").exists();
        // Aim inside what is left of the run, so that most kills land mid-training.
        let left = full.as_millis() as u64 * (TRAIN_EPOCHS - last_epochs) as u64 / TRAIN_EPOCHS as u64;
        let delay = Duration::from_millis(rng.range(left / 10, left * 9 / 10).max(20));
        landed += run_and_kill(train_cmd(&cache, &seq, &killed, resume), delay) as usize;
        let epochs = check_train_dir(&killed, &reference);
        assert!(epochs >= last_epochs, "the checkpoint went back from epoch {last_epochs} to {epochs}");
        last_epochs = epochs;
    }
    assert!(landed >= 1, "no kill landed while training ran (uninterrupted run took {full:?})");
    // Finish: one uninterrupted rerun (resuming when a checkpoint exists).
    let resume = killed.join("checkpoint.bin").exists();
    run_ok(train_cmd(&cache, &seq, &killed, resume));
    assert_eq!(checkpoint_state(&killed.join("checkpoint.bin")), ref_state, "final checkpoint differs");
    for f in ["config.json", "items.json"] {
        assert_eq!(std::fs::read(killed.join(f)).unwrap(), std::fs::read(reference.join(f)).unwrap(), "{f}");
    }
    println!("train: uninterrupted {full:?}; {landed}/3 kills landed mid-run");
}
