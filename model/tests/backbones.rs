//! Tiny random models of every architecture, written as Hugging Face directories (config.json +
//! safetensors) in a temp dir and also held in memory: shapes, loading paths agreeing, padding
//! invariance of pooled vectors, causality of decoders, Gemma's sliding window, and the loader's
//! errors on bad input.

use std::collections::BTreeMap;
use std::path::Path;

use learnrec_model::CpuBackend as B;
use learnrec_model::backbone::gemma3::LayerType;
use learnrec_model::backbone::{
    Arch, Backbone, BackboneConfig, BertConfig, Gemma3Config, LlamaConfig, LlamaVariant, pad_batch,
};
use learnrec_model::loader::{HfDir, MemorySource};
use learnrec_model::pooling::Pooling;
use learnrec_model::weights::TensorSource;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tensor names and PyTorch shapes of a Hugging Face checkpoint of `cfg`.
fn hf_tensors(cfg: &BackboneConfig) -> Vec<(String, Vec<usize>)> {
    let mut t: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |n: String, s: &[usize]| t.push((n, s.to_vec()));
    match cfg {
        BackboneConfig::Llama(c) => {
            let (h, d, nh, nkv, i) = (
                c.hidden_size,
                c.head_dim(),
                c.num_attention_heads,
                c.kv_heads(),
                c.intermediate_size,
            );
            add("model.embed_tokens.weight".into(), &[c.vocab_size, h]);
            add("lm_head.weight".into(), &[c.vocab_size, h]);
            for l in 0..c.num_hidden_layers {
                let p = format!("model.layers.{l}");
                add(format!("{p}.input_layernorm.weight"), &[h]);
                add(format!("{p}.post_attention_layernorm.weight"), &[h]);
                if c.model_type == LlamaVariant::Baichuan {
                    add(format!("{p}.self_attn.W_pack.weight"), &[3 * h, h]);
                } else {
                    add(format!("{p}.self_attn.q_proj.weight"), &[nh * d, h]);
                    add(format!("{p}.self_attn.k_proj.weight"), &[nkv * d, h]);
                    add(format!("{p}.self_attn.v_proj.weight"), &[nkv * d, h]);
                    if c.qkv_bias() {
                        add(format!("{p}.self_attn.q_proj.bias"), &[nh * d]);
                        add(format!("{p}.self_attn.k_proj.bias"), &[nkv * d]);
                        add(format!("{p}.self_attn.v_proj.bias"), &[nkv * d]);
                    }
                }
                add(format!("{p}.self_attn.o_proj.weight"), &[h, nh * d]);
                add(format!("{p}.mlp.gate_proj.weight"), &[i, h]);
                add(format!("{p}.mlp.up_proj.weight"), &[i, h]);
                add(format!("{p}.mlp.down_proj.weight"), &[h, i]);
            }
            add("model.norm.weight".into(), &[h]);
        }
        BackboneConfig::Gemma3(c) => {
            let (h, d, nh, nkv, i) = (
                c.hidden_size,
                c.head_dim,
                c.num_attention_heads,
                c.num_key_value_heads,
                c.intermediate_size,
            );
            add("model.embed_tokens.weight".into(), &[c.vocab_size, h]);
            for l in 0..c.num_hidden_layers {
                let p = format!("model.layers.{l}");
                for n in [
                    "input_layernorm",
                    "post_attention_layernorm",
                    "pre_feedforward_layernorm",
                    "post_feedforward_layernorm",
                ] {
                    add(format!("{p}.{n}.weight"), &[h]);
                }
                add(format!("{p}.self_attn.q_norm.weight"), &[d]);
                add(format!("{p}.self_attn.k_norm.weight"), &[d]);
                add(format!("{p}.self_attn.q_proj.weight"), &[nh * d, h]);
                add(format!("{p}.self_attn.k_proj.weight"), &[nkv * d, h]);
                add(format!("{p}.self_attn.v_proj.weight"), &[nkv * d, h]);
                add(format!("{p}.self_attn.o_proj.weight"), &[h, nh * d]);
                add(format!("{p}.mlp.gate_proj.weight"), &[i, h]);
                add(format!("{p}.mlp.up_proj.weight"), &[i, h]);
                add(format!("{p}.mlp.down_proj.weight"), &[h, i]);
            }
            add("model.norm.weight".into(), &[h]);
        }
        BackboneConfig::Bert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            add(
                "embeddings.word_embeddings.weight".into(),
                &[c.vocab_size, h],
            );
            add(
                "embeddings.position_embeddings.weight".into(),
                &[c.max_position_embeddings, h],
            );
            add(
                "embeddings.token_type_embeddings.weight".into(),
                &[c.type_vocab_size, h],
            );
            add("embeddings.LayerNorm.weight".into(), &[h]);
            add("embeddings.LayerNorm.bias".into(), &[h]);
            for l in 0..c.num_hidden_layers {
                let p = format!("encoder.layer.{l}");
                for n in ["query", "key", "value"] {
                    add(format!("{p}.attention.self.{n}.weight"), &[h, h]);
                    add(format!("{p}.attention.self.{n}.bias"), &[h]);
                }
                add(format!("{p}.attention.output.dense.weight"), &[h, h]);
                add(format!("{p}.attention.output.dense.bias"), &[h]);
                add(format!("{p}.attention.output.LayerNorm.weight"), &[h]);
                add(format!("{p}.attention.output.LayerNorm.bias"), &[h]);
                add(format!("{p}.intermediate.dense.weight"), &[i, h]);
                add(format!("{p}.intermediate.dense.bias"), &[i]);
                add(format!("{p}.output.dense.weight"), &[h, i]);
                add(format!("{p}.output.dense.bias"), &[h]);
                add(format!("{p}.output.LayerNorm.weight"), &[h]);
                add(format!("{p}.output.LayerNorm.bias"), &[h]);
            }
        }
    }
    t
}

/// Random weights: norms near their neutral value, matrices ~ U(±1/sqrt(fan_in)).
fn random_source(cfg: &BackboneConfig, seed: u64) -> MemorySource {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut src = MemorySource::new("memory");
    let gemma = matches!(cfg, BackboneConfig::Gemma3(_));
    for (name, shape) in hf_tensors(cfg) {
        let n: usize = shape.iter().product();
        let is_norm = name.contains("norm") || name.contains("LayerNorm");
        let data: Vec<f32> = (0..n)
            .map(|_| {
                if is_norm && !name.ends_with("bias") {
                    // Gemma stores w for (1 + w).
                    (if gemma { 0.0 } else { 1.0 }) + rng.random_range(-0.2..0.2)
                } else if is_norm || shape.len() == 1 {
                    rng.random_range(-0.1..0.1)
                } else {
                    let bound = 1.0 / (shape[1] as f32).sqrt();
                    rng.random_range(-bound..bound) * if name.contains("embed") { 4.0 } else { 1.0 }
                }
            })
            .collect();
        src.insert(name, shape, data);
    }
    src
}

fn config_json(cfg: &BackboneConfig) -> serde_json::Value {
    match cfg {
        BackboneConfig::Llama(c) => serde_json::to_value(c).unwrap(),
        BackboneConfig::Gemma3(c) => {
            let mut v = serde_json::to_value(c).unwrap();
            v["model_type"] = "gemma3_text".into();
            v
        }
        BackboneConfig::Bert(c) => {
            let mut v = serde_json::to_value(c).unwrap();
            v["model_type"] = "bert".into();
            v
        }
    }
}

/// Writes `src` as safetensors files under `dir` (split over `shards` files, with an index when
/// more than one), plus `config.json`. `f16_names` are stored as f16, the rest as f32.
fn write_hf_dir(
    dir: &Path,
    cfg: &BackboneConfig,
    src: &MemorySource,
    shards: usize,
    f16_names: &[&str],
) {
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config_json(cfg)).unwrap(),
    )
    .unwrap();
    let names: Vec<&String> = {
        let mut v: Vec<&String> = src.tensors.keys().collect();
        v.sort();
        v
    };
    let mut weight_map = BTreeMap::new();
    for s in 0..shards {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", s + 1, shards)
        };
        let mut bytes: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = Vec::new();
        for (k, name) in names.iter().enumerate().filter(|(k, _)| k % shards == s) {
            let _ = k;
            let t = &src.tensors[*name];
            let (b, dt) = if f16_names.contains(&name.as_str()) {
                (
                    t.data
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                        .collect(),
                    safetensors::Dtype::F16,
                )
            } else {
                (
                    t.data.iter().flat_map(|&x| x.to_le_bytes()).collect(),
                    safetensors::Dtype::F32,
                )
            };
            bytes.push(((*name).clone(), b, t.shape.clone(), dt));
            weight_map.insert((*name).clone(), file.clone());
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(n, b, s, dt)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*dt, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    if shards > 1 {
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
}

fn tiny_configs() -> Vec<BackboneConfig> {
    let mut mistral = LlamaConfig::tiny(LlamaVariant::Mistral);
    mistral.sliding_window = Some(4);
    vec![
        BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Llama)),
        BackboneConfig::Llama(mistral),
        BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Qwen2)),
        BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Baichuan)),
        BackboneConfig::Gemma3(Gemma3Config::tiny()),
        BackboneConfig::Bert(BertConfig::tiny()),
    ]
}

fn seqs(vocab: usize, lens: &[usize], seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    lens.iter()
        .map(|&l| (0..l).map(|_| rng.random_range(1..vocab as u32)).collect())
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn hidden(model: &Backbone<B>, batch: &[Vec<u32>]) -> (Vec<f32>, [usize; 3]) {
    let dev = Default::default();
    let (ids, mask) = pad_batch::<B>(batch, &dev);
    let h = model.forward(ids, mask);
    let dims = h.dims();
    (h.into_data().to_vec().unwrap(), dims)
}

#[test]
fn every_arch_loads_from_dir_and_memory_alike_with_right_shapes() {
    let dev = Default::default();
    for (k, cfg) in tiny_configs().into_iter().enumerate() {
        let src = random_source(&cfg, k as u64);
        let tmp = tempfile::tempdir().unwrap();
        write_hf_dir(tmp.path(), &cfg, &src, 1, &[]);
        let (from_dir, parsed) = Backbone::<B>::load_hf_dir(tmp.path(), &dev).unwrap();
        assert_eq!(parsed, cfg, "config.json round trip for {:?}", cfg.arch());
        let from_mem = cfg.load::<B>(&src, &dev).unwrap();
        let batch = seqs(64, &[5, 3, 7], 100 + k as u64);
        let (a, dims) = hidden(&from_dir, &batch);
        let (b, _) = hidden(&from_mem, &batch);
        assert_eq!(dims, [3, 7, cfg.hidden_size()], "{:?}", cfg.arch());
        assert!(
            a.iter().all(|x| x.is_finite()),
            "{:?}: non-finite hidden state",
            cfg.arch()
        );
        assert_eq!(
            max_abs_diff(&a, &b),
            0.0,
            "{:?}: dir and memory loads differ",
            cfg.arch()
        );
        let pooled = from_dir.encode_pooled(&batch, Pooling::Mean, true).unwrap();
        assert_eq!(pooled.len(), 3);
        for p in &pooled {
            assert_eq!(p.len(), cfg.hidden_size());
            let n: f32 = p.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "{:?}: norm {n}", cfg.arch());
        }
    }
}

#[test]
fn pooled_vectors_do_not_depend_on_padding() {
    let dev = Default::default();
    for (k, cfg) in tiny_configs().into_iter().enumerate() {
        let model = cfg
            .load::<B>(&random_source(&cfg, 10 + k as u64), &dev)
            .unwrap();
        let batch = seqs(64, &[4, 9, 1], 7 + k as u64);
        for pooling in [Pooling::Mean, Pooling::First, Pooling::Last] {
            let together = model.encode_pooled(&batch, pooling, false).unwrap();
            for (i, seq) in batch.iter().enumerate() {
                let alone = model
                    .encode_pooled(std::slice::from_ref(seq), pooling, false)
                    .unwrap();
                let d = max_abs_diff(&alone[0], &together[i]);
                assert!(
                    d < 1e-4,
                    "{:?} {pooling:?}: sequence {i} alone vs padded differs by {d}",
                    cfg.arch()
                );
            }
        }
    }
}

#[test]
fn decoders_are_causal_and_bert_is_not() {
    let dev = Default::default();
    for (k, cfg) in tiny_configs().into_iter().enumerate() {
        let model = cfg
            .load::<B>(&random_source(&cfg, 20 + k as u64), &dev)
            .unwrap();
        let a = seqs(64, &[8], 30 + k as u64).remove(0);
        let mut b = a.clone();
        b[5] = if a[5] == 1 { 2 } else { 1 }; // change one token in the middle
        let (ha, _) = hidden(&model, std::slice::from_ref(&a));
        let (hb, _) = hidden(&model, std::slice::from_ref(&b));
        let h = cfg.hidden_size();
        let before = max_abs_diff(&ha[..5 * h], &hb[..5 * h]);
        let after = max_abs_diff(&ha[5 * h..], &hb[5 * h..]);
        assert!(
            after > 1e-4,
            "{:?}: changing token 5 changed nothing after it",
            cfg.arch()
        );
        if cfg.arch().is_decoder() {
            assert!(
                before < 1e-6,
                "{:?}: positions before 5 changed by {before}",
                cfg.arch()
            );
        } else {
            assert!(
                before > 1e-4,
                "{:?}: BERT should attend both ways",
                cfg.arch()
            );
        }
    }
}

#[test]
fn gemma_sliding_window_limits_the_receptive_field() {
    let dev = Default::default();
    // Three sliding layers with window 3: position p sees at most p - 6.
    let mut local = Gemma3Config::tiny();
    local.layer_types = Some(vec![LayerType::SlidingAttention; 3]);
    // Same with the last layer global: position 9 sees everything.
    let mut mixed = local.clone();
    mixed.layer_types = Some(vec![
        LayerType::SlidingAttention,
        LayerType::SlidingAttention,
        LayerType::FullAttention,
    ]);
    for (cfg, reaches) in [(local, false), (mixed, true)] {
        let cfg = BackboneConfig::Gemma3(cfg);
        let model = cfg.load::<B>(&random_source(&cfg, 5), &dev).unwrap();
        let a = seqs(64, &[10], 3).remove(0);
        let mut b = a.clone();
        b[0] = if a[0] == 1 { 2 } else { 1 };
        let h = cfg.hidden_size();
        let (ha, _) = hidden(&model, std::slice::from_ref(&a));
        let (hb, _) = hidden(&model, std::slice::from_ref(&b));
        let last = max_abs_diff(&ha[9 * h..], &hb[9 * h..]);
        let near = max_abs_diff(&ha[6 * h..7 * h], &hb[6 * h..7 * h]);
        assert!(
            near > 1e-5,
            "position 6 is within 3 layers × (window - 1) of position 0"
        );
        assert_eq!(
            last > 1e-6,
            reaches,
            "token 0 → position 9 difference {last}"
        );
    }
}

#[test]
fn sharded_and_f16_checkpoints_load() {
    let dev = Default::default();
    let cfg = BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Qwen2));
    let mut src = random_source(&cfg, 42);
    // Round the f16 tensor in memory too, so both loads see the same values.
    let f16_name = "model.layers.0.mlp.up_proj.weight";
    if let Some(t) = src.tensors.get_mut(f16_name) {
        t.data
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32());
    }
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &cfg, &src, 3, &[f16_name]);
    let hf = HfDir::open(tmp.path()).unwrap();
    assert_eq!(hf.names().len(), src.tensors.len());
    assert_eq!(hf.tensor(f16_name).unwrap(), src.tensors[f16_name]);
    let (from_dir, _) = Backbone::<B>::load_hf_dir(tmp.path(), &dev).unwrap();
    let from_mem = cfg.load::<B>(&src, &dev).unwrap();
    let batch = seqs(64, &[6, 2], 1);
    assert_eq!(hidden(&from_dir, &batch).0, hidden(&from_mem, &batch).0);
}

#[test]
fn base_model_names_without_prefix_load() {
    let dev = Default::default();
    for cfg in [
        BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Qwen2)),
        BackboneConfig::Gemma3(Gemma3Config::tiny()),
    ] {
        let src = random_source(&cfg, 9);
        let mut bare = MemorySource::new("bare");
        for (k, t) in &src.tensors {
            bare.tensors
                .insert(k.strip_prefix("model.").unwrap_or(k).to_string(), t.clone());
        }
        let batch = seqs(64, &[5, 2], 2);
        let a = hidden(&cfg.load::<B>(&src, &dev).unwrap(), &batch).0;
        let b = hidden(&cfg.load::<B>(&bare, &dev).unwrap(), &batch).0;
        assert_eq!(a, b, "{:?}", cfg.arch());
    }
}

fn err_text<T: std::fmt::Debug>(r: learnrec_model::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn wrong_path_is_an_error_naming_it() {
    let e = err_text(Backbone::<B>::load_hf_dir(
        "/nonexistent/learnrec-model-dir",
        &Default::default(),
    ));
    assert!(e.contains("/nonexistent/learnrec-model-dir"), "{e}");
}

#[test]
fn unsupported_architecture_is_an_error_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BackboneConfig::Bert(BertConfig::tiny());
    write_hf_dir(tmp.path(), &cfg, &random_source(&cfg, 1), 1, &[]);
    let mut json = config_json(&cfg);
    json["model_type"] = "gpt2".into();
    std::fs::write(tmp.path().join("config.json"), json.to_string()).unwrap();
    let e = err_text(Backbone::<B>::load_hf_dir(tmp.path(), &Default::default()));
    assert!(
        e.contains("config.json") && e.contains("model_type") && e.contains("gpt2"),
        "{e}"
    );
    // An unsupported feature of a supported architecture names its field too.
    json["model_type"] = "bert".into();
    json["position_embedding_type"] = "relative_key".into();
    std::fs::write(tmp.path().join("config.json"), json.to_string()).unwrap();
    let e = err_text(Backbone::<B>::load_hf_dir(tmp.path(), &Default::default()));
    assert!(
        e.contains("config.json") && e.contains("position_embedding_type"),
        "{e}"
    );
    // A missing required field.
    json.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(tmp.path().join("config.json"), json.to_string()).unwrap();
    let e = err_text(Backbone::<B>::load_hf_dir(tmp.path(), &Default::default()));
    assert!(
        e.contains("config.json") && e.contains("hidden_size"),
        "{e}"
    );
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BackboneConfig::Llama(LlamaConfig::tiny(LlamaVariant::Llama));
    let mut src = random_source(&cfg, 1);
    src.tensors.remove("model.layers.1.mlp.down_proj.weight");
    write_hf_dir(tmp.path(), &cfg, &src, 1, &[]);
    let e = err_text(Backbone::<B>::load_hf_dir(tmp.path(), &Default::default()));
    assert!(
        e.contains("model.layers.1.mlp.down_proj.weight")
            && e.contains(&tmp.path().display().to_string()),
        "{e}"
    );
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn wrong_shape_is_an_error_naming_file_tensor_and_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BackboneConfig::Gemma3(Gemma3Config::tiny());
    let mut src = random_source(&cfg, 1);
    src.insert(
        "model.layers.0.self_attn.k_proj.weight",
        vec![16, 32],
        vec![0.0; 16 * 32],
    );
    write_hf_dir(tmp.path(), &cfg, &src, 1, &[]);
    let e = err_text(Backbone::<B>::load_hf_dir(tmp.path(), &Default::default()));
    assert!(
        e.contains("model.safetensors") && e.contains("model.layers.0.self_attn.k_proj.weight"),
        "{e}"
    );
    assert!(e.contains("[16, 32]") && e.contains("[32, 32]"), "{e}");
}

#[test]
fn truncated_safetensors_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BackboneConfig::Bert(BertConfig::tiny());
    write_hf_dir(tmp.path(), &cfg, &random_source(&cfg, 1), 1, &[]);
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_text(HfDir::open(tmp.path()));
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(&path, &bytes[..5]).unwrap();
    let e = err_text(HfDir::open(tmp.path()));
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn bad_token_ids_and_empty_sequences_are_errors() {
    let cfg = BackboneConfig::Bert(BertConfig::tiny());
    let model = cfg
        .load::<B>(&random_source(&cfg, 1), &Default::default())
        .unwrap();
    let e = err_text(model.encode_pooled(&[vec![1, 2], vec![64]], Pooling::Mean, true));
    assert!(e.contains("sequence 1") && e.contains("token id 64"), "{e}");
    let e = err_text(model.encode_pooled(&[vec![]], Pooling::Mean, true));
    assert!(e.contains("sequence 0") && e.contains("empty"), "{e}");
    let e = err_text(model.encode_pooled(&[vec![1; 33]], Pooling::Mean, true));
    assert!(e.contains("33 tokens") && e.contains("at most 32"), "{e}");
}

#[test]
fn arch_round_trips_model_types() {
    for a in Arch::ALL {
        let name = serde_json::to_value(a).unwrap();
        assert_eq!(Arch::from_model_type(name.as_str().unwrap()), Some(a));
    }
    assert_eq!(Arch::from_model_type("gemma3_text"), Some(Arch::Gemma3));
    assert_eq!(Arch::from_model_type("gpt2"), None);
}

#[test]
fn hf_config_variants_parse() {
    // transformers ≥ 5 puts RoPE settings under rope_parameters.
    let json = serde_json::json!({
        "model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
        "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"],
        "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
    });
    let BackboneConfig::Gemma3(c) = BackboneConfig::from_hf_json(&json, "config.json").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        c.rope_scaling,
        Some(learnrec_model::backbone::layers::RopeScaling::Linear { factor: 8.0 })
    );
    assert_eq!(c.layer_type(0), LayerType::SlidingAttention);
    // Baichuan2-7B: model_max_length, no kv heads.
    let json = serde_json::json!({
        "model_type": "baichuan", "vocab_size": 125696, "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 32, "num_attention_heads": 32, "model_max_length": 4096, "hidden_act": "silu",
        "rms_norm_eps": 1e-6
    });
    let BackboneConfig::Llama(c) = BackboneConfig::from_hf_json(&json, "config.json").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (c.kv_heads(), c.head_dim(), c.max_position_embeddings),
        (32, 128, 4096)
    );
    let mut j13 = json.clone();
    j13["num_hidden_layers"] = 40.into();
    let e = BackboneConfig::from_hf_json(&j13, "config.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ALiBi"), "{e}");
    let mut yarn = json;
    yarn["rope_scaling"] = serde_json::json!({"type": "yarn", "factor": 4.0});
    let e = BackboneConfig::from_hf_json(&yarn, "config.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rope_scaling") && e.contains("yarn"), "{e}");
}
