//! Segment proportions of a log, measured the way the paper segments its test traffic.

use crate::data::{Action, Interaction};
use crate::segment::{Segment, Thresholds};
use serde::Serialize;

/// Counts per segment ([`Segment::ALL`] order: cold-start, long-tail, regular).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SegmentCounts(pub [u64; 3]);

impl SegmentCounts {
    fn add(&mut self, s: Segment) {
        self.0[s as usize] += 1;
    }
    /// Total count.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Share of segment `s` (0 if empty).
    pub fn share(&self, s: Segment) -> f64 {
        let t = self.total();
        if t == 0 { 0.0 } else { self.0[s as usize] as f64 / t as f64 }
    }
}

impl std::fmt::Display for SegmentCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = Segment::ALL
            .iter()
            .map(|&s| format!("{} {:.1}% ({})", s, 100.0 * self.share(s), self.0[s as usize]))
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// User and item segment proportions.
///
/// *Evaluation population*: users with at least one impression in the evaluation window
/// (`ts >= history_end_ts`), segmented by their **clicks** in the history window (`ts <
/// history_end_ts`); items impressed in the evaluation window, segmented by their
/// **conversions** in the history window (the paper's Table 6/7 definitions, applied to the
/// traffic an evaluation on the last days sees). *All*: every user / item of the world, same
/// counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SegmentShares {
    pub eval_users: SegmentCounts,
    pub eval_items: SegmentCounts,
    pub all_users: SegmentCounts,
    pub all_items: SegmentCounts,
}

impl std::fmt::Display for SegmentShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "users seen in the evaluation window: {}", self.eval_users)?;
        writeln!(f, "items shown in the evaluation window: {}", self.eval_items)?;
        writeln!(f, "all users: {}", self.all_users)?;
        write!(f, "all items: {}", self.all_items)
    }
}

/// Measures [`SegmentShares`] of `rows` (dense ids below `n_users` / `n_items`).
pub fn segment_shares(
    rows: &[Interaction],
    n_users: usize,
    n_items: usize,
    history_end_ts: i64,
    thresholds: &Thresholds,
) -> SegmentShares {
    let mut user_clicks = vec![0u64; n_users];
    let mut item_convs = vec![0u64; n_items];
    let mut user_eval = vec![false; n_users];
    let mut item_eval = vec![false; n_items];
    for r in rows {
        let (u, i) = (r.user as usize, r.item as usize);
        if u >= n_users || i >= n_items {
            continue;
        }
        if r.ts < history_end_ts {
            match r.action {
                Action::Click => user_clicks[u] += 1,
                Action::Conversion => item_convs[i] += 1,
                _ => {}
            }
        } else if r.action == Action::Impression {
            user_eval[u] = true;
            item_eval[i] = true;
        }
    }
    let mut s = SegmentShares::default();
    for u in 0..n_users {
        let seg = thresholds.user(user_clicks[u]);
        s.all_users.add(seg);
        if user_eval[u] {
            s.eval_users.add(seg);
        }
    }
    for i in 0..n_items {
        let seg = thresholds.item(item_convs[i]);
        s.all_items.add(seg);
        if item_eval[i] {
            s.eval_items.add(seg);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: u32, item: u32, ts: i64, action: Action) -> Interaction {
        Interaction { user, item, ts, action, value: 1.0, revenue: None }
    }

    #[test]
    fn counts_by_hand() {
        let mut rows = vec![];
        // user 0: 36 clicks in history (regular); user 1: 1 click (long-tail); user 2: none.
        for k in 0..36 {
            rows.push(row(0, 0, k, Action::Click));
        }
        rows.push(row(1, 1, 5, Action::Click));
        // item 0: 30 conversions (regular); item 1: 0.
        for k in 0..30 {
            rows.push(row(0, 0, k, Action::Conversion));
        }
        // Eval window from ts 100: users 0 and 2 seen, items 0 and 1 shown; a late click is ignored.
        rows.push(row(0, 0, 100, Action::Impression));
        rows.push(row(2, 1, 100, Action::Impression));
        rows.push(row(1, 1, 150, Action::Click));
        let s = segment_shares(&rows, 3, 2, 100, &Thresholds::default());
        assert_eq!(s.all_users.0, [1, 1, 1]);
        assert_eq!(s.eval_users.0, [1, 0, 1]);
        assert_eq!(s.all_items.0, [1, 0, 1]);
        assert_eq!(s.eval_items.0, [1, 0, 1]);
        assert_eq!(s.eval_users.share(Segment::Regular), 0.5);
    }
}
