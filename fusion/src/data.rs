//! Ranking examples, feature vocabularies and batches.
//!
//! A [`RankingData`] holds every example of a dataset with dense user/item ids (indices into its
//! [`IdMap`]s) and each item's categorical features. A ranker sees IDs through an [`IdVocab`] fitted
//! on the training split: IDs never seen in training map to the reserved OOV row 0.

use crate::fusion::LearnInputs;
use crate::lookup::LearnLookup;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use learnrec_eval::data::IdMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One ranking example: an impression (or click) of `item` for `user`, labelled with whether it
/// converted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingExample {
    /// Dense user id (index into [`RankingData::users`]).
    pub user: u32,
    /// Dense item id (index into [`RankingData::items`]).
    pub item: u32,
    /// Time of the impression (seconds).
    pub ts: i64,
    /// 1 = converted, 0 = not.
    pub label: f32,
    /// Sample weight (1 when the data has none).
    pub weight: f32,
}

/// Categorical item features (category, brand, price bucket…): one vocabulary per field, built
/// from the whole catalog (an item's metadata is known at serving time, even for a new item).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemFeatures {
    /// Field names, e.g. `["category", "brand", "price_bucket"]`.
    pub fields: Vec<String>,
    /// Values of each field; value `v` of field `f` is table row `offset(f) + 1 + v`, and
    /// `offset(f)` itself is that field's "missing" row.
    pub vocabs: Vec<IdMap>,
    /// Per item (dense item id), per field: 0 = missing, else 1 + value index. `n_items × n_fields`.
    pub values: Vec<u32>,
}

impl ItemFeatures {
    /// Number of categorical fields.
    pub fn n_fields(&self) -> usize {
        self.fields.len()
    }
    /// First table row of each field.
    pub fn offsets(&self) -> Vec<u32> {
        let mut off = Vec::with_capacity(self.vocabs.len());
        let mut o = 0u32;
        for v in &self.vocabs {
            off.push(o);
            o += v.len() as u32 + 1;
        }
        off
    }
    /// Rows of the shared categorical embedding table.
    pub fn n_rows(&self) -> usize {
        self.vocabs.iter().map(|v| v.len() + 1).sum()
    }
    /// Table rows of item `item`'s fields (with offsets), or the missing rows if `item` is beyond
    /// the known items.
    pub fn rows_of(&self, item: u32, offsets: &[u32], out: &mut Vec<i64>) {
        let f = self.n_fields();
        let base = item as usize * f;
        for (k, off) in offsets.iter().enumerate() {
            let v = self.values.get(base + k).copied().unwrap_or(0);
            out.push(i64::from(off + v));
        }
    }
    /// Appends an item's raw field values (`None` = missing), interning new values.
    pub fn push_item(&mut self, values: &[Option<&str>]) {
        for (k, v) in values.iter().enumerate() {
            let idx = match v {
                Some(s) if !s.is_empty() => self.vocabs[k].intern(s) + 1,
                _ => 0,
            };
            self.values.push(idx);
        }
    }
    /// Empty features with the given field names.
    pub fn with_fields(fields: &[&str]) -> Self {
        ItemFeatures {
            fields: fields.iter().map(|s| s.to_string()).collect(),
            vocabs: fields.iter().map(|_| IdMap::new()).collect(),
            values: Vec::new(),
        }
    }
}

/// A dataset of ranking examples.
#[derive(Debug, Clone, Default)]
pub struct RankingData {
    /// External user ids.
    pub users: IdMap,
    /// External item ids.
    pub items: IdMap,
    /// Categorical features of each item.
    pub features: ItemFeatures,
    /// The examples, sorted by time.
    pub examples: Vec<RankingExample>,
}

/// Train / validation / test examples.
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub train: Vec<RankingExample>,
    pub valid: Vec<RankingExample>,
    pub test: Vec<RankingExample>,
}

impl RankingData {
    /// Temporal split by global time: the first `train` fraction of examples (by time) for
    /// training, the next `valid` fraction for validation (early stopping), the rest for test.
    /// Items first shown late appear only in the test split: the cold-start case.
    pub fn temporal_split(&self, train: f64, valid: f64) -> Split {
        let mut ex = self.examples.clone();
        ex.sort_by_key(|e| (e.ts, e.user, e.item));
        let n = ex.len();
        let a = ((n as f64) * train).round() as usize;
        let b = (((n as f64) * (train + valid)).round() as usize).clamp(a, n);
        let test = ex.split_off(b);
        let valid = ex.split_off(a.min(ex.len()));
        Split {
            train: ex,
            valid,
            test,
        }
    }

    /// Temporal split at global time boundaries (the paper's split, and `learnrec sequences
    /// --split temporal`'s): examples with `ts < valid_from` train, `valid_from ≤ ts < test_from`
    /// validate, `ts ≥ test_from` test. `valid_from` is clamped to at most `test_from`.
    pub fn time_split(&self, valid_from: i64, test_from: i64) -> Split {
        let valid_from = valid_from.min(test_from);
        let mut s = Split::default();
        for e in &self.examples {
            let part = if e.ts >= test_from {
                &mut s.test
            } else if e.ts >= valid_from {
                &mut s.valid
            } else {
                &mut s.train
            };
            part.push(*e);
        }
        for part in [&mut s.train, &mut s.valid, &mut s.test] {
            part.sort_by_key(|e| (e.ts, e.user, e.item));
        }
        s
    }
}

/// A ranker's ID vocabulary: external ids seen in training → table rows `1..`; row 0 is the
/// reserved out-of-vocabulary row shared by every unseen id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdVocab {
    /// `names[r - 1]` is the external id of row `r`.
    pub names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl IdVocab {
    /// Fits a vocabulary on the dense ids `ids` of `map` (first occurrence order).
    pub fn fit(map: &IdMap, ids: impl IntoIterator<Item = u32>) -> Self {
        let mut v = IdVocab::default();
        for id in ids {
            let name = map.name(id);
            if !v.index.contains_key(name) {
                v.names.push(name.to_owned());
                v.index.insert(name.to_owned(), v.names.len() as u32);
            }
        }
        v
    }
    /// Rebuilds the lookup index (after deserialisation).
    pub fn rebuild_index(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32 + 1))
            .collect();
    }
    /// Table rows including the OOV row.
    pub fn n_rows(&self) -> usize {
        self.names.len() + 1
    }
    /// Row of an external id (0 = OOV).
    pub fn row(&self, name: &str) -> u32 {
        self.index.get(name).copied().unwrap_or(0)
    }
    /// Row of every dense id of `map` (0 = OOV).
    pub fn rows_for(&self, map: &IdMap) -> Vec<u32> {
        map.names().iter().map(|n| self.row(n)).collect()
    }
}

/// A batch on the host, ready to move to a device.
#[derive(Debug, Clone, Default)]
pub struct HostBatch {
    /// `[n]` user ID rows.
    pub users: Vec<i64>,
    /// `[n]` item ID rows.
    pub items: Vec<i64>,
    /// `[n, n_fields]` categorical table rows.
    pub fields: Vec<i64>,
    /// Number of categorical fields.
    pub n_fields: usize,
    /// `[n]` labels.
    pub labels: Vec<f32>,
    /// `[n]` sample weights.
    pub weights: Vec<f32>,
    /// LEARN lookups, when a [`LearnLookup`] was given.
    pub learn: Option<HostLearn>,
}

/// LEARN embeddings of a batch on the host.
#[derive(Debug, Clone, Default)]
pub struct HostLearn {
    pub user_dim: usize,
    pub item_dim: usize,
    /// `[n, user_dim]`.
    pub user: Vec<f32>,
    /// `[n]` 1 = known.
    pub user_known: Vec<f32>,
    /// `[n, item_dim]`.
    pub item: Vec<f32>,
    /// `[n]` 1 = known.
    pub item_known: Vec<f32>,
}

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// `[batch]` user ID rows (0 = OOV).
    pub users: Tensor<B, 1, Int>,
    /// `[batch]` item ID rows (0 = OOV).
    pub items: Tensor<B, 1, Int>,
    /// `[batch, n_fields]` categorical rows.
    pub fields: Tensor<B, 2, Int>,
    /// `[batch]` labels in {0, 1}.
    pub labels: Tensor<B, 1>,
    /// `[batch]` sample weights.
    pub weights: Tensor<B, 1>,
    /// LEARN inputs, for fused models.
    pub learn: Option<LearnInputs<B>>,
}

impl HostBatch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.users.len()
    }
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
    /// Moves the batch to `device`.
    pub fn to_device<B: Backend>(&self, device: &B::Device) -> Batch<B> {
        let n = self.len();
        let int1 =
            |v: &Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [n]), device);
        let f1 = |v: &Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [n]), device);
        let f2 = |v: &Vec<f32>, d: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(v.clone(), [n, d]), device)
        };
        let missing = |known: &Vec<f32>| {
            known.iter().any(|&k| k < 0.5).then(|| {
                let m: Vec<f32> = known.iter().map(|&k| 1.0 - k).collect();
                Tensor::<B, 2>::from_data(TensorData::new(m, [n, 1]), device)
            })
        };
        Batch {
            users: int1(&self.users),
            items: int1(&self.items),
            fields: Tensor::from_data(
                TensorData::new(self.fields.clone(), [n, self.n_fields]),
                device,
            ),
            labels: f1(&self.labels),
            weights: f1(&self.weights),
            learn: self.learn.as_ref().map(|l| LearnInputs {
                user: f2(&l.user, l.user_dim),
                user_missing: missing(&l.user_known),
                item: f2(&l.item, l.item_dim),
                item_missing: missing(&l.item_known),
            }),
        }
    }
}

/// Turns examples into batches for one ranker: its ID vocabularies, the item features and,
/// for fused rankers, the LEARN lookup.
#[derive(Debug, Clone)]
pub struct Batcher<'a> {
    user_rows: Vec<u32>,
    item_rows: Vec<u32>,
    features: &'a ItemFeatures,
    offsets: Vec<u32>,
    lookup: Option<&'a LearnLookup>,
}

impl<'a> Batcher<'a> {
    /// A batcher over `data`'s dense ids.
    pub fn new(
        data: &'a RankingData,
        users: &IdVocab,
        items: &IdVocab,
        lookup: Option<&'a LearnLookup>,
    ) -> Self {
        Batcher {
            user_rows: users.rows_for(&data.users),
            item_rows: items.rows_for(&data.items),
            features: &data.features,
            offsets: data.features.offsets(),
            lookup,
        }
    }

    /// The host batch of `examples`.
    pub fn batch(&self, examples: &[RankingExample]) -> HostBatch {
        let n = examples.len();
        let mut b = HostBatch {
            users: Vec::with_capacity(n),
            items: Vec::with_capacity(n),
            fields: Vec::with_capacity(n * self.offsets.len()),
            n_fields: self.offsets.len(),
            labels: Vec::with_capacity(n),
            weights: Vec::with_capacity(n),
            learn: None,
        };
        for e in examples {
            b.users.push(i64::from(
                self.user_rows.get(e.user as usize).copied().unwrap_or(0),
            ));
            b.items.push(i64::from(
                self.item_rows.get(e.item as usize).copied().unwrap_or(0),
            ));
            self.features.rows_of(e.item, &self.offsets, &mut b.fields);
            b.labels.push(e.label);
            b.weights.push(e.weight);
        }
        if let Some(l) = self.lookup {
            b.learn = Some(l.fill(examples.iter().map(|e| (e.user, e.item))));
        }
        b
    }
}
