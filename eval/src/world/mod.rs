//! The synthetic e-commerce world and its oracle: the embedded default dataset of learnrec and the
//! ground truth of the A/B simulator.
//!
//! # What is in it
//! * **Items** from a taxonomy of 10 categories × 5 subcategories ([`taxonomy`]), each with a
//!   latent subcategory, style (6) and price tier (3) that its six text fields reveal ("Title: Envy
//!   Vintage Five-Petal Flower Earrings 357; Category: Earrings; Brand: Envy; Price: 9.9 yuan;
//!   …"), plus a hidden *quality* no text reveals. Items arrive over time (`available_from`);
//!   items are numbered in arrival order, so the items available on a day are a prefix.
//! * **Users** with latent tastes over subcategories, styles and price tiers, a bias, a
//!   heavy-tailed (log-normal) daily activity rate and a signup day.
//! * **The oracle**: `p_click(u, i, day) = σ(click_bias + taste(u, i) + quality_i + bias_u +
//!   freshness(i, day))` with `taste = sub_u[sub_i] + style_u[style_i] + tier_u[tier_i]`, and
//!   `p_convert(u, i, day) = σ(conv_bias + conv_taste_weight·taste +
//!   price_sensitivity_u·(tier_i − 1) + conv_quality_i)` — **the probability of a conversion
//!   given a click** (the paper's CVR);
//!   [`World::p_convert_unconditional`] is their product. Both are 0 for an item not yet
//!   available. Because quality is invisible to text, ID embeddings win on head items and content
//!   helps on cold-start and long-tail ones, as the paper reports.
//! * **The log** ([`World::simulate`]): each day every signed-up user is active with their
//!   activity rate (×1.15 at weekends); an active user sees 1 + Poisson pages of `page_size`
//!   impressions chosen by a logging policy (popularity mixed with a noisy version of the true
//!   taste, over popularity and personalised candidates); clicks and conversions are sampled from
//!   the oracle; revenue = price × conversion (one unit per order). Departure from industry: the
//!   logging policy's popularity prior is fixed (no feedback loop), so days are independent.
//!
//! # Files ([`World::write`])
//! `catalog.csv` (`item_id,title,category,brand,price,keywords,attributes,available_from,
//! top_category,price_bucket`; `category` is the leaf category as in the paper's text,
//! `price_bucket` the tier 0..2), `interactions.csv` (`user_id,item_id,timestamp,action,value,
//! revenue`; value empty, revenue only on conversions), `users.csv` (`user_id,signup_ts,gender,
//! age_group,city_tier`) and `world.json` (every oracle parameter, read back by [`World::load`]).
//! Oracle parameters are stored on a 1/4096 grid so that JSON round-trips them bit-exactly.

mod files;
mod report;
mod sim;
pub mod taxonomy;
mod text;

pub use files::{CATALOG_HEADER, INTERACTIONS_HEADER, USERS_HEADER};
pub use report::{SegmentCounts, SegmentShares, segment_shares};
pub use sim::SimProgress;

use crate::data::{Catalog, Item};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use taxonomy::{N_CATEGORIES, N_STYLES, N_SUBCATEGORIES, N_TIERS, SUBS_PER_CATEGORY};

/// Format version of world.json.
pub const WORLD_FORMAT_VERSION: u32 = 1;
/// Seconds per simulated day.
pub const DAY_SECS: i64 = 86_400;

/// Size and seed of a world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldConfig {
    /// Number of users.
    pub users: u32,
    /// Number of items.
    pub items: u32,
    /// Number of simulated days in the log.
    pub days: u32,
    /// Seed of every random draw (ChaCha8).
    pub seed: u64,
    /// Days at the end of the log that form the evaluation window of [`segment_shares`]
    /// (the history window is everything before).
    pub eval_days: u32,
    /// Unix time of day 0, 00:00 (default 2024-03-04, a Monday).
    pub start_ts: i64,
}

impl Default for WorldConfig {
    /// The embedded default: 10k users, 2k items, 60 days, evaluation window the last 7 days
    /// (≈3.7M log rows; about 10 s to generate and write on 2 cores).
    fn default() -> Self {
        WorldConfig { users: 10_000, items: 2_000, days: 60, seed: 42, eval_days: 7, start_ts: 1_709_510_400 }
    }
}

impl WorldConfig {
    /// Checks the sizes; errors name the offending option.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.users == 0 {
            return bad("--users must be at least 1 (got 0)".into());
        }
        if self.items < 10 {
            return bad(format!("--items must be at least 10 (got {})", self.items));
        }
        if self.days == 0 {
            return bad("--days must be at least 1 (got 0)".into());
        }
        if self.users > 50_000_000 || self.items > 10_000_000 || self.days > 3650 {
            return bad(format!(
                "world too large: --users {} (max 50M), --items {} (max 10M), --days {} (max 3650)",
                self.users, self.items, self.days
            ));
        }
        if self.eval_days >= self.days && self.days > 1 {
            return bad(format!("--eval-days {} must be smaller than --days {}", self.eval_days, self.days));
        }
        Ok(())
    }
}

/// Constants of the oracle's two logits (stored in world.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleParams {
    /// Intercept of the click logit.
    pub click_bias: f64,
    /// Intercept of the conversion-given-click logit.
    pub conv_bias: f64,
    /// Weight of the taste term in the conversion logit.
    pub conv_taste_weight: f64,
    /// Click-logit boost of a brand-new item.
    pub fresh_boost: f64,
    /// Days over which the freshness boost decays (e-folding).
    pub fresh_days: f64,
    /// Activity multiplier on Saturdays and Sundays.
    pub weekend_activity: f64,
}

impl Default for OracleParams {
    fn default() -> Self {
        OracleParams {
            click_bias: -3.2,
            conv_bias: -2.2,
            conv_taste_weight: 0.5,
            fresh_boost: 0.5,
            fresh_days: 7.0,
            weekend_activity: 1.15,
        }
    }
}

/// The logging policy that chose the impressions of the log (stored in world.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyParams {
    /// Impressions per page.
    pub page_size: u32,
    /// Candidates drawn by popularity per page.
    pub pop_candidates: u32,
    /// Candidates drawn from the user's preferred subcategories per page.
    pub personal_candidates: u32,
    /// Weight of log-popularity in the policy score.
    pub pop_weight: f64,
    /// Weight of the (noisy) true taste in the policy score.
    pub taste_weight: f64,
    /// Standard deviation of the noise added to the taste.
    pub taste_noise: f64,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            page_size: 8,
            pop_candidates: 40,
            personal_candidates: 40,
            pop_weight: 0.3,
            taste_weight: 1.0,
            taste_noise: 1.0,
        }
    }
}

/// Observable categorical item features, as dense ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ItemFeatures {
    /// Top-level category, `0..N_CATEGORIES` (10).
    pub category: u32,
    /// Leaf category, `0..N_SUBCATEGORIES` (50).
    pub subcategory: u32,
    /// Global brand id, `0..N_BRANDS` (100; "-" of each category is its own id).
    pub brand: u32,
    /// Price bucket = tier within the subcategory, `0..N_TIERS` (3).
    pub price_bucket: u32,
}

/// Global brand ids ([`ItemFeatures::brand`]) range over `0..N_BRANDS`.
pub const N_BRANDS: usize = N_CATEGORIES * taxonomy::BRANDS_PER_CATEGORY;

/// Observable categorical user features, as dense ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct UserFeatures {
    /// 0 female, 1 male.
    pub gender: u32,
    /// `0..5`.
    pub age_group: u32,
    /// `0..4`.
    pub city_tier: u32,
}

/// One item's latent and observable parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldItem {
    /// Top-level category (0..10).
    pub category: u8,
    /// Global subcategory (0..50; category = subcategory / 5).
    pub subcategory: u8,
    /// Brand index within the category (0..=8 by tier, 9 = "-").
    pub brand: u8,
    /// Latent style (0..6).
    pub style: u8,
    /// Price tier within the subcategory (0 budget, 1 mid, 2 premium) = the price bucket.
    pub tier: u8,
    /// Price in yuan (a multiple of 0.1).
    pub price: f64,
    /// Hidden quality in the click logit (no text reveals it).
    pub quality: f64,
    /// Hidden quality in the conversion logit.
    pub conv_quality: f64,
    /// Log of the logging policy's popularity prior.
    pub log_popularity: f64,
    /// First day the item can be shown (0 = from the start).
    pub available_day: u32,
    pub title: String,
    pub keywords: String,
    pub attributes: String,
}

/// One user's latent and observable parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldUser {
    /// First day the user can be active.
    pub signup_day: u32,
    /// 0 female, 1 male (observable).
    pub gender: u8,
    /// Age bucket 0..5 (observable).
    pub age_group: u8,
    /// City tier 0..4 (observable; lower tiers are more price sensitive).
    pub city_tier: u8,
    /// Probability of being active on a weekday.
    pub activity: f64,
    /// Mean number of extra pages per active day.
    pub extra_pages: f64,
    /// User bias of the click logit.
    pub bias: f64,
    /// Taste per global subcategory (50).
    pub sub_taste: Vec<f64>,
    /// Taste per style (6).
    pub style_taste: Vec<f64>,
    /// Taste per price tier (3).
    pub tier_taste: Vec<f64>,
    /// Conversion-logit slope in the tier (negative = prefers cheaper).
    pub price_sensitivity: f64,
}

/// Everything world.json holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorldFile {
    format_version: u32,
    taxonomy_version: u32,
    config: WorldConfig,
    oracle: OracleParams,
    policy: PolicyParams,
    items: Vec<WorldItem>,
    users: Vec<WorldUser>,
}

/// The synthetic world: parameters, oracle and logging policy. Build with [`World::generate`] or
/// [`World::load`]; simulate a log with [`World::simulate`]; write files with [`World::write`].
#[derive(Debug, Clone)]
pub struct World {
    pub config: WorldConfig,
    pub oracle: OracleParams,
    pub policy: PolicyParams,
    /// Items in arrival order (item `i` has external id [`World::item_id`]`(i)`).
    pub items: Vec<WorldItem>,
    pub users: Vec<WorldUser>,
    // Derived lookups (rebuilt on load).
    /// Cumulative popularity prior over items (arrival order).
    pop_cum: Vec<f64>,
    /// Items of each subcategory (arrival order) with their cumulative popularity.
    sub_items: Vec<(Vec<u32>, Vec<f64>)>,
}

/// Rounds to the 1/4096 grid (exact in JSON; see the module docs).
fn grid(x: f64) -> f64 {
    (x * 4096.0).round() / 4096.0
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A seeded ChaCha8 stream: `stream` separates independent parts of the generation.
pub(crate) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn normal(mean: f64, sd: f64) -> Normal<f64> {
    // Only called with finite constants and sd > 0.
    Normal::new(mean, sd).unwrap_or_else(|_| unreachable!("bad normal({mean}, {sd})"))
}

impl World {
    /// Draws a world's parameters (not the log) for `config`. Deterministic for a seed.
    pub fn generate(config: &WorldConfig) -> Result<World> {
        config.validate()?;
        let items = gen_items(config);
        let users = gen_users(config);
        Ok(World::assemble(config.clone(), OracleParams::default(), PolicyParams::default(), items, users))
    }

    fn assemble(
        config: WorldConfig,
        oracle: OracleParams,
        policy: PolicyParams,
        items: Vec<WorldItem>,
        users: Vec<WorldUser>,
    ) -> World {
        let mut pop_cum = Vec::with_capacity(items.len());
        let mut acc = 0.0;
        let mut sub_items: Vec<(Vec<u32>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); N_SUBCATEGORIES];
        for (i, it) in items.iter().enumerate() {
            let w = it.log_popularity.exp();
            acc += w;
            pop_cum.push(acc);
            let (ids, cum) = &mut sub_items[it.subcategory as usize];
            let prev = cum.last().copied().unwrap_or(0.0);
            ids.push(i as u32);
            cum.push(prev + w);
        }
        World { config, oracle, policy, items, users, pop_cum, sub_items }
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }
    /// External id of user `u` (`u00042`).
    pub fn user_id(&self, u: u32) -> String {
        format!("u{:0w$}", u, w = digits(self.users.len()))
    }
    /// External id of item `i` (`i0042`).
    pub fn item_id(&self, i: u32) -> String {
        format!("i{:0w$}", i, w = digits(self.items.len()))
    }
    /// Unix time of the start of `day`.
    pub fn day_start(&self, day: u32) -> i64 {
        self.config.start_ts + day as i64 * DAY_SECS
    }
    /// First timestamp of the evaluation window (= end of the history window).
    pub fn history_end_ts(&self) -> i64 {
        self.day_start(self.config.days.saturating_sub(self.config.eval_days))
    }
    /// The day containing unix time `ts` (saturating at 0).
    pub fn day_of(&self, ts: i64) -> u32 {
        ((ts - self.config.start_ts).max(0) / DAY_SECS) as u32
    }

    /// Whether item `i` can be shown on `day`.
    pub fn is_available(&self, item: u32, day: u32) -> bool {
        self.items.get(item as usize).is_some_and(|it| it.available_day <= day)
    }
    /// Number of items available on `day`: they are items `0..n` (items are in arrival order).
    pub fn n_available(&self, day: u32) -> usize {
        self.items.partition_point(|it| it.available_day <= day)
    }
    /// Unix time the item becomes available, `None` if from the start.
    pub fn available_from(&self, item: u32) -> Option<i64> {
        let d = self.items[item as usize].available_day;
        (d > 0).then(|| self.day_start(d))
    }
    /// Price of item `i` in yuan.
    pub fn price(&self, item: u32) -> f64 {
        self.items[item as usize].price
    }

    /// Categorical features of item `i` for a ranker (all ids dense, from 0).
    pub fn item_features(&self, item: u32) -> ItemFeatures {
        let it = &self.items[item as usize];
        ItemFeatures {
            category: it.category as u32,
            subcategory: it.subcategory as u32,
            brand: it.category as u32 * taxonomy::BRANDS_PER_CATEGORY as u32 + it.brand as u32,
            price_bucket: it.tier as u32,
        }
    }

    /// Categorical features of user `u` for a ranker (the columns of users.csv).
    pub fn user_features(&self, user: u32) -> UserFeatures {
        let u = &self.users[user as usize];
        UserFeatures { gender: u.gender as u32, age_group: u.age_group as u32, city_tier: u.city_tier as u32 }
    }

    /// The latent taste of user `u` for item `i` (sum of subcategory, style and tier terms).
    pub fn taste(&self, user: u32, item: u32) -> f64 {
        let u = &self.users[user as usize];
        let it = &self.items[item as usize];
        u.sub_taste[it.subcategory as usize] + u.style_taste[it.style as usize] + u.tier_taste[it.tier as usize]
    }

    /// True probability that `user` clicks `item` when shown it on `day` (0 if unavailable).
    pub fn p_click(&self, user: u32, item: u32, day: u32) -> f64 {
        let it = &self.items[item as usize];
        if it.available_day > day {
            return 0.0;
        }
        let age = (day - it.available_day) as f64;
        let fresh =
            if it.available_day > 0 { self.oracle.fresh_boost * (-age / self.oracle.fresh_days).exp() } else { 0.0 };
        let u = &self.users[user as usize];
        sigmoid(self.oracle.click_bias + self.taste(user, item) + it.quality + u.bias + fresh)
    }

    /// True probability that `user` buys `item` **given a click** on `day` (the paper's CVR;
    /// 0 if unavailable).
    pub fn p_convert(&self, user: u32, item: u32, day: u32) -> f64 {
        let it = &self.items[item as usize];
        if it.available_day > day {
            return 0.0;
        }
        let u = &self.users[user as usize];
        sigmoid(
            self.oracle.conv_bias
                + self.oracle.conv_taste_weight * self.taste(user, item)
                + u.price_sensitivity * (it.tier as f64 - 1.0)
                + it.conv_quality,
        )
    }

    /// True probability that an impression of `item` to `user` on `day` ends in a purchase.
    pub fn p_convert_unconditional(&self, user: u32, item: u32, day: u32) -> f64 {
        self.p_click(user, item, day) * self.p_convert(user, item, day)
    }

    /// Probability that `user` is active (visits) on `day` (0 before signup).
    pub fn activity(&self, user: u32, day: u32) -> f64 {
        let u = &self.users[user as usize];
        if u.signup_day > day {
            return 0.0;
        }
        let weekend = matches!((self.config.start_ts / DAY_SECS + 3 + day as i64).rem_euclid(7), 5 | 6);
        let f = if weekend { self.oracle.weekend_activity } else { 1.0 };
        (u.activity * f).min(1.0)
    }

    /// Samples the users active on `day` (ascending ids).
    pub fn active_users<R: Rng>(&self, day: u32, rng: &mut R) -> Vec<u32> {
        (0..self.users.len() as u32)
            .filter(|&u| {
                let p = self.activity(u, day);
                p > 0.0 && rng.random::<f64>() < p
            })
            .collect()
    }

    /// Samples how many pages an active user views in a visit (1 + Poisson(extra_pages)).
    pub fn session_pages<R: Rng>(&self, user: u32, rng: &mut R) -> u32 {
        let lambda = self.users[user as usize].extra_pages;
        1 + sim::poisson(rng, lambda).min(50)
    }

    /// Samples a candidate set for `user` on `day`: items drawn by popularity plus items from
    /// subcategories drawn by the user's taste (deduplicated, available only). This is the
    /// retrieval stage both the logging policy and the A/B simulator's rankers rank from.
    pub fn candidates<R: Rng>(&self, user: u32, day: u32, rng: &mut R) -> Vec<u32> {
        sim::candidates(self, user, day, rng)
    }

    /// One page of the logging policy for `user` on `day`: `page_size` items (fewer if fewer are
    /// available), in display order.
    pub fn logging_page<R: Rng>(&self, user: u32, day: u32, rng: &mut R) -> Vec<u32> {
        let c = sim::candidates(self, user, day, rng);
        sim::policy_page(self, user, &c, rng)
    }

    /// The catalog as the shared [`Catalog`] type (ids `i…`, `available_from` in unix seconds,
    /// extra columns `top_category` and `price_bucket`).
    pub fn catalog(&self) -> Catalog {
        let items = (0..self.items.len() as u32).map(|i| self.catalog_item(i)).collect();
        Catalog::from_items(items)
    }

    /// Item `i` as a catalog [`Item`] with its six text fields.
    pub fn catalog_item(&self, i: u32) -> Item {
        let it = &self.items[i as usize];
        let mut extra = BTreeMap::new();
        extra.insert("top_category".to_owned(), taxonomy::CATEGORIES[it.category as usize].name.to_owned());
        extra.insert("price_bucket".to_owned(), it.tier.to_string());
        Item {
            id: self.item_id(i),
            title: it.title.clone(),
            category: taxonomy::subcategory(it.subcategory as usize).name.to_owned(),
            brand: taxonomy::brand_name(it.category as usize, it.brand as usize).to_owned(),
            price: Some(it.price),
            keywords: it.keywords.clone(),
            attributes: it.attributes.clone(),
            extra,
            available_from: self.available_from(i),
        }
    }

    /// The paper's default item text: "Title: …; Category: …; Brand: …; Price: 9.9 yuan;
    /// Keywords: …; Attribute: …".
    pub fn item_text(&self, i: u32) -> String {
        let it = self.catalog_item(i);
        format!(
            "Title: {}; Category: {}; Brand: {}; Price: {} yuan; Keywords: {}; Attribute: {}",
            it.title,
            it.category,
            it.brand,
            crate::data::format_price(it.price.unwrap_or(0.0)),
            it.keywords,
            it.attributes
        )
    }

    /// Saves world.json atomically.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let file = WorldFile {
            format_version: WORLD_FORMAT_VERSION,
            taxonomy_version: taxonomy::TAXONOMY_VERSION,
            config: self.config.clone(),
            oracle: self.oracle.clone(),
            policy: self.policy.clone(),
            items: self.items.clone(),
            users: self.users.clone(),
        };
        crate::atomic::write_with(path, |w| serde_json::to_writer(w, &file).map_err(std::io::Error::other))
    }

    /// Reads `dir/world.json` (or `dir` itself if it is a file) and rebuilds the exact oracle.
    /// Errors name the file and the offending field.
    pub fn load(dir: &Path) -> Result<World> {
        let path = if dir.is_dir() { dir.join("world.json") } else { dir.to_path_buf() };
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let f: WorldFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::parse(&path, e.line() as u64, "world.json", format!("not a learnrec world file: {e}"))
        })?;
        let bad = |field: String, m: String| Err(Error::parse(&path, 1, field, m));
        if f.format_version != WORLD_FORMAT_VERSION {
            return bad(
                "format_version".into(),
                format!("is {}, this build reads {WORLD_FORMAT_VERSION}", f.format_version),
            );
        }
        if f.taxonomy_version != taxonomy::TAXONOMY_VERSION {
            return bad(
                "taxonomy_version".into(),
                format!(
                    "is {}, this build has {} (regenerate the world)",
                    f.taxonomy_version,
                    taxonomy::TAXONOMY_VERSION
                ),
            );
        }
        f.config.validate().map_err(|e| Error::parse(&path, 1, "config", e.to_string()))?;
        if f.items.len() != f.config.items as usize {
            return bad("items".into(), format!("has {} entries, config says {}", f.items.len(), f.config.items));
        }
        if f.users.len() != f.config.users as usize {
            return bad("users".into(), format!("has {} entries, config says {}", f.users.len(), f.config.users));
        }
        let mut last_day = 0;
        for (i, it) in f.items.iter().enumerate() {
            let field = |name: &str| format!("items[{i}].{name}");
            if it.subcategory as usize >= N_SUBCATEGORIES
                || it.category as usize != it.subcategory as usize / SUBS_PER_CATEGORY
            {
                return bad(field("subcategory"), format!("{} does not fit category {}", it.subcategory, it.category));
            }
            if it.brand as usize >= taxonomy::BRANDS_PER_CATEGORY {
                return bad(field("brand"), format!("{} out of range", it.brand));
            }
            if it.style as usize >= N_STYLES || it.tier as usize >= N_TIERS {
                return bad(field("style/tier"), format!("style {} tier {} out of range", it.style, it.tier));
            }
            for (name, v) in [
                ("price", it.price),
                ("quality", it.quality),
                ("conv_quality", it.conv_quality),
                ("log_popularity", it.log_popularity),
            ] {
                if !v.is_finite() {
                    return bad(field(name), format!("{v} is not finite"));
                }
            }
            if it.price <= 0.0 {
                return bad(field("price"), format!("{} must be positive", it.price));
            }
            if it.available_day < last_day {
                return bad(field("available_day"), "items must be in arrival order".into());
            }
            last_day = it.available_day;
        }
        for (u, us) in f.users.iter().enumerate() {
            let field = |name: &str| format!("users[{u}].{name}");
            if us.sub_taste.len() != N_SUBCATEGORIES
                || us.style_taste.len() != N_STYLES
                || us.tier_taste.len() != N_TIERS
            {
                return bad(field("taste"), format!("expected {N_SUBCATEGORIES}/{N_STYLES}/{N_TIERS} tastes"));
            }
            let all = us.sub_taste.iter().chain(&us.style_taste).chain(&us.tier_taste);
            if !all.chain([&us.activity, &us.extra_pages, &us.bias, &us.price_sensitivity]).all(|v| v.is_finite()) {
                return bad(field("taste"), "non-finite parameter".into());
            }
            if !(0.0..=1.0).contains(&us.activity) || us.extra_pages < 0.0 {
                return bad(
                    field("activity"),
                    format!("activity {} / extra_pages {} out of range", us.activity, us.extra_pages),
                );
            }
        }
        Ok(World::assemble(f.config, f.oracle, f.policy, f.items, f.users))
    }
}

fn digits(n: usize) -> usize {
    n.saturating_sub(1).max(1).to_string().len()
}

/// Item parameters, in arrival order.
fn gen_items(cfg: &WorldConfig) -> Vec<WorldItem> {
    let mut rng = rng_for(cfg.seed, 1);
    let n = cfg.items as usize;
    // Subcategory sizes are uneven (Gamma weights) like real catalogs.
    let gamma = Gamma::new(4.0, 1.0).unwrap_or_else(|_| unreachable!());
    let sub_w: Vec<f64> = (0..N_SUBCATEGORIES).map(|_| gamma.sample(&mut rng)).collect();
    let sub_total: f64 = sub_w.iter().sum();
    let std = normal(0.0, 1.0);
    // 85% of items exist from day 0; the rest arrive uniformly over days 1..days.
    let mut days: Vec<u32> = (0..n)
        .map(|_| if cfg.days <= 1 || rng.random_bool(0.82) { 0 } else { rng.random_range(1..cfg.days) })
        .collect();
    days.sort_unstable();
    days.into_iter()
        .map(|available_day| {
            let mut x = rng.random::<f64>() * sub_total;
            let mut sub = N_SUBCATEGORIES - 1;
            for (s, w) in sub_w.iter().enumerate() {
                if x < *w {
                    sub = s;
                    break;
                }
                x -= w;
            }
            let category = sub / SUBS_PER_CATEGORY;
            let style = rng.random_range(0..N_STYLES);
            let tier = match rng.random::<f64>() {
                t if t < 0.4 => 0,
                t if t < 0.8 => 1,
                _ => 2,
            };
            // Budget items are often unbranded; branded ones mostly carry a brand of their tier.
            let brand = if rng.random_bool([0.45, 0.2, 0.05][tier]) {
                taxonomy::NO_BRAND
            } else {
                let bt = if rng.random_bool(0.8) { tier } else { rng.random_range(0..N_TIERS) };
                bt * 3 + rng.random_range(0..3)
            };
            let price = text::price_tenths(&mut rng, sub, tier) as f64 / 10.0;
            let t = text::item_text(&mut rng, sub, style, tier, brand);
            let quality = 0.7 * std.sample(&mut rng);
            let conv_quality = 0.5 * quality + 0.5 * std.sample(&mut rng);
            // Heavy-tailed popularity prior, correlated with quality (good items get promoted).
            let log_popularity = 0.6 * std.sample(&mut rng) + 0.5 * quality;
            WorldItem {
                category: category as u8,
                subcategory: sub as u8,
                brand: brand as u8,
                style: style as u8,
                tier: tier as u8,
                price,
                quality: grid(quality),
                conv_quality: grid(conv_quality),
                log_popularity: grid(log_popularity),
                available_day,
                title: t.title,
                keywords: t.keywords,
                attributes: t.attributes,
            }
        })
        .collect()
}

/// User parameters.
fn gen_users(cfg: &WorldConfig) -> Vec<WorldUser> {
    let mut rng = rng_for(cfg.seed, 2);
    let std = normal(0.0, 1.0);
    let gamma = Gamma::new(0.35, 1.0).unwrap_or_else(|_| unreachable!());
    // Categories with a gender lean (women's clothing, beauty, jewelry vs electronics, sports).
    const GENDER_LEAN: [f64; N_CATEGORIES] = [0.6, 0.9, 0.2, 0.8, 0.0, 0.1, -0.6, 0.0, -0.5, 0.0];
    (0..cfg.users)
        .map(|_| {
            let signup_day = if cfg.days <= 1 || rng.random_bool(0.64) { 0 } else { rng.random_range(1..cfg.days) };
            let gender = rng.random_bool(0.45) as u8;
            let age_group = rng.random_range(0..5u8);
            let city_tier = rng.random_range(0..4u8);
            // Heavy-tailed activity: log-normal daily visit probability.
            let activity = (0.2 * (1.3 * std.sample(&mut rng)).exp()).clamp(0.003, 0.95);
            let extra_pages = 0.8 * (0.5 * std.sample(&mut rng)).exp();
            // Category taste: a sparse Dirichlet-like mix, so most users have 1–3 favourites.
            let g: Vec<f64> = (0..N_CATEGORIES).map(|_| gamma.sample(&mut rng)).collect();
            let gmax = g.iter().cloned().fold(1e-12, f64::max);
            let sign = if gender == 0 { 1.0 } else { -1.0 };
            let cat_taste: Vec<f64> =
                (0..N_CATEGORIES).map(|c| 2.5 * (g[c] / gmax) - 1.0 + 0.4 * sign * GENDER_LEAN[c]).collect();
            let sub_taste = (0..N_SUBCATEGORIES)
                .map(|s| grid(cat_taste[s / SUBS_PER_CATEGORY] + 0.6 * std.sample(&mut rng)))
                .collect();
            let style_taste = (0..N_STYLES).map(|_| grid(0.7 * std.sample(&mut rng))).collect();
            // Price taste: lower city tiers (0 = tier-1 cities) lean premium.
            let lean = 0.25 * (1.5 - city_tier as f64) + 0.5 * std.sample(&mut rng);
            let tier_taste = (0..N_TIERS).map(|t| grid(lean * (t as f64 - 1.0) + 0.3 * std.sample(&mut rng))).collect();
            let price_sensitivity = grid(-0.3 + 0.4 * lean + 0.2 * std.sample(&mut rng));
            WorldUser {
                signup_day,
                gender,
                age_group,
                city_tier,
                activity: grid(activity).max(1.0 / 4096.0),
                extra_pages: grid(extra_pages),
                bias: grid(0.3 * std.sample(&mut rng)),
                sub_taste,
                style_taste,
                tier_taste,
                price_sensitivity,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> WorldConfig {
        WorldConfig { users: 200, items: 100, days: 10, seed: 7, eval_days: 2, ..WorldConfig::default() }
    }

    #[test]
    fn grid_values_round_trip_through_json() {
        let w = World::generate(&small()).unwrap();
        let json = serde_json::to_string(&w.users).unwrap();
        let back: Vec<WorldUser> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, w.users);
    }

    #[test]
    fn oracle_is_a_probability_and_respects_availability() {
        let w = World::generate(&small()).unwrap();
        let late = (0..w.n_items() as u32).find(|&i| w.items[i as usize].available_day > 0).unwrap();
        let d = w.items[late as usize].available_day;
        assert_eq!(w.p_click(0, late, d - 1), 0.0);
        assert!(w.p_click(0, late, d) > 0.0);
        for u in 0..w.n_users() as u32 {
            for i in 0..w.n_items() as u32 {
                for p in [w.p_click(u, i, 9), w.p_convert(u, i, 9), w.p_convert_unconditional(u, i, 9)] {
                    assert!((0.0..=1.0).contains(&p), "{p}");
                }
            }
        }
        assert_eq!(w.n_available(0), w.items.iter().filter(|it| it.available_day == 0).count());
    }

    #[test]
    fn bad_config_is_named() {
        let e = World::generate(&WorldConfig { users: 0, ..small() }).unwrap_err();
        assert!(e.to_string().contains("--users must be at least 1"), "{e}");
        let e = World::generate(&WorldConfig { items: 3, ..small() }).unwrap_err();
        assert!(e.to_string().contains("--items must be at least 10"), "{e}");
        let e = World::generate(&WorldConfig { days: 0, ..small() }).unwrap_err();
        assert!(e.to_string().contains("--days"), "{e}");
        let e = World::generate(&WorldConfig { eval_days: 10, ..small() }).unwrap_err();
        assert!(e.to_string().contains("--eval-days"), "{e}");
    }

    #[test]
    fn features_are_dense_and_match_the_catalog() {
        let w = World::generate(&small()).unwrap();
        let cat = w.catalog();
        let mut brand_of = std::collections::HashMap::new();
        for i in 0..w.n_items() as u32 {
            let f = w.item_features(i);
            assert!((f.brand as usize) < N_BRANDS && (f.subcategory as usize) < N_SUBCATEGORIES);
            assert_eq!(f.category, f.subcategory / SUBS_PER_CATEGORY as u32);
            let item = &cat.items[i as usize];
            assert_eq!(item.extra["price_bucket"], f.price_bucket.to_string());
            // One global brand id per (category, brand name).
            let key = (f.category, item.brand.clone());
            assert_eq!(*brand_of.entry(key).or_insert(f.brand), f.brand);
        }
        let u = w.user_features(0);
        assert!(u.gender < 2 && u.age_group < 5 && u.city_tier < 4);
    }

    #[test]
    fn weekend_activity_is_higher() {
        let w = World::generate(&small()).unwrap();
        let u = (0..w.n_users() as u32)
            .find(|&u| w.users[u as usize].signup_day == 0 && w.users[u as usize].activity < 0.5)
            .unwrap();
        // Day 0 is a Monday (2024-03-04); day 5 is Saturday.
        assert!(w.activity(u, 5) > w.activity(u, 0));
        assert_eq!(w.activity(u, 4), w.activity(u, 0));
    }
}
