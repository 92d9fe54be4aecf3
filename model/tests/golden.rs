//! Real models against Hugging Face transformers' reference outputs (`/work/shared/golden`, or
//! `$LEARNREC_GOLDEN`): the golden token ids go in, the attention-masked mean of the last hidden
//! state must match HF's `mean` to cosine ≥ 0.9999 (and `first` likewise). Skipped, with the
//! reason printed, when the model or the golden file is absent.

use std::path::PathBuf;

use learnrec_model::CpuBackend as B;
use learnrec_model::backbone::Backbone;
use learnrec_model::pooling::Pooling;
use learnrec_eval::assets::cache_dir;
use learnrec_model::pooling::cosine;

fn golden_dir() -> PathBuf {
    std::env::var_os("LEARNREC_GOLDEN")
        .map_or_else(|| PathBuf::from("/work/shared/golden"), PathBuf::from)
}

struct GoldenItem {
    ids: Vec<u32>,
    mean: Vec<f32>,
    first: Vec<f32>,
}

fn read_golden(file: &str) -> Option<Vec<GoldenItem>> {
    let path = golden_dir().join(file);
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).expect("golden file is JSON");
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    Some(
        json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|it| GoldenItem {
                ids: it["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
                mean: floats(&it["mean"]),
                first: floats(&it["first"]),
            })
            .collect(),
    )
}

/// Runs the golden items one by one and as one padded batch; returns the worst cosines.
fn check(model: &Backbone<B>, items: &[GoldenItem], name: &str) {
    let batch: Vec<Vec<u32>> = items.iter().map(|i| i.ids.clone()).collect();
    let means = model.encode_pooled(&batch, Pooling::Mean, false).unwrap();
    let firsts = model.encode_pooled(&batch, Pooling::First, false).unwrap();
    let mut worst = f64::INFINITY;
    for (i, item) in items.iter().enumerate() {
        let alone = model
            .encode_pooled(std::slice::from_ref(&item.ids), Pooling::Mean, false)
            .unwrap();
        let c_alone = cosine(&alone[0], &item.mean);
        let c_batch = cosine(&means[i], &item.mean);
        let c_first = cosine(&firsts[i], &item.first);
        println!(
            "{name} item {i} ({} tokens): 1 - cos(mean) alone {:.2e}, batched {:.2e}; 1 - cos(first) {:.2e}",
            item.ids.len(),
            1.0 - c_alone,
            1.0 - c_batch,
            1.0 - c_first
        );
        worst = worst.min(c_alone).min(c_batch);
        assert!(
            c_alone >= 0.9999 && c_batch >= 0.9999,
            "{name} item {i}: cosine {c_alone} / {c_batch} < 0.9999"
        );
        assert!(
            c_first >= 0.999,
            "{name} item {i}: first-token cosine {c_first}"
        );
    }
    println!("{name}: worst cos(mean) = {worst:.9}");
}

#[test]
fn minilm_matches_transformers() {
    let dir = cache_dir().join("assets/minilm");
    if !dir.join("model.safetensors").exists() {
        println!("skipped: {} has no model.safetensors", dir.display());
        return;
    }
    let Some(items) = read_golden("all-MiniLM-L6-v2.json") else {
        println!(
            "skipped: golden file all-MiniLM-L6-v2.json not found in {}",
            golden_dir().display()
        );
        return;
    };
    let (model, _) = Backbone::<B>::load_hf_dir(&dir, &Default::default()).unwrap();
    check(&model, &items, "all-MiniLM-L6-v2");
}
