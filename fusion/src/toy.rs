//! A small generated ranking world with oracle LEARN stores, for tests, the plug-in example and
//! benchmarks (it is not the project's synthetic e-commerce world, which `learnrec world` writes).
//!
//! Users have a latent preference `p_u`, items a latent `z_i` (dimension `latent`). An impression
//! converts with probability `σ(sharpness · p_u·z_i / √latent + bias_i − offset)`. The LEARN
//! stores are noisy linear images of the latents (`e_u = M p_u + ε`, `e_i = M z_i + ε`) and the
//! content store `c_i = Q z_i + ε`, so *content determines conversion*. A fraction of items is new:
//! first shown in the last part of the time range (hence only in the test split), absent from the
//! LEARN item store but present in the content store. Some users have no LEARN embedding.

use crate::data::{ItemFeatures, RankingData, RankingExample};
use learnrec_eval::data::IdMap;
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Size and shape of the toy world.
#[derive(Debug, Clone)]
pub struct ToyConfig {
    pub n_users: usize,
    pub n_items: usize,
    /// Impressions per user.
    pub impressions_per_user: usize,
    /// Dimension of the true latents.
    pub latent: usize,
    /// Width of the LEARN user and item embeddings.
    pub learn_dim: usize,
    /// Width of the content embeddings.
    pub content_dim: usize,
    /// Fraction of items that are new (shown only after `new_from` of the time range).
    pub new_item_frac: f64,
    /// Fraction of the time range after which new items appear.
    pub new_from: f64,
    /// Fraction of users absent from the LEARN user store.
    pub cold_user_frac: f64,
    /// Noise of the stores relative to the signal.
    pub noise: f32,
    /// Scale of the preference term in the conversion logit.
    pub sharpness: f32,
    pub seed: u64,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            n_users: 400,
            n_items: 500,
            impressions_per_user: 60,
            latent: 8,
            learn_dim: 16,
            content_dim: 24,
            new_item_frac: 0.3,
            new_from: 0.8,
            cold_user_frac: 0.1,
            noise: 0.2,
            sharpness: 3.0,
            seed: 1,
        }
    }
}

/// The generated data and its stores.
#[derive(Debug, Clone)]
pub struct Toy {
    pub data: RankingData,
    /// LEARN user store (kind User).
    pub user_store: EmbeddingStore,
    /// LEARN item store (kind Item) — old items only.
    pub item_store: EmbeddingStore,
    /// Content store (kind Content) — all items.
    pub content_store: EmbeddingStore,
    /// The LEARN embeddings new items would have had (kind Item; hidden from the rankers, for
    /// checking content-derived fallbacks).
    pub new_item_truth: EmbeddingStore,
    /// Whether each item is new.
    pub is_new: Vec<bool>,
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<f32> {
    let s = 1.0 / (cols as f32).sqrt();
    (0..rows * cols).map(|_| gauss(rng) * s).collect()
}

fn project(m: &[f32], rows: usize, x: &[f32], noise: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let cols = x.len();
    (0..rows)
        .map(|r| {
            let v: f32 = m[r * cols..(r + 1) * cols]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum();
            v + noise * gauss(rng)
        })
        .collect()
}

impl Toy {
    /// The LEARN lookup over the toy's user, item and content stores (the fused ranker's input).
    pub fn learn_lookup(&self) -> crate::Result<crate::LearnLookup> {
        crate::LearnLookup::new(
            &self.data.users,
            &self.data.items,
            &self.user_store,
            &self.item_store,
            Some(&self.content_store),
        )
    }

    /// Generates the toy world.
    pub fn generate(cfg: &ToyConfig) -> Toy {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let k = cfg.latent;
        let p: Vec<Vec<f32>> = (0..cfg.n_users)
            .map(|_| (0..k).map(|_| gauss(&mut rng)).collect())
            .collect();
        let z: Vec<Vec<f32>> = (0..cfg.n_items)
            .map(|_| (0..k).map(|_| gauss(&mut rng)).collect())
            .collect();
        let bias: Vec<f32> = (0..cfg.n_items).map(|_| 0.5 * gauss(&mut rng)).collect();
        let is_new: Vec<bool> = (0..cfg.n_items)
            .map(|_| rng.random_bool(cfg.new_item_frac))
            .collect();
        let m = matrix(&mut rng, cfg.learn_dim, k);
        let q = matrix(&mut rng, cfg.content_dim, k);

        let users = IdMap::from_names((0..cfg.n_users).map(|u| format!("u{u}")));
        let items = IdMap::from_names((0..cfg.n_items).map(|i| format!("i{i}")));
        let mut features = ItemFeatures::with_fields(&["category", "brand", "price_bucket"]);
        for (i, zi) in z.iter().enumerate() {
            // category: the sign pattern of the first two latent dims (weakly informative)
            let cat = format!(
                "c{}{}",
                u8::from(zi[0] > 0.0),
                u8::from(zi.get(1).is_some_and(|v| *v > 0.0))
            );
            let brand = format!("b{}", i % 20);
            let price = format!("p{}", rng.random_range(0..5));
            features.push_item(&[Some(&cat), Some(&brand), Some(&price)]);
        }

        let mut user_store = EmbeddingStore::new(StoreKind::User, cfg.learn_dim);
        let mut item_store = EmbeddingStore::new(StoreKind::Item, cfg.learn_dim);
        let mut content_store = EmbeddingStore::new(StoreKind::Content, cfg.content_dim);
        let mut new_item_truth = EmbeddingStore::new(StoreKind::Item, cfg.learn_dim);
        for (u, pu) in p.iter().enumerate() {
            let e = project(&m, cfg.learn_dim, pu, cfg.noise, &mut rng);
            if !rng.random_bool(cfg.cold_user_frac) {
                let _ = user_store.insert(users.name(u as u32), "", &e);
            }
        }
        for (i, zi) in z.iter().enumerate() {
            let e = project(&m, cfg.learn_dim, zi, cfg.noise, &mut rng);
            let store = if is_new[i] {
                &mut new_item_truth
            } else {
                &mut item_store
            };
            let _ = store.insert(items.name(i as u32), "", &e);
            let c = project(&q, cfg.content_dim, zi, cfg.noise, &mut rng);
            let _ = content_store.insert(items.name(i as u32), "", &c);
        }

        let old: Vec<u32> = (0..cfg.n_items as u32)
            .filter(|&i| !is_new[i as usize])
            .collect();
        let all: Vec<u32> = (0..cfg.n_items as u32).collect();
        let horizon = 1_000_000i64;
        let cut = (cfg.new_from * horizon as f64) as i64;
        let mut examples = Vec::with_capacity(cfg.n_users * cfg.impressions_per_user);
        let norm = (k as f32).sqrt();
        for (u, pu) in p.iter().enumerate() {
            for _ in 0..cfg.impressions_per_user {
                let ts = rng.random_range(0..horizon);
                let pool = if ts < cut || old.is_empty() {
                    &old
                } else {
                    &all
                };
                let Some(&item) = pool.get(rng.random_range(0..pool.len().max(1))) else {
                    continue;
                };
                let zi = &z[item as usize];
                let dot: f32 = pu.iter().zip(zi).map(|(a, b)| a * b).sum::<f32>() / norm;
                let logit = cfg.sharpness * dot + bias[item as usize] - 1.5;
                let prob = 1.0 / (1.0 + (-logit).exp());
                let label = if rng.random_bool(f64::from(prob)) {
                    1.0
                } else {
                    0.0
                };
                examples.push(RankingExample {
                    user: u as u32,
                    item,
                    ts,
                    label,
                    weight: 1.0,
                });
            }
        }
        examples.sort_by_key(|e| (e.ts, e.user, e.item));
        Toy {
            data: RankingData {
                users,
                items,
                features,
                examples,
            },
            user_store,
            item_store,
            content_store,
            new_item_truth,
            is_new,
        }
    }
}
