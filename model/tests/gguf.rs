//! GGUF reader: tiny files written by the test (all value types, F32 / quantised tensors, name
//! mapping, Llama un-permutation, Gemma norm shift), hostile and truncated files, and — when
//! present — the real Gemma-3-270M and Qwen2.5-1.5B files.

use learnrec_model::gguf::writer::{RawTensor, f32_tensor, to_bytes};
use learnrec_model::gguf::{GgufArch, GgufFile, Value};
use learnrec_model::quant::{GgmlType, reference};
use learnrec_model::weights::TensorSource;
use std::path::PathBuf;
use learnrec_eval::assets::cache_dir;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn all_value_types() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("t.u8", Value::U8(7)),
        ("t.i8", Value::I8(-7)),
        ("t.u16", Value::U16(700)),
        ("t.i16", Value::I16(-700)),
        ("t.u32", Value::U32(70_000)),
        ("t.i32", Value::I32(-70_000)),
        ("t.u64", Value::U64(1 << 40)),
        ("t.i64", Value::I64(-(1 << 40))),
        ("t.f32", Value::F32(0.5)),
        ("t.f64", Value::F64(0.25)),
        ("t.bool", Value::Bool(true)),
        (
            "t.strs",
            Value::Array(vec![Value::String("a".into()), Value::String("βγ".into())]),
        ),
        (
            "t.nested",
            Value::Array(vec![Value::Array(vec![Value::I32(1), Value::I32(2)])]),
        ),
        ("qwen2.block_count", Value::U32(1)),
        ("qwen2.embedding_length", Value::U32(64)),
        ("qwen2.feed_forward_length", Value::U32(128)),
        ("qwen2.attention.head_count", Value::U32(4)),
        ("qwen2.attention.head_count_kv", Value::U32(2)),
        ("qwen2.context_length", Value::U32(256)),
        ("qwen2.rope.freq_base", Value::F32(1e6)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
    ]
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect()
}

#[test]
fn tiny_file_metadata_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let emb = ramp(10 * 64);
    let q = ramp(64 * 64);
    let tensors = vec![
        // PyTorch [vocab=10, hidden=64] → GGUF dims [64, 10].
        f32_tensor("token_embd.weight", &[10, 64], &emb),
        RawTensor {
            name: "blk.0.attn_q.weight".into(),
            dims: vec![64, 64],
            ty: GgmlType::Q8_0,
            bytes: reference::quantize_q8_0(&q),
        },
        RawTensor {
            name: "blk.0.ffn_up.weight".into(),
            dims: vec![256, 2],
            ty: GgmlType::Q4K,
            bytes: reference::quantize_q4_k(&ramp(512)),
        },
        f32_tensor("blk.0.attn_q.bias", &[64], &ramp(64)),
    ];
    let p = write(&dir, "tiny.gguf", &to_bytes(&all_value_types(), &tensors));
    let g = GgufFile::open(&p).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.arch(), Some(&GgufArch::Qwen2));
    assert_eq!(g.get_u64("t.u8").unwrap(), 7);
    assert_eq!(g.get("t.i8"), Some(&Value::I8(-7)));
    assert_eq!(g.get_u64("t.u16").unwrap(), 700);
    assert_eq!(g.get("t.i16"), Some(&Value::I16(-700)));
    assert_eq!(g.get_u32("t.u32").unwrap(), 70_000);
    assert_eq!(g.get("t.i32"), Some(&Value::I32(-70_000)));
    assert_eq!(g.get_u64("t.u64").unwrap(), 1 << 40);
    assert_eq!(g.get("t.i64"), Some(&Value::I64(-(1 << 40))));
    assert_eq!(g.get_f32("t.f32").unwrap(), 0.5);
    assert_eq!(g.get_f32("t.f64").unwrap(), 0.25);
    assert!(g.get_bool("t.bool").unwrap());
    assert_eq!(g.get_str_array("t.strs").unwrap(), vec!["a", "βγ"]);
    assert_eq!(
        g.get("t.nested"),
        Some(&Value::Array(vec![Value::Array(vec![
            Value::I32(1),
            Value::I32(2)
        ])]))
    );

    // Typed getters name the file and key on a wrong type or a missing key.
    let e = g.get_str("t.u8").unwrap_err().to_string();
    assert!(
        e.contains("tiny.gguf")
            && e.contains("`t.u8`")
            && e.contains("expected a string, found u8"),
        "{e}"
    );
    let e = g.get_u64("t.i8").unwrap_err().to_string();
    assert!(
        e.contains("expected a non-negative integer, found i8"),
        "{e}"
    );
    let e = g.get_u32("t.u64").unwrap_err().to_string();
    assert!(e.contains("does not fit in u32"), "{e}");
    let e = g.get_f32("no.such.key").unwrap_err().to_string();
    assert!(e.contains("`no.such.key`") && e.contains("missing"), "{e}");

    let c = g.config().unwrap();
    assert_eq!(
        (
            c.n_layers,
            c.hidden,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.ff
        ),
        (1, 64, 4, 2, 16, 128)
    );
    assert_eq!((c.vocab_size, c.context_length), (10, 256));
    assert_eq!(c.rope_theta, 1e6);
    assert_eq!(c.rms_eps, Some(1e-6));
    assert!(c.tie_word_embeddings);
    assert_eq!(c.sliding_window, None);

    // HF names, PyTorch shapes, exact F32 values.
    let t = g.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(t.shape, vec![10, 64]);
    assert_eq!(t.data, emb);
    assert!(g.contains("model.layers.0.self_attn.q_proj.weight"));
    assert!(g.contains("model.layers.0.self_attn.q_proj.bias"));
    assert!(!g.contains("model.layers.0.self_attn.k_proj.weight"));
    let t = g
        .tensor_shaped("model.layers.0.self_attn.q_proj.weight", &[64, 64])
        .unwrap();
    let max_err = t
        .data
        .iter()
        .zip(&q)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_err < 0.02, "Q8_0 error {max_err}");
    let t = g.tensor("model.layers.0.mlp.up_proj.weight").unwrap();
    assert_eq!(t.shape, vec![2, 256]);
    // GGUF names work verbatim too.
    assert_eq!(g.tensor("blk.0.attn_q.bias").unwrap().data, ramp(64));
    // Missing tensors and bad shapes are named.
    let e = g
        .tensor("model.layers.3.mlp.down_proj.weight")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.layers.3.mlp.down_proj.weight") && e.contains("blk.3.ffn_down.weight"),
        "{e}"
    );
    let e = g
        .tensor_shaped("model.embed_tokens.weight", &[64, 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("[10, 64]") && e.contains("[64, 10]"), "{e}");
}

/// llama.cpp's `LlamaModel.permute`, written the way the converter does it
/// (reshape(n_head, 2, hd/2, in).swapaxes(1, 2)).
fn llama_permute(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let hd = rows / n_head;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for t in 0..2 {
            for i in 0..hd / 2 {
                let src = h * hd + t * (hd / 2) + i; // HF row: [h, t, i]
                let dst = h * hd + i * 2 + t; // swapped: [h, i, t]
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn llama_qk_permutation_is_undone_and_gemma_norms_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let (hidden, heads, kv) = (16, 4, 2);
    let hd = hidden / heads;
    let wq: Vec<f32> = (0..hidden * hidden).map(|i| i as f32).collect();
    let wk: Vec<f32> = (0..kv * hd * hidden).map(|i| -(i as f32)).collect();
    let meta = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.attention.head_count", Value::U32(heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(kv as u32)),
    ];
    let tensors = vec![
        f32_tensor(
            "blk.0.attn_q.weight",
            &[hidden, hidden],
            &llama_permute(&wq, hidden, hidden, heads),
        ),
        f32_tensor(
            "blk.0.attn_k.weight",
            &[kv * hd, hidden],
            &llama_permute(&wk, kv * hd, hidden, kv),
        ),
        f32_tensor("blk.0.attn_v.weight", &[kv * hd, hidden], &wk),
        f32_tensor("blk.0.ffn_norm.weight", &[hidden], &[2.0; 16]),
    ];
    let g = GgufFile::open(write(&dir, "llama.gguf", &to_bytes(&meta, &tensors))).unwrap();
    assert_eq!(
        g.tensor("model.layers.0.self_attn.q_proj.weight")
            .unwrap()
            .data,
        wq
    );
    assert_eq!(
        g.tensor("model.layers.0.self_attn.k_proj.weight")
            .unwrap()
            .data,
        wk
    );
    assert_eq!(
        g.tensor("model.layers.0.self_attn.v_proj.weight")
            .unwrap()
            .data,
        wk,
        "V is not permuted"
    );
    // Raw reads keep the stored layout.
    assert_ne!(g.read_raw("blk.0.attn_q.weight").unwrap().data, wq);
    // Llama norms are not shifted; Llama's post_attention_layernorm is GGUF's ffn_norm.
    assert_eq!(
        g.tensor("model.layers.0.post_attention_layernorm.weight")
            .unwrap()
            .data,
        vec![2.0; 16]
    );

    // Gemma3: norms stored as 1 + w are returned as w; Q is not un-permuted; the extra norms map.
    let meta = vec![("general.architecture", Value::String("gemma3".into()))];
    let tensors = vec![
        f32_tensor("blk.0.attn_q.weight", &[hidden, hidden], &wq),
        f32_tensor("blk.0.post_attention_norm.weight", &[4], &[1.5; 4]),
        f32_tensor("blk.0.ffn_norm.weight", &[4], &[1.25; 4]),
        f32_tensor("blk.0.post_ffw_norm.weight", &[4], &[1.0; 4]),
        f32_tensor("blk.0.attn_q_norm.weight", &[4], &[0.5; 4]),
        f32_tensor("output_norm.weight", &[4], &[3.0; 4]),
    ];
    let g = GgufFile::open(write(&dir, "gemma.gguf", &to_bytes(&meta, &tensors))).unwrap();
    assert_eq!(
        g.tensor("model.layers.0.self_attn.q_proj.weight")
            .unwrap()
            .data,
        wq
    );
    assert_eq!(
        g.tensor("model.layers.0.post_attention_layernorm.weight")
            .unwrap()
            .data,
        vec![0.5; 4]
    );
    assert_eq!(
        g.tensor("model.layers.0.pre_feedforward_layernorm.weight")
            .unwrap()
            .data,
        vec![0.25; 4]
    );
    assert_eq!(
        g.tensor("model.layers.0.post_feedforward_layernorm.weight")
            .unwrap()
            .data,
        vec![0.0; 4]
    );
    assert_eq!(
        g.tensor("model.layers.0.self_attn.q_norm.weight")
            .unwrap()
            .data,
        vec![-0.5; 4]
    );
    assert_eq!(g.tensor("model.norm.weight").unwrap().data, vec![2.0; 4]);
}

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b
}

fn open_err(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = write(dir, name, bytes);
    let e = GgufFile::open(&p).unwrap_err().to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

#[test]
fn hostile_and_truncated_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_err(&dir, "empty.gguf", b"");
    assert!(e.contains("truncated"), "{e}");
    let e = open_err(&dir, "magic.gguf", b"GGML\x03\0\0\0");
    assert!(e.contains("not a GGUF file"), "{e}");
    let e = open_err(&dir, "v1.gguf", &header(1, 0, 0));
    assert!(e.contains("GGUF version 1"), "{e}");

    // Counts larger than the file could hold.
    let e = open_err(&dir, "ntensors.gguf", &header(3, u64::MAX, 0));
    assert!(
        e.contains("tensor count") && e.contains("cannot fit"),
        "{e}"
    );
    let e = open_err(&dir, "nkv.gguf", &header(3, 0, 1 << 40));
    assert!(e.contains("metadata count"), "{e}");
    // A string length of 2^60.
    let mut b = header(3, 0, 1);
    b.extend((1u64 << 60).to_le_bytes());
    b.extend([0u8; 16]);
    let e = open_err(&dir, "strlen.gguf", &b);
    assert!(
        e.contains("metadata key #0") && e.contains("cannot fit"),
        "{e}"
    );
    // An array claiming 2^40 u32 elements.
    let mut b = header(3, 0, 1);
    b.extend(3u64.to_le_bytes());
    b.extend(b"arr");
    b.extend(9u32.to_le_bytes());
    b.extend(4u32.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    let e = open_err(&dir, "arrlen.gguf", &b);
    assert!(e.contains("`arr`") && e.contains("cannot fit"), "{e}");
    // Unknown value type.
    let mut b = header(3, 0, 1);
    b.extend(1u64.to_le_bytes());
    b.extend(b"k");
    b.extend(99u32.to_le_bytes());
    b.extend([0u8; 8]);
    let e = open_err(&dir, "vtype.gguf", &b);
    assert!(
        e.contains("`k`") && e.contains("unknown value type 99"),
        "{e}"
    );

    // Duplicate key.
    let meta = vec![("a", Value::U8(1)), ("a", Value::U8(2))];
    let e = open_err(&dir, "dupkey.gguf", &to_bytes(&meta, &[]));
    assert!(e.contains("`a`") && e.contains("duplicate key"), "{e}");
    // Bad alignment.
    let meta = vec![("general.alignment", Value::U32(3))];
    let e = open_err(&dir, "align.gguf", &to_bytes(&meta, &[]));
    assert!(
        e.contains("general.alignment") && e.contains("power of two"),
        "{e}"
    );

    // Tensor data cut off: the file ends before the last tensor's bytes.
    let good = to_bytes(&[], &[f32_tensor("w", &[4, 8], &ramp(32))]);
    let e = open_err(&dir, "cut.gguf", &good[..good.len() - 4]);
    assert!(
        e.contains("tensor `w`") && e.contains("outside the file"),
        "{e}"
    );
    // Truncated inside the tensor infos.
    let e = open_err(&dir, "cutinfo.gguf", &good[..50]);
    assert!(e.contains("truncated"), "{e}");
    // Too many dimensions / overflowing element count / misaligned offset / bad block multiple.
    let bad_tensor = |dims: Vec<u64>, ty: GgmlType, offset_fix: Option<u64>| {
        let mut b = to_bytes(
            &[],
            &[RawTensor {
                name: "w".into(),
                dims,
                ty,
                bytes: vec![],
            }],
        );
        if let Some(off) = offset_fix {
            // The offset is the last 8 bytes of the (single) tensor info, before padding.
            let info_end = 24 + 8 + 1 + 4 + 8 * 2 + 4 + 8;
            b[info_end - 8..info_end].copy_from_slice(&off.to_le_bytes());
        }
        b
    };
    let e = open_err(
        &dir,
        "dims.gguf",
        &bad_tensor(vec![1; 5], GgmlType::F32, None),
    );
    assert!(e.contains("5 dimensions"), "{e}");
    let e = open_err(
        &dir,
        "overflow.gguf",
        &bad_tensor(vec![u64::MAX, 4], GgmlType::F32, None),
    );
    assert!(e.contains("overflow"), "{e}");
    let e = open_err(
        &dir,
        "offset.gguf",
        &bad_tensor(vec![1, 1], GgmlType::F32, Some(7)),
    );
    assert!(e.contains("not a multiple of the alignment"), "{e}");
    let e = open_err(
        &dir,
        "block.gguf",
        &bad_tensor(vec![33, 1], GgmlType::Q8_0, None),
    );
    assert!(
        e.contains("not a multiple of the Q8_0 block size 32"),
        "{e}"
    );

    // Unsupported tensor types open fine but fail on read, naming the tensor and type.
    let b = to_bytes(
        &[],
        &[RawTensor {
            name: "iq".into(),
            dims: vec![256],
            ty: GgmlType::Other(16),
            bytes: vec![],
        }],
    );
    let g = GgufFile::open(write(&dir, "iq.gguf", &b)).unwrap();
    let e = g.tensor("iq").unwrap_err().to_string();
    assert!(e.contains("`iq`") && e.contains("ggml type 16"), "{e}");
    let e = g.config().unwrap_err().to_string();
    assert!(
        e.contains("general.architecture") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn real_files_parse() {
    let root = cache_dir().join("assets");
    let gemma = root.join("gemma3-270m/model.gguf");
    let qwen = root.join("qwen2.5-1.5b/model.gguf");
    if !gemma.is_file() || !qwen.is_file() {
        println!(
            "skipped: {} or {} not present",
            gemma.display(),
            qwen.display()
        );
        return;
    }
    let g = GgufFile::open(&gemma).unwrap();
    let c = g.config().unwrap();
    assert_eq!(c.arch, GgufArch::Gemma3);
    assert_eq!(
        (
            c.n_layers,
            c.hidden,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.ff
        ),
        (18, 640, 4, 1, 256, 2048)
    );
    assert_eq!(
        (c.vocab_size, c.sliding_window, c.sliding_window_pattern),
        (262_144, Some(512), Some(6))
    );
    assert!(c.tie_word_embeddings);
    // Gemma norms are stored as 1 + w: raw values sit around 1 higher than what we return.
    let raw = g.read_raw("blk.0.attn_norm.weight").unwrap();
    let hf = g.tensor("model.layers.0.input_layernorm.weight").unwrap();
    assert_eq!(hf.shape, vec![640]);
    for (r, h) in raw.data.iter().zip(&hf.data) {
        assert!((r - h - 1.0).abs() < 1e-6);
    }
    // Q5_0, Q4_K, Q6_K tensors dequantise to finite values of plausible scale.
    for (name, shape) in [
        ("model.layers.0.self_attn.q_proj.weight", vec![1024, 640]),
        ("model.layers.0.self_attn.o_proj.weight", vec![640, 1024]),
        ("model.layers.0.mlp.down_proj.weight", vec![640, 2048]),
        ("model.layers.0.self_attn.v_proj.weight", vec![256, 640]),
    ] {
        let t = g.tensor_shaped(name, &shape).unwrap();
        let rms = (t.data.iter().map(|v| v * v).sum::<f32>() / t.data.len() as f32).sqrt();
        assert!(
            t.data.iter().all(|v| v.is_finite()) && rms > 1e-3 && rms < 1.0,
            "{name}: rms {rms}"
        );
    }

    let g = GgufFile::open(&qwen).unwrap();
    let c = g.config().unwrap();
    assert_eq!(c.arch, GgufArch::Qwen2);
    assert_eq!(
        (
            c.n_layers,
            c.hidden,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.ff
        ),
        (28, 1536, 12, 2, 128, 8960)
    );
    assert_eq!(c.vocab_size, 151_936);
    let t = g
        .tensor_shaped("model.layers.0.self_attn.k_proj.bias", &[256])
        .unwrap();
    assert!(t.data.iter().all(|v| v.is_finite()));
}
