//! Training data of the towers: per-user history/target sequences of dense item ids, the item
//! features the tower reads (frozen content vectors or ids), and padded batches.

use super::config::{InputKind, ItemTowerVariant};
use super::loss::LossMasks;
use super::model::{TowerInput, l2_normalize};
use crate::{Error, Result};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use learnrec_eval::data::IdMap;
use learnrec_eval::store::EmbeddingStore;
use std::path::Path;

/// One user's sequences of dense item ids, oldest first.
///
/// Mirrors `learnrec_eval::split::UserSequences` (user, history, target), which the data layer
/// produces; until that lands, callers build these directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSequence {
    /// Dense user id.
    pub user: u32,
    /// Items before the split time (the model keeps the last `history_len`).
    pub history: Vec<u32>,
    /// Items after the split time (the model keeps the first `target_len`).
    pub target: Vec<u32>,
}

/// What the tower reads for each dense item id.
#[derive(Debug, Clone)]
pub enum ItemFeatures {
    /// Item ids only (a learned table in the tower).
    Ids { n_items: usize },
    /// A frozen content table, row = dense item id, `[n_items, dim]` row-major.
    Content { dim: usize, data: Vec<f32> },
}

impl ItemFeatures {
    /// Number of items.
    pub fn n_items(&self) -> usize {
        match self {
            ItemFeatures::Ids { n_items } => *n_items,
            ItemFeatures::Content { dim, data } => data.len() / dim.max(&1),
        }
    }

    /// Content table from a content store, in the order of `items` (dense id `i` = `items.name(i)`).
    /// Every item must be in the store; the error names the store and the first missing id.
    pub fn from_store(store: &EmbeddingStore, items: &IdMap, path: &Path) -> Result<Self> {
        let mut data = Vec::with_capacity(items.len() * store.dim);
        let mut missing = Vec::new();
        for name in items.names() {
            match store.get(name) {
                Some(row) => data.extend_from_slice(row),
                None => {
                    missing.push(name.as_str());
                    data.extend(std::iter::repeat_n(0.0, store.dim));
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::format(
                path,
                "ids",
                format!(
                    "{} of {} items have no content embedding (first: `{}`); run `learnrec embed` on the catalog",
                    missing.len(),
                    items.len(),
                    missing[0]
                ),
            ));
        }
        Ok(ItemFeatures::Content { dim: store.dim, data })
    }

    fn content_row(&self, item: u32) -> &[f32] {
        match self {
            ItemFeatures::Content { dim, data } => &data[item as usize * dim..(item as usize + 1) * dim],
            ItemFeatures::Ids { .. } => &[],
        }
    }

    /// Checks that the features fit the tower's input kind and dimension.
    pub fn check(&self, input: InputKind, input_dim: usize) -> Result<()> {
        match (self, input.is_content()) {
            (ItemFeatures::Content { dim, .. }, true) if *dim == input_dim => Ok(()),
            (ItemFeatures::Content { dim, .. }, true) => Err(Error::Invalid(format!(
                "content store has dim {dim}, the tower expects input_dim {input_dim}"
            ))),
            (ItemFeatures::Ids { .. }, false) => Ok(()),
            _ => Err(Error::Invalid(format!(
                "input `{}` needs {} features",
                input.name(),
                if input.is_content() { "content" } else { "id" }
            ))),
        }
    }

    /// A padded tower input for `seqs` (right padding), `[batch, max_len(, dim)]`.
    pub fn input<B: Backend>(&self, seqs: &[&[u32]], device: &B::Device) -> TowerInput<B> {
        let b = seqs.len();
        let l = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        match self {
            ItemFeatures::Ids { .. } => {
                let mut v = vec![0i64; b * l];
                for (i, s) in seqs.iter().enumerate() {
                    for (j, &it) in s.iter().enumerate() {
                        v[i * l + j] = it as i64 + 1;
                    }
                }
                TowerInput::Ids(Tensor::from_data(TensorData::new(v, [b, l]), device))
            }
            ItemFeatures::Content { dim, .. } => {
                let mut v = vec![0f32; b * l * dim];
                for (i, s) in seqs.iter().enumerate() {
                    for (j, &it) in s.iter().enumerate() {
                        let o = (i * l + j) * dim;
                        v[o..o + dim].copy_from_slice(self.content_row(it));
                    }
                }
                TowerInput::Content(Tensor::from_data(TensorData::new(v, [b, l, *dim]), device))
            }
        }
    }
}

/// A padded training batch.
#[derive(Debug, Clone)]
pub struct SequenceBatch<B: Backend> {
    /// History input, `[batch, Lh(, dim)]`.
    pub history: TowerInput<B>,
    /// Target input, `[batch, Lt(, dim)]`.
    pub target: TowerInput<B>,
    /// Valid lengths and target ids for the loss.
    pub masks: LossMasks,
}

/// The last `history_len` history items and the first `target_len` target items of a user.
pub fn clip<'a>(s: &'a UserSequence, history_len: usize, target_len: usize) -> (&'a [u32], &'a [u32]) {
    let h = &s.history[s.history.len().saturating_sub(history_len)..];
    let t = &s.target[..s.target.len().min(target_len)];
    (h, t)
}

impl<B: Backend> SequenceBatch<B> {
    /// Builds a batch; every sequence must have a non-empty history and target.
    pub fn new(
        seqs: &[&UserSequence],
        features: &ItemFeatures,
        history_len: usize,
        target_len: usize,
        device: &B::Device,
    ) -> Self {
        let clipped: Vec<(&[u32], &[u32])> = seqs.iter().map(|s| clip(s, history_len, target_len)).collect();
        let hist: Vec<&[u32]> = clipped.iter().map(|c| c.0).collect();
        let tgt: Vec<&[u32]> = clipped.iter().map(|c| c.1).collect();
        SequenceBatch {
            history: features.input(&hist, device),
            target: features.input(&tgt, device),
            masks: LossMasks {
                history_lens: hist.iter().map(|h| h.len()).collect(),
                targets: tgt.iter().map(|t| t.to_vec()).collect(),
            },
        }
    }

    /// The raw, L2-normalised content of the target items (item tower variant 3).
    ///
    /// # Shapes
    /// → `[batch, Lt, dim]`.
    pub fn raw_target_content(&self) -> Option<Tensor<B, 3>> {
        match &self.target {
            TowerInput::Content(x) => Some(l2_normalize(x.clone())),
            TowerInput::Ids(_) => None,
        }
    }
}

/// Whether item tower variant `v` needs the target sequence through the tower.
pub fn uses_tower_for_items(v: ItemTowerVariant) -> bool {
    !matches!(v, ItemTowerVariant::RawContent)
}
