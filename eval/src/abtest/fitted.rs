//! Real-data mode: a **fitted oracle** environment for logs without ground truth (MovieLens-1M).
//!
//! Two small logistic matrix-factorisation models are fitted on *all* of the log:
//! - the click model, `σ(b + b_u + b_i + p_u·q_i)`, separates a user's rated (clicked) items from
//!   uniformly sampled items; `p_click = click_scale · σ(·)` (the absolute click rate is not
//!   identified by a ratings log, so it is a chosen scale);
//! - the conversion model, the same form, separates high ratings (`LabelRule::is_conversion`,
//!   rating ≥ 4) from low ones among rated items: `p_convert = σ(·)`.
//!
//! Users are active on a day with probability `daily_active_fraction × (their interaction count /
//! the mean)`, capped at 1; prices default to 1, so revenue counts conversions. Personalised
//! retrieval proposes each user's top-`personal_pool` items under the click model.
//!
//! What it can tell: whether a ranker orders items the way a model of the *whole* log (including
//! the ranker's test period) says users prefer them — a consistency check, and a comparison of
//! rankers on a common yardstick. What it cannot tell: real lifts. The oracle is a model, not users:
//! rankers that resemble a low-rank logistic model are favoured, exposure bias of the log is baked
//! in, and absolute CTR/CVR levels are artefacts of `click_scale` and the negative sampling.
//! Reports label it "FITTED ORACLE".

use super::{EnvKind, Environment, mix64, stream_seed};
use crate::data::{InteractionLog, LabelRule};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;

/// Fitting and simulation settings of the fitted oracle.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedOracleConfig {
    /// Latent dimension of both models.
    pub dim: usize,
    /// SGD epochs over the positives.
    pub epochs: usize,
    /// SGD learning rate.
    pub lr: f32,
    /// L2 regularisation.
    pub l2: f32,
    /// Sampled negatives per positive (click model).
    pub negatives: usize,
    /// `p_click = click_scale · σ(click logit)`.
    pub click_scale: f32,
    /// Mean probability that a user is active on a simulated day.
    pub daily_active_fraction: f64,
    /// Mean extra requests of an active user (requests = 1 + Poisson).
    pub extra_requests: f64,
    /// Size of each user's personalised candidate pool.
    pub personal_pool: usize,
    /// Seed of the fit.
    pub seed: u64,
}

impl Default for FittedOracleConfig {
    fn default() -> Self {
        FittedOracleConfig {
            dim: 16,
            epochs: 8,
            lr: 0.05,
            l2: 1e-4,
            negatives: 3,
            click_scale: 0.3,
            daily_active_fraction: 0.3,
            extra_requests: 1.0,
            personal_pool: 100,
            seed: 7,
        }
    }
}

/// A logistic MF model `σ(b + b_u + b_i + p_u·q_i)`.
#[derive(Debug, Clone)]
struct LogisticMf {
    dim: usize,
    b: f32,
    bu: Vec<f32>,
    bi: Vec<f32>,
    p: Vec<f32>,
    q: Vec<f32>,
}

impl LogisticMf {
    fn new(users: usize, items: usize, dim: usize, rng: &mut ChaCha8Rng) -> Self {
        let init = |n: usize, rng: &mut ChaCha8Rng| {
            (0..n).map(|_| (rng.random::<f32>() - 0.5) * 0.1).collect()
        };
        LogisticMf {
            dim,
            b: 0.0,
            bu: vec![0.0; users],
            bi: vec![0.0; items],
            p: init(users * dim, rng),
            q: init(items * dim, rng),
        }
    }
    fn logit(&self, u: u32, i: u32) -> f32 {
        let d = self.dim;
        let pu = &self.p[u as usize * d..(u as usize + 1) * d];
        let qi = &self.q[i as usize * d..(i as usize + 1) * d];
        self.b
            + self.bu[u as usize]
            + self.bi[i as usize]
            + pu.iter().zip(qi).map(|(a, b)| a * b).sum::<f32>()
    }
    /// One SGD step on the logistic loss of `(u, i, label)`.
    fn step(&mut self, u: u32, i: u32, label: f32, lr: f32, l2: f32) {
        let g = sigmoid(self.logit(u, i)) - label;
        let d = self.dim;
        self.b -= lr * g;
        self.bu[u as usize] -= lr * (g + l2 * self.bu[u as usize]);
        self.bi[i as usize] -= lr * (g + l2 * self.bi[i as usize]);
        let (uo, io) = (u as usize * d, i as usize * d);
        for k in 0..d {
            let (pu, qi) = (self.p[uo + k], self.q[io + k]);
            self.p[uo + k] -= lr * (g * qi + l2 * pu);
            self.q[io + k] -= lr * (g * pu + l2 * qi);
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// An [`Environment`] fitted on a log (see the module docs; labelled "fitted oracle").
#[derive(Debug, Clone)]
pub struct FittedOracle {
    name: String,
    cfg: FittedOracleConfig,
    users: u32,
    items: u32,
    click: LogisticMf,
    convert: LogisticMf,
    price: Vec<f32>,
    activity_p: Vec<f32>,
    user_count: Vec<u64>,
    item_conv: Vec<u64>,
    popularity: Vec<f32>,
    personal: Vec<Vec<u32>>,
}

impl FittedOracle {
    /// Fits both models on `log` (dense ids). `prices` (one per item) default to 1.
    /// Errors on an empty log, a log without clicks or conversions, or a price list of the wrong length.
    pub fn fit(
        name: &str,
        log: &InteractionLog,
        rule: &LabelRule,
        prices: Option<&[f32]>,
        cfg: &FittedOracleConfig,
    ) -> Result<FittedOracle> {
        let users = log
            .rows
            .iter()
            .map(|r| r.user + 1)
            .max()
            .unwrap_or(0)
            .max(log.users.len() as u32);
        let items = log
            .rows
            .iter()
            .map(|r| r.item + 1)
            .max()
            .unwrap_or(0)
            .max(log.items.len() as u32);
        if log.rows.is_empty() || users == 0 || items == 0 {
            return Err(Error::Invalid(format!(
                "fitted oracle `{name}`: the log is empty"
            )));
        }
        if let Some(p) = prices.filter(|p| p.len() != items as usize) {
            return Err(Error::Invalid(format!(
                "fitted oracle `{name}`: {} prices for {items} items",
                p.len()
            )));
        }
        if cfg.dim == 0 || cfg.epochs == 0 || cfg.lr.is_nan() || cfg.lr <= 0.0 {
            return Err(Error::Invalid(format!(
                "fitted oracle `{name}`: dim, epochs and lr must be positive"
            )));
        }
        // Deduplicated (user, item) → converted; the last rating of a pair wins.
        let mut pairs: Vec<(u32, u32, bool)> = log
            .rows
            .iter()
            .filter(|r| rule.is_click(r))
            .map(|r| (r.user, r.item, rule.is_conversion(r)))
            .collect();
        if pairs.is_empty() {
            return Err(Error::Invalid(format!(
                "fitted oracle `{name}`: the log has no clicks (ratings)"
            )));
        }
        pairs.sort_by_key(|p| (p.0, p.1));
        pairs.dedup_by(|b, a| {
            let same = a.0 == b.0 && a.1 == b.1;
            if same {
                a.2 = b.2;
            }
            same
        });
        let n_conv = pairs.iter().filter(|p| p.2).count();
        if n_conv == 0 || n_conv == pairs.len() {
            return Err(Error::Invalid(format!(
                "fitted oracle `{name}`: the conversion model needs both converted and non-converted clicks, got {n_conv} of {}",
                pairs.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let (nu, ni) = (users as usize, items as usize);
        let mut click = LogisticMf::new(nu, ni, cfg.dim, &mut rng);
        let mut convert = LogisticMf::new(nu, ni, cfg.dim, &mut rng);
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        for epoch in 0..cfg.epochs {
            // Fisher–Yates with the fit's own RNG (deterministic).
            for k in (1..order.len()).rev() {
                order.swap(k, rng.random_range(0..=k));
            }
            let lr = cfg.lr / (1.0 + epoch as f32 * 0.3);
            for &k in &order {
                let (u, i, conv) = pairs[k];
                click.step(u, i, 1.0, lr, cfg.l2);
                for _ in 0..cfg.negatives {
                    click.step(u, rng.random_range(0..items), 0.0, lr, cfg.l2);
                }
                convert.step(u, i, if conv { 1.0 } else { 0.0 }, lr, cfg.l2);
            }
        }
        let mut user_count = vec![0u64; nu];
        let mut item_conv = vec![0u64; ni];
        let mut popularity = vec![0f32; ni];
        for r in &log.rows {
            user_count[r.user as usize] += 1;
            if rule.is_click(r) {
                popularity[r.item as usize] += 1.0;
            }
            if rule.is_conversion(r) {
                item_conv[r.item as usize] += 1;
            }
        }
        let mean = user_count.iter().sum::<u64>() as f64 / nu as f64;
        let activity_p = user_count
            .iter()
            .map(|&c| (cfg.daily_active_fraction * c as f64 / mean.max(1e-9)).min(1.0) as f32)
            .collect();
        let k = cfg.personal_pool.min(ni);
        let personal = (0..users)
            .into_par_iter()
            .map(|u| {
                let mut s: Vec<(f32, u32)> = (0..items).map(|i| (click.logit(u, i), i)).collect();
                let cmp = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
                if k > 0 && k < s.len() {
                    s.select_nth_unstable_by(k - 1, cmp);
                }
                s.truncate(k);
                s.sort_by(cmp);
                s.into_iter().map(|x| x.1).collect()
            })
            .collect();
        Ok(FittedOracle {
            name: name.to_string(),
            cfg: cfg.clone(),
            users,
            items,
            click,
            convert,
            price: prices.map_or_else(|| vec![1.0; ni], <[f32]>::to_vec),
            activity_p,
            user_count,
            item_conv,
            popularity,
            personal,
        })
    }
}

impl Environment for FittedOracle {
    fn name(&self) -> String {
        format!("fitted oracle on {}", self.name)
    }
    fn kind(&self) -> EnvKind {
        EnvKind::FittedOracle
    }
    fn description(&self) -> String {
        format!(
            "Logistic matrix-factorisation models (dim {}) fitted on all of `{}` stand in for the truth: p_click = {} × σ(rated vs random) \
             and p_convert = σ(rating ≥ 4 | rated). Lifts say how well a ranker agrees with this model, not what a launch would do; \
             rankers resembling the oracle are favoured and absolute CTR/CVR levels are artefacts of the chosen scale.",
            self.cfg.dim, self.name, self.cfg.click_scale
        )
    }
    fn num_users(&self) -> u32 {
        self.users
    }
    fn num_items(&self) -> u32 {
        self.items
    }
    fn active_users(&self, day: u32, seed: u64) -> Vec<(u32, u32)> {
        let pois = Poisson::new(self.cfg.extra_requests.max(1e-9)).ok();
        (0..self.users)
            .filter_map(|u| {
                let h = stream_seed(!seed, day, u);
                let p = (h >> 11) as f64 / (1u64 << 53) as f64;
                (p < self.activity_p[u as usize] as f64).then(|| {
                    let extra = pois.as_ref().map_or(0, |d| {
                        d.sample(&mut ChaCha8Rng::seed_from_u64(mix64(h))) as u32
                    });
                    (u, 1 + extra.min(20))
                })
            })
            .collect()
    }
    fn available(&self, _item: u32, _day: u32) -> bool {
        true
    }
    fn launch_day(&self, _item: u32) -> Option<u32> {
        None
    }
    fn price(&self, item: u32) -> f32 {
        self.price[item as usize]
    }
    fn popularity(&self, item: u32, _day: u32) -> f32 {
        self.popularity[item as usize]
    }
    fn personal_candidates(
        &self,
        user: u32,
        _day: u32,
        n: usize,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<u32>,
    ) {
        let pool = &self.personal[user as usize];
        if pool.is_empty() {
            return;
        }
        for _ in 0..n {
            out.push(pool[rng.random_range(0..pool.len())]);
        }
    }
    fn p_click(&self, user: u32, item: u32, _day: u32) -> f32 {
        self.cfg.click_scale * sigmoid(self.click.logit(user, item))
    }
    fn p_convert(&self, user: u32, item: u32, _day: u32) -> f32 {
        sigmoid(self.convert.logit(user, item))
    }
    fn user_activity(&self, user: u32) -> u64 {
        self.user_count[user as usize]
    }
    fn item_conversions(&self, item: u32) -> u64 {
        self.item_conv[item as usize]
    }
}
