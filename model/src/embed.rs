//! The CEG embed pipeline: catalog items → text ([`crate::text`]) → token ids
//! ([`crate::tokenizer`]) → frozen model ([`ContentEncoder`]) → content embedding store
//! ([`learnrec_eval::store::EmbeddingStore`]).
//!
//! Stages run concurrently over bounded crossbeam channels: a reader renders and hashes texts,
//! worker threads tokenize, a batcher sorts a window of sequences by length and cuts
//! length-bucketed batches under a padded-token budget (little padding), the calling thread runs
//! the model (so the encoder need not be `Sync`), and rows go into the store, which is
//! checkpointed atomically every `checkpoint_secs` and at the end.
//!
//! Resume: rows already in the output store whose content hash (model identity + rendered
//! text, [`crate::text::content_hash`]) matches are skipped; changed or new items are
//! (re)embedded. Shards (`--shard I/N`) take the items whose id hashes to `I`:
//! `fmix64(FNV-1a-64(id)) mod N` (the same hash as `fusion-eval --shard`), so a shard is stable
//! however the catalog is ordered or grows; [`merge_stores`] joins shard stores.

use crate::text::{TextTemplate, content_hash};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use crossbeam_channel::bounded;
use learnrec_eval::data::Item;
use learnrec_eval::store::{EmbeddingStore, StoreKind};
use std::path::Path;
use std::time::{Duration, Instant};

/// A frozen content model: token ids in, one pooled embedding per sequence out. Implemented by
/// the backbones (LLM / BERT + pooling); the pipeline pads nothing — sequences arrive unpadded
/// and the encoder pads and masks as its architecture requires.
pub trait ContentEncoder {
    /// Width of the returned embeddings.
    fn hidden_dim(&self) -> usize;
    /// Pooled embeddings of a batch of sequences, in order.
    fn encode(&self, batch_ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>>;
}

/// A frozen backbone with its pooling as a [`ContentEncoder`] (the paper's CEG: last hidden
/// state, attention-masked mean by default). Normalisation is left to [`EmbedOptions::normalize`].
pub struct BackboneEncoder<B: burn::tensor::backend::Backend> {
    pub backbone: crate::backbone::Backbone<B>,
    pub pooling: crate::pooling::Pooling,
}

impl<B: burn::tensor::backend::Backend> ContentEncoder for BackboneEncoder<B> {
    fn hidden_dim(&self) -> usize {
        self.backbone.hidden_size()
    }
    fn encode(&self, batch_ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.backbone.encode_pooled(batch_ids, self.pooling, false)
    }
}

/// Options of [`embed_items`].
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// The model's identity for hashes and metadata: its path or name plus everything that
    /// changes the output (pooling, max length, …).
    pub model_id: String,
    /// How items become text.
    pub template: TextTemplate,
    /// L2-normalise each embedding.
    pub normalize: bool,
    /// Padded-token budget per batch (sequences × longest sequence).
    pub batch_tokens: usize,
    /// Only the items at positions `p % n == i` (`Some((i, n))`).
    pub shard: Option<(usize, usize)>,
    /// Tokenizer threads.
    pub workers: usize,
    /// Seconds between atomic checkpoints of the store.
    pub checkpoint_secs: u64,
    /// Show a progress bar (items/s, tokens/s, ETA) on stderr.
    pub progress: bool,
    /// Extra metadata written into the store (e.g. `pooling`).
    pub meta: Vec<(String, String)>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            model_id: String::new(),
            template: TextTemplate::default(),
            normalize: false,
            batch_tokens: 8192,
            shard: None,
            workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, 8),
            checkpoint_secs: 60,
            progress: false,
            meta: Vec::new(),
        }
    }
}

/// What [`embed_items`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedReport {
    /// Items in this shard.
    pub items: usize,
    /// Items skipped because the store already had them with the same content hash.
    pub resumed: usize,
    /// Items embedded now.
    pub embedded: usize,
    /// Tokens fed to the model (unpadded).
    pub tokens: usize,
    /// Padded tokens the batches cost (sequences × longest in batch).
    pub padded_tokens: usize,
    /// Batches run.
    pub batches: usize,
    pub seconds: f64,
}

/// Parses `I/N` (0 ≤ I < N).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Invalid(format!(
            "--shard `{s}`: expected I/N with 0 <= I < N, e.g. 0/4"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The rows of `s` in catalog order, then those of items not in `items` in stored order: the
/// file must not depend on the order in which batches came back.
fn catalog_order(s: &EmbeddingStore, items: &[Item]) -> Result<EmbeddingStore> {
    let mut out = EmbeddingStore::new(s.kind, s.dim);
    out.meta = s.meta.clone();
    let known: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let rest = s.ids.iter().map(String::as_str).filter(|id| !known.contains(id));
    for id in items.iter().map(|i| i.id.as_str()).chain(rest) {
        if let Some(r) = s.position(id) {
            out.insert(id, &s.hashes[r], s.row(r))?;
        }
    }
    Ok(out)
}

/// Cuts length-sorted sequences into batches whose padded size (count × longest) stays within
/// `budget` tokens (a sequence longer than the budget goes alone). Input order is by length.
fn cut_batches(mut seqs: Vec<(usize, Vec<u32>)>, budget: usize) -> Vec<Vec<(usize, Vec<u32>)>> {
    // Ties by position, not by which tokenizer thread finished first: the same input gives the
    // same batches (and so bit-identical embeddings) on every run.
    seqs.sort_by_key(|s| (s.1.len(), s.0));
    let mut out = Vec::new();
    let mut cur: Vec<(usize, Vec<u32>)> = Vec::new();
    for s in seqs {
        let longest = s.1.len().max(1);
        if !cur.is_empty() && (cur.len() + 1) * longest > budget {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Embeds `items` into the store at `out` (created, or resumed when it exists), returning what
/// was done. The store is saved atomically every `checkpoint_secs` and at the end.
pub fn embed_items(
    items: &[Item],
    tokenizer: &Tokenizer,
    encoder: &dyn ContentEncoder,
    opts: &EmbedOptions,
    out: &Path,
) -> Result<EmbedReport> {
    let start = Instant::now();
    if opts.batch_tokens == 0 {
        return Err(Error::Invalid("--batch-tokens must be positive".into()));
    }
    let dim = encoder.hidden_dim();
    let mut store = if out.exists() {
        let s = EmbeddingStore::load(out)?;
        if s.kind != StoreKind::Content || s.dim != dim {
            return Err(Error::Invalid(format!(
                "{}: existing store is {} with dim {}, the model gives content embeddings of dim {dim}; \
                 choose another --out or delete it",
                out.display(),
                s.kind.name(),
                s.dim
            )));
        }
        s
    } else {
        EmbeddingStore::new(StoreKind::Content, dim)
    };
    store.meta.insert("model".into(), opts.model_id.clone());
    store
        .meta
        .insert("template".into(), opts.template.describe());
    store
        .meta
        .insert("normalize".into(), opts.normalize.to_string());
    store
        .meta
        .insert("max_len".into(), tokenizer.max_len().to_string());
    if let Some((i, n)) = opts.shard {
        store.meta.insert("shard".into(), format!("{i}/{n}"));
    }
    for (k, v) in &opts.meta {
        store.meta.insert(k.clone(), v.clone());
    }

    // Items of this shard, rendered and hashed; those already stored with the same hash skip.
    let mine: Vec<(usize, &Item)> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| opts.shard.is_none_or(|(i, n)| shard_of_id(&item.id, n) == i))
        .collect();
    let mut pending: Vec<(usize, String, String)> = Vec::new(); // (item index, text, hash)
    let mut resumed = 0;
    for &(p, item) in &mine {
        let text = opts.template.render(item);
        let hash = content_hash(&opts.model_id, &text);
        if store.hash_of(&item.id) == Some(hash.as_str()) {
            resumed += 1;
        } else {
            pending.push((p, text, hash));
        }
    }
    let mut report = EmbedReport {
        items: mine.len(),
        resumed,
        embedded: 0,
        tokens: 0,
        padded_tokens: 0,
        batches: 0,
        seconds: 0.0,
    };
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(pending.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} items ({per_sec}, ETA {eta}) {msg}",
            )
            .map_err(|e| Error::Invalid(format!("progress template: {e}")))?
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Sequences per batcher window: enough for good length bucketing, bounded memory.
    let window = 64 * (opts.batch_tokens / 64).max(16);
    let pending_ref = &pending;
    let result: Result<()> = std::thread::scope(|scope| {
        let (text_tx, text_rx) = bounded::<usize>(1024);
        let (tok_tx, tok_rx) = bounded::<Result<(usize, Vec<u32>)>>(1024);
        let (batch_tx, batch_rx) = bounded::<Result<Vec<(usize, Vec<u32>)>>>(8);
        // Reader: hands out pending rows.
        scope.spawn(move || {
            for k in 0..pending_ref.len() {
                if text_tx.send(k).is_err() {
                    return;
                }
            }
        });
        // Tokenizer workers.
        for _ in 0..opts.workers.max(1) {
            let (rx, tx) = (text_rx.clone(), tok_tx.clone());
            scope.spawn(move || {
                for k in rx.iter() {
                    let r = tokenizer
                        .encode(&pending_ref[k].1, true)
                        .map(|ids| (k, ids));
                    let stop = r.is_err();
                    if tx.send(r).is_err() || stop {
                        return;
                    }
                }
            });
        }
        drop(text_rx);
        drop(tok_tx);
        // Batcher: length-sorted windows cut under the token budget.
        let budget = opts.batch_tokens;
        scope.spawn(move || {
            let mut buf = Vec::with_capacity(window);
            let flush = |buf: &mut Vec<(usize, Vec<u32>)>| -> bool {
                cut_batches(std::mem::take(buf), budget)
                    .into_iter()
                    .all(|b| batch_tx.send(Ok(b)).is_ok())
            };
            for r in tok_rx.iter() {
                match r {
                    Ok(s) => {
                        buf.push(s);
                        if buf.len() >= window && !flush(&mut buf) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = batch_tx.send(Err(e));
                        return;
                    }
                }
            }
            flush(&mut buf);
        });
        // Model + writer on this thread.
        let mut last_ckpt = Instant::now();
        for b in batch_rx.iter() {
            let batch = b?;
            let ids: Vec<Vec<u32>> = batch.iter().map(|s| s.1.clone()).collect();
            let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
            let embs = encoder.encode(&ids)?;
            if embs.len() != ids.len() {
                return Err(Error::Invalid(format!(
                    "encoder returned {} embeddings for a batch of {}",
                    embs.len(),
                    ids.len()
                )));
            }
            for ((k, seq), mut e) in batch.into_iter().zip(embs) {
                if opts.normalize {
                    l2_normalize(&mut e);
                }
                let (p, _, hash) = &pending_ref[k];
                if e.iter().any(|v| !v.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "embedding of item `{}` is not finite",
                        items[*p].id
                    )));
                }
                store.insert(&items[*p].id, hash, &e)?;
                report.tokens += seq.len();
            }
            report.padded_tokens += longest * ids.len();
            report.embedded += ids.len();
            report.batches += 1;
            bar.inc(ids.len() as u64);
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{:.0} tokens/s", report.tokens as f64 / secs));
            if last_ckpt.elapsed() >= Duration::from_secs(opts.checkpoint_secs) {
                store.save(out)?;
                last_ckpt = Instant::now();
            }
        }
        Ok(())
    });
    // On error, keep what was embedded so far: a rerun resumes from it.
    let saved = catalog_order(&store, items).and_then(|s| Ok(s.save(out)?));
    bar.finish_and_clear();
    result?;
    saved?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The shard (of `n`) of an item id: `id_key(id) mod n` ([`learnrec_eval::fusion_eval::id_key`]).
pub fn shard_of_id(id: &str, n: usize) -> usize {
    (learnrec_eval::fusion_eval::id_key(id.as_bytes()) % n as u64) as usize
}

/// Merges shard stores (written by `embed --shard I/N`) into one. All must be content stores of
/// the same dim and `model`; an id present in two shards must have the same content hash.
pub fn merge_stores(paths: &[&Path]) -> Result<EmbeddingStore> {
    let mut iter = paths.iter();
    let first = iter
        .next()
        .ok_or_else(|| Error::Invalid("merge-stores: no input stores".into()))?;
    let mut out = EmbeddingStore::load(first)?;
    out.meta.remove("shard");
    for p in iter {
        let s = EmbeddingStore::load(p)?;
        if s.kind != out.kind || s.dim != out.dim {
            return Err(Error::Invalid(format!(
                "{}: {} store of dim {} cannot merge with {} ({} store of dim {})",
                p.display(),
                s.kind.name(),
                s.dim,
                first.display(),
                out.kind.name(),
                out.dim
            )));
        }
        if s.meta.get("model") != out.meta.get("model") {
            return Err(Error::Invalid(format!(
                "{}: model `{}` differs from `{}` in {}",
                p.display(),
                s.meta.get("model").map_or("", String::as_str),
                out.meta.get("model").map_or("", String::as_str),
                first.display()
            )));
        }
        for (r, id) in s.ids.iter().enumerate() {
            if let Some(h) = out.hash_of(id)
                && h != s.hashes[r]
            {
                return Err(Error::Invalid(format!(
                    "{}: item `{id}` is also in an earlier store with a different content hash",
                    p.display()
                )));
            }
            out.insert(id, &s.hashes[r], s.row(r))?;
        }
    }
    Ok(out)
}

/// The `k` rows most cosine-similar to `id` (itself excluded), best first.
pub fn nearest(store: &EmbeddingStore, id: &str, k: usize) -> Result<Vec<(String, f32)>> {
    let q = store
        .get(id)
        .ok_or_else(|| Error::Invalid(format!("item `{id}` is not in the store")))?;
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let qn = norm(q);
    if qn == 0.0 {
        return Err(Error::Invalid(format!(
            "item `{id}` has a zero embedding: cosine is undefined"
        )));
    }
    let mut scored: Vec<(usize, f32)> = (0..store.len())
        .filter(|&r| store.ids[r] != id)
        .map(|r| {
            let v = store.row(r);
            let n = norm(v);
            let dot: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
            (
                r,
                if n > 0.0 {
                    dot / (qn * n)
                } else {
                    f32::NEG_INFINITY
                },
            )
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    Ok(scored
        .into_iter()
        .map(|(r, s)| (store.ids[r].clone(), s))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_token_budget_and_sort_by_length() {
        let seqs: Vec<(usize, Vec<u32>)> = [5, 1, 9, 3, 3, 20, 2]
            .iter()
            .enumerate()
            .map(|(i, &n)| (i, vec![0; n]))
            .collect();
        let b = cut_batches(seqs, 12);
        let lens: Vec<Vec<usize>> = b
            .iter()
            .map(|x| x.iter().map(|s| s.1.len()).collect())
            .collect();
        assert_eq!(lens, vec![vec![1, 2, 3, 3], vec![5], vec![9], vec![20]]);
        for batch in &b {
            let longest = batch.iter().map(|s| s.1.len()).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * longest <= 12);
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
        for bad in ["4/4", "1", "a/2", "0/0"] {
            let e = parse_shard(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("--shard `{bad}`")), "{e}");
        }
    }

    /// A fake model: embedding = [length, sum of ids, first id, 1].
    struct Fake;
    impl ContentEncoder for Fake {
        fn hidden_dim(&self) -> usize {
            4
        }
        fn encode(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
            Ok(batch
                .iter()
                .map(|s| {
                    vec![
                        s.len() as f32,
                        s.iter().map(|&x| x as f32).sum(),
                        s[0] as f32,
                        1.0,
                    ]
                })
                .collect())
        }
    }

    /// A character-level SentencePiece tokenizer over a-z and space, from a tiny GGUF.
    fn tokenizer(dir: &Path) -> Tokenizer {
        use crate::gguf::{GgufFile, Value, writer::to_bytes};
        let mut toks = vec!["<unk>".to_owned(), "<s>".to_owned(), "\u{2581}".to_owned()];
        toks.extend(('a'..='z').map(String::from));
        let n = toks.len();
        let meta = vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            (
                "tokenizer.ggml.tokens",
                Value::Array(toks.into_iter().map(Value::String).collect()),
            ),
            (
                "tokenizer.ggml.scores",
                Value::Array(vec![Value::F32(0.0); n]),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(vec![Value::I32(1); n]),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
            ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
        ];
        let p = dir.join("tok.gguf");
        std::fs::write(&p, to_bytes(&meta, &[])).unwrap();
        Tokenizer::from_gguf(&GgufFile::open(&p).unwrap()).unwrap()
    }

    fn items(titles: &[&str]) -> Vec<Item> {
        titles
            .iter()
            .enumerate()
            .map(|(i, t)| Item {
                id: format!("i{i}"),
                title: (*t).into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn pipeline_embeds_resumes_shards_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let tk = tokenizer(dir.path());
        let cat = items(&["ab", "abc", "z", "hello world", "b"]);
        let opts = EmbedOptions {
            model_id: "fake".into(),
            batch_tokens: 64,
            workers: 2,
            ..Default::default()
        };
        let out = dir.path().join("all.safetensors");
        let r = embed_items(&cat, &tk, &Fake, &opts, &out).unwrap();
        assert_eq!((r.items, r.resumed, r.embedded), (5, 0, 5));
        let s = EmbeddingStore::load(&out).unwrap();
        // Rows in catalog order, whichever tokenizer thread finished first.
        assert_eq!(s.ids, ["i0", "i1", "i2", "i3", "i4"]);
        // "Title: ab" = BOS + 9 chars → 10 tokens; the first token is BOS (1).
        let row = s.get("i0").unwrap();
        assert_eq!((row[0], row[2]), (10.0, 1.0));
        assert_eq!(s.meta.get("model").map(String::as_str), Some("fake"));
        assert_eq!(
            r.tokens,
            cat.iter()
                .map(|i| tk
                    .encode(&TextTemplate::default().render(i), true)
                    .unwrap()
                    .len())
                .sum::<usize>()
        );

        // Resume: nothing changes → everything skipped; one title changes → one row redone.
        let r = embed_items(&cat, &tk, &Fake, &opts, &out).unwrap();
        assert_eq!((r.resumed, r.embedded), (5, 0));
        let mut cat2 = cat.clone();
        cat2[2].title = "zz".into();
        let r = embed_items(&cat2, &tk, &Fake, &opts, &out).unwrap();
        assert_eq!((r.resumed, r.embedded), (4, 1));
        assert_eq!(
            EmbeddingStore::load(&out).unwrap().get("i2").unwrap()[0],
            10.0,
            "\"Title: zz\" + BOS"
        );
        // Another model id invalidates every hash.
        let other = EmbedOptions {
            model_id: "fake2".into(),
            ..opts.clone()
        };
        assert_eq!(
            embed_items(&cat2, &tk, &Fake, &other, &out)
                .unwrap()
                .embedded,
            5
        );

        // Shards cover the catalog exactly once and merge back to the full store.
        let (s0, s1) = (
            dir.path().join("s0.safetensors"),
            dir.path().join("s1.safetensors"),
        );
        let r0 = embed_items(
            &cat,
            &tk,
            &Fake,
            &EmbedOptions {
                shard: Some((0, 2)),
                ..opts.clone()
            },
            &s0,
        )
        .unwrap();
        let r1 = embed_items(
            &cat,
            &tk,
            &Fake,
            &EmbedOptions {
                shard: Some((1, 2)),
                ..opts.clone()
            },
            &s1,
        )
        .unwrap();
        let in0 = cat.iter().filter(|i| shard_of_id(&i.id, 2) == 0).count();
        assert_eq!((r0.items, r1.items), (in0, 5 - in0), "each item lands in the shard of its id hash");
        let merged = merge_stores(&[&s0, &s1]).unwrap();
        assert_eq!(merged.len(), 5);
        for id in &merged.ids {
            assert_eq!(merged.get(id), embed_items_row(&cat, &tk, id).as_deref());
        }

        // Normalised rows have unit norm; neighbours rank by cosine.
        let n = dir.path().join("norm.safetensors");
        embed_items(
            &cat,
            &tk,
            &Fake,
            &EmbedOptions {
                normalize: true,
                ..opts.clone()
            },
            &n,
        )
        .unwrap();
        let s = EmbeddingStore::load(&n).unwrap();
        let norm: f32 = s
            .get("i3")
            .unwrap()
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let hits = nearest(&s, "i0", 2).unwrap();
        assert_eq!(hits.len(), 2);
        assert!(hits[0].1 >= hits[1].1 && hits.iter().all(|h| h.0 != "i0"));
        let e = nearest(&s, "nope", 2).unwrap_err().to_string();
        assert!(e.contains("`nope` is not in the store"), "{e}");
    }

    fn embed_items_row(cat: &[Item], tk: &Tokenizer, id: &str) -> Option<Vec<f32>> {
        let item = cat.iter().find(|i| i.id == id)?;
        let ids = tk
            .encode(&TextTemplate::default().render(item), true)
            .ok()?;
        Fake.encode(&[ids]).ok()?.pop()
    }

    #[test]
    fn merge_rejects_mismatched_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.st"), dir.path().join("b.st"));
        let mut s = EmbeddingStore::new(StoreKind::Content, 2);
        s.meta.insert("model".into(), "m1".into());
        s.insert("x", "h1", &[1.0, 0.0]).unwrap();
        s.save(&a).unwrap();
        s.meta.insert("model".into(), "m2".into());
        s.save(&b).unwrap();
        let e = merge_stores(&[&a, &b]).unwrap_err().to_string();
        assert!(e.contains("model `m2` differs from `m1`"), "{e}");
        s.meta.insert("model".into(), "m1".into());
        s.insert("x", "h2", &[0.0, 1.0]).unwrap();
        s.save(&b).unwrap();
        let e = merge_stores(&[&a, &b]).unwrap_err().to_string();
        assert!(
            e.contains("item `x`") && e.contains("different content hash"),
            "{e}"
        );
        let mut s3 = EmbeddingStore::new(StoreKind::Content, 3);
        s3.meta.insert("model".into(), "m1".into());
        s3.save(&b).unwrap();
        let e = merge_stores(&[&a, &b]).unwrap_err().to_string();
        assert!(e.contains("dim 3 cannot merge"), "{e}");
    }

    #[test]
    fn existing_store_of_another_dim_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tk = tokenizer(dir.path());
        let out = dir.path().join("o.st");
        EmbeddingStore::new(StoreKind::Content, 7)
            .save(&out)
            .unwrap();
        let opts = EmbedOptions {
            model_id: "fake".into(),
            ..Default::default()
        };
        let e = embed_items(&items(&["a"]), &tk, &Fake, &opts, &out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dim 7") && e.contains("dim 4"), "{e}");
    }

    /// Fails on the second batch; the rows of the first batch are kept for resume.
    struct FailSecond(std::sync::atomic::AtomicUsize);
    impl ContentEncoder for FailSecond {
        fn hidden_dim(&self) -> usize {
            4
        }
        fn encode(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
            if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                return Err(Error::Invalid("model exploded".into()));
            }
            Fake.encode(batch)
        }
    }

    #[test]
    fn encoder_errors_stop_the_pipeline_and_keep_finished_rows() {
        let dir = tempfile::tempdir().unwrap();
        let tk = tokenizer(dir.path());
        let cat = items(&["a", "bb", "ccc", "dddd"]);
        // Budget 11 tokens: every sequence (≥ 9 tokens) is its own batch.
        let opts = EmbedOptions {
            model_id: "fake".into(),
            batch_tokens: 11,
            ..Default::default()
        };
        let out = dir.path().join("o.st");
        let e = embed_items(&cat, &tk, &FailSecond(0.into()), &opts, &out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model exploded"), "{e}");
        assert_eq!(EmbeddingStore::load(&out).unwrap().len(), 1);
        let r = embed_items(&cat, &tk, &Fake, &opts, &out).unwrap();
        assert_eq!((r.resumed, r.embedded, r.batches), (1, 3, 3));
    }
}
