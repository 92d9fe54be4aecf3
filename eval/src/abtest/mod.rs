//! The A/B traffic-split simulation engine behind `ab-sim` (issue 7).
//!
//! An online experiment, simulated: users are split into arms by a salted hash
//! ([`split`]), each day every active user sends requests, a retrieval stage proposes candidates
//! (popular + personalised + new items), each arm's ranker ([`Arm`]) orders them, and the world's
//! true click and conversion probabilities ([`Environment`]) — damped by a position bias on the
//! shown slots — decide what happens. The engine then reports per arm, per day, per user segment
//! and per item segment: users, requests, impressions, clicks, conversions, CTR, CVR, revenue per
//! user and the AUC of each arm's own scores on its own impressions; the relative lift of every
//! treatment over the control with delta-method 95% CIs, p-values and a user-level bootstrap;
//! and a sample-ratio-mismatch check ([`stats`]). [`Report`] writes `report.json`, `report.md` and
//! a self-contained `report.html`.
//!
//! A binary only builds arms and calls [`run`]:
//!
//! ```no_run
//! use learnrec_eval::abtest::{self, ArmSpec, ExperimentConfig, ToyConfig, ToyEnv, OracleArm, RandomArm, Objective};
//! use std::sync::Arc;
//! let env = Arc::new(ToyEnv::new(&ToyConfig::default()));
//! let arms = vec![
//!     ArmSpec::new("control", 0.2, Arc::new(RandomArm::new(7))),
//!     ArmSpec::new("treatment", 0.2, Arc::new(OracleArm::new(env.clone(), Objective::ExpectedRevenue))),
//! ];
//! let report = abtest::run(env.as_ref(), &arms, &ExperimentConfig::default())?;
//! report.write_dir(std::path::Path::new("out/ab"))?;
//! # Ok::<(), learnrec_eval::Error>(())
//! ```
//!
//! Environments: [`WorldEnv`] (the synthetic world, ground truth), [`ToyEnv`] (a small toy world
//! for tests and benchmarks) and [`FittedOracle`] (real logs such as MovieLens-1M, where a model
//! fitted on all data stands in for the truth — labelled "FITTED ORACLE" in every report).
//! Built-in arms: [`PopularityArm`], [`RandomArm`], [`OracleArm`]; trained rankers implement [`Arm`].
//!
//! Departure from a real launch: one simulated day is one round of requests against a static
//! world (the environment may change availability and probabilities by day, but no arm learns
//! from the experiment's own feedback), and segments are fixed at the start (pre-period).

pub mod fitted;
pub mod policies;
pub mod report;
pub mod sim;
pub mod split;
pub mod stats;
pub mod toy;
pub mod world_env;

pub use fitted::{FittedOracle, FittedOracleConfig};
pub use policies::{Objective, OracleArm, PopularityArm, RandomArm};
pub use report::Report;
pub use sim::{ArmSpec, ExperimentConfig, Mode, PositionBias, RetrievalConfig, run};
pub use split::{BUCKETS, Split, bucket};
pub use toy::{ToyConfig, ToyEnv};
pub use world_env::WorldEnv;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What kind of world an experiment ran against; reports label it prominently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvKind {
    /// A synthetic world with known ground-truth probabilities.
    Synthetic,
    /// A small toy world (tests, benchmarks).
    Toy,
    /// A model fitted on logged data standing in for the truth (real data has none); lifts
    /// measure agreement with that model, not real user behaviour.
    FittedOracle,
}

impl EnvKind {
    /// Human-readable label.
    pub fn label(self) -> &'static str {
        match self {
            EnvKind::Synthetic => "synthetic world (ground truth)",
            EnvKind::Toy => "toy world (ground truth)",
            EnvKind::FittedOracle => "FITTED ORACLE (a model of logged data, not ground truth)",
        }
    }
}

/// What a world provides to the simulator. User and item ids are dense `0..num_users()` and
/// `0..num_items()`; days count from the experiment's first day of the world's clock.
///
/// Implementations must be deterministic: the same arguments give the same answers (the
/// simulator's own randomness comes from per-user RNG streams it passes in).
pub trait Environment: Send + Sync {
    /// Short name for the report.
    fn name(&self) -> String;
    /// Ground truth or fitted oracle (labelled in the report).
    fn kind(&self) -> EnvKind;
    /// One paragraph on what the world is and what its results can and cannot tell.
    fn description(&self) -> String {
        String::new()
    }
    /// Number of users.
    fn num_users(&self) -> u32;
    /// Number of items.
    fn num_items(&self) -> u32;
    /// The id hashed by the traffic split (the logged user id); default: the dense id in decimal.
    fn user_key(&self, user: u32) -> String {
        user.to_string()
    }
    /// Users active on `day` with their request counts (`> 0`), deterministic in `(day, seed)`.
    fn active_users(&self, day: u32, seed: u64) -> Vec<(u32, u32)>;
    /// Whether `item` can be shown on `day`.
    fn available(&self, item: u32, day: u32) -> bool;
    /// The first day an item is available if it is launched during the experiment, else `None`
    /// (always available). Drives the "new items" retrieval source.
    fn launch_day(&self, item: u32) -> Option<u32>;
    /// Unit price (revenue of one conversion).
    fn price(&self, item: u32) -> f32;
    /// Popularity prior of `item` on `day` (any non-negative scale); drives the "popular" source.
    fn popularity(&self, item: u32, day: u32) -> f32;
    /// Appends up to `n` personalised candidates for `user` (e.g. from their history's
    /// categories or neighbours). The default proposes none.
    fn personal_candidates(
        &self,
        user: u32,
        day: u32,
        n: usize,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<u32>,
    ) {
        let _ = (user, day, n, rng, out);
    }
    /// True probability that `user` clicks `item` shown at the top slot on `day`.
    fn p_click(&self, user: u32, item: u32, day: u32) -> f32;
    /// True probability that `user` buys `item` after clicking it (post-click conversion).
    fn p_convert(&self, user: u32, item: u32, day: u32) -> f32;
    /// The user's interactions in the pre-period (segmented with [`crate::segment::Thresholds::user`]).
    fn user_activity(&self, user: u32) -> u64;
    /// The item's conversions in the pre-period (segmented with [`crate::segment::Thresholds::item`]).
    fn item_conversions(&self, item: u32) -> u64;
}

/// A ranking policy under test. `score` writes one score per candidate (higher is shown first);
/// scores need not be calibrated, but their AUC on the arm's own impressions is reported.
pub trait Arm: Send + Sync {
    /// Scores `items` for `user` on `day` into `out` (`out.len() == items.len()`).
    fn score(&self, user: u32, items: &[u32], day: u32, out: &mut [f32]);
}

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash used for RNG seeds and random scores.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the RNG stream of `(seed, day, user)`: independent of thread count and order.
pub fn stream_seed(seed: u64, day: u32, user: u32) -> u64 {
    mix64(mix64(mix64(seed) ^ day as u64) ^ ((user as u64) << 1 | 1))
}
