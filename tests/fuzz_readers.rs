//! Proptest-driven garbage for every reader of user-supplied files: the catalog and
//! interactions readers (CSV, TSV, JSON Lines, RecBole atomic), the fusion-eval predictions
//! reader (CSV and Parquet), the HISTORY reader, the GGUF header/metadata parser (with the
//! config and tokenizer built from it), the SafeTensors embedding store and the tower
//! checkpoint.
//!
//! Inputs: random bytes, and valid small files (written by the test) mutated by bit flips,
//! truncations, byte overwrites, inserted text fragments (quotes, separators, huge numbers,
//! invalid UTF-8) and huge declared lengths/counts written over 8 bytes. Property: the reader
//! returns `Ok` or `Err`, never panics, and returns within [`LIMIT`] (a huge declared size must
//! not make it allocate or loop for ever). Each case runs on its own thread; a panic or a
//! timeout fails the case and proptest shrinks it to a minimal input.

use learnrec_eval::data::reader::{
    CatalogOptions, InteractionOptions, read_catalog, read_interactions,
};
use learnrec_eval::fusion_eval::generate::{GenSpec, generate};
use learnrec_eval::fusion_eval::{Input, Options, UserActivity, evaluate_file, read_history};
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use learnrec_model::gguf::writer::{RawTensor, f32_tensor, to_bytes};
use learnrec_model::gguf::{GgufFile, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The most one reader call may take on one small input (generous: CI machines are slow).
const LIMIT: Duration = Duration::from_secs(20);
/// Cases per target (`FUZZ_CASES=N` for a longer run).
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip bit `bit` of the byte at `pos` (mod len).
    Flip(usize, u8),
    /// Keep the first `pos` (mod len+1) bytes.
    Truncate(usize),
    /// Overwrite the byte at `pos`.
    Byte(usize, u8),
    /// Write a little-endian u64 at `pos` (a huge length or count).
    Huge(usize, u64),
    /// Insert a text fragment at `pos`.
    Insert(usize, &'static [u8]),
    /// Remove up to `n` bytes at `pos`.
    Remove(usize, usize),
}

const FRAGMENTS: &[&[u8]] = &[
    b"\"",
    b",",
    b"\t",
    b"\n",
    b"\r\n",
    b"\"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"-1",
    b"1e309",
    b"NaN",
    b"inf",
    b"99999999999999999999999",
    b"-0",
    b"\xff\xfe",
    b"\xc3",
    b"\0",
    b"impression",
    b"conversion",
    b"rating",
    b":token",
    b":float",
    b"\n\n\n",
    b"a,b,c,d,e,f,g,h",
];

const HUGE: &[u64] = &[
    u64::MAX,
    u64::MAX / 2,
    1 << 40,
    1 << 32,
    u32::MAX as u64,
    1 << 31,
    0,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        3 => (pos.clone(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        1 => pos.clone().prop_map(Mutation::Truncate),
        2 => (pos.clone(), any::<u8>()).prop_map(|(p, b)| Mutation::Byte(p, b)),
        2 => (pos.clone(), prop::sample::select(HUGE)).prop_map(|(p, v)| Mutation::Huge(p, v)),
        2 => (pos.clone(), prop::sample::select(FRAGMENTS)).prop_map(|(p, f)| Mutation::Insert(p, f)),
        1 => (pos, 1usize..64).prop_map(|(p, n)| Mutation::Remove(p, n)),
    ]
}

fn mutate(base: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    for m in ms {
        let n = b.len();
        match *m {
            Mutation::Flip(p, bit) if n > 0 => b[p % n] ^= 1 << bit,
            Mutation::Truncate(p) => b.truncate(p % (n + 1)),
            Mutation::Byte(p, v) if n > 0 => b[p % n] = v,
            Mutation::Huge(p, v) if n >= 8 => {
                // Mostly at the start (where binary headers keep their lengths and counts).
                let at = if p % 2 == 0 {
                    (p / 2) % 64.min(n - 7)
                } else {
                    (p / 2) % (n - 7)
                };
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            Mutation::Insert(p, f) => {
                let at = p % (n + 1);
                b.splice(at..at, f.iter().copied());
            }
            Mutation::Remove(p, k) if n > 0 => {
                let at = p % n;
                b.drain(at..(at + k).min(n));
            }
            _ => {}
        }
    }
    b
}

/// Random bytes (1 in 5) or the valid `base` with 1–5 mutations.
fn input(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600),
        4 => prop::collection::vec(mutation(), 1..6).prop_map(move |ms| mutate(&base, &ms)),
    ]
}

/// Runs `read` on each input written to `dir/name`: no panic, no hang.
fn fuzz(target: &str, base: Vec<u8>, name: &str, read: fn(&Path) -> Result<bool, String>) {
    let dir = tempfile::tempdir().unwrap();
    // Sanity: the unmutated file is accepted, so mutations start from a real file.
    let path = dir.path().join(name);
    std::fs::write(&path, &base).unwrap();
    assert_eq!(
        read(&path),
        Ok(true),
        "{target}: the valid base file is rejected"
    );
    let t = std::time::Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let (ok, err, case) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let res = runner.run(&input(base), |bytes| {
        case.set(case.get() + 1);
        // A fresh path per case: a reader must not depend on a previous case's leftovers.
        let path = dir.path().join(format!("{}-{name}", case.get()));
        std::fs::write(&path, &bytes).unwrap();
        let (tx, rx) = mpsc::channel();
        let p2: PathBuf = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read(&p2));
        });
        let r = rx.recv_timeout(LIMIT);
        let _ = std::fs::remove_file(&path);
        match r {
            Ok(Ok(true)) => ok.set(ok.get() + 1),
            Ok(Ok(false)) => err.set(err.get() + 1),
            Ok(Err(m)) => return Err(TestCaseError::fail(format!("{target}: {m}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(TestCaseError::fail(format!(
                    "{target}: no answer within {LIMIT:?} ({} bytes)",
                    bytes.len()
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TestCaseError::fail(format!(
                    "{target}: the reader panicked ({} bytes)",
                    bytes.len()
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = res {
        panic!("{target}: {e}");
    }
    println!(
        "{target}: {} cases in {:.2}s ({} accepted, {} rejected)",
        cases(),
        t.elapsed().as_secs_f64(),
        ok.get(),
        err.get()
    );
}

fn fixture(p: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("eval/tests/fixtures")
            .join(p),
    )
    .unwrap()
}

/// The error text of a rejected input must name the file (every reader's contract).
fn names_file<T, E: std::fmt::Display>(r: Result<T, E>, path: &Path) -> Result<bool, String> {
    match r {
        Ok(_) => Ok(true),
        Err(e) => {
            let msg = e.to_string();
            let file = path.file_name().unwrap().to_string_lossy();
            if msg.contains(&*file) {
                Ok(false)
            } else {
                Err(format!("the error does not name the file {file}: {msg}"))
            }
        }
    }
}

fn catalog(p: &Path) -> Result<bool, String> {
    names_file(read_catalog(p, &CatalogOptions::default()), p)
}

fn interactions(p: &Path) -> Result<bool, String> {
    names_file(
        read_interactions(p, None, &InteractionOptions::default()),
        p,
    )
}

const CATALOG_JSONL: &str = "{\"item_id\":\"a\",\"title\":\"T \\\"x\\\"\",\"category\":\"c\",\"brand\":\"b\",\"price\":1.5,\"keywords\":\"k1, k2\",\"attributes\":\"color=red\",\"available_from\":1700000000}\n\
{\"item_id\":\"b\",\"title\":\"U\",\"category\":\"c\",\"brand\":\"\",\"price\":null,\"keywords\":\"\",\"attributes\":\"\"}\n";

const INTER_JSONL: &str = "{\"user_id\":\"u1\",\"item_id\":\"a\",\"timestamp\":1700000100,\"action\":\"click\",\"value\":null,\"revenue\":null}\n\
{\"user_id\":\"u2\",\"item_id\":\"b\",\"timestamp\":1700000200,\"action\":\"conversion\",\"value\":1,\"revenue\":9.5}\n";

fn to_tsv(csv: &[u8]) -> Vec<u8> {
    // The fixtures' quoted fields hold commas; TSV has no quoting, so drop the quotes.
    String::from_utf8_lossy(csv)
        .replace('"', "")
        .replace(", ", ";")
        .replace(',', "\t")
        .into_bytes()
}

#[test]
fn fuzz_catalog_csv() {
    fuzz(
        "catalog csv",
        fixture("world/catalog.csv"),
        "catalog.csv",
        catalog,
    );
}

#[test]
fn fuzz_catalog_tsv_jsonl_atomic() {
    fuzz(
        "catalog tsv",
        to_tsv(&fixture("world/catalog.csv")),
        "catalog.tsv",
        catalog,
    );
    fuzz(
        "catalog jsonl",
        CATALOG_JSONL.as_bytes().to_vec(),
        "catalog.jsonl",
        catalog,
    );
    fuzz(
        "catalog atomic",
        fixture("ml-mini/ml-mini.item"),
        "ml.item",
        catalog,
    );
}

#[test]
fn fuzz_interactions() {
    fuzz(
        "interactions csv",
        fixture("world/interactions.csv"),
        "inter.csv",
        interactions,
    );
    fuzz(
        "interactions tsv",
        to_tsv(&fixture("world/interactions.csv")),
        "inter.tsv",
        interactions,
    );
    fuzz(
        "interactions jsonl",
        INTER_JSONL.as_bytes().to_vec(),
        "inter.jsonl",
        interactions,
    );
    fuzz(
        "interactions atomic",
        fixture("ml-mini/ml-mini.inter"),
        "ml.inter",
        interactions,
    );
}

/// Small generated predictions (`pred.csv` or `pred.parquet`) and HISTORY (`hist.csv` or
/// `hist.parquet`, the same `ext`).
fn predictions(ext: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let spec = GenSpec {
        rows: 120,
        users: 12,
        items: 20,
        seed: 3,
        out: dir.path().join(format!("pred.{ext}")),
        history: Some(dir.path().join(format!("hist.{ext}"))),
        row_group: 50,
    };
    generate(&spec).unwrap();
    (
        std::fs::read(&spec.out).unwrap(),
        std::fs::read(spec.history.unwrap()).unwrap(),
    )
}

fn pred(p: &Path) -> Result<bool, String> {
    let input = Input {
        pred: p.to_path_buf(),
        ..Default::default()
    };
    names_file(
        evaluate_file(
            &input,
            &Options {
                bootstrap: 0,
                ..Default::default()
            },
        ),
        p,
    )
}

#[test]
fn fuzz_predictions_csv_and_history() {
    let (csv, hist) = predictions("csv");
    fuzz("predictions csv", csv, "pred.csv", pred);
    fuzz("history csv", hist, "hist.csv", |p| {
        names_file(read_history(p, UserActivity::Engaged), p)
    });
}

#[test]
fn fuzz_predictions_parquet() {
    let (pq, hist) = predictions("parquet");
    fuzz("predictions parquet", pq, "pred.parquet", pred);
    fuzz("history parquet", hist, "hist.parquet", |p| {
        names_file(read_history(p, UserActivity::Engaged), p)
    });
}

fn tiny_gguf() -> Vec<u8> {
    let tokens = [
        "<unk>",
        "<s>",
        "</s>",
        "\u{2581}a",
        "\u{2581}b",
        "a",
        "b",
        "c",
    ];
    let s = |x: &str| Value::String(x.into());
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("general.name", s("tiny")),
        ("llama.block_count", Value::U32(1)),
        ("llama.context_length", Value::U32(64)),
        ("llama.embedding_length", Value::U32(8)),
        ("llama.feed_forward_length", Value::U32(16)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.attention.head_count_kv", Value::U32(1)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("tokenizer.ggml.model", s("llama")),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array((0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(
                [2, 3, 3, 1, 1, 1, 1, 1]
                    .into_iter()
                    .map(Value::I32)
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ];
    let tensors: Vec<RawTensor> = vec![
        f32_tensor("token_embd.weight", &[8, 8], &[0.5; 64]),
        f32_tensor("output_norm.weight", &[8], &[1.0; 8]),
    ];
    to_bytes(&meta, &tensors)
}

fn gguf(p: &Path) -> Result<bool, String> {
    let g = match GgufFile::open(p) {
        Ok(g) => g,
        Err(e) => return names_file(Err::<(), _>(e), p),
    };
    // Everything downstream of the header parser that reads metadata or tensor data.
    let _ = g.config();
    let _ = learnrec_model::tokenizer::Tokenizer::from_gguf(&g);
    for t in g.tensors().to_vec() {
        let _ = g.read_raw(&t.name);
    }
    Ok(true)
}

#[test]
fn fuzz_gguf() {
    fuzz("gguf", tiny_gguf(), "model.gguf", gguf);
}

fn sample_store() -> EmbeddingStore {
    let mut s = EmbeddingStore::new(StoreKind::Content, 3);
    for (k, id) in ["a", "b", "c", "d"].iter().enumerate() {
        s.insert(id, &format!("h{k}"), &[k as f32, 0.5, -1.0])
            .unwrap();
    }
    s.meta.insert("model".into(), "tiny".into());
    s
}

/// A store that loads must be the store that was saved (checksums cover rows and metadata).
fn store(p: &Path) -> Result<bool, String> {
    let r = EmbeddingStore::load(p);
    if let Ok(got) = &r {
        let want = sample_store();
        let bits = |s: &EmbeddingStore| s.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        if (
            got.kind,
            got.dim,
            &got.ids,
            &got.hashes,
            &got.meta,
            bits(got),
        ) != (
            want.kind,
            want.dim,
            &want.ids,
            &want.hashes,
            &want.meta,
            bits(&want),
        ) {
            return Err(format!(
                "a corrupted store was read as valid: ids {:?}, meta {:?}",
                got.ids, got.meta
            ));
        }
    }
    names_file(r, p)
}

#[test]
fn fuzz_embedding_store() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.safetensors");
    sample_store().save(&p).unwrap();
    fuzz(
        "embedding store",
        std::fs::read(&p).unwrap(),
        "s.safetensors",
        store,
    );
}

fn sample_checkpoint() -> learnrec_model::towers::train::Checkpoint {
    use learnrec_model::towers::train::{Checkpoint, CheckpointMeta};
    Checkpoint {
        meta: CheckpointMeta {
            config: Default::default(),
            epoch: 1,
            step: 3,
            epoch_losses: vec![1.5],
            n_users: 4,
            n_items: 5,
        },
        model: (0..200u8).collect(),
        optim: vec![7; 100],
    }
}

/// A v2 checkpoint that loads must be the checkpoint that was saved (its sha256 covers it all).
fn checkpoint_v2(p: &Path) -> Result<bool, String> {
    let r = learnrec_model::towers::train::Checkpoint::load(p);
    if let Ok(got) = &r {
        let want = sample_checkpoint();
        let json =
            |c: &learnrec_model::towers::train::Checkpoint| serde_json::to_string(&c.meta).unwrap();
        if (json(got), &got.model, &got.optim) != (json(&want), &want.model, &want.optim) {
            return Err(format!(
                "a corrupted checkpoint was read as valid: {}",
                json(got)
            ));
        }
    }
    names_file(r, p)
}

#[test]
fn fuzz_tower_checkpoint() {
    use learnrec_model::towers::train::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("checkpoint.bin");
    sample_checkpoint().save(&p).unwrap();
    let v2 = std::fs::read(&p).unwrap();
    fuzz(
        "tower checkpoint",
        v2.clone(),
        "checkpoint.bin",
        checkpoint_v2,
    );
    // Format v1 (no checksum): only the framing protects it.
    let mut v1 = v2[..v2.len() - 32].to_vec();
    v1[..8].copy_from_slice(b"LRNTWR01");
    fuzz("tower checkpoint v1", v1, "checkpoint.bin", |p| {
        names_file(Checkpoint::load(p), p)
    });
}
