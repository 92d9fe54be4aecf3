//! A small self-contained toy world with known truth, for tests and benchmarks of the A/B
//! engine. (The full synthetic world lives in `crate::world`; this one only needs to be fast.)
//!
//! Users and items have latent vectors `u`, `v` (unit-variance dot product), items a popularity
//! bias `b`, a category and a log-normal price. Truth:
//! `p_click = σ(−2.2 + 1.2·u·v + b)`, `p_convert = σ(−1.2 + 0.8·u·v − 0.4·ln(price/20))`.
//! Each user is active on a day with their own probability and then sends `1 + Poisson(λ)`
//! requests. A fraction of items launch during the experiment (new items, cold-start).

use super::{EnvKind, Environment, mix64, stream_seed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};

/// Toy world parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyConfig {
    /// Number of users.
    pub users: u32,
    /// Number of items.
    pub items: u32,
    /// Latent dimension.
    pub dim: usize,
    /// Number of item categories.
    pub categories: u32,
    /// Fraction of items launched during the experiment.
    pub new_item_fraction: f64,
    /// Launch days of new items are spread over `0..launch_days`.
    pub launch_days: u32,
    /// Mean probability that a user is active on a day.
    pub activity: f64,
    /// Mean extra requests of an active user (requests = 1 + Poisson).
    pub extra_requests: f64,
    /// Seed of the world (not of the experiment).
    pub seed: u64,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            users: 10_000,
            items: 5_000,
            dim: 8,
            categories: 40,
            new_item_fraction: 0.05,
            launch_days: 7,
            activity: 0.3,
            extra_requests: 1.0,
            seed: 1,
        }
    }
}

/// The toy world (see the module docs).
#[derive(Debug, Clone)]
pub struct ToyEnv {
    cfg: ToyConfig,
    user_vecs: Vec<f32>,
    item_vecs: Vec<f32>,
    item_bias: Vec<f32>,
    price: Vec<f32>,
    launch: Vec<Option<u32>>,
    user_activity_p: Vec<f32>,
    user_cats: Vec<[u32; 2]>,
    cat_items: Vec<Vec<u32>>,
    user_history: Vec<u64>,
    item_conv: Vec<u64>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl ToyEnv {
    /// Builds the world deterministically from `cfg.seed`.
    pub fn new(cfg: &ToyConfig) -> ToyEnv {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let dim = cfg.dim.max(1);
        let sd = (1.0 / (dim as f64).sqrt()).sqrt();
        let normal = Normal::new(0.0, sd).unwrap_or_else(|_| unreachable_normal());
        let users = cfg.users as usize;
        let items = cfg.items as usize;
        let user_vecs: Vec<f32> = (0..users * dim)
            .map(|_| normal.sample(&mut rng) as f32)
            .collect();
        let item_vecs: Vec<f32> = (0..items * dim)
            .map(|_| normal.sample(&mut rng) as f32)
            .collect();
        let bias_d = Normal::new(0.0, 0.7).unwrap_or_else(|_| unreachable_normal());
        let item_bias: Vec<f32> = (0..items).map(|_| bias_d.sample(&mut rng) as f32).collect();
        let price_d = LogNormal::new(20f64.ln(), 0.6).unwrap_or_else(|_| unreachable_lognormal());
        let price: Vec<f32> = (0..items)
            .map(|_| price_d.sample(&mut rng).max(1.0) as f32)
            .collect();
        let cats = cfg.categories.max(1);
        let item_cat: Vec<u32> = (0..items).map(|_| rng.random_range(0..cats)).collect();
        let mut cat_items = vec![Vec::new(); cats as usize];
        for (i, &c) in item_cat.iter().enumerate() {
            cat_items[c as usize].push(i as u32);
        }
        let launch: Vec<Option<u32>> = (0..items)
            .map(|_| {
                (rng.random::<f64>() < cfg.new_item_fraction)
                    .then(|| rng.random_range(0..cfg.launch_days.max(1)))
            })
            .collect();
        let user_activity_p: Vec<f32> = (0..users)
            .map(|_| (cfg.activity * 2.0 * rng.random::<f64>()).clamp(0.0, 1.0) as f32)
            .collect();
        let user_cats: Vec<[u32; 2]> = (0..users)
            .map(|_| [rng.random_range(0..cats), rng.random_range(0..cats)])
            .collect();
        // Pre-period history: 15% cold-start, 55% long-tail (1..=35), 30% regular (36..=200).
        let user_history: Vec<u64> = (0..users)
            .map(|_| {
                let r: f64 = rng.random();
                if r < 0.15 {
                    0
                } else if r < 0.70 {
                    rng.random_range(1..=35)
                } else {
                    rng.random_range(36..=200)
                }
            })
            .collect();
        // Pre-period conversions grow with popularity; launched items have none.
        let item_conv: Vec<u64> = (0..items)
            .map(|i| {
                if launch[i].is_some() {
                    0
                } else {
                    (8.0 * (item_bias[i] as f64 * 1.6).exp() * rng.random::<f64>()) as u64
                }
            })
            .collect();
        ToyEnv {
            cfg: cfg.clone(),
            user_vecs,
            item_vecs,
            item_bias,
            price,
            launch,
            user_activity_p,
            user_cats,
            cat_items,
            user_history,
            item_conv,
        }
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ToyConfig {
        &self.cfg
    }

    fn affinity(&self, user: u32, item: u32) -> f32 {
        let d = self.cfg.dim.max(1);
        let u = &self.user_vecs[user as usize * d..(user as usize + 1) * d];
        let v = &self.item_vecs[item as usize * d..(item as usize + 1) * d];
        u.iter().zip(v).map(|(a, b)| a * b).sum()
    }
}

fn unreachable_normal() -> Normal<f64> {
    // Normal::new only fails for a non-finite or negative sd, which the constants above exclude.
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("standard normal"))
}

fn unreachable_lognormal() -> LogNormal<f64> {
    LogNormal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("standard log-normal"))
}

impl Environment for ToyEnv {
    fn name(&self) -> String {
        format!(
            "toy world ({} users, {} items, seed {})",
            self.cfg.users, self.cfg.items, self.cfg.seed
        )
    }
    fn kind(&self) -> EnvKind {
        EnvKind::Toy
    }
    fn description(&self) -> String {
        "Latent-factor toy world with known click and conversion probabilities; for tests and benchmarks.".into()
    }
    fn num_users(&self) -> u32 {
        self.cfg.users
    }
    fn num_items(&self) -> u32 {
        self.cfg.items
    }
    fn active_users(&self, day: u32, seed: u64) -> Vec<(u32, u32)> {
        let pois = Poisson::new(self.cfg.extra_requests.max(1e-9)).ok();
        let mut out = Vec::new();
        for u in 0..self.cfg.users {
            // A stream separate from the simulator's (`!seed`), so activity and outcomes are independent.
            let h = stream_seed(!seed, day, u);
            let p = (h >> 11) as f64 / (1u64 << 53) as f64;
            if p < self.user_activity_p[u as usize] as f64 {
                let extra = match &pois {
                    Some(d) => d.sample(&mut ChaCha8Rng::seed_from_u64(mix64(h))) as u32,
                    None => 0,
                };
                out.push((u, 1 + extra.min(20)));
            }
        }
        out
    }
    fn available(&self, item: u32, day: u32) -> bool {
        self.launch[item as usize].is_none_or(|d| d <= day)
    }
    fn launch_day(&self, item: u32) -> Option<u32> {
        self.launch[item as usize]
    }
    fn price(&self, item: u32) -> f32 {
        self.price[item as usize]
    }
    fn popularity(&self, item: u32, _day: u32) -> f32 {
        self.item_bias[item as usize].exp()
    }
    fn personal_candidates(
        &self,
        user: u32,
        day: u32,
        n: usize,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<u32>,
    ) {
        let cats = self.user_cats[user as usize];
        for k in 0..n {
            let pool = &self.cat_items[cats[k % 2] as usize];
            if pool.is_empty() {
                continue;
            }
            let it = pool[rng.random_range(0..pool.len())];
            if self.available(it, day) {
                out.push(it);
            }
        }
    }
    fn p_click(&self, user: u32, item: u32, _day: u32) -> f32 {
        sigmoid(-2.2 + 1.2 * self.affinity(user, item) + self.item_bias[item as usize])
    }
    fn p_convert(&self, user: u32, item: u32, _day: u32) -> f32 {
        sigmoid(
            -1.2 + 0.8 * self.affinity(user, item) - 0.4 * (self.price[item as usize] / 20.0).ln(),
        )
    }
    fn user_activity(&self, user: u32) -> u64 {
        self.user_history[user as usize]
    }
    fn item_conversions(&self, item: u32) -> u64 {
        self.item_conv[item as usize]
    }
}
