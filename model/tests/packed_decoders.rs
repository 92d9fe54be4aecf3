//! The packed (padding-free, host-kernel) decoder forwards against the padded Burn-ops
//! references on tiny random models: items of different lengths, some longer than the sliding
//! window, grouped key/value heads, head widths with and without a 16-wide tail.

use burn::tensor::{Int, Tensor, TensorData};
use learnrec_model::CpuBackend as B;
use learnrec_model::backbone::gemma3::Gemma3;
use learnrec_model::backbone::layers::AttentionKind;
use learnrec_model::backbone::{Gemma3Config, Llama, LlamaConfig, LlamaVariant};
use learnrec_eval::assets::cache_dir;
use learnrec_model::pooling::cosine;

/// Right-padded ids and mask for sequences of the given lengths (ids spread over the vocab).
fn batch(lengths: &[usize], vocab: usize) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>, usize) {
    let s = lengths.iter().copied().max().unwrap_or(1);
    let mut ids = vec![0i64; lengths.len() * s];
    let mut mask = vec![0i64; lengths.len() * s];
    for (b, &len) in lengths.iter().enumerate() {
        for p in 0..len {
            ids[b * s + p] = ((b * 11 + p * 7 + 3) % vocab) as i64;
            mask[b * s + p] = 1;
        }
    }
    let dev = Default::default();
    let t =
        |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [lengths.len(), s]), &dev);
    (t(ids), t(mask), s)
}

/// Max |packed − padded| over real positions; asserts padding rows of the packed output are 0.
fn compare(packed: Tensor<B, 3>, padded: Tensor<B, 3>, lengths: &[usize], s: usize) -> f32 {
    let h = packed.dims()[2];
    let p: Vec<f32> = packed.to_data().to_vec().unwrap();
    let q: Vec<f32> = padded.to_data().to_vec().unwrap();
    let mut worst = 0f32;
    for (b, &len) in lengths.iter().enumerate() {
        for pos in 0..s {
            for c in 0..h {
                let i = (b * s + pos) * h + c;
                if pos < len {
                    assert!(p[i].is_finite(), "seq {b} pos {pos} dim {c} not finite");
                    worst = worst.max((p[i] - q[i]).abs());
                } else {
                    assert_eq!(p[i], 0.0, "seq {b} pos {pos}: padding is zero");
                }
            }
        }
    }
    worst
}

fn gemma_case(cfg: &Gemma3Config, lengths: &[usize]) {
    let model: Gemma3<B> = cfg.init(&Default::default());
    let (ids, mask, s) = batch(lengths, cfg.vocab_size);
    let packed = model.forward(ids.clone(), mask.clone());
    let padded = model.forward_padded(ids, mask);
    let worst = compare(packed, padded, lengths, s);
    println!("gemma3 {lengths:?}: max |packed - padded| = {worst:.2e}");
    assert!(worst < 1e-4, "max abs diff {worst}");
}

#[test]
fn gemma3_packed_equals_padded_with_sliding_window_and_gqa() {
    // tiny(): window 3, every 3rd layer global, 4 query heads over 2 kv heads, head_dim 16.
    let cfg = Gemma3Config::tiny();
    assert!(cfg.sliding_window < 7);
    gemma_case(&cfg, &[5, 2, 7, 1, 4]);
    // One item alone, and a batch where nothing is padded.
    gemma_case(&cfg, &[6]);
    gemma_case(&cfg, &[3, 3]);
}

#[test]
fn gemma3_packed_equals_padded_with_odd_head_dim_and_one_kv_head() {
    // head_dim 10 (no full 16-wide block), multi-query attention, longer window, exact GELU.
    let cfg = Gemma3Config {
        head_dim: 10,
        query_pre_attn_scalar: 8.0,
        num_key_value_heads: 1,
        sliding_window: 5,
        sliding_window_pattern: 2,
        num_hidden_layers: 4,
        hidden_activation: learnrec_model::backbone::Activation::Gelu,
        ..Gemma3Config::tiny()
    };
    gemma_case(&cfg, &[9, 1, 17, 5]);
}

fn llama_case(cfg: &LlamaConfig, lengths: &[usize]) {
    let model: Llama<B> = cfg.init(&Default::default());
    let (ids, mask, s) = batch(lengths, cfg.vocab_size);
    let packed = model.forward(ids.clone(), mask.clone());
    let padded = model.forward_padded(ids, mask);
    let worst = compare(packed, padded, lengths, s);
    println!(
        "{:?} {lengths:?}: max |packed - padded| = {worst:.2e}",
        cfg.model_type
    );
    assert!(worst < 1e-4, "{:?}: max abs diff {worst}", cfg.model_type);
}

#[test]
fn llama_family_packed_equals_padded() {
    let lengths = [5, 2, 7, 1, 4];
    // Llama and Baichuan (MHA), Qwen2 (q/k/v biases, GQA), all fully causal.
    for v in [
        LlamaVariant::Llama,
        LlamaVariant::Qwen2,
        LlamaVariant::Baichuan,
    ] {
        let cfg = LlamaConfig::tiny(v);
        assert_eq!(cfg.attention_kind(), AttentionKind::Causal);
        llama_case(&cfg, &lengths);
    }
    // Mistral with a sliding window shorter than some items, head_dim 12 (a 16-wide tail only).
    let cfg = LlamaConfig {
        sliding_window: Some(3),
        head_dim: Some(12),
        num_key_value_heads: Some(1),
        ..LlamaConfig::tiny(LlamaVariant::Mistral)
    };
    assert_eq!(
        cfg.attention_kind(),
        AttentionKind::SlidingCausal { window: 3 }
    );
    llama_case(&cfg, &lengths);
    llama_case(&cfg, &[9]);
}

/// The real Gemma-3-270M (its golden items are all shorter than the 512-token window): one
/// sequence of 530 tokens, so the local layers' window cuts in, batched with a short one; every
/// real position's last hidden state agrees between the packed and the padded forward.
#[test]
fn gemma3_270m_packed_matches_padded_past_the_sliding_window() {
    use learnrec_model::backbone::{Backbone, pad_batch};
    let path = cache_dir().join("assets/gemma3-270m/model.gguf");
    if !path.is_file() {
        println!("skipped: {} not found", path.display());
        return;
    }
    let (model, _) = Backbone::<B>::load_gguf(&path, &Default::default()).unwrap();
    // BOS, then ids spread over the vocabulary (deterministic, no tokenizer needed).
    let long: Vec<u32> = std::iter::once(2)
        .chain((1..530u32).map(|i| 1000 + (i * 7919) % 200_000))
        .collect();
    let batch = vec![long, vec![2, 4521, 618, 9012, 33]];
    let (ids, mask) = pad_batch::<B>(&batch, &Default::default());
    let [_, s] = ids.dims();
    let packed: Vec<f32> = model
        .forward(ids.clone(), mask.clone())
        .to_data()
        .to_vec()
        .unwrap();
    let padded: Vec<f32> = model.forward_padded(ids, mask).to_data().to_vec().unwrap();
    let h = model.hidden_size();
    for (b, seq) in batch.iter().enumerate() {
        let mut worst = 1f64;
        for p in 0..seq.len() {
            let r = (b * s + p) * h..(b * s + p + 1) * h;
            worst = worst.min(cosine(&packed[r.clone()], &padded[r]));
        }
        println!(
            "item {b} ({} tokens): worst 1 - cos over positions = {:.2e}",
            seq.len(),
            1.0 - worst
        );
        assert!(worst >= 0.99999, "item {b}: cosine {worst}");
    }
}
