//! Dataset profile (`learnrec stats`): counts, time range, sequence lengths and the paper's
//! user/item segment proportions (Table 7, "Proportion").
//!
//! Segment populations: the users and items with at least one interaction in the target window
//! `[boundary, boundary + target_window)` (those an evaluation at this boundary scores). A user
//! is classified by its positive interactions ([`LabelRule::is_click`]) and an item by its
//! conversions ([`LabelRule::is_conversion`]) in the lookback window `[boundary − lookback,
//! boundary)`. The paper does not give its lookback; learnrec uses the history window (270 days).

use crate::data::{Action, Catalog, InteractionLog, LabelRule};
use crate::segment::{Segment, Thresholds};
use crate::split::{SequenceSplit, user_sequences};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Configuration of [`dataset_stats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsConfig {
    /// The sequence split (boundary, windows, lengths, positives, label rule).
    pub split: SequenceSplit,
    /// Lookback window for segment counts, in seconds.
    pub lookback: i64,
    /// Segment thresholds.
    pub thresholds: Thresholds,
}

impl StatsConfig {
    /// The paper's split at `boundary`, a lookback equal to its history window, paper thresholds.
    pub fn paper(boundary: i64) -> Self {
        let split = SequenceSplit::paper(boundary);
        StatsConfig { lookback: split.history_window.unwrap_or(i64::MAX), split, thresholds: Thresholds::default() }
    }
}

/// Summary of a length distribution (nearest-rank p90; median averages the middle pair).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub min: usize,
    pub max: usize,
}

impl Distribution {
    /// Summarises `values` (any order).
    pub fn of(values: &[usize]) -> Self {
        if values.is_empty() {
            return Distribution::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] as f64 } else { (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0 };
        let p90 = v[(0.9 * n as f64).ceil() as usize - 1] as f64;
        Distribution {
            count: n,
            mean: v.iter().sum::<usize>() as f64 / n as f64,
            median,
            p90,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Count and share of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct SegmentShare {
    pub count: u64,
    /// `count` / population (0 for an empty population).
    pub proportion: f64,
}

/// Segment counts and proportions of a population.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SegmentProportions {
    pub population: u64,
    pub segments: BTreeMap<Segment, SegmentShare>,
}

impl SegmentProportions {
    fn of(segs: impl IntoIterator<Item = Segment>) -> Self {
        let mut counts: BTreeMap<Segment, u64> = Segment::ALL.iter().map(|&s| (s, 0)).collect();
        let mut population = 0;
        for s in segs {
            *counts.entry(s).or_default() += 1;
            population += 1;
        }
        let segments = counts
            .into_iter()
            .map(|(s, count)| {
                let proportion = if population == 0 { 0.0 } else { count as f64 / population as f64 };
                (s, SegmentShare { count, proportion })
            })
            .collect();
        SegmentProportions { population, segments }
    }

    /// Share of `seg` (0 when absent).
    pub fn proportion(&self, seg: Segment) -> f64 {
        self.segments.get(&seg).map_or(0.0, |s| s.proportion)
    }
}

/// The profile of a dataset at a boundary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetStats {
    /// Distinct users with at least one interaction.
    pub users: usize,
    /// Items in the catalog, if one was given.
    pub catalog_items: Option<usize>,
    /// Distinct items with at least one interaction.
    pub items: usize,
    /// All rows of the log.
    pub interactions: usize,
    /// Rows per action.
    pub per_action: BTreeMap<Action, u64>,
    /// Rows that are clicks / conversions under the label rule.
    pub clicks: u64,
    pub conversions: u64,
    /// First and last timestamp.
    pub time_range: Option<(i64, i64)>,
    /// The boundary and windows used below.
    pub boundary: i64,
    pub history_start: i64,
    pub target_end: i64,
    pub lookback_start: i64,
    /// Users with any positive in the history or target window.
    pub sequence_users: usize,
    pub users_with_history: usize,
    pub users_with_target: usize,
    pub users_with_both: usize,
    /// History / target lengths (after truncation to the configured lengths) over users with a
    /// non-empty target, the population PCH evaluates.
    pub history_len: Distribution,
    pub target_len: Distribution,
    /// Users active in the target window by positives in the lookback window.
    pub user_segments: SegmentProportions,
    /// Items interacted with in the target window by conversions in the lookback window.
    pub item_segments: SegmentProportions,
}

/// Profiles `log` (and `catalog`) at `cfg.split.boundary`.
pub fn dataset_stats(catalog: Option<&Catalog>, log: &InteractionLog, cfg: &StatsConfig) -> DatasetStats {
    let label: LabelRule = cfg.split.label;
    let mut per_action: BTreeMap<Action, u64> = BTreeMap::new();
    let (mut clicks, mut conversions) = (0u64, 0u64);
    let mut users_seen: HashSet<u32> = HashSet::new();
    let mut items_seen: HashSet<u32> = HashSet::new();
    let boundary = cfg.split.boundary;
    let (lb_lo, t_hi) = (boundary.saturating_sub(cfg.lookback), cfg.split.target_end());
    let n_users = log.rows.iter().map(|r| r.user as usize + 1).max().unwrap_or(0);
    let n_items = log.rows.iter().map(|r| r.item as usize + 1).max().unwrap_or(0);
    let mut user_pos = vec![0u64; n_users];
    let mut item_conv = vec![0u64; n_items];
    let mut user_in_target = vec![false; n_users];
    let mut item_in_target = vec![false; n_items];
    for r in &log.rows {
        *per_action.entry(r.action).or_default() += 1;
        let (c, v) = (label.is_click(r), label.is_conversion(r));
        clicks += c as u64;
        conversions += v as u64;
        users_seen.insert(r.user);
        items_seen.insert(r.item);
        if r.ts >= lb_lo && r.ts < boundary {
            user_pos[r.user as usize] += c as u64;
            item_conv[r.item as usize] += v as u64;
        } else if r.ts >= boundary && r.ts < t_hi {
            user_in_target[r.user as usize] = true;
            item_in_target[r.item as usize] = true;
        }
    }
    let seqs = user_sequences(log, &cfg.split);
    let with_target: Vec<_> = seqs.iter().filter(|s| !s.target.is_empty()).collect();
    let hist_lens: Vec<usize> = with_target.iter().map(|s| s.history.len()).collect();
    let tgt_lens: Vec<usize> = with_target.iter().map(|s| s.target.len()).collect();
    let user_segments =
        SegmentProportions::of((0..n_users).filter(|&u| user_in_target[u]).map(|u| cfg.thresholds.user(user_pos[u])));
    let item_segments =
        SegmentProportions::of((0..n_items).filter(|&i| item_in_target[i]).map(|i| cfg.thresholds.item(item_conv[i])));
    DatasetStats {
        users: users_seen.len(),
        catalog_items: catalog.map(Catalog::len),
        items: items_seen.len(),
        interactions: log.rows.len(),
        per_action,
        clicks,
        conversions,
        time_range: log.time_range(),
        boundary,
        history_start: cfg.split.history_start(),
        target_end: t_hi,
        lookback_start: lb_lo,
        sequence_users: seqs.len(),
        users_with_history: seqs.iter().filter(|s| !s.history.is_empty()).count(),
        users_with_target: with_target.len(),
        users_with_both: with_target.iter().filter(|s| !s.history.is_empty()).count(),
        history_len: Distribution::of(&hist_lens),
        target_len: Distribution::of(&tgt_lens),
        user_segments,
        item_segments,
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a unix time.
pub fn format_utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ts_text(ts: i64) -> String {
    if ts == i64::MIN || ts == i64::MAX { "unbounded".into() } else { format!("{} ({ts})", format_utc(ts)) }
}

impl std::fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |f: &mut std::fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<22} {v}");
        writeln!(f, "dataset")?;
        row(f, "users", thousands(self.users as u64))?;
        row(f, "items (interacted)", thousands(self.items as u64))?;
        if let Some(c) = self.catalog_items {
            row(f, "items (catalog)", thousands(c as u64))?;
        }
        row(f, "interactions", thousands(self.interactions as u64))?;
        for (a, n) in &self.per_action {
            row(f, &format!("  {}", a.name()), thousands(*n))?;
        }
        row(f, "clicks (label rule)", thousands(self.clicks))?;
        row(f, "conversions (label)", thousands(self.conversions))?;
        if let Some((lo, hi)) = self.time_range {
            row(f, "first interaction", ts_text(lo))?;
            row(f, "last interaction", ts_text(hi))?;
        }
        writeln!(f, "split")?;
        row(f, "history from", ts_text(self.history_start))?;
        row(f, "boundary", ts_text(self.boundary))?;
        row(f, "target until", ts_text(self.target_end))?;
        row(f, "users with history", thousands(self.users_with_history as u64))?;
        row(f, "users with target", thousands(self.users_with_target as u64))?;
        row(f, "users with both", thousands(self.users_with_both as u64))?;
        writeln!(f, "sequence lengths (users with a target)")?;
        writeln!(f, "  {:<22} {:>8} {:>8} {:>8} {:>8}", "", "mean", "median", "p90", "max")?;
        for (k, d) in [("history", &self.history_len), ("target", &self.target_len)] {
            writeln!(f, "  {k:<22} {:>8.1} {:>8.1} {:>8.1} {:>8}", d.mean, d.median, d.p90, d.max)?;
        }
        writeln!(f, "segments (lookback from {})", ts_text(self.lookback_start))?;
        writeln!(f, "  {:<22} {:>12} {:>12} {:>12}", "", "cold-start", "long-tail", "regular")?;
        for (k, s) in [("users", &self.user_segments), ("items", &self.item_segments)] {
            let cell = |seg: Segment| {
                let c = s.segments.get(&seg).copied().unwrap_or_default();
                format!("{:.1}% ({})", 100.0 * c.proportion, c.count)
            };
            writeln!(
                f,
                "  {:<22} {:>12} {:>12} {:>12}",
                format!("{k} (n={})", s.population),
                cell(Segment::ColdStart),
                cell(Segment::LongTail),
                cell(Segment::Regular)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{IdMap, Interaction};
    use crate::split::DAY;

    #[test]
    fn distribution_median_and_p90() {
        let d = Distribution::of(&[5, 1, 3, 2, 4, 6, 7, 8, 9, 10]);
        assert_eq!((d.count, d.min, d.max), (10, 1, 10));
        assert_eq!(d.median, 5.5);
        assert_eq!(d.p90, 9.0);
        assert_eq!(d.mean, 5.5);
        assert_eq!(Distribution::of(&[3]).p90, 3.0);
        assert_eq!(Distribution::of(&[]).count, 0);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(978_300_760), "2000-12-31 22:12:40");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(thousands(1_000_209), "1,000,209");
        assert_eq!(thousands(999), "999");
    }

    fn r(user: u32, item: u32, ts: i64, action: Action, value: f32) -> Interaction {
        Interaction { user, item, ts, action, value, revenue: None }
    }

    #[test]
    fn counts_and_segments() {
        let b = 1000 * DAY;
        let mut rows = Vec::new();
        // user 0: 40 clicks in the lookback -> regular; user 1: 1 click -> long-tail;
        // user 2: nothing before -> cold-start; user 3 only before the boundary (not in target).
        for k in 0..40 {
            rows.push(r(0, 0, b - 10 * DAY + k, Action::Click, 1.0));
        }
        rows.push(r(1, 1, b - DAY, Action::Click, 1.0));
        rows.push(r(1, 1, b - DAY + 1, Action::Impression, 1.0));
        rows.push(r(3, 2, b - DAY, Action::Conversion, 1.0));
        // item 0: 30 conversions before -> regular; item 1: 0 -> cold-start; item 2: 1 -> long-tail.
        for k in 0..30 {
            rows.push(r(3, 0, b - 5 * DAY + k, Action::Conversion, 1.0));
        }
        rows.push(r(0, 0, b + 1, Action::Click, 1.0));
        rows.push(r(1, 1, b + 2, Action::Click, 1.0));
        rows.push(r(2, 2, b + 3, Action::Click, 1.0));
        rows.push(r(2, 2, b - 400 * DAY, Action::Click, 1.0)); // outside the 270-day lookback
        let mut log = InteractionLog {
            users: IdMap::from_names(["a", "b", "c", "d"]),
            items: IdMap::from_names(["x", "y", "z"]),
            rows,
        };
        log.sort();
        let s = dataset_stats(None, &log, &StatsConfig::paper(b));
        assert_eq!((s.users, s.items, s.interactions), (4, 3, 77));
        assert_eq!(s.per_action[&Action::Impression], 1);
        assert_eq!(s.per_action[&Action::Conversion], 31);
        assert_eq!(s.clicks, 76);
        assert_eq!(s.conversions, 31);
        let u = &s.user_segments;
        assert_eq!(u.population, 3);
        assert_eq!(u.segments[&Segment::Regular].count, 1);
        assert_eq!(u.segments[&Segment::LongTail].count, 1);
        assert_eq!(u.segments[&Segment::ColdStart].count, 1);
        let i = &s.item_segments;
        assert_eq!(i.population, 3);
        assert_eq!(i.segments[&Segment::Regular].count, 1);
        assert_eq!(i.segments[&Segment::LongTail].count, 1);
        assert_eq!(i.segments[&Segment::ColdStart].count, 1);
        assert!((u.proportion(Segment::Regular) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.users_with_target, 3);
        assert_eq!(s.target_len.max, 1);
        assert_eq!(s.history_len.max, 1, "user 0's 40 clicks on one item collapse to one");
        let text = s.to_string();
        assert!(text.contains("interactions") && text.contains("77"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["per_action"]["conversion"], 31);
        assert_eq!(json["user_segments"]["segments"]["cold-start"]["count"], 1);
    }
}
