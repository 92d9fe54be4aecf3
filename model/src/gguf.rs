//! GGUF files (llama.cpp's model format, versions 2 and 3): header, metadata, tensor infos, and
//! lazily read tensor data via `memmap2`.
//!
//! # Reading defensively
//! Only the header is parsed on [`GgufFile::open`]; tensor bytes stay in the memory map until a
//! tensor is asked for. Every count, string length, array length, dimension and offset read
//! from the file is checked against the bytes that remain (a hostile file cannot make us
//! allocate more than it could describe), tensor data must lie inside the file, and every
//! metadata read returns a `Result` whose error names the file and the key or tensor.
//!
//! # Hugging Face ⇄ GGUF tensor names (the [`TensorSource`] implementation)
//! Backbones ask for Hugging Face names; this file maps them onto llama.cpp's names:
//!
//! | Hugging Face                                         | GGUF                         |
//! |------------------------------------------------------|------------------------------|
//! | `model.embed_tokens.weight`                          | `token_embd.weight`          |
//! | `model.norm.weight`                                  | `output_norm.weight`         |
//! | `lm_head.weight`                                     | `output.weight`              |
//! | `model.layers.N.self_attn.q_proj.{weight,bias}`      | `blk.N.attn_q.{weight,bias}` |
//! | `model.layers.N.self_attn.k_proj.{weight,bias}`      | `blk.N.attn_k.{weight,bias}` |
//! | `model.layers.N.self_attn.v_proj.{weight,bias}`      | `blk.N.attn_v.{weight,bias}` |
//! | `model.layers.N.self_attn.o_proj.{weight,bias}`      | `blk.N.attn_output.{weight,bias}` |
//! | `model.layers.N.self_attn.q_norm.weight`             | `blk.N.attn_q_norm.weight`   |
//! | `model.layers.N.self_attn.k_norm.weight`             | `blk.N.attn_k_norm.weight`   |
//! | `model.layers.N.mlp.gate_proj.weight`                | `blk.N.ffn_gate.weight`      |
//! | `model.layers.N.mlp.up_proj.weight`                  | `blk.N.ffn_up.weight`        |
//! | `model.layers.N.mlp.down_proj.weight`                | `blk.N.ffn_down.weight`      |
//! | `model.layers.N.input_layernorm.weight`              | `blk.N.attn_norm.weight`     |
//! | `model.layers.N.post_attention_layernorm.weight` (Llama, Qwen2) | `blk.N.ffn_norm.weight` |
//! | `model.layers.N.post_attention_layernorm.weight` (Gemma 2/3) | `blk.N.post_attention_norm.weight` |
//! | `model.layers.N.pre_feedforward_layernorm.weight` (Gemma 2/3) | `blk.N.ffn_norm.weight` |
//! | `model.layers.N.post_feedforward_layernorm.weight` (Gemma 2/3) | `blk.N.post_ffw_norm.weight` |
//!
//! A name that is not in this map is looked up verbatim, so GGUF names work too.
//!
//! # Values: what is undone on read
//! - **Shapes** are reversed: GGUF lists dimensions fastest-first (`[in, out]`), PyTorch
//!   slowest-first (`[out, in]`); the bytes are already row-major `[out, in]`, so only the shape
//!   list is reversed.
//! - **Llama Q/K permutation.** llama.cpp's `convert_hf_to_gguf.py` permutes the rows of
//!   `q_proj` / `k_proj` of `llama`-architecture models (`LlamaModel.permute`: per head,
//!   `reshape(2, head_dim/2).swapaxes`) so that its RoPE can rotate adjacent pairs. Hugging Face's
//!   RoPE rotates halves, so for `general.architecture = llama` we apply the inverse permutation
//!   (with `head_count` for Q and `head_count_kv` for K). Qwen2 and Gemma3 are converted without
//!   the permutation; nothing is undone for them.
//! - **Gemma norms.** Gemma's RMSNorm computes `x · (1 + w)`. For `gemma`, `gemma2` and `gemma3`
//!   the converter stores `w + 1` for every tensor whose name ends in `norm.weight` (in
//!   `Gemma3Model.modify_tensors`: `data_torch = data_torch + self.norm_shift`, q/k norms
//!   included), so that ggml can multiply by the stored weight. We subtract 1 on read, so a
//!   GGUF-loaded Gemma returns Hugging Face's `w` and the backbone uses **`1 + w` for both
//!   sources**. Checked on the Gemma-3-270M file (`real_files_parse` in `tests/gguf.rs`:
//!   returned = stored − 1); numerically, that the backbone with `1 + w` reproduces golden/
//!   `mean` is the backbone's test.

use crate::quant::{self, GgmlType};
use crate::weights::{F32Tensor, TensorSource};
use crate::{Error, Result};
use memmap2::Mmap;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

/// `GGUF` as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's maximum number of tensor dimensions.
const MAX_DIMS: u32 = 4;
/// Maximum nesting of metadata arrays (GGUF writers produce at most one level).
const MAX_ARRAY_DEPTH: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF value type name, for errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }
    /// Any non-negative integer value as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// Any integer value as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v as i64),
            Value::U16(v) => Some(v as i64),
            Value::U32(v) => Some(v as i64),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }
    /// A float (or integer) value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as stored (GGUF order: fastest-varying first).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Number of elements.
    pub n_elements: usize,
    /// Bytes of data.
    pub n_bytes: usize,
}

impl TensorInfo {
    /// The shape in PyTorch order (slowest first): `[out, in]` for a linear weight.
    pub fn torch_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// Model architecture named by `general.architecture`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GgufArch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    Gemma3,
    Bert,
    /// Any other architecture string (parsed, not supported by a backbone here).
    Other(String),
}

impl GgufArch {
    /// Parses `general.architecture`.
    pub fn parse(s: &str) -> Self {
        match s {
            "llama" => GgufArch::Llama,
            "qwen2" => GgufArch::Qwen2,
            "qwen3" => GgufArch::Qwen3,
            "gemma" => GgufArch::Gemma,
            "gemma2" => GgufArch::Gemma2,
            "gemma3" => GgufArch::Gemma3,
            "bert" => GgufArch::Bert,
            other => GgufArch::Other(other.to_owned()),
        }
    }
    /// The metadata key prefix (`qwen2`, …).
    pub fn name(&self) -> &str {
        match self {
            GgufArch::Llama => "llama",
            GgufArch::Qwen2 => "qwen2",
            GgufArch::Qwen3 => "qwen3",
            GgufArch::Gemma => "gemma",
            GgufArch::Gemma2 => "gemma2",
            GgufArch::Gemma3 => "gemma3",
            GgufArch::Bert => "bert",
            GgufArch::Other(s) => s,
        }
    }
    /// Gemma family: norms stored as `1 + w`, extra post-norms.
    pub fn is_gemma(&self) -> bool {
        matches!(self, GgufArch::Gemma | GgufArch::Gemma2 | GgufArch::Gemma3)
    }
}

/// A model configuration summarised from GGUF metadata (`{arch}.*` keys), enough to build a
/// decoder backbone. Field docs name the key each value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufConfig {
    /// `general.architecture`.
    pub arch: GgufArch,
    /// `{arch}.block_count`.
    pub n_layers: usize,
    /// `{arch}.embedding_length`.
    pub hidden: usize,
    /// `{arch}.attention.head_count`.
    pub n_heads: usize,
    /// `{arch}.attention.head_count_kv` (default: `n_heads`).
    pub n_kv_heads: usize,
    /// `{arch}.attention.key_length` (default: `hidden / n_heads`).
    pub head_dim: usize,
    /// `{arch}.attention.value_length` (default: `head_dim`).
    pub value_head_dim: usize,
    /// `{arch}.feed_forward_length`.
    pub ff: usize,
    /// `{arch}.rope.freq_base` (default 10000).
    pub rope_theta: f32,
    /// RoPE base of sliding-window (local) layers. Gemma3: 10000, which llama.cpp hard-codes
    /// (`rope_freq_base_train_swa`); GGUF does not store it. `None` for other archs.
    pub rope_local_theta: Option<f32>,
    /// `{arch}.rope.scaling.type` and `.factor`, when present and not `none`.
    pub rope_scaling: Option<(String, f32)>,
    /// `{arch}.attention.layer_norm_rms_epsilon` (RMSNorm models).
    pub rms_eps: Option<f32>,
    /// `{arch}.attention.layer_norm_epsilon` (LayerNorm models, e.g. BERT).
    pub layer_norm_eps: Option<f32>,
    /// Rows of `token_embd.weight` (falls back to `{arch}.vocab_size`, then the token list).
    pub vocab_size: usize,
    /// `{arch}.context_length`.
    pub context_length: usize,
    /// `{arch}.attention.sliding_window`.
    pub sliding_window: Option<usize>,
    /// Every `pattern`-th layer is global (full attention), the others sliding. Gemma3: 6, as
    /// llama.cpp hard-codes (`LLAMA_SWA_TYPE_STANDARD`, pattern 6); GGUF does not store it.
    pub sliding_window_pattern: Option<usize>,
    /// `{arch}.attn_logit_softcapping`.
    pub attn_logit_softcapping: Option<f32>,
    /// `{arch}.final_logit_softcapping`.
    pub final_logit_softcapping: Option<f32>,
    /// No `output.weight`: the LM head shares the token embedding.
    pub tie_word_embeddings: bool,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_token_id: Option<u32>,
}

/// An open GGUF file: parsed header, memory-mapped data.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    data_start: usize,
    alignment: u64,
    arch: Option<GgufArch>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn err(&self, what: &str, message: impl Into<String>) -> Error {
        Error::format(self.path, what, message)
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(
                what,
                format!(
                    "file truncated: needs {n} bytes at offset {}, only {} remain",
                    self.pos,
                    self.remaining()
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    /// A length/count, checked to fit in the remaining bytes at `min_size` bytes per element.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let max = (self.remaining() / min_size.max(1)) as u64;
        if n > max {
            return Err(self.err(
                what,
                format!(
                    "count {n} cannot fit in the {} bytes that remain in the file",
                    self.remaining()
                ),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.err(what, format!("string is not UTF-8: {e}")))
    }
    fn value(&mut self, ty: u32, what: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>(what)?[0]),
            1 => Value::I8(self.arr::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.arr(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.arr(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.arr(what)?)),
            7 => match self.arr::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.err(what, format!("bool byte {b} is neither 0 nor 1"))),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(
                        self.err(what, format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"))
                    );
                }
                let ety = self.u32(what)?;
                let min = match ety {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4 | 5 | 6 => 4,
                    10..=12 => 8,
                    8 => 8,
                    9 => 12,
                    other => {
                        return Err(self.err(what, format!("unknown array element type {other}")));
                    }
                };
                let n = self.count(what, min)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, what, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.arr(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.arr(what)?)),
            other => return Err(self.err(what, format!("unknown value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Opens and parses the header of a GGUF file; tensor data is read lazily.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: the map is read-only; a file modified while mapped could change the bytes we
        // read, which at worst yields wrong values or a format error (every read is
        // bounds-checked against the map's length, fixed at map time).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
        Self::parse(path, mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let mut c = Cursor {
            buf: &mmap[..],
            pos: 0,
            path: &path,
        };
        let magic = c.u32("header")?;
        if magic != MAGIC {
            return Err(Error::format(
                &path,
                "header",
                format!("not a GGUF file (magic {magic:#010x}, expected \"GGUF\")"),
            ));
        }
        let version = c.u32("header")?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported {
                path: path.clone(),
                message: format!("GGUF version {version} (supported: 2, 3)"),
            });
        }
        // Minimum sizes: a tensor info is ≥ 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset);
        // a key/value is ≥ 8 (key len) + 4 (type) + 1 (value).
        let n_tensors = c.count("header: tensor count", 24)?;
        let n_kv = c.count("header: metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}"))?;
            let ty = c.u32(&format!("metadata `{key}`"))?;
            let value = c.value(ty, &format!("metadata `{key}`"), 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(Error::format(
                    &path,
                    format!("metadata `{key}`"),
                    "duplicate key",
                ));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
            Some(v) => {
                return Err(Error::format(
                    &path,
                    "metadata `general.alignment`",
                    format!("must be a u32 power of two, found {v:?}"),
                ));
            }
        };
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor info #{i}"))?;
            let what = format!("tensor `{name}`");
            let n_dims = c.u32(&what)?;
            if n_dims > MAX_DIMS {
                return Err(Error::format(
                    &path,
                    &what,
                    format!("{n_dims} dimensions (at most {MAX_DIMS})"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&what)?);
            }
            let ty = GgmlType::from_id(c.u32(&what)?);
            let offset = c.u64(&what)?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    Error::format(
                        &path,
                        &what,
                        format!("element count of dims {dims:?} overflows"),
                    )
                })?;
            let n_bytes = match ty.block_layout() {
                None => 0, // unknown type: size unknown; reading it is an `Unsupported` error
                Some((bs, _)) => {
                    if dims.first().is_some_and(|&d0| d0 % bs as u64 != 0) {
                        return Err(Error::format(
                            &path,
                            &what,
                            format!(
                                "first dimension {} is not a multiple of the {} block size {bs}",
                                dims[0],
                                ty.name()
                            ),
                        ));
                    }
                    ty.byte_size(n_elements).ok_or_else(|| {
                        Error::format(
                            &path,
                            &what,
                            format!("{n_elements} elements of {} overflow", ty.name()),
                        )
                    })?
                }
            };
            if offset % alignment != 0 {
                return Err(Error::format(
                    &path,
                    &what,
                    format!("data offset {offset} is not a multiple of the alignment {alignment}"),
                ));
            }
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(Error::format(&path, &what, "duplicate tensor name"));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                n_elements,
                n_bytes,
            });
        }
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = mmap.len() as u64;
        for t in &tensors {
            let end = data_start
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes as u64));
            if end.is_none_or(|e| e > file_len) {
                return Err(Error::format(
                    &path,
                    format!("tensor `{}`", t.name),
                    format!(
                        "data [{} + {}, {} bytes) lies outside the file ({file_len} bytes): truncated file?",
                        data_start, t.offset, t.n_bytes
                    ),
                ));
            }
        }
        let arch = match metadata.get("general.architecture") {
            Some(Value::String(s)) => Some(GgufArch::parse(s)),
            _ => None,
        };
        let data_start = data_start as usize;
        Ok(GgufFile {
            path,
            mmap,
            version,
            metadata,
            tensors,
            index,
            data_start,
            alignment,
            arch,
        })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// All metadata, by key.
    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }
    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The info of GGUF tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }
    /// `general.architecture`, if present.
    pub fn arch(&self) -> Option<&GgufArch> {
        self.arch.as_ref()
    }

    fn key_err(&self, key: &str, message: impl Into<String>) -> Error {
        Error::format(&self.path, format!("metadata `{key}`"), message)
    }
    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
    fn require(&self, key: &str) -> Result<&Value> {
        self.metadata
            .get(key)
            .ok_or_else(|| self.key_err(key, "missing"))
    }
    /// A non-negative integer (any integer type).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| {
            self.key_err(
                key,
                format!("expected a non-negative integer, found {}", v.type_name()),
            )
        })
    }
    /// A non-negative integer as usize.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self.get_u64(key)?;
        usize::try_from(v).map_err(|_| self.key_err(key, format!("{v} does not fit in usize")))
    }
    /// A u32 (any integer type in range).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.get_u64(key)?;
        u32::try_from(v).map_err(|_| self.key_err(key, format!("{v} does not fit in u32")))
    }
    /// A float (f32, f64, or an integer).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| self.key_err(key, format!("expected a number, found {}", v.type_name())))
    }
    /// A bool.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(self.key_err(key, format!("expected a bool, found {}", v.type_name()))),
        }
    }
    /// A string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.key_err(key, format!("expected a string, found {}", v.type_name()))),
        }
    }
    /// An array.
    pub fn get_array(&self, key: &str) -> Result<&[Value]> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(self.key_err(key, format!("expected an array, found {}", v.type_name()))),
        }
    }
    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.get_array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(self.key_err(
                    key,
                    format!("element {i}: expected a string, found {}", v.type_name()),
                )),
            })
            .collect()
    }
    /// An array of numbers as f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.get_array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64().map(|x| x as f32).ok_or_else(|| {
                    self.key_err(
                        key,
                        format!("element {i}: expected a number, found {}", v.type_name()),
                    )
                })
            })
            .collect()
    }
    /// An array of integers as i64.
    pub fn get_i64_array(&self, key: &str) -> Result<Vec<i64>> {
        self.get_array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_i64().ok_or_else(|| {
                    self.key_err(
                        key,
                        format!("element {i}: expected an integer, found {}", v.type_name()),
                    )
                })
            })
            .collect()
    }
    /// `Ok(None)` when `key` is absent, else the typed value (a present key of the wrong type is
    /// an error).
    pub fn opt<T>(&self, key: &str, f: impl FnOnce(&Self, &str) -> Result<T>) -> Result<Option<T>> {
        if self.metadata.contains_key(key) {
            f(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The raw bytes of a tensor (inside the memory map).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = self.data_start + info.offset as usize;
        &self.mmap[start..start + info.n_bytes]
    }

    /// Reads GGUF tensor `name` as f32, shape in PyTorch order, values exactly as stored (no
    /// Llama un-permutation, no Gemma norm shift: see [`TensorSource::tensor`] for those).
    pub fn read_raw(&self, name: &str) -> Result<F32Tensor> {
        let info = self.tensor_info(name).ok_or_else(|| {
            Error::format(&self.path, format!("tensor `{name}`"), "not in the file")
        })?;
        let data = quant::dequantize(
            info.ty,
            self.tensor_bytes(info),
            info.n_elements,
            &self.path,
            name,
        )?;
        Ok(F32Tensor {
            shape: info.torch_shape(),
            data,
        })
    }

    /// Summarises the model configuration from `{arch}.*` metadata.
    pub fn config(&self) -> Result<GgufConfig> {
        let arch = self
            .arch
            .clone()
            .ok_or_else(|| self.key_err("general.architecture", "missing"))?;
        let a = arch.name().to_owned();
        let k = |s: &str| format!("{a}.{s}");
        let n_heads = self.get_usize(&k("attention.head_count"))?;
        let hidden = self.get_usize(&k("embedding_length"))?;
        if n_heads == 0 {
            return Err(self.key_err(&k("attention.head_count"), "is 0"));
        }
        let n_kv_heads = match self.get(&k("attention.head_count_kv")) {
            None => n_heads,
            Some(Value::Array(v)) => {
                // Per-layer counts: accept only if all equal.
                let first = v.first().and_then(Value::as_u64);
                match first {
                    Some(f) if v.iter().all(|x| x.as_u64() == Some(f)) => f as usize,
                    _ => {
                        return Err(self.key_err(
                            &k("attention.head_count_kv"),
                            "per-layer KV head counts that differ are not supported",
                        ));
                    }
                }
            }
            Some(_) => self.get_usize(&k("attention.head_count_kv"))?,
        };
        let head_dim = self
            .opt(&k("attention.key_length"), Self::get_usize)?
            .unwrap_or(hidden / n_heads);
        let value_head_dim = self
            .opt(&k("attention.value_length"), Self::get_usize)?
            .unwrap_or(head_dim);
        let rope_scaling = match self.opt(&k("rope.scaling.type"), |s, key| {
            s.get_str(key).map(str::to_owned)
        })? {
            Some(t) if t != "none" => {
                let f = self
                    .opt(&k("rope.scaling.factor"), Self::get_f32)?
                    .unwrap_or(1.0);
                Some((t, f))
            }
            _ => None,
        };
        let vocab_size = match self.tensor_info("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
            _ => match self.opt(&k("vocab_size"), Self::get_usize)? {
                Some(v) => v,
                None => self.get_array("tokenizer.ggml.tokens")?.len(),
            },
        };
        let is_gemma3 = arch == GgufArch::Gemma3;
        Ok(GgufConfig {
            n_layers: self.get_usize(&k("block_count"))?,
            hidden,
            n_heads,
            n_kv_heads,
            head_dim,
            value_head_dim,
            ff: self.get_usize(&k("feed_forward_length"))?,
            rope_theta: self
                .opt(&k("rope.freq_base"), Self::get_f32)?
                .unwrap_or(10_000.0),
            rope_local_theta: is_gemma3.then_some(10_000.0),
            rope_scaling,
            rms_eps: self.opt(&k("attention.layer_norm_rms_epsilon"), Self::get_f32)?,
            layer_norm_eps: self.opt(&k("attention.layer_norm_epsilon"), Self::get_f32)?,
            vocab_size,
            context_length: self.get_usize(&k("context_length"))?,
            sliding_window: self.opt(&k("attention.sliding_window"), Self::get_usize)?,
            sliding_window_pattern: is_gemma3.then_some(6),
            attn_logit_softcapping: self.opt(&k("attn_logit_softcapping"), Self::get_f32)?,
            final_logit_softcapping: self.opt(&k("final_logit_softcapping"), Self::get_f32)?,
            tie_word_embeddings: self.tensor_info("output.weight").is_none(),
            bos_token_id: self.opt("tokenizer.ggml.bos_token_id", Self::get_u32)?,
            eos_token_id: self.opt("tokenizer.ggml.eos_token_id", Self::get_u32)?,
            pad_token_id: self.opt("tokenizer.ggml.padding_token_id", Self::get_u32)?,
            arch,
        })
    }

    /// The GGUF name of Hugging Face tensor `hf` for this file's architecture (see the module
    /// docs), or `None` when `hf` is not a mapped name.
    pub fn gguf_name(&self, hf: &str) -> Option<String> {
        hf_to_gguf(hf, self.arch.as_ref())
    }

    /// Undoes llama.cpp's Q/K row permutation in place (rows of `t`, per head).
    fn unpermute_rows(t: &mut F32Tensor, n_head: usize, path: &Path, name: &str) -> Result<()> {
        let rows = t.shape.first().copied().unwrap_or(0);
        let cols: usize = t.shape.iter().skip(1).product();
        if n_head == 0 || rows % (2 * n_head) != 0 {
            return Err(Error::format(
                path,
                format!("tensor `{name}`"),
                format!(
                    "{rows} rows cannot be split into {n_head} heads of pairs (Llama Q/K un-permutation)"
                ),
            ));
        }
        let hd = rows / n_head;
        let half = hd / 2;
        let mut out = vec![0f32; t.data.len()];
        for h in 0..n_head {
            for tpair in 0..2 {
                for i in 0..half {
                    let hf_row = h * hd + tpair * half + i;
                    let gg_row = h * hd + 2 * i + tpair;
                    out[hf_row * cols..(hf_row + 1) * cols]
                        .copy_from_slice(&t.data[gg_row * cols..(gg_row + 1) * cols]);
                }
            }
        }
        t.data = out;
        Ok(())
    }
}

/// Maps a Hugging Face tensor name onto its GGUF name (see the module docs).
pub fn hf_to_gguf(hf: &str, arch: Option<&GgufArch>) -> Option<String> {
    let gemma = arch.is_some_and(GgufArch::is_gemma);
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, rest) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let (module, suffix) = match rest.rsplit_once('.') {
        Some((m, s @ ("weight" | "bias"))) => (m, s),
        _ => return None,
    };
    let g = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" if gemma => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        _ => return None,
    };
    Some(format!("blk.{n}.{g}.{suffix}"))
}

impl TensorSource for GgufFile {
    /// Reads Hugging Face tensor `name` (or a GGUF name verbatim), dequantised to f32 in
    /// PyTorch shape, with llama.cpp's conversion undone (module docs): Llama Q/K rows
    /// un-permuted, Gemma norm weights shifted back by −1.
    fn tensor(&self, name: &str) -> Result<F32Tensor> {
        let gname = self.gguf_name(name).unwrap_or_else(|| name.to_owned());
        if self.tensor_info(&gname).is_none() {
            return Err(Error::format(
                &self.path,
                format!("tensor `{name}`"),
                if gname != name {
                    format!("not in the file (looked for GGUF `{gname}`)")
                } else {
                    "not in the file".into()
                },
            ));
        }
        let mut t = self.read_raw(&gname)?;
        match self.arch {
            Some(GgufArch::Llama) => {
                let is_q = gname.ends_with(".attn_q.weight") || gname.ends_with(".attn_q.bias");
                let is_k = gname.ends_with(".attn_k.weight") || gname.ends_with(".attn_k.bias");
                if is_q || is_k {
                    let key = if is_q {
                        "llama.attention.head_count"
                    } else {
                        "llama.attention.head_count_kv"
                    };
                    let n_head = match self.opt(key, Self::get_usize)? {
                        Some(n) => n,
                        None => self.get_usize("llama.attention.head_count")?,
                    };
                    Self::unpermute_rows(&mut t, n_head, &self.path, name)?;
                }
            }
            Some(ref a) if a.is_gemma() && gname.ends_with("norm.weight") => {
                t.data.iter_mut().for_each(|v| *v -= 1.0);
            }
            _ => {}
        }
        Ok(t)
    }

    fn contains(&self, name: &str) -> bool {
        let gname = self.gguf_name(name).unwrap_or_else(|| name.to_owned());
        self.index.contains_key(&gname)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// A minimal GGUF (v3) writer for tests and fixtures: metadata plus F32 / pre-quantised tensors.
pub mod writer {
    use super::{DEFAULT_ALIGNMENT, Value};
    use crate::quant::GgmlType;

    /// A tensor to write: name, GGUF dims (fastest first), type and raw bytes.
    pub struct RawTensor {
        pub name: String,
        pub dims: Vec<u64>,
        pub ty: GgmlType,
        pub bytes: Vec<u8>,
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn type_id(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn put_value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend(x.to_le_bytes()),
            Value::I16(x) => out.extend(x.to_le_bytes()),
            Value::U32(x) => out.extend(x.to_le_bytes()),
            Value::I32(x) => out.extend(x.to_le_bytes()),
            Value::F32(x) => out.extend(x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::String(s) => put_str(out, s),
            Value::Array(a) => {
                // Empty arrays are written as arrays of u8.
                out.extend(a.first().map_or(0, type_id).to_le_bytes());
                out.extend((a.len() as u64).to_le_bytes());
                for x in a {
                    put_value(out, x);
                }
            }
            Value::U64(x) => out.extend(x.to_le_bytes()),
            Value::I64(x) => out.extend(x.to_le_bytes()),
            Value::F64(x) => out.extend(x.to_le_bytes()),
        }
    }

    /// Serialises a GGUF v3 file with the default alignment (32).
    pub fn to_bytes(metadata: &[(&str, Value)], tensors: &[RawTensor]) -> Vec<u8> {
        let align = DEFAULT_ALIGNMENT as usize;
        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata {
            put_str(&mut out, k);
            out.extend(type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::new();
        for t in tensors {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.id().to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.bytes.len()).div_ceil(align) * align;
        }
        out.resize(out.len().div_ceil(align) * align, 0);
        let data_start = out.len();
        for (t, off) in tensors.iter().zip(offsets) {
            out.resize(data_start + off, 0);
            out.extend(&t.bytes);
        }
        out
    }

    /// An F32 tensor from PyTorch-shaped data (`shape` slowest first).
    pub fn f32_tensor(name: &str, shape: &[usize], data: &[f32]) -> RawTensor {
        RawTensor {
            name: name.into(),
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty: GgmlType::F32,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}
