//! The paper's user and item segments (Tables 6 and 7).
//!
//! Users by their interactions in a lookback window: cold-start 0, long-tail 1–35, regular above.
//! Items by conversions (purchases): cold-start 0, long-tail 1–29, regular 30 and more. (The
//! paper writes "long-tail: fewer than 30" and "regular: more than 30"; it leaves exactly 30
//! undefined — learnrec counts 30 as regular.) Thresholds are configurable.

use serde::{Deserialize, Serialize};

/// A user or item segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Segment {
    ColdStart,
    LongTail,
    Regular,
}

impl Segment {
    pub const ALL: [Segment; 3] = [Segment::ColdStart, Segment::LongTail, Segment::Regular];
    pub fn name(self) -> &'static str {
        match self {
            Segment::ColdStart => "cold-start",
            Segment::LongTail => "long-tail",
            Segment::Regular => "regular",
        }
    }
    /// Parses `cold-start`, `cold_start`, `cold`, `long-tail`, `long_tail`, `tail`, `regular`.
    pub fn parse(s: &str) -> Option<Segment> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "cold-start" | "cold" | "coldstart" => Some(Segment::ColdStart),
            "long-tail" | "tail" | "longtail" => Some(Segment::LongTail),
            "regular" | "head" => Some(Segment::Regular),
            _ => None,
        }
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Segment thresholds: a count of 0 is cold-start, 1..=`long_tail_max` long-tail, above regular.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Largest user interaction count that is still long-tail (paper: 35).
    pub user_long_tail_max: u64,
    /// Largest item conversion count that is still long-tail (paper: 29).
    pub item_long_tail_max: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { user_long_tail_max: 35, item_long_tail_max: 29 }
    }
}

impl Thresholds {
    /// Segment of a user with `interactions` in the lookback window.
    pub fn user(&self, interactions: u64) -> Segment {
        classify(interactions, self.user_long_tail_max)
    }
    /// Segment of an item with `conversions` in the lookback window.
    pub fn item(&self, conversions: u64) -> Segment {
        classify(conversions, self.item_long_tail_max)
    }
}

fn classify(count: u64, long_tail_max: u64) -> Segment {
    match count {
        0 => Segment::ColdStart,
        c if c <= long_tail_max => Segment::LongTail,
        _ => Segment::Regular,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_boundaries() {
        let t = Thresholds::default();
        assert_eq!(t.user(0), Segment::ColdStart);
        assert_eq!(t.user(1), Segment::LongTail);
        assert_eq!(t.user(35), Segment::LongTail);
        assert_eq!(t.user(36), Segment::Regular);
        assert_eq!(t.item(0), Segment::ColdStart);
        assert_eq!(t.item(1), Segment::LongTail);
        assert_eq!(t.item(29), Segment::LongTail);
        assert_eq!(t.item(30), Segment::Regular);
    }

    #[test]
    fn parse_names() {
        for s in Segment::ALL {
            assert_eq!(Segment::parse(s.name()), Some(s));
        }
        assert_eq!(Segment::parse("cold_start"), Some(Segment::ColdStart));
        assert_eq!(Segment::parse("warm"), None);
    }
}
