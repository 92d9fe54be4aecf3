//! Built-in policy arms that need no trained model: popularity, random and the oracle.

use super::{Arm, Environment, mix64};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Ranks by a fixed item popularity (e.g. pre-period conversion counts).
#[derive(Debug, Clone)]
pub struct PopularityArm {
    popularity: Vec<f32>,
}

impl PopularityArm {
    /// From one popularity value per item (unknown items score 0).
    pub fn new(popularity: Vec<f32>) -> Self {
        PopularityArm { popularity }
    }
    /// From the environment's popularity prior on `day`.
    pub fn from_env<E: Environment + ?Sized>(env: &E, day: u32) -> Self {
        PopularityArm {
            popularity: (0..env.num_items())
                .map(|i| env.popularity(i, day))
                .collect(),
        }
    }
}

impl Arm for PopularityArm {
    fn score(&self, _user: u32, items: &[u32], _day: u32, out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(items) {
            *o = self.popularity.get(i as usize).copied().unwrap_or(0.0);
        }
    }
}

/// Ranks uniformly at random: a deterministic hash of `(seed, user, item, day)` in [0, 1).
#[derive(Debug, Clone, Copy)]
pub struct RandomArm {
    seed: u64,
}

impl RandomArm {
    /// A random ranker with its own seed.
    pub fn new(seed: u64) -> Self {
        RandomArm { seed }
    }
}

impl Arm for RandomArm {
    fn score(&self, user: u32, items: &[u32], day: u32, out: &mut [f32]) {
        let base = mix64(mix64(self.seed ^ ((user as u64) << 32 | day as u64)));
        for (o, &i) in out.iter_mut().zip(items) {
            *o = (mix64(base ^ i as u64) >> 40) as f32 / (1u64 << 24) as f32;
        }
    }
}

/// What the oracle maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// `p_click`
    Click,
    /// `p_click · p_convert`
    Conversion,
    /// `p_click · p_convert · price`
    ExpectedRevenue,
}

/// Ranks by the environment's true probabilities: the upper bound any ranker can reach.
pub struct OracleArm<E: Environment + ?Sized> {
    env: Arc<E>,
    objective: Objective,
}

impl<E: Environment + ?Sized> OracleArm<E> {
    /// An oracle over `env` maximising `objective`.
    pub fn new(env: Arc<E>, objective: Objective) -> Self {
        OracleArm { env, objective }
    }
}

impl<E: Environment + ?Sized> Arm for OracleArm<E> {
    fn score(&self, user: u32, items: &[u32], day: u32, out: &mut [f32]) {
        for (o, &i) in out.iter_mut().zip(items) {
            let pc = self.env.p_click(user, i, day);
            *o = match self.objective {
                Objective::Click => pc,
                Objective::Conversion => pc * self.env.p_convert(user, i, day),
                Objective::ExpectedRevenue => {
                    pc * self.env.p_convert(user, i, day) * self.env.price(i)
                }
            };
        }
    }
}
