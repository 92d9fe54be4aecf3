//! Readers: PRED (CSV/TSV with header, or Parquet) into a [`Table`], and a fast HISTORY counter.
//!
//! CSV is memory-mapped and parsed in parallel chunks split at newlines (quoted fields are
//! supported, but a quoted field may not contain a newline). Parquet row groups are decoded in
//! parallel with the `parquet` crate's column readers (no Arrow).

use super::scan::split_fast;
use super::table::{
    self, Carver, CountTable, HugeBuf, Layout, NONE, Sink, SlabList, Table, flags, id_key, id_key_at, int_key, seg_code,
};
use crate::data::Action;
use crate::segment::{Segment, Thresholds};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Which rows to read and how to segment them.
pub(crate) struct ReadSpec<'a> {
    /// Score columns requested (empty: every column whose name starts with `score`).
    pub scores: &'a [String],
    /// Keep only users of shard `i` of `n`.
    pub shard: Option<(u32, u32)>,
    /// Item conversion counts from HISTORY (used when there is no `item_segment` column).
    pub item_history: Option<&'a PartCounts>,
    pub thresholds: Thresholds,
}

/// Resolved column positions of PRED.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub user: usize,
    pub label: usize,
    pub scores: Vec<usize>,
    pub score_names: Vec<String>,
    pub item: Option<usize>,
    pub weight: Option<usize>,
    pub useg: Option<usize>,
    pub iseg: Option<usize>,
}

pub(crate) fn resolve(path: &Path, header: &[String], scores: &[String]) -> Result<Columns> {
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(Error::file(path, format!("duplicate column `{h}` in the header")));
        }
    }
    let find = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| Error::file(path, format!("missing column `{name}` (columns: {})", header.join(", "))))
    };
    let user = need("user_id")?;
    let label = need("label")?;
    let mut score_names: Vec<String> = Vec::new();
    if scores.is_empty() {
        score_names = header.iter().filter(|h| h.starts_with("score")).cloned().collect();
        if score_names.is_empty() {
            return Err(Error::file(
                path,
                format!(
                    "no score column: none starts with `score` and no --score given (columns: {})",
                    header.join(", ")
                ),
            ));
        }
    } else {
        for s in scores {
            if score_names.contains(s) {
                return Err(Error::Invalid(format!("score `{s}` is named twice")));
            }
            score_names.push(s.clone());
        }
    }
    let mut sc = Vec::new();
    for s in &score_names {
        sc.push(need(s)?);
    }
    if score_names.len() > 255 {
        return Err(Error::Invalid("more than 255 score columns".into()));
    }
    Ok(Columns {
        user,
        label,
        scores: sc,
        score_names,
        item: find("item_id"),
        weight: find("weight"),
        useg: find("user_segment"),
        iseg: find("item_segment"),
    })
}

/// The HISTORY items noted in the sinks' bitmaps ([`Sink::seen_history_item`]), each with its
/// segment bit (as [`Sink::item_row`] notes it).
fn history_items_seen(sinks: &[Sink], spec: &ReadSpec) -> Vec<(u64, u8)> {
    let Some(h) = spec.item_history else {
        return Vec::new();
    };
    let mut or = vec![0u64; h.index_len().div_ceil(64)];
    for s in sinks {
        for (a, b) in or.iter_mut().zip(&s.seen) {
            *a |= b;
        }
    }
    let mut out = Vec::new();
    for (w, &bits) in or.iter().enumerate() {
        let mut b = bits;
        while b != 0 {
            let i = w * 64 + b.trailing_zeros() as usize;
            b &= b - 1;
            if let Some((k, c)) = h.at(i) {
                out.push((k, 1u8 << seg_code(spec.thresholds.item(c))));
            }
        }
    }
    out
}

/// Per-row logic shared by the CSV and Parquet readers.
struct RowCtx<'a> {
    spec: &'a ReadSpec<'a>,
    cols: &'a Columns,
}

impl RowCtx<'_> {
    #[inline]
    fn keep(&self, ukey: u64) -> bool {
        self.spec.shard.is_none_or(|(i, n)| table::shard_of(ukey, n) == i)
    }
    /// Prefetches the item's slot (in HISTORY's item table when segments come from it, else in
    /// this thread's item table) for a row noted a few rows later.
    #[inline]
    fn prefetch_item(&self, sink: &Sink, k: u64) {
        match (self.spec.item_history, self.cols.iseg) {
            (Some(h), None) => h.prefetch(k),
            _ => sink.prefetch_item(k),
        }
    }
    /// Item segment code and absence from HISTORY; notes the item in the sink.
    #[inline]
    fn item(&self, sink: &mut Sink, ikey: Option<u64>, iseg_col: u8) -> (u8, bool) {
        let col = self.cols.iseg.is_some().then_some(iseg_col);
        let Some(k) = ikey else {
            return (col.unwrap_or(NONE), false);
        };
        // Segments from HISTORY: an item of HISTORY is noted in the sink's bitmap by its index
        // in HISTORY's table (no per-thread table); only absent items go to the sink's table.
        if col.is_none()
            && let Some(h) = self.spec.item_history
            && let Some((i, c)) = h.find(k)
        {
            sink.seen_history_item(i, h.index_len());
            return (seg_code(self.spec.thresholds.item(c)), false);
        }
        sink.item_row(k, col, || match self.spec.item_history {
            Some(h) => match h.get(k) {
                Some(c) => (seg_code(self.spec.thresholds.item(c)), false),
                None => (seg_code(Segment::ColdStart), true),
            },
            None => (NONE, false),
        })
    }
}

fn seg_field(path: &Path, line: u64, field: &str, v: &[u8]) -> Result<u8> {
    let s = std::str::from_utf8(v).map_err(|_| Error::parse(path, line, field, "not UTF-8"))?;
    Segment::parse(s).map(seg_code).ok_or_else(|| {
        Error::parse(path, line, field, format!("unknown segment `{s}` (cold-start, long-tail, regular)"))
    })
}

fn label_field(path: &Path, line: u64, v: &[u8]) -> Result<bool> {
    match v {
        b"1" => Ok(true),
        b"0" => Ok(false),
        _ => Err(Error::parse(
            path,
            line,
            "label",
            format!("label must be 0 or 1, got `{}`", String::from_utf8_lossy(v)),
        )),
    }
}

fn score_field(path: &Path, line: u64, name: &str, v: &[u8]) -> Result<f32> {
    let s = std::str::from_utf8(v).map_err(|_| Error::parse(path, line, name, "not UTF-8"))?;
    let x: f32 = s.trim().parse().map_err(|_| Error::parse(path, line, name, format!("not a number: `{s}`")))?;
    if !x.is_finite() {
        return Err(Error::parse(path, line, name, format!("score is NaN or Inf: `{s}`")));
    }
    Ok(x)
}

fn weight_value(path: &Path, line: u64, x: f64) -> Result<f32> {
    if !x.is_finite() || x < 0.0 {
        return Err(Error::parse(path, line, "weight", format!("weight must be finite and ≥ 0, got {x}")));
    }
    Ok(x as f32)
}

/// Splits one line into fields (ranges into `line`, or into `scratch` when it has quotes).
fn split_line<'l>(
    line: &'l [u8],
    delim: u8,
    scratch: &'l mut Vec<u8>,
    out: &mut Vec<(usize, usize)>,
) -> std::result::Result<&'l [u8], &'static str> {
    out.clear();
    if !line.contains(&b'"') {
        let mut s = 0;
        for (i, &c) in line.iter().enumerate() {
            if c == delim {
                out.push((s, i));
                s = i + 1;
            }
        }
        out.push((s, line.len()));
        return Ok(line);
    }
    scratch.clear();
    let mut i = 0;
    loop {
        let start = scratch.len();
        if i < line.len() && line[i] == b'"' {
            i += 1;
            loop {
                if i >= line.len() {
                    return Err("unterminated quoted field (newlines inside quotes are not supported)");
                }
                if line[i] == b'"' {
                    if i + 1 < line.len() && line[i + 1] == b'"' {
                        scratch.push(b'"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                scratch.push(line[i]);
                i += 1;
            }
            if i < line.len() && line[i] != delim {
                return Err("text after a closing quote");
            }
        } else {
            while i < line.len() && line[i] != delim {
                scratch.push(line[i]);
                i += 1;
            }
        }
        out.push((start, scratch.len()));
        if i >= line.len() {
            break;
        }
        i += 1; // delimiter
        if i == line.len() {
            out.push((scratch.len(), scratch.len()));
            break;
        }
    }
    Ok(scratch)
}

/// `v` as `f32`, exactly as `str::parse::<f32>` gives it (correctly rounded), for plain
/// decimals `[-]digits[.digits]`; `None` for anything else (the caller then uses `str::parse`).
///
/// Digits forming an integer `m` ≤ 2^24 with at most 10 after the point: `m` and the power of
/// ten are exact `f32`s, so one division rounds the exact quotient once (Clinger's fast path).
/// Else, `m` ≤ 2^53 with at most 22 after the point: the `f64` quotient is correctly rounded
/// (the same fast path in `f64`) and within half an `f64` ulp of the exact value, so rounding it
/// to `f32` gives the correctly rounded `f32` unless it sits on an `f32` rounding midpoint (its
/// low 29 mantissa bits = 2^28, checked with a margin) or in the subnormal range: then `None`.
#[inline]
fn fast_f32(v: &[u8]) -> Option<f32> {
    const POW10: [f32; 11] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
    const POW10_64: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let (neg, d) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    let (mut m, mut frac, mut dot, mut digits) = (0u64, 0usize, false, 0usize);
    for &c in d {
        if c == b'.' {
            if dot {
                return None;
            }
            dot = true;
            continue;
        }
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        m = m * 10 + x as u64;
        if m > 1 << 53 {
            return None;
        }
        frac += dot as usize;
        digits += 1;
    }
    if digits == 0 || frac > 22 {
        return None;
    }
    let x = if m <= 1 << 24 && frac <= 10 {
        m as f32 / POW10[frac]
    } else {
        let y = m as f64 / POW10_64[frac];
        if m != 0 && y < f64::from(f32::MIN_POSITIVE) * 2.0 {
            return None;
        }
        let low = y.to_bits() & ((1 << 29) - 1);
        if low.abs_diff(1 << 28) <= 2 {
            return None;
        }
        y as f32
    };
    Some(if neg { -x } else { x })
}

fn map_file(path: &Path) -> Result<Option<memmap2::Mmap>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the file is opened read-only; as with any mmap, truncating it concurrently is
    // undefined — documented for the CLI (do not rewrite PRED while it is being read).
    let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
    Ok(Some(m))
}

/// Drops the parsed pages of `[a, b)` from this process's resident set, so peak memory does not
/// include the whole mapped file (they are re-read from the page cache if touched again).
fn release_pages(map: &memmap2::Mmap, a: usize, b: usize) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = a.div_ceil(PAGE) * PAGE;
        let end = b / PAGE * PAGE;
        if end > start {
            // SAFETY: the mapping is read-only and file-backed; MADV_DONTNEED only drops the
            // process's page-table entries, and any later access re-faults the same bytes
            // from the file. No reference into these pages is used after this call except
            // through the map itself, which stays valid. Errors are harmless (advice only).
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
        }
    }
    #[cfg(not(unix))]
    let _ = (map, a, b);
}

/// Header of a delimited file: fields, delimiter and the byte offset where data starts.
fn header(path: &Path, data: &[u8]) -> Result<(Vec<String>, u8, usize)> {
    let end = data.iter().position(|&c| c == b'\n').unwrap_or(data.len());
    let mut line = &data[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    if data.starts_with(b"PAR1") {
        return Err(Error::parse(path, 1, "header", "this is a Parquet file: name it `.parquet` or `.pq`"));
    }
    if std::str::from_utf8(line).is_err() || line.iter().any(|&c| c < 0x20 && c != b'\t') {
        return Err(Error::parse(path, 1, "header", "binary data, not a CSV/TSV header"));
    }
    let ext_tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let delim = if ext_tsv || line.contains(&b'\t') { b'\t' } else { b',' };
    let mut scratch = Vec::new();
    let mut ranges = Vec::new();
    let buf = split_line(line, delim, &mut scratch, &mut ranges).map_err(|m| Error::parse(path, 1, "header", m))?;
    let h: Vec<String> = ranges.iter().map(|&(a, b)| String::from_utf8_lossy(&buf[a..b]).trim().to_owned()).collect();
    Ok((h, delim, (end + 1).min(data.len())))
}

/// Chunks of `data[start..]` of about `size` bytes, ending at newlines.
fn chunks(data: &[u8], start: usize, size: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut a = start;
    while a < data.len() {
        let mut b = (a + size).min(data.len());
        if b < data.len() {
            b = match data[b..].iter().position(|&c| c == b'\n') {
                Some(p) => b + p + 1,
                None => data.len(),
            };
        }
        out.push((a, b));
        a = b;
    }
    out
}

/// 1-based line number of byte offset `off`.
fn line_of(data: &[u8], off: usize) -> u64 {
    1 + data[..off].iter().filter(|&&c| c == b'\n').count() as u64
}

/// An error found in a chunk, before its line number is known.
enum ChunkErr {
    At { off: usize, field: String, message: String },
    Other(Error),
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Runs `work(chunk_index, sink)` over `n` chunks on all threads; stops at the first error.
fn run_parallel<F>(n: usize, layout: Layout, work: F) -> Result<Vec<Sink>, (usize, ChunkErr)>
where
    F: Fn(usize, &mut Sink) -> std::result::Result<(), ChunkErr> + Sync,
{
    run_chunks(n, || Sink::new(layout), work)
}

/// Runs `work(chunk_index, state)` over `n` chunks on all threads, one `init()` state per
/// thread; stops claiming chunks at the first error and returns the error of the lowest failing
/// chunk (chunks are claimed in order and every claimed chunk runs to its end, so this is the
/// first error in the file).
fn run_chunks<S, I, F>(n: usize, init: I, work: F) -> Result<Vec<S>, (usize, ChunkErr)>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(usize, &mut S) -> std::result::Result<(), ChunkErr> + Sync,
{
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Vec<std::result::Result<S, (usize, ChunkErr)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads().min(n.max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut st = init();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= n {
                            break;
                        }
                        if let Err(e) = work(c, &mut st) {
                            stop.store(true, Ordering::Relaxed);
                            return Err((c, e));
                        }
                    }
                    Ok(st)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                // Re-raised here so that `read_pred` turns it into an error naming the file.
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    let mut states = Vec::new();
    let mut first: Option<(usize, ChunkErr)> = None;
    for r in results {
        match r {
            Ok(s) => states.push(s),
            Err((c, e)) => {
                if first.as_ref().is_none_or(|f| c < f.0) {
                    first = Some((c, e));
                }
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(states),
    }
}

/// What a reader found besides the rows.
pub(crate) struct ReadOut {
    pub table: Table,
    pub cols: Columns,
    /// Rows in the file (before shard filtering).
    pub file_rows: u64,
}

/// Reads PRED (CSV/TSV or Parquet, by extension `.parquet`/`.pq`).
pub(crate) fn read_pred(path: &Path, spec: &ReadSpec) -> Result<ReadOut> {
    if super::is_parquet(path) {
        decoder_guard(path, "Parquet", || read_parquet(path, spec))
    } else {
        decoder_guard(path, "CSV", || read_csv(path, spec))
    }
}

/// Runs a reader, turning a panic of its decoder into an error about the file: the parquet
/// crate can panic on corrupted pages (seen with fuzzed files: RLE decoding).
fn decoder_guard<T>(path: &Path, format: &str, read: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::file(path, format!("corrupted {format} data: the decoder failed ({why})")))
    })
}

/// How many rows ahead the readers prefetch item slots.
const PREFETCH_AHEAD: usize = 16;

/// A parsed CSV row waiting for its item slot to arrive in cache (scores kept beside it).
struct Pending {
    ukey: u64,
    lab: bool,
    useg: u8,
    iseg_col: u8,
    ikey: Option<u64>,
    w: f32,
}

impl Pending {
    /// Notes the row's item and appends the row to the sink.
    #[inline]
    fn note(&self, ctx: &RowCtx, sink: &mut Sink, scores: &[f32]) {
        let (iseg, _) = ctx.item(sink, self.ikey, self.iseg_col);
        sink.push(self.ukey, flags(self.lab, iseg, self.useg), scores, self.w);
    }
}

fn read_csv(path: &Path, spec: &ReadSpec) -> Result<ReadOut> {
    let Some(map) = map_file(path)? else {
        return Err(Error::file(path, "empty file (no header)"));
    };
    let data: &[u8] = &map;
    let (hdr, delim, start) = header(path, data)?;
    let cols = resolve(path, &hdr, spec.scores)?;
    let nf = hdr.len();
    let m = cols.scores.len();
    let est_rows = (data.len() - start) as u64 / (12 + 10 * m as u64);
    let layout = Layout { m, weight: cols.weight.is_some(), bits: Layout::bits_for(est_rows) };
    let parts = chunks(data, start, 4 << 20);
    let ctx = RowCtx { spec, cols: &cols };
    let file_rows = AtomicUsize::new(0);
    let pathb: PathBuf = path.to_path_buf();
    let res = run_parallel(parts.len(), layout, |c, sink| {
        let (a, b) = parts[c];
        let mut ranges = Vec::with_capacity(nf);
        let mut scratch = Vec::new();
        let mut sc = vec![0f32; m];
        let mut sc_old = vec![0f32; m];
        let (mut ring, mut ring_sc, mut head) =
            (Vec::with_capacity(PREFETCH_AHEAD), Vec::with_capacity(PREFETCH_AHEAD * m), 0usize);
        let mut pos = a;
        let mut n = 0usize;
        let fail = |off: usize, field: &str, message: String| ChunkErr::At { off, field: field.to_owned(), message };
        while pos < b {
            let off = pos;
            let buf = match split_fast(data, pos, b, delim, &mut ranges) {
                Some((nl, e)) => {
                    pos = nl + 1;
                    if e == off {
                        continue; // empty line
                    }
                    &data[off..e]
                }
                None => {
                    // A quoted line: the full splitter.
                    let end = data[pos..b].iter().position(|&c| c == b'\n').map_or(b, |p| pos + p);
                    let mut line = &data[pos..end];
                    pos = end + 1;
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    split_line(line, delim, &mut scratch, &mut ranges).map_err(|m| fail(off, "line", m.to_owned()))?
                }
            };
            n += 1;
            if ranges.len() != nf {
                return Err(fail(off, "line", format!("{} fields, the header has {nf}", ranges.len())));
            }
            let f = |i: usize| &buf[ranges[i].0..ranges[i].1];
            let uid = f(cols.user);
            if uid.is_empty() {
                return Err(fail(off, "user_id", "empty user id".into()));
            }
            let ukey = id_key_at(buf, ranges[cols.user]);
            if !ctx.keep(ukey) {
                continue;
            }
            let lab = match f(cols.label) {
                b"1" => true,
                b"0" => false,
                v => {
                    return Err(fail(
                        off,
                        "label",
                        format!("label must be 0 or 1, got `{}`", String::from_utf8_lossy(v)),
                    ));
                }
            };
            for (j, &ci) in cols.scores.iter().enumerate() {
                let v = f(ci);
                let s = fast_f32(v).or_else(|| std::str::from_utf8(v).ok().and_then(|s| s.trim().parse::<f32>().ok()));
                match s {
                    Some(x) if x.is_finite() => sc[j] = x,
                    Some(_) => {
                        return Err(fail(
                            off,
                            &cols.score_names[j],
                            format!("score is NaN or Inf: `{}`", String::from_utf8_lossy(v)),
                        ));
                    }
                    None => {
                        return Err(fail(
                            off,
                            &cols.score_names[j],
                            format!("not a number: `{}`", String::from_utf8_lossy(v)),
                        ));
                    }
                }
            }
            let w = match cols.weight {
                Some(ci) => {
                    let v = f(ci);
                    let x: f64 = std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
                        fail(off, "weight", format!("not a number: `{}`", String::from_utf8_lossy(v)))
                    })?;
                    if !x.is_finite() || x < 0.0 {
                        return Err(fail(
                            off,
                            "weight",
                            format!("weight must be finite and ≥ 0, got `{}`", String::from_utf8_lossy(v)),
                        ));
                    }
                    x as f32
                }
                None => 0.0,
            };
            let seg = |ci: usize, name: &str| -> std::result::Result<u8, ChunkErr> {
                let v = f(ci);
                std::str::from_utf8(v).ok().and_then(Segment::parse).map(seg_code).ok_or_else(|| {
                    fail(
                        off,
                        name,
                        format!("unknown segment `{}` (cold-start, long-tail, regular)", String::from_utf8_lossy(v)),
                    )
                })
            };
            let useg = match cols.useg {
                Some(ci) => seg(ci, "user_segment")?,
                None => NONE,
            };
            let iseg_col = match cols.iseg {
                Some(ci) => seg(ci, "item_segment")?,
                None => NONE,
            };
            let ikey = match cols.item {
                Some(ci) => {
                    let v = f(ci);
                    if v.is_empty() {
                        return Err(fail(off, "item_id", "empty item id".into()));
                    }
                    Some(id_key_at(buf, ranges[ci]))
                }
                None => None,
            };
            // Software pipelining: prefetch this row's item slot now and note the row
            // PREFETCH_AHEAD rows later, when the slot is in cache (the item table outgrows it).
            if let Some(k) = ikey {
                ctx.prefetch_item(sink, k);
            }
            sink.prefetch_push(ukey);
            let row = Pending { ukey, lab, useg, iseg_col, ikey, w };
            if ring.len() < PREFETCH_AHEAD {
                ring.push(row);
                ring_sc.extend_from_slice(&sc);
            } else {
                let old = std::mem::replace(&mut ring[head], row);
                let at = head * m..(head + 1) * m;
                sc_old.copy_from_slice(&ring_sc[at.clone()]);
                ring_sc[at].copy_from_slice(&sc);
                old.note(&ctx, sink, &sc_old);
                head = (head + 1) % PREFETCH_AHEAD;
            }
        }
        for i in 0..ring.len() {
            let j = (head + i) % ring.len();
            ring[j].note(&ctx, sink, &ring_sc[j * m..(j + 1) * m]);
        }
        file_rows.fetch_add(n, Ordering::Relaxed);
        release_pages(&map, a, b);
        Ok(())
    });
    let sinks = res.map_err(|(_, e)| match e {
        ChunkErr::At { off, field, message } => Error::parse(&pathb, line_of(data, off), field, message),
        ChunkErr::Other(e) => e,
    })?;
    let file_rows = file_rows.load(Ordering::Relaxed) as u64;
    if file_rows == 0 {
        return Err(Error::file(path, "no data rows (only a header)"));
    }
    let seen = history_items_seen(&sinks, spec);
    let table = Table::from_sinks(layout, sinks, cols.item.is_some(), seen);
    Ok(ReadOut { table, cols, file_rows })
}

// ---------------------------------------------------------------------------------------------
// Parquet

use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};

/// One decoded column chunk.
enum Col {
    Bytes(Vec<ByteArray>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

/// Rows decoded at a time from each column of a row group (bounds the decode buffers).
const PQ_BATCH: usize = 1 << 16;

/// A column of one row group, read in batches.
struct ColIn<'a> {
    reader: ColumnReader,
    name: &'a str,
    max_def: i16,
    defs: Vec<i16>,
}

impl<'a> ColIn<'a> {
    fn open(path: &Path, rg: &dyn RowGroupReader, i: usize, name: &'a str) -> Result<ColIn<'a>> {
        let max_def = rg.metadata().column(i).column_descr().max_def_level();
        let reader = rg.get_column_reader(i).map_err(|e| Error::file(path, format!("column `{name}`: {e}")))?;
        match reader {
            ColumnReader::ByteArrayColumnReader(_)
            | ColumnReader::Int64ColumnReader(_)
            | ColumnReader::Int32ColumnReader(_)
            | ColumnReader::FloatColumnReader(_)
            | ColumnReader::DoubleColumnReader(_)
            | ColumnReader::BoolColumnReader(_) => {}
            _ => {
                return Err(Error::file(path, format!("column `{name}`: unsupported Parquet type")));
            }
        }
        Ok(ColIn { reader, name, max_def, defs: Vec::new() })
    }

    /// An empty buffer of this column's type.
    fn buffer(&self) -> Col {
        match self.reader {
            ColumnReader::ByteArrayColumnReader(_) => Col::Bytes(Vec::new()),
            ColumnReader::Int64ColumnReader(_) => Col::I64(Vec::new()),
            ColumnReader::Int32ColumnReader(_) => Col::I32(Vec::new()),
            ColumnReader::FloatColumnReader(_) => Col::F32(Vec::new()),
            ColumnReader::DoubleColumnReader(_) => Col::F64(Vec::new()),
            _ => Col::Bool(Vec::new()),
        }
    }

    /// Reads the next `rows` values into `out` (a [`ColIn::buffer`]); `first_row` = the file's
    /// 0-based row index of the first of them (for errors). A null is an error.
    fn next(&mut self, path: &Path, rows: usize, first_row: u64, out: &mut Col) -> Result<()> {
        let got = self.next_nullable(path, rows, out)?;
        if got != rows || out.len() != rows {
            let at = self.defs.iter().position(|&d| d < self.max_def).unwrap_or(out.len());
            return Err(Error::parse(
                path,
                first_row + at as u64 + 1,
                self.name,
                "null value (row number within the file)",
            ));
        }
        Ok(())
    }

    /// Reads the next `rows` rows: the non-null values into `out`, and (for a nullable column)
    /// one definition level per row into `self.defs` (`== self.max_def`: a value). Returns the
    /// rows read (fewer only at the end of the column chunk).
    fn next_nullable(&mut self, path: &Path, rows: usize, out: &mut Col) -> Result<usize> {
        let name = self.name;
        let pq = |e: parquet::errors::ParquetError| Error::file(path, format!("column `{name}`: {e}"));
        let max_def = self.max_def;
        let defs = &mut self.defs;
        defs.clear();
        macro_rules! read {
            ($r:expr, $vals:expr) => {{
                let vals = $vals;
                vals.clear();
                let mut got = 0;
                while got < rows {
                    let d = if max_def > 0 { Some(&mut *defs) } else { None };
                    let (recs, _, _) = $r.read_records(rows - got, d, None, vals).map_err(pq)?;
                    if recs == 0 {
                        break;
                    }
                    got += recs;
                }
                got
            }};
        }
        Ok(match (&mut self.reader, out) {
            (ColumnReader::ByteArrayColumnReader(r), Col::Bytes(v)) => read!(r, v),
            (ColumnReader::Int64ColumnReader(r), Col::I64(v)) => read!(r, v),
            (ColumnReader::Int32ColumnReader(r), Col::I32(v)) => read!(r, v),
            (ColumnReader::FloatColumnReader(r), Col::F32(v)) => read!(r, v),
            (ColumnReader::DoubleColumnReader(r), Col::F64(v)) => read!(r, v),
            (ColumnReader::BoolColumnReader(r), Col::Bool(v)) => read!(r, v),
            _ => {
                return Err(Error::file(path, format!("column `{name}`: unsupported Parquet type")));
            }
        })
    }
}

fn id_keys(path: &Path, c: &Col, name: &str, first: u64, out: &mut Vec<u64>) -> Result<()> {
    out.clear();
    match c {
        Col::Bytes(v) => {
            for (r, b) in v.iter().enumerate() {
                let d = b.data();
                if d.is_empty() {
                    return Err(Error::parse(path, first + r as u64 + 1, name, "empty id"));
                }
                out.push(id_key(d));
            }
        }
        Col::I64(v) => out.extend(v.iter().map(|&x| int_key(x))),
        Col::I32(v) => out.extend(v.iter().map(|&x| int_key(x as i64))),
        _ => {
            return Err(Error::file(path, format!("column `{name}`: ids must be strings or integers")));
        }
    }
    Ok(())
}

/// Labels of a batch as 0/1 bytes (any integer, float, boolean or string column holding 0 and 1).
fn pq_labels(path: &Path, c: &Col, first: u64, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let bad = |r: usize, got: String| {
        Error::parse(path, first + r as u64 + 1, "label", format!("label must be 0 or 1, got `{got}`"))
    };
    match c {
        Col::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        Col::I32(v) => {
            if let Some(r) = v.iter().position(|&x| x as u32 > 1) {
                return Err(bad(r, v[r].to_string()));
            }
            out.extend(v.iter().map(|&x| x as u8));
        }
        Col::I64(v) => {
            if let Some(r) = v.iter().position(|&x| x as u64 > 1) {
                return Err(bad(r, v[r].to_string()));
            }
            out.extend(v.iter().map(|&x| x as u8));
        }
        Col::Bytes(v) => {
            for (r, x) in v.iter().enumerate() {
                out.push(label_field(path, first + r as u64 + 1, x.data())? as u8);
            }
        }
        Col::F32(_) | Col::F64(_) => {
            for r in 0..c.len() {
                let x = f64_at(c, r);
                if x != 0.0 && x != 1.0 {
                    return Err(bad(r, x.to_string()));
                }
                out.push((x == 1.0) as u8);
            }
        }
    }
    Ok(())
}

/// Scores of model `j` (of `m`) of a batch into `out[r * m + j]`, checked finite.
fn pq_scores(path: &Path, c: &Col, name: &str, first: u64, out: &mut [f32], j: usize, m: usize) -> Result<()> {
    let nonfinite =
        |r: usize, x: f64| Error::parse(path, first + r as u64 + 1, name, format!("score is NaN or Inf: `{x}`"));
    match c {
        Col::F32(v) => {
            for (o, &x) in out.chunks_exact_mut(m).zip(v) {
                o[j] = x;
            }
            if let Some(r) = v.iter().position(|x| !x.is_finite()) {
                return Err(nonfinite(r, v[r] as f64));
            }
        }
        Col::Bytes(v) => {
            for (r, (o, x)) in out.chunks_exact_mut(m).zip(v).enumerate() {
                o[j] = score_field(path, first + r as u64 + 1, name, x.data())?;
            }
        }
        _ => {
            for (r, o) in out.chunks_exact_mut(m).enumerate().take(c.len()) {
                let x = f64_at(c, r) as f32;
                if !x.is_finite() {
                    return Err(nonfinite(r, f64_at(c, r)));
                }
                o[j] = x;
            }
        }
    }
    Ok(())
}

impl Col {
    fn len(&self) -> usize {
        match self {
            Col::Bytes(v) => v.len(),
            Col::I64(v) => v.len(),
            Col::I32(v) => v.len(),
            Col::F32(v) => v.len(),
            Col::F64(v) => v.len(),
            Col::Bool(v) => v.len(),
        }
    }
}

fn f64_at(c: &Col, r: usize) -> f64 {
    match c {
        Col::I64(v) => v[r] as f64,
        Col::I32(v) => v[r] as f64,
        Col::F32(v) => v[r] as f64,
        Col::F64(v) => v[r],
        Col::Bool(v) => v[r] as u8 as f64,
        Col::Bytes(_) => f64::NAN,
    }
}

/// A Parquet file opened for reading: its column names, each row group's first row (0-based)
/// and the total rows.
struct PqFile {
    hdr: Vec<String>,
    first_rows: Vec<u64>,
    total: u64,
}

/// Opens `path` as Parquet (an empty or non-Parquet file is an error naming it).
fn pq_reader(path: &Path) -> Result<SerializedFileReader<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Err(Error::file(path, "empty file"));
    }
    SerializedFileReader::new(f).map_err(|e| Error::file(path, format!("not a Parquet file: {e}")))
}

impl PqFile {
    fn open(path: &Path) -> Result<PqFile> {
        let reader = pq_reader(path)?;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let hdr = (0..schema.num_columns()).map(|i| schema.column(i).path().string()).collect();
        let mut first_rows = Vec::with_capacity(meta.num_row_groups());
        let mut total = 0u64;
        for i in 0..meta.num_row_groups() {
            first_rows.push(total);
            total += meta.row_group(i).num_rows() as u64;
        }
        Ok(PqFile { hdr, first_rows, total })
    }
}

/// The batches of a row group of `rows` rows whose first is file row `first_row` (0-based):
/// `(rows, file row of the batch's first)` per [`PQ_BATCH`] rows.
fn pq_batches(rows: usize, first_row: u64) -> impl Iterator<Item = (usize, u64)> {
    (0..rows).step_by(PQ_BATCH).map(move |d| ((rows - d).min(PQ_BATCH), first_row + d as u64))
}

/// Runs `read(row group)` on a reader of its own: `File` readers share the descriptor's offset
/// across clones, so concurrent row groups must not share a reader.
fn with_row_group<T>(
    path: &Path,
    g: usize,
    read: impl FnOnce(&dyn RowGroupReader) -> std::result::Result<T, ChunkErr>,
) -> std::result::Result<T, ChunkErr> {
    let own = pq_reader(path).map_err(ChunkErr::Other)?;
    let rg = own.get_row_group(g).map_err(|x| ChunkErr::Other(Error::file(path, format!("row group {g}: {x}"))))?;
    read(rg.as_ref())
}

fn read_parquet(path: &Path, spec: &ReadSpec) -> Result<ReadOut> {
    let PqFile { hdr, first_rows, total } = PqFile::open(path)?;
    let cols = resolve(path, &hdr, spec.scores)?;
    let nrg = first_rows.len();
    if total == 0 {
        return Err(Error::file(path, "no data rows"));
    }
    let m = cols.scores.len();
    let layout = Layout { m, weight: cols.weight.is_some(), bits: Layout::bits_for(total) };
    let ctx = RowCtx { spec, cols: &cols };
    let mut tm = super::Stages::new();
    let (t_dec, t_rows) = (std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0));
    let res = run_parallel(nrg, layout, |g, sink| {
        let t0 = std::time::Instant::now();
        with_row_group(path, g, |rg| {
            let e = ChunkErr::Other;
            let rg_rows = rg.metadata().num_rows() as usize;
            let opn = |i: usize, name: &'static str| ColIn::open(path, rg, i, name).map_err(ChunkErr::Other);
            let mut c_user = opn(cols.user, "user_id")?;
            let mut c_label = opn(cols.label, "label")?;
            let mut c_scores: Vec<ColIn> = cols
                .scores
                .iter()
                .zip(&cols.score_names)
                .map(|(&i, n)| ColIn::open(path, rg, i, n).map_err(ChunkErr::Other))
                .collect::<std::result::Result<_, _>>()?;
            let mut c_item = cols.item.map(|i| opn(i, "item_id")).transpose()?;
            let mut c_weight = cols.weight.map(|i| opn(i, "weight")).transpose()?;
            let mut c_useg = cols.useg.map(|i| opn(i, "user_segment")).transpose()?;
            let mut c_iseg = cols.iseg.map(|i| opn(i, "item_segment")).transpose()?;
            let mut b_user = c_user.buffer();
            let mut labels = c_label.buffer();
            let mut scores: Vec<Col> = c_scores.iter().map(|c| c.buffer()).collect();
            let mut b_item = c_item.as_ref().map(|c| c.buffer());
            let mut weights = c_weight.as_ref().map(|c| c.buffer());
            let mut useg = c_useg.as_ref().map(|c| c.buffer());
            let mut iseg = c_iseg.as_ref().map(|c| c.buffer());
            let (mut users, mut items_v): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
            let (mut lab, mut sc, mut wt, mut us, mut is) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (rows, first) in pq_batches(rg_rows, first_rows[g]) {
                let t0b = std::time::Instant::now();
                let nx = |c: &mut ColIn, out: &mut Col| c.next(path, rows, first, out).map_err(ChunkErr::Other);
                nx(&mut c_user, &mut b_user)?;
                id_keys(path, &b_user, "user_id", first, &mut users).map_err(e)?;
                nx(&mut c_label, &mut labels)?;
                for (c, out) in c_scores.iter_mut().zip(scores.iter_mut()) {
                    nx(c, out)?;
                }
                let items = match (&mut c_item, &mut b_item) {
                    (Some(c), Some(out)) => {
                        nx(c, out)?;
                        id_keys(path, out, "item_id", first, &mut items_v).map_err(e)?;
                        Some(&items_v)
                    }
                    _ => None,
                };
                for (c, out) in [(&mut c_weight, &mut weights), (&mut c_useg, &mut useg), (&mut c_iseg, &mut iseg)] {
                    if let (Some(c), Some(out)) = (c, out.as_mut()) {
                        nx(c, out)?;
                    }
                }
                // Column at a time: labels, scores (row-major), weights and segments checked and
                // converted in tight loops, then one pass over the rows buckets them.
                pq_labels(path, &labels, first, &mut lab).map_err(e)?;
                sc.resize(rows * m, 0.0);
                for (j, col) in scores.iter().enumerate() {
                    pq_scores(path, col, &cols.score_names[j], first, &mut sc, j, m).map_err(e)?;
                }
                if let Some(c) = &weights {
                    wt.clear();
                    for r in 0..rows {
                        wt.push(weight_value(path, first + r as u64 + 1, f64_at(c, r)).map_err(e)?);
                    }
                }
                for (c, name, out) in [(&useg, "user_segment", &mut us), (&iseg, "item_segment", &mut is)] {
                    out.clear();
                    match c {
                        Some(Col::Bytes(v)) => {
                            for (r, x) in v.iter().enumerate() {
                                out.push(seg_field(path, first + r as u64 + 1, name, x.data()).map_err(e)?);
                            }
                        }
                        Some(_) => {
                            return Err(e(Error::file(path, format!("column `{name}` must be a string column"))));
                        }
                        None => out.resize(rows, NONE),
                    }
                }
                let t1 = std::time::Instant::now();
                t_dec.fetch_add((t1 - t0b).as_nanos() as u64, Ordering::Relaxed);
                // Two passes: the item lookups (random probes, prefetched), then the bucketing
                // (appends to the buckets' open blocks, prefetched): each loop keeps its own misses
                // in flight.
                if let Some(v) = items {
                    for r in 0..rows {
                        if let Some(&k) = v.get(r + PREFETCH_AHEAD) {
                            ctx.prefetch_item(sink, k);
                        }
                        if ctx.keep(users[r]) {
                            is[r] = ctx.item(sink, Some(v[r]), is[r]).0;
                        }
                    }
                }
                for r in 0..rows {
                    if let Some(&k) = users.get(r + PREFETCH_AHEAD) {
                        sink.prefetch_push(k);
                    }
                    let ukey = users[r];
                    if !ctx.keep(ukey) {
                        continue;
                    }
                    let w = if weights.is_some() { wt[r] } else { 0.0 };
                    sink.push(ukey, flags(lab[r] != 0, is[r], us[r]), &sc[r * m..r * m + m], w);
                }
                t_rows.fetch_add(t1.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            let _ = t0;
            Ok(())
        })
    });
    tm.mark(&format!(
        "  PRED Parquet threads (decode {:.3} s + rows {:.3} s thread time)",
        t_dec.load(Ordering::Relaxed) as f64 * 1e-9,
        t_rows.load(Ordering::Relaxed) as f64 * 1e-9
    ));
    let sinks = res.map_err(|(_, e)| match e {
        ChunkErr::At { field, message, .. } => Error::file(path, format!("{field}: {message}")),
        ChunkErr::Other(e) => e,
    })?;
    let seen = history_items_seen(&sinks, spec);
    let table = Table::from_sinks(layout, sinks, cols.item.is_some(), seen);
    tm.mark("  PRED merge of sinks");
    Ok(ReadOut { table, cols, file_rows: total })
}

// ---------------------------------------------------------------------------------------------
// HISTORY

/// Which HISTORY rows count as a user's interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserActivity {
    /// Clicks, conversions and ratings (impressions are exposure, not interaction).
    #[default]
    Engaged,
    /// Every row, impressions included.
    All,
}

/// Interaction counts per user key and conversion counts per item key from a HISTORY file.
#[derive(Debug, Default)]
pub struct HistoryCounts {
    pub(crate) users: PartCounts,
    pub(crate) items: PartCounts,
    /// Data rows read.
    pub rows: u64,
}

impl HistoryCounts {
    /// Users seen in HISTORY.
    pub fn users(&self) -> usize {
        self.users.len()
    }
    /// Items seen in HISTORY (any action).
    pub fn items(&self) -> usize {
        self.items.len()
    }
}

/// HISTORY counts are gathered in `2^HIST_BITS` partitions by the top bits of the key: each
/// reader thread appends to per-partition buffers (sequential writes), then each partition is
/// counted in its own small table (cache-resident; a single table of millions of keys would
/// miss the caches on nearly every row).
const HIST_BITS: u32 = 6;

#[inline]
fn hist_part(key: u64) -> usize {
    (key >> (64 - HIST_BITS)) as usize
}

/// Counts per key, partitioned by [`hist_part`]: the partitions' tables packed into one array
/// (huge pages: PRED rows probe it at random, and 4 KiB pages would miss the TLB on most probes).
#[derive(Debug, Default)]
pub(crate) struct PartCounts {
    slots: HugeBuf<(u64, u64)>,
    /// Partition `p` = `slots[off[p]..off[p + 1]]` (a power of two, or empty).
    off: Vec<usize>,
    /// The count of key 0 (empty-slot marker, kept aside).
    zero: Option<u64>,
    len: usize,
}

impl PartCounts {
    fn new(parts: Vec<CountTable>) -> PartCounts {
        let mut off = vec![0];
        for t in &parts {
            off.push(off.last().copied().unwrap_or(0) + t.parts().0.len());
        }
        // Every slot is overwritten: no prefault; the copies (first touch of the memory) run on
        // all threads.
        let mut slots = HugeBuf::written(off.last().copied().unwrap_or(0));
        let mut rest = slots.as_mut_slice();
        let mut dst = Vec::with_capacity(parts.len());
        for t in &parts {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(t.parts().0.len());
            dst.push((head, t));
            rest = tail;
        }
        use rayon::prelude::*;
        dst.into_par_iter().for_each(|(d, t)| d.copy_from_slice(t.parts().0));
        let zero = parts.iter().find_map(|t| t.parts().1);
        let len = parts.iter().map(|t| t.len()).sum();
        PartCounts { slots, off, zero, len }
    }
    #[inline]
    fn part(&self, key: u64) -> (usize, &[(u64, u64)]) {
        let p = hist_part(key);
        match (self.off.get(p), self.off.get(p + 1)) {
            (Some(&a), Some(&b)) => (a, &self.slots.as_slice()[a..b]),
            _ => (0, &[]),
        }
    }
    /// Size of the global index space of [`PartCounts::find`].
    pub fn index_len(&self) -> usize {
        self.slots.len() + 1
    }
    /// A dense global index (`< index_len()`, stable while the counts live) and the count of
    /// `key`, if the key was seen.
    #[inline]
    pub fn find(&self, key: u64) -> Option<(usize, u64)> {
        if key == 0 {
            return self.zero.map(|c| (self.slots.len(), c));
        }
        let (a, s) = self.part(key);
        table::probe(s, key).map(|(i, c)| (a + i, c))
    }
    /// The key and count at global index `i`, if occupied.
    pub fn at(&self, i: usize) -> Option<(u64, u64)> {
        if i == self.slots.len() {
            return self.zero.map(|c| (0, c));
        }
        self.slots.as_slice().get(i).copied().filter(|s| s.0 != 0)
    }
    /// The count of `key`, if the key was seen.
    #[inline]
    pub fn get(&self, key: u64) -> Option<u64> {
        self.find(key).map(|x| x.1)
    }
    /// Starts loading `key`'s slot into the cache.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let (_, s) = self.part(key);
            if !s.is_empty() {
                // SAFETY: prefetching is a hint; the pointer is in bounds of `s`.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(s.as_ptr().add(key as usize & (s.len() - 1)) as *const i8);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }
    /// `(key, count)` of every key.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.zero.map(|c| (0, c)).into_iter().chain(self.slots.as_slice().iter().filter(|s| s.0 != 0).copied())
    }
}

/// One HISTORY reader thread's buffers. Users: HISTORY files are usually grouped by user, so a
/// run of rows of the same user is summed first and buffered once.
#[derive(Default)]
struct HistPart {
    /// Per partition: (user key, counted interactions).
    users: Vec<Vec<(u64, u64)>>,
    /// Per partition: `key << HIST_BITS | conversion` (the partition holds the top bits), in
    /// slab chunks (their memory is reused by PRED's row blocks once counted).
    items: Vec<SlabList<u64>>,
    carver: Carver,
    rows: u64,
    /// The current user run: byte range of its id in the file, key, counted interactions.
    run: Option<((usize, usize), u64, u64)>,
}

impl HistPart {
    fn new() -> HistPart {
        let n = 1 << HIST_BITS;
        HistPart {
            users: vec![Vec::new(); n],
            items: (0..n).map(|_| SlabList::default()).collect(),
            ..Default::default()
        }
    }
    #[inline]
    fn user(&mut self, data: &[u8], r: (usize, usize), counted: bool) {
        if let Some((lr, _, c)) = &mut self.run
            && same_bytes(data, *lr, r)
        {
            *c += counted as u64;
            return;
        }
        self.flush_user();
        self.run = Some((r, id_key_at(data, r), counted as u64));
    }
    /// A row of user `key` (ids compared by key: Parquet).
    #[inline]
    fn user_key(&mut self, key: u64, counted: bool) {
        if let Some((_, k, c)) = &mut self.run
            && *k == key
        {
            *c += counted as u64;
            return;
        }
        self.flush_user();
        self.run = Some(((0, 0), key, counted as u64));
    }
    fn flush_user(&mut self) {
        if let Some((_, k, c)) = self.run.take() {
            self.users[hist_part(k)].push((k, c));
        }
    }
    #[inline]
    fn item(&mut self, key: u64, conv: bool) {
        self.items[hist_part(key)].push(key << HIST_BITS | conv as u64, &mut self.carver);
    }
}

/// A HISTORY row's action (the common spellings first, without a UTF-8 check).
#[inline]
fn action_of(v: &[u8]) -> std::result::Result<Action, String> {
    match v {
        b"click" => Ok(Action::Click),
        b"conversion" => Ok(Action::Conversion),
        b"impression" => Ok(Action::Impression),
        v => std::str::from_utf8(v)
            .ok()
            .and_then(Action::parse)
            .ok_or_else(|| format!("unknown action `{}`", String::from_utf8_lossy(v))),
    }
}

/// Whether a HISTORY row converts (a rating at ≥ `rule.convert_min_rating`) and counts as the
/// user's interaction under `activity`.
#[inline]
fn history_row<E>(
    act: Action,
    rating: impl FnOnce() -> std::result::Result<f32, E>,
    activity: UserActivity,
) -> std::result::Result<(bool, bool), E> {
    let conv = match act {
        Action::Conversion => true,
        Action::Rating => rating()? >= crate::data::LabelRule::default().convert_min_rating,
        _ => false,
    };
    let counted = match activity {
        UserActivity::All => true,
        UserActivity::Engaged => act != Action::Impression,
    };
    Ok((conv, counted))
}

/// `data[x.0..x.1] == data[y.0..y.1]`, for ids of up to 8 bytes as one masked 8-byte compare
/// (no `memcmp` call; the id runs of a HISTORY are compared once per row).
#[inline]
fn same_bytes(data: &[u8], x: (usize, usize), y: (usize, usize)) -> bool {
    let n = x.1 - x.0;
    if n != y.1 - y.0 {
        return false;
    }
    if n <= 8
        && let (Some(a), Some(b)) = (data[x.0..].first_chunk::<8>(), data[y.0..].first_chunk::<8>())
    {
        let mask = u64::MAX.checked_shr(64 - 8 * n as u32).unwrap_or(0);
        return (u64::from_le_bytes(*a) ^ u64::from_le_bytes(*b)) & mask == 0;
    }
    data[x.0..x.1] == data[y.0..y.1]
}

/// Counts the buffers of partition `p` of every thread (consuming them).
/// `hint` = the slots of the tables of the partition counted before on this thread: partitions
/// are hash partitions of similar sizes, so tables sized like that rarely grow (each growth
/// is a new table, and fresh memory is expensive to touch).
fn count_part(
    p: usize,
    users: Vec<Vec<(u64, u64)>>,
    items: Vec<SlabList<u64>>,
    hint: (usize, usize),
) -> (CountTable, CountTable) {
    let (mut u, mut it) = (CountTable::with_slots(hint.0), CountTable::with_slots(hint.1));
    for b in users {
        for (k, c) in b {
            u.add(k, c);
        }
    }
    let top = (p as u64) << (64 - HIST_BITS);
    for b in items {
        for &v in b.iter() {
            it.add(top | v >> HIST_BITS, v & 1);
        }
    }
    (u, it)
}

/// Counts HISTORY (`user_id,item_id,timestamp,action,value,revenue`; only `user_id`, `item_id`,
/// `action` and, for ratings, `value` are read). A rating counts as a conversion at ≥ 4
/// ([`crate::data::LabelRule`]). Every item that appears gets an entry (0 conversions = cold-start
/// but known); every user that appears is known, even with 0 counted interactions.
///
/// HISTORY is CSV/TSV with a header, or Parquet (by extension, `.parquet`/`.pq`; columns
/// `user_id` and `item_id` strings or integers, `action` a string, optional `value` a number,
/// null allowed except on a rating; other columns are not read).
///
/// CSV is memory-mapped and scanned in parallel chunks split at newlines, each chunk in one
/// pass of 64-byte blocks (`scan::scan_chunk`; lines with quotes go through the full CSV field
/// splitter); Parquet row groups are decoded in parallel; see [`HIST_BITS`] for the counting.
pub fn read_history(path: &Path, activity: UserActivity) -> Result<HistoryCounts> {
    if super::is_parquet(path) {
        decoder_guard(path, "Parquet", || read_history_parquet(path, activity))
    } else {
        decoder_guard(path, "CSV", || read_history_csv(path, activity))
    }
}

/// HISTORY's `user_id`, `item_id`, `action` and `value` columns (`usize::MAX`: no `value`).
fn history_columns(path: &Path, hdr: &[String]) -> Result<[usize; 4]> {
    let find = |n: &str| hdr.iter().position(|h| h == n);
    let need = |n: &str| {
        find(n).ok_or_else(|| Error::file(path, format!("missing column `{n}` (columns: {})", hdr.join(", "))))
    };
    Ok([need("user_id")?, need("item_id")?, need("action")?, find("value").unwrap_or(usize::MAX)])
}

fn read_history_csv(path: &Path, activity: UserActivity) -> Result<HistoryCounts> {
    let Some(map) = map_file(path)? else {
        return Err(Error::file(path, "empty file (no header)"));
    };
    let data: &[u8] = &map;
    let (hdr, delim, start) = header(path, data)?;
    let [cu, ci, ca, cv] = history_columns(path, &hdr)?;
    let nf = hdr.len();
    let parts = chunks(data, start, 4 << 20);
    // One row: ranges into `buf` (the file, or the unquoted copy of a quoted line) of the
    // fields user, item, action, value (the fifth is not read).
    let row = |st: &mut HistPart,
               buf: &[u8],
               fields: &[(usize, usize); 5],
               has_value: bool,
               off: usize|
     -> std::result::Result<(), ChunkErr> {
        let fail = |field: &str, m: String| ChunkErr::At { off, field: field.into(), message: m };
        let f = |i: usize| &buf[fields[i].0..fields[i].1];
        let act = action_of(f(2)).map_err(|m| fail("action", m))?;
        let (conv, counted) = history_row(
            act,
            || {
                let v = if has_value { f(3) } else { b"" };
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|x: &f32| !x.is_nan())
                    .ok_or_else(|| {
                        fail("value", format!("rating value is not a number: `{}`", String::from_utf8_lossy(v)))
                    })
            },
            activity,
        )?;
        st.rows += 1;
        if std::ptr::eq(buf, data) {
            st.user(data, fields[0], counted);
        } else {
            // A quoted line: its unquoted copy does not outlive the line.
            st.flush_user();
            let k = id_key(f(0));
            st.users[hist_part(k)].push((k, counted as u64));
        }
        st.item(id_key_at(buf, fields[1]), conv);
        Ok(())
    };
    let want = [cu, ci, ca, cv];
    let mut tm = super::Stages::new();
    let res = run_chunks(parts.len(), HistPart::new, |c, st| {
        let (a, b) = parts[c];
        let mut ranges = Vec::with_capacity(nf);
        let mut scratch = Vec::new();
        // Fast path: the chunk's lines in one pass (64 bytes at a time), only the wanted
        // fields kept; a line with a quote goes through the full CSV field splitter.
        super::scan::scan_chunk(data, a, b, delim, want, |l| {
            let off = l.off;
            let fail = |field: &str, m: String| ChunkErr::At { off, field: field.into(), message: m };
            let quoted_fields: [(usize, usize); 5];
            let (buf, fields): (&[u8], &[(usize, usize); 5]) = if l.quoted {
                let mut line = &data[off..l.nl];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let buf = split_line(line, delim, &mut scratch, &mut ranges).map_err(|m| fail("line", m.into()))?;
                if ranges.len() != nf {
                    return Err(fail("line", format!("{} fields, the header has {nf}", ranges.len())));
                }
                let g = |w: usize| if w < nf { ranges[w] } else { (0, 0) };
                quoted_fields = [g(cu), g(ci), g(ca), g(want[3]), (0, 0)];
                (buf, &quoted_fields)
            } else {
                if l.end == off {
                    return Ok(()); // empty line
                }
                if l.fields != nf {
                    return Err(fail("line", format!("{} fields, the header has {nf}", l.fields)));
                }
                (data, &l.got)
            };
            // One call site: `row` is inlined into the scanner's loop.
            row(st, buf, fields, cv != usize::MAX, off)
        })?;
        st.flush_user();
        release_pages(&map, a, b);
        Ok(())
    });
    let parts = res.map_err(|(_, e)| match e {
        ChunkErr::At { off, field, message } => Error::parse(path, line_of(data, off), field, message),
        ChunkErr::Other(e) => e,
    })?;
    tm.mark("  HISTORY scan");
    Ok(count_history(parts, &mut tm))
}

/// HISTORY from Parquet: row groups decoded in parallel, in [`PQ_BATCH`]-row batches (user
/// runs are summed like CSV's, comparing keys).
fn read_history_parquet(path: &Path, activity: UserActivity) -> Result<HistoryCounts> {
    let PqFile { hdr, first_rows, .. } = PqFile::open(path)?;
    let [cu, ci, ca, cv] = history_columns(path, &hdr)?;
    let nrg = first_rows.len();
    let mut tm = super::Stages::new();
    let res = run_chunks(nrg, HistPart::new, |g, st| {
        with_row_group(path, g, |rg| {
            let e = ChunkErr::Other;
            let rg_rows = rg.metadata().num_rows() as usize;
            let opn = |i: usize, name: &'static str| ColIn::open(path, rg, i, name).map_err(ChunkErr::Other);
            let (mut c_user, mut c_item, mut c_act) = (opn(cu, "user_id")?, opn(ci, "item_id")?, opn(ca, "action")?);
            let mut c_value = (cv != usize::MAX).then(|| opn(cv, "value")).transpose()?;
            let (mut b_user, mut b_item, mut acts) = (c_user.buffer(), c_item.buffer(), c_act.buffer());
            let mut values = c_value.as_ref().map(|c| c.buffer());
            let (mut users, mut items, mut value_at) = (Vec::new(), Vec::new(), Vec::new());
            for (rows, first) in pq_batches(rg_rows, first_rows[g]) {
                let nx = |c: &mut ColIn, out: &mut Col| c.next(path, rows, first, out).map_err(ChunkErr::Other);
                nx(&mut c_user, &mut b_user)?;
                id_keys(path, &b_user, "user_id", first, &mut users).map_err(e)?;
                nx(&mut c_item, &mut b_item)?;
                id_keys(path, &b_item, "item_id", first, &mut items).map_err(e)?;
                nx(&mut c_act, &mut acts)?;
                let Col::Bytes(acts) = &acts else {
                    return Err(e(Error::file(path, "column `action` must be a string column")));
                };
                // `value`: nulls allowed (read only for ratings); `defs[r] == max_def` = a value.
                value_at.clear();
                if let (Some(c), Some(out)) = (&mut c_value, &mut values) {
                    c.next_nullable(path, rows, out).map_err(e)?;
                    if c.max_def == 0 {
                        value_at.extend(0..rows as u32);
                    } else {
                        let mut k = 0u32;
                        for &d in &c.defs {
                            value_at.push(if d == c.max_def { k } else { u32::MAX });
                            k += (d == c.max_def) as u32;
                        }
                    }
                }
                let fail = |r: usize, field: &str, m: String| e(Error::parse(path, first + r as u64 + 1, field, m));
                for r in 0..rows {
                    let act = action_of(acts[r].data()).map_err(|m| fail(r, "action", m))?;
                    let rating = || {
                        let null = || fail(r, "value", "rating value is null".into());
                        let k = *value_at.get(r).ok_or_else(null)?;
                        let x = match values.as_ref() {
                            Some(Col::Bytes(v)) if k != u32::MAX => {
                                let b = v[k as usize].data();
                                std::str::from_utf8(b).ok().and_then(|s| s.trim().parse::<f32>().ok()).ok_or_else(
                                    || {
                                        let b = String::from_utf8_lossy(b);
                                        fail(r, "value", format!("rating value is not a number: `{b}`"))
                                    },
                                )?
                            }
                            Some(c) if k != u32::MAX => f64_at(c, k as usize) as f32,
                            _ => return Err(null()),
                        };
                        if x.is_nan() {
                            return Err(fail(r, "value", "rating value is not a number: `NaN`".into()));
                        }
                        Ok(x)
                    };
                    let (conv, counted) = history_row(act, rating, activity)?;
                    st.rows += 1;
                    st.user_key(users[r], counted);
                    st.item(items[r], conv);
                }
            }
            st.flush_user();
            Ok(())
        })
    });
    let parts = res.map_err(|(_, e)| match e {
        ChunkErr::At { field, message, .. } => Error::file(path, format!("{field}: {message}")),
        ChunkErr::Other(e) => e,
    })?;
    tm.mark("  HISTORY Parquet threads");
    Ok(count_history(parts, &mut tm))
}

/// Counts the readers' buffers: each key partition of every thread in one table, then the
/// tables packed into [`PartCounts`].
fn count_history(parts: Vec<HistPart>, tm: &mut super::Stages) -> HistoryCounts {
    let mut out = HistoryCounts::default();
    // Transpose: partition -> the buffers of every thread.
    let np = 1usize << HIST_BITS;
    type PartBufs = (usize, Vec<Vec<(u64, u64)>>, Vec<SlabList<u64>>);
    let mut by_part: Vec<PartBufs> = (0..np).map(|p| (p, Vec::new(), Vec::new())).collect();
    for t in parts {
        out.rows += t.rows;
        for (p, (u, i)) in t.users.into_iter().zip(t.items).enumerate() {
            by_part[p].1.push(u);
            by_part[p].2.push(i);
        }
    }
    use rayon::prelude::*;
    let tables: Vec<(CountTable, CountTable)> = by_part
        .into_par_iter()
        .map_init(
            || (0, 0),
            |hint, (p, u, i)| {
                let t = count_part(p, u, i, *hint);
                *hint = (t.0.parts().0.len(), t.1.parts().0.len());
                t
            },
        )
        .collect();
    let (u, i): (Vec<CountTable>, Vec<CountTable>) = tables.into_iter().unzip();
    tm.mark("  HISTORY count");
    out.users = PartCounts::new(u);
    out.items = PartCounts::new(i);
    tm.mark("  HISTORY pack");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_plain_and_quoted() {
        let (mut s, mut r) = (Vec::new(), Vec::new());
        let b = split_line(b"a,,c", b',', &mut s, &mut r).unwrap();
        let v: Vec<&[u8]> = r.iter().map(|&(x, y)| &b[x..y]).collect();
        assert_eq!(v, vec![&b"a"[..], b"", b"c"]);
        let b = split_line(b"\"x,\"\"y\"\"\",2,", b',', &mut s, &mut r).unwrap().to_vec();
        let v: Vec<&[u8]> = r.iter().map(|&(x, y)| &b[x..y]).collect();
        assert_eq!(v, vec![&b"x,\"y\""[..], b"2", b""]);
        assert!(split_line(b"\"open,1", b',', &mut s, &mut r).is_err());
    }

    #[test]
    fn same_bytes_equals_slice_equality() {
        // Ids of 0..12 bytes, some equal, some near the end of the data (no 8-byte load there).
        let data = b"12,12,123,1234567,12345678,12345679,123456789,123456789,abc,abd,,x,1";
        let mut r = Vec::new();
        let mut s = 0;
        for (i, &c) in data.iter().enumerate() {
            if c == b',' {
                r.push((s, i));
                s = i + 1;
            }
        }
        r.push((s, data.len()));
        r.push((data.len(), data.len()));
        for &x in &r {
            for &y in &r {
                assert_eq!(same_bytes(data, x, y), data[x.0..x.1] == data[y.0..y.1], "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn chunks_end_at_newlines() {
        let d = b"h\n1\n22\n333\n4444";
        let c = chunks(d, 2, 3);
        assert_eq!(c.first().map(|x| x.0), Some(2));
        assert_eq!(c.last().map(|x| x.1), Some(d.len()));
        for w in c.windows(2) {
            assert_eq!(w[0].1, w[1].0);
            assert_eq!(d[w[0].1 - 1], b'\n');
        }
    }

    /// A HISTORY with quoted lines, CRLF, blank lines, ratings, users in and out of runs and
    /// columns in another order, against counts done by hand.
    #[test]
    fn history_scanner_counts_like_the_definition() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.csv");
        let mut text = String::from("revenue,action,item_id,user_id,value,timestamp\r\n");
        let mut want_u: std::collections::HashMap<String, u64> = Default::default();
        let mut want_i: std::collections::HashMap<String, u64> = Default::default();
        let acts = ["click", "impression", "conversion", "rating", "Purchase"];
        for r in 0..3000u64 {
            // Users mostly in runs, sometimes interleaved; some ids quoted (with a comma).
            let u = if r % 17 == 0 { format!("u{}", r % 5) } else { format!("u{}", r / 7) };
            let it = format!("i{}", (r * 7919) % 101);
            let a = acts[(r % 5) as usize];
            let v = if a == "rating" { format!("{}", r % 6) } else { String::new() };
            let quoted = r % 23 == 0;
            let uf = if quoted { format!("\"{u},x\"") } else { u.clone() };
            let uk = if quoted { format!("{u},x") } else { u.clone() };
            text += &format!("9.9,{a},{it},{uf},{v},{r}");
            text += if r % 3 == 0 { "\r\n" } else { "\n" };
            if r % 101 == 0 {
                text += "\n";
            }
            let counted = a != "impression";
            *want_u.entry(uk).or_insert(0) += counted as u64;
            let conv = a == "conversion" || a == "Purchase" || (a == "rating" && r % 6 >= 4);
            *want_i.entry(it).or_insert(0) += conv as u64;
        }
        std::fs::write(&p, text).unwrap();
        let h = read_history(&p, UserActivity::Engaged).unwrap();
        assert_eq!(h.rows, 3000);
        assert_eq!(h.users.len(), want_u.len());
        assert_eq!(h.items.len(), want_i.len());
        for (k, &v) in &want_u {
            assert_eq!(h.users.get(id_key(k.as_bytes())), Some(v), "user {k}");
        }
        for (k, &v) in &want_i {
            assert_eq!(h.items.get(id_key(k.as_bytes())), Some(v), "item {k}");
        }
        let all = read_history(&p, UserActivity::All).unwrap();
        assert_eq!(all.users.iter().map(|x| x.1).sum::<u64>(), 3000);
    }

    #[test]
    fn history_bad_lines_name_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let run = |name: &str, body: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, format!("user_id,item_id,timestamp,action,value,revenue\n{body}")).unwrap();
            read_history(&p, UserActivity::Engaged).map(|_| ()).unwrap_err().to_string()
        };
        let e = run("f.csv", "u1,i1,1,click,,\nu1,i1,2,click,\n");
        assert!(e.contains("f.csv:3: field `line`: 5 fields, the header has 6"), "{e}");
        let e = run("q.csv", "u1,i1,1,click,,\n\"u1,i1,2,click,,\n");
        assert!(e.contains("q.csv:3: field `line`: unterminated quoted field"), "{e}");
        let e = run("r.csv", "u1,i1,1,click,,\nu2,i1,1,rating,x,\n");
        assert!(e.contains("r.csv:3: field `value`: rating value is not a number: `x`"), "{e}");
        let e = run("a.csv", "\"u1\",i1,1,like,,\n");
        assert!(e.contains("a.csv:2: field `action`: unknown action `like`"), "{e}");
    }

    #[test]
    fn fast_f32_equals_std_parse() {
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "1",
            "5.",
            ".5",
            "0.793",
            "0.8885948",
            "16777216",
            "16777217",
            "-3.25",
            "0.0000000001",
            "0.00000000001",
            "1.5e3",
            "+1",
            "",
            ".",
            "-",
            "1.2.3",
            " 1",
            "nan",
            "inf",
            "12345678.9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x = super::table::fmix64(x.wrapping_add(1));
            let digits = (x % 18) as usize + 1;
            let point = (x >> 8) as usize % (digits + 1);
            let y = super::table::fmix64(x);
            let mut t: String = (0..digits).map(|k| char::from(b'0' + ((y >> (3 * k)) % 10) as u8)).collect();
            t.insert(point, '.');
            if x >> 63 == 1 {
                t.insert(0, '-');
            }
            cases.push(t);
        }
        for c in &cases {
            let want = c.trim().parse::<f32>().ok();
            if let Some(got) = fast_f32(c.as_bytes()) {
                assert_eq!(Some(got.to_bits()), want.map(f32::to_bits), "`{c}`");
            }
        }
        assert!(fast_f32(b"0.8885948").is_some() && fast_f32(b"1.5e3").is_none());
        // f32 rounding midpoints (and just beside them) in the f64 path: 16777217 = 2^24 + 1 is
        // halfway between two f32s; the result must still equal the std parse.
        for c in ["16777217", "16777217.0000001", "16777216.9999999", "0.44768378", "1e-45", "0.0000000000000000000001"]
        {
            if let Some(g) = fast_f32(c.as_bytes()) {
                assert_eq!(g.to_bits(), c.parse::<f32>().unwrap().to_bits(), "`{c}`");
            }
        }
        assert!(fast_f32(b"0.44768378").is_some(), "8 digits after the point take the f64 path");
    }
}
