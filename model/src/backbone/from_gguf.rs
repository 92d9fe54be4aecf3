//! Backbones from GGUF files: [`BackboneConfig::from_gguf`] turns the `{arch}.*` metadata
//! summarised by [`crate::gguf::GgufConfig`] into a backbone configuration, and
//! [`Backbone::load_gguf`] loads a file in one call (weights dequantised to f32 through
//! `GgufFile`'s [`TensorSource`], which already maps names to Hugging Face's and undoes
//! llama.cpp's conversions).
//!
//! Its golden tests (Gemma-3-270M and Qwen2.5-1.5B against transformers) run with
//! `cargo test -p learnrec-model --lib` when the fetched assets are present.
//!
//! Values GGUF does not store follow transformers' defaults (what its GGUF loader produced the
//! golden outputs with): Gemma 3's `query_pre_attn_scalar` = `head_dim` (except 27B, where
//! Gemma uses `hidden / heads`, as llama.cpp does), local RoPE base 10k, every 6th layer global.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::gemma3::Gemma3Config;
use super::layers::{Activation, RopeScaling};
use super::llama::{LlamaConfig, LlamaVariant};
use super::{Backbone, BackboneConfig};
use crate::gguf::{GgufArch, GgufConfig, GgufFile};
use crate::weights::TensorSource;
use crate::{Error, Result};

impl BackboneConfig {
    /// Builds the configuration of a GGUF model (`file` names it in errors).
    pub fn from_gguf(g: &GgufConfig, file: &str) -> Result<Self> {
        let unsupported = |m: String| {
            Err(Error::Unsupported {
                path: file.into(),
                message: m,
            })
        };
        if let Some(c) = g.attn_logit_softcapping {
            return unsupported(format!(
                "key `{}.attn_logit_softcapping` = {c}: attention soft-capping",
                g.arch.name()
            ));
        }
        let scaling = match &g.rope_scaling {
            None => RopeScaling::Default,
            Some((kind, factor)) if kind == "linear" => RopeScaling::Linear {
                factor: f64::from(*factor),
            },
            Some((kind, _)) => {
                return unsupported(format!(
                    "key `{}.rope.scaling.type` = `{kind}` (none, linear)",
                    g.arch.name()
                ));
            }
        };
        let scaling = (scaling != RopeScaling::Default).then_some(scaling);
        let eps = f64::from(g.rms_eps.unwrap_or(1e-6));
        Ok(match g.arch {
            GgufArch::Llama | GgufArch::Qwen2 => {
                let c = LlamaConfig {
                    model_type: if g.arch == GgufArch::Qwen2 {
                        LlamaVariant::Qwen2
                    } else {
                        LlamaVariant::Llama
                    },
                    vocab_size: g.vocab_size,
                    hidden_size: g.hidden,
                    intermediate_size: g.ff,
                    num_hidden_layers: g.n_layers,
                    num_attention_heads: g.n_heads,
                    num_key_value_heads: Some(g.n_kv_heads),
                    head_dim: Some(g.head_dim),
                    rms_norm_eps: eps,
                    rope_theta: f64::from(g.rope_theta),
                    rope_scaling: scaling,
                    max_position_embeddings: g.context_length,
                    hidden_act: Activation::Silu,
                    attention_bias: None,
                    sliding_window: g.sliding_window,
                    use_sliding_window: Some(false),
                };
                c.validate(file)?;
                BackboneConfig::Llama(c)
            }
            GgufArch::Gemma3 => {
                let c = Gemma3Config {
                    vocab_size: g.vocab_size,
                    hidden_size: g.hidden,
                    intermediate_size: g.ff,
                    num_hidden_layers: g.n_layers,
                    num_attention_heads: g.n_heads,
                    num_key_value_heads: g.n_kv_heads,
                    head_dim: g.head_dim,
                    query_pre_attn_scalar: if g.n_layers == 62 {
                        (g.hidden / g.n_heads) as f64
                    } else {
                        g.head_dim as f64
                    },
                    rms_norm_eps: eps,
                    rope_theta: f64::from(g.rope_theta),
                    rope_local_base_freq: f64::from(g.rope_local_theta.unwrap_or(10_000.0)),
                    rope_scaling: scaling,
                    sliding_window: g.sliding_window.unwrap_or(512),
                    sliding_window_pattern: g.sliding_window_pattern.unwrap_or(6),
                    layer_types: None,
                    hidden_activation: Activation::GeluTanh,
                    max_position_embeddings: g.context_length,
                    attention_bias: false,
                    attn_logit_softcapping: None,
                    use_bidirectional_attention: false,
                };
                c.validate(file)?;
                BackboneConfig::Gemma3(c)
            }
            ref other => {
                return unsupported(format!(
                    "key `general.architecture` = `{}` (GGUF backbones: llama, qwen2, gemma3)",
                    other.name()
                ));
            }
        })
    }
}

impl<B: Backend> Backbone<B> {
    /// Loads a Hugging Face directory or a `.gguf` file, whichever `path` is.
    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<(Self, BackboneConfig)> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::load_hf_dir(path, device)
        } else {
            Self::load_gguf(path, device)
        }
    }

    /// Loads a GGUF file (config from its metadata, weights dequantised to f32).
    pub fn load_gguf(path: impl AsRef<Path>, device: &B::Device) -> Result<(Self, BackboneConfig)> {
        let gguf = GgufFile::open(path)?;
        let config = BackboneConfig::from_gguf(&gguf.config()?, &gguf.describe())?;
        if gguf.contains("rope_freqs.weight") {
            return Err(Error::Unsupported {
                path: gguf.path().to_path_buf(),
                message:
                    "tensor `rope_freqs.weight` (Llama 3.1 RoPE rescaling baked into the file)"
                        .into(),
            });
        }
        let model = config.load(&gguf, device)?;
        Ok((model, config))
    }
}

#[cfg(test)]
mod tests {
    //! Golden checks of the GGUF decoders against transformers (`/work/shared/golden`), skipped
    //! when the model files are absent.
    use std::path::PathBuf;

    use super::*;
    use crate::CpuBackend as B;
    use crate::pooling::{Pooling, cosine};
    use learnrec_eval::assets::cache_dir;

    fn golden(model_dir: &str, golden_file: &str) {
        let path = cache_dir()
            .join("assets")
            .join(model_dir)
            .join("model.gguf");
        let gdir = std::env::var_os("LEARNREC_GOLDEN")
            .map_or_else(|| PathBuf::from("/work/shared/golden"), PathBuf::from);
        let Ok(text) = std::fs::read_to_string(gdir.join(golden_file)) else {
            println!(
                "skipped: golden file {golden_file} not found in {}",
                gdir.display()
            );
            return;
        };
        if !path.exists() {
            println!("skipped: {} not found", path.display());
            return;
        }
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let t = std::time::Instant::now();
        let (model, config) = Backbone::<B>::load_gguf(&path, &Default::default()).unwrap();
        println!(
            "{golden_file}: loaded {:?} in {:.1}s",
            config.arch(),
            t.elapsed().as_secs_f64()
        );
        let items = json["items"].as_array().unwrap();
        let ids: Vec<Vec<u32>> = items
            .iter()
            .map(|it| {
                it["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let batched = model.encode_pooled(&ids, Pooling::Mean, false).unwrap();
        let firsts = model.encode_pooled(&ids, Pooling::First, false).unwrap();
        let mut worst = f64::INFINITY;
        for (i, it) in items.iter().enumerate() {
            let alone = model
                .encode_pooled(std::slice::from_ref(&ids[i]), Pooling::Mean, false)
                .unwrap();
            let mean = floats(&it["mean"]);
            let (ca, cb) = (cosine(&alone[0], &mean), cosine(&batched[i], &mean));
            let cf = cosine(&firsts[i], &floats(&it["first"]));
            println!(
                "{golden_file} item {i} ({} tokens): 1 - cos(mean) alone {:.2e}, batched {:.2e}; 1 - cos(first) {:.2e}",
                ids[i].len(),
                1.0 - ca,
                1.0 - cb,
                1.0 - cf
            );
            worst = worst.min(ca).min(cb);
            assert!(
                ca >= 0.9999 && cb >= 0.9999,
                "{golden_file} item {i}: cosine {ca} / {cb} < 0.9999"
            );
        }
        println!("{golden_file}: worst cos(mean) = {worst:.9}");
    }

    #[test]
    fn gemma3_270m_gguf_matches_transformers() {
        golden("gemma3-270m", "gemma-3-270m-q4_k_m.json");
    }

    #[test]
    fn qwen2_5_1_5b_gguf_matches_transformers() {
        golden("qwen2.5-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.json");
    }
}
