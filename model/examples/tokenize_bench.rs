//! Benchmark: tokenizer throughput (texts/s, tokens/s) of `encode_batch` on the golden texts
//! repeated N times, for each tokenizer whose asset is present.
//!
//! `cargo run -p learnrec-model --example tokenize_bench -- [N]` (default N = 2000)

use learnrec_model::gguf::GgufFile;
use learnrec_model::tokenizer::Tokenizer;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    let cache = std::env::var_os("LEARNREC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/learnrec")
        });
    let assets = cache.join("assets");
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string("/work/shared/golden/texts.json")?)?;
    let corpus: Vec<&str> = (0..n)
        .flat_map(|_| texts.iter().map(String::as_str))
        .collect();
    let mut tokenizers: Vec<(&str, Tokenizer)> = Vec::new();
    let gemma = assets.join("gemma3-270m/model.gguf");
    if gemma.is_file() {
        tokenizers.push((
            "gemma3 (GGUF, SPM)",
            Tokenizer::from_gguf(&GgufFile::open(&gemma)?)?,
        ));
    }
    let qwen = assets.join("qwen2.5-1.5b/model.gguf");
    if qwen.is_file() {
        tokenizers.push((
            "qwen2 (GGUF, BPE)",
            Tokenizer::from_gguf(&GgufFile::open(&qwen)?)?,
        ));
    }
    let minilm = assets.join("minilm/tokenizer.json");
    if minilm.is_file() {
        tokenizers.push(("MiniLM (tokenizer.json)", Tokenizer::from_file(&minilm)?));
    }
    for (name, tk) in &tokenizers {
        let t = Instant::now();
        let ids = tk.encode_batch(&corpus, true)?;
        let s = t.elapsed().as_secs_f64();
        let tokens: usize = ids.iter().map(Vec::len).sum();
        println!(
            "{name}: {} texts, {tokens} tokens in {s:.2}s = {:.0} texts/s, {:.0} tokens/s ({} threads)",
            corpus.len(),
            corpus.len() as f64 / s,
            tokens as f64 / s,
            rayon::current_num_threads()
        );
    }
    Ok(())
}
