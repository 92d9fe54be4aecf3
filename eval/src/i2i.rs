//! Quantitative I2I check of a content store: how often an item's top-k cosine neighbours share
//! at least one value of a catalog field (e.g. a MovieLens genre) with it, against the chance
//! baseline of random neighbours.
//!
//! The paper shows I2I retrieval only qualitatively (its figure of a query item and its
//! neighbours); this is the measurable version used in the README: with ID-free text (the bare
//! title) a share well above chance means the frozen LLM's content embedding carries the genre.
//!
//! The random baseline is exact, not sampled: a random neighbour of query `q` shares a value with
//! probability `p_q` = (items other than `q` that share) / (n − 1), so both the expected share of
//! k random neighbours and the expected top-1 hit rate are the mean of `p_q` over the queries.

use crate::data::Item;
use crate::store::EmbeddingStore;
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::index::sample;
use std::collections::{BTreeSet, HashMap};

/// The catalog fields every item has (besides its `extra` columns).
const FIELDS: [&str; 8] = [
    "id",
    "title",
    "category",
    "brand",
    "price",
    "keywords",
    "attributes",
    "available_from",
];

/// Options of [`field_share`].
#[derive(Debug, Clone)]
pub struct ShareOptions {
    /// Catalog field whose values are compared (`category`, `brand`, or an extra column).
    pub field: String,
    /// Characters that split a field into values. The default `|` and `,` covers
    /// `Action|Comedy` and the reader's MovieLens genres (`Action, Comedy`).
    pub separators: Vec<char>,
    /// Neighbours per query (the query itself excluded).
    pub k: usize,
    /// Evaluate only this many queries, sampled without replacement with `seed`; `None` = all.
    pub queries: Option<usize>,
    /// Seed of the query sample.
    pub seed: u64,
}

impl Default for ShareOptions {
    fn default() -> Self {
        ShareOptions {
            field: "category".into(),
            separators: vec!['|', ','],
            k: 10,
            queries: None,
            seed: 0,
        }
    }
}

/// Share figures for one kind of neighbour list.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ShareFigures {
    /// Mean over queries of the fraction of the top-k neighbours sharing a value with the query.
    pub share_at_k: f64,
    /// Fraction of queries whose top-1 neighbour shares a value.
    pub top1: f64,
}

/// Result of [`field_share`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareReport {
    /// Field compared.
    pub field: String,
    /// Neighbours per query.
    pub k: usize,
    /// Items in the store.
    pub items: usize,
    /// Queries evaluated (queries whose field is empty are left out: they cannot share).
    pub queries: usize,
    /// Sampled queries left out because their field is empty.
    pub queries_without_value: usize,
    /// Distinct values of the field over the store's items.
    pub distinct_values: usize,
    /// Cosine top-k neighbours.
    pub neighbours: ShareFigures,
    /// Random neighbours (exact expectation, the chance baseline).
    pub random: ShareFigures,
}

/// The values of `text` split on `separators`, trimmed, empty ones dropped.
pub fn split_values<'a>(text: &'a str, separators: &[char]) -> impl Iterator<Item = &'a str> {
    text.split(move |c| separators.contains(&c))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Rows of `store` scaled to unit norm (zero rows stay zero and so rank last).
fn unit_rows(store: &EmbeddingStore) -> Vec<f32> {
    let mut out = store.data.clone();
    for row in out.chunks_mut(store.dim.max(1)) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|x| *x /= n);
        }
    }
    out
}

/// The `k` rows with the highest cosine to row `q` (itself excluded), best first; ties by row.
/// `unit` holds the unit-norm rows of a store of width `dim`.
pub fn top_k_rows(unit: &[f32], dim: usize, q: usize, k: usize) -> Vec<usize> {
    let n = unit.len() / dim.max(1);
    let qv = &unit[q * dim..(q + 1) * dim];
    let mut scored: Vec<(f32, usize)> = (0..n)
        .filter(|&r| r != q)
        .map(|r| {
            let v = &unit[r * dim..(r + 1) * dim];
            (qv.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), r)
        })
        .collect();
    let cmp = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let k = k.min(scored.len());
    if k < scored.len() && k > 0 {
        scored.select_nth_unstable_by(k - 1, cmp);
    }
    scored.truncate(k);
    scored.sort_by(cmp);
    scored.into_iter().map(|(_, r)| r).collect()
}

fn share(a: &[u32], b: &[u32]) -> bool {
    // Both sorted: a merge walk.
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

/// For every item of `store` (or a seeded sample of `opts.queries`), the share of its top-k
/// cosine neighbours that have at least one value of `opts.field` in common with it, and the
/// same for random neighbours. Every store id must be in `catalog`; `catalog_name` names the
/// catalog in errors.
pub fn field_share(
    store: &EmbeddingStore,
    catalog: &[Item],
    catalog_name: &str,
    opts: &ShareOptions,
) -> Result<ShareReport> {
    if opts.k == 0 {
        return Err(Error::Invalid("-k must be at least 1".into()));
    }
    if store.len() < 2 {
        return Err(Error::Invalid(format!(
            "the store has {} item(s): neighbours need at least 2",
            store.len()
        )));
    }
    let known = FIELDS.contains(&opts.field.as_str())
        || catalog.iter().any(|i| i.extra.contains_key(&opts.field));
    if !known {
        let extra: BTreeSet<&str> = catalog
            .iter()
            .flat_map(|i| i.extra.keys().map(String::as_str))
            .collect();
        let all: Vec<&str> = FIELDS.iter().copied().chain(extra).collect();
        return Err(Error::Invalid(format!(
            "--share-field `{}`: no such field in {catalog_name} (fields: {})",
            opts.field,
            all.join(", ")
        )));
    }
    let by_id: HashMap<&str, &Item> = catalog.iter().map(|i| (i.id.as_str(), i)).collect();
    let missing: Vec<&str> = store
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| !by_id.contains_key(id))
        .collect();
    if let Some(first) = missing.first() {
        return Err(Error::Invalid(format!(
            "{} of {} store ids are not in the catalog {catalog_name} (e.g. `{first}`): \
             pass the catalog the store was embedded from",
            missing.len(),
            store.len()
        )));
    }
    // Each store row's values as sorted dense ids.
    let mut dict: HashMap<String, u32> = HashMap::new();
    let values: Vec<Vec<u32>> = store
        .ids
        .iter()
        .map(|id| {
            let text = by_id[id.as_str()].field(&opts.field).unwrap_or_default();
            let mut v: Vec<u32> = split_values(&text, &opts.separators)
                .map(|s| {
                    let next = dict.len() as u32;
                    *dict.entry(s.to_owned()).or_insert(next)
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();

    let n = store.len();
    let rows: Vec<usize> = match opts.queries {
        Some(m) if m < n => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
            let mut r = sample(&mut rng, n, m).into_vec();
            r.sort_unstable();
            r
        }
        _ => (0..n).collect(),
    };
    let without = rows.iter().filter(|&&r| values[r].is_empty()).count();
    let rows: Vec<usize> = rows
        .into_iter()
        .filter(|&r| !values[r].is_empty())
        .collect();
    if rows.is_empty() {
        return Err(Error::Invalid(format!(
            "--share-field `{}`: no queried item has a value in {catalog_name}",
            opts.field
        )));
    }

    let unit = unit_rows(store);
    let dim = store.dim;
    let k = opts.k.min(n - 1);
    use rayon::prelude::*;
    // Per query: (share of top-k, top-1 shares, chance of a random neighbour sharing).
    let per: Vec<(f64, f64, f64)> = rows
        .par_iter()
        .map(|&q| {
            let top = top_k_rows(&unit, dim, q, k);
            let hits = top
                .iter()
                .filter(|&&r| share(&values[q], &values[r]))
                .count();
            let top1 = top.first().is_some_and(|&r| share(&values[q], &values[r]));
            let sharing = (0..n)
                .filter(|&r| r != q && share(&values[q], &values[r]))
                .count();
            (
                hits as f64 / k as f64,
                f64::from(u8::from(top1)),
                sharing as f64 / (n - 1) as f64,
            )
        })
        .collect();
    let m = per.len() as f64;
    let mean = |f: fn(&(f64, f64, f64)) -> f64| per.iter().map(f).sum::<f64>() / m;
    let chance = mean(|p| p.2);
    Ok(ShareReport {
        field: opts.field.clone(),
        k,
        items: n,
        queries: per.len(),
        queries_without_value: without,
        distinct_values: dict.len(),
        neighbours: ShareFigures {
            share_at_k: mean(|p| p.0),
            top1: mean(|p| p.1),
        },
        random: ShareFigures {
            share_at_k: chance,
            top1: chance,
        },
    })
}

impl ShareReport {
    /// A small text table: neighbours vs random, share@k and top-1, and their ratio (lift).
    pub fn table(&self) -> String {
        let lift = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}x", a / b)
            } else {
                "-".into()
            }
        };
        let mut s = format!(
            "{} queries of {} items, field `{}` ({} distinct values{}), k = {}\n",
            self.queries,
            self.items,
            self.field,
            self.distinct_values,
            if self.queries_without_value > 0 {
                format!(
                    ", {} queries without a value left out",
                    self.queries_without_value
                )
            } else {
                String::new()
            },
            self.k
        );
        s.push_str(&format!(
            "{:<22} {:>10} {:>10}\n",
            "neighbours",
            format!("share@{}", self.k),
            "top-1"
        ));
        s.push_str(&format!(
            "{:<22} {:>10.4} {:>10.4}\n",
            "cosine top-k", self.neighbours.share_at_k, self.neighbours.top1
        ));
        s.push_str(&format!(
            "{:<22} {:>10.4} {:>10.4}\n",
            "random (expected)", self.random.share_at_k, self.random.top1
        ));
        s.push_str(&format!(
            "{:<22} {:>10} {:>10}\n",
            "lift over random",
            lift(self.neighbours.share_at_k, self.random.share_at_k),
            lift(self.neighbours.top1, self.random.top1)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKind;

    fn item(id: &str, category: &str) -> Item {
        Item {
            id: id.into(),
            category: category.into(),
            ..Default::default()
        }
    }

    /// Six items in two clusters along the axes: a0..a2 near x, b0..b2 near y.
    fn store() -> EmbeddingStore {
        let mut s = EmbeddingStore::new(StoreKind::Content, 2);
        for (id, v) in [
            ("a0", [1.0, 0.0]),
            ("a1", [0.9, 0.1]),
            ("a2", [0.8, 0.2]),
            ("b0", [0.0, 1.0]),
            ("b1", [0.1, 0.9]),
            ("b2", [0.2, 0.8]),
        ] {
            s.insert(id, "h", &v).unwrap();
        }
        s
    }

    #[test]
    fn share_of_clustered_store_against_exact_chance() {
        // Cluster a is Action (a2 also Comedy), cluster b is Drama, except b2 which is Comedy:
        // the genre of b2 disagrees with its cluster.
        let cat = vec![
            item("a0", "Action"),
            item("a1", "Action"),
            item("a2", "Action|Comedy"),
            item("b0", "Drama"),
            item("b1", "Drama"),
            item("b2", "Comedy"),
            item("unused", "Drama"),
        ];
        let opts = ShareOptions {
            k: 2,
            ..Default::default()
        };
        let r = field_share(&store(), &cat, "cat.csv", &opts).unwrap();
        assert_eq!((r.items, r.queries, r.k, r.distinct_values), (6, 6, 2, 3));
        // Top-2 by cosine: a0→{a1,a2} 2/2; a1→{a0,a2} 2/2; a2→{a1,a0} 2/2;
        // b0→{b1,b2} 1/2; b1→{b0,b2} 1/2; b2→{b1,b0} 0/2.
        let want_k = (1.0 + 1.0 + 1.0 + 0.5 + 0.5 + 0.0) / 6.0;
        assert!((r.neighbours.share_at_k - want_k).abs() < 1e-12, "{r:?}");
        // Top-1: a0→a1 yes, a1→a0 yes, a2→a1 yes, b0→b1 yes, b1→b0 yes, b2→b1 no.
        assert!((r.neighbours.top1 - 5.0 / 6.0).abs() < 1e-12, "{r:?}");
        // Chance: sharing others of each query out of 5:
        // a0 {a1,a2}=2, a1 2, a2 {a0,a1,b2}=3, b0 {b1}=1, b1 1, b2 {a2}=1.
        let chance = (2.0 + 2.0 + 3.0 + 1.0 + 1.0 + 1.0) / 5.0 / 6.0;
        assert!((r.random.share_at_k - chance).abs() < 1e-12, "{r:?}");
        assert_eq!(r.random.top1, r.random.share_at_k);
        let t = r.table();
        assert!(
            t.contains("cosine top-k") && t.contains("random (expected)") && t.contains("share@2"),
            "{t}"
        );

        // The reader's comma-joined genres split the same way.
        let comma: Vec<Item> = cat
            .iter()
            .map(|i| item(&i.id, &i.category.replace('|', ", ")))
            .collect();
        assert_eq!(field_share(&store(), &comma, "cat.csv", &opts).unwrap(), r);
    }

    #[test]
    fn sampled_queries_are_seeded_and_empty_fields_left_out() {
        let cat = vec![
            item("a0", "X"),
            item("a1", "X"),
            item("a2", ""),
            item("b0", "Y"),
            item("b1", "Y"),
            item("b2", "Y"),
        ];
        let all = field_share(&store(), &cat, "c", &ShareOptions::default()).unwrap();
        assert_eq!((all.queries, all.queries_without_value, all.k), (5, 1, 5));
        let opts = ShareOptions {
            queries: Some(3),
            seed: 7,
            ..Default::default()
        };
        let a = field_share(&store(), &cat, "c", &opts).unwrap();
        let b = field_share(&store(), &cat, "c", &opts).unwrap();
        assert_eq!(a, b, "same seed, same sample");
        assert_eq!(a.queries + a.queries_without_value, 3);
    }

    #[test]
    fn top_k_excludes_the_query_and_orders_by_cosine() {
        let s = store();
        let unit = unit_rows(&s);
        assert_eq!(top_k_rows(&unit, 2, 0, 3), vec![1, 2, 5]);
        assert_eq!(top_k_rows(&unit, 2, 3, 10), vec![4, 5, 2, 1, 0]);
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_fields() {
        let mut cat: Vec<Item> = ["a0", "a1", "a2", "b0", "b1", "b2"]
            .iter()
            .map(|i| item(i, "X"))
            .collect();
        cat[0].extra.insert("release_year".into(), "1995".into());
        let opts = ShareOptions {
            field: "genre".into(),
            ..Default::default()
        };
        let e = field_share(&store(), &cat, "ml.item", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--share-field `genre`: no such field in ml.item")
                && e.contains("category")
                && e.contains("release_year"),
            "{e}"
        );
        // An extra column is a field.
        let opts = ShareOptions {
            field: "release_year".into(),
            ..Default::default()
        };
        let r = field_share(&store(), &cat, "ml.item", &opts).unwrap();
        assert_eq!((r.queries, r.queries_without_value), (1, 5));
    }

    #[test]
    fn store_ids_absent_from_catalog_are_an_error() {
        let cat = vec![item("a0", "X"), item("a1", "X"), item("b0", "Y")];
        let e = field_share(&store(), &cat, "ml.item", &ShareOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 of 6 store ids are not in the catalog ml.item (e.g. `a2`)"),
            "{e}"
        );
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let cat: Vec<Item> = ["a0", "a1", "a2", "b0", "b1", "b2"]
            .iter()
            .map(|i| item(i, ""))
            .collect();
        let e = field_share(&store(), &cat, "c", &ShareOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no queried item has a value in c"), "{e}");
        let e = field_share(
            &store(),
            &cat,
            "c",
            &ShareOptions {
                k: 0,
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("-k must be at least 1"), "{e}");
        let mut one = EmbeddingStore::new(StoreKind::Content, 2);
        one.insert("a0", "h", &[1.0, 0.0]).unwrap();
        let e = field_share(&one, &cat, "c", &ShareOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2"), "{e}");
    }
}
