//! Temporal splits.
//!
//! * [`user_sequences`]: the paper's per-user split of positive actions at a time boundary into a
//!   history window (paper: 9 months before the boundary, the last 80 positives) and a target
//!   window (paper: 1 month after it, the first 40 positives); the PCH towers train and evaluate
//!   on these.
//! * [`time_split`]: a global train/valid/test split of a log by time (quantiles of the rows or
//!   explicit timestamps), for the ranker.
//!
//! Windows are half-open: history = `[boundary − history_window, boundary)`, target =
//! `[boundary, boundary + target_window)`; an interaction exactly at the boundary is a target.

use crate::data::{Interaction, InteractionLog, LabelRule};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Seconds per day.
pub const DAY: i64 = 86_400;
/// The paper's history window: 9 months, taken as 270 days.
pub const PAPER_HISTORY_DAYS: i64 = 270;
/// The paper's target window: 1 month, taken as 30 days.
pub const PAPER_TARGET_DAYS: i64 = 30;
/// The paper's history length.
pub const PAPER_HISTORY_LEN: usize = 80;
/// The paper's target length.
pub const PAPER_TARGET_LEN: usize = 40;

/// Which interactions make up a user's sequences (judged by a [`LabelRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positive {
    /// Clicks, conversions and every rating ([`LabelRule::is_click`]: for MovieLens "rated =
    /// watched", so all 1,000,209 ratings count; for a world log impressions are dropped).
    /// The default: the paper's sequences are of the user's positive engagements.
    #[default]
    Clicks,
    /// Conversions only ([`LabelRule::is_conversion`]: purchases, or ratings ≥ 4).
    Conversions,
}

impl Positive {
    /// Whether `x` belongs in a sequence.
    pub fn accepts(self, rule: &LabelRule, x: &Interaction) -> bool {
        match self {
            Positive::Clicks => rule.is_click(x),
            Positive::Conversions => rule.is_conversion(x),
        }
    }
}

/// Configuration of [`user_sequences`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequenceSplit {
    /// First second of the target window.
    pub boundary: i64,
    /// Length of the history window in seconds; `None` = everything before the boundary.
    pub history_window: Option<i64>,
    /// Length of the target window in seconds; `None` = everything from the boundary on.
    pub target_window: Option<i64>,
    /// At most this many history items (the most recent ones).
    pub history_len: usize,
    /// At most this many target items (the earliest ones).
    pub target_len: usize,
    /// Which actions count.
    pub positive: Positive,
    /// How actions map to clicks / conversions.
    pub label: LabelRule,
    /// Drop an item that repeats the previous item of the same window (a world log records a
    /// click and then a conversion of the same item; the sequence keeps it once).
    pub dedup_consecutive: bool,
}

impl SequenceSplit {
    /// The paper's setting at `boundary`: 270-day history, 30-day target, lengths 80 / 40,
    /// click-level positives, consecutive repeats collapsed.
    pub fn paper(boundary: i64) -> Self {
        SequenceSplit {
            boundary,
            history_window: Some(PAPER_HISTORY_DAYS * DAY),
            target_window: Some(PAPER_TARGET_DAYS * DAY),
            history_len: PAPER_HISTORY_LEN,
            target_len: PAPER_TARGET_LEN,
            positive: Positive::Clicks,
            label: LabelRule::default(),
            dedup_consecutive: true,
        }
    }

    /// The first second of the history window (`i64::MIN` when unbounded).
    pub fn history_start(&self) -> i64 {
        self.history_window.map_or(i64::MIN, |w| self.boundary.saturating_sub(w))
    }

    /// One past the last second of the target window (`i64::MAX` when unbounded).
    pub fn target_end(&self) -> i64 {
        self.target_window.map_or(i64::MAX, |w| self.boundary.saturating_add(w))
    }
}

/// The boundary that leaves the last `target_days` of the log for the target window:
/// `max_ts + 1 − target_days·DAY`, so the window `[boundary, boundary + target_days·DAY)` ends
/// just after the last interaction. `None` for an empty log.
pub fn boundary_before_end(log: &InteractionLog, target_days: i64) -> Option<i64> {
    let (_, max) = log.time_range()?;
    Some(max.saturating_add(1).saturating_sub(target_days.saturating_mul(DAY)))
}

/// One user's history and target sequences (dense item ids, oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSequences {
    pub user: u32,
    /// The last `history_len` positives before the boundary, oldest first.
    pub history: Vec<u32>,
    /// Timestamps of `history`.
    pub history_ts: Vec<i64>,
    /// The first `target_len` positives from the boundary on, oldest first.
    pub target: Vec<u32>,
}

/// Splits every user's positive interactions at `cfg.boundary` (see [`SequenceSplit`]).
///
/// Returns one entry per user with at least one positive in either window, by user id. The log
/// need not be sorted; each user's interactions are ordered by time (ties keep log order).
pub fn user_sequences(log: &InteractionLog, cfg: &SequenceSplit) -> Vec<UserSequences> {
    let (lo, hi) = (cfg.history_start(), cfg.target_end());
    let n_users = log.rows.iter().map(|r| r.user as usize + 1).max().unwrap_or(0).max(log.users.len());
    let mut per_user: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n_users];
    for r in &log.rows {
        if r.ts >= lo && r.ts < hi && cfg.positive.accepts(&cfg.label, r) {
            per_user[r.user as usize].push((r.ts, r.item));
        }
    }
    let mut out = Vec::new();
    for (user, mut events) in per_user.into_iter().enumerate() {
        if events.is_empty() {
            continue;
        }
        events.sort_by_key(|e| e.0);
        let p = events.partition_point(|e| e.0 < cfg.boundary);
        let (mut hist, mut tgt) = (events[..p].to_vec(), events[p..].to_vec());
        if cfg.dedup_consecutive {
            hist.dedup_by_key(|e| e.1);
            tgt.dedup_by_key(|e| e.1);
        }
        let hist = &hist[hist.len().saturating_sub(cfg.history_len)..];
        let tgt = &tgt[..tgt.len().min(cfg.target_len)];
        if hist.is_empty() && tgt.is_empty() {
            continue;
        }
        out.push(UserSequences {
            user: user as u32,
            history: hist.iter().map(|e| e.1).collect(),
            history_ts: hist.iter().map(|e| e.0).collect(),
            target: tgt.iter().map(|e| e.1).collect(),
        });
    }
    out
}

/// Where a global time split puts its cuts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSplitPoints {
    /// Cut at the timestamps of the rows at these fractions of the (time-sorted) log, e.g.
    /// `valid: 0.8, test: 0.9` for 80/10/10; `0 ≤ valid ≤ test ≤ 1`.
    Quantiles { valid: f64, test: f64 },
    /// Cut at explicit times: train `< valid_from ≤` valid `< test_from ≤` test.
    Timestamps { valid_from: i64, test_from: i64 },
}

/// A global time split: contiguous row ranges of a time-sorted log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimeSplit {
    /// First second of the validation part.
    pub valid_from: i64,
    /// First second of the test part.
    pub test_from: i64,
    pub train: Range<usize>,
    pub valid: Range<usize>,
    pub test: Range<usize>,
}

impl TimeSplit {
    /// The three parts' rows of `log` (the log the split was computed on).
    pub fn parts<'a>(&self, log: &'a InteractionLog) -> (&'a [Interaction], &'a [Interaction], &'a [Interaction]) {
        (&log.rows[self.train.clone()], &log.rows[self.valid.clone()], &log.rows[self.test.clone()])
    }
}

/// Splits a time-sorted log into train/valid/test by time. Rows sharing a timestamp never
/// straddle a cut: a cut at time `t` sends every row at `t` to the later part (so quantile
/// parts are only approximately the requested fractions when timestamps tie).
///
/// Errors: an unsorted log (call [`InteractionLog::sort`]), an empty log, quantiles outside
/// `0 ≤ valid ≤ test ≤ 1`, or `valid_from > test_from`.
pub fn time_split(log: &InteractionLog, points: TimeSplitPoints) -> Result<TimeSplit> {
    let rows = &log.rows;
    if rows.is_empty() {
        return Err(Error::Invalid("cannot split an empty interaction log".into()));
    }
    if !rows.windows(2).all(|w| w[0].ts <= w[1].ts) {
        return Err(Error::Invalid("interaction log is not sorted by time; call InteractionLog::sort first".into()));
    }
    let n = rows.len();
    let (valid_from, test_from) = match points {
        TimeSplitPoints::Quantiles { valid, test } => {
            if !(0.0..=1.0).contains(&valid) || !(0.0..=1.0).contains(&test) || valid > test {
                return Err(Error::Invalid(format!(
                    "time split quantiles must satisfy 0 <= valid <= test <= 1, got valid={valid}, test={test}"
                )));
            }
            let at = |q: f64| {
                let i = (q * n as f64).floor() as usize;
                if i >= n { rows[n - 1].ts.saturating_add(1) } else { rows[i].ts }
            };
            (at(valid), at(test))
        }
        TimeSplitPoints::Timestamps { valid_from, test_from } => {
            if valid_from > test_from {
                return Err(Error::Invalid(format!(
                    "time split needs valid_from <= test_from, got {valid_from} > {test_from}"
                )));
            }
            (valid_from, test_from)
        }
    };
    let v = rows.partition_point(|r| r.ts < valid_from);
    let t = rows.partition_point(|r| r.ts < test_from);
    Ok(TimeSplit { valid_from, test_from, train: 0..v, valid: v..t, test: t..n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Action, IdMap};

    fn row(user: u32, item: u32, ts: i64, action: Action, value: f32) -> Interaction {
        Interaction { user, item, ts, action, value, revenue: None }
    }

    fn log(rows: Vec<Interaction>) -> InteractionLog {
        let mut l = InteractionLog {
            users: IdMap::from_names(["u0", "u1", "u2"]),
            items: IdMap::from_names((0..100).map(|i| format!("i{i}"))),
            rows,
        };
        l.sort();
        l
    }

    fn cfg(boundary: i64) -> SequenceSplit {
        SequenceSplit {
            boundary,
            history_window: Some(100),
            target_window: Some(50),
            history_len: 3,
            target_len: 2,
            positive: Positive::Clicks,
            label: LabelRule::default(),
            dedup_consecutive: false,
        }
    }

    #[test]
    fn window_boundaries_are_half_open() {
        let c = Action::Click;
        // boundary 1000: history [900, 1000), target [1000, 1050).
        let l = log(vec![
            row(0, 1, 899, c, 1.0),  // before the history window
            row(0, 2, 900, c, 1.0),  // first second of history
            row(0, 3, 999, c, 1.0),  // last second of history
            row(0, 4, 1000, c, 1.0), // at the boundary: target
            row(0, 5, 1049, c, 1.0), // last second of target
            row(0, 6, 1050, c, 1.0), // after the target window
        ]);
        let s = user_sequences(&l, &cfg(1000));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].history, vec![2, 3]);
        assert_eq!(s[0].history_ts, vec![900, 999]);
        assert_eq!(s[0].target, vec![4, 5]);
    }

    #[test]
    fn lengths_keep_latest_history_and_earliest_target() {
        let c = Action::Click;
        let rows = (0..10).map(|k| row(1, k, 950 + k as i64 * 10, c, 1.0)).collect();
        // items 0..=4 at 950..=990 are history, 5..=9 at 1000..=1040 are target.
        let s = user_sequences(&log(rows), &cfg(1000));
        assert_eq!(s[0].user, 1);
        assert_eq!(s[0].history, vec![2, 3, 4]);
        assert_eq!(s[0].history_ts, vec![970, 980, 990]);
        assert_eq!(s[0].target, vec![5, 6]);
    }

    #[test]
    fn positives_follow_the_label_rule() {
        let l = log(vec![
            row(0, 1, 910, Action::Impression, 1.0),
            row(0, 2, 920, Action::Click, 1.0),
            row(0, 3, 930, Action::Conversion, 1.0),
            row(2, 4, 940, Action::Rating, 2.0),
            row(2, 5, 950, Action::Rating, 4.0),
        ]);
        let s = user_sequences(&l, &cfg(1000));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].history, vec![2, 3], "impressions are not positives");
        assert_eq!(s[1].history, vec![4, 5], "every rating is a click");
        let mut conv = cfg(1000);
        conv.positive = Positive::Conversions;
        let s = user_sequences(&l, &conv);
        assert_eq!(s[0].history, vec![3]);
        assert_eq!(s[1].history, vec![5], "ratings >= 4 are conversions");
    }

    #[test]
    fn consecutive_repeats_collapse_per_window() {
        let l = log(vec![
            row(0, 7, 990, Action::Click, 1.0),
            row(0, 7, 995, Action::Conversion, 1.0),
            row(0, 7, 1001, Action::Click, 1.0),
            row(0, 8, 1002, Action::Click, 1.0),
            row(0, 7, 1003, Action::Click, 1.0),
        ]);
        let mut c = cfg(1000);
        c.dedup_consecutive = true;
        c.target_len = 10;
        let s = user_sequences(&l, &c);
        assert_eq!(s[0].history, vec![7]);
        assert_eq!(s[0].history_ts, vec![990]);
        assert_eq!(s[0].target, vec![7, 8, 7]);
    }

    #[test]
    fn paper_defaults_and_boundary_before_end() {
        let p = SequenceSplit::paper(0);
        assert_eq!((p.history_len, p.target_len), (80, 40));
        assert_eq!(p.history_start(), -270 * DAY);
        assert_eq!(p.target_end(), 30 * DAY);
        let l = log(vec![row(0, 1, 10 * DAY, Action::Click, 1.0), row(0, 2, 40 * DAY - 1, Action::Click, 1.0)]);
        let b = boundary_before_end(&l, 30).unwrap();
        assert_eq!(b, 10 * DAY);
        let s = user_sequences(&l, &SequenceSplit::paper(b));
        assert_eq!(s[0].target, vec![1, 2], "the window ends just after the last interaction");
        assert!(boundary_before_end(&InteractionLog::default(), 30).is_none());
    }

    #[test]
    fn time_split_quantiles_ties_and_timestamps() {
        let c = Action::Click;
        // ts: 1 2 3 4 5 5 5 8 9 10
        let ts = [1, 2, 3, 4, 5, 5, 5, 8, 9, 10];
        let l = log(ts.iter().enumerate().map(|(k, &t)| row(0, k as u32, t, c, 1.0)).collect());
        let s = time_split(&l, TimeSplitPoints::Quantiles { valid: 0.5, test: 0.8 }).unwrap();
        // row 5 has ts 5: all three rows at ts 5 go to valid; row 8 has ts 9.
        assert_eq!((s.valid_from, s.test_from), (5, 9));
        assert_eq!((s.train.clone(), s.valid.clone(), s.test.clone()), (0..4, 4..8, 8..10));
        let (a, b, t) = s.parts(&l);
        assert_eq!((a.len(), b.len(), t.len()), (4, 4, 2));
        let s = time_split(&l, TimeSplitPoints::Quantiles { valid: 0.8, test: 1.0 }).unwrap();
        assert_eq!((s.valid.clone(), s.test.clone()), (8..10, 10..10));
        let s = time_split(&l, TimeSplitPoints::Timestamps { valid_from: 4, test_from: 9 }).unwrap();
        assert_eq!((s.train, s.valid, s.test), (0..3, 3..8, 8..10));
    }

    #[test]
    fn time_split_errors() {
        let c = Action::Click;
        let e = time_split(&InteractionLog::default(), TimeSplitPoints::Quantiles { valid: 0.8, test: 0.9 });
        assert!(e.unwrap_err().to_string().contains("empty"));
        let mut l = log(vec![row(0, 1, 5, c, 1.0), row(0, 2, 3, c, 1.0)]);
        let e = time_split(&l, TimeSplitPoints::Quantiles { valid: 0.9, test: 0.8 }).unwrap_err();
        assert!(e.to_string().contains("0 <= valid <= test <= 1"), "{e}");
        let e = time_split(&l, TimeSplitPoints::Timestamps { valid_from: 9, test_from: 1 }).unwrap_err();
        assert!(e.to_string().contains("valid_from <= test_from"), "{e}");
        l.rows.swap(0, 1);
        let e = time_split(&l, TimeSplitPoints::Timestamps { valid_from: 1, test_from: 9 }).unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
    }
}

/// Per-user "leave last" split for logs whose global time window is too sparse (MovieLens-1M's
/// last month has ~100 active users), by count: each user's positives are ordered by time, the
/// last `skip_last` are dropped (they belong to a later split, e.g. the test targets), the next
/// `target_len` from the end form the target and up to `history_len` before them the history.
/// A departure from the paper's global temporal split, used only where that split starves.
/// Positives sharing a timestamp can fall on both sides of a count cut; [`leave_last_split`]
/// cuts by time instead and is what `learnrec sequences --split leave-last` and `rank-train
/// --leave-last` share.
pub fn leave_last_sequences(log: &InteractionLog, cfg: &SequenceSplit, skip_last: usize) -> Vec<UserSequences> {
    let n_users = log.rows.iter().map(|r| r.user as usize + 1).max().unwrap_or(0).max(log.users.len());
    let mut per_user: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n_users];
    for r in &log.rows {
        if cfg.positive.accepts(&cfg.label, r) {
            per_user[r.user as usize].push((r.ts, r.item));
        }
    }
    let mut out = Vec::new();
    for (user, mut events) in per_user.into_iter().enumerate() {
        events.sort_by_key(|e| e.0);
        if cfg.dedup_consecutive {
            events.dedup_by_key(|e| e.1);
        }
        let end = events.len().saturating_sub(skip_last);
        let t0 = end.saturating_sub(cfg.target_len);
        let h0 = t0.saturating_sub(cfg.history_len);
        if t0 == 0 || t0 == end {
            continue; // no history or no target left for this user
        }
        out.push(UserSequences {
            user: user as u32,
            history: events[h0..t0].iter().map(|e| e.1).collect(),
            history_ts: events[h0..t0].iter().map(|e| e.0).collect(),
            target: events[t0..end].iter().map(|e| e.1).collect(),
        });
    }
    out
}

/// Which part of a split a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Train,
    Valid,
    Test,
}

/// Per-user cut times of a time-based leave-last split (see [`leave_last_cuts`]): one split of a
/// log that the towers' sequences, `export` and the ranker all share.
///
/// For a user with cuts `(valid_from, test_from)`: rows with `ts ≥ test_from` are test (the
/// towers' test targets, the ranker's test rows), rows in `[valid_from, test_from)` validation
/// (the towers' train targets, the ranker's early-stopping rows), earlier rows train (the
/// towers' train histories, the ranker's training rows). Test histories, hence exported LEARN
/// user embeddings, are the positives before `test_from`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveLastCuts {
    /// Per dense user id: `(valid_from, test_from)`, `valid_from ≤ test_from`; `None` for a user
    /// without positives (all their rows are train).
    pub cuts: Vec<Option<(i64, i64)>>,
}

impl LeaveLastCuts {
    /// The part of `user`'s row at time `ts`.
    pub fn part(&self, user: u32, ts: i64) -> Part {
        match self.cuts.get(user as usize).copied().flatten() {
            Some((_, t)) if ts >= t => Part::Test,
            Some((v, _)) if ts >= v => Part::Valid,
            _ => Part::Train,
        }
    }

    /// First second of `user`'s test part (`None`: the user has no test part).
    pub fn test_from(&self, user: u32) -> Option<i64> {
        self.cuts.get(user as usize).copied().flatten().map(|c| c.1)
    }
}

/// Each user's positives ordered by time (ties keep log order), consecutive repeats collapsed
/// when `cfg.dedup_consecutive`; indexed by dense user id.
fn positives_by_user(log: &InteractionLog, cfg: &SequenceSplit) -> Vec<Vec<(i64, u32)>> {
    let n_users = log.rows.iter().map(|r| r.user as usize + 1).max().unwrap_or(0).max(log.users.len());
    let mut per_user: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n_users];
    for r in &log.rows {
        if cfg.positive.accepts(&cfg.label, r) {
            per_user[r.user as usize].push((r.ts, r.item));
        }
    }
    for events in &mut per_user {
        events.sort_by_key(|e| e.0);
        if cfg.dedup_consecutive {
            events.dedup_by_key(|e| e.1);
        }
    }
    per_user
}

/// Per-user leave-last cuts by time: `test_from` = the time of a user's `n`-th last positive
/// (so the test part is the last `n` positives plus any that share that second), `valid_from`
/// = the time of the `n`-th last positive before `test_from` (`test_from` when there is none).
/// A user with at most `n` positives is all test (a cold-start test user). `n = 0` is treated
/// as 1. Windows of `cfg` are ignored; `cfg.positive`, `label` and `dedup_consecutive` apply.
pub fn leave_last_cuts(log: &InteractionLog, cfg: &SequenceSplit, n: usize) -> LeaveLastCuts {
    let n = n.max(1);
    let cuts = positives_by_user(log, cfg)
        .into_iter()
        .map(|ev| {
            if ev.is_empty() {
                return None;
            }
            let test_from = ev[ev.len().saturating_sub(n)].0;
            let p = ev.partition_point(|e| e.0 < test_from);
            let valid_from = if p == 0 { test_from } else { ev[p.saturating_sub(n)].0 };
            Some((valid_from, test_from))
        })
        .collect();
    LeaveLastCuts { cuts }
}

/// The towers' sequences of a time-based leave-last split (see [`leave_last_cuts`]): train =
/// history before `valid_from` (the last `cfg.history_len`), target = every positive in
/// `[valid_from, test_from)`; test = history before `test_from`, target = every positive from
/// `test_from` on (targets are not capped by `cfg.target_len`, so that the test targets are
/// exactly the ranker's rated test rows). Users with an empty history or target are left out.
pub fn leave_last_split(log: &InteractionLog, cfg: &SequenceSplit, cuts: &LeaveLastCuts) -> (Vec<UserSequences>, Vec<UserSequences>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (user, ev) in positives_by_user(log, cfg).into_iter().enumerate() {
        let Some((v, t)) = cuts.cuts.get(user).copied().flatten() else { continue };
        let make = |lo: i64, hi: i64| {
            let p = ev.partition_point(|e| e.0 < lo);
            let q = ev.partition_point(|e| e.0 < hi);
            let h = &ev[p.saturating_sub(cfg.history_len)..p];
            (!h.is_empty() && q > p).then(|| UserSequences {
                user: user as u32,
                history: h.iter().map(|e| e.1).collect(),
                history_ts: h.iter().map(|e| e.0).collect(),
                target: ev[p..q].iter().map(|e| e.1).collect(),
            })
        };
        train.extend(make(v, t));
        test.extend(make(t, i64::MAX));
    }
    (train, test)
}

#[cfg(test)]
mod leave_last_tests {
    use super::*;
    use crate::data::{Action, Interaction, InteractionLog};

    #[test]
    fn leave_last_takes_targets_from_the_end() {
        let mut log = InteractionLog::default();
        for (i, ts) in (0..10).zip(100..110) {
            log.rows.push(Interaction { user: 0, item: i, ts, action: Action::Rating, value: 5.0, revenue: None });
        }
        // a user with a single positive has no history: skipped
        log.rows.push(Interaction { user: 1, item: 3, ts: 5, action: Action::Rating, value: 5.0, revenue: None });
        let mut cfg = SequenceSplit::paper(0);
        cfg.history_len = 4;
        cfg.target_len = 2;
        let s = leave_last_sequences(&log, &cfg, 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].history, vec![4, 5, 6, 7]);
        assert_eq!(s[0].target, vec![8, 9]);
        let s = leave_last_sequences(&log, &cfg, 2);
        assert_eq!(s[0].history, vec![2, 3, 4, 5]);
        assert_eq!(s[0].target, vec![6, 7]);
        assert!(leave_last_sequences(&log, &cfg, 9).is_empty());
    }
}

#[cfg(test)]
mod leave_last_cut_tests {
    use super::*;
    use crate::data::{Action, Interaction, InteractionLog};

    fn rating(user: u32, item: u32, ts: i64, value: f32) -> Interaction {
        Interaction { user, item, ts, action: Action::Rating, value, revenue: None }
    }

    #[test]
    fn cuts_by_time_keep_ties_together() {
        let mut log = InteractionLog::default();
        // user 0: items 0..8 at ts 100..108, then items 8 and 9 both at ts 200.
        for i in 0..8 {
            log.rows.push(rating(0, i, 100 + i as i64, 3.0));
        }
        log.rows.push(rating(0, 8, 200, 5.0));
        log.rows.push(rating(0, 9, 200, 1.0));
        // user 1: two ratings, at most n = 3 → all test, no history.
        log.rows.push(rating(1, 3, 50, 4.0));
        log.rows.push(rating(1, 4, 60, 4.0));
        log.sort();
        let mut cfg = SequenceSplit::paper(0);
        cfg.history_len = 4;
        let cuts = leave_last_cuts(&log, &cfg, 3);
        // the 3rd last positive of user 0 is item 7 at 107; valid = the 3 positives before it.
        assert_eq!(cuts.cuts[0], Some((104, 107)));
        assert_eq!(cuts.cuts[1], Some((50, 50)));
        assert_eq!(cuts.part(0, 200), Part::Test);
        assert_eq!(cuts.part(0, 106), Part::Valid);
        assert_eq!(cuts.part(0, 103), Part::Train);
        assert_eq!(cuts.part(1, 50), Part::Test);
        assert_eq!(cuts.part(7, 1), Part::Train, "unknown user");
        assert_eq!(cuts.test_from(0), Some(107));
        let (train, test) = leave_last_split(&log, &cfg, &cuts);
        assert_eq!(train.len(), 1);
        assert_eq!(train[0].history, vec![0, 1, 2, 3]);
        assert_eq!(train[0].target, vec![4, 5, 6]);
        assert_eq!(test.len(), 1, "user 1 has no history before its test part");
        assert_eq!(test[0].history, vec![3, 4, 5, 6]);
        assert_eq!(test[0].target, vec![7, 8, 9], "both items tied at ts 200 are test targets");
        // a tie across the cut: user 2's 2nd-last and 3rd-last share a second.
        let mut log2 = InteractionLog::default();
        for (i, ts) in [(0, 10), (1, 20), (2, 30), (3, 30), (4, 40)] {
            log2.rows.push(rating(2, i, ts, 4.0));
        }
        log2.sort();
        let cuts = leave_last_cuts(&log2, &cfg, 2);
        assert_eq!(cuts.cuts[2], Some((10, 30)), "ts 30 is test as a whole");
        let (train, test) = leave_last_split(&log2, &cfg, &cuts);
        assert!(train.is_empty(), "nothing before valid_from = 10: no train history");
        assert_eq!(test[0].target, vec![2, 3, 4]);
        assert_eq!(test[0].history, vec![0, 1]);
    }
}
