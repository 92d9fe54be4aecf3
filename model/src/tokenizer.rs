//! Tokenizers for CEG: text → token ids, exactly as the model's own tokenizer does it.
//!
//! Two sources:
//! - a Hugging Face `tokenizer.json` ([`Tokenizer::from_file`]), run by the `tokenizers` crate
//!   with its own special-token post-processor (MiniLM: `[CLS] … [SEP]`; Qwen: none);
//! - GGUF metadata ([`Tokenizer::from_gguf`]), dispatched on `tokenizer.ggml.model`:
//!   - `gpt2` → byte-level BPE from `tokens` + `merges`, with the pre-tokenizer regex chosen by
//!     `tokenizer.ggml.pre` (`qwen2`, `llama-bpe`/`llama3`, `gpt-2`/`default`; any other is an
//!     error — a pre-tokenizer is never guessed), run by the `tokenizers` crate;
//!   - `llama` / `gemma` → SentencePiece BPE by scores with byte fallback: llama.cpp's algorithm
//!     (`llm_tokenizer_spm`), implemented here ([`Spm`]);
//!   - anything else → [`Error::Unsupported`].
//!
//!   Required keys are checked up front and every missing one is listed. Special tokens follow
//!   `tokenizer.ggml.add_bos_token` / `add_eos_token` (Gemma adds BOS; Qwen adds nothing).
//!
//! Every encoding is truncated to `max_len` tokens, special tokens included (default 500, as in
//! the official LEARN code).

use crate::gguf::GgufFile;
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

/// Default maximum tokens per item text (the official LEARN code truncates at 500).
pub const DEFAULT_MAX_LEN: usize = 500;

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
mod token_type {
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
}

/// A tokenizer: a backend plus special-token and truncation policy.
pub struct Tokenizer {
    backend: Backend,
    /// BOS / EOS added by this wrapper (GGUF sources); `tokenizer.json` sources add their
    /// specials through their own post-processor.
    bos: Option<u32>,
    eos: Option<u32>,
    max_len: usize,
    /// Number of ids (largest id + 1).
    vocab_size: usize,
    /// Where it came from, for errors.
    source: String,
}

enum Backend {
    /// The `tokenizers` crate. `own_specials`: its post-processor adds the special tokens.
    Hf {
        tk: Box<tokenizers::Tokenizer>,
        own_specials: bool,
    },
    /// SentencePiece BPE by scores (llama.cpp).
    Spm(Spm),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field(
                "kind",
                &match self.backend {
                    Backend::Hf { .. } => "tokenizers",
                    Backend::Spm(_) => "sentencepiece-bpe",
                },
            )
            .field("vocab_size", &self.vocab_size)
            .field("max_len", &self.max_len)
            .finish()
    }
}

fn tk_err(source: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{source}: {e}"))
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`. Padding configured in the file is disabled
    /// (batches are padded by the embed pipeline); truncation is set to `max_len`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let source = path.display().to_string();
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found"),
            ));
        }
        let mut tk = tokenizers::Tokenizer::from_file(path).map_err(|e| tk_err(&source, e))?;
        tk.with_padding(None);
        let vocab_size = tk
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut t = Tokenizer {
            backend: Backend::Hf {
                tk: Box::new(tk),
                own_specials: true,
            },
            bos: None,
            eos: None,
            max_len: DEFAULT_MAX_LEN,
            vocab_size,
            source,
        };
        t.set_max_len(DEFAULT_MAX_LEN)?;
        Ok(t)
    }

    /// Builds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let source = g.path().display().to_string();
        let model = g.get_str("tokenizer.ggml.model")?;
        let required: &[&str] = match model {
            "gpt2" => &[
                "tokenizer.ggml.tokens",
                "tokenizer.ggml.merges",
                "tokenizer.ggml.pre",
            ],
            "llama" | "gemma" => &[
                "tokenizer.ggml.tokens",
                "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type",
            ],
            other => {
                return Err(Error::Unsupported {
                    path: g.path().to_path_buf(),
                    message: format!(
                        "tokenizer.ggml.model `{other}` (supported: gpt2, llama, gemma)"
                    ),
                });
            }
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|k| g.get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::format(
                g.path(),
                "tokenizer metadata",
                format!(
                    "tokenizer.ggml.model `{model}` needs missing key(s): {}",
                    missing.join(", ")
                ),
            ));
        }
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
        let types = match g.get("tokenizer.ggml.token_type") {
            Some(_) => g.get_i64_array("tokenizer.ggml.token_type")?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(Error::format(
                g.path(),
                "metadata `tokenizer.ggml.token_type`",
                format!("{} entries for {} tokens", types.len(), tokens.len()),
            ));
        }
        let opt_id = |key: &str| -> Result<Option<u32>> {
            match g.opt(key, GgufFile::get_u32)? {
                Some(id) if id as usize >= tokens.len() => Err(Error::format(
                    g.path(),
                    format!("metadata `{key}`"),
                    format!(
                        "token id {id} is outside the vocabulary of {} tokens",
                        tokens.len()
                    ),
                )),
                other => Ok(other),
            }
        };
        let bos_id = opt_id("tokenizer.ggml.bos_token_id")?;
        let eos_id = opt_id("tokenizer.ggml.eos_token_id")?;
        let unk_id = opt_id("tokenizer.ggml.unknown_token_id")?;
        let is_spm = model != "gpt2";
        // llama.cpp's defaults: SPM adds BOS, BPE does not; neither adds EOS.
        let add_bos = g
            .opt("tokenizer.ggml.add_bos_token", GgufFile::get_bool)?
            .unwrap_or(is_spm);
        let add_eos = g
            .opt("tokenizer.ggml.add_eos_token", GgufFile::get_bool)?
            .unwrap_or(false);
        let bos = if add_bos {
            Some(bos_id.ok_or_else(|| {
                Error::format(
                    g.path(),
                    "metadata `tokenizer.ggml.bos_token_id`",
                    "missing, but add_bos_token is set",
                )
            })?)
        } else {
            None
        };
        let eos = if add_eos {
            Some(eos_id.ok_or_else(|| {
                Error::format(
                    g.path(),
                    "metadata `tokenizer.ggml.eos_token_id`",
                    "missing, but add_eos_token is set",
                )
            })?)
        } else {
            None
        };
        let backend = if is_spm {
            let scores = g.get_f32_array("tokenizer.ggml.scores")?;
            if scores.len() != tokens.len() {
                return Err(Error::format(
                    g.path(),
                    "metadata `tokenizer.ggml.scores`",
                    format!("{} entries for {} tokens", scores.len(), tokens.len()),
                ));
            }
            let add_space_prefix = g
                .opt("tokenizer.ggml.add_space_prefix", GgufFile::get_bool)?
                .unwrap_or(true);
            Backend::Spm(Spm::new(&tokens, scores, &types, unk_id, add_space_prefix))
        } else {
            let pre = g.get_str("tokenizer.ggml.pre")?;
            let merges = g.get_str_array("tokenizer.ggml.merges")?;
            let tk = gpt2_bpe(&tokens, &types, &merges, pre, g.path())?;
            Backend::Hf {
                tk: Box::new(tk),
                own_specials: false,
            }
        };
        Ok(Tokenizer {
            backend,
            bos,
            eos,
            max_len: DEFAULT_MAX_LEN,
            vocab_size: tokens.len(),
            source,
        })
    }

    /// Sets the maximum number of tokens per encoding (special tokens included).
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self> {
        self.set_max_len(max_len)?;
        Ok(self)
    }

    fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        if max_len < 3 {
            return Err(Error::Invalid(format!(
                "max length {max_len} is too small (at least 3)"
            )));
        }
        self.max_len = max_len;
        if let Backend::Hf {
            tk,
            own_specials: true,
        } = &mut self.backend
        {
            let params = tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            };
            tk.with_truncation(Some(params))
                .map_err(|e| tk_err(&self.source, e))?;
        }
        Ok(())
    }

    /// The maximum tokens per encoding.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// Number of token ids (largest id + 1).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
    /// The file this tokenizer came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Encodes `text`; with `add_special`, adds the special tokens the model's tokenizer adds
    /// by default. Truncated to [`Self::max_len`] tokens.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut ids = match &self.backend {
            Backend::Hf {
                tk,
                own_specials: true,
            } => {
                return Ok(tk
                    .encode(text, add_special)
                    .map_err(|e| tk_err(&self.source, e))?
                    .get_ids()
                    .to_vec());
            }
            Backend::Hf {
                tk,
                own_specials: false,
            } => tk
                .encode(text, false)
                .map_err(|e| tk_err(&self.source, e))?
                .get_ids()
                .to_vec(),
            Backend::Spm(spm) => spm.encode(text).map_err(|e| tk_err(&self.source, e))?,
        };
        let (bos, eos) = if add_special {
            (self.bos, self.eos)
        } else {
            (None, None)
        };
        let room = self.max_len - bos.is_some() as usize - eos.is_some() as usize;
        ids.truncate(room);
        let mut out = Vec::with_capacity(ids.len() + 2);
        out.extend(bos);
        out.extend(ids);
        out.extend(eos);
        Ok(out)
    }

    /// Encodes many texts in parallel (rayon); same ids as [`Self::encode`] per text.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        add_special: bool,
    ) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.encode(t.as_ref(), add_special))
            .collect()
    }

    /// Checks that every id this tokenizer can produce indexes a row of the model's token
    /// embedding (`rows`). Embeddings may be padded beyond the vocabulary (Qwen: 151,936 rows
    /// for 151,665 tokens), so more rows is fine; fewer is an error.
    pub fn check_embedding_rows(&self, rows: usize) -> Result<()> {
        if self.vocab_size > rows {
            return Err(Error::Invalid(format!(
                "tokenizer {} has {} token ids but the model's embedding has only {rows} rows: \
                 tokenizer and model do not match",
                self.source, self.vocab_size
            )));
        }
        Ok(())
    }
}

/// The pre-tokenizer regex llama.cpp uses for `tokenizer.ggml.pre` (Hugging Face's spelling).
fn pre_tokenizer_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "qwen2" | "deepseek-r1-qwen" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "llama-bpe" | "llama3" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "gpt-2" | "default" => {
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
        }
        _ => return None,
    })
}

/// Byte-level BPE (GPT-2 family) from GGUF tokens and merges.
fn gpt2_bpe(
    tokens: &[&str],
    types: &[i64],
    merges: &[&str],
    pre: &str,
    path: &Path,
) -> Result<tokenizers::Tokenizer> {
    use tokenizers::models::bpe::{BPE, Vocab};
    use tokenizers::pre_tokenizers::{byte_level::ByteLevel, sequence::Sequence, split::Split};
    let source = path.display().to_string();
    let regex = pre_tokenizer_regex(pre).ok_or_else(|| Error::Unsupported {
        path: path.to_path_buf(),
        message: format!(
            "tokenizer.ggml.pre `{pre}` (supported: qwen2, deepseek-r1-qwen, llama-bpe, llama3, gpt-2, default)"
        ),
    })?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_owned(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| {
                    Error::format(
                        path,
                        "metadata `tokenizer.ggml.merges`",
                        format!("merge #{i} `{m}` has no space"),
                    )
                })
        })
        .collect::<Result<_>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| tk_err(&source, e))?;
    let mut tk = tokenizers::Tokenizer::new(bpe);
    let split = Split::new(
        tokenizers::pre_tokenizers::split::SplitPattern::Regex(regex.to_owned()),
        tokenizers::SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| tk_err(&source, e))?;
    tk.with_pre_tokenizer(Some(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])));
    // Hugging Face's Qwen2 tokenizer normalises to NFC; llama.cpp does not. Item texts are
    // normally NFC already; we follow Hugging Face (the reference of golden/).
    tk.with_normalizer(Some(tokenizers::normalizers::NFC));
    // Control and user-defined tokens are matched whole in the text, as Hugging Face does.
    let added: Vec<tokenizers::AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, ty)| matches!(**ty, token_type::CONTROL | token_type::USER_DEFINED))
        .map(|(t, ty)| tokenizers::AddedToken::from(*t, *ty == token_type::CONTROL))
        .collect();
    tk.add_special_tokens(&added);
    Ok(tk)
}

/// SentencePiece BPE by scores with byte fallback, as llama.cpp's `llm_tokenizer_spm`:
/// text → user-defined tokens matched whole, the rest split into UTF-8 characters; adjacent
/// pairs whose concatenation is a token are merged, highest score first (ties: leftmost);
/// leftover symbols that are not tokens become `<0xXX>` byte tokens (or UNK).
pub struct Spm {
    token_to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
    add_space_prefix: bool,
    /// User-defined tokens by first byte, longest first.
    user_defined: HashMap<u8, Vec<(String, u32)>>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}
impl Eq for Bigram {}
impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Max-heap: higher score first; on ties, the leftmost pair first.
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Spm {
    fn new(
        tokens: &[&str],
        scores: Vec<f32>,
        types: &[i64],
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Self {
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        let mut byte_ids = [None; 256];
        let mut user_defined: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        for (i, (t, ty)) in tokens.iter().zip(types).enumerate() {
            let id = i as u32;
            // First occurrence wins on duplicate strings (as llama.cpp's map insert).
            token_to_id.entry((*t).to_owned()).or_insert(id);
            if let Some(hex) = t.strip_prefix("<0x").and_then(|s| s.strip_suffix('>'))
                && hex.len() == 2
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                byte_ids[b as usize].get_or_insert(id);
            }
            if *ty == token_type::USER_DEFINED && !t.is_empty() {
                user_defined
                    .entry(t.as_bytes()[0])
                    .or_default()
                    .push(((*t).to_owned(), id));
            }
        }
        for v in user_defined.values_mut() {
            v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        }
        Spm {
            token_to_id,
            scores,
            byte_ids,
            unk,
            add_space_prefix,
            user_defined,
        }
    }

    /// Encodes `text` without BOS/EOS. As in llama.cpp, the first raw fragment and any
    /// fragment after a user-defined token get the space prefix when the model uses one.
    /// A piece with no token, no byte token and no UNK is an error naming it.
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let mut out = Vec::new();
        let mut prev_special = true;
        let mut raw_start = 0;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let hit = self.user_defined.get(&bytes[i]).and_then(|cands| {
                cands
                    .iter()
                    .find(|(s, _)| bytes[i..].starts_with(s.as_bytes()))
            });
            match hit {
                Some((s, id)) => {
                    if raw_start < i {
                        self.encode_raw(&text[raw_start..i], prev_special, &mut out)?;
                    }
                    out.push(*id);
                    prev_special = true;
                    i += s.len();
                    raw_start = i;
                }
                None => i += 1,
            }
        }
        if raw_start < bytes.len() {
            self.encode_raw(&text[raw_start..], prev_special, &mut out)?;
        }
        Ok(out)
    }

    fn encode_raw(
        &self,
        fragment: &str,
        prev_special: bool,
        out: &mut Vec<u32>,
    ) -> std::result::Result<(), String> {
        let mut text = String::with_capacity(fragment.len() + 3);
        if self.add_space_prefix && prev_special {
            text.push('\u{2581}');
        }
        for c in fragment.chars() {
            text.push(if c == ' ' { '\u{2581}' } else { c });
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let k = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: k.checked_sub(1),
                next: Some(k + 1),
            });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>,
                       symbols: &[Symbol],
                       left: Option<usize>,
                       right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (a, b) = (&symbols[l], &symbols[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(&id) = self.token_to_id.get(piece) {
                heap.push(Bigram {
                    score: self.scores[id as usize],
                    left: l,
                    right: r,
                    size: piece.len(),
                });
            }
        };
        for k in 1..symbols.len() {
            try_add(&mut heap, &symbols, Some(k - 1), Some(k));
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (bg.left, bg.right);
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != bg.size
            {
                continue; // stale: one side already merged elsewhere
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(n) = symbols[r].next {
                symbols[n].prev = Some(l);
            }
            let (p, n) = (symbols[l].prev, symbols[l].next);
            try_add(&mut heap, &symbols, p, Some(l));
            try_add(&mut heap, &symbols, Some(l), n);
        }
        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(k) = cur {
            let s = symbols[k];
            let piece = &text[s.start..s.start + s.len];
            match self.token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        let id = self.byte_ids[b as usize].or(self.unk).ok_or_else(|| {
                            format!("`{piece}` has no token, no byte token <0x{b:02X}> and there is no UNK token")
                        })?;
                        out.push(id);
                    }
                }
            }
            cur = s.next;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spm(tokens: &[(&str, f32, i64)], space_prefix: bool) -> Spm {
        let names: Vec<&str> = tokens.iter().map(|t| t.0).collect();
        let scores = tokens.iter().map(|t| t.1).collect();
        let types: Vec<i64> = tokens.iter().map(|t| t.2).collect();
        Spm::new(&names, scores, &types, Some(0), space_prefix)
    }

    #[test]
    fn spm_merges_by_score_and_falls_back_to_bytes() {
        let mut toks = vec![
            ("<unk>", 0.0, 2),
            ("a", -1.0, 1),
            ("b", -1.0, 1),
            ("c", -1.0, 1),
        ];
        toks.push(("ab", -5.0, 1)); // 4
        toks.push(("bc", -2.0, 1)); // 5: higher score than "ab" → wins for "abc"
        toks.push(("\u{2581}", -1.0, 1)); // 6
        toks.push(("<0xC3>", 0.0, 6)); // 7
        toks.push(("<0xA9>", 0.0, 6)); // 8
        toks.push(("\n\n", 0.0, 4)); // 9: user-defined
        let s = spm(&toks, false);
        assert_eq!(s.encode("abc").unwrap(), vec![1, 5]);
        assert_eq!(s.encode("ab").unwrap(), vec![4]);
        // "é" is not a token: UTF-8 bytes C3 A9 as byte tokens.
        assert_eq!(s.encode("é").unwrap(), vec![7, 8]);
        // Space becomes ▁; user-defined "\n\n" is matched whole.
        assert_eq!(s.encode("a b\n\nc").unwrap(), vec![1, 6, 2, 9, 3]);
        // With a space prefix (llama): ▁ at the start and after a special token.
        let s = spm(&toks, true);
        assert_eq!(s.encode("a\n\nb").unwrap(), vec![6, 1, 9, 6, 2]);
    }

    #[test]
    fn spm_ties_merge_leftmost_first() {
        // "aaa": "aa" can form at (0,1) or (1,2); the leftmost wins → "aa" + "a".
        let toks = vec![("<unk>", 0.0, 2), ("a", -1.0, 1), ("aa", -1.0, 1)];
        let s = spm(&toks, false);
        assert_eq!(s.encode("aaa").unwrap(), vec![2, 1]);
        // No token, no byte token, no UNK: an error, never a silent drop.
        let s = Spm::new(&["a"], vec![0.0], &[1], None, false);
        let e = s.encode("ab").unwrap_err();
        assert!(e.contains("`b` has no token"), "{e}");
    }
}
