//! Shared helpers of the robustness tests (`robust_kill`, `robust_disk`): the `learnrec`
//! binary, a seeded PRNG, a tiny random BERT written as the fetched `minilm` asset, and a tiny
//! sequences file. Nothing here touches the network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `learnrec` binary Cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_learnrec"))
}

/// `learnrec ARGS` with `LEARNREC_CACHE` pointed at `cache` (tests never see the real cache).
pub fn learnrec(cache: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env("LEARNREC_CACHE", cache).env_remove("XDG_CACHE_HOME");
    c
}

/// SplitMix64: a tiny seeded PRNG, so every "random" choice of a test is reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
    /// Uniform in `[-a, a)`.
    pub fn sym(&mut self, a: f32) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
}

/// Writes a sequences file (`learnrec train` input) of `users` users over `items` items.
pub fn write_sequences(path: &Path, users: usize, items: u64, seed: u64) {
    let mut r = Rng(seed);
    let mut s = String::new();
    for u in 0..users {
        let h: Vec<String> = (0..r.range(3, 20))
            .map(|_| format!("\"i{}\"", r.range(0, items)))
            .collect();
        let t: Vec<String> = (0..r.range(2, 10))
            .map(|_| format!("\"i{}\"", r.range(0, items)))
            .collect();
        s.push_str(&format!(
            "{{\"user\":\"u{u}\",\"history\":[{}],\"target\":[{}]}}\n",
            h.join(","),
            t.join(",")
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// The sha256 of each file of the real all-MiniLM-L6-v2 asset (`learnrec_eval::assets`).
fn minilm_sha(file: &str) -> String {
    learnrec_eval::assets::Asset::Minilm
        .spec()
        .files
        .into_iter()
        .find(|f| f.name == file)
        .map(|f| f.sha256)
        .unwrap()
}

/// Writes a tiny random BERT (1 layer, hidden 16, character-level WordPiece vocabulary) as the
/// fetched `minilm` asset under `cache/assets/minilm`, in the layout `learnrec fetch` leaves.
///
/// `learnrec_eval::assets` takes a file as verified when the stamp `.<file>.sha256` beside it
/// holds `<expected sha256> <size> <mtime ns>` of the file as it is now (written after a
/// successful hash check, so a present asset is not re-hashed on every run). The stamps here
/// stand in for that check, which a tiny model cannot pass: this is the one place the tests
/// trust the cache instead of hashing it.
pub fn write_tiny_minilm(cache: &Path) -> PathBuf {
    let dir = cache.join("assets").join("minilm");
    std::fs::create_dir_all(&dir).unwrap();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let chars: Vec<String> = "abcdefghijklmnopqrstuvwxyz0123456789|.,:;-_/()[]{}'!?&%$#+=*<>@"
        .chars()
        .map(|c| c.to_string())
        .collect();
    let cont: Vec<String> = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .map(|c| format!("##{c}"))
        .collect();
    let vocab: Vec<String> = specials
        .iter()
        .map(|s| s.to_string())
        .chain(chars)
        .chain(cont)
        .collect();
    let (v, h, i, p) = (vocab.len(), 16usize, 32usize, 512usize);
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": v, "hidden_size": h, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": i, "hidden_act": "gelu",
        "max_position_embeddings": p, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, h]),
        ("embeddings.position_embeddings.weight".into(), vec![p, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let l = "encoder.layer.0";
    for n in ["query", "key", "value"] {
        shapes.push((format!("{l}.attention.self.{n}.weight"), vec![h, h]));
        shapes.push((format!("{l}.attention.self.{n}.bias"), vec![h]));
    }
    for (n, s) in [
        ("attention.output.dense.weight", vec![h, h]),
        ("attention.output.dense.bias", vec![h]),
        ("attention.output.LayerNorm.weight", vec![h]),
        ("attention.output.LayerNorm.bias", vec![h]),
        ("intermediate.dense.weight", vec![i, h]),
        ("intermediate.dense.bias", vec![i]),
        ("output.dense.weight", vec![h, i]),
        ("output.dense.bias", vec![h]),
        ("output.LayerNorm.weight", vec![h]),
        ("output.LayerNorm.bias", vec![h]),
    ] {
        shapes.push((format!("{l}.{n}"), s));
    }
    let mut r = Rng(7);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(n, s)| {
            let k: usize = s.iter().product();
            let vals: Vec<u8> = (0..k)
                .flat_map(|_| {
                    let x = if n.ends_with("LayerNorm.weight") {
                        1.0
                    } else {
                        r.sym(0.5)
                    };
                    x.to_le_bytes()
                })
                .collect();
            (n, s, vals)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, c)| {
            serde_json::json!({"id": id, "content": c, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab_map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(k, t)| (t.clone(), k.into()))
        .collect();
    let special = |t: &str| serde_json::json!({"SpecialToken": {"id": t, "type_id": 0}});
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]")],
            "pair": [special("[CLS]"), {"Sequence": {"id": "A", "type_id": 0}}, special("[SEP]"),
                {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab_map}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let md = std::fs::metadata(dir.join(f)).unwrap();
        let mtime = md
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::fs::write(
            dir.join(format!(".{f}.sha256")),
            format!("{} {} {mtime}\n", minilm_sha(f), md.len()),
        )
        .unwrap();
    }
    dir
}

/// Whether `name` is a temporary file of `learnrec_eval::atomic` (`.NAME.tmpPID`).
pub fn is_atomic_temp(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Every regular file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}
