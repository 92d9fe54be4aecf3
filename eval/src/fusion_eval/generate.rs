//! A generator of large synthetic prediction files (and a matching HISTORY) for tests and
//! benchmarks: heavy-tailed rows per user (log-normal), Zipf-like item popularity, two models
//! (`score_base` rounded to 3 decimals, so it has many ties, and a better `score_learn`).

use super::is_parquet;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Total rows (approximately: per-user counts are rounded, then trimmed to exactly this).
    pub rows: u64,
    /// Users.
    pub users: u64,
    /// Items.
    pub items: u64,
    pub seed: u64,
    /// Output, `.csv`/`.tsv` or `.parquet`.
    pub out: PathBuf,
    /// Optional HISTORY output (`user_id,item_id,timestamp,action,value,revenue`; `.parquet`
    /// for Parquet, else CSV).
    pub history: Option<PathBuf>,
    /// Parquet row-group size.
    pub row_group: usize,
}

struct Cols {
    user: Vec<i64>,
    item: Vec<i64>,
    label: Vec<i32>,
    base: Vec<f32>,
    learn: Vec<f32>,
}

const USERS_PER_BLOCK: u64 = 4096;

fn item_of(rng: &mut ChaCha8Rng, items: u64) -> i64 {
    // Zipf-like: floor(items^u) - 1 is heavy-headed.
    let u: f64 = rng.random();
    ((items as f64).powf(u) as u64).saturating_sub(1).min(items - 1) as i64
}

fn block(spec: &GenSpec, counts: &[u64], b: u64) -> Cols {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (b.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let u0 = b * USERS_PER_BLOCK;
    let u1 = (u0 + USERS_PER_BLOCK).min(spec.users);
    let n: u64 = counts[u0 as usize..u1 as usize].iter().sum();
    let mut c = Cols {
        user: Vec::with_capacity(n as usize),
        item: Vec::with_capacity(n as usize),
        label: Vec::with_capacity(n as usize),
        base: Vec::with_capacity(n as usize),
        learn: Vec::with_capacity(n as usize),
    };
    let noise = Normal::new(0.0f64, 1.0).unwrap_or_else(|_| unreachable!());
    for u in u0..u1 {
        let bias: f64 = noise.sample(&mut rng) * 0.8 - 1.5;
        for _ in 0..counts[u as usize] {
            let item = item_of(&mut rng, spec.items);
            let truth = bias + noise.sample(&mut rng);
            let p = 1.0 / (1.0 + (-truth).exp());
            let lab = rng.random::<f64>() < p;
            let base = 1.0 / (1.0 + (-(truth + 1.2 * noise.sample(&mut rng))).exp());
            let learn = 1.0 / (1.0 + (-(truth + 0.9 * noise.sample(&mut rng))).exp());
            c.user.push(u as i64);
            c.item.push(item);
            c.label.push(lab as i32);
            c.base.push(((base * 1000.0).round() / 1000.0) as f32);
            c.learn.push(learn as f32);
        }
    }
    // Shuffle within the block so users are interleaved.
    let n = c.user.len();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        c.user.swap(i, j);
        c.item.swap(i, j);
        c.label.swap(i, j);
        c.base.swap(i, j);
        c.learn.swap(i, j);
    }
    c
}

/// Rows per user: log-normal (σ = 1.2), scaled and adjusted to sum to exactly `rows`.
fn user_counts(spec: &GenSpec) -> Result<Vec<u64>> {
    if spec.users == 0 || spec.rows < spec.users || spec.items == 0 {
        return Err(Error::Invalid("gen: need users ≥ 1, items ≥ 1 and rows ≥ users".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let ln = LogNormal::new(0.0, 1.2).map_err(|e| Error::Invalid(format!("gen: {e}")))?;
    let raw: Vec<f64> = (0..spec.users).map(|_| ln.sample(&mut rng)).collect();
    let sum: f64 = raw.iter().sum();
    let extra = (spec.rows - spec.users) as f64;
    let mut counts: Vec<u64> = raw.iter().map(|x| 1 + (x / sum * extra) as u64).collect();
    let mut total: u64 = counts.iter().sum();
    let mut i = 0usize;
    let nu = counts.len();
    while total < spec.rows {
        counts[i % nu] += 1;
        total += 1;
        i += 7919;
    }
    Ok(counts)
}

/// Writes the predictions file (and HISTORY if asked). Returns the rows written.
pub fn generate(spec: &GenSpec) -> Result<u64> {
    let counts = Arc::new(user_counts(spec)?);
    let nblocks = spec.users.div_ceil(USERS_PER_BLOCK);
    let path = spec.out.as_path();
    let io = |e: std::io::Error| Error::io(path, e);
    let mut written = 0u64;
    if is_parquet(path) {
        write_parquet(spec, &counts, nblocks, &mut written)?;
    } else {
        let delim = if path.extension().is_some_and(|e| e == "tsv") { '\t' } else { ',' };
        crate::atomic::write_with(path, |w| {
            writeln!(w, "user_id{d}item_id{d}label{d}score_base{d}score_learn", d = delim)?;
            let step = 64u64;
            let mut b0 = 0;
            while b0 < nblocks {
                let texts: Vec<(String, u64)> = (b0..(b0 + step).min(nblocks))
                    .into_par_iter()
                    .map(|b| {
                        let c = block(spec, &counts, b);
                        let mut s = String::with_capacity(c.user.len() * 40);
                        for i in 0..c.user.len() {
                            use std::fmt::Write as _;
                            let _ = writeln!(
                                s,
                                "{}{d}{}{d}{}{d}{}{d}{}",
                                c.user[i],
                                c.item[i],
                                c.label[i],
                                c.base[i],
                                c.learn[i],
                                d = delim
                            );
                        }
                        (s, c.user.len() as u64)
                    })
                    .collect();
                for (t, n) in texts {
                    w.write_all(t.as_bytes())?;
                    written += n;
                }
                b0 += step;
            }
            Ok(())
        })?;
    }
    if let Some(h) = &spec.history {
        write_history(spec, h)?;
    }
    let _ = io;
    Ok(written)
}

fn write_parquet(spec: &GenSpec, counts: &[u64], nblocks: u64, written: &mut u64) -> Result<()> {
    use parquet::basic::Compression;
    use parquet::data_type::{FloatType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let path = spec.out.as_path();
    let pq = |e: parquet::errors::ParquetError| Error::file(path, format!("parquet: {e}"));
    let schema = Arc::new(
        parse_message_type(
            "message preds { required int64 user_id; required int64 item_id; required int32 label; \
             required float score_base; required float score_learn; }",
        )
        .map_err(pq)?,
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(pq)?;
    let step = 64u64;
    let mut b0 = 0;
    let mut buf = Cols { user: vec![], item: vec![], label: vec![], base: vec![], learn: vec![] };
    let flush = |w: &mut SerializedFileWriter<std::fs::File>, c: &mut Cols| -> Result<()> {
        if c.user.is_empty() {
            return Ok(());
        }
        let mut rg = w.next_row_group().map_err(pq)?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column().map_err(pq)? {
            match i {
                0 => col.typed::<Int64Type>().write_batch(&c.user, None, None),
                1 => col.typed::<Int64Type>().write_batch(&c.item, None, None),
                2 => col.typed::<Int32Type>().write_batch(&c.label, None, None),
                3 => col.typed::<FloatType>().write_batch(&c.base, None, None),
                _ => col.typed::<FloatType>().write_batch(&c.learn, None, None),
            }
            .map_err(pq)?;
            col.close().map_err(pq)?;
            i += 1;
        }
        rg.close().map_err(pq)?;
        *c = Cols { user: vec![], item: vec![], label: vec![], base: vec![], learn: vec![] };
        Ok(())
    };
    while b0 < nblocks {
        let parts: Vec<Cols> = (b0..(b0 + step).min(nblocks)).into_par_iter().map(|b| block(spec, counts, b)).collect();
        for c in parts {
            *written += c.user.len() as u64;
            buf.user.extend(c.user);
            buf.item.extend(c.item);
            buf.label.extend(c.label);
            buf.base.extend(c.base);
            buf.learn.extend(c.learn);
            if buf.user.len() >= spec.row_group {
                flush(&mut w, &mut buf)?;
            }
        }
        b0 += step;
    }
    flush(&mut w, &mut buf)?;
    w.close().map_err(pq)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A generated HISTORY row: user, item, timestamp, conversion (else a click).
type HistRow = (u64, i64, u64, bool);

/// HISTORY: 10% of users absent, others a log-normal number of clicks (20% conversions) on
/// Zipf-like items; CSV (`user_id,item_id,timestamp,action,value,revenue`) or Parquet (the same
/// columns: int64 ids and timestamp, string action, nullable double value and revenue), the same
/// rows either way.
fn write_history(spec: &GenSpec, path: &Path) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x4849_5354);
    let ln = LogNormal::new(2.0, 1.3).map_err(|e| Error::Invalid(format!("gen: {e}")))?;
    // Rows in order: (user, item, timestamp, conversion).
    let rows = std::iter::from_fn({
        // A few users that exist only in HISTORY.
        let (mut u, mut t, mut n) = (0u64, 0u64, 0u64);
        let end = spec.users + spec.users / 20;
        move || {
            while t >= n {
                if u >= end {
                    return None;
                }
                u += 1;
                t = 0;
                n = if rng.random::<f64>() < 0.1 { 0 } else { (ln.sample(&mut rng) as u64).min(2000) };
            }
            let item = item_of(&mut rng, spec.items);
            let conv = rng.random::<f64>() < 0.2;
            t += 1;
            Some((u - 1, item, t - 1, conv))
        }
    });
    if is_parquet(path) {
        return write_history_parquet(spec, path, rows);
    }
    crate::atomic::write_with(path, |w| {
        writeln!(w, "user_id,item_id,timestamp,action,value,revenue")?;
        for (u, item, t, conv) in rows {
            if conv {
                writeln!(w, "{u},{item},{t},conversion,,9.9")?;
            } else {
                writeln!(w, "{u},{item},{t},click,,")?;
            }
        }
        Ok(())
    })
}

fn write_history_parquet(spec: &GenSpec, path: &Path, rows: impl Iterator<Item = HistRow>) -> Result<()> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let pq = |e: parquet::errors::ParquetError| Error::file(path, format!("parquet: {e}"));
    let schema = Arc::new(
        parse_message_type(
            "message history { required int64 user_id; required int64 item_id; required int64 timestamp; \
             required binary action (UTF8); optional double value; optional double revenue; }",
        )
        .map_err(pq)?,
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = SerializedFileWriter::new(file, schema, props).map_err(pq)?;
    let (click, conversion) = (ByteArray::from("click"), ByteArray::from("conversion"));
    let flush = |w: &mut SerializedFileWriter<std::fs::File>, b: &mut Vec<HistRow>| -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let ints = |f: &dyn Fn(&HistRow) -> i64| b.iter().map(f).collect::<Vec<i64>>();
        let acts: Vec<ByteArray> = b.iter().map(|r| if r.3 { conversion.clone() } else { click.clone() }).collect();
        let rev_defs: Vec<i16> = b.iter().map(|r| r.3 as i16).collect();
        let revenue = vec![9.9f64; b.iter().filter(|r| r.3).count()];
        let mut rg = w.next_row_group().map_err(pq)?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column().map_err(pq)? {
            match i {
                0 => col.typed::<Int64Type>().write_batch(&ints(&|r| r.0 as i64), None, None),
                1 => col.typed::<Int64Type>().write_batch(&ints(&|r| r.1), None, None),
                2 => col.typed::<Int64Type>().write_batch(&ints(&|r| r.2 as i64), None, None),
                3 => col.typed::<ByteArrayType>().write_batch(&acts, None, None),
                4 => col.typed::<DoubleType>().write_batch(&[], Some(&vec![0; b.len()]), None),
                _ => col.typed::<DoubleType>().write_batch(&revenue, Some(&rev_defs), None),
            }
            .map_err(pq)?;
            col.close().map_err(pq)?;
            i += 1;
        }
        rg.close().map_err(pq)?;
        b.clear();
        Ok(())
    };
    let mut buf = Vec::with_capacity(spec.row_group.min(1 << 20));
    for r in rows {
        buf.push(r);
        if buf.len() >= spec.row_group {
            flush(&mut w, &mut buf)?;
        }
    }
    flush(&mut w, &mut buf)?;
    w.close().map_err(pq)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
