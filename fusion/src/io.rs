//! Building ranking examples from a dataset, writing predictions, saving and loading trained
//! rankers.
//!
//! Datasets are read with the shared `learnrec_eval::data::reader::read_dataset_dir` (a world
//! directory or a RecBole directory such as MovieLens-1M); [`from_log`] turns its `Catalog` and
//! `InteractionLog` into ranking examples.
//!
//! Labels:
//! - World ([`LabelSpace::Impressions`], the default): one example per (user, item) impression
//!   pair, at its first impression; label = the pair converted. This is post-view CVR over
//!   impressions — the space the ranker scores at serving time (and no click-only selection bias).
//!   [`LabelSpace::Clicks`] keeps only clicked pairs (post-click CVR, the classical CVR task).
//! - MovieLens-1M: rated = clicked, rating ≥ 4 = converted. MovieLens logs no impressions, so each
//!   rating is an impression, and `negatives` unrated items per rating, drawn uniformly from the
//!   catalog with the rating's timestamp, are added as non-converted impressions.
//!
//! Segments ([`Segments::before`]): the paper's user and item segments (Tables 6, 7), counted in
//! the training period (every log row before the test boundary): users by their interactions —
//! clicks, conversions and ratings (every row but impressions) — and items by conversions.

use crate::data::{IdVocab, ItemFeatures, RankingData, RankingExample};
use crate::model::{FusedRanker, FusedRankerConfig};
use crate::ranker::{Ranker, RankerConfig};
use crate::{Error, Result};
use burn::config::Config;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use learnrec_eval::data::{Action, Catalog, IdMap, InteractionLog, Item, LabelRule};
use learnrec_eval::segment::{Segment, Thresholds};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

/// Price bucket: `p<k>` with `k = ⌊log₂(1 + price)⌋` (0–1, 1–3, 3–7, … yuan).
pub fn price_bucket(price: f64) -> String {
    format!("p{}", (1.0 + price.max(0.0)).log2().floor() as i64)
}

/// Catalog `extra` columns used as categorical item features when present: the world's
/// `top_category` and `price_bucket` (its price tier), and `subcategory`.
pub const EXTRA_FEATURES: [&str; 3] = ["top_category", "price_bucket", "subcategory"];

/// Categorical item features from a catalog: `category`, `brand`, `price_log2` (the
/// [`price_bucket`] of `price`), each column of [`EXTRA_FEATURES`], and `decade` (of a
/// MovieLens `release_year`). A field is kept only when at least one item has a value, so
/// MovieLens (no brand, no price) gets `category` (its genres) and `decade`.
pub fn catalog_features(catalog: &Catalog) -> ItemFeatures {
    type Get = Box<dyn Fn(&Item) -> Option<String>>;
    let mut cands: Vec<(String, Get)> = vec![
        (
            "category".into(),
            Box::new(|it: &Item| Some(it.category.clone())),
        ),
        ("brand".into(), Box::new(|it: &Item| Some(it.brand.clone()))),
        (
            "price_log2".into(),
            Box::new(|it: &Item| it.price.map(price_bucket)),
        ),
    ];
    for name in EXTRA_FEATURES {
        cands.push((
            name.into(),
            Box::new(move |it: &Item| it.extra.get(name).cloned()),
        ));
    }
    cands.push((
        "decade".into(),
        Box::new(|it: &Item| {
            let y: i32 = it.extra.get("release_year")?.trim().parse().ok()?;
            Some(format!("{}s", y / 10 * 10))
        }),
    ));
    let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    cands.retain(|(_, get)| catalog.items.iter().any(|it| nonempty(&get(it))));
    let names: Vec<&str> = cands.iter().map(|(n, _)| n.as_str()).collect();
    let mut features = ItemFeatures::with_fields(&names);
    for it in &catalog.items {
        let vals: Vec<Option<String>> = cands.iter().map(|(_, get)| get(it)).collect();
        let refs: Vec<Option<&str>> = vals.iter().map(|v| v.as_deref().map(str::trim)).collect();
        features.push_item(&refs);
    }
    features
}

/// Builds ranking examples from the project's shared data types (what
/// `learnrec_eval::data::reader::read_dataset_dir` returns), with the labels of the module docs:
/// pairs with an impression (or, when the log has no impressions at all — MovieLens — every
/// clicked/rated pair plus `negatives` sampled unclicked items per click) become examples;
/// `rule` decides what counts as a click and a conversion. Item features: [`catalog_features`].
pub fn from_log(
    catalog: &Catalog,
    log: &InteractionLog,
    rule: &LabelRule,
    space: LabelSpace,
    negatives: usize,
    seed: u64,
) -> RankingData {
    let features = catalog_features(catalog);
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

/// The paper's user and item segments (Tables 6, 7) of every dense user and item id, counted in
/// a training period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments {
    /// Per dense user id.
    pub users: Vec<Segment>,
    /// Per dense item id.
    pub items: Vec<Segment>,
}

impl Segments {
    /// Segments from the log rows with `ts < boundary`: a user's count is its interactions —
    /// rows that `rule` calls a click (clicks, conversions, ratings; impressions are not
    /// interactions) — and an item's count its conversions (`rule.is_conversion`: purchases, or
    /// MovieLens ratings ≥ 4). `n_users`/`n_items` size the tables (ids with no rows are
    /// cold-start).
    pub fn before(
        log: &InteractionLog,
        rule: &LabelRule,
        boundary: i64,
        n_users: usize,
        n_items: usize,
        th: &Thresholds,
    ) -> Segments {
        let mut uc = vec![0u64; n_users.max(log.users.len())];
        let mut ic = vec![0u64; n_items.max(log.items.len())];
        for r in log.rows.iter().filter(|r| r.ts < boundary) {
            if rule.is_click(r) {
                uc[r.user as usize] += 1;
            }
            if rule.is_conversion(r) {
                ic[r.item as usize] += 1;
            }
        }
        Segments {
            users: uc.into_iter().map(|c| th.user(c)).collect(),
            items: ic.into_iter().map(|c| th.item(c)).collect(),
        }
    }
    /// Segment of a dense user id (cold-start when unknown).
    pub fn user(&self, u: u32) -> Segment {
        self.users
            .get(u as usize)
            .copied()
            .unwrap_or(Segment::ColdStart)
    }
    /// Segment of a dense item id (cold-start when unknown).
    pub fn item(&self, i: u32) -> Segment {
        self.items
            .get(i as usize)
            .copied()
            .unwrap_or(Segment::ColdStart)
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
    write_predictions_segmented(path, data, examples, names, scores, with_weight, None)
}

/// [`write_predictions`] with, when `segments` is given, the columns `user_segment` and
/// `item_segment` (`cold-start|long-tail|regular`) that `fusion-eval` reads.
pub fn write_predictions_segmented(
    path: &Path,
    data: &RankingData,
    examples: &[RankingExample],
    names: &[&str],
    scores: &[Vec<f32>],
    with_weight: bool,
    segments: Option<&Segments>,
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
        if segments.is_some() {
            write!(w, ",user_segment,item_segment")?;
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
            if let Some(sg) = segments {
                write!(w, ",{},{}", sg.user(e.user), sg.item(e.item))?;
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
    // The bytes `NamedMpkFileRecorder` would write, written atomically (temp file + rename) so a
    // kill or a full disk never leaves a truncated ranker at the final path.
    let rec = burn::record::NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let p = dir.join("baseline.mpk");
    let bytes = burn::record::Recorder::<B>::record(&rec, baseline.clone().into_record(), ())
        .map_err(|e| Error::file(&p, format!("cannot save: {e}")))?;
    learnrec_eval::atomic::write(&p, &bytes)?;
    if let Some(f) = fused {
        let p = dir.join("fused.mpk");
        let bytes = burn::record::Recorder::<B>::record(&rec, f.clone().into_record(), ())
            .map_err(|e| Error::file(&p, format!("cannot save: {e}")))?;
        learnrec_eval::atomic::write(&p, &bytes)?;
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
