//! Token ids must equal Hugging Face's exactly on every text of `/work/shared/golden`:
//! Gemma-3 and Qwen2.5 from GGUF metadata, Qwen2.5 also from its tokenizer.json, MiniLM from its
//! tokenizer.json. Skipped (with the reason printed) when an asset is absent.

use learnrec_model::gguf::GgufFile;
use learnrec_model::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use learnrec_eval::assets::cache_dir;

fn golden_dir() -> PathBuf {
    std::env::var_os("LEARNREC_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/golden"))
}

/// (text, ids) pairs of a golden file, or `None` (reason printed) when absent.
fn golden(name: &str) -> Option<Vec<(String, Vec<u32>)>> {
    let p = golden_dir().join(format!("{name}.json"));
    let Ok(s) = std::fs::read_to_string(&p) else {
        println!("skipped: {} not present", p.display());
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(&s).expect("golden file is JSON");
    let items = v["items"].as_array().expect("golden items");
    Some(
        items
            .iter()
            .map(|it| {
                let text = it["text"].as_str().expect("text").to_owned();
                let ids = it["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|x| x.as_u64().expect("id") as u32)
                    .collect();
                (text, ids)
            })
            .collect(),
    )
}

fn asset(rel: &str) -> Option<PathBuf> {
    let p = cache_dir().join("assets").join(rel);
    if p.is_file() {
        Some(p)
    } else {
        println!("skipped: {} not present", p.display());
        None
    }
}

fn check(tk: &Tokenizer, cases: &[(String, Vec<u32>)], what: &str) {
    for (text, ids) in cases {
        assert_eq!(
            &tk.encode(text, true).unwrap(),
            ids,
            "{what}: text {text:?}"
        );
    }
    // The batch path gives the same ids.
    let texts: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    let batch = tk.encode_batch(&texts, true).unwrap();
    for ((_, ids), got) in cases.iter().zip(&batch) {
        assert_eq!(got, ids, "{what}: batch");
    }
}

fn gguf_tokenizer(path: &Path) -> (GgufFile, Tokenizer) {
    let g = GgufFile::open(path).unwrap();
    let tk = Tokenizer::from_gguf(&g).unwrap();
    (g, tk)
}

#[test]
fn gemma3_from_gguf_matches_golden() {
    let (Some(cases), Some(p)) = (
        golden("gemma-3-270m-q4_k_m"),
        asset("gemma3-270m/model.gguf"),
    ) else {
        return;
    };
    let (g, tk) = gguf_tokenizer(&p);
    assert_eq!(tk.vocab_size(), 262_144);
    tk.check_embedding_rows(g.config().unwrap().vocab_size)
        .unwrap();
    check(&tk, &cases, "gemma3 (GGUF)");
    // Without special tokens: no BOS.
    assert_eq!(
        tk.encode("a", false).unwrap(),
        cases.last().unwrap().1[1..].to_vec()
    );
}

#[test]
fn qwen2_from_gguf_matches_golden() {
    let (Some(cases), Some(p)) = (
        golden("qwen2.5-coder-1.5b-instruct-q4_k_m"),
        asset("qwen2.5-1.5b/model.gguf"),
    ) else {
        return;
    };
    let (g, tk) = gguf_tokenizer(&p);
    tk.check_embedding_rows(g.config().unwrap().vocab_size)
        .unwrap();
    check(&tk, &cases, "qwen2 (GGUF)");
}

#[test]
fn qwen2_from_tokenizer_json_matches_golden() {
    let (Some(cases), Some(p)) = (
        golden("qwen2.5-coder-1.5b-instruct-q4_k_m"),
        asset("qwen2.5-1.5b/tokenizer.json"),
    ) else {
        return;
    };
    let tk = Tokenizer::from_file(&p).unwrap();
    tk.check_embedding_rows(151_936).unwrap();
    check(&tk, &cases, "qwen2 (tokenizer.json)");
}

#[test]
fn minilm_from_tokenizer_json_matches_golden() {
    let (Some(cases), Some(p)) = (golden("all-MiniLM-L6-v2"), asset("minilm/tokenizer.json"))
    else {
        return;
    };
    let tk = Tokenizer::from_file(&p).unwrap();
    check(&tk, &cases, "MiniLM (tokenizer.json)");
    // A vocabulary larger than the model's embedding is a clear error.
    let e = tk.check_embedding_rows(1000).unwrap_err().to_string();
    assert!(
        e.contains("30522 token ids") && e.contains("only 1000 rows") && e.contains("do not match"),
        "{e}"
    );
}

#[test]
fn truncation_keeps_special_tokens_within_max_len() {
    let text = "word ".repeat(2000);
    if let Some(p) = asset("minilm/tokenizer.json") {
        let tk = Tokenizer::from_file(&p).unwrap();
        let ids = tk.encode(&text, true).unwrap();
        assert_eq!(ids.len(), 500);
        assert_eq!((ids[0], ids[499]), (101, 102), "[CLS] … [SEP] kept");
        let tk = tk.with_max_len(16).unwrap();
        assert_eq!(tk.encode(&text, true).unwrap().len(), 16);
    }
    if let Some(p) = asset("gemma3-270m/model.gguf") {
        let (_, tk) = gguf_tokenizer(&p);
        let tk = tk.with_max_len(10).unwrap();
        let ids = tk.encode(&text, true).unwrap();
        assert_eq!(ids.len(), 10);
        assert_eq!(ids[0], 2, "BOS kept");
    }
}

/// Tokenizers built from tiny GGUF files written here: the dispatch on `tokenizer.ggml.model`,
/// missing keys listed together, and both algorithms on a toy vocabulary.
mod tiny_gguf {
    use learnrec_model::gguf::GgufFile;
    use learnrec_model::gguf::Value;
    use learnrec_model::gguf::writer::to_bytes;
    use learnrec_model::tokenizer::Tokenizer;

    fn strs(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| Value::String((*s).into())).collect())
    }

    fn open(meta: &[(&str, Value)]) -> (tempfile::TempDir, GgufFile) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok.gguf");
        std::fs::write(&p, to_bytes(meta, &[])).unwrap();
        let g = GgufFile::open(&p).unwrap();
        (dir, g)
    }

    #[test]
    fn missing_keys_are_all_listed_and_unknown_models_rejected() {
        let (_d, g) = open(&[("tokenizer.ggml.model", Value::String("gpt2".into()))]);
        let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.ggml.tokens, tokenizer.ggml.merges, tokenizer.ggml.pre")
                && e.contains("tok.gguf"),
            "{e}"
        );
        let (_d, g) = open(&[
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", strs(&["a"])),
        ]);
        let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.ggml.scores, tokenizer.ggml.token_type")
                && !e.contains("tokens,"),
            "{e}"
        );
        let (_d, g) = open(&[("tokenizer.ggml.model", Value::String("t5".into()))]);
        let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
        assert!(e.contains("unsupported") && e.contains("`t5`"), "{e}");
        let (_d, g) = open(&[]);
        let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.ggml.model") && e.contains("missing"),
            "{e}"
        );
        // A pre-tokenizer is never guessed.
        let (_d, g) = open(&[
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strs(&["a"])),
            ("tokenizer.ggml.merges", strs(&[])),
            ("tokenizer.ggml.pre", Value::String("mystery".into())),
        ]);
        let e = Tokenizer::from_gguf(&g).unwrap_err().to_string();
        assert!(e.contains("tokenizer.ggml.pre `mystery`"), "{e}");
    }

    #[test]
    fn gpt2_bpe_from_merges() {
        // Byte-level: "Ġ" is the space byte.
        let (_d, g) = open(&[
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("qwen2".into())),
            (
                "tokenizer.ggml.tokens",
                strs(&["a", "b", "Ġ", "ab", "Ġa", "Ġab", "<|end|>"]),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(
                    vec![Value::I32(1); 6]
                        .into_iter()
                        .chain([Value::I32(3)])
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.merges", strs(&["Ġ a", "a b", "Ġa b"])),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ]);
        let tk = Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(tk.encode("ab ab", true).unwrap(), vec![3, 5]);
        assert_eq!(tk.encode("ba<|end|>", true).unwrap(), vec![1, 0, 6]);
    }

    #[test]
    fn spm_with_bos_from_scores() {
        let (_d, g) = open(&[
            ("tokenizer.ggml.model", Value::String("llama".into())),
            (
                "tokenizer.ggml.tokens",
                strs(&["<unk>", "<s>", "▁", "h", "i", "hi", "▁hi"]),
            ),
            (
                "tokenizer.ggml.scores",
                Value::Array(
                    [0.0f32, 0.0, -1.0, -1.0, -1.0, -2.0, -3.0]
                        .map(Value::F32)
                        .to_vec(),
                ),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array([2, 3, 1, 1, 1, 1, 1].map(Value::I32).to_vec()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ]);
        // llama defaults: BOS added, space prefix on.
        let tk = Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(tk.encode("hi hi", true).unwrap(), vec![1, 6, 6]);
        assert_eq!(tk.encode("hi", false).unwrap(), vec![6]);
    }
}
