//! Partial files: the sufficient statistics of one user shard, and their merge.
//!
//! Layout (little-endian): magic `LRFEVP02` (version 2: integer ids keyed by value, see
//! [`super::id_key`]); `u64` length + JSON header ([`Header`]); `u64`
//! users, then the per-user arrays (key u64, segment u8, flags u8, rows 4×u32, positives 4×u32,
//! [weight sums 4×f64], `2U` 4·m×u64); `u8` has-items, `u64` items, (key u64, bits u8) each;
//! per model `u64` runs, (score key u32, positives u64, negatives u64) each; magic `LRFEEND1`.

use super::compute::{G, Run, Users, auc_of_runs};
use super::report::{SegmentSource, State};
use super::table::KeyMap;
use crate::segment::Thresholds;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LRFEVP02";
/// Version 1 keyed integer ids by their decimal text: its user keys do not match version 2's.
const MAGIC_V1: &[u8; 8] = b"LRFEVP01";
const END: &[u8; 8] = b"LRFEEND1";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    models: Vec<String>,
    user_src: SegmentSource,
    item_src: SegmentSource,
    has_weight: bool,
    has_items: bool,
    thresholds: Thresholds,
}

pub(crate) fn write(path: &Path, st: &State, runs: &[Vec<Run>]) -> Result<()> {
    let h = Header {
        models: st.models.clone(),
        user_src: st.user_src,
        item_src: st.item_src,
        has_weight: st.has_weight,
        has_items: st.items.is_some(),
        thresholds: st.thresholds,
    };
    let hj = serde_json::to_vec(&h).map_err(|e| Error::Invalid(format!("partial header: {e}")))?;
    let u = &st.users;
    crate::atomic::write_with(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&(hj.len() as u64).to_le_bytes())?;
        w.write_all(&hj)?;
        w.write_all(&(u.len() as u64).to_le_bytes())?;
        for i in 0..u.len() {
            w.write_all(&u.key[i].to_le_bytes())?;
            w.write_all(&[u.useg[i], u.uflags[i]])?;
            for x in u.rows[i].iter().chain(u.pos[i].iter()) {
                w.write_all(&x.to_le_bytes())?;
            }
            if st.has_weight {
                for x in &u.wsum[i] {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
            for x in &u.u2[i * G * u.m..(i + 1) * G * u.m] {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        match &st.items {
            Some(it) => {
                w.write_all(&[1])?;
                w.write_all(&(it.len() as u64).to_le_bytes())?;
                // Sorted: the file does not depend on the order rows were read in.
                let mut v = it.clone();
                v.sort_unstable();
                for (k, b) in v {
                    w.write_all(&k.to_le_bytes())?;
                    w.write_all(&[b])?;
                }
            }
            None => w.write_all(&[0])?,
        }
        for r in runs {
            w.write_all(&(r.len() as u64).to_le_bytes())?;
            for (k, p, n) in r {
                w.write_all(&k.to_le_bytes())?;
                w.write_all(&p.to_le_bytes())?;
                w.write_all(&n.to_le_bytes())?;
            }
        }
        w.write_all(END)
    })
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
    path: &'a Path,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() - self.i < n {
            return Err(Error::file(self.path, "truncated partial file"));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn count(&mut self, each: usize) -> Result<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(each) > self.b.len() - self.i {
            return Err(Error::file(self.path, "truncated or corrupt partial file (count too large)"));
        }
        Ok(n)
    }
}

fn read(path: &Path) -> Result<(Header, State, Vec<Vec<Run>>)> {
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut c = Cur { b: &b, i: 0, path };
    match c.take(8).ok() {
        Some(x) if x == &MAGIC[..] => {}
        Some(x) if x == &MAGIC_V1[..] => {
            return Err(Error::file(
                path,
                "a version-1 partial file (an older fusion-eval, other user keys): emit it again with this version",
            ));
        }
        _ => {
            return Err(Error::file(path, "not a fusion-eval partial file (bad magic)"));
        }
    }
    let hl = c.count(1)?;
    let h: Header =
        serde_json::from_slice(c.take(hl)?).map_err(|e| Error::file(path, format!("partial header: {e}")))?;
    let m = h.models.len();
    let per_user = 10 + 32 + if h.has_weight { 32 } else { 0 } + 8 * G * m;
    let n = c.count(per_user)?;
    let mut u = Users::new(m);
    for _ in 0..n {
        u.key.push(c.u64()?);
        u.useg.push(c.u8()?);
        u.uflags.push(c.u8()?);
        let mut r = [0u32; G];
        for x in &mut r {
            *x = c.u32()?;
        }
        let mut p = [0u32; G];
        for x in &mut p {
            *x = c.u32()?;
        }
        u.rows.push(r);
        u.pos.push(p);
        if h.has_weight {
            let mut w = [0f64; G];
            for x in &mut w {
                *x = f64::from_bits(c.u64()?);
            }
            u.wsum.push(w);
        }
        for _ in 0..G * m {
            u.u2.push(c.u64()?);
        }
    }
    let items = if c.u8()? == 1 {
        let n = c.count(9)?;
        let mut it: Vec<(u64, u8)> = Vec::with_capacity(n);
        for _ in 0..n {
            let k = c.u64()?;
            let v = c.u8()?;
            it.push((k, v));
        }
        Some(it)
    } else {
        None
    };
    let mut runs = Vec::with_capacity(m);
    for _ in 0..m {
        let n = c.count(20)?;
        let mut r = Vec::with_capacity(n);
        for _ in 0..n {
            r.push((c.u32()?, c.u64()?, c.u64()?));
        }
        runs.push(r);
    }
    if c.take(8).ok() != Some(&END[..]) || c.i != b.len() {
        return Err(Error::file(path, "truncated or corrupt partial file (bad end marker)"));
    }
    let st = State {
        models: h.models.clone(),
        users: u,
        auc: Vec::new(),
        items,
        user_src: h.user_src,
        item_src: h.item_src,
        has_weight: h.has_weight,
        thresholds: h.thresholds,
    };
    Ok((h, st, runs))
}

pub(crate) fn merge(paths: &[PathBuf]) -> Result<State> {
    let Some(first) = paths.first() else {
        return Err(Error::Invalid("merge: no partial files given".into()));
    };
    let (h0, mut st, mut runs) = read(first)?;
    // Items are shared across user shards: their bits are combined.
    let mut items: Option<KeyMap<u8>> = st.items.take().map(|v| v.into_iter().collect());
    for p in &paths[1..] {
        let (h, s, r) = read(p)?;
        if h != h0 {
            return Err(Error::file(
                p,
                format!(
                    "partial does not match {} (score columns, segments, weights or thresholds differ)",
                    first.display()
                ),
            ));
        }
        st.users.append(s.users);
        if let (Some(a), Some(b)) = (items.as_mut(), s.items) {
            for (k, v) in b {
                *a.entry(k).or_insert(0) |= v;
            }
        }
        for (a, b) in runs.iter_mut().zip(r) {
            a.extend(b);
        }
    }
    st.items = items.map(|m| m.into_iter().collect());
    // Canonical user order (as a single run produces it).
    let u = &st.users;
    let mut order: Vec<usize> = (0..u.len()).collect();
    order.sort_unstable_by_key(|&i| u.key[i]);
    if let Some(w) = order.windows(2).find(|w| u.key[w[0]] == u.key[w[1]]) {
        return Err(Error::Invalid(format!(
            "merge: user key {:016x} appears in more than one partial: shards must keep each user's rows together",
            u.key[w[0]]
        )));
    }
    let m = u.m;
    let mut s = Users::new(m);
    for &i in &order {
        s.key.push(u.key[i]);
        s.useg.push(u.useg[i]);
        s.uflags.push(u.uflags[i]);
        s.rows.push(u.rows[i]);
        s.pos.push(u.pos[i]);
        if st.has_weight {
            s.wsum.push(u.wsum[i]);
        }
        s.u2.extend_from_slice(&u.u2[i * G * m..(i + 1) * G * m]);
    }
    st.users = s;
    st.auc = runs.into_iter().map(auc_of_runs).collect();
    Ok(st)
}
