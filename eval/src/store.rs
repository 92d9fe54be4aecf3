//! The embedding store: one SafeTensors file a user can open anywhere
//! (`safetensors.safe_open`, `numpy`, …).
//!
//! Layout: one f32 tensor `embeddings` of shape `[n, dim]`; `__metadata__` holds `ids` (a JSON
//! array of external ids, row order), `kind` (content / user / item), `model`, `pooling`,
//! `template`, `hashes` (a JSON array: the content hash of each row's input, so an interrupted
//! `embed` resumes by skipping rows already stored), any extra string keys, and `sha256`: the
//! sha256 of the tensor bytes followed by every other metadata entry in key order
//! (`key\0value\0`…), checked on load so a corrupted file is never read as valid (stores written
//! before it covered the metadata hold the sha256 of the tensor bytes alone and are still read).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What the rows of a store are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Content embeddings of items from a frozen LLM/BERT (the paper's CEG output).
    Content,
    /// LEARN user embeddings (PCH user tower output).
    User,
    /// LEARN item embeddings (item tower output).
    Item,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Content => "content",
            StoreKind::User => "user",
            StoreKind::Item => "item",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "content" => Some(StoreKind::Content),
            "user" => Some(StoreKind::User),
            "item" => Some(StoreKind::Item),
            _ => None,
        }
    }
}

/// An in-memory embedding store: `n` rows of `dim` f32 values keyed by external id.
#[derive(Debug, Clone)]
pub struct EmbeddingStore {
    pub kind: StoreKind,
    pub dim: usize,
    pub ids: Vec<String>,
    /// Row-major `[n, dim]`.
    pub data: Vec<f32>,
    /// Content hash per row (empty strings when not applicable).
    pub hashes: Vec<String>,
    /// Free-form metadata: `model`, `pooling`, `template`, …
    pub meta: BTreeMap<String, String>,
    index: HashMap<String, usize>,
}

const TENSOR: &str = "embeddings";

impl EmbeddingStore {
    /// An empty store of `dim` columns.
    pub fn new(kind: StoreKind, dim: usize) -> Self {
        EmbeddingStore {
            kind,
            dim,
            ids: Vec::new(),
            data: Vec::new(),
            hashes: Vec::new(),
            meta: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Inserts or replaces the row of `id`.
    pub fn insert(&mut self, id: &str, hash: &str, row: &[f32]) -> Result<()> {
        if row.len() != self.dim {
            return Err(Error::Invalid(format!(
                "embedding of `{id}` has {} values, the store has dim {}",
                row.len(),
                self.dim
            )));
        }
        match self.index.get(id) {
            Some(&r) => {
                self.data[r * self.dim..(r + 1) * self.dim].copy_from_slice(row);
                self.hashes[r] = hash.to_owned();
            }
            None => {
                self.index.insert(id.to_owned(), self.ids.len());
                self.ids.push(id.to_owned());
                self.hashes.push(hash.to_owned());
                self.data.extend_from_slice(row);
            }
        }
        Ok(())
    }

    /// Row index of `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// Embedding of `id`.
    pub fn get(&self, id: &str) -> Option<&[f32]> {
        self.position(id).map(|r| self.row(r))
    }
    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.dim..(r + 1) * self.dim]
    }
    /// Stored content hash of `id`.
    pub fn hash_of(&self, id: &str) -> Option<&str> {
        self.position(id).map(|r| self.hashes[r].as_str())
    }

    /// Writes the store atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut meta: HashMap<String, String> = self.meta.clone().into_iter().collect();
        meta.insert("kind".into(), self.kind.name().into());
        meta.insert("ids".into(), serde_json::to_string(&self.ids).expect("ids serialise"));
        meta.insert("hashes".into(), serde_json::to_string(&self.hashes).expect("hashes serialise"));
        meta.insert("sha256".into(), store_sha256(&bytes, &meta));
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![self.len(), self.dim],
            &bytes,
        )
        .map_err(|e| Error::Invalid(format!("store tensor: {e}")))?;
        let out = safetensors::serialize([(TENSOR, view)], Some(meta))
            .map_err(|e| Error::file(path, format!("cannot serialise store: {e}")))?;
        crate::atomic::write(path, &out)
    }

    /// Loads a store, checking its structure and checksum.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::file(path, m);
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid SafeTensors embedding store: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a valid SafeTensors embedding store: {e}")))?;
        let meta = md.metadata().clone().unwrap_or_default();
        let t = st
            .tensor(TENSOR)
            .map_err(|_| bad(format!("no tensor `{TENSOR}` (is this a learnrec embedding store?)")))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 {
            return Err(bad(format!(
                "tensor `{TENSOR}` must be F32 [n, dim], found {:?} {:?}",
                t.dtype(),
                t.shape()
            )));
        }
        let (n, dim) = (t.shape()[0], t.shape()[1]);
        // Stores written before the checksum covered the metadata hold sha256(tensor bytes):
        // still read, with only their rows protected.
        let want = meta
            .get("sha256")
            .ok_or_else(|| bad("metadata `sha256` missing: not a learnrec store, or a corrupted one".into()))?;
        if *want != store_sha256(t.data(), &meta) && *want != hex(&Sha256::digest(t.data())) {
            return Err(bad("checksum mismatch: the file is corrupted or truncated".into()));
        }
        let kind = meta
            .get("kind")
            .and_then(|k| StoreKind::parse(k))
            .ok_or_else(|| bad("metadata `kind` missing or not content/user/item".into()))?;
        let ids: Vec<String> = meta
            .get("ids")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("metadata `ids` missing or not a JSON array of strings".into()))?;
        if ids.len() != n {
            return Err(bad(format!("metadata has {} ids but the tensor has {n} rows", ids.len())));
        }
        let hashes: Vec<String> = meta
            .get("hashes")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| vec![String::new(); n]);
        if hashes.len() != n {
            return Err(bad(format!("metadata has {} hashes but the tensor has {n} rows", hashes.len())));
        }
        let data: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut index = HashMap::with_capacity(n);
        for (r, id) in ids.iter().enumerate() {
            if index.insert(id.clone(), r).is_some() {
                return Err(bad(format!("duplicate id `{id}` in the store")));
            }
        }
        let meta = meta
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "kind" | "ids" | "hashes" | "sha256"))
            .collect();
        Ok(EmbeddingStore { kind, dim, ids, data, hashes, meta, index })
    }
}

/// The store checksum: sha256 of the tensor bytes, then of every metadata entry but `sha256`
/// in key order (`key\0value\0`…), so a corrupted id or hash is detected like a corrupted row.
fn store_sha256(tensor: &[u8], meta: &HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = meta.keys().filter(|k| k.as_str() != "sha256").collect();
    keys.sort();
    let mut h = Sha256::new();
    h.update(tensor);
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(meta[k].as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EmbeddingStore {
        let mut s = EmbeddingStore::new(StoreKind::Content, 3);
        s.insert("a", "h1", &[1.0, 2.0, 3.0]).unwrap();
        s.insert("b", "h2", &[4.0, 5.0, 6.0]).unwrap();
        s.meta.insert("model".into(), "tiny".into());
        s
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.safetensors");
        sample().save(&p).unwrap();
        let s = EmbeddingStore::load(&p).unwrap();
        assert_eq!(s.ids, vec!["a", "b"]);
        assert_eq!(s.get("b").unwrap(), &[4.0, 5.0, 6.0]);
        assert_eq!(s.hash_of("a"), Some("h1"));
        assert_eq!(s.meta.get("model").map(String::as_str), Some("tiny"));
        assert_eq!(s.kind, StoreKind::Content);
    }

    #[test]
    fn corrupted_and_truncated_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.safetensors");
        sample().save(&p).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&p, &bytes).unwrap();
        assert!(EmbeddingStore::load(&p).unwrap_err().to_string().contains("checksum"));
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = EmbeddingStore::load(&p).unwrap_err().to_string();
        assert!(e.contains("s.safetensors") && e.contains("not a valid SafeTensors"), "{e}");
    }

    #[test]
    fn corrupted_id_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.safetensors");
        sample().save(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // `["a","b"]` is stored JSON-escaped inside the header: `[\"a\",\"b\"]`.
        let at = bytes.windows(3).position(|w| w == b"\\\"b").unwrap() + 2;
        let mut bad = bytes.clone();
        bad[at] = b'c';
        std::fs::write(&p, &bad).unwrap();
        let e = EmbeddingStore::load(&p).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn store_with_a_tensor_only_checksum_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.safetensors");
        let bytes: Vec<u8> = [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let meta: HashMap<String, String> = [
            ("kind", "user"),
            ("ids", "[\"u\"]"),
            ("sha256", hex(&Sha256::digest(&bytes)).as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 2], &bytes).unwrap();
        std::fs::write(&p, safetensors::serialize([(TENSOR, view)], Some(meta)).unwrap()).unwrap();
        assert_eq!(EmbeddingStore::load(&p).unwrap().get("u"), Some(&[1.0, 2.0][..]));
    }

    #[test]
    fn wrong_dim_is_error() {
        let mut s = EmbeddingStore::new(StoreKind::User, 2);
        assert!(s.insert("u", "", &[1.0]).unwrap_err().to_string().contains("dim 2"));
    }
}
