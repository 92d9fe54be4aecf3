//! The CSV line splitter of the PRED and HISTORY readers: field ranges of one unquoted line.
//!
//! A line is found 64 bytes at a time: one vector compare each for the delimiter, `\n` and `"`
//! gives three bit masks (AVX-512BW, or two AVX2 halves; detected at run time), and the fields
//! are read off the delimiter mask with `trailing_zeros`. Lines of a typical prediction or
//! interaction file are 20–40 bytes, so a line costs one or two blocks instead of one branchy
//! step per byte. Without AVX2 (or near the end of the mapping, where a 64-byte load would read
//! past it) the scalar loop runs; all paths split identically (tests below).

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
