//! Hugging Face model directories as a [`TensorSource`]: `config.json`, `model.safetensors` or
//! sharded `model-0000N-of-0000M.safetensors` listed in `model.safetensors.index.json`, and
//! optionally `tokenizer.json`. Files are memory-mapped; f32, f16 and bf16 tensors are cast to
//! f32 on read.
//!
//! # Name mapping (Hugging Face → learnrec backbone)
//!
//! Tensors keep their Hugging Face names; each backbone reads them as listed here. PyTorch
//! linear weights are `[out, in]` and are transposed once at load to `[in, out]`; projections
//! that share an input are concatenated along the output axis into one matmul.
//!
//! Llama / Mistral / Qwen2 / Baichuan2 ([`crate::backbone::llama`]), `P = model.layers.{i}` (a saved
//! base model has no `model.` prefix; both are accepted):
//! - `model.embed_tokens.weight` `[vocab, hidden]` → `Llama::embed` (kept as is)
//! - `P.input_layernorm.weight` → `LlamaLayer::input_norm`
//! - `P.self_attn.{q,k,v}_proj.{weight,bias}` → `LlamaLayer::qkv` (fused `[hidden, (nh+2nkv)·d]`;
//!   biases only for Qwen2 or `attention_bias`)
//! - Baichuan: `P.self_attn.W_pack.weight` `[3·hidden, hidden]` (q, k, v stacked) → `LlamaLayer::qkv`
//! - `P.self_attn.o_proj.weight` → `LlamaLayer::o`
//! - `P.post_attention_layernorm.weight` → `LlamaLayer::post_norm`
//! - `P.mlp.{gate,up}_proj.weight` → `LlamaLayer::gate_up` (fused `[hidden, 2·inter]`)
//! - `P.mlp.down_proj.weight` → `LlamaLayer::down`
//! - `model.norm.weight` → `Llama::norm`; `lm_head.weight` is not read.
//!
//! Gemma 3 ([`crate::backbone::gemma3`]), prefix `model.` (or `language_model.model.` /
//! `model.language_model.` in multimodal checkpoints, none in a saved base model), `P = layers.{i}`:
//! - `embed_tokens.weight` → `Gemma3::embed` (scaled by `sqrt(hidden)` at run time)
//! - `P.input_layernorm`, `P.post_attention_layernorm`, `P.pre_feedforward_layernorm`,
//!   `P.post_feedforward_layernorm`, `P.self_attn.q_norm`, `P.self_attn.k_norm`, `norm`
//!   (`.weight`, stored as `w`, loaded as `1 + w`) → the matching `RmsNorm`s
//! - `P.self_attn.{q,k,v}_proj.weight` → `Gemma3Layer::qkv` (fused); `P.self_attn.o_proj.weight` → `o`
//! - `P.mlp.{gate,up}_proj.weight` → `gate_up` (fused); `P.mlp.down_proj.weight` → `down`
//!
//! BERT ([`crate::backbone::bert`]), optional prefix `bert.`, `P = encoder.layer.{i}`:
//! - `embeddings.{word,position,token_type}_embeddings.weight` → `Bert::{word,position,token_type}`
//! - `embeddings.LayerNorm.{weight,bias}` (or `.gamma`/`.beta`) → `Bert::embed_norm`
//! - `P.attention.self.{query,key,value}.{weight,bias}` → `BertLayer::qkv` (fused)
//! - `P.attention.output.dense.{weight,bias}` → `attn_out`; `P.attention.output.LayerNorm` → `attn_norm`
//! - `P.intermediate.dense` → `inter`; `P.output.dense` → `out`; `P.output.LayerNorm` → `out_norm`
//! - `pooler.*` and `embeddings.position_ids` are not read.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, Metadata};

use crate::weights::{F32Tensor, TensorSource};
use crate::{Error, Result};

/// One memory-mapped `.safetensors` file with its parsed header.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Bytes before the tensor data (8-byte length + JSON header).
    data_start: usize,
    metadata: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is opened read-only; a model file modified while mapped is outside
        // what this program can guard against (as for every mmap-based loader).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (n, metadata) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            let hint = match e {
                safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                    " (file truncated or padded?)"
                }
                safetensors::SafeTensorError::InvalidHeaderLength
                | safetensors::SafeTensorError::HeaderTooSmall => " (file truncated?)",
                _ => "",
            };
            Error::format(path, "safetensors header", format!("{e}{hint}"))
        })?;
        Ok(Shard {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + n,
            metadata,
        })
    }

    fn read(&self, name: &str) -> Result<Option<F32Tensor>> {
        let Some(info) = self.metadata.info(name) else {
            return Ok(None);
        };
        let (start, end) = info.data_offsets;
        let bytes = self
            .mmap
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| {
                Error::format(
                    &self.path,
                    format!("tensor `{name}`"),
                    "data lies outside the file",
                )
            })?;
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::format(
                    &self.path,
                    format!("tensor `{name}`"),
                    format!("dtype {other:?} is not supported (F32, F16, BF16)"),
                ));
            }
        };
        let expect: usize = info.shape.iter().product();
        if data.len() != expect {
            return Err(Error::format(
                &self.path,
                format!("tensor `{name}`"),
                format!("{} values for shape {:?}", data.len(), info.shape),
            ));
        }
        Ok(Some(F32Tensor {
            shape: info.shape.clone(),
            data,
        }))
    }
}

/// A Hugging Face model directory.
pub struct HfDir {
    dir: PathBuf,
    config: serde_json::Value,
    shards: Vec<Shard>,
    /// Tensor name → shard index.
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for HfDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfDir")
            .field("dir", &self.dir)
            .field("shards", &self.shards.len())
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl HfDir {
    /// Opens `dir`: parses `config.json` and maps every safetensors file (single file, or the
    /// shards named by `model.safetensors.index.json`, or else every `*.safetensors` in `dir`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::io(
                &dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a model directory"),
            ));
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::format(&config_path, format!("line {}", e.line()), e.to_string())
        })?;

        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let files: Vec<PathBuf> = if index_path.exists() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::format(&index_path, format!("line {}", e.line()), e.to_string())
            })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| {
                    Error::format(
                        &index_path,
                        "field `weight_map`",
                        "missing or not an object",
                    )
                })?;
            let mut files: Vec<String> = Vec::new();
            for (name, f) in map {
                let f = f.as_str().ok_or_else(|| {
                    Error::format(&index_path, format!("weight_map.{name}"), "not a file name")
                })?;
                if !files.iter().any(|x| x == f) {
                    files.push(f.to_string());
                }
            }
            files.sort();
            files.into_iter().map(|f| dir.join(f)).collect()
        } else if single.exists() {
            vec![single]
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| Error::io(&dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(Error::io(
                    dir.join("model.safetensors"),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no *.safetensors weights in the directory",
                    ),
                ));
            }
            found
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let shard = Shard::open(f)?;
            for name in shard.metadata.offset_keys() {
                index.insert(name, i);
            }
            shards.push(shard);
        }
        Ok(HfDir {
            dir,
            config,
            shards,
            index,
        })
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    /// Path of `config.json`, for error messages.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `tokenizer.json` if the directory has one.
    pub fn tokenizer_path(&self) -> Option<PathBuf> {
        Some(self.dir.join("tokenizer.json")).filter(|p| p.exists())
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.index.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

impl TensorSource for HfDir {
    fn tensor(&self, name: &str) -> Result<F32Tensor> {
        let Some(&i) = self.index.get(name) else {
            return Err(Error::format(
                &self.dir,
                format!("tensor `{name}`"),
                "not found in any safetensors file",
            ));
        };
        self.shards[i].read(name)?.ok_or_else(|| {
            Error::format(
                &self.shards[i].path,
                format!("tensor `{name}`"),
                "not found",
            )
        })
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn tensor_shaped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        let t = self.tensor(name)?;
        if t.shape != shape {
            let file = self
                .index
                .get(name)
                .map_or(self.dir.clone(), |&i| self.shards[i].path.clone());
            return Err(Error::format(
                file,
                format!("tensor `{name}`"),
                format!("shape {:?}, expected {:?} from config.json", t.shape, shape),
            ));
        }
        Ok(t)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Tensors held in memory (tests, converted weights).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    /// What to call this source in errors.
    pub name: String,
    /// The tensors by Hugging Face name.
    pub tensors: HashMap<String, F32Tensor>,
}

impl MemorySource {
    /// An empty source.
    pub fn new(name: impl Into<String>) -> Self {
        MemorySource {
            name: name.into(),
            tensors: HashMap::new(),
        }
    }

    /// Adds a tensor.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.insert(name.into(), F32Tensor { shape, data });
    }
}

impl TensorSource for MemorySource {
    fn tensor(&self, name: &str) -> Result<F32Tensor> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| Error::format(&self.name, format!("tensor `{name}`"), "not found"))
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
