//! Reading ranking data, writing predictions, saving and loading trained rankers.
//!
//! MINIMAL READERS — TO BE REPLACED by `learnrec_eval::data::reader::read_dataset_dir` (landed in
//! main after this branch was cut): [`read_world`] reads the world's preamble CSV formats and
//! [`read_movielens`] the RecBole atomic files, just enough to build ranking examples. The
//! replacement is one call: `from_log(&ds.catalog, &ds.log, &LabelRule::default(), space,
//! negatives, seed)` ([`from_log`] builds the same examples from the shared data types).
//!
//! Labels:
//! - World ([`LabelSpace::Impressions`], the default): one example per (user, item) impression
//!   pair, at its first impression; label = the pair converted. This is post-view CVR over
//!   impressions — the space the ranker scores at serving time (and no click-only selection bias).
//!   [`LabelSpace::Clicks`] keeps only clicked pairs (post-click CVR, the classical CVR task).
//! - MovieLens-1M: rated = clicked, rating ≥ 4 = converted. MovieLens logs no impressions, so each
//!   rating is an impression, and `negatives` unrated items per rating, drawn uniformly from the
//!   catalog with the rating's timestamp, are added as non-converted impressions.

use crate::data::{IdVocab, ItemFeatures, RankingData, RankingExample};
use crate::model::{FusedRanker, FusedRankerConfig};
use crate::ranker::{Ranker, RankerConfig};
use crate::{Error, Result};
use burn::config::Config;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use learnrec_eval::data::{Action, Catalog, IdMap, InteractionLog, LabelRule};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Per (user, item): first impression time, first click time, converted.
type PairState = (Option<i64>, Option<i64>, bool);

/// Which examples a world log yields (see the module docs).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LabelSpace {
    /// Every impressed (user, item) pair; label = converted.
    Impressions,
    /// Clicked pairs only; label = converted.
    Clicks,
}

fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new().flexible(false).from_reader(f))
}

fn column(headers: &csv::StringRecord, path: &Path, name: &str) -> Result<usize> {
    headers
        .iter()
        .position(|h| h.trim() == name)
        .ok_or_else(|| Error::file(path, format!("missing column `{name}`")))
}

/// Price bucket: `p<k>` with `k = ⌊log₂(1 + price)⌋` (0–1, 1–3, 3–7, … yuan).
pub fn price_bucket(price: f64) -> String {
    format!("p{}", (1.0 + price.max(0.0)).log2().floor() as i64)
}

/// Reads `DIR/catalog.csv` and `DIR/interactions.csv` (the world's preamble formats).
pub fn read_world(dir: &Path, space: LabelSpace) -> Result<RankingData> {
    let cat_path = dir.join("catalog.csv");
    let mut rd = csv_reader(&cat_path)?;
    let h = rd
        .headers()
        .map_err(|e| Error::file(&cat_path, format!("cannot read the header: {e}")))?
        .clone();
    let (ci, cc, cb, cp) = (
        column(&h, &cat_path, "item_id")?,
        column(&h, &cat_path, "category")?,
        column(&h, &cat_path, "brand")?,
        column(&h, &cat_path, "price")?,
    );
    let mut items = IdMap::new();
    let mut features = ItemFeatures::with_fields(&["category", "brand", "price_bucket"]);
    for (n, rec) in rd.records().enumerate() {
        let line = n as u64 + 2;
        let rec = rec.map_err(|e| Error::parse(&cat_path, line, "*", e.to_string()))?;
        let id = rec.get(ci).unwrap_or("").trim();
        if id.is_empty() {
            return Err(Error::parse(&cat_path, line, "item_id", "empty item id"));
        }
        if items.get(id).is_some() {
            return Err(Error::parse(
                &cat_path,
                line,
                "item_id",
                format!("duplicate item id `{id}`"),
            ));
        }
        items.intern(id);
        let price = rec.get(cp).unwrap_or("").trim();
        let bucket = if price.is_empty() {
            None
        } else {
            let p: f64 = price.parse().map_err(|_| {
                Error::parse(&cat_path, line, "price", format!("not a number: `{price}`"))
            })?;
            Some(price_bucket(p))
        };
        features.push_item(&[rec.get(cc), rec.get(cb), bucket.as_deref()]);
    }

    let int_path = dir.join("interactions.csv");
    let mut rd = csv_reader(&int_path)?;
    let h = rd
        .headers()
        .map_err(|e| Error::file(&int_path, format!("cannot read the header: {e}")))?
        .clone();
    let (iu, ii, it, ia) = (
        column(&h, &int_path, "user_id")?,
        column(&h, &int_path, "item_id")?,
        column(&h, &int_path, "timestamp")?,
        column(&h, &int_path, "action")?,
    );
    let mut users = IdMap::new();
    // (user, item) → (first impression ts, first click ts, converted)
    let mut pairs: HashMap<(u32, u32), PairState> = HashMap::new();
    for (n, rec) in rd.records().enumerate() {
        let line = n as u64 + 2;
        let rec = rec.map_err(|e| Error::parse(&int_path, line, "*", e.to_string()))?;
        let uid = rec.get(iu).unwrap_or("").trim();
        let iid = rec.get(ii).unwrap_or("").trim();
        let item = items.get(iid).ok_or_else(|| {
            Error::parse(
                &int_path,
                line,
                "item_id",
                format!("unknown item `{iid}` (not in catalog.csv)"),
            )
        })?;
        let ts_s = rec.get(it).unwrap_or("").trim();
        let ts: i64 = ts_s
            .parse::<i64>()
            .or_else(|_| ts_s.parse::<f64>().map(|v| v as i64))
            .map_err(|_| {
                Error::parse(
                    &int_path,
                    line,
                    "timestamp",
                    format!("not a number: `{ts_s}`"),
                )
            })?;
        let act = rec.get(ia).unwrap_or("").trim();
        let user = users.intern(uid);
        let e = pairs.entry((user, item)).or_insert((None, None, false));
        let min = |o: Option<i64>| Some(o.map_or(ts, |t| t.min(ts)));
        match act {
            "impression" => e.0 = min(e.0),
            "click" => e.1 = min(e.1),
            "conversion" => e.2 = true,
            other => {
                return Err(Error::parse(
                    &int_path,
                    line,
                    "action",
                    format!("`{other}` is not impression, click or conversion"),
                ));
            }
        }
    }
    let mut examples: Vec<RankingExample> = pairs
        .into_iter()
        .filter_map(|((user, item), (imp, click, conv))| {
            let ts = match space {
                LabelSpace::Impressions => imp.or(click)?,
                LabelSpace::Clicks => click.or(if conv { imp } else { None })?,
            };
            Some(RankingExample {
                user,
                item,
                ts,
                label: f32::from(u8::from(conv)),
                weight: 1.0,
            })
        })
        .collect();
    examples.sort_by_key(|e| (e.ts, e.user, e.item));
    Ok(RankingData {
        users,
        items,
        features,
        examples,
    })
}

fn atomic_header(path: &Path, line: &str, want: &[&str]) -> Result<Vec<usize>> {
    let cols: Vec<&str> = line
        .split('\t')
        .map(|c| c.split(':').next().unwrap_or("").trim())
        .collect();
    want.iter()
        .map(|w| {
            cols.iter()
                .position(|c| c == w)
                .ok_or_else(|| Error::file(path, format!("missing column `{w}` in the header")))
        })
        .collect()
}

/// Reads MovieLens-1M in RecBole atomic format (`DIR/ml-1m.inter`, `DIR/ml-1m.item`), adding
/// `negatives` sampled unrated items per rating (see the module docs). `max_users` keeps the
/// first users (by id order of the file) when non-zero, for faster runs.
pub fn read_movielens(
    dir: &Path,
    negatives: usize,
    max_users: usize,
    seed: u64,
) -> Result<RankingData> {
    let item_path = dir.join("ml-1m.item");
    let text = std::fs::read_to_string(&item_path).map_err(|e| Error::io(&item_path, e))?;
    let mut lines = text.lines();
    let head = lines
        .next()
        .ok_or_else(|| Error::file(&item_path, "empty file"))?;
    let c = atomic_header(&item_path, head, &["item_id", "release_year", "genre"])?;
    let mut items = IdMap::new();
    let mut features = ItemFeatures::with_fields(&["genre", "decade"]);
    for (n, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = l.split('\t').collect();
        let get = |k: usize| f.get(c[k]).map(|s| s.trim()).unwrap_or("");
        let id = get(0);
        if id.is_empty() {
            return Err(Error::parse(
                &item_path,
                n as u64 + 2,
                "item_id",
                "empty item id",
            ));
        }
        if items.get(id).is_some() {
            continue;
        }
        items.intern(id);
        let genre = get(2).split_whitespace().next();
        let decade = get(1)
            .parse::<i32>()
            .ok()
            .map(|y| format!("{}s", y / 10 * 10));
        features.push_item(&[genre, decade.as_deref()]);
    }

    let inter_path = dir.join("ml-1m.inter");
    let text = std::fs::read_to_string(&inter_path).map_err(|e| Error::io(&inter_path, e))?;
    let mut lines = text.lines();
    let head = lines
        .next()
        .ok_or_else(|| Error::file(&inter_path, "empty file"))?;
    let c = atomic_header(
        &inter_path,
        head,
        &["user_id", "item_id", "rating", "timestamp"],
    )?;
    let mut users = IdMap::new();
    let mut rated: Vec<(u32, u32, i64, f32)> = Vec::new();
    for (n, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = n as u64 + 2;
        let f: Vec<&str> = l.split('\t').collect();
        let get = |k: usize| f.get(c[k]).map(|s| s.trim()).unwrap_or("");
        let uid = get(0);
        if max_users > 0 && users.get(uid).is_none() && users.len() >= max_users {
            continue;
        }
        let item = items.get(get(1)).ok_or_else(|| {
            Error::parse(
                &inter_path,
                line,
                "item_id",
                format!("unknown item `{}`", get(1)),
            )
        })?;
        let rating: f32 = get(2).parse().map_err(|_| {
            Error::parse(
                &inter_path,
                line,
                "rating",
                format!("not a number: `{}`", get(2)),
            )
        })?;
        let ts: f64 = get(3).parse().map_err(|_| {
            Error::parse(
                &inter_path,
                line,
                "timestamp",
                format!("not a number: `{}`", get(3)),
            )
        })?;
        rated.push((users.intern(uid), item, ts as i64, rating));
    }
    let seen: HashSet<(u32, u32)> = rated.iter().map(|r| (r.0, r.1)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut examples = Vec::with_capacity(rated.len() * (1 + negatives));
    let n_items = items.len() as u32;
    for &(user, item, ts, rating) in &rated {
        examples.push(RankingExample {
            user,
            item,
            ts,
            label: f32::from(u8::from(rating >= 4.0)),
            weight: 1.0,
        });
        let mut added = 0;
        let mut tries = 0;
        while added < negatives && tries < 50 * negatives.max(1) && n_items > 0 {
            tries += 1;
            let neg = rng.random_range(0..n_items);
            if !seen.contains(&(user, neg)) {
                examples.push(RankingExample {
                    user,
                    item: neg,
                    ts,
                    label: 0.0,
                    weight: 1.0,
                });
                added += 1;
            }
        }
    }
    examples.sort_by_key(|e| (e.ts, e.user, e.item));
    Ok(RankingData {
        users,
        items,
        features,
        examples,
    })
}

/// Builds ranking examples from the project's shared data types (what
/// `learnrec_eval::data::reader::read_dataset_dir` returns), with the labels of the module docs:
/// pairs with an impression (or, when the log has no impressions at all — MovieLens — every
/// clicked/rated pair plus `negatives` sampled unclicked items per click) become examples;
/// `rule` decides what counts as a click and a conversion. Item features: category, brand and
/// price bucket from the catalog.
pub fn from_log(
    catalog: &Catalog,
    log: &InteractionLog,
    rule: &LabelRule,
    space: LabelSpace,
    negatives: usize,
    seed: u64,
) -> RankingData {
    let mut features = ItemFeatures::with_fields(&["category", "brand", "price_bucket"]);
    for it in &catalog.items {
        let bucket = it.price.map(price_bucket);
        features.push_item(&[
            Some(it.category.as_str()),
            Some(it.brand.as_str()),
            bucket.as_deref(),
        ]);
    }
    let has_impressions = log.rows.iter().any(|r| r.action == Action::Impression);
    // (user, item) → (first impression ts, first click ts, converted)
    let mut pairs: HashMap<(u32, u32), PairState> = HashMap::new();
    for r in &log.rows {
        let e = pairs.entry((r.user, r.item)).or_insert((None, None, false));
        let min = |o: Option<i64>| Some(o.map_or(r.ts, |t| t.min(r.ts)));
        if r.action == Action::Impression {
            e.0 = min(e.0);
        }
        if rule.is_click(r) {
            e.1 = min(e.1);
        }
        if rule.is_conversion(r) {
            e.2 = true;
        }
    }
    let mut examples: Vec<RankingExample> = pairs
        .iter()
        .filter_map(|(&(user, item), &(imp, click, conv))| {
            let ts = match (space, has_impressions) {
                (LabelSpace::Impressions, true) => imp.or(click)?,
                _ => click.or(if conv { imp } else { None })?,
            };
            Some(RankingExample {
                user,
                item,
                ts,
                label: f32::from(u8::from(conv)),
                weight: 1.0,
            })
        })
        .collect();
    examples.sort_by_key(|e| (e.ts, e.user, e.item));
    if !has_impressions && space == LabelSpace::Impressions && negatives > 0 && !catalog.is_empty()
    {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n_items = log.items.len().max(catalog.len()) as u32;
        let clicked: Vec<RankingExample> = examples.clone();
        for e in clicked {
            let mut added = 0;
            for _ in 0..50 * negatives {
                if added == negatives {
                    break;
                }
                let neg = rng.random_range(0..n_items);
                if !pairs.contains_key(&(e.user, neg)) {
                    examples.push(RankingExample {
                        item: neg,
                        label: 0.0,
                        ..e
                    });
                    added += 1;
                }
            }
        }
    }
    examples.sort_by_key(|e| (e.ts, e.user, e.item));
    let items = if log.items.len() >= catalog.ids.len() {
        log.items.clone()
    } else {
        catalog.ids.clone()
    };
    RankingData {
        users: log.users.clone(),
        items,
        features,
        examples,
    }
}

/// Writes the predictions file of `fusion-eval`: `user_id,item_id,label,score_<model>…[,weight]`
/// (the weight column only when `with_weight`). `scores[k]` holds model `names[k]`'s scores.
pub fn write_predictions(
    path: &Path,
    data: &RankingData,
    examples: &[RankingExample],
    names: &[&str],
    scores: &[Vec<f32>],
    with_weight: bool,
) -> Result<()> {
    if names.len() != scores.len() || scores.iter().any(|s| s.len() != examples.len()) {
        return Err(Error::Invalid(
            "predictions: one score per example and model is required".into(),
        ));
    }
    learnrec_eval::atomic::write_with(path, |w| {
        write!(w, "user_id,item_id,label")?;
        for n in names {
            write!(w, ",score_{n}")?;
        }
        if with_weight {
            write!(w, ",weight")?;
        }
        writeln!(w)?;
        for (k, e) in examples.iter().enumerate() {
            write!(
                w,
                "{},{},{}",
                csv_field(data.users.name(e.user)),
                csv_field(data.items.name(e.item)),
                e.label
            )?;
            for s in scores {
                write!(w, ",{}", s[k])?;
            }
            if with_weight {
                write!(w, ",{}", e.weight)?;
            }
            writeln!(w)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// What `rankers.json` holds beside the Burn records: configs and vocabularies, so a later
/// process (`bench-serve`, `ab-sim`) rebuilds the exact models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankersMeta {
    pub baseline: RankerConfig,
    pub fused: Option<FusedRankerConfig>,
    /// The rankers' ID vocabularies (training users and items).
    pub users: IdVocab,
    pub items: IdVocab,
    /// The dataset's users and items (dense ids that `features` is indexed by).
    pub dataset_users: IdMap,
    pub dataset_items: IdMap,
    pub features: ItemFeatures,
}

impl RankersMeta {
    /// The dataset's users, items and item features, without examples (to batch requests).
    pub fn dataset(&self) -> RankingData {
        RankingData {
            users: self.dataset_users.clone(),
            items: self.dataset_items.clone(),
            features: self.features.clone(),
            examples: Vec::new(),
        }
    }
}

/// Trained rankers loaded back from a directory.
#[derive(Debug)]
pub struct SavedRankers<B: Backend> {
    pub meta: RankersMeta,
    pub baseline: Ranker<B>,
    pub fused: Option<FusedRanker<B>>,
}

const META: &str = "rankers.json";

/// Saves the rankers in `dir`: `baseline.mpk`, `fused.mpk` (Burn `NamedMpkFileRecorder`, full
/// precision) and `rankers.json`. Save modules that have run at least once (trained or used to
/// predict): Burn initialises parameters lazily, and saving a never-used module's clone would
/// draw fresh initial weights for the file.
pub fn save_rankers<B: Backend>(
    dir: &Path,
    meta: &RankersMeta,
    baseline: &Ranker<B>,
    fused: Option<&FusedRanker<B>>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let p = dir.join("baseline");
    baseline
        .clone()
        .save_file(&p, &rec)
        .map_err(|e| Error::file(&p, format!("cannot save: {e}")))?;
    if let Some(f) = fused {
        let p = dir.join("fused");
        f.clone()
            .save_file(&p, &rec)
            .map_err(|e| Error::file(&p, format!("cannot save: {e}")))?;
    }
    let json = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::Invalid(format!("rankers.json: {e}")))?;
    learnrec_eval::atomic::write(&dir.join(META), &json)?;
    Ok(())
}

/// Loads rankers saved by [`save_rankers`].
pub fn load_rankers<B: Backend>(dir: &Path, device: &B::Device) -> Result<SavedRankers<B>> {
    let mp: PathBuf = dir.join(META);
    let bytes = std::fs::read(&mp).map_err(|e| Error::io(&mp, e))?;
    let mut meta: RankersMeta = serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(&mp, format!("not a rankers.json: {e}")))?;
    meta.users.rebuild_index();
    meta.items.rebuild_index();
    meta.dataset_users.rebuild_index();
    meta.dataset_items.rebuild_index();
    for v in &mut meta.features.vocabs {
        v.rebuild_index();
    }
    let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let p = dir.join("baseline.mpk");
    let baseline = meta
        .baseline
        .init::<B>(device)
        .load_file(dir.join("baseline"), &rec, device)
        .map_err(|e| Error::file(&p, format!("cannot load the baseline ranker: {e}")))?;
    let fused = match &meta.fused {
        Some(cfg) => {
            let p = dir.join("fused.mpk");
            Some(
                cfg.init::<B>(device)
                    .load_file(dir.join("fused"), &rec, device)
                    .map_err(|e| Error::file(&p, format!("cannot load the fused ranker: {e}")))?,
            )
        }
        None => None,
    };
    Ok(SavedRankers {
        meta,
        baseline,
        fused,
    })
}
