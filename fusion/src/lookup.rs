//! Host-side lookup of the frozen LEARN embeddings, with the cold-start fallbacks.
//!
//! - A user in the user store gets its LEARN embedding; a user without history gets `known = 0`
//!   (the aux network substitutes its learned default user embedding).
//! - An item in the item store gets its LEARN embedding. An item absent from it but present in the
//!   content store gets a *content-derived* embedding: a ridge regression from content embeddings
//!   to LEARN item embeddings, fitted on the items present in both stores. (LEARN's own item tower
//!   maps content to item embeddings; the ranker side has only the exported stores, so we learn
//!   that map linearly.) An item in neither store gets `known = 0` (learned default item).

use crate::data::HostLearn;
use crate::{Error, Result};
use burn::tensor::{Tensor, TensorData};
use learnrec_eval::data::IdMap;
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use learnrec_model::CpuBackend;
use std::path::Path;

/// Where an item's LEARN embedding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSource {
    /// The LEARN item store.
    Store,
    /// Derived from the content store (ridge map).
    Content,
    /// Neither: the learned default.
    Default,
}

/// How many users and items each source covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    pub users: usize,
    pub users_in_store: usize,
    pub items: usize,
    pub items_in_store: usize,
    pub items_from_content: usize,
    pub items_default: usize,
}

/// Frozen LEARN user and item embeddings for every dense id of a dataset.
#[derive(Debug, Clone)]
pub struct LearnLookup {
    user_dim: usize,
    item_dim: usize,
    user: Vec<f32>,
    user_known: Vec<f32>,
    item: Vec<f32>,
    item_source: Vec<ItemSource>,
    /// Coverage of each source.
    pub stats: LookupStats,
}

/// Loads a store and checks its kind, naming the file on error.
pub fn load_store(path: &Path, kind: StoreKind) -> Result<EmbeddingStore> {
    let s = EmbeddingStore::load(path)?;
    if s.kind != kind {
        return Err(Error::file(
            path,
            format!(
                "the store holds `{}` embeddings; expected a `{}` store",
                s.kind.name(),
                kind.name()
            ),
        ));
    }
    if s.is_empty() || s.dim == 0 {
        return Err(Error::file(path, "the store is empty"));
    }
    Ok(s)
}

fn check_kind(s: &EmbeddingStore, kind: StoreKind, what: &str) -> Result<()> {
    if s.kind != kind {
        return Err(Error::Invalid(format!(
            "the {what} store holds `{}` embeddings; expected `{}`",
            s.kind.name(),
            kind.name()
        )));
    }
    if s.is_empty() || s.dim == 0 {
        return Err(Error::Invalid(format!("the {what} store is empty")));
    }
    Ok(())
}

impl LearnLookup {
    /// Resolves every user of `users` and item of `items` against the stores.
    pub fn new(
        users: &IdMap,
        items: &IdMap,
        user_store: &EmbeddingStore,
        item_store: &EmbeddingStore,
        content: Option<&EmbeddingStore>,
    ) -> Result<Self> {
        check_kind(user_store, StoreKind::User, "user")?;
        check_kind(item_store, StoreKind::Item, "item")?;
        if let Some(c) = content {
            check_kind(c, StoreKind::Content, "content")?;
        }
        let (du, di) = (user_store.dim, item_store.dim);
        let mut stats = LookupStats {
            users: users.len(),
            items: items.len(),
            ..Default::default()
        };
        let mut user = vec![0f32; users.len() * du];
        let mut user_known = vec![0f32; users.len()];
        for (u, name) in users.names().iter().enumerate() {
            if let Some(row) = user_store.get(name) {
                user[u * du..(u + 1) * du].copy_from_slice(row);
                user_known[u] = 1.0;
                stats.users_in_store += 1;
            }
        }
        let map = match content {
            Some(c) => ContentMap::fit(c, item_store)?,
            None => None,
        };
        let mut item = vec![0f32; items.len() * di];
        let mut item_source = vec![ItemSource::Default; items.len()];
        for (i, name) in items.names().iter().enumerate() {
            let out = &mut item[i * di..(i + 1) * di];
            if let Some(row) = item_store.get(name) {
                out.copy_from_slice(row);
                item_source[i] = ItemSource::Store;
                stats.items_in_store += 1;
            } else if let (Some(m), Some(c)) = (&map, content.and_then(|c| c.get(name))) {
                m.apply(c, out);
                item_source[i] = ItemSource::Content;
                stats.items_from_content += 1;
            } else {
                stats.items_default += 1;
            }
        }
        Ok(LearnLookup {
            user_dim: du,
            item_dim: di,
            user,
            user_known,
            item,
            item_source,
            stats,
        })
    }

    /// Width of the user embeddings.
    pub fn user_dim(&self) -> usize {
        self.user_dim
    }
    /// Width of the item embeddings.
    pub fn item_dim(&self) -> usize {
        self.item_dim
    }
    /// Source of dense item `item` (`Default` for ids beyond the dataset).
    pub fn item_source(&self, item: u32) -> ItemSource {
        self.item_source
            .get(item as usize)
            .copied()
            .unwrap_or(ItemSource::Default)
    }

    /// LEARN inputs of `(user, item)` dense-id pairs; ids beyond the dataset count as unknown.
    pub fn fill(&self, pairs: impl IntoIterator<Item = (u32, u32)>) -> HostLearn {
        let (du, di) = (self.user_dim, self.item_dim);
        let pairs = pairs.into_iter();
        let n = pairs.size_hint().0;
        let mut h = HostLearn {
            user_dim: du,
            item_dim: di,
            user: Vec::with_capacity(n * du),
            user_known: Vec::with_capacity(n),
            item: Vec::with_capacity(n * di),
            item_known: Vec::with_capacity(n),
        };
        for (u, i) in pairs {
            let (u, i) = (u as usize, i as usize);
            match self.user_known.get(u) {
                Some(&k) => {
                    h.user.extend_from_slice(&self.user[u * du..(u + 1) * du]);
                    h.user_known.push(k);
                }
                None => {
                    h.user.extend(std::iter::repeat_n(0.0, du));
                    h.user_known.push(0.0);
                }
            }
            match self.item_source.get(i) {
                Some(s) if *s != ItemSource::Default => {
                    h.item.extend_from_slice(&self.item[i * di..(i + 1) * di]);
                    h.item_known.push(1.0);
                }
                _ => {
                    h.item.extend(std::iter::repeat_n(0.0, di));
                    h.item_known.push(0.0);
                }
            }
        }
        h
    }
}

/// Ridge regression from content embeddings to LEARN item embeddings (with a bias column):
/// `W = (XᵀX + αI)⁻¹ XᵀY`, `α = 1e-3 · tr(XᵀX)/d`.
#[derive(Debug, Clone)]
pub struct ContentMap {
    /// `[(dc + 1), di]` row-major; the last row is the bias.
    w: Vec<f32>,
    dc: usize,
    di: usize,
}

/// At most this many items fit the map (a strided sample beyond that keeps the fit fast).
const MAX_FIT_ITEMS: usize = 20_000;

impl ContentMap {
    /// Fits the map on items in both stores; `None` when fewer than 2 items are shared.
    pub fn fit(content: &EmbeddingStore, items: &EmbeddingStore) -> Result<Option<Self>> {
        let shared: Vec<(usize, usize)> = items
            .ids
            .iter()
            .enumerate()
            .filter_map(|(r, id)| content.position(id).map(|c| (c, r)))
            .collect();
        if shared.len() < 2 {
            return Ok(None);
        }
        let step = shared.len().div_ceil(MAX_FIT_ITEMS);
        let rows: Vec<(usize, usize)> = shared.into_iter().step_by(step).collect();
        let (n, dc, di) = (rows.len(), content.dim, items.dim);
        let d = dc + 1;
        let mut x = Vec::with_capacity(n * d);
        let mut y = Vec::with_capacity(n * di);
        for &(c, r) in &rows {
            x.extend_from_slice(content.row(c));
            x.push(1.0);
            y.extend_from_slice(items.row(r));
        }
        let device = Default::default();
        let xt = Tensor::<CpuBackend, 2>::from_data(TensorData::new(x, [n, d]), &device);
        let yt = Tensor::<CpuBackend, 2>::from_data(TensorData::new(y, [n, di]), &device);
        let xtx: Vec<f32> = xt
            .clone()
            .transpose()
            .matmul(xt.clone())
            .into_data()
            .into_vec()
            .map_err(|e| {
                Error::Invalid(format!("content map: cannot read the Gram matrix: {e:?}"))
            })?;
        let xty: Vec<f32> = xt
            .transpose()
            .matmul(yt)
            .into_data()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("content map: cannot read XᵀY: {e:?}")))?;
        let mut a: Vec<f64> = xtx.iter().map(|&v| f64::from(v)).collect();
        let trace: f64 = (0..d).map(|k| a[k * d + k]).sum();
        let alpha = 1e-3 * trace / d as f64 + 1e-9;
        for k in 0..d {
            a[k * d + k] += alpha;
        }
        let b: Vec<f64> = xty.iter().map(|&v| f64::from(v)).collect();
        let w = cholesky_solve(&mut a, d, b, di).ok_or_else(|| {
            Error::Invalid("content map: the Gram matrix is not positive definite".into())
        })?;
        Ok(Some(ContentMap {
            w: w.into_iter().map(|v| v as f32).collect(),
            dc,
            di,
        }))
    }

    /// `out = [c, 1] · W`.
    pub fn apply(&self, c: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (k, &ck) in c
            .iter()
            .take(self.dc)
            .chain(std::iter::once(&1.0))
            .enumerate()
        {
            let row = &self.w[k * self.di..(k + 1) * self.di];
            for (o, &w) in out.iter_mut().zip(row) {
                *o += ck * w;
            }
        }
    }
}

/// Solves `A X = B` for symmetric positive definite `A` (`d × d`, overwritten by its Cholesky
/// factor) and `B` (`d × m`); `None` if `A` is not positive definite.
fn cholesky_solve(a: &mut [f64], d: usize, mut b: Vec<f64>, m: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return None;
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    // forward: L Z = B
    for i in 0..d {
        for k in 0..i {
            let lik = a[i * d + k];
            for c in 0..m {
                b[i * m + c] -= lik * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] /= a[i * d + i];
        }
    }
    // backward: Lᵀ X = Z
    for i in (0..d).rev() {
        for k in i + 1..d {
            let lki = a[k * d + i];
            for c in 0..m {
                b[i * m + c] -= lki * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] /= a[i * d + i];
        }
    }
    Some(b)
}
