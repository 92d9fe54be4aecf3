//! The synthetic world ([`crate::world::World`]) as an A/B [`Environment`]: its oracle is the
//! ground truth, its activity model decides who visits, its retrieval proposes personalised
//! candidates, and its history log fixes the pre-period segments.
//!
//! Segments follow `world::segment_shares` (the paper's Table 6/7 definitions): users by their
//! **clicks** before `history_end_ts`, items by their **conversions** before it. Run the
//! experiment on the days after the history (default: [`WorldEnv::first_experiment_day`], the
//! start of the world's evaluation window) so that rankers trained on the history are tested on
//! days they have not seen.

use super::{EnvKind, Environment, mix64, stream_seed};
use crate::data::{Action, IdMap, InteractionLog};
use crate::world::World;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// The synthetic world with pre-period segment counts.
#[derive(Debug, Clone)]
pub struct WorldEnv {
    world: World,
    user_clicks: Vec<u64>,
    item_convs: Vec<u64>,
    history_end_ts: i64,
}

impl WorldEnv {
    /// Wraps `world`, counting segments from `log` rows before `world.history_end_ts()`. The log's
    /// ids are matched to the world's by name (`u00042`, `i0042`) when its id maps are filled — as
    /// when read back from `interactions.csv` — else taken as world indices; rows whose user or item
    /// is not in the world are ignored.
    pub fn new(world: World, log: &InteractionLog) -> WorldEnv {
        let end = world.history_end_ts();
        WorldEnv::with_history_end(world, log, end)
    }

    /// As [`WorldEnv::new`] with an explicit end of the history window (unix seconds).
    pub fn with_history_end(world: World, log: &InteractionLog, history_end_ts: i64) -> WorldEnv {
        let mut user_clicks = vec![0u64; world.n_users()];
        let mut item_convs = vec![0u64; world.n_items()];
        let users = translation(&log.users, world.n_users(), |u| world.user_id(u));
        let items = translation(&log.items, world.n_items(), |i| world.item_id(i));
        let map = |t: &Option<Vec<Option<u32>>>, id: u32| match t {
            None => Some(id),
            Some(v) => v.get(id as usize).copied().flatten(),
        };
        for r in log.rows.iter().filter(|r| r.ts < history_end_ts) {
            match r.action {
                Action::Click => {
                    if let Some(c) =
                        map(&users, r.user).and_then(|u| user_clicks.get_mut(u as usize))
                    {
                        *c += 1;
                    }
                }
                Action::Conversion => {
                    if let Some(c) =
                        map(&items, r.item).and_then(|i| item_convs.get_mut(i as usize))
                    {
                        *c += 1;
                    }
                }
                _ => {}
            }
        }
        WorldEnv {
            world,
            user_clicks,
            item_convs,
            history_end_ts,
        }
    }

    /// The wrapped world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The first day after the history window (the world's evaluation window starts here).
    pub fn first_experiment_day(&self) -> u32 {
        self.world.day_of(self.history_end_ts)
    }
}

/// Maps a log's dense ids to world indices by name; `None` when the ids already are world indices
/// (no names, or names equal to the world's own in order).
fn translation(names: &IdMap, n: usize, id_of: impl Fn(u32) -> String) -> Option<Vec<Option<u32>>> {
    if names.is_empty()
        || (names.len() <= n && (0..names.len() as u32).all(|d| names.name(d) == id_of(d)))
    {
        return None;
    }
    let by_name: HashMap<String, u32> = (0..n as u32).map(|i| (id_of(i), i)).collect();
    Some(
        names
            .names()
            .iter()
            .map(|s| by_name.get(s).copied())
            .collect(),
    )
}

impl Environment for WorldEnv {
    fn name(&self) -> String {
        let c = &self.world.config;
        format!(
            "synthetic world ({} users, {} items, seed {})",
            c.users, c.items, c.seed
        )
    }
    fn kind(&self) -> EnvKind {
        EnvKind::Synthetic
    }
    fn description(&self) -> String {
        "The synthetic e-commerce world: clicks and conversions are sampled from its oracle (the ground truth), so lifts \
         are what a launch in this world would do. Segments: users by clicks, items by conversions in the history window."
            .into()
    }
    fn num_users(&self) -> u32 {
        self.world.n_users() as u32
    }
    fn num_items(&self) -> u32 {
        self.world.n_items() as u32
    }
    fn user_key(&self, user: u32) -> String {
        self.world.user_id(user)
    }
    fn active_users(&self, day: u32, seed: u64) -> Vec<(u32, u32)> {
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(!seed ^ mix64(day as u64)));
        let users = self.world.active_users(day, &mut rng);
        users
            .into_iter()
            .map(|u| {
                let mut r = ChaCha8Rng::seed_from_u64(stream_seed(!seed, day, u));
                (u, self.world.session_pages(u, &mut r))
            })
            .collect()
    }
    fn available(&self, item: u32, day: u32) -> bool {
        self.world.is_available(item, day)
    }
    fn launch_day(&self, item: u32) -> Option<u32> {
        self.world
            .items
            .get(item as usize)
            .map(|it| it.available_day)
            .filter(|&d| d > 0)
    }
    fn price(&self, item: u32) -> f32 {
        self.world.price(item) as f32
    }
    fn popularity(&self, item: u32, _day: u32) -> f32 {
        self.world
            .items
            .get(item as usize)
            .map_or(0.0, |it| it.log_popularity.exp() as f32)
    }
    fn personal_candidates(
        &self,
        user: u32,
        day: u32,
        n: usize,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<u32>,
    ) {
        let mut c = self.world.candidates(user, day, rng);
        // The world returns its candidates sorted by id; keep a uniform subset of n.
        let k = n.min(c.len());
        for j in 0..k {
            let r = rng.random_range(j..c.len());
            c.swap(j, r);
        }
        out.extend_from_slice(&c[..k]);
    }
    fn p_click(&self, user: u32, item: u32, day: u32) -> f32 {
        self.world.p_click(user, item, day) as f32
    }
    fn p_convert(&self, user: u32, item: u32, day: u32) -> f32 {
        self.world.p_convert(user, item, day) as f32
    }
    fn user_activity(&self, user: u32) -> u64 {
        self.user_clicks.get(user as usize).copied().unwrap_or(0)
    }
    fn item_conversions(&self, item: u32) -> u64 {
        self.item_convs.get(item as usize).copied().unwrap_or(0)
    }
}
