//! AUC, per-user AUC, UAUC and WUAUC (paper Tables 6 and 7).
//!
//! # Formulas
//!
//! For rows with labels `y ∈ {0,1}` and scores `s`, with `P` positives and `N` negatives,
//!
//! ```text
//! AUC = ( Σ_{i:y_i=1} Σ_{j:y_j=0} [s_i > s_j] + ½·[s_i = s_j] ) / (P·N)
//!     = ( R₊ − P(P+1)/2 ) / (P·N)          (R₊ = sum of the midranks of the positives)
//! ```
//!
//! Ties get midranks (half a pair each), which is what scikit-learn's `roc_auc_score` computes
//! (trapezoidal ROC over distinct thresholds). learnrec evaluates it from sorted tie runs with an
//! exact integer numerator `U2 = Σ_runs 2·neg_below·pos_run + pos_run·neg_run` (twice the
//! Mann–Whitney U) and one division, `AUC = U2 / (2·P·N)`, so the result does not depend on the
//! order in which rows or users are visited.
//!
//! AUC is **undefined** when `P = 0` or `N = 0` (scikit-learn raises/returns NaN with a warning):
//! here it is `None`, never a silent 0.5, and callers count such users as skipped.
//!
//! Per user `u` with a defined AUC `AUC_u` and a weight `w_u`:
//!
//! ```text
//! UAUC  = (1/|U'|) Σ_{u∈U'} AUC_u                 (U' = users with both classes)
//! WUAUC = Σ_{u∈U'} w_u·AUC_u / Σ_{u∈U'} w_u       (w_u = the user's impressions by default)
//! ```
//!
//! One-class users are skipped, as FuxiCTR, EasyRec, RecBole (GAUC) and xdl do; the number skipped
//! is always reported ([`UserAucSummary::users_skipped`]).

use crate::{Error, Result};
use std::collections::HashMap;
use std::hash::Hash;

/// A score type with a total-order key: equal scores get equal keys, larger scores larger keys.
pub trait ScoreKey: Copy {
    /// The unsigned key type.
    type Key: Ord + Copy + Eq;
    /// Monotone key of a finite score (`-0.0` and `0.0` map to the same key).
    fn key(self) -> Self::Key;
    /// Whether the score is finite (NaN and ±Inf are rejected by the metrics).
    fn is_finite_score(self) -> bool;
}

impl ScoreKey for f32 {
    type Key = u32;
    fn key(self) -> u32 {
        f32_key(self)
    }
    fn is_finite_score(self) -> bool {
        self.is_finite()
    }
}

impl ScoreKey for f64 {
    type Key = u64;
    fn key(self) -> u64 {
        let x = if self == 0.0 { 0.0f64 } else { self };
        let b = x.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    }
    fn is_finite_score(self) -> bool {
        self.is_finite()
    }
}

/// Monotone `u32` key of an `f32` score: `a < b ⇔ key(a) < key(b)`, `key(-0.0) = key(0.0)`.
#[inline]
pub fn f32_key(s: f32) -> u32 {
    let x = if s == 0.0 { 0.0f32 } else { s };
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | (1 << 31) }
}

/// Exact AUC sufficient statistics of one set of rows: positives, negatives and
/// `u2 = 2·U` (twice the Mann–Whitney U statistic, ties counted as one half).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AucCounts {
    /// Number of positive rows `P`.
    pub pos: u64,
    /// Number of negative rows `N`.
    pub neg: u64,
    /// `2·U = Σ_runs 2·neg_below·pos_run + pos_run·neg_run`.
    pub u2: u128,
}

impl AucCounts {
    /// `AUC = u2 / (2·P·N)`, or `None` when one class is absent (undefined).
    pub fn auc(&self) -> Option<f64> {
        if self.pos == 0 || self.neg == 0 {
            return None;
        }
        Some(self.u2 as f64 / (2.0 * self.pos as f64 * self.neg as f64))
    }
}

/// Accumulates [`AucCounts`] from tie runs visited in increasing score order.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunAccumulator {
    counts: AucCounts,
}

impl RunAccumulator {
    /// Adds one run of rows sharing a score: `pos` positives and `neg` negatives.
    #[inline]
    pub fn run(&mut self, pos: u64, neg: u64) {
        let c = &mut self.counts;
        c.u2 += 2 * (c.neg as u128) * (pos as u128) + (pos as u128) * (neg as u128);
        c.pos += pos;
        c.neg += neg;
    }
    /// The statistics so far.
    pub fn counts(&self) -> AucCounts {
        self.counts
    }
}

/// AUC of `scores` against binary `labels` with midranks for ties (equals scikit-learn's
/// `roc_auc_score`). Returns `Ok(None)` when all labels are equal or the input is empty
/// (undefined), and an error on a length mismatch or a NaN/Inf score.
pub fn auc<S: ScoreKey>(labels: &[bool], scores: &[S]) -> Result<Option<f64>> {
    Ok(auc_counts(labels, scores)?.auc())
}

/// The exact [`AucCounts`] of `scores` against `labels` (see [`auc`]).
pub fn auc_counts<S: ScoreKey>(labels: &[bool], scores: &[S]) -> Result<AucCounts> {
    if labels.len() != scores.len() {
        return Err(Error::Invalid(format!("auc: {} labels but {} scores", labels.len(), scores.len())));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite_score()) {
        return Err(Error::Invalid(format!("auc: score {i} is not finite (NaN or Inf)")));
    }
    let mut pairs: Vec<(S::Key, bool)> = scores.iter().map(|s| s.key()).zip(labels.iter().copied()).collect();
    pairs.sort_unstable_by_key(|p| p.0);
    Ok(counts_of_sorted(&pairs))
}

/// [`AucCounts`] of `(key, label)` pairs already sorted by key.
pub fn counts_of_sorted<K: Eq + Copy>(pairs: &[(K, bool)]) -> AucCounts {
    let mut acc = RunAccumulator::default();
    let mut i = 0;
    while i < pairs.len() {
        let k = pairs[i].0;
        let (mut p, mut n) = (0u64, 0u64);
        while i < pairs.len() && pairs[i].0 == k {
            if pairs[i].1 {
                p += 1
            } else {
                n += 1
            }
            i += 1;
        }
        acc.run(p, n);
    }
    acc.counts()
}

/// How users are weighted in WUAUC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserWeight {
    /// The user's impressions (rows) — the usual WUAUC/GAUC weight.
    #[default]
    Rows,
    /// The user's positives.
    Positives,
    /// The sum of the user's row weights (the `weight` column).
    Weight,
}

impl UserWeight {
    /// Parses `rows`, `impressions`, `positives`, `weight`.
    pub fn parse(s: &str) -> Option<UserWeight> {
        match s {
            "rows" | "impressions" => Some(UserWeight::Rows),
            "positives" | "pos" => Some(UserWeight::Positives),
            "weight" | "weights" => Some(UserWeight::Weight),
            _ => None,
        }
    }
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            UserWeight::Rows => "rows",
            UserWeight::Positives => "positives",
            UserWeight::Weight => "weight",
        }
    }
}

/// UAUC, WUAUC and the users counted and skipped.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserAucSummary {
    /// Uniform mean of per-user AUC over users with both classes (`None` if there are none).
    pub uauc: Option<f64>,
    /// Weighted mean of per-user AUC (`None` if no user counted or the weights sum to 0).
    pub wuauc: Option<f64>,
    /// Users with both classes (their AUC is defined).
    pub users_counted: u64,
    /// Users with one class only (AUC undefined, skipped).
    pub users_skipped: u64,
}

/// One user's AUC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserAuc<U> {
    pub user: U,
    pub rows: u64,
    pub positives: u64,
    /// `None` for a one-class user (undefined).
    pub auc: Option<f64>,
}

/// Per-user AUC of every user, in order of first appearance. Errors as [`auc`].
pub fn per_user_auc<U: Hash + Eq + Copy, S: ScoreKey>(
    users: &[U],
    labels: &[bool],
    scores: &[S],
) -> Result<Vec<UserAuc<U>>> {
    if users.len() != labels.len() || labels.len() != scores.len() {
        return Err(Error::Invalid(format!(
            "user_auc: {} users, {} labels, {} scores",
            users.len(),
            labels.len(),
            scores.len()
        )));
    }
    let mut index: HashMap<U, usize> = HashMap::new();
    type Group<U, K> = (U, Vec<(K, bool)>);
    let mut groups: Vec<Group<U, S::Key>> = Vec::new();
    for i in 0..users.len() {
        if !scores[i].is_finite_score() {
            return Err(Error::Invalid(format!("user_auc: score {i} is not finite (NaN or Inf)")));
        }
        let g = *index.entry(users[i]).or_insert_with(|| {
            groups.push((users[i], Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((scores[i].key(), labels[i]));
    }
    Ok(groups
        .into_iter()
        .map(|(u, mut v)| {
            v.sort_unstable_by_key(|p| p.0);
            let c = counts_of_sorted(&v);
            UserAuc { user: u, rows: v.len() as u64, positives: c.pos, auc: c.auc() }
        })
        .collect())
}

/// UAUC and WUAUC of rows grouped by `users`. `weights` (per row) is needed only for
/// [`UserWeight::Weight`]; a user's weight is the sum of its rows' weights.
pub fn user_auc<U: Hash + Eq + Copy, S: ScoreKey>(
    users: &[U],
    labels: &[bool],
    scores: &[S],
    weight: UserWeight,
    weights: Option<&[f32]>,
) -> Result<UserAucSummary> {
    let per = per_user_auc(users, labels, scores)?;
    let mut user_w: HashMap<U, f64> = HashMap::new();
    if weight == UserWeight::Weight {
        let w = weights.ok_or_else(|| Error::Invalid("user_auc: weight mode `weight` needs row weights".into()))?;
        if w.len() != users.len() {
            return Err(Error::Invalid(format!("user_auc: {} weights for {} rows", w.len(), users.len())));
        }
        for (u, &x) in users.iter().zip(w) {
            *user_w.entry(*u).or_default() += x as f64;
        }
    }
    let mut s = UserAucSummary { uauc: None, wuauc: None, users_counted: 0, users_skipped: 0 };
    let (mut sum, mut wsum, mut wasum) = (0.0f64, 0.0f64, 0.0f64);
    for UserAuc { user: u, rows, positives: pos, auc: a } in per {
        let Some(a) = a else {
            s.users_skipped += 1;
            continue;
        };
        s.users_counted += 1;
        let w = match weight {
            UserWeight::Rows => rows as f64,
            UserWeight::Positives => pos as f64,
            UserWeight::Weight => user_w.get(&u).copied().unwrap_or(0.0),
        };
        sum += a;
        wsum += w;
        wasum += w * a;
    }
    if s.users_counted > 0 {
        s.uauc = Some(sum / s.users_counted as f64);
    }
    if wsum > 0.0 {
        s.wuauc = Some(wasum / wsum);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        // sklearn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        let a = auc(&[false, false, true, true], &[0.1f32, 0.4, 0.35, 0.8]).unwrap();
        assert_eq!(a, Some(0.75));
        // all tied -> 0.5 by midranks (defined, both classes present)
        assert_eq!(auc(&[false, true], &[0.3f32, 0.3]).unwrap(), Some(0.5));
    }

    #[test]
    fn auc_undefined_and_errors() {
        assert_eq!(auc::<f32>(&[], &[]).unwrap(), None);
        assert_eq!(auc(&[true, true], &[0.1f32, 0.2]).unwrap(), None);
        let e = auc(&[true, false], &[f32::NAN, 0.2]).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        let e = auc(&[true], &[0.1f32, 0.2]).unwrap_err().to_string();
        assert!(e.contains("1 labels but 2 scores"), "{e}");
    }

    #[test]
    fn keys_are_monotone() {
        let xs = [-f32::MAX, -1.0, -1e-30, -0.0, 0.0, 1e-30, 0.5, 1.0, f32::MAX];
        for w in xs.windows(2) {
            assert!(f32_key(w[0]) <= f32_key(w[1]));
        }
        assert_eq!(f32_key(-0.0), f32_key(0.0));
        assert!(f32_key(-1.0) < f32_key(-1e-30));
    }

    #[test]
    fn user_auc_skips_one_class_users() {
        let users = [1u32, 1, 1, 2, 2, 3, 3];
        let labels = [true, false, false, true, true, false, true];
        let scores = [0.9f32, 0.1, 0.95, 0.5, 0.6, 0.2, 0.1];
        let s = user_auc(&users, &labels, &scores, UserWeight::Rows, None).unwrap();
        assert_eq!((s.users_counted, s.users_skipped), (2, 1));
        // user 1: 0.5, user 3: 0.0
        assert_eq!(s.uauc, Some(0.25));
        assert_eq!(s.wuauc, Some((3.0 * 0.5 + 2.0 * 0.0) / 5.0));
    }
}
