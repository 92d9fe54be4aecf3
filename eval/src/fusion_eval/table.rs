//! Columnar row storage grouped by user hash, and the id hash everything is keyed on.
//!
//! Rows are appended by reader threads into fixed-size blocks, one open block per (thread,
//! bucket); the bucket is the top bits of the user key, so each bucket holds complete users and
//! buckets in order hold users in increasing key order. Per row: user key (8 B), flags (1 B),
//! `M` f32 scores (4·M B) and an optional f32 weight — 17 B for two models.

use crate::segment::Segment;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Rows per block.
pub(crate) const BLOCK: usize = 512;

/// Flag bits of a row: label, item segment (2 bits, 3 = none), user segment (2 bits, 3 = none).
pub(crate) const LABEL: u8 = 1;
pub(crate) const NONE: u8 = 3;
#[inline]
pub(crate) fn flags(label: bool, iseg: u8, useg: u8) -> u8 {
    label as u8 | (iseg << 1) | (useg << 3)
}
#[inline]
pub(crate) fn iseg_of(f: u8) -> u8 {
    (f >> 1) & 3
}
#[inline]
pub(crate) fn useg_of(f: u8) -> u8 {
    (f >> 3) & 3
}
/// Segment code (0 cold-start, 1 long-tail, 2 regular).
pub(crate) fn seg_code(s: Segment) -> u8 {
    match s {
        Segment::ColdStart => 0,
        Segment::LongTail => 1,
        Segment::Regular => 2,
    }
}
pub(crate) fn seg_of_code(c: u8) -> Option<Segment> {
    match c {
        0 => Some(Segment::ColdStart),
        1 => Some(Segment::LongTail),
        2 => Some(Segment::Regular),
        _ => None,
    }
}

/// The 64-bit key of an id. Stable across runs and machines (shards depend on it):
///
/// * an id whose text is a canonical decimal `i64` (`0`, `42`, `-7`; no sign `+`, no leading
///   zeros, no `-0`) has the key [`int_key`] of its value, so `42` in a Parquet INT64 column and
///   `"42"` in a CSV are the same user;
/// * any other id: `fmix64(FNV-1a-64(bytes))`.
#[inline]
pub fn id_key(bytes: &[u8]) -> u64 {
    match canonical_int(bytes) {
        Some(v) => int_key(v),
        None => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in bytes {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            fmix64(h)
        }
    }
}

/// `id_key(&data[r.0..r.1])`, for ids found in a larger buffer (a file, a line): an id of 1–8
/// digits (no leading zero) with 8 readable bytes from its start is read 8 bytes at once (SWAR:
/// no loop whose length varies with the id, so no mispredicted branch per row).
#[inline(always)]
pub(crate) fn id_key_at(data: &[u8], r: (usize, usize)) -> u64 {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let n = r.1.wrapping_sub(r.0);
    if (1..=8).contains(&n)
        && let Some(w) = data.get(r.0..).and_then(|d| d.first_chunk::<8>())
        && (w[0] != b'0' || n == 1)
    {
        // The n id bytes moved to the top, the bytes below them filled with '0' (leading
        // zeros of an 8-digit number whose most significant digit is the lowest byte).
        let w = u64::from_le_bytes(*w) << (64 - 8 * n as u32) | ZEROS.checked_shr(8 * n as u32).unwrap_or(0);
        // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not carry out of the nibble.
        let hi = 0xf0f0_f0f0_f0f0_f0f0u64;
        if w & hi == ZEROS && w.wrapping_add(0x0606_0606_0606_0606) & hi == ZEROS {
            let mut x = w - ZEROS;
            x = (x.wrapping_mul(10) + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
            x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_ffff_0000_ffff;
            x = (x.wrapping_mul(10000) + (x >> 32)) & 0xffff_ffff;
            return int_key(x as i64);
        }
    }
    id_key_slow(&data[r.0..r.1])
}

/// [`id_key`] out of line (the rare ids [`id_key_at`] does not read at once).
#[inline(never)]
fn id_key_slow(id: &[u8]) -> u64 {
    id_key(id)
}

/// The value of a canonical decimal `i64` text (see [`id_key`]), else `None`.
#[inline]
fn canonical_int(b: &[u8]) -> Option<i64> {
    let (neg, d) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    // At most 19 digits; a leading zero only as the whole number "0" (and not "-0").
    if d.is_empty() || d.len() > 19 || (d[0] == b'0' && (d.len() > 1 || neg)) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + x as u64; // ≤ 19 digits: no overflow of u64
    }
    if neg { (v <= 1 << 63).then(|| (v as i64).wrapping_neg()) } else { i64::try_from(v).ok() }
}

/// The key of an integer id: `fmix64(v ⊕ 0x9e3779b97f4a7c15)` (a bijection: distinct integer
/// ids never share a key; ids are hashed on every row of a Parquet file).
#[inline]
pub fn int_key(v: i64) -> u64 {
    fmix64(v as u64 ^ 0x9e37_79b9_7f4a_7c15)
}

/// MurmurHash3 64-bit finaliser.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The shard of a user key among `n` shards: `key mod n`.
#[inline]
pub fn shard_of(key: u64, n: u32) -> u32 {
    (key % n as u64) as u32
}

/// Identity hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);
impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}
pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Row layout shared by all blocks of one evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Number of score columns (models).
    pub m: usize,
    /// Whether rows carry a weight.
    pub weight: bool,
    /// log2 of the number of buckets.
    pub bits: u32,
}

impl Layout {
    pub fn buckets(&self) -> usize {
        1 << self.bits
    }
    #[inline]
    pub fn bucket(&self, key: u64) -> usize {
        if self.bits == 0 { 0 } else { (key >> (64 - self.bits)) as usize }
    }
    /// Bucket bits for about `rows` rows (≈64k rows a bucket, 2..=512 buckets). Few buckets keep
    /// the readers' open blocks (one write stream per bucket) in the caches; a bucket of 64k to
    /// a few 100k rows is still grouped by user within the L2 cache.
    pub fn bits_for(rows: u64) -> u32 {
        let b = (rows / 65536).max(1);
        (64 - b.leading_zeros()).clamp(1, 9)
    }
}

/// A block of rows (columnar). Its columns are carved from a [`Carver`]'s slabs.
#[derive(Debug)]
pub(crate) struct Block {
    pub keys: SlabVec<u64>,
    pub flags: SlabVec<u8>,
    /// Row-major scores: `scores[r * m + j]`.
    pub scores: SlabVec<f32>,
    pub weights: SlabVec<f32>,
}

impl Block {
    fn new(l: &Layout, c: &mut Carver) -> Block {
        Block {
            keys: c.take(BLOCK),
            flags: c.take(BLOCK),
            scores: c.take(BLOCK * l.m),
            weights: c.take(if l.weight { BLOCK } else { 0 }),
        }
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// A block holding these rows (tests).
    #[cfg(test)]
    pub(crate) fn from_slices(keys: &[u64], flags: &[u8], scores: &[f32], weights: &[f32]) -> Block {
        fn col<T: Copy>(c: &mut Carver, x: &[T]) -> SlabVec<T> {
            let mut v = c.take(x.len());
            for &y in x {
                v.push(y);
            }
            v
        }
        let c = &mut Carver::default();
        Block { keys: col(c, keys), flags: col(c, flags), scores: col(c, scores), weights: col(c, weights) }
    }
}

#[cfg(test)]
impl Clone for Block {
    fn clone(&self) -> Block {
        Block::from_slices(&self.keys, &self.flags, &self.scores, &self.weights)
    }
}

/// Bytes of one slab of block columns.
const SLAB: usize = 4 << 20;

/// A large anonymous mapping (huge-page advice) that block columns are carved from: one
/// allocation per 4 MiB of rows instead of three heap allocations per block, so the rows cost
/// few page faults and no heap growth calls. When the last column carved from it is dropped, the
/// mapping goes back to [`SLAB_POOL`] for the next slab (first touch of fresh memory is the
/// expensive part: about 1 s per GiB on the 2-core benchmark VM, against 0.05 s to rewrite it).
struct Slab {
    /// The mapping's start; every access goes through this pointer (the map is only owned).
    base: std::ptr::NonNull<u8>,
    map: Option<memmap2::MmapMut>,
}

/// Mappings of dropped slabs (each `SLAB` bytes, already touched), reused by new slabs while the
/// pool is open ([`slab_pool`]); at most `SLAB_POOL_MAX` are kept (the rest are unmapped).
static SLAB_POOL: std::sync::Mutex<(bool, Vec<memmap2::MmapMut>)> = std::sync::Mutex::new((false, Vec::new()));
const SLAB_POOL_MAX: usize = 256;

/// Keeps the slab pool open while it lives (dropped slabs are kept for reuse); when dropped, the
/// pool is closed and what it holds is unmapped (no more slabs will be carved, so dropped rows
/// give their memory back). Concurrent evaluations in one process only share the reuse.
pub(crate) struct SlabPoolOpen(());

impl SlabPoolOpen {
    pub(crate) fn new() -> SlabPoolOpen {
        slab_pool(true);
        SlabPoolOpen(())
    }
}

impl Drop for SlabPoolOpen {
    fn drop(&mut self) {
        slab_pool(false);
    }
}

fn slab_pool(open: bool) {
    let mut p = SLAB_POOL.lock().unwrap_or_else(|e| e.into_inner());
    p.0 = open;
    if !open {
        let maps = std::mem::take(&mut p.1);
        drop(p);
        drop(maps);
    }
}

// SAFETY: a slab is plain memory; disjoint parts of it are owned by `SlabVec`s, which only access
// their own part through `base`.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

impl Slab {
    fn new(bytes: usize) -> Slab {
        let pooled = if bytes == SLAB { SLAB_POOL.lock().unwrap_or_else(|e| e.into_inner()).1.pop() } else { None };
        let mut map = pooled.unwrap_or_else(|| anon_map(bytes));
        let base = std::ptr::NonNull::new(map.as_mut_ptr()).unwrap_or_else(|| unreachable!("mmap returned null"));
        Slab { base, map: Some(map) }
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(m) = self.map.take()
            && m.len() == SLAB
        {
            let mut pool = SLAB_POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.0 && pool.1.len() < SLAB_POOL_MAX {
                pool.1.push(m);
            }
        }
    }
}

/// A growable list of values in slab chunks (no reallocation, no copy; the chunks' memory goes
/// back to the slab pool when the list is dropped).
#[derive(Default)]
pub(crate) struct SlabList<T: Copy> {
    chunks: Vec<SlabVec<T>>,
}

impl<T: Copy> SlabList<T> {
    /// Values per chunk.
    const CHUNK: usize = 8192;
    #[inline]
    pub fn push(&mut self, x: T, c: &mut Carver) {
        if let Some(v) = self.chunks.last_mut()
            && v.len < v.cap
        {
            // SAFETY: `len < cap`, inside the chunk's part of its slab.
            unsafe { v.ptr.as_ptr().add(v.len).write(x) };
            v.len += 1;
        } else {
            self.push_chunk(x, c);
        }
    }
    #[cold]
    #[inline(never)]
    fn push_chunk(&mut self, x: T, c: &mut Carver) {
        let mut v = c.take(Self::CHUNK);
        v.push(x);
        self.chunks.push(v);
    }
    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// A fixed-capacity column of a [`Block`] in a [`Slab`] (a `Vec` without reallocation).
pub(crate) struct SlabVec<T: Copy> {
    /// Keeps the slab (the memory behind `ptr`) alive.
    _slab: std::sync::Arc<Slab>,
    ptr: std::ptr::NonNull<T>,
    len: usize,
    cap: usize,
}

// SAFETY: the column owns its part of the slab exclusively (carved once, never shared) and keeps
// the slab alive; `T` is plain data.
unsafe impl<T: Copy + Send> Send for SlabVec<T> {}
unsafe impl<T: Copy + Sync> Sync for SlabVec<T> {}

impl<T: Copy> SlabVec<T> {
    /// Appends `x`. Panics when full (blocks are closed at `BLOCK` rows).
    #[inline]
    pub fn push(&mut self, x: T) {
        assert!(self.len < self.cap, "slab column full");
        // SAFETY: `len < cap`, and `ptr..ptr + cap` is this column's part of the slab.
        unsafe { self.ptr.as_ptr().add(self.len).write(x) };
        self.len += 1;
    }
}

impl<T: Copy> std::ops::Deref for SlabVec<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` elements were written by `push`; the slab is alive (`_slab`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<'a, T: Copy> IntoIterator for &'a SlabVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for SlabVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Carves block columns from slabs, one slab at a time (per sink, so per thread).
#[derive(Default)]
pub(crate) struct Carver {
    slab: Option<std::sync::Arc<Slab>>,
    /// Bytes of the current slab used.
    used: usize,
}

impl Carver {
    /// A column with room for `n` values (8-byte aligned).
    pub(crate) fn take<T: Copy>(&mut self, n: usize) -> SlabVec<T> {
        const { assert!(std::mem::align_of::<T>() <= 8) };
        let bytes = (n * std::mem::size_of::<T>()).next_multiple_of(8);
        let slab = match &self.slab {
            Some(s) if self.used + bytes <= SLAB => s.clone(),
            _ => {
                let s = std::sync::Arc::new(Slab::new(SLAB.max(bytes)));
                self.slab = Some(s.clone());
                self.used = 0;
                s
            }
        };
        // SAFETY: `used + bytes` ≤ the slab's size, so the part is inside the mapping; the mapping
        // is page-aligned and `used` a multiple of 8, so the pointer is aligned for `T`.
        let ptr = unsafe { std::ptr::NonNull::new_unchecked(slab.base.as_ptr().add(self.used) as *mut T) };
        self.used += bytes;
        SlabVec { _slab: slab, ptr, len: 0, cap: n }
    }
}

/// Item bookkeeping: bit `s` = seen in segment `s`, bit 3 = seen without segment, bit 4 = absent
/// from HISTORY.
pub(crate) const ITEM_NOSEG: u8 = 1 << 3;
pub(crate) const ITEM_ABSENT: u8 = 1 << 4;

/// Bins of the global-AUC histogram (top 16 bits of the score key).
pub(crate) const BINS: usize = 1 << 16;

/// One slot of an [`ItemTable`] (16 bytes, so a probe touches one cache line).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct ItemSlot {
    key: u64,
    /// Bit set noted for the item (see [`ITEM_NOSEG`]).
    bits: u8,
    /// 0 = empty slot; else `0x80 | absent << 2 | segment code` of the item's lookup.
    seg: u8,
}

/// The items of one reader thread: an open-addressing table (linear probing, load ≤ 0.7) keyed
/// by item key, holding the bits noted in [`Sink::items`] and the item's segment lookup, so each
/// row costs one probe (a `HashMap` plus a cache cost two or three cache misses a row).
#[derive(Debug, Default)]
pub(crate) struct ItemTable {
    slots: HugeBuf<ItemSlot>,
    len: usize,
}

impl ItemTable {
    /// The slot of `key`, inserting it with `init()`'s segment code and absence if new.
    #[inline]
    fn slot(&mut self, key: u64, init: impl FnOnce() -> (u8, bool)) -> &mut ItemSlot {
        // Load ≤ 0.7: at millions of items the table is memory-bound either way, and smaller.
        if self.len * 10 >= self.slots.len() * 7 {
            self.grow();
        }
        let slots = self.slots.as_mut_slice();
        let mask = slots.len() - 1;
        let mut i = key as usize & mask;
        loop {
            let s = slots[i];
            if s.seg == 0 {
                let (seg, absent) = init();
                slots[i] = ItemSlot { key, bits: 0, seg: 0x80 | (absent as u8) << 2 | (seg & 3) };
                self.len += 1;
                return &mut slots[i];
            }
            if s.key == key {
                return &mut slots[i];
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(1 << 12);
        let old = std::mem::replace(&mut self.slots, HugeBuf::zeroed(cap));
        let slots = self.slots.as_mut_slice();
        let mask = cap - 1;
        for &s in old.as_slice().iter().filter(|s| s.seg != 0) {
            let mut i = s.key as usize & mask;
            while slots[i].seg != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = s;
        }
    }

    /// Starts loading `key`'s home slot into the cache (readers call it a few rows ahead: the
    /// table outgrows the caches, and a probe is otherwise a wait on memory).
    #[inline]
    fn prefetch(&self, key: u64) {
        #[cfg(target_arch = "x86_64")]
        if !self.slots.is_empty() {
            let i = key as usize & (self.slots.len() - 1);
            // SAFETY: prefetching is a hint; the pointer is in bounds of `slots`.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(self.slots.as_slice().as_ptr().add(i) as *const i8);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    /// `(item key, bits)` of every item.
    fn entries(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.slots.as_slice().iter().filter(|s| s.seg != 0).map(|s| (s.key, s.bits))
    }
}

/// A zero-initialised array of `T`. From 2 MiB on it lives in an anonymous memory map advised to
/// use transparent huge pages: the hash tables here are probed at random, and with 4 KiB pages
/// most probes of a table bigger than the caches also miss the TLB. Smaller arrays come from the
/// heap, which reuses freed memory (a fresh map costs a page fault per 4 KiB touched).
///
/// `T` must be a plain-old-data type for which all-zero bytes are a valid value (the tables'
/// slot types: integers and tuples of integers).
pub(crate) struct HugeBuf<T: Copy> {
    map: Option<memmap2::MmapMut>,
    heap: Vec<T>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Copy> std::fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HugeBuf(len {})", self.len)
    }
}

impl<T: Copy> Default for HugeBuf<T> {
    fn default() -> Self {
        HugeBuf { map: None, heap: Vec::new(), len: 0, _t: std::marker::PhantomData }
    }
}

/// Arrays from this size on are memory-mapped with huge-page advice.
const HUGE_MIN: usize = 2 << 20;

/// A zeroed anonymous mapping of `bytes` advised to use transparent huge pages (advice only:
/// without them it still works, a little slower). Panics only if the system is out of address
/// space (as `Vec`).
fn anon_map(bytes: usize) -> memmap2::MmapMut {
    let map = memmap2::MmapMut::map_anon(bytes).unwrap_or_else(|e| panic!("out of memory ({bytes} bytes): {e}"));
    #[cfg(target_os = "linux")]
    {
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    map
}

impl<T: Copy> HugeBuf<T> {
    /// `len` zeroed elements that the caller overwrites in full before reading them (no
    /// prefault: the writes touch the memory, on whichever threads do them).
    pub fn written(len: usize) -> HugeBuf<T> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        if bytes < HUGE_MIN {
            return HugeBuf::zeroed(len);
        }
        HugeBuf { map: Some(anon_map(bytes)), heap: Vec::new(), len, _t: std::marker::PhantomData }
    }
    /// `len` zeroed elements. Panics only if the system is out of address space (as `Vec`).
    pub fn zeroed(len: usize) -> HugeBuf<T> {
        if len == 0 {
            return HugeBuf::default();
        }
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        if bytes < HUGE_MIN {
            let mut heap: Vec<T> = Vec::with_capacity(len);
            // SAFETY: the capacity is `len`; all-zero bytes are a valid `T` (see the type docs).
            unsafe {
                std::ptr::write_bytes(heap.as_mut_ptr(), 0, len);
                heap.set_len(len);
                // Allocation plus zeroing may become `calloc`, which leaves fresh pages
                // untouched: touch every page with a write here, as the mapped tables below
                // are (a table's first access is often a read).
                let p = heap.as_mut_ptr() as *mut u8;
                for off in (0..bytes).step_by(4096) {
                    std::ptr::write_volatile(p.add(off), 0);
                }
            }
            return HugeBuf { map: None, heap, len, _t: std::marker::PhantomData };
        }
        let mut map = anon_map(bytes);
        // Touch every page with a write now: a table's first access is often a read, which maps
        // the shared zero page, and the write after it then costs a second fault and a TLB
        // shootdown on every core running this process.
        for i in (0..bytes).step_by(4096) {
            map[i] = 0;
        }
        HugeBuf { map: Some(map), heap: Vec::new(), len, _t: std::marker::PhantomData }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match &self.map {
            // SAFETY: the map is page-aligned (≥ align_of::<T>() for the slot types used here),
            // holds `len * size_of::<T>()` bytes, starts zeroed (a valid `T`, see the type docs)
            // and is only written through `as_mut_slice` with valid `T`s.
            Some(m) => unsafe { std::slice::from_raw_parts(m.as_ptr() as *const T, self.len) },
            None => &self.heap,
        }
    }
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.map {
            // SAFETY: as in `as_slice`; `&mut self` makes the access unique.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut T, self.len) },
            None => &mut self.heap,
        }
    }
}

/// Counts per 64-bit key: an open-addressing table (linear probing, load ≤ 1/2, 16-byte slots),
/// used for the HISTORY counts (one probe per row; a `HashMap` entry costs more, and many
/// per-chunk maps cost a merge). Key 0 marks an empty slot, so its count is kept aside.
#[derive(Debug, Default)]
pub(crate) struct CountTable {
    slots: HugeBuf<(u64, u64)>,
    len: usize,
    zero: Option<u64>,
}

impl CountTable {
    /// An empty table with `slots` slots (a power of two, or 0 to start at the default size).
    pub fn with_slots(slots: usize) -> CountTable {
        CountTable { slots: HugeBuf::zeroed(slots), len: 0, zero: None }
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len + self.zero.is_some() as usize
    }
    /// The count of `key`, if the key was added.
    #[cfg(test)]
    pub fn get(&self, key: u64) -> Option<u64> {
        if key == 0 { self.zero } else { probe(self.slots.as_slice(), key).map(|x| x.1) }
    }
    /// The slots (`(key, count)`, key 0 = empty) and the count of key 0 (kept aside).
    pub fn parts(&self) -> (&[(u64, u64)], Option<u64>) {
        (self.slots.as_slice(), self.zero)
    }
    /// Adds `v` to the count of `key` (inserting the key with `v` if new).
    #[inline]
    pub fn add(&mut self, key: u64, v: u64) {
        if key == 0 {
            *self.zero.get_or_insert(0) += v;
            return;
        }
        if self.len * 2 >= self.slots.len() {
            self.grow();
        }
        let slots = self.slots.as_mut_slice();
        let mask = slots.len() - 1;
        let mut i = key as usize & mask;
        loop {
            let s = &mut slots[i];
            if s.0 == key {
                s.1 += v;
                return;
            }
            if s.0 == 0 {
                *s = (key, v);
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }
    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(1 << 12);
        let old = std::mem::replace(&mut self.slots, HugeBuf::zeroed(cap));
        let slots = self.slots.as_mut_slice();
        let mask = cap - 1;
        for &s in old.as_slice().iter().filter(|s| s.0 != 0) {
            let mut i = s.0 as usize & mask;
            while slots[i].0 != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = s;
        }
    }
    /// `(key, count)` of every key, in no particular order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.zero.map(|v| (0, v)).into_iter().chain(self.slots.as_slice().iter().filter(|s| s.0 != 0).copied())
    }
}

/// The slot index and count of a nonzero `key` in the slots of a [`CountTable`] (linear probing).
#[inline]
pub(crate) fn probe(slots: &[(u64, u64)], key: u64) -> Option<(usize, u64)> {
    if slots.is_empty() {
        return None;
    }
    let mask = slots.len() - 1;
    let mut i = key as usize & mask;
    loop {
        let (k, v) = slots[i];
        if k == key {
            return Some((i, v));
        }
        if k == 0 {
            return None;
        }
        i = (i + 1) & mask;
    }
}

/// A per-thread row sink.
pub(crate) struct Sink {
    pub layout: Layout,
    open: Vec<Option<Block>>,
    pub full: Vec<(usize, Block)>,
    /// Where this sink's blocks come from.
    carver: Carver,
    /// Items seen, with their bits (see [`ITEM_NOSEG`]); only when there is an item id column.
    items: ItemTable,
    pub rows: u64,
    /// Per model, rows per top-16-bit score-key bin (`hist[j * BINS + bin]`).
    pub hist: Vec<u64>,
    /// Items of HISTORY seen in this sink's rows: bit `i` = HISTORY item index `i` (see
    /// [`Sink::seen_history_item`]); empty until the first such item.
    pub seen: Vec<u64>,
}

impl Sink {
    pub fn new(layout: Layout) -> Sink {
        Sink {
            layout,
            open: (0..layout.buckets()).map(|_| None).collect(),
            full: Vec::new(),
            carver: Carver::default(),
            items: ItemTable::default(),
            rows: 0,
            hist: vec![0; layout.m * BINS],
            seen: Vec::new(),
        }
    }

    /// Notes a row of the HISTORY item with index `i` of `n` (a bitmap per thread: the item
    /// table is HISTORY's, read-only and shared, instead of one table per thread).
    #[inline]
    pub fn seen_history_item(&mut self, i: usize, n: usize) {
        if self.seen.is_empty() {
            self.seen = vec![0; n.div_ceil(64)];
        }
        self.seen[i >> 6] |= 1 << (i & 63);
    }

    /// Handles a row's item: its segment code and absence from HISTORY (`col` = the row's
    /// `item_segment` column, else `lookup()`, called once per item), and notes the item.
    #[inline]
    pub fn item_row(&mut self, key: u64, col: Option<u8>, lookup: impl FnOnce() -> (u8, bool)) -> (u8, bool) {
        let s = self.items.slot(key, || col.map_or_else(lookup, |c| (c, false)));
        let (seg, absent) = match col {
            Some(c) => (c, false),
            None => (s.seg & 3, s.seg & 4 != 0),
        };
        s.bits |= if seg < 3 { 1 << seg } else { ITEM_NOSEG } | if absent { ITEM_ABSENT } else { 0 };
        (seg, absent)
    }

    /// Prefetches the table slot of an item that a later row will note (see [`ItemTable::prefetch`]).
    #[inline]
    pub fn prefetch_item(&self, key: u64) {
        self.items.prefetch(key);
    }

    /// Prefetches where a later row of user `key` will be appended (its bucket's open block):
    /// rows go to thousands of blocks, too many write streams for the hardware prefetcher.
    #[inline]
    pub fn prefetch_push(&self, key: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(blk) = &self.open[self.layout.bucket(key)] {
            let n = blk.keys.len();
            // SAFETY: prefetching is a hint; the pointers are within (or one past) the blocks'
            // allocations (capacity BLOCK rows), computed with `wrapping_add`, never dereferenced.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(blk.keys.as_ptr().wrapping_add(n) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.scores.as_ptr().wrapping_add(n * self.layout.m) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.flags.as_ptr().wrapping_add(n) as *const i8);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    /// Appends one row (`scores.len() == m`).
    #[inline]
    pub fn push(&mut self, key: u64, flags: u8, scores: &[f32], weight: f32) {
        let l = self.layout;
        let b = l.bucket(key);
        let carver = &mut self.carver;
        let blk = self.open[b].get_or_insert_with(|| Block::new(&l, carver));
        blk.keys.push(key);
        blk.flags.push(flags);
        for (j, &x) in scores.iter().enumerate() {
            // Element by element: `extend_from_slice` of 1–2 floats is a `memcpy` call.
            blk.scores.push(x);
            self.hist[j * BINS + (crate::metrics::f32_key(x) >> 16) as usize] += 1;
        }
        if l.weight {
            blk.weights.push(weight);
        }
        self.rows += 1;
        if blk.keys.len() == BLOCK
            && let Some(full) = self.open[b].take()
        {
            self.full.push((b, full));
        }
    }

    /// Notes an item with its row's segment code (3 = none), not absent from any HISTORY.
    #[inline]
    pub fn item(&mut self, key: u64, iseg: u8) {
        self.item_row(key, Some(iseg), || (NONE, false));
    }
}

/// All rows, grouped into buckets.
pub(crate) struct Table {
    pub layout: Layout,
    pub buckets: Vec<Vec<Block>>,
    /// `(item key, bits)`, each key once (see [`super::report::State::items`]).
    pub items: Option<Vec<(u64, u8)>>,
    /// Per model, rows per score-key bin (see [`Sink::hist`]).
    pub hist: Vec<u64>,
}

impl Table {
    /// Combines the sinks of all threads; `seen` = more `(item key, bits)`: the HISTORY items
    /// of the sinks' bitmaps, each once and none of them in a sink's item table.
    pub fn from_sinks(layout: Layout, sinks: Vec<Sink>, has_items: bool, seen: Vec<(u64, u8)>) -> Table {
        let mut buckets: Vec<Vec<Block>> = (0..layout.buckets()).map(|_| Vec::new()).collect();
        let mut items: KeyMap<u8> = KeyMap::default();
        let mut hist = vec![0u64; layout.m * BINS];
        for s in sinks {
            for (a, b) in hist.iter_mut().zip(&s.hist) {
                *a += b;
            }
            for (b, blk) in s.full {
                buckets[b].push(blk);
            }
            for (b, blk) in s.open.into_iter().enumerate() {
                if let Some(blk) = blk.filter(|x| x.len() > 0) {
                    buckets[b].push(blk);
                }
            }
            if has_items {
                items.reserve(s.items.len);
                for (k, v) in s.items.entries() {
                    *items.entry(k).or_insert(0) |= v;
                }
            }
        }
        let items = has_items.then(|| {
            let mut all = seen;
            all.extend(items);
            all
        });
        Table { layout, buckets, items, hist }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_key_matches_text_key() {
        for v in [0i64, 7, 9, 10, 42, 99, 100, 101, -3, -10, -100, i64::MAX, i64::MIN, 1234567890123, 10_000_000] {
            assert_eq!(int_key(v), id_key(v.to_string().as_bytes()), "{v}");
            assert_eq!(canonical_int(v.to_string().as_bytes()), Some(v));
        }
        // Not canonical integers: hashed as text, so distinct from the integer's key.
        for t in [
            "007",
            "-0",
            "+7",
            "",
            "-",
            "1e3",
            "7 ",
            "4.0",
            "9223372036854775808",
            "-9223372036854775809",
            "12345678901234567890",
            "u42",
        ] {
            assert_eq!(canonical_int(t.as_bytes()), None, "{t}");
        }
        assert_ne!(id_key(b"007"), id_key(b"7"));
        assert_ne!(id_key(b"-0"), id_key(b"0"));
        // Distinct small integers get distinct keys (fmix64 is a bijection); none is 0.
        let mut ks: Vec<u64> = (-1000i64..100_000).map(int_key).collect();
        ks.sort_unstable();
        ks.dedup();
        assert_eq!(ks.len(), 101_000);
        assert!(ks[0] != 0);
    }

    #[test]
    fn id_key_at_equals_id_key() {
        let fixed =
            ["0", "7", "00", "01", "10", "99999999", "12345678", "123456789", "-1", "1a", "a1", "", "/", ":", "9:"];
        let mut ids: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x = fmix64(x.wrapping_add(1));
            let len = (x % 11) as usize;
            // Mostly digits, sometimes a byte just outside '0'..='9' or a leading zero.
            let t: String = (0..len)
                .map(|k| match (x >> (5 * k + 8)) % 16 {
                    0 => '/',
                    1 => ':',
                    2 => 'x',
                    d => char::from(b'0' + (d % 10) as u8),
                })
                .collect();
            ids.push(t);
        }
        for id in &ids {
            // The id at every offset of a buffer, with and without 8 readable bytes after it.
            for pad in [0usize, 3, 8] {
                let mut buf = b"12,".to_vec();
                buf.extend_from_slice(id.as_bytes());
                buf.extend(std::iter::repeat_n(b'5', pad));
                let r = (3, 3 + id.len());
                assert_eq!(id_key_at(&buf, r), id_key(id.as_bytes()), "`{id}` + {pad}");
            }
        }
    }

    #[test]
    fn count_table_adds_like_a_map() {
        let mut t = CountTable::default();
        let mut m: std::collections::HashMap<u64, u64> = Default::default();
        for i in 0..50_000u64 {
            // Key 0 and colliding low bits included.
            let k = if i % 97 == 0 { 0 } else { (i % 20_000) << 20 | (i % 3) };
            t.add(k, i % 5);
            *m.entry(k).or_insert(0) += i % 5;
        }
        assert_eq!(t.len(), m.len());
        for (&k, &v) in &m {
            assert_eq!(t.get(k), Some(v), "key {k}");
        }
        assert_eq!(t.get(7 << 40), None);
        assert_eq!(t.iter().count(), t.len());
        assert_eq!(t.iter().map(|x| x.1).sum::<u64>(), m.values().sum::<u64>());
    }

    #[test]
    fn slab_lists_and_columns_keep_their_values() {
        let _pool = SlabPoolOpen::new();
        let mut c = Carver::default();
        // Three lists interleaved (chunks of different lists share slabs), several chunks each,
        // and more than one slab in all.
        let mut lists: Vec<SlabList<u64>> = (0..3).map(|_| SlabList::default()).collect();
        let n = 3 * SLAB / 8 / 3;
        for i in 0..n as u64 {
            lists[(i % 3) as usize].push(fmix64(i), &mut c);
        }
        for (l, list) in lists.iter().enumerate() {
            let want: Vec<u64> = (0..n as u64).filter(|i| i % 3 == l as u64).map(fmix64).collect();
            assert!(list.iter().copied().eq(want), "list {l}");
        }
        drop(lists);
        // Columns carved after the lists were dropped (from pooled slabs) start empty.
        let mut v: SlabVec<f32> = c.take(4);
        assert!(v.is_empty());
        v.push(1.5);
        v.push(-2.0);
        assert_eq!(&v[..], &[1.5, -2.0]);
        let full = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut w: SlabVec<u8> = c.take(1);
            w.push(1);
            w.push(2);
        }));
        assert!(full.is_err(), "pushing past the capacity panics");
    }

    #[test]
    fn flags_roundtrip() {
        let f = flags(true, 2, 1);
        assert_eq!((f & LABEL, iseg_of(f), useg_of(f)), (1, 2, 1));
        let f = flags(false, NONE, NONE);
        assert_eq!((f & LABEL, iseg_of(f), useg_of(f)), (0, 3, 3));
    }

    #[test]
    fn item_table_notes_every_item_once_with_its_bits() {
        let l = Layout { m: 1, weight: false, bits: 1 };
        let mut s = Sink::new(l);
        let mut lookups = 0;
        // 10,000 items (enough to grow the table several times), key 0 included, each seen 3x.
        for round in 0..3u64 {
            for k in 0..10_000u64 {
                let key = fmix64(k) & if k == 0 { 0 } else { u64::MAX };
                let (seg, absent) = s.item_row(key, None, || {
                    lookups += 1;
                    ((k % 3) as u8, k % 7 == 0)
                });
                assert_eq!((seg, absent), ((k % 3) as u8, k % 7 == 0), "round {round} item {k}");
            }
        }
        assert_eq!(lookups, 10_000, "one HISTORY lookup per item");
        s.item_row(fmix64(5), Some(NONE), || unreachable!());
        let t = Table::from_sinks(l, vec![s], true, Vec::new());
        let list = t.items.unwrap();
        assert_eq!(list.len(), 10_000);
        let items: KeyMap<u8> = list.into_iter().collect();
        assert_eq!(items.len(), 10_000, "each key once");
        assert_eq!(items[&0], 1 | ITEM_ABSENT);
        assert_eq!(items[&fmix64(5)], 1 << 2 | ITEM_NOSEG);
        assert_eq!(items[&fmix64(8)], 1 << 2);
    }
}
