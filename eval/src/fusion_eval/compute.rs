//! The heavy part: per-user AUC statistics (per bucket, in parallel) and the exact global AUC.

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
    // Buckets in windows of a few per thread, each window appended before the next starts: the
    // per-bucket results of all buckets never exist beside the merged arrays (memory).
    let window = rayon::current_num_threads().max(1) * 4;
    let mut all = Users::new(layout.m);
    let mut buckets = buckets.into_iter();
    loop {
        let w: Vec<Vec<Block>> = buckets.by_ref().take(window).collect();
        if w.is_empty() {
            break;
        }
        let parts: Vec<Users> = w.into_par_iter().map(|b| bucket_users(b, layout, seg)).collect::<Result<_>>()?;
        for p in parts {
            all.append(p);
        }
    }
    Ok(all)
}

fn bucket_users(blocks: Vec<Block>, l: Layout, seg: &UserSegments) -> Result<Users> {
    let m = l.m;
    let n: usize = blocks.iter().map(|b| b.len()).sum();
    if n > u32::MAX as usize {
        return Err(Error::Invalid(format!("{n} rows in one user bucket: more than 2^32")));
    }
    let mut keys = Vec::with_capacity(n);
    let mut fl = Vec::with_capacity(n);
    let mut sc = Vec::with_capacity(n * m);
    let mut wt = Vec::with_capacity(if l.weight { n } else { 0 });
    for b in blocks {
        keys.extend_from_slice(&b.keys);
        fl.extend_from_slice(&b.flags);
        sc.extend_from_slice(&b.scores);
        wt.extend_from_slice(&b.weights);
    }
    // Group rows by user: a small open-addressing table gives each distinct key a dense id, the
    // few distinct keys are sorted, and a counting sort puts the rows in user-key order
    // (O(rows) instead of sorting every row by key).
    let (ukeys, first, perm) = group_by_key(&keys);
    drop(keys);
    let mut out = Users::new(m);
    out.key.reserve(ukeys.len());
    let mut tmp: Vec<u64> = Vec::new();
    let mut wtmp: Vec<(u32, u8)> = Vec::new();
    for (ui, &key) in ukeys.iter().enumerate() {
        if let UserSegments::History { counts, .. } = seg
            && let Some(&k) = ukeys.get(ui + 4)
        {
            counts.prefetch(k); // a random probe of a table bigger than the caches
        }
        let rows_ix = &perm[first[ui] as usize..first[ui + 1] as usize];
        let mut rows = [0u32; G];
        let mut pos = [0u32; G];
        let mut useg = NONE;
        let mut uflags = 0u8;
        for &i in rows_ix {
            let f = fl[i as usize];
            let lab = (f & LABEL) as u32;
            rows[0] += 1;
            pos[0] += lab;
            let s = iseg_of(f);
            if s < 3 {
                rows[1 + s as usize] += 1;
                pos[1 + s as usize] += lab;
            }
            let us = useg_of(f);
            if useg != NONE && us != useg {
                uflags |= U_CONFLICT;
            }
            useg = useg.min(us);
        }
        match seg {
            UserSegments::None => useg = NONE,
            UserSegments::Column => {}
            UserSegments::History { counts, thresholds } => {
                let c = counts.get(key);
                if c.is_none() {
                    uflags |= U_ABSENT;
                }
                useg = super::table::seg_code(thresholds.user(c.unwrap_or(0)));
            }
        }
        if l.weight {
            wtmp.clear();
            wtmp.extend(rows_ix.iter().map(|&i| (wt[i as usize].to_bits(), iseg_of(fl[i as usize]))));
            // Canonical order, so the sum does not depend on the order rows were read in.
            wtmp.sort_unstable();
            let mut ws = [0f64; G];
            for &(w, s) in &wtmp {
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
            // (score key, flags) packed in one u64: one integer sort (equal keys are one run,
            // whatever the order of their flags).
            tmp.clear();
            tmp.extend(rows_ix.iter().map(|&i| (f32_key(sc[i as usize * m + j]) as u64) << 8 | fl[i as usize] as u64));
            tmp.sort_unstable();
            let mut negb = [0u64; G];
            let mut u2 = [0u64; G];
            let mut r = 0;
            while r < tmp.len() {
                let k = tmp[r] >> 8;
                let mut p = [0u64; G];
                let mut q = [0u64; G];
                while r < tmp.len() && tmp[r] >> 8 == k {
                    let f = tmp[r] as u8;
                    let lab = (f & LABEL) != 0;
                    let s = iseg_of(f);
                    if lab {
                        p[0] += 1
                    } else {
                        q[0] += 1
                    }
                    if s < 3 {
                        if lab { p[1 + s as usize] += 1 } else { q[1 + s as usize] += 1 }
                    }
                    r += 1;
                }
                for (g, x) in u2.iter_mut().enumerate() {
                    *x += 2 * negb[g] * p[g] + p[g] * q[g];
                    negb[g] += q[g];
                }
            }
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

/// Groups row keys: the distinct keys in increasing order, the start of each key's rows in
/// `perm` (`first[u]..first[u + 1]`, with a final end entry), and `perm` = row indices grouped
/// by key (increasing row index within a key).
pub(crate) fn group_by_key(keys: &[u64]) -> (Vec<u64>, Vec<u32>, Vec<u32>) {
    // Open addressing over slot -> dense id + 1 (0 = empty); load ≤ 1/2, grown on demand.
    let mut cap = (keys.len() / 8).next_power_of_two().max(64);
    let mut slots: Vec<u32> = vec![0; cap];
    let mut uk: Vec<u64> = Vec::new();
    let mut row_id: Vec<u32> = Vec::with_capacity(keys.len());
    for &k in keys {
        // Keys are fmix64 hashes; the low bits index the table (the top bits chose the bucket).
        let mut mask = cap - 1;
        let mut i = k as usize & mask;
        let id = loop {
            let s = slots[i];
            if s == 0 {
                if (uk.len() + 1) * 2 > cap {
                    cap *= 2;
                    slots = vec![0; cap];
                    mask = cap - 1;
                    for (d, &kk) in uk.iter().enumerate() {
                        let mut j = kk as usize & mask;
                        while slots[j] != 0 {
                            j = (j + 1) & mask;
                        }
                        slots[j] = d as u32 + 1;
                    }
                    i = k as usize & mask;
                    continue;
                }
                uk.push(k);
                slots[i] = uk.len() as u32;
                break uk.len() as u32 - 1;
            }
            if uk[s as usize - 1] == k {
                break s - 1;
            }
            i = (i + 1) & mask;
        };
        row_id.push(id);
    }
    drop(slots);
    let nu = uk.len();
    let mut by_key: Vec<u32> = (0..nu as u32).collect();
    by_key.sort_unstable_by_key(|&d| uk[d as usize]);
    let mut rank = vec![0u32; nu];
    for (r, &d) in by_key.iter().enumerate() {
        rank[d as usize] = r as u32;
    }
    let mut first = vec![0u32; nu + 1];
    for &d in &row_id {
        first[rank[d as usize] as usize + 1] += 1;
    }
    for r in 0..nu {
        first[r + 1] += first[r];
    }
    let mut next: Vec<u32> = first[..nu].to_vec();
    let mut perm = vec![0u32; keys.len()];
    for (i, &d) in row_id.iter().enumerate() {
        let r = rank[d as usize] as usize;
        perm[next[r] as usize] = i as u32;
        next[r] += 1;
    }
    let ukeys = by_key.iter().map(|&d| uk[d as usize]).collect();
    (ukeys, first, perm)
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
    let mut lo_buf = super::table::HugeBuf::<u32>::zeroed(total as usize);
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
                for low in 0..(1usize << 16) {
                    let (rn, rp) = (c[low << 1] as u64, c[(low << 1) | 1] as u64);
                    if rn + rp > 0 {
                        c[low << 1] = 0;
                        c[(low << 1) | 1] = 0;
                        emit(low as u32, rp, rn);
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

    #[test]
    fn group_by_key_sorts_keys_and_groups_rows() {
        // 20,000 rows of 3,000 keys (the table grows several times), key 0 included.
        let keys: Vec<u64> =
            (0..20_000u64).map(|i| fmix64(i * 7 % 3000) & if i % 3000 == 0 { 0 } else { !0 }).collect();
        let (uk, first, perm) = group_by_key(&keys);
        let mut want: Vec<u64> = keys.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(uk, want);
        assert_eq!(first.len(), uk.len() + 1);
        assert_eq!(*first.last().unwrap() as usize, keys.len());
        let mut seen = vec![false; keys.len()];
        for (u, &k) in uk.iter().enumerate() {
            let rows = &perm[first[u] as usize..first[u + 1] as usize];
            assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows of a key in file order");
            for &r in rows {
                assert_eq!(keys[r as usize], k);
                assert!(!seen[r as usize]);
                seen[r as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }
}
