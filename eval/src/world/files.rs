//! Writing a world's files (catalog.csv, interactions.csv, users.csv, world.json), atomically.

use super::World;
use crate::data::{Action, InteractionLog, format_price};
use crate::{Error, Result};
use std::path::Path;

/// Column names of catalog.csv.
pub const CATALOG_HEADER: [&str; 10] = [
    "item_id",
    "title",
    "category",
    "brand",
    "price",
    "keywords",
    "attributes",
    "available_from",
    "top_category",
    "price_bucket",
];
/// Column names of interactions.csv.
pub const INTERACTIONS_HEADER: [&str; 6] = ["user_id", "item_id", "timestamp", "action", "value", "revenue"];
/// Column names of users.csv.
pub const USERS_HEADER: [&str; 5] = ["user_id", "signup_ts", "gender", "age_group", "city_tier"];

/// Gender labels of users.csv.
const GENDERS: [&str; 2] = ["female", "male"];

fn csv_io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl World {
    /// Writes `dir/{catalog.csv, interactions.csv, users.csv, world.json}`, each atomically,
    /// creating `dir` if needed. `log` must come from [`World::simulate`] on this world.
    pub fn write(&self, dir: &Path, log: &InteractionLog) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::file(dir, "--out exists and is not a directory"));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.write_catalog(&dir.join("catalog.csv"))?;
        self.write_users(&dir.join("users.csv"))?;
        self.write_interactions(&dir.join("interactions.csv"), log)?;
        self.save_json(&dir.join("world.json"))
    }

    /// Writes catalog.csv.
    pub fn write_catalog(&self, path: &Path) -> Result<()> {
        crate::atomic::write_with(path, |w| {
            let mut c = csv::Writer::from_writer(w);
            c.write_record(CATALOG_HEADER).map_err(csv_io)?;
            for i in 0..self.items.len() as u32 {
                let it = self.catalog_item(i);
                let avail = it.available_from.map(|t| t.to_string()).unwrap_or_default();
                let price = it.price.map(format_price).unwrap_or_default();
                let top = it.extra.get("top_category").map(String::as_str).unwrap_or("");
                let bucket = it.extra.get("price_bucket").map(String::as_str).unwrap_or("");
                c.write_record([
                    it.id.as_str(),
                    &it.title,
                    &it.category,
                    &it.brand,
                    &price,
                    &it.keywords,
                    &it.attributes,
                    &avail,
                    top,
                    bucket,
                ])
                .map_err(csv_io)?;
            }
            c.flush()
        })
    }

    /// Writes users.csv (observable user features only; tastes stay in world.json).
    pub fn write_users(&self, path: &Path) -> Result<()> {
        crate::atomic::write_with(path, |w| {
            let mut c = csv::Writer::from_writer(w);
            c.write_record(USERS_HEADER).map_err(csv_io)?;
            for (u, us) in self.users.iter().enumerate() {
                c.write_record([
                    self.user_id(u as u32),
                    self.day_start(us.signup_day).to_string(),
                    GENDERS[us.gender.min(1) as usize].to_owned(),
                    us.age_group.to_string(),
                    us.city_tier.to_string(),
                ])
                .map_err(csv_io)?;
            }
            c.flush()
        })
    }

    /// Writes interactions.csv: value is empty; revenue = price on conversion rows, else empty.
    pub fn write_interactions(&self, path: &Path, log: &InteractionLog) -> Result<()> {
        let user_ids: Vec<String> = (0..self.users.len() as u32).map(|u| self.user_id(u)).collect();
        let item_ids: Vec<String> = (0..self.items.len() as u32).map(|i| self.item_id(i)).collect();
        let prices: Vec<String> = self.items.iter().map(|it| format_price(it.price)).collect();
        if let Some(r) =
            log.rows.iter().find(|r| r.user as usize >= user_ids.len() || r.item as usize >= item_ids.len())
        {
            return Err(Error::Invalid(format!(
                "log row (user {}, item {}) is outside this world ({} users, {} items)",
                r.user,
                r.item,
                user_ids.len(),
                item_ids.len()
            )));
        }
        crate::atomic::write_with(path, |w| {
            let mut c = csv::Writer::from_writer(w);
            c.write_record(INTERACTIONS_HEADER).map_err(csv_io)?;
            for r in &log.rows {
                let revenue = if r.action == Action::Conversion { prices[r.item as usize].as_str() } else { "" };
                let ts = r.ts.to_string();
                c.write_record([
                    user_ids[r.user as usize].as_str(),
                    item_ids[r.item as usize].as_str(),
                    ts.as_str(),
                    r.action.name(),
                    "",
                    revenue,
                ])
                .map_err(csv_io)?;
            }
            c.flush()
        })
    }
}
