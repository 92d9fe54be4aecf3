//! The CSV line splitter of the PRED and HISTORY readers: field ranges of one unquoted line.
//!
//! A line is found 64 bytes at a time: one vector compare each for the delimiter, `\n` and `"`
//! gives three bit masks (AVX-512BW, or two AVX2 halves; detected at run time), and the fields
//! are read off the delimiter mask with `trailing_zeros`. Lines of a typical prediction or
//! interaction file are 20–40 bytes, so a line costs one or two blocks instead of one branchy
//! step per byte. Without AVX2 (or near the end of the mapping, where a 64-byte load would read
//! past it) the scalar loop runs; all paths split identically (tests below).
//!
//! HISTORY, which needs 4 of its 6 fields, uses [`scan_chunk`] instead: it walks a whole chunk's
//! blocks once (the masks of a block serve every line in it, instead of one load per line),
//! keeps only the wanted fields' ranges and hands each line to the caller (tested against the
//! per-line splitter, which stays the reference).

/// One pass over the line that starts at `pos` (up to a newline or `b`): field ranges relative
/// to `pos` into `out`. Returns `(newline position or b, end of the line without a final \r)`,
/// or `None` if the line has a quote (the caller's quoted-field splitter then handles it).
#[inline]
pub(crate) fn split_fast(data: &[u8], pos: usize, b: usize, delim: u8, out: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        let lanes = simd_level();
        if lanes != Level::Scalar {
            // SAFETY: the level was detected at run time; the splitter loads only whole 64-byte
            // blocks that lie inside `data` and finishes a line's tail with the scalar loop.
            return unsafe {
                match lanes {
                    Level::Avx512 => split_avx512(data, pos, b, delim, out),
                    _ => split_avx2(data, pos, b, delim, out),
                }
            };
        }
    }
    split_scalar(data, pos, b, delim, out)
}

/// The byte-at-a-time splitter (reference and fallback).
pub(crate) fn split_scalar(data: &[u8], pos: usize, b: usize, delim: u8, out: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    out.clear();
    scalar_from(data, pos, pos, pos, b, delim, out)
}

/// The scalar splitter from byte `i` of the line at `pos`, whose current field starts at `s`.
#[inline]
fn scalar_from(
    data: &[u8],
    pos: usize,
    mut s: usize,
    mut i: usize,
    b: usize,
    delim: u8,
    out: &mut Vec<(usize, usize)>,
) -> Option<(usize, usize)> {
    while i < b {
        let c = data[i];
        if c == delim {
            out.push((s - pos, i - pos));
            s = i + 1;
        } else if c == b'\n' {
            break;
        } else if c == b'"' {
            return None;
        }
        i += 1;
    }
    finish(data, pos, s, i, out)
}

#[inline]
fn finish(data: &[u8], pos: usize, s: usize, i: usize, out: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    let mut e = i;
    if e > s && data[e - 1] == b'\r' {
        e -= 1;
    }
    out.push((s - pos, e - pos));
    Some((i, e))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Scalar,
    Avx2,
    Avx512,
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> Level {
    use std::sync::atomic::{AtomicU8, Ordering};
    static LEVEL: AtomicU8 = AtomicU8::new(0);
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Scalar,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let l = if std::env::var_os("LEARNREC_NO_SIMD").is_some() {
                Level::Scalar
            } else if std::arch::is_x86_feature_detected!("avx512bw") {
                Level::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Level::Avx2
            } else {
                Level::Scalar
            };
            LEVEL.store(l as u8 + 1, Ordering::Relaxed);
            l
        }
    }
}

/// Masks (delimiter, newline, quote) of the 64 bytes at `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn masks_avx512(p: *const u8, delim: u8) -> (u64, u64, u64) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 64 readable bytes at `p`.
    let v = unsafe { _mm512_loadu_si512(p as *const _) };
    (
        _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(delim as i8)),
        _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\n' as i8)),
        _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
    )
}

/// Masks (delimiter, newline, quote) of the 64 bytes at `p`, as two 32-byte halves.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn masks_avx2(p: *const u8, delim: u8) -> (u64, u64, u64) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 64 readable bytes at `p`.
    let (lo, hi) = unsafe { (_mm256_loadu_si256(p as *const _), _mm256_loadu_si256(p.add(32) as *const _)) };
    let m = |c: u8| {
        let k = _mm256_set1_epi8(c as i8);
        let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, k)) as u32 as u64;
        let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, k)) as u32 as u64;
        a | b << 32
    };
    (m(delim), m(b'\n'), m(b'"'))
}

/// [`split_blocks`] with AVX-512BW (its mask loads inlined).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn split_avx512(data: &[u8], pos: usize, b: usize, delim: u8, out: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    // SAFETY: AVX-512BW is enabled here.
    unsafe { split_blocks(data, pos, b, delim, out, Level::Avx512) }
}

/// [`split_blocks`] with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_avx2(data: &[u8], pos: usize, b: usize, delim: u8, out: &mut Vec<(usize, usize)>) -> Option<(usize, usize)> {
    // SAFETY: AVX2 is enabled here.
    unsafe { split_blocks(data, pos, b, delim, out, Level::Avx2) }
}

/// [`split_fast`] 64 bytes at a time.
///
/// # Safety
/// `level` must be supported by the CPU (see [`simd_level`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn split_blocks(data: &[u8], pos: usize, b: usize, delim: u8, out: &mut Vec<(usize, usize)>, level: Level) -> Option<(usize, usize)> {
    out.clear();
    let mut s = pos;
    let mut i = pos;
    while i + 64 <= data.len() && i < b {
        // SAFETY: `i + 64 <= data.len()`; the level is supported (caller).
        let (mut d, n, q) = unsafe {
            match level {
                Level::Avx512 => masks_avx512(data.as_ptr().add(i), delim),
                _ => masks_avx2(data.as_ptr().add(i), delim),
            }
        };
        // Bytes of this block that belong to the line: before the first newline and before `b`.
        let room = (b - i).min(64);
        let stop = (n.trailing_zeros() as usize).min(room);
        let keep = if stop == 64 { u64::MAX } else { (1u64 << stop) - 1 };
        if q & keep != 0 {
            return None;
        }
        d &= keep;
        while d != 0 {
            let t = i + d.trailing_zeros() as usize;
            out.push((s - pos, t - pos));
            s = t + 1;
            d &= d - 1;
        }
        if stop < 64 {
            return finish(data, pos, s, i + stop, out);
        }
        i += 64;
    }
    // The tail of the mapping (< 64 bytes left): byte by byte.
    scalar_from(data, pos, s, i, b, delim, out)
}

/// One line found by [`scan_chunk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// Byte offset of the line's first byte.
    pub off: usize,
    /// Position of its newline (or the chunk end `b` for a last line without one).
    pub nl: usize,
    /// End of the line without a final `\r` (`== off`: an empty line). Unquoted lines only.
    pub end: usize,
    /// The line has a quote: no fields were split (the caller's quoted-field splitter does it).
    pub quoted: bool,
    /// Number of fields (unquoted lines only).
    pub fields: usize,
    /// Absolute byte ranges of the wanted fields (`got[j]` for `want[j]`); meaningful only for
    /// a wanted index `< fields` of an unquoted line (others keep stale values). `got[4]`
    /// receives the fields that are not wanted.
    pub got: [(usize, usize); 5],
}

/// The lines of the chunk `data[a..b]`, in order, each handed to `line` (which may stop the
/// scan with an error). Splits exactly like [`split_fast`] from each line start, but walks the
/// chunk's 64-byte blocks once (a block's masks serve all the lines in it) and keeps only the
/// ranges of the fields `want` (distinct indices; `usize::MAX` or any index not on the line:
/// not wanted).
pub(crate) fn scan_chunk<E>(
    data: &[u8],
    a: usize,
    b: usize,
    delim: u8,
    want: [usize; 4],
    line: impl FnMut(&Line) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(a <= b && b <= data.len());
    #[cfg(target_arch = "x86_64")]
    {
        match simd_level() {
            // SAFETY: the level was detected at run time; the scanner loads only whole 64-byte
            // blocks that lie inside `data` (the last partial block is copied out first).
            Level::Avx512 => return unsafe { scan_avx512(data, a, b, delim, want, line) },
            Level::Avx2 => return unsafe { scan_avx2(data, a, b, delim, want, line) },
            Level::Scalar => {}
        }
    }
    scan_blocks(data, a, b, delim, want, line, masks_scalar)
}

/// Masks (delimiter, newline, quote) of 64 bytes without SIMD instructions (the fallback):
/// 8 bytes at a time in a `u64` (exact per-byte compares, no carries between bytes).
#[inline]
fn masks_scalar(p: &[u8; 64], delim: u8) -> (u64, u64, u64) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Bit j of the result: byte j of `w` equals `c`.
    let eq = |w: u64, c: u8| {
        let y = w ^ (c as u64 * ONES);
        // High bit of each byte set iff the byte of `y` is zero.
        let z = !(((y & LOW7) + LOW7) | y | LOW7);
        // Gather the 8 high bits into the low byte.
        z.wrapping_mul(0x0002_0408_1020_4081) >> 56
    };
    let (mut d, mut n, mut q) = (0u64, 0u64, 0u64);
    for (j, c) in p.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let w = u64::from_le_bytes(b);
        d |= eq(w, delim) << (8 * j);
        n |= eq(w, b'\n') << (8 * j);
        q |= eq(w, b'"') << (8 * j);
    }
    (d, n, q)
}

/// [`scan_blocks`] with AVX-512BW masks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
unsafe fn scan_avx512<E>(
    data: &[u8],
    a: usize,
    b: usize,
    delim: u8,
    want: [usize; 4],
    line: impl FnMut(&Line) -> Result<(), E>,
) -> Result<(), E> {
    // SAFETY: AVX-512BW is enabled here; `p` is a whole 64-byte array.
    scan_blocks(data, a, b, delim, want, line, |p, d| unsafe { masks_avx512(p.as_ptr(), d) })
}

/// [`scan_blocks`] with AVX2 masks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2<E>(
    data: &[u8],
    a: usize,
    b: usize,
    delim: u8,
    want: [usize; 4],
    line: impl FnMut(&Line) -> Result<(), E>,
) -> Result<(), E> {
    // SAFETY: AVX2 is enabled here; `p` is a whole 64-byte array.
    scan_blocks(data, a, b, delim, want, line, |p, d| unsafe { masks_avx2(p.as_ptr(), d) })
}

/// The chunk walk of [`scan_chunk`], over the masks `masks` gives for each 64-byte block.
#[inline(always)]
fn scan_blocks<E>(
    data: &[u8],
    a: usize,
    b: usize,
    delim: u8,
    want: [usize; 4],
    mut line: impl FnMut(&Line) -> Result<(), E>,
    masks: impl Fn(&[u8; 64], u8) -> (u64, u64, u64),
) -> Result<(), E> {
    // Field index -> slot of `l.got` (4 = not wanted; fields past the table are not wanted).
    let top = want.iter().filter(|&&w| w != usize::MAX).map(|&w| w + 1).max().unwrap_or(0);
    let mut slot = vec![4u8; top];
    for (j, &w) in want.iter().enumerate() {
        if w != usize::MAX {
            debug_assert!(slot[w] == 4, "wanted fields must be distinct");
            slot[w] = j as u8;
        }
    }
    let slot_of = |k: usize| slot.get(k).copied().unwrap_or(4) as usize;
    // The current line (its ranges are written in place: no copy per line).
    let mut l = Line { off: a, nl: a, end: a, quoted: false, fields: 0, got: [(0, 0); 5] };
    let mut s = a; // field start
    let mut k = 0usize; // field index
    let mut quoted = false;
    let mut pad: [u8; 64];
    // An unterminated last line ends at `b`: a virtual newline there (in the block after the
    // last when `b` is a block edge), so that every line is handed over at one place.
    let tail = b > a && data[b - 1] != b'\n';
    let stop = b + tail as usize;
    let mut i = a;
    while i < stop {
        let blk: &[u8; 64] = match data[i..].first_chunk::<64>() {
            Some(x) => x,
            None => {
                // The tail of the mapping: a zero-padded copy (zero is none of the bytes).
                pad = [0u8; 64];
                pad[..data.len() - i].copy_from_slice(&data[i..]);
                &pad
            }
        };
        let (mut d, mut n, mut q) = masks(blk, delim);
        if b - i < 64 {
            let keep = (1u64 << (b - i)) - 1;
            d &= keep;
            n &= keep;
            q &= keep;
            n |= (tail as u64) << (b - i);
        }
        loop {
            // This block's bits of the current line: up to and including its newline.
            let nb = n.trailing_zeros() as usize;
            let seg = if nb == 64 { u64::MAX } else { (2u64 << nb).wrapping_sub(1) };
            quoted |= q & seg != 0;
            if !quoted {
                let mut dd = d & seg;
                while dd != 0 {
                    let t = i + dd.trailing_zeros() as usize;
                    l.got[slot_of(k)] = (s, t);
                    k += 1;
                    s = t + 1;
                    dd &= dd - 1;
                }
            }
            if nb == 64 {
                break;
            }
            d &= !seg;
            q &= !seg;
            n &= !seg;
            // The line ends at `p` (a newline or `b`): hand it over.
            let p = i + nb;
            l.nl = p;
            l.end = p;
            l.quoted = quoted;
            if !quoted {
                let mut e = p;
                if e > s && data[e - 1] == b'\r' {
                    e -= 1;
                }
                l.got[slot_of(k)] = (s, e);
                l.end = e;
                l.fields = k + 1;
            }
            line(&l)?;
            l.off = p + 1;
            s = l.off;
            k = 0;
            quoted = false;
        }
        i += 64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `text` split by every path, from every start offset the readers use.
    fn check(text: &[u8], delim: u8) {
        let mut pos = 0;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        while pos < text.len() {
            let want = split_scalar(text, pos, text.len(), delim, &mut a);
            let got = split_fast(text, pos, text.len(), delim, &mut b);
            assert_eq!(got, want, "line at {pos} of {:?}", String::from_utf8_lossy(text));
            if want.is_some() {
                assert_eq!(a, b, "fields of the line at {pos}");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let got2 = unsafe { split_blocks(text, pos, text.len(), delim, &mut b, Level::Avx2) };
                assert_eq!(got2, want, "avx2 line at {pos}");
                if want.is_some() {
                    assert_eq!(a, b, "avx2 fields of the line at {pos}");
                }
            }
            match want {
                Some((nl, _)) => pos = nl + 1,
                None => pos = text[pos..].iter().position(|&c| c == b'\n').map_or(text.len(), |p| pos + p + 1),
            }
        }
    }

    /// A line callback that collects, and a scanner path run with it.
    type Sink<'s> = &'s mut dyn FnMut(&Line) -> Result<(), ()>;
    type Path<'p> = &'p dyn Fn(Sink<'_>) -> Result<(), ()>;

    /// The chunk `text[a..b]` scanned by every path against the per-line scalar splitter from
    /// each line start, for the wanted fields `want`.
    fn check_chunk(text: &[u8], a: usize, b: usize, delim: u8, want: [usize; 4]) {
        let mut lines = Vec::new();
        let mut r: Result<(), ()> = scan_chunk(text, a, b, delim, want, |l| {
            lines.push(*l);
            Ok(())
        });
        assert!(r.is_ok());
        let mut paths = vec![("fast", lines)];
        let mut run = |name: &'static str, f: Path<'_>| {
            let mut v = Vec::new();
            r = f(&mut |l| {
                v.push(*l);
                Ok(())
            });
            assert!(r.is_ok());
            paths.push((name, v));
        };
        run("scalar", &|cb| scan_blocks(text, a, b, delim, want, cb, masks_scalar));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            run("avx2", &|cb| unsafe { scan_avx2(text, a, b, delim, want, cb) });
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            run("avx512", &|cb| unsafe { scan_avx512(text, a, b, delim, want, cb) });
        }
        let show = || String::from_utf8_lossy(&text[a..b]).into_owned();
        for (name, lines) in paths {
            let mut ranges = Vec::new();
            let mut pos = a;
            let mut it = lines.iter();
            while pos < b {
                let l = it.next().unwrap_or_else(|| panic!("{name}: no line at {pos} of {:?}", show()));
                assert_eq!(l.off, pos, "{name}: line start in {:?}", show());
                match split_scalar(text, pos, b, delim, &mut ranges) {
                    Some((nl, e)) => {
                        assert!(!l.quoted, "{name}: line at {pos}");
                        assert_eq!((l.nl, l.end, l.fields), (nl, e, ranges.len()), "{name}: line at {pos} of {:?}", show());
                        for (j, &w) in want.iter().enumerate() {
                            if let Some(&(x, y)) = ranges.get(w) {
                                assert_eq!(l.got[j], (pos + x, pos + y), "{name}: field {w} of the line at {pos}");
                            }
                        }
                        pos = nl + 1;
                    }
                    None => {
                        let nl = text[pos..b].iter().position(|&c| c == b'\n').map_or(b, |p| pos + p);
                        assert!(l.quoted, "{name}: quoted line at {pos}");
                        assert_eq!(l.nl, nl, "{name}: end of the quoted line at {pos}");
                        pos = nl + 1;
                    }
                }
            }
            assert!(it.next().is_none(), "{name}: lines past the chunk end");
        }
    }

    #[test]
    fn scalar_masks_are_exact() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut p = [0u8; 64];
            for c in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every byte value, with the three wanted bytes and their neighbours common.
                *c = match x % 4 {
                    0 => (x >> 8) as u8,
                    _ => [b',', b'\n', b'"', b'+', b'-', 0x0b, 0x0c, 0x09, 0xac, 0x8a, 0xa2, 0, 0xff][(x >> 8) as usize % 13],
                };
            }
            let want = |c: u8| p.iter().enumerate().fold(0u64, |m, (j, &b)| m | ((b == c) as u64) << j);
            for delim in [b',', b'\t'] {
                assert_eq!(masks_scalar(&p, delim), (want(delim), want(b'\n'), want(b'"')), "{p:?}");
            }
        }
    }

    #[test]
    fn chunk_scanner_equals_the_line_splitter() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let wants = [[0, 1, 3, 4], [3, 0, 2, usize::MAX], [5, 4, 1, 0], [0, 70, 2, 1]];
        for delim in [b',', b'\t'] {
            for round in 0..150 {
                // Lines of 0..120 bytes: CRLF, empty lines, quotes (rare), long lines.
                let mut text = Vec::new();
                let n_lines = (next() % 12) as usize;
                for _ in 0..n_lines {
                    let len = match next() % 4 {
                        0 => 0,
                        1 => (next() % 120) as usize,
                        _ => (next() % 30) as usize,
                    };
                    for _ in 0..len {
                        text.push(match next() % 100 {
                            0 => b'"',
                            1 => b'\r',
                            r if r < 25 => delim,
                            r => b'a' + (r % 26) as u8,
                        });
                    }
                    if next() % 3 == 0 {
                        text.push(b'\r');
                    }
                    text.push(b'\n');
                }
                if next() % 2 == 0 {
                    // A last line without newline.
                    text.extend_from_slice(b"x,y,z");
                }
                let want = wants[round % wants.len()];
                for a in 0..=text.len() {
                    check_chunk(&text, a, text.len(), delim, want);
                }
                // Chunk ends that are not the end of the text (also mid-line).
                for b in 0..=text.len() {
                    check_chunk(&text, 0, b, delim, want);
                }
            }
        }
        // Lines straddling blocks and ending exactly at block edges, a padded last block.
        let long = format!("{},{},{}\n1,2,3\r\n", "a".repeat(70), "b".repeat(63), "c");
        let edge = format!("{}\n{}\n{}", "x".repeat(63), "y,".repeat(40), "z,".repeat(33));
        let quoted = format!("{},\"q,\"\n{}\n", "a".repeat(60), "1,2,3,4,5,6\n".repeat(9));
        for t in [long, edge, quoted] {
            for a in 0..=t.len() {
                check_chunk(t.as_bytes(), a, t.len(), b',', [0, 1, 2, 3]);
            }
        }
    }

    #[test]
    fn block_splitter_equals_the_scalar_one() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for delim in [b',', b'\t'] {
            for _ in 0..300 {
                let n = (next() % 400) as usize;
                let alphabet = [b'a', b'1', b'.', delim, delim, b'\n', b'\r', b'x', b'9'];
                // Quotes rare (1 byte in 200), so most lines take the fast path.
                let text: Vec<u8> = (0..n)
                    .map(|_| match next() % 200 {
                        0 => b'"',
                        r => alphabet[(r % 9) as usize],
                    })
                    .collect();
                check(&text, delim);
            }
        }
        // Lines that cross 64-byte blocks, end exactly at a block edge, and a chunk end `b`
        // before the newline.
        let long = format!("{},{},{}\n1,2,3\r\n", "a".repeat(70), "b".repeat(63), "c");
        check(long.as_bytes(), b',');
        let edge = format!("{}\n{}\n", "x".repeat(63), "y,".repeat(40));
        check(edge.as_bytes(), b',');
        let text = "12,34,56\n78,90\n".repeat(20);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for cut in 0..text.len() {
            assert_eq!(split_fast(text.as_bytes(), 0, cut, b',', &mut b), split_scalar(text.as_bytes(), 0, cut, b',', &mut a));
            assert_eq!(a, b, "chunk end at {cut}");
        }
    }
}
