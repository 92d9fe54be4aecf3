//! Frozen backbones for CEG (content extraction): base models that map token ids to the last
//! hidden states `[batch, seq, hidden]` (after the final norm, no LM head), which
//! [`crate::pooling`] turns into one content embedding per item.
//!
//! - [`llama`]: Llama, Mistral, Qwen2, Baichuan2-7B (the paper's backbone);
//! - [`gemma3`]: Gemma 3 text models;
//! - [`bert`]: BERT encoders such as all-MiniLM-L6-v2.
//!
//! [`Backbone`] dispatches over the three; [`BackboneConfig::from_hf_json`] picks the
//! architecture from `config.json`'s `model_type`, and [`Backbone::load_hf_dir`] loads a Hugging
//! Face directory in one call. Any other [`TensorSource`] (e.g. a GGUF file) loads through
//! [`BackboneConfig::load`].

pub mod bert;
pub mod from_gguf;
pub mod gemma3;
pub mod layers;
pub mod llama;

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use bert::{Bert, BertConfig};
pub use gemma3::{Gemma3, Gemma3Config};
pub use layers::Activation;
pub use llama::{Llama, LlamaConfig, LlamaVariant};

use crate::loader::HfDir;
use crate::pooling::{Pooling, l2_normalize};
use crate::weights::TensorSource;
use crate::{Error, Result};

/// Supported architectures, by Hugging Face `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `llama`.
    Llama,
    /// `mistral`.
    Mistral,
    /// `qwen2`.
    Qwen2,
    /// `baichuan` (Baichuan2-7B).
    Baichuan,
    /// `gemma3_text` (or `gemma3` with a `text_config`).
    #[serde(alias = "gemma3_text")]
    Gemma3,
    /// `bert`.
    Bert,
}

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 6] = [
        Arch::Llama,
        Arch::Mistral,
        Arch::Qwen2,
        Arch::Baichuan,
        Arch::Gemma3,
        Arch::Bert,
    ];

    /// The architecture of a `model_type` string, if supported.
    pub fn from_model_type(model_type: &str) -> Option<Arch> {
        Some(match model_type {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            "baichuan" => Arch::Baichuan,
            "gemma3" | "gemma3_text" => Arch::Gemma3,
            "bert" => Arch::Bert,
            _ => return None,
        })
    }

    /// Whether the model attends causally (decoder) rather than bidirectionally (encoder).
    pub fn is_decoder(self) -> bool {
        self != Arch::Bert
    }
}

/// The configuration of any supported backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BackboneConfig {
    /// Llama family.
    Llama(LlamaConfig),
    /// Gemma 3.
    Gemma3(Gemma3Config),
    /// BERT.
    Bert(BertConfig),
}

impl BackboneConfig {
    /// Reads the architecture from `model_type` and parses the rest accordingly. `file` names
    /// the `config.json` in errors.
    pub fn from_hf_json(json: &serde_json::Value, file: &str) -> Result<Self> {
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::Invalid(format!("{file}: field `model_type` is missing")))?;
        let arch = Arch::from_model_type(model_type).ok_or_else(|| Error::Unsupported {
            path: file.into(),
            message: format!(
                "field `model_type` = `{model_type}`: supported are llama, mistral, qwen2, baichuan, gemma3_text, gemma3, bert"
            ),
        })?;
        Ok(match arch {
            Arch::Llama | Arch::Mistral | Arch::Qwen2 | Arch::Baichuan => {
                BackboneConfig::Llama(LlamaConfig::from_hf_json(json, file)?)
            }
            Arch::Gemma3 => BackboneConfig::Gemma3(Gemma3Config::from_hf_json(json, file)?),
            Arch::Bert => BackboneConfig::Bert(BertConfig::from_hf_json(json, file)?),
        })
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        match self {
            BackboneConfig::Llama(c) => match c.model_type {
                LlamaVariant::Llama => Arch::Llama,
                LlamaVariant::Mistral => Arch::Mistral,
                LlamaVariant::Qwen2 => Arch::Qwen2,
                LlamaVariant::Baichuan => Arch::Baichuan,
            },
            BackboneConfig::Gemma3(_) => Arch::Gemma3,
            BackboneConfig::Bert(_) => Arch::Bert,
        }
    }

    /// Width of the hidden states (the content embedding's dimension).
    pub fn hidden_size(&self) -> usize {
        match self {
            BackboneConfig::Llama(c) => c.hidden_size,
            BackboneConfig::Gemma3(c) => c.hidden_size,
            BackboneConfig::Bert(c) => c.hidden_size,
        }
    }

    /// A randomly initialised model of this configuration.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Backbone<B> {
        match self {
            BackboneConfig::Llama(c) => Backbone::Llama(c.init(device)),
            BackboneConfig::Gemma3(c) => Backbone::Gemma3(c.init(device)),
            BackboneConfig::Bert(c) => Backbone::Bert(c.init(device)),
        }
    }

    /// Loads the weights from `src` (Hugging Face tensor names and PyTorch shapes).
    pub fn load<B: Backend>(
        &self,
        src: &dyn TensorSource,
        device: &B::Device,
    ) -> Result<Backbone<B>> {
        Ok(match self {
            BackboneConfig::Llama(c) => Backbone::Llama(c.load(src, device)?),
            BackboneConfig::Gemma3(c) => Backbone::Gemma3(c.load(src, device)?),
            BackboneConfig::Bert(c) => Backbone::Bert(c.load(src, device)?),
        })
    }
}

/// A loaded frozen backbone.
#[derive(Debug)]
pub enum Backbone<B: Backend> {
    /// Llama family.
    Llama(Llama<B>),
    /// Gemma 3.
    Gemma3(Gemma3<B>),
    /// BERT.
    Bert(Bert<B>),
}

impl<B: Backend> Backbone<B> {
    /// Loads a Hugging Face directory (`config.json` + safetensors).
    pub fn load_hf_dir(
        dir: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<(Self, BackboneConfig)> {
        let hf = HfDir::open(dir)?;
        let config =
            BackboneConfig::from_hf_json(hf.config(), &hf.config_path().display().to_string())?;
        let model = config.load(&hf, device)?;
        Ok((model, config))
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        match self {
            Backbone::Llama(m) => m.hidden_size(),
            Backbone::Gemma3(m) => m.hidden_size(),
            Backbone::Bert(m) => m.hidden_size(),
        }
    }

    /// Vocabulary size (valid ids are `0..vocab_size`).
    pub fn vocab_size(&self) -> usize {
        match self {
            Backbone::Llama(m) => m.vocab_size(),
            Backbone::Gemma3(m) => m.vocab_size(),
            Backbone::Bert(m) => m.vocab_size(),
        }
    }

    /// Longest input accepted, if bounded (BERT's position table).
    pub fn max_len(&self) -> Option<usize> {
        match self {
            Backbone::Bert(m) => Some(m.max_len()),
            _ => None,
        }
    }

    /// Last hidden states after the final norm.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match self {
            Backbone::Llama(m) => m.forward(ids, mask),
            Backbone::Gemma3(m) => m.forward(ids, mask),
            Backbone::Bert(m) => m.forward(ids, mask),
        }
    }

    /// The padded reference computation with Burn tensor ops (masked attention over the whole
    /// `[batch, seq]`); [`Self::forward`] runs packed (no padding) and gives the same values at
    /// real positions.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]` token ids, right-padded
    /// - `mask`: `[batch, seq]`, 1 for real tokens, 0 for padding
    /// - output: `[batch, seq, hidden]`
    pub fn forward_padded(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        match self {
            Backbone::Llama(m) => m.forward_padded(ids, mask),
            Backbone::Gemma3(m) => m.forward_padded(ids, mask),
            Backbone::Bert(m) => m.forward_padded(ids, mask),
        }
    }

    /// Embeds a batch of token id sequences: pads them on the right, runs the backbone, pools
    /// and optionally L2-normalises (LEARN: mean pooling, normalised). Sequences must be
    /// non-empty, use ids below [`Self::vocab_size`] and fit [`Self::max_len`].
    pub fn encode_pooled(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>> {
        self.encode_with(batch, pooling, normalize, false)
    }

    /// [`Self::encode_pooled`] through [`Self::forward_padded`] (the reference path, for
    /// checks and benchmarks).
    pub fn encode_pooled_padded(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>> {
        self.encode_with(batch, pooling, normalize, true)
    }

    fn encode_with(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        padded: bool,
    ) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let vocab = self.vocab_size();
        for (i, seq) in batch.iter().enumerate() {
            if seq.is_empty() {
                return Err(Error::Invalid(format!(
                    "sequence {i} of the batch is empty"
                )));
            }
            if let Some(&bad) = seq.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::Invalid(format!(
                    "sequence {i}: token id {bad} is outside the vocabulary (size {vocab})"
                )));
            }
            if let Some(max) = self.max_len()
                && seq.len() > max
            {
                return Err(Error::Invalid(format!(
                    "sequence {i}: {} tokens, the model accepts at most {max}",
                    seq.len()
                )));
            }
        }
        let device = self.device();
        let (ids, mask) = pad_batch::<B>(batch, &device);
        let hidden = if padded {
            self.forward_padded(ids, mask.clone())
        } else {
            self.forward(ids, mask.clone())
        };
        let mut pooled = pooling.pool(hidden, mask);
        if normalize {
            pooled = l2_normalize(pooled);
        }
        let h = pooled.dims()[1];
        let data: Vec<f32> = pooled
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Invalid(format!("reading pooled embeddings: {e:?}")))?;
        Ok(data.chunks_exact(h).map(<[f32]>::to_vec).collect())
    }

    fn device(&self) -> B::Device {
        use burn::module::Module;
        let devices = match self {
            Backbone::Llama(m) => m.devices(),
            Backbone::Gemma3(m) => m.devices(),
            Backbone::Bert(m) => m.devices(),
        };
        devices.into_iter().next().unwrap_or_default()
    }
}

/// Builds ids and mask for a batch of sequences, right-padding with id 0.
///
/// # Shapes
/// - output: (`[batch, max_len]` ids, `[batch, max_len]` mask with 1 = real token)
pub fn pad_batch<B: Backend>(
    batch: &[Vec<u32>],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let s = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![0i64; batch.len() * s];
    let mut mask = vec![0i64; batch.len() * s];
    for (i, seq) in batch.iter().enumerate() {
        for (j, &t) in seq.iter().enumerate() {
            ids[i * s + j] = i64::from(t);
            mask[i * s + j] = 1;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [batch.len(), s]), device),
        Tensor::from_data(TensorData::new(mask, [batch.len(), s]), device),
    )
}
