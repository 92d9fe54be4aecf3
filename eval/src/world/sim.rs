//! The logging policy and the day-by-day simulation of the interaction log.

use super::{World, rng_for};
use crate::data::{Action, IdMap, Interaction, InteractionLog};
use rand::Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Progress of [`World::simulate`]: called with (days done, days total) from worker threads.
pub type SimProgress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Poisson(λ) by multiplication (λ is small here).
pub(crate) fn poisson<R: Rng>(rng: &mut R, lambda: f64) -> u32 {
    if lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l || k >= 1000 {
            return k;
        }
        k += 1;
    }
}

/// Index drawn from a cumulative weight array restricted to its first `n` entries.
fn draw_cum<R: Rng>(rng: &mut R, cum: &[f64], n: usize) -> Option<usize> {
    let total = *cum[..n].last()?;
    let x = rng.random::<f64>() * total;
    Some(cum[..n].partition_point(|c| *c <= x).min(n - 1))
}

pub(crate) fn candidates<R: Rng>(w: &World, user: u32, day: u32, rng: &mut R) -> Vec<u32> {
    let n = w.n_available(day);
    let mut out = Vec::with_capacity((w.policy.pop_candidates + w.policy.personal_candidates) as usize);
    if n == 0 {
        return out;
    }
    for _ in 0..w.policy.pop_candidates {
        if let Some(i) = draw_cum(rng, &w.pop_cum, n) {
            out.push(i as u32);
        }
    }
    // Personalised recall: a subcategory by softmax of the user's taste, then an item by popularity.
    let u = &w.users[user as usize];
    let mut acc = 0.0;
    let sub_cum: Vec<f64> = u
        .sub_taste
        .iter()
        .map(|t| {
            acc += (1.5 * t).exp();
            acc
        })
        .collect();
    for _ in 0..w.policy.personal_candidates {
        let Some(s) = draw_cum(rng, &sub_cum, sub_cum.len()) else { break };
        let (ids, cum) = &w.sub_items[s];
        let m = ids.partition_point(|&i| (i as usize) < n);
        if let Some(j) = draw_cum(rng, cum, m) {
            out.push(ids[j]);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The logging policy: log-popularity plus noisy true taste plus Gumbel noise, top `page_size`.
pub(crate) fn policy_page<R: Rng>(w: &World, user: u32, cands: &[u32], rng: &mut R) -> Vec<u32> {
    let p = &w.policy;
    let mut scored: Vec<(f64, u32)> = cands
        .iter()
        .map(|&i| {
            let noise = p.taste_noise * std_normal(rng);
            let gumbel = -(-(rng.random::<f64>().max(1e-300)).ln()).ln();
            let s = p.pop_weight * w.items[i as usize].log_popularity
                + p.taste_weight * (w.taste(user, i) + noise)
                + gumbel;
            (s, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(p.page_size as usize);
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Standard normal by Box–Muller (one draw).
fn std_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One day of the log, from its own RNG stream.
fn simulate_day(w: &World, day: u32) -> Vec<Interaction> {
    let mut rng = rng_for(w.config.seed, 1000 + day as u64);
    let mut rows = Vec::new();
    let day_ts = w.day_start(day);
    for user in w.active_users(day, &mut rng) {
        let pages = w.session_pages(user, &mut rng);
        // A visit between 08:00 and 23:00; pages a minute apart.
        let start = day_ts + rng.random_range(8 * 3600..23 * 3600);
        for page in 0..pages {
            let ts = start + page as i64 * 60;
            let cands = candidates(w, user, day, &mut rng);
            for (pos, item) in policy_page(w, user, &cands, &mut rng).into_iter().enumerate() {
                let row = |ts, action, revenue| Interaction { user, item, ts, action, value: 1.0, revenue };
                rows.push(row(ts, Action::Impression, None));
                if rng.random::<f64>() < w.p_click(user, item, day) {
                    let click_ts = ts + 5 + 3 * pos as i64;
                    rows.push(row(click_ts, Action::Click, None));
                    if rng.random::<f64>() < w.p_convert(user, item, day) {
                        rows.push(row(click_ts + 120, Action::Conversion, Some(w.price(item) as f32)));
                    }
                }
            }
        }
    }
    rows
}

impl World {
    /// Simulates the whole log (days in parallel, each from its own seeded stream, so the result
    /// does not depend on the thread count). Rows are sorted by (time, user, item, action); user
    /// and item indices are the world's, and the log's id maps hold the world's external ids.
    /// `progress` gets (days done, total days).
    pub fn simulate(&self, progress: Option<SimProgress<'_>>) -> InteractionLog {
        let total = self.config.days as u64;
        let done = AtomicU64::new(0);
        let per_day: Vec<Vec<Interaction>> = (0..self.config.days)
            .into_par_iter()
            .map(|d| {
                let rows = simulate_day(self, d);
                let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(p) = progress {
                    p(k, total);
                }
                rows
            })
            .collect();
        let mut log = InteractionLog {
            users: IdMap::from_names((0..self.users.len() as u32).map(|u| self.user_id(u))),
            items: IdMap::from_names((0..self.items.len() as u32).map(|i| self.item_id(i))),
            rows: per_day.into_iter().flatten().collect(),
        };
        log.sort();
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::WorldConfig;

    #[test]
    fn poisson_mean_is_lambda() {
        let mut rng = rng_for(1, 1);
        let n = 20_000;
        let mean = (0..n).map(|_| poisson(&mut rng, 0.8) as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.8).abs() < 0.03, "{mean}");
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }

    #[test]
    fn pages_hold_distinct_available_items() {
        let w = World::generate(&WorldConfig {
            users: 50,
            items: 300,
            days: 20,
            seed: 3,
            eval_days: 2,
            ..WorldConfig::default()
        })
        .unwrap();
        let mut rng = rng_for(9, 9);
        for day in [0, 10, 19] {
            for u in 0..50 {
                let page = w.logging_page(u, day, &mut rng);
                assert!(!page.is_empty() && page.len() <= w.policy.page_size as usize);
                let mut s = page.clone();
                s.sort_unstable();
                s.dedup();
                assert_eq!(s.len(), page.len());
                assert!(page.iter().all(|&i| w.is_available(i, day)));
            }
        }
    }

    #[test]
    fn policy_prefers_the_users_taste() {
        // Mean taste of shown items beats the mean taste of random available items.
        let w = World::generate(&WorldConfig {
            users: 100,
            items: 500,
            days: 5,
            seed: 5,
            eval_days: 1,
            ..WorldConfig::default()
        })
        .unwrap();
        let mut rng = rng_for(2, 2);
        let (mut shown, mut n_shown, mut all, mut n_all) = (0.0, 0.0, 0.0, 0.0);
        for u in 0..100 {
            for i in w.logging_page(u, 0, &mut rng) {
                shown += w.taste(u, i);
                n_shown += 1.0;
            }
            for i in 0..w.n_available(0) as u32 {
                all += w.taste(u, i);
                n_all += 1.0;
            }
        }
        assert!(shown / n_shown > all / n_all + 0.5, "shown {} vs all {}", shown / n_shown, all / n_all);
    }
}
