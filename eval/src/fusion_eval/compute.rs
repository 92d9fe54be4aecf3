//! The heavy part: per-user AUC statistics (per bucket, in parallel) and the exact global AUC.
//!
//! Per user, `2·U` of each group comes from counting (positive, negative) pairs directly, 16
//! keys per AVX-512 compare, for the many small users, and from a sort of the user's keys for
//! the few big ones ([`choose`]); both give the same integers.

use super::table::{BINS, Block, LABEL, Layout, NONE, Table, fmix64, iseg_of, useg_of};
use crate::metrics::{AucCounts, f32_key};
use crate::segment::Thresholds;
use crate::{Error, Result};
use rayon::prelude::*;

/// Groups of a user's rows: 0 = all rows, 1 + s = rows of item segment `s`.
pub(crate) const G: usize = 4;

/// Per-user sufficient statistics (structure of arrays, sorted by user key).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Users {
    pub m: usize,
    pub key: Vec<u64>,
    /// User segment code (0..=2, 3 = none).
    pub useg: Vec<u8>,
    /// Bit 0: absent from HISTORY; bit 1: rows with conflicting `user_segment` values.
    pub uflags: Vec<u8>,
    pub rows: Vec<[u32; G]>,
    pub pos: Vec<[u32; G]>,
    /// Sum of row weights per group (empty when rows have no weight).
    pub wsum: Vec<[f64; G]>,
    /// `2·U` per (user, group, model): index `(u * G + g) * m + j`.
    pub u2: Vec<u64>,
}

pub(crate) const U_ABSENT: u8 = 1;
pub(crate) const U_CONFLICT: u8 = 2;

impl Users {
    pub fn new(m: usize) -> Users {
        Users { m, ..Default::default() }
    }
    pub fn len(&self) -> usize {
        self.key.len()
    }
    pub fn append(&mut self, mut o: Users) {
        self.key.append(&mut o.key);
        self.useg.append(&mut o.useg);
        self.uflags.append(&mut o.uflags);
        self.rows.append(&mut o.rows);
        self.pos.append(&mut o.pos);
        self.wsum.append(&mut o.wsum);
        self.u2.append(&mut o.u2);
    }
    /// AUC of user `u`, group `g`, model `j` (`None` if one class).
    #[inline]
    pub fn auc(&self, u: usize, g: usize, j: usize) -> Option<f64> {
        let p = self.pos[u][g] as u64;
        let n = self.rows[u][g] as u64 - p;
        if p == 0 || n == 0 {
            return None;
        }
        Some(self.u2[(u * G + g) * self.m + j] as f64 / (2.0 * p as f64 * n as f64))
    }
}

/// Where user segments come from.
pub(crate) enum UserSegments<'a> {
    None,
    /// The `user_segment` column (in the row flags).
    Column,
    /// Interaction counts from HISTORY, keyed by user key.
    History {
        counts: &'a super::read::PartCounts,
        thresholds: Thresholds,
    },
}

/// Per-user statistics of all buckets (consumes the rows), sorted by user key.
pub(crate) fn users(buckets: Vec<Vec<Block>>, layout: Layout, seg: &UserSegments) -> Result<Users> {
    let kernel = Kernel::detect();
    let rows: usize = buckets.iter().flatten().map(|b| b.len()).sum();
    // Buckets in windows of a few per thread; a window's results are appended while the next
    // window runs, so the per-bucket results of all buckets never exist beside the merged
    // arrays (memory), and the copy overlaps the work.
    let window = rayon::current_num_threads().max(1) * 4;
    let mut all = Users::new(layout.m);
    let mut pending: Vec<Users> = Vec::new();
    let mut buckets = buckets.into_iter();
    loop {
        let w: Vec<Vec<Block>> = buckets.by_ref().take(window).collect();
        if w.is_empty() {
            break;
        }
        let (parts, ()) = rayon::join(
            || {
                w.into_par_iter()
                    .map_init(Scratch::default, |s, b| bucket_users(b, layout, seg, kernel, s))
                    .collect::<Result<Vec<Users>>>()
            },
            || append_parts(&mut all, std::mem::take(&mut pending), rows, layout.weight),
        );
        pending = parts?;
    }
    append_parts(&mut all, pending, rows, layout.weight);
    Ok(all)
}

/// Appends `parts` to `all`. The first parts size the arrays for all `rows` (their users per
/// row, plus 5 %), so the arrays are not regrown and copied again and again.
fn append_parts(all: &mut Users, parts: Vec<Users>, rows: usize, weight: bool) {
    if all.len() == 0 && !parts.is_empty() {
        let users: usize = parts.iter().map(|p| p.len()).sum();
        let prow: u64 = parts.iter().flat_map(|p| p.rows.iter()).map(|r| r[0] as u64).sum();
        let want = (users as f64 / prow.max(1) as f64 * rows as f64 * 1.05) as usize + 1024;
        all.key.reserve(want);
        all.useg.reserve(want);
        all.uflags.reserve(want);
        all.rows.reserve(want);
        all.pos.reserve(want);
        if weight {
            all.wsum.reserve(want);
        }
        all.u2.reserve(want * G * all.m);
        advise_huge(&all.u2);
        advise_huge(&all.rows);
        advise_huge(&all.pos);
        advise_huge(&all.key);
        advise_huge(&all.wsum);
    }
    for p in parts {
        all.append(p);
    }
}

/// Asks for transparent huge pages under the capacity of `v` (Linux, ≥ 4 MiB, before it is
/// written): the merged per-user arrays are tens of MiB of fresh memory, and faulting them in
/// 4 KiB pages costs more than copying into them.
fn advise_huge<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let bytes = v.capacity() * std::mem::size_of::<T>();
        let start = v.as_ptr() as usize;
        let (a, e) = ((start + 4095) & !4095, (start + bytes) & !4095);
        if bytes >= 4 << 20 && e > a {
            // SAFETY: advice only (no data changes); the range lies inside the vector's
            // allocation, page-aligned.
            unsafe {
                libc::madvise(a as *mut libc::c_void, e - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Per-thread buffers of [`bucket_users`], reused from bucket to bucket (no allocation, no
/// page faults, and warm in the caches).
#[derive(Default)]
struct Scratch {
    ids: DenseIds,
    row_id: Vec<u32>,
    cnt: Vec<[u32; 8]>,
    ust: Vec<(u8, u8)>,
    by_key: Vec<u32>,
    hist: Vec<u32>,
    first: Vec<u32>,
    next: Vec<[u32; 8]>,
    kk: Vec<u32>,
    ww: Vec<f32>,
    tmp: Vec<u64>,
    wtmp: Vec<(u32, u8)>,
}

/// Class of a row within its user: `label·4 + item segment` (negatives first, then positives;
/// segment 3 = none).
#[inline]
fn class_of(f: u8) -> usize {
    (((f & LABEL) as usize) << 2) | iseg_of(f) as usize
}

/// Per-user statistics of one bucket (users in key order). Pass 1 numbers the users (dense ids
/// in a small hash table) and counts each user's rows per class ([`class_of`]); the users are
/// ordered by key; pass 2 scatters the score keys so that a user's rows of one class are
/// contiguous; then [`user_u2`] per user and model.
fn bucket_users(blocks: Vec<Block>, l: Layout, seg: &UserSegments, kernel: Kernel, sc: &mut Scratch) -> Result<Users> {
    let m = l.m;
    let n: usize = blocks.iter().map(|b| b.len()).sum();
    if n > u32::MAX as usize {
        return Err(Error::Invalid(format!("{n} rows in one user bucket: more than 2^32")));
    }
    // Pass 1 (rows in file order): a dense id per user key, and per user the row count of each
    // class and the `user_segment` conflict flag (which depends on row order; skipped when no
    // row has a user segment, as then no user has a conflict).
    let track = useg_of(blocks.iter().fold(!0u8, |a, b| b.flags.iter().fold(a, |a, &f| a & f))) != NONE;
    sc.ids.reset(n);
    // Buffers that are written in full before they are read are not cleared (only grown).
    let row_id = fit(&mut sc.row_id, n);
    sc.cnt.clear();
    sc.ust.clear();
    if track {
        count_rows::<true>(&blocks, &mut sc.ids, row_id, &mut sc.cnt, &mut sc.ust);
    } else {
        count_rows::<false>(&blocks, &mut sc.ids, row_id, &mut sc.cnt, &mut sc.ust);
    }
    let ukeys = &sc.ids.keys;
    let cnt = &sc.cnt;
    let nu = ukeys.len();
    order_by_key(ukeys, l.bits, &mut sc.by_key, &mut sc.hist);
    let by_key = &sc.by_key;
    // The user of rank r (dense id by_key[r]) owns rows first[r]..first[r + 1], class by class.
    let first = &mut sc.first;
    first.clear();
    let next = fit(&mut sc.next, nu);
    let mut o = 0u32;
    for &d in by_key.iter() {
        first.push(o);
        for (c, nx) in next[d as usize].iter_mut().enumerate() {
            *nx = o;
            o += cnt[d as usize][c];
        }
    }
    first.push(o);
    // Pass 2: scatter the score keys and weights into that order, so a user's rows of one class
    // are contiguous (every place is written once).
    let kk = fit(&mut sc.kk, n * m);
    let ww = fit(&mut sc.ww, if l.weight { n } else { 0 });
    match m {
        1 => scatter_rows::<1>(blocks, m, &sc.row_id[..n], next, kk, ww),
        2 => scatter_rows::<2>(blocks, m, &sc.row_id[..n], next, kk, ww),
        _ => scatter_rows::<0>(blocks, m, &sc.row_id[..n], next, kk, ww),
    }
    let (kk, ww) = (&sc.kk[..n * m], &sc.ww[..if l.weight { n } else { 0 }]);
    let mut out = Users::new(m);
    out.key.reserve(nu);
    out.useg.reserve(nu);
    out.uflags.reserve(nu);
    out.rows.reserve(nu);
    out.pos.reserve(nu);
    out.u2.reserve(nu * G * m);
    for (r, &d) in by_key.iter().enumerate() {
        let key = ukeys[d as usize];
        if let UserSegments::History { counts, .. } = seg
            && let Some(&dk) = by_key.get(r + 8)
        {
            counts.prefetch(ukeys[dk as usize]); // a random probe of a table bigger than the caches
        }
        let c = cnt[d as usize];
        let rows = [c.iter().sum(), c[0] + c[4], c[1] + c[5], c[2] + c[6]];
        let pos = [c[4] + c[5] + c[6] + c[7], c[4], c[5], c[6]];
        let (mut useg, mut uflags) = sc.ust.get(d as usize).copied().unwrap_or((NONE, 0));
        match seg {
            UserSegments::None => useg = NONE,
            UserSegments::Column => {}
            UserSegments::History { counts, thresholds } => {
                let h = counts.get(key);
                if h.is_none() {
                    uflags |= U_ABSENT;
                }
                useg = super::table::seg_code(thresholds.user(h.unwrap_or(0)));
            }
        }
        let (r0, r1) = (first[r] as usize, first[r + 1] as usize);
        if l.weight {
            let wtmp = &mut sc.wtmp;
            wtmp.clear();
            let mut o = r0;
            for (cl, &k) in c.iter().enumerate() {
                let e = o + k as usize;
                wtmp.extend(ww[o..e].iter().map(|w| (w.to_bits(), (cl & 3) as u8)));
                o = e;
            }
            // Canonical order, so the sum does not depend on the order rows were read in.
            wtmp.sort_unstable();
            let mut ws = [0f64; G];
            for &(w, s) in wtmp.iter() {
                let w = f32::from_bits(w) as f64;
                ws[0] += w;
                if s < 3 {
                    ws[1 + s as usize] += w;
                }
            }
            out.wsum.push(ws);
        }
        let base = out.u2.len();
        out.u2.resize(base + G * m, 0);
        for j in 0..m {
            let u2 = user_u2(&kk[j * n + r0..j * n + r1], &c, kernel, None, &mut sc.tmp);
            for (g, &x) in u2.iter().enumerate() {
                out.u2[base + g * m + j] = x;
            }
        }
        out.key.push(key);
        out.useg.push(useg);
        out.uflags.push(uflags);
        out.rows.push(rows);
        out.pos.push(pos);
    }
    Ok(out)
}

/// The first `len` elements of `v`, grown if shorter (old contents kept: for buffers the caller
/// overwrites in full).
fn fit<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// Indices of `keys` (distinct) in increasing key order, into `out`: a counting sort on the
/// key bits below the bucket's top `bits` (keys are hashes: about one key a bin), then each bin
/// sorted (so any keys come out in order, however they fall into bins).
fn order_by_key(keys: &[u64], bits: u32, out: &mut Vec<u32>, hist: &mut Vec<u32>) {
    let nu = keys.len();
    out.clear();
    out.resize(nu, 0);
    if nu == 0 {
        return;
    }
    let b = (usize::BITS - nu.leading_zeros()).clamp(1, 16);
    let digit = |k: u64| ((k << bits.min(63)) >> (64 - b)) as usize;
    hist.clear();
    hist.resize((1 << b) + 1, 0);
    for &k in keys {
        hist[digit(k) + 1] += 1;
    }
    for i in 0..1 << b {
        hist[i + 1] += hist[i];
    }
    // hist[i] = start of bin i; after the placement, hist[i] = its end = start of bin i + 1.
    for (d, &k) in keys.iter().enumerate() {
        let h = &mut hist[digit(k)];
        out[*h as usize] = d as u32;
        *h += 1;
    }
    let mut s = 0;
    for &e in &hist[..1 << b] {
        if e as usize - s > 1 {
            out[s..e as usize].sort_unstable_by_key(|&d| keys[d as usize]);
        }
        s = e as usize;
    }
}

/// Pass 2 of [`bucket_users`]: each row's score keys (model-major: model j at `j·n + p`) and
/// weight to its place `p`, the next free one of its (user, class) in `next` (drops the blocks).
/// `M` = `m` for the common 1 and 2 (a fixed inner loop), 0 for any `m`.
#[inline(never)]
fn scatter_rows<const M: usize>(
    blocks: Vec<Block>,
    m: usize,
    row_id: &[u32],
    next: &mut [[u32; 8]],
    kk: &mut [u32],
    ww: &mut [f32],
) {
    let m = if M == 0 { m } else { M };
    let n = row_id.len();
    let mut g0 = 0;
    for b in blocks {
        let ids = &row_id[g0..g0 + b.len()];
        g0 += b.len();
        for (i, (&f, &d)) in b.flags.iter().zip(ids).enumerate() {
            let nx = &mut next[d as usize][class_of(f)];
            let p = *nx as usize;
            *nx += 1;
            for (j, &s) in b.scores[i * m..(i + 1) * m].iter().enumerate() {
                kk[j * n + p] = f32_key(s);
            }
            if !ww.is_empty() {
                ww[p] = b.weights[i];
            }
        }
    }
}

/// Starts loading the cache line of `xs[i]` (if in bounds).
#[inline]
fn prefetch_at<T>(xs: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < xs.len() {
        // SAFETY: prefetching is a hint; the pointer is in bounds of `xs`.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(xs.as_ptr().add(i) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (xs, i);
}

/// Pass 1 of [`bucket_users`]: the dense id of each row's user (`row_id`), the row count of
/// each (user, class), and with `TRACK` each user's smallest `user_segment` code and conflict
/// flag, in row order.
#[inline(never)]
fn count_rows<const TRACK: bool>(
    blocks: &[Block],
    ids: &mut DenseIds,
    row_id: &mut [u32],
    cnt: &mut Vec<[u32; 8]>,
    ust: &mut Vec<(u8, u8)>,
) {
    // The table and the counters as local slices, taken again only after the (rare) out-of-line
    // probe, which may grow them: the common path keeps them in registers.
    let mut g0 = 0;
    let mut slots: &[(u64, u32)] = &ids.slots;
    let mut counts: &mut [[u32; 8]] = cnt;
    for b in blocks {
        let out = &mut row_id[g0..g0 + b.len()];
        g0 += b.len();
        for (i, ((&k, &f), o)) in b.keys.iter().zip(&b.flags).zip(out).enumerate() {
            let mask = slots.len() - 1;
            if let Some(&k2) = b.keys.get(i + 16) {
                prefetch_at(slots, k2 as usize & mask);
            }
            let (sk, s) = slots[k as usize & mask];
            let d = if sk == k && s != 0 {
                (s - 1) as usize
            } else {
                let d = ids.id(k, cnt) as usize;
                slots = &ids.slots;
                counts = cnt;
                d
            };
            *o = d as u32;
            counts[d][class_of(f)] += 1;
            if TRACK {
                if d == ust.len() {
                    ust.push((NONE, 0));
                }
                let (useg, uflags) = &mut ust[d];
                let us = useg_of(f);
                if *useg != NONE && us != *useg {
                    *uflags |= U_CONFLICT;
                }
                *useg = (*useg).min(us);
            }
        }
    }
}

/// How one user's `2·U` is computed: sort its rows by score and walk the runs, or count the
/// (positive, negative) pairs directly (vectorised; cheaper for the many small users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    Sort,
    Pairs,
}

/// The pairwise kernel, chosen once per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Scalar,
    /// AVX-512F: 16 keys per compare (and POPCNT).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The best kernel this CPU has (`LEARNREC_NO_SIMD` forces the scalar one).
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("LEARNREC_NO_SIMD").is_none()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Kernel::Avx512;
        }
        Kernel::Scalar
    }
}

/// The path for a user with `p` positives and `q` negatives (both > 0): pairs while
/// `min·⌈max/16⌉` compares (16 lanes each) cost less than sorting `p + q` keys.
#[inline]
fn choose(p: usize, q: usize) -> Path {
    let (a, b) = (p.min(q), p.max(q));
    let n = p + q;
    // Measured (`pairs_vs_sort_timing`, AVX-512, Zen 4): ≈0.9 ns a 16-lane compare step of
    // `pairs_avx512_wide`, ≈1.6 ns a sort step (n·log2 n).
    let pairs = a * b.div_ceil(16);
    let sort = n * (usize::BITS - n.leading_zeros()) as usize;
    if pairs * 5 <= sort * 9 { Path::Pairs } else { Path::Sort }
}

/// `2·U` of each group of one user and model. `keys` are the user's score keys class by class
/// ([`class_of`]), `cnt` the rows of each class; `force` overrides [`choose`].
fn user_u2(keys: &[u32], cnt: &[u32; 8], kernel: Kernel, force: Option<Path>, tmp: &mut Vec<u64>) -> [u64; G] {
    let q: usize = cnt[..4].iter().map(|&c| c as usize).sum();
    let p: usize = cnt[4..].iter().map(|&c| c as usize).sum();
    debug_assert_eq!(keys.len(), p + q);
    if p == 0 || q == 0 {
        return [0; G];
    }
    // The pairs kernel takes fewer than 2^16 outer keys (its per-segment counters).
    let path = if p.min(q) >= 1 << 16 { Path::Sort } else { force.unwrap_or_else(|| choose(p, q)) };
    match path {
        Path::Sort => sort_u2(keys, cnt, tmp),
        Path::Pairs => {
            let (neg, posk) = keys.split_at(q);
            let mut nb = [0usize; 5];
            let mut pb = [0usize; 5];
            for s in 0..4 {
                nb[s + 1] = nb[s] + cnt[s] as usize;
                pb[s + 1] = pb[s] + cnt[4 + s] as usize;
            }
            // The smaller class is the outer loop; the larger one fills the vector lanes.
            match (kernel, p <= q) {
                // SAFETY (all four): the kernel was detected at run time (`Kernel::detect`).
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, true) if q > 16 => unsafe { pairs_avx512_wide::<true>(posk, &pb, neg, &nb) },
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, false) if p > 16 => unsafe { pairs_avx512_wide::<false>(neg, &nb, posk, &pb) },
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, true) => unsafe { pairs_avx512::<true>(posk, &pb, neg, &nb) },
                #[cfg(target_arch = "x86_64")]
                (Kernel::Avx512, false) => unsafe { pairs_avx512::<false>(neg, &nb, posk, &pb) },
                (Kernel::Scalar, true) => pairs_scalar::<true>(posk, &pb, neg, &nb),
                (Kernel::Scalar, false) => pairs_scalar::<false>(neg, &nb, posk, &pb),
            }
        }
    }
}

/// The sort path: keys tagged with their class, sorted, and the runs of equal keys walked.
fn sort_u2(keys: &[u32], cnt: &[u32; 8], tmp: &mut Vec<u64>) -> [u64; G] {
    tmp.clear();
    let mut o = 0;
    for (c, &k) in cnt.iter().enumerate() {
        let e = o + k as usize;
        tmp.extend(keys[o..e].iter().map(|&k| ((k as u64) << 3) | c as u64));
        o = e;
    }
    tmp.sort_unstable();
    let mut negb = [0u64; G];
    let mut u2 = [0u64; G];
    let mut r = 0;
    while r < tmp.len() {
        let k = tmp[r] >> 3;
        let mut p = [0u64; G];
        let mut q = [0u64; G];
        while r < tmp.len() && tmp[r] >> 3 == k {
            let c = (tmp[r] & 7) as usize;
            let (lab, s) = (c >> 2 == 1, c & 3);
            if lab {
                p[0] += 1
            } else {
                q[0] += 1
            }
            if s < 3 {
                if lab { p[1 + s] += 1 } else { q[1 + s] += 1 }
            }
            r += 1;
        }
        for (g, x) in u2.iter_mut().enumerate() {
            *x += 2 * negb[g] * p[g] + p[g] * q[g];
            negb[g] += q[g];
        }
    }
    u2
}

/// Pairwise `2·U`: `outer` and `inner` are the two classes' keys, each ordered by item segment
/// (`ob`, `ib`: segment boundaries). With positives outer (`POS`), each positive adds
/// `2·#{neg < it} + #{neg == it}`; with negatives outer, each negative adds
/// `2·#{pos > it} + #{pos == it}` (the same sum). Group 1 + s counts only pairs within segment s.
fn pairs_scalar<const POS: bool>(outer: &[u32], ob: &[usize; 5], inner: &[u32], ib: &[usize; 5]) -> [u64; G] {
    let count = |x: u32, ys: &[u32]| -> u64 {
        ys.iter()
            .map(|&y| {
                let (lt, eq) = if POS { (y < x, y == x) } else { (y > x, y == x) };
                2 * lt as u64 + eq as u64
            })
            .sum()
    };
    let mut u2 = [0u64; G];
    for s in 0..4 {
        for &x in &outer[ob[s]..ob[s + 1]] {
            u2[0] += count(x, inner);
            if s < 3 {
                u2[1 + s] += count(x, &inner[ib[s]..ib[s + 1]]);
            }
        }
    }
    u2
}

/// Lanes `lo..hi` of the 16-lane chunk that starts at `base` (clipped).
#[cfg(target_arch = "x86_64")]
#[inline]
fn lane_range(lo: usize, hi: usize, base: usize) -> u32 {
    let below = |k: usize| -> u32 {
        let k = k.saturating_sub(base);
        if k >= 16 { 0xffff } else { (1u32 << k) - 1 }
    };
    below(hi) & !below(lo)
}

/// [`pairs_scalar`] with AVX-512F, for inner classes of one chunk (any length works): per chunk of 16 inner keys and outer key `x`, one compare
/// gives the lanes `< x` and one the lanes `≤ x` (for positive `x`; mirrored for negative), so
/// `2·lt + eq = popcnt(lt) + popcnt(le)`, both masks packed in one 32-bit word; the same word
/// masked with the chunk's lanes of `x`'s segment gives the segment's count. No branch depends
/// on the segments: the per-segment counts of a chunk add up in 21-bit fields of one word
/// (at most `32·outer.len()` each, so `outer.len()` < 2^16).
///
/// # Safety
/// The CPU must support AVX-512F and POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn pairs_avx512<const POS: bool>(outer: &[u32], ob: &[usize; 5], inner: &[u32], ib: &[usize; 5]) -> [u64; G] {
    use std::arch::x86_64::*;
    debug_assert!(outer.len() < 1 << 16);
    const F: u64 = (1 << 21) - 1;
    let len = inner.len();
    let mut u2 = [0u64; G];
    let mut base = 0;
    while base < len {
        let valid = lane_range(0, len, base) as u16;
        let sm: [u32; 4] = std::array::from_fn(|s| {
            let m = if s < 3 { lane_range(ib[s], ib[s + 1], base) } else { 0 };
            m | (m << 16)
        });
        // SAFETY: base < len, and the masked load reads only the lanes below len.
        let y = unsafe { _mm512_maskz_loadu_epi32(valid, inner.as_ptr().add(base) as *const i32) };
        let (mut a0, mut acc) = (0u64, 0u64);
        for (i, &x) in outer.iter().enumerate() {
            let s = (i >= ob[1]) as usize + (i >= ob[2]) as usize + (i >= ob[3]) as usize;
            let xv = _mm512_set1_epi32(x as i32);
            let (lt, le) = if POS {
                (_mm512_mask_cmplt_epu32_mask(valid, y, xv), _mm512_mask_cmple_epu32_mask(valid, y, xv))
            } else {
                (_mm512_mask_cmplt_epu32_mask(valid, xv, y), _mm512_mask_cmple_epu32_mask(valid, xv, y))
            };
            let v = lt as u32 | ((le as u32) << 16);
            a0 += v.count_ones() as u64;
            acc += ((v & sm[s]).count_ones() as u64) << (21 * s);
        }
        u2[0] += a0;
        u2[1] += acc & F;
        u2[2] += (acc >> 21) & F;
        u2[3] += (acc >> 42) & F;
        base += 16;
    }
    u2
}

/// [`pairs_avx512`] for inner classes of more than one chunk: per (outer segment, chunk) the
/// compares add into per-lane counters (no scalar work per compare); the counters are summed
/// into one vector for group 0 and one per segment (masked to the segment's lanes), and reduced
/// once at the end.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pairs_avx512_wide<const POS: bool>(
    outer: &[u32],
    ob: &[usize; 5],
    inner: &[u32],
    ib: &[usize; 5],
) -> [u64; G] {
    use std::arch::x86_64::*;
    debug_assert!(outer.len() < 1 << 16);
    let len = inner.len();
    let one = _mm512_set1_epi32(1);
    let mut all = _mm512_setzero_si512();
    let mut u2 = [0u64; G];
    for s in 0..4 {
        let xs = &outer[ob[s]..ob[s + 1]];
        if xs.is_empty() {
            continue;
        }
        let mut same = _mm512_setzero_si512();
        let mut base = 0;
        while base < len {
            let valid = lane_range(0, len, base) as u16;
            // SAFETY: base < len, and the masked load reads only the lanes below len.
            let y = unsafe { _mm512_maskz_loadu_epi32(valid, inner.as_ptr().add(base) as *const i32) };
            let (mut lt_n, mut le_n) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for &x in xs {
                let xv = _mm512_set1_epi32(x as i32);
                let (lt, le) = if POS {
                    (_mm512_mask_cmplt_epu32_mask(valid, y, xv), _mm512_mask_cmple_epu32_mask(valid, y, xv))
                } else {
                    (_mm512_mask_cmplt_epu32_mask(valid, xv, y), _mm512_mask_cmple_epu32_mask(valid, xv, y))
                };
                lt_n = _mm512_mask_add_epi32(lt_n, lt, lt_n, one);
                le_n = _mm512_mask_add_epi32(le_n, le, le_n, one);
            }
            let c = _mm512_add_epi32(lt_n, le_n);
            all = _mm512_add_epi32(all, c);
            if s < 3 {
                let sm = lane_range(ib[s], ib[s + 1], base) as u16;
                same = _mm512_mask_add_epi32(same, sm, same, c);
            }
            base += 16;
        }
        if s < 3 {
            u2[1 + s] = _mm512_reduce_add_epi32(same) as u32 as u64;
        }
    }
    u2[0] = _mm512_reduce_add_epi32(all) as u32 as u64;
    u2
}

/// Dense ids of row keys: open addressing with linear probing over (key, id + 1) slots (id 0 =
/// empty; the key in the slot, so a probe is one load), load ≤ 1/2, grown on demand;
/// `keys[id]` is the id's key.
#[derive(Default)]
struct DenseIds {
    slots: Vec<(u64, u32)>,
    keys: Vec<u64>,
}

impl DenseIds {
    /// Empties the table, sized for about `rows` rows.
    fn reset(&mut self, rows: usize) {
        self.slots.clear();
        self.slots.resize((rows / 4).next_power_of_two().max(64), (0, 0));
        self.keys.clear();
    }
    /// The id of `k` (a new one for a new key, with a zero row of `cnt`; the table grows as
    /// needed). Out of line: [`count_rows`] checks the home slot itself first.
    #[inline(never)]
    fn id(&mut self, k: u64, cnt: &mut Vec<[u32; 8]>) -> u32 {
        // Keys are fmix64 hashes; the low bits index the table (the top bits chose the bucket).
        let mut mask = self.slots.len() - 1;
        let mut i = k as usize & mask;
        loop {
            let (sk, s) = self.slots[i];
            if sk == k && s != 0 {
                return s - 1;
            }
            if s == 0 {
                if (self.keys.len() + 1) * 2 > self.slots.len() {
                    self.grow();
                    mask = self.slots.len() - 1;
                    i = k as usize & mask;
                    continue;
                }
                self.keys.push(k);
                cnt.push([0; 8]);
                self.slots[i] = (k, self.keys.len() as u32);
                return self.keys.len() as u32 - 1;
            }
            i = (i + 1) & mask;
        }
    }
    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        self.slots = vec![(0, 0); cap];
        let mask = cap - 1;
        for (d, &kk) in self.keys.iter().enumerate() {
            let mut j = kk as usize & mask;
            while self.slots[j].1 != 0 {
                j = (j + 1) & mask;
            }
            self.slots[j] = (kk, d as u32 + 1);
        }
    }
}

/// A run of the global score distribution: `(score key, positives, negatives)`.
pub(crate) type Run = (u32, u64, u64);

/// Exact global AUC of model `j` over all rows of `table` (counting sort on the top 16 key bits,
/// then exact counts within each bin), optionally with the sorted runs (for partial files).
/// Global AUC of every model. With several models and threads, models run side by side (at
/// most one per thread, so at most that many scatter buffers of 4 bytes a row exist at once),
/// each scattering its rows in one pass; a single model splits its bins among the threads.
pub(crate) fn global_aucs(table: &Table, want_runs: bool) -> Vec<(AucCounts, Option<Vec<Run>>)> {
    let m = table.layout.m;
    let t = rayon::current_num_threads().max(1);
    if m == 1 || t == 1 {
        return (0..m).map(|j| global_auc(table, j, want_runs, t.clamp(1, 4))).collect();
    }
    let mut out = Vec::with_capacity(m);
    let models: Vec<usize> = (0..m).collect();
    for group in models.chunks(t) {
        let parts = (t / group.len()).clamp(1, 4);
        out.extend(group.par_iter().map(|&j| global_auc(table, j, want_runs, parts)).collect::<Vec<_>>());
    }
    out
}

fn global_auc(table: &Table, j: usize, want_runs: bool, parts: usize) -> (AucCounts, Option<Vec<Run>>) {
    let m = table.layout.m;
    let blocks: Vec<&Block> = table.buckets.iter().flatten().collect();
    let hist = &table.hist[j * BINS..(j + 1) * BINS];
    let total: u64 = hist.iter().sum();
    let mut start = vec![0usize; BINS + 1];
    for i in 0..BINS {
        start[i + 1] = start[i] + hist[i] as usize;
    }
    // Split the bins into a few contiguous parts of similar size; each part scans all rows and
    // keeps those of its bins (safe disjoint writes; a few extra reads of memory).
    let mut cuts = vec![0usize];
    for p in 1..parts {
        let target = total as usize * p / parts;
        let c = start.partition_point(|&s| s < target).min(BINS);
        cuts.push(c.max(*cuts.last().unwrap_or(&0)));
    }
    cuts.push(BINS);
    // Huge pages: the scatter below writes at 2^16 places of this array at once.
    let mut lo_buf = super::table::HugeBuf::<u32>::written(total as usize);
    let lo = lo_buf.as_mut_slice();
    {
        let mut slices: Vec<(usize, usize, &mut [u32])> = Vec::new();
        let mut rest: &mut [u32] = &mut *lo;
        for w in cuts.windows(2) {
            let (b0, b1) = (w[0], w[1]);
            let len = start[b1] - start[b0];
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            slices.push((b0, b1, head));
            rest = tail;
        }
        slices.into_par_iter().for_each(|(b0, b1, out)| {
            let base = start[b0];
            let mut off: Vec<usize> = start[b0..b1].iter().map(|s| s - base).collect();
            for b in &blocks {
                for i in 0..b.len() {
                    let k = f32_key(b.scores[i * m + j]);
                    let bin = (k >> 16) as usize;
                    if bin >= b0 && bin < b1 {
                        let o = &mut off[bin - b0];
                        out[*o] = ((k & 0xffff) << 1) | (b.flags[i] & LABEL) as u32;
                        *o += 1;
                    }
                }
            }
        });
    }
    // Per bin: exact counts per low key.
    let mut bins: Vec<(usize, &mut [u32])> = Vec::new();
    let mut rest: &mut [u32] = lo;
    for (b, &h) in hist.iter().enumerate() {
        let len = h as usize;
        if len == 0 {
            continue;
        }
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        bins.push((b, head));
        rest = tail;
    }
    let per: Vec<(u64, u64, u128, Vec<Run>)> = bins
        .into_par_iter()
        .map_init(Vec::new, |c: &mut Vec<u32>, (bin, xs)| {
            let mut runs: Vec<Run> = Vec::new();
            let (mut p, mut n, mut u2) = (0u64, 0u64, 0u128);
            let mut emit = |low: u32, rp: u64, rn: u64| {
                u2 += 2 * n as u128 * rp as u128 + rp as u128 * rn as u128;
                p += rp;
                n += rn;
                if want_runs {
                    runs.push((((bin as u32) << 16) | low, rp, rn));
                }
            };
            if xs.len() > 1 << 13 {
                // Counting (the buffer is reused across bins and left zeroed).
                c.resize(1 << 17, 0);
                for &x in xs.iter() {
                    c[x as usize] += 1;
                }
                // 16 counters (8 low keys, one cache line) at a time: most lines of a bin are
                // empty, and an OR of the line skips them.
                for (line, cs) in c.chunks_exact_mut(16).enumerate() {
                    if cs.iter().fold(0, |a, &x| a | x) == 0 {
                        continue;
                    }
                    for (i, pair) in cs.chunks_exact_mut(2).enumerate() {
                        let (rn, rp) = (pair[0] as u64, pair[1] as u64);
                        if rn + rp > 0 {
                            pair[0] = 0;
                            pair[1] = 0;
                            emit((line * 8 + i) as u32, rp, rn);
                        }
                    }
                }
            } else {
                xs.sort_unstable();
                let mut i = 0;
                while i < xs.len() {
                    let low = xs[i] >> 1;
                    let (mut rp, mut rn) = (0u64, 0u64);
                    while i < xs.len() && xs[i] >> 1 == low {
                        if xs[i] & 1 == 1 {
                            rp += 1
                        } else {
                            rn += 1
                        }
                        i += 1;
                    }
                    emit(low, rp, rn);
                }
            }
            (p, n, u2, runs)
        })
        .collect();
    let mut c = AucCounts::default();
    let mut all_runs = want_runs.then(Vec::new);
    for (p, n, u2, runs) in per {
        c.u2 += u2 + 2 * c.neg as u128 * p as u128;
        c.pos += p;
        c.neg += n;
        if let Some(r) = all_runs.as_mut() {
            r.extend(runs);
        }
    }
    (c, all_runs)
}

/// AUC counts of runs from several partials (sorted here; equal keys combined).
pub(crate) fn auc_of_runs(mut runs: Vec<Run>) -> AucCounts {
    runs.sort_unstable_by_key(|r| r.0);
    let mut acc = crate::metrics::RunAccumulator::default();
    let mut i = 0;
    while i < runs.len() {
        let k = runs[i].0;
        let (mut p, mut n) = (0, 0);
        while i < runs.len() && runs[i].0 == k {
            p += runs[i].1;
            n += runs[i].2;
            i += 1;
        }
        acc.run(p, n);
    }
    acc.counts()
}

/// The replicate part of a bootstrap draw: `fmix64(seed + (r + 1)·φ)`.
#[inline]
pub(crate) fn poisson_seed(seed: u64, r: u32) -> u64 {
    fmix64(seed.wrapping_add((r as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Poisson(1) bootstrap multiplicity of user `key` in the replicate with `rseed`
/// ([`poisson_seed`]): inverse CDF of `fmix64(key ^ rseed)`. Counter-based, so it does not
/// depend on shards or row order.
#[inline]
pub(crate) fn poisson1(key: u64, rseed: u64, cdf: &[u64]) -> u32 {
    let u = fmix64(key ^ rseed);
    cdf.iter().position(|&c| u < c).unwrap_or(cdf.len()) as u32
}

/// `cdf[k] = P(X ≤ k)·2^64` for X ~ Poisson(1), k = 0..=15 (saturating).
pub(crate) fn poisson1_cdf() -> Vec<u64> {
    let mut out = Vec::new();
    let (mut pk, mut cum) = ((-1f64).exp(), 0f64);
    for k in 0..16u32 {
        cum += pk;
        pk /= (k + 1) as f64;
        let v = cum * 18446744073709551616.0;
        out.push(if v >= 18446744073709551615.0 { u64::MAX } else { v as u64 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn dense_ids_number_keys_in_first_seen_order() {
        // 20,000 rows of 3,000 keys (the table grows several times), key 0 included.
        let keys: Vec<u64> =
            (0..20_000u64).map(|i| fmix64(i * 7 % 3000) & if i % 3000 == 0 { 0 } else { !0 }).collect();
        let mut ids = DenseIds::default();
        ids.reset(keys.len());
        let mut cnt = Vec::new();
        let got: Vec<u32> = keys.iter().map(|&k| ids.id(k, &mut cnt)).collect();
        assert_eq!(cnt.len(), 3000);
        let mut seen = std::collections::HashMap::new();
        for (&k, &d) in keys.iter().zip(&got) {
            let n = seen.len() as u32;
            assert_eq!(*seen.entry(k).or_insert(n), d, "key {k:#x}");
            assert_eq!(ids.keys[d as usize], k);
        }
        assert_eq!(ids.keys.len(), 3000);
        assert!(ids.slots.len() >= 6000, "load ≤ 1/2");
    }

    #[test]
    fn order_by_key_sorts_hashes_and_clustered_keys() {
        let mut hist = Vec::new();
        let mut out = Vec::new();
        for (bits, keys) in [
            (8, (0..3000u64).map(|i| fmix64(i) >> 8 | 0xab << 56).collect::<Vec<_>>()),
            // All in one bin (low bits only), key 0 included: the per-bin sort does the work.
            (8, (0..500u64).map(|i| i * 7919 % 1000).collect()),
            (1, vec![5]),
            (3, vec![]),
        ] {
            order_by_key(&keys, bits, &mut out, &mut hist);
            let got: Vec<u64> = out.iter().map(|&d| keys[d as usize]).collect();
            let mut want = keys.clone();
            want.sort_unstable();
            assert_eq!(got, want);
        }
    }

    /// A random user: keys class by class ([`class_of`]) and the rows of each class.
    fn random_user(rng: &mut ChaCha8Rng) -> (Vec<u32>, [u32; 8]) {
        let n = rng.random_range(1..=200usize);
        // Few distinct scores (heavy ties) to many; a label rate from none to all.
        let distinct = [1u32, 2, 3, 7, 50, 100_000][rng.random_range(0..6)];
        let rate = [0.0, 0.03, 0.3, 0.5, 0.9, 1.0][rng.random_range(0..6)];
        let seg_w: [u32; 4] = std::array::from_fn(|_| rng.random_range(0..4));
        let mut rows: Vec<(usize, u32)> = (0..n)
            .map(|_| {
                let lab = rng.random::<f64>() < rate;
                let tot: u32 = seg_w.iter().sum::<u32>().max(1);
                let mut t = rng.random_range(0..tot);
                let mut s = 3;
                for (i, &w) in seg_w.iter().enumerate() {
                    if t < w {
                        s = i;
                        break;
                    }
                    t -= w;
                }
                let score = rng.random_range(0..distinct) as f32 * 0.37 - 5.0;
                (((lab as usize) << 2) | s, f32_key(score))
            })
            .collect();
        rows.sort_by_key(|r| r.0); // class by class (keys within a class unordered)
        let mut cnt = [0u32; 8];
        for r in &rows {
            cnt[r.0] += 1;
        }
        (rows.iter().map(|r| r.1).collect(), cnt)
    }

    /// `2·U` per group by definition: every (positive, negative) pair.
    fn oracle(keys: &[u32], cnt: &[u32; 8]) -> [u64; G] {
        let mut cls = Vec::new();
        for (c, &k) in cnt.iter().enumerate() {
            cls.extend(std::iter::repeat_n(c, k as usize));
        }
        let mut u2 = [0u64; G];
        for (i, &kp) in keys.iter().enumerate().filter(|&(i, _)| cls[i] >= 4) {
            for (j, &kn) in keys.iter().enumerate().filter(|&(j, _)| cls[j] < 4) {
                let v = 2 * (kn < kp) as u64 + (kn == kp) as u64;
                u2[0] += v;
                if cls[i] & 3 == cls[j] & 3 && cls[i] & 3 < 3 {
                    u2[1 + (cls[i] & 3)] += v;
                }
            }
        }
        u2
    }

    #[test]
    fn sort_and_pairs_paths_and_kernels_agree_on_random_users() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut tmp = Vec::new();
        let mut kernels = vec![Kernel::Scalar];
        let best = Kernel::detect();
        if best != Kernel::Scalar {
            kernels.push(best);
        } else {
            eprintln!("skipped the AVX-512 kernel: this CPU lacks AVX-512F");
        }
        let (mut one_class, mut both_orders) = (0, [0; 2]);
        for u in 0..3000 {
            let (keys, cnt) = random_user(&mut rng);
            let want = oracle(&keys, &cnt);
            let (p, q): (u32, u32) = (cnt[4..].iter().sum(), cnt[..4].iter().sum());
            if p == 0 || q == 0 {
                one_class += 1;
            } else {
                both_orders[(p <= q) as usize] += 1;
            }
            assert_eq!(user_u2(&keys, &cnt, Kernel::Scalar, Some(Path::Sort), &mut tmp), want, "user {u}: sort");
            if p > 0 && q > 0 {
                // Every kernel in both orientations, whichever class is smaller.
                let (neg, posk) = keys.split_at(q as usize);
                let (mut nb, mut pb) = ([0usize; 5], [0usize; 5]);
                for s in 0..4 {
                    nb[s + 1] = nb[s] + cnt[s] as usize;
                    pb[s + 1] = pb[s] + cnt[4 + s] as usize;
                }
                assert_eq!(pairs_scalar::<true>(posk, &pb, neg, &nb), want, "user {u}: scalar, positives outer");
                assert_eq!(pairs_scalar::<false>(neg, &nb, posk, &pb), want, "user {u}: scalar, negatives outer");
                #[cfg(target_arch = "x86_64")]
                if best != Kernel::Scalar {
                    // SAFETY: the CPU has AVX-512F and POPCNT (`Kernel::detect`).
                    let got = unsafe {
                        [
                            pairs_avx512::<true>(posk, &pb, neg, &nb),
                            pairs_avx512::<false>(neg, &nb, posk, &pb),
                            pairs_avx512_wide::<true>(posk, &pb, neg, &nb),
                            pairs_avx512_wide::<false>(neg, &nb, posk, &pb),
                        ]
                    };
                    assert_eq!(got, [want; 4], "user {u}: AVX-512 kernels");
                }
            }
            for &k in &kernels {
                assert_eq!(user_u2(&keys, &cnt, k, Some(Path::Pairs), &mut tmp), want, "user {u}: pairs {k:?}");
                assert_eq!(user_u2(&keys, &cnt, k, None, &mut tmp), want, "user {u}: chosen {k:?}");
            }
        }
        assert!(one_class > 100 && both_orders.iter().all(|&c| c > 100), "{one_class} {both_orders:?}");
    }

    #[test]
    fn choose_pairs_small_users_and_sorts_big_ones() {
        assert_eq!(choose(3, 17), Path::Pairs);
        assert_eq!(choose(40, 160), Path::Pairs);
        assert_eq!(choose(2000, 8000), Path::Sort);
    }

    /// Time per user of both paths for a few sizes (tuning [`choose`]; not a test of speed):
    /// `cargo test --release -p learnrec-eval pairs_vs_sort_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pairs_vs_sort_timing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let kernel = Kernel::detect();
        let mut tmp = Vec::new();
        for n in [8usize, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
            for rate in [0.05, 0.25, 0.5] {
                let users: Vec<(Vec<u32>, [u32; 8])> = (0..(400_000 / n).max(20))
                    .map(|_| {
                        let mut rows: Vec<(usize, u32)> = (0..n)
                            .map(|_| {
                                let c = ((rng.random::<f64>() < rate) as usize) << 2 | rng.random_range(0..4usize);
                                (c, f32_key(rng.random::<f32>()))
                            })
                            .collect();
                        rows.sort_by_key(|r| r.0);
                        let mut cnt = [0u32; 8];
                        rows.iter().for_each(|r| cnt[r.0] += 1);
                        (rows.iter().map(|r| r.1).collect(), cnt)
                    })
                    .collect();
                let mut t = [0f64; 2];
                let mut sink = 0u64;
                for (i, path) in [Path::Sort, Path::Pairs].into_iter().enumerate() {
                    let t0 = std::time::Instant::now();
                    for (k, c) in &users {
                        sink = sink.wrapping_add(user_u2(k, c, kernel, Some(path), &mut tmp)[0]);
                    }
                    t[i] = t0.elapsed().as_secs_f64() * 1e9 / users.len() as f64;
                }
                let c = &users[0].1;
                let (p, q): (u32, u32) = (c[4..].iter().sum(), c[..4].iter().sum());
                println!(
                    "n {n:5} rate {rate:.2}: sort {:9.0} ns, pairs {:9.0} ns, chosen {:?} ({sink})",
                    t[0],
                    t[1],
                    choose(p as usize, q as usize)
                );
            }
        }
    }

    /// Synthetic buckets like the `fusion-eval` benchmark's (log-normal rows per user, mean 20;
    /// a label rate per user; a rounded and a continuous score), shuffled into blocks.
    fn synthetic_buckets(buckets: usize, users: usize, seed: u64, extra: bool) -> (Vec<Vec<Block>>, Layout) {
        use rand_distr::{Distribution, LogNormal, Normal};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ln = LogNormal::new(2.276, 1.2).unwrap_or_else(|_| unreachable!());
        let nz = Normal::new(0.0f64, 1.0).unwrap_or_else(|_| unreachable!());
        let layout = Layout { m: 2, weight: extra, bits: buckets.trailing_zeros() };
        let mut out = Vec::new();
        for b in 0..buckets {
            let mut rows: Vec<(u64, u8, [f32; 2], f32)> = Vec::new();
            for u in 0..users {
                let key = (fmix64((b * users + u) as u64) >> layout.bits) | ((b as u64) << (64 - layout.bits));
                let n = 1 + ln.sample(&mut rng) as usize;
                let bias = nz.sample(&mut rng) * 0.8 - 1.5;
                for _ in 0..n {
                    let truth = bias + nz.sample(&mut rng);
                    let lab = rng.random::<f64>() < 1.0 / (1.0 + (-truth).exp());
                    let s0 = 1.0 / (1.0 + (-(truth + 1.2 * nz.sample(&mut rng))).exp());
                    let s1 = 1.0 / (1.0 + (-(truth + 0.9 * nz.sample(&mut rng))).exp());
                    // With `extra`: user segments (mostly one per user, some rows differing or
                    // missing) and weights.
                    let us = if !extra {
                        NONE
                    } else if rng.random_range(0..10) == 0 {
                        rng.random_range(0..4)
                    } else {
                        (u % 4) as u8
                    };
                    let f = super::super::table::flags(lab, rng.random_range(0..4), us);
                    let w = if extra { rng.random_range(0..5) as f32 * 0.25 } else { 0.0 };
                    rows.push((key, f, [((s0 * 1000.0).round() / 1000.0) as f32, s1 as f32], w));
                }
            }
            for i in (1..rows.len()).rev() {
                let j = rng.random_range(0..=i);
                rows.swap(i, j);
            }
            out.push(
                rows.chunks(512)
                    .map(|c| {
                        let keys: Vec<u64> = c.iter().map(|r| r.0).collect();
                        let flags: Vec<u8> = c.iter().map(|r| r.1).collect();
                        let scores: Vec<f32> = c.iter().flat_map(|r| r.2).collect();
                        let weights: Vec<f32> = if extra { c.iter().map(|r| r.3).collect() } else { Vec::new() };
                        Block::from_slices(&keys, &flags, &scores, &weights)
                    })
                    .collect(),
            );
        }
        (out, layout)
    }

    #[test]
    fn bucket_users_match_a_direct_computation() {
        let (buckets, layout) = synthetic_buckets(2, 300, 11, true);
        assert_ne!(
            buckets[0].iter().map(|b| b.len()).sum::<usize>(),
            buckets[1].iter().map(|b| b.len()).sum::<usize>()
        );
        let mut kernels = vec![Kernel::Scalar];
        if Kernel::detect() != Kernel::Scalar {
            kernels.push(Kernel::detect());
        }
        // One scratch for all buckets and kernels (buffers reused with stale contents).
        let mut sc = Scratch::default();
        for (bi, bucket) in buckets.iter().enumerate() {
            // Rows of each user in file order: (flags, scores, weight).
            let mut by_user: std::collections::BTreeMap<u64, Vec<(u8, [f32; 2], f32)>> = Default::default();
            for b in bucket {
                for i in 0..b.len() {
                    by_user.entry(b.keys[i]).or_default().push((
                        b.flags[i],
                        [b.scores[2 * i], b.scores[2 * i + 1]],
                        b.weights[i],
                    ));
                }
            }
            let copy = || -> Vec<Block> { bucket.to_vec() };
            let got: Vec<Users> = kernels
                .iter()
                .map(|&k| {
                    bucket_users(copy(), layout, &UserSegments::Column, k, &mut sc).unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            let u = &got[0];
            assert_eq!(u.key, by_user.keys().copied().collect::<Vec<_>>(), "bucket {bi}: users in key order");
            let mut conflicts = 0;
            for (ui, rows) in by_user.values().enumerate() {
                let (mut useg, mut uflags) = (NONE, 0);
                let mut want_rows = [0u32; G];
                let mut want_pos = [0u32; G];
                let mut w = vec![];
                for &(f, _, wt) in rows {
                    let (lab, s) = ((f & LABEL) as u32, iseg_of(f) as usize);
                    want_rows[0] += 1;
                    want_pos[0] += lab;
                    if s < 3 {
                        want_rows[1 + s] += 1;
                        want_pos[1 + s] += lab;
                    }
                    let us = useg_of(f);
                    if useg != NONE && us != useg {
                        uflags |= U_CONFLICT;
                    }
                    useg = useg.min(us);
                    w.push((wt.to_bits(), s));
                }
                conflicts += (uflags != 0) as usize;
                w.sort_unstable();
                let mut ws = [0f64; G];
                for (wb, s) in w {
                    ws[0] += f32::from_bits(wb) as f64;
                    if s < 3 {
                        ws[1 + s] += f32::from_bits(wb) as f64;
                    }
                }
                assert_eq!(
                    (u.rows[ui], u.pos[ui], u.useg[ui], u.uflags[ui]),
                    (want_rows, want_pos, useg, uflags),
                    "user {ui}"
                );
                assert_eq!(u.wsum[ui], ws, "user {ui}");
                for j in 0..2 {
                    let mut want = [0u64; G];
                    for &(fp, sp, _) in rows.iter().filter(|r| r.0 & LABEL != 0) {
                        for &(fq, sq, _) in rows.iter().filter(|r| r.0 & LABEL == 0) {
                            let (kp, kq) = (f32_key(sp[j]), f32_key(sq[j]));
                            let v = 2 * (kq < kp) as u64 + (kq == kp) as u64;
                            want[0] += v;
                            let s = iseg_of(fp) as usize;
                            if s < 3 && iseg_of(fq) as usize == s {
                                want[1 + s] += v;
                            }
                        }
                    }
                    for (g, &x) in want.iter().enumerate() {
                        assert_eq!(u.u2[(ui * G + g) * 2 + j], x, "user {ui} group {g} model {j}");
                    }
                }
            }
            assert!(conflicts > 10, "bucket {bi}: {conflicts} users with conflicting segments");
            for o in &got[1..] {
                assert_eq!(o, u, "bucket {bi}: kernels agree");
            }
        }
    }

    /// One thread's time per row of the per-user stage on synthetic buckets (not a test of
    /// speed): `cargo test --release -p learnrec-eval bucket_users_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bucket_users_timing() {
        let (buckets, layout) = synthetic_buckets(32, 2000, 3, false);
        let rows: usize = buckets.iter().flatten().map(|b| b.len()).sum();
        let kernel = Kernel::detect();
        let mut sc = Scratch::default();
        let mut best = f64::MAX;
        for _ in 0..10 {
            let bs: Vec<Vec<Block>> = buckets
                .iter()
                .map(|b| b.iter().map(|x| Block::from_slices(&x.keys, &x.flags, &x.scores, &[])).collect())
                .collect();
            let t0 = std::time::Instant::now();
            let mut users = 0;
            for b in bs {
                users += bucket_users(b, layout, &UserSegments::None, kernel, &mut sc).map(|u| u.len()).unwrap_or(0);
            }
            best = best.min(t0.elapsed().as_secs_f64() * 1e9 / rows as f64);
            assert_eq!(users, 64_000);
        }
        println!("{rows} rows: best of 10: {best:.1} ns/row");
    }
}
