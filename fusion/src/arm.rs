//! Trained rankers as A/B arms: [`RankerArm`] implements [`learnrec_eval::abtest::Arm`] for a
//! baseline or LEARN-fused ranker saved by `rank-train` ([`crate::io::load_rankers`]).
//!
//! The simulator speaks the environment's dense user/item indices; a ranker speaks its training
//! dataset's external ids. At construction the arm resolves every environment user and item once:
//! external id (e.g. the world's `u00042` / `i0042`, or MovieLens' raw ids) → the ranker's dataset
//! id (item categorical features, LEARN lookup) → the ranker's ID-vocabulary row (0 = OOV for ids
//! unseen in training). A request's candidates are then scored in one batch, exactly as
//! `rank-train`'s predict path builds batches (same rows, same LEARN lookup with its cold-start
//! fallbacks).

use crate::data::HostBatch;
use crate::io::SavedRankers;
use crate::lookup::LearnLookup;
use crate::model::RankModel;
use crate::{CpuBackend, Error, FusedRanker, Ranker, Result};
use learnrec_eval::abtest::Arm;
use learnrec_eval::data::IdMap;

/// Which saved ranker an arm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankerKind {
    /// The reference ranker (ID + categorical embeddings).
    Baseline,
    /// The ranker with the LEARN aux network plugged in.
    Fused,
}

impl RankerKind {
    /// Label for reports.
    pub fn label(self) -> &'static str {
        match self {
            RankerKind::Baseline => "baseline ranker",
            RankerKind::Fused => "LEARN-fused ranker",
        }
    }
}

enum Model {
    Baseline(Ranker<CpuBackend>),
    Fused(FusedRanker<CpuBackend>),
}

/// How the environment's users and items resolved against a ranker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArmCoverage {
    /// Environment users / items.
    pub users: usize,
    pub items: usize,
    /// … found in the ranker's dataset (features, LEARN lookup).
    pub users_in_dataset: usize,
    pub items_in_dataset: usize,
    /// … with a trained ID row (not OOV).
    pub users_in_vocab: usize,
    pub items_in_vocab: usize,
}

/// A saved ranker serving A/B requests (CPU backend). `Send + Sync`: Burn's Flex modules are
/// shared read-only across the simulator's worker threads.
pub struct RankerArm {
    kind: RankerKind,
    model: Model,
    /// Per environment user: ID row, dataset id (`u32::MAX` = not in the dataset).
    user_row: Vec<i64>,
    user_ds: Vec<u32>,
    /// Per environment item: ID row, dataset id, categorical rows (`n_fields` each).
    item_row: Vec<i64>,
    item_ds: Vec<u32>,
    item_fields: Vec<i64>,
    n_fields: usize,
    /// Each field's "missing" row (for items beyond the environment).
    missing_fields: Vec<i64>,
    lookup: Option<LearnLookup>,
    /// Coverage of the id mapping.
    pub coverage: ArmCoverage,
}

impl std::fmt::Debug for RankerArm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RankerArm")
            .field("kind", &self.kind)
            .field("coverage", &self.coverage)
            .finish_non_exhaustive()
    }
}

impl RankerArm {
    /// An arm running `saved`'s `kind` ranker. `env_users[u]` / `env_items[i]` are the external ids
    /// of the environment's dense user `u` / item `i`. `lookup` must be built over the rankers'
    /// dataset ids (`LearnLookup::new(&meta.dataset_users, &meta.dataset_items, …)`) and is
    /// required for [`RankerKind::Fused`].
    pub fn new(
        saved: &SavedRankers<CpuBackend>,
        kind: RankerKind,
        lookup: Option<LearnLookup>,
        env_users: &[String],
        env_items: &[String],
    ) -> Result<Self> {
        let meta = &saved.meta;
        let model = match kind {
            RankerKind::Baseline => Model::Baseline(saved.baseline.clone()),
            RankerKind::Fused => Model::Fused(saved.fused.clone().ok_or_else(|| {
                Error::Invalid(
                    "the saved rankers hold no fused ranker (rank-train ran without LEARN stores)"
                        .into(),
                )
            })?),
        };
        let lookup = match kind {
            RankerKind::Baseline => None,
            RankerKind::Fused => Some(lookup.ok_or_else(|| {
                Error::Invalid("the fused ranker arm needs the LEARN user and item stores".into())
            })?),
        };
        if let (Some(l), Some(fc)) = (&lookup, &meta.fused) {
            if l.user_dim() != fc.fusion.user_dim || l.item_dim() != fc.fusion.item_dim {
                return Err(Error::Invalid(format!(
                    "the LEARN stores have widths user {} / item {}, the fused ranker was trained on {} / {}",
                    l.user_dim(),
                    l.item_dim(),
                    fc.fusion.user_dim,
                    fc.fusion.item_dim
                )));
            }
        }
        let mut cov = ArmCoverage {
            users: env_users.len(),
            items: env_items.len(),
            ..Default::default()
        };
        let resolve = |names: &[String],
                       ds: &IdMap,
                       in_ds: &mut usize,
                       in_vocab: &mut usize,
                       row: &dyn Fn(&str) -> u32| {
            let mut rows = Vec::with_capacity(names.len());
            let mut ids = Vec::with_capacity(names.len());
            for n in names {
                let d = ds.get(n);
                *in_ds += usize::from(d.is_some());
                let r = row(n);
                *in_vocab += usize::from(r != 0);
                rows.push(i64::from(r));
                ids.push(d.unwrap_or(u32::MAX));
            }
            (rows, ids)
        };
        let (user_row, user_ds) = resolve(
            env_users,
            &meta.dataset_users,
            &mut cov.users_in_dataset,
            &mut cov.users_in_vocab,
            &|n| meta.users.row(n),
        );
        let (item_row, item_ds) = resolve(
            env_items,
            &meta.dataset_items,
            &mut cov.items_in_dataset,
            &mut cov.items_in_vocab,
            &|n| meta.items.row(n),
        );
        let offsets = meta.features.offsets();
        let mut item_fields = Vec::with_capacity(env_items.len() * offsets.len());
        for &d in &item_ds {
            meta.features.rows_of(d, &offsets, &mut item_fields);
        }
        Ok(RankerArm {
            kind,
            model,
            user_row,
            user_ds,
            item_row,
            item_ds,
            item_fields,
            n_fields: offsets.len(),
            missing_fields: offsets.iter().map(|&o| i64::from(o)).collect(),
            lookup,
            coverage: cov,
        })
    }

    /// Which ranker this arm runs.
    pub fn kind(&self) -> RankerKind {
        self.kind
    }

    /// The host batch of one request (also used by benchmarks).
    pub fn batch(&self, user: u32, items: &[u32]) -> HostBatch {
        let n = items.len();
        let f = self.n_fields;
        let u_row = self.user_row.get(user as usize).copied().unwrap_or(0);
        let u_ds = self.user_ds.get(user as usize).copied().unwrap_or(u32::MAX);
        let mut b = HostBatch {
            users: vec![u_row; n],
            items: Vec::with_capacity(n),
            fields: Vec::with_capacity(n * f),
            n_fields: f,
            labels: vec![0.0; n],
            weights: vec![1.0; n],
            learn: None,
        };
        for &i in items {
            let i = i as usize;
            b.items.push(self.item_row.get(i).copied().unwrap_or(0));
            match self.item_fields.get(i * f..(i + 1) * f) {
                Some(rows) => b.fields.extend_from_slice(rows),
                None => b.fields.extend_from_slice(&self.missing_fields),
            }
        }
        if let Some(l) = &self.lookup {
            b.learn = Some(l.fill(items.iter().map(|&i| {
                (
                    u_ds,
                    self.item_ds.get(i as usize).copied().unwrap_or(u32::MAX),
                )
            })));
        }
        b
    }

    /// Logits of a request's candidates.
    pub fn logits(&self, user: u32, items: &[u32]) -> Result<Vec<f32>> {
        let device = Default::default();
        let batch = self.batch(user, items).to_device::<CpuBackend>(&device);
        let t = match &self.model {
            Model::Baseline(m) => m.score_batch(&batch)?,
            Model::Fused(m) => m.score_batch(&batch)?,
        };
        t.into_data()
            .convert::<f32>()
            .into_vec()
            .map_err(|e| Error::Invalid(format!("cannot read the ranker's scores: {e:?}")))
    }
}

impl Arm for RankerArm {
    /// Scores are the ranker's logits (monotone in its CVR). Construction validates everything a
    /// request needs; should scoring still fail, the request gets all-zero scores (shown in
    /// retrieval order) rather than stopping the simulation.
    fn score(&self, user: u32, items: &[u32], _day: u32, out: &mut [f32]) {
        if items.is_empty() {
            return;
        }
        match self.logits(user, items) {
            Ok(s) if s.len() == out.len() => out.copy_from_slice(&s),
            _ => out.fill(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranker_arm_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::RankerArm>();
    }
}
