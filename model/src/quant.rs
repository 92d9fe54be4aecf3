//! GGML tensor types and their dequantisation to f32.
//!
//! Block layouts follow ggml (`ggml-common.h`, `ggml-quants.c`); each quantised format is a
//! `#[repr(C)]` block struct with a compile-time size assert and a scalar reference
//! `dequantize` method. Whole tensors are dequantised in parallel over chunks of blocks
//! (rayon). Supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K — what the Gemma-3
//! and Qwen2.5 Q4_K_M files use, plus the plain float types. Any other type is an explicit
//! [`Error::Unsupported`](crate::Error::Unsupported).
//!
//! Cross-checked bit-exact (max abs diff 0.0) against gguf-py 0.19.0's `dequantize` (llama.cpp's
//! numpy reference): on the real Gemma-3 (F32, Q5_0, Q4_K, Q8_0, Q6_K) and Qwen2.5 (F32, Q4_K,
//! Q6_K) tensors, and on random blocks of all nine types written by gguf-py's `GGUFWriter`
//! (dumped with `examples/gguf_dump.rs`).

use crate::{Error, Result};
use half::{bf16, f16};
use rayon::prelude::*;
use std::path::Path;

/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;
/// Elements per block of the legacy quants (Q4_0, Q5_0, Q8_0).
pub const QK: usize = 32;

/// A GGML tensor element type (the `type` field of a GGUF tensor info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    BF16,
    /// Any other ggml type id (IQ*, TQ*, MXFP4, …): known to exist, not supported here.
    Other(u32),
}

impl GgmlType {
    /// Maps a ggml type id (`enum ggml_type`).
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            9 => GgmlType::Q8_1,
            10 => GgmlType::Q2K,
            11 => GgmlType::Q3K,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            15 => GgmlType::Q8K,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q8_1 => 9,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Q8K => 15,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    /// ggml's name of the type (`Q4_K`, …).
    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::Q4_0 => "Q4_0".into(),
            GgmlType::Q4_1 => "Q4_1".into(),
            GgmlType::Q5_0 => "Q5_0".into(),
            GgmlType::Q5_1 => "Q5_1".into(),
            GgmlType::Q8_0 => "Q8_0".into(),
            GgmlType::Q8_1 => "Q8_1".into(),
            GgmlType::Q2K => "Q2_K".into(),
            GgmlType::Q3K => "Q3_K".into(),
            GgmlType::Q4K => "Q4_K".into(),
            GgmlType::Q5K => "Q5_K".into(),
            GgmlType::Q6K => "Q6_K".into(),
            GgmlType::Q8K => "Q8_K".into(),
            GgmlType::BF16 => "BF16".into(),
            GgmlType::Other(id) => format!("ggml type {id}"),
        }
    }

    /// `(elements per block, bytes per block)`, or `None` for a type whose layout is unknown here.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (QK, 18),
            GgmlType::Q4_1 => (QK, 20),
            GgmlType::Q5_0 => (QK, 22),
            GgmlType::Q5_1 => (QK, 24),
            GgmlType::Q8_0 => (QK, 34),
            GgmlType::Q8_1 => (QK, 36),
            GgmlType::Q2K => (QK_K, 84),
            GgmlType::Q3K => (QK_K, 110),
            GgmlType::Q4K => (QK_K, 144),
            GgmlType::Q5K => (QK_K, 176),
            GgmlType::Q6K => (QK_K, 210),
            GgmlType::Q8K => (QK_K, 292),
            GgmlType::Other(_) => return None,
        })
    }

    /// Whether [`dequantize`] supports this type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q8_0
                | GgmlType::Q4_0
                | GgmlType::Q5_0
                | GgmlType::Q4K
                | GgmlType::Q5K
                | GgmlType::Q6K
        )
    }

    /// Bytes needed for `n` elements, or `None` when `n` is not a whole number of blocks, the
    /// layout is unknown, or the size overflows.
    pub fn byte_size(self, n: usize) -> Option<usize> {
        let (bs, ts) = self.block_layout()?;
        if n % bs != 0 {
            return None;
        }
        (n / bs).checked_mul(ts)
    }
}

/// A block type: its byte size is checked at compile time, its scalar dequantisation is the
/// reference.
pub trait Block: Copy {
    /// Elements per block.
    const N: usize;
    /// Writes the block's `N` values into `out`.
    fn dequantize(&self, out: &mut [f32]);
}

/// Q4_0: 32 values, one f16 scale, 4-bit quants offset by 8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl Block for BlockQ4_0 {
    const N: usize = QK;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        for j in 0..QK / 2 {
            out[j] = ((self.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            out[j + QK / 2] = ((self.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Q5_0: 32 values, one f16 scale, 5-bit quants (4 low bits in `qs`, the 5th in `qh`) offset
/// by 16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

impl Block for BlockQ5_0 {
    const N: usize = QK;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..QK / 2 {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            let x0 = ((self.qs[j] as u32 & 0x0f) | h0) as i32 - 16;
            let x1 = ((self.qs[j] as u32 >> 4) | h1) as i32 - 16;
            out[j] = x0 as f32 * d;
            out[j + QK / 2] = x1 as f32 * d;
        }
    }
}

/// Q8_0: 32 values, one f16 scale, i8 quants.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

impl Block for BlockQ8_0 {
    const N: usize = QK;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        for (o, &q) in out.iter_mut().zip(self.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) packed in the 12 `scales` bytes of Q4_K /
/// Q5_K (ggml's `get_scale_min_k4`).
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: 256 values in 8 sub-blocks of 32, each with a 6-bit scale and min; x = d·sc·q − dmin·m.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

impl Block for BlockQ4K {
    const N: usize = QK_K;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        let min = f16::from_bits(self.dmin).to_f32();
        for (c, chunk) in out.chunks_exact_mut(64).enumerate() {
            let q = &self.qs[c * 32..c * 32 + 32];
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                chunk[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                chunk[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Q5_K: like Q4_K with a fifth bit per value in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

impl Block for BlockQ5K {
    const N: usize = QK_K;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        let min = f16::from_bits(self.dmin).to_f32();
        for (c, chunk) in out.chunks_exact_mut(64).enumerate() {
            let ql = &self.qs[c * 32..c * 32 + 32];
            let u1 = 1u8 << (2 * c);
            let u2 = 2u8 << (2 * c);
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for l in 0..32 {
                let h1 = if self.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if self.qh[l] & u2 != 0 { 16 } else { 0 };
                chunk[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                chunk[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// Q6_K: 256 values in 16 sub-blocks of 16 with i8 scales; 6-bit quants (low 4 bits in `ql`,
/// high 2 in `qh`) offset by 32.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl Block for BlockQ6K {
    const N: usize = QK_K;
    fn dequantize(&self, out: &mut [f32]) {
        let d = f16::from_bits(self.d).to_f32();
        for (n, chunk) in out.chunks_exact_mut(128).enumerate() {
            let ql = &self.ql[n * 64..n * 64 + 64];
            let qh = &self.qh[n * 32..n * 32 + 32];
            let sc = &self.scales[n * 8..n * 8 + 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                chunk[l] = d * sc[is] as f32 * q1 as f32;
                chunk[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                chunk[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                chunk[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}

/// Reads a block from its little-endian bytes. All block fields are byte arrays or `u16`s
/// stored little-endian, so this is a plain copy on little-endian hosts.
fn read_block<T: Block>(bytes: &[u8]) -> T {
    assert_eq!(bytes.len(), std::mem::size_of::<T>());
    // SAFETY: `T` is a `#[repr(C)]` struct of integer fields and byte arrays with no padding
    // (checked by the size asserts) for which every bit pattern is valid; `read_unaligned`
    // copies `size_of::<T>()` bytes, which `bytes` holds (asserted above).
    unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) }
}

#[cfg(target_endian = "big")]
compile_error!("learnrec's GGUF dequantisation assumes a little-endian host");

/// Blocks per rayon task: large enough to amortise scheduling, small enough to balance.
const BLOCKS_PER_TASK: usize = 256;

fn dequant_blocks<T: Block + Send + Sync>(bytes: &[u8], out: &mut [f32]) {
    let bsz = std::mem::size_of::<T>();
    out.par_chunks_mut(T::N * BLOCKS_PER_TASK)
        .zip(bytes.par_chunks(bsz * BLOCKS_PER_TASK))
        .for_each(|(o, b)| {
            for (ob, bb) in o.chunks_exact_mut(T::N).zip(b.chunks_exact(bsz)) {
                read_block::<T>(bb).dequantize(ob);
            }
        });
}

/// Scalar reference of [`dequant_blocks`] (one thread), used by the tests to check the
/// parallel path.
pub fn dequantize_scalar(ty: GgmlType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    fn go<T: Block>(bytes: &[u8], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n];
        for (ob, bb) in out
            .chunks_exact_mut(T::N)
            .zip(bytes.chunks_exact(std::mem::size_of::<T>()))
        {
            read_block::<T>(bb).dequantize(ob);
        }
        out
    }
    if ty.byte_size(n)? != bytes.len() {
        return None;
    }
    Some(match ty {
        GgmlType::Q4_0 => go::<BlockQ4_0>(bytes, n),
        GgmlType::Q5_0 => go::<BlockQ5_0>(bytes, n),
        GgmlType::Q8_0 => go::<BlockQ8_0>(bytes, n),
        GgmlType::Q4K => go::<BlockQ4K>(bytes, n),
        GgmlType::Q5K => go::<BlockQ5K>(bytes, n),
        GgmlType::Q6K => go::<BlockQ6K>(bytes, n),
        _ => return None,
    })
}

/// Dequantises `n` elements of type `ty` from `bytes` into a new f32 vector.
///
/// `file` and `tensor` only name the data in errors: an unsupported type, or a byte length
/// that does not match `n` elements of `ty`.
pub fn dequantize(
    ty: GgmlType,
    bytes: &[u8],
    n: usize,
    file: &Path,
    tensor: &str,
) -> Result<Vec<f32>> {
    if !ty.is_supported() {
        return Err(Error::Unsupported {
            path: file.to_path_buf(),
            message: format!(
                "tensor `{tensor}` has type {}; supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K",
                ty.name()
            ),
        });
    }
    let expected = ty.byte_size(n).ok_or_else(|| {
        Error::format(
            file,
            format!("tensor `{tensor}`"),
            format!("{n} elements is not a whole number of {} blocks", ty.name()),
        )
    })?;
    if bytes.len() != expected {
        return Err(Error::format(
            file,
            format!("tensor `{tensor}`"),
            format!(
                "{} bytes for {n} {} elements, expected {expected}",
                bytes.len(),
                ty.name()
            ),
        ));
    }
    let mut out = vec![0f32; n];
    const CHUNK: usize = 1 << 16;
    match ty {
        GgmlType::F32 => out
            .par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(CHUNK * 4))
            .for_each(|(o, b)| {
                for (x, c) in o.iter_mut().zip(b.chunks_exact(4)) {
                    *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }),
        GgmlType::F16 => out
            .par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(CHUNK * 2))
            .for_each(|(o, b)| {
                for (x, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *x = f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }),
        GgmlType::BF16 => out
            .par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(CHUNK * 2))
            .for_each(|(o, b)| {
                for (x, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *x = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }),
        GgmlType::Q4_0 => dequant_blocks::<BlockQ4_0>(bytes, &mut out),
        GgmlType::Q5_0 => dequant_blocks::<BlockQ5_0>(bytes, &mut out),
        GgmlType::Q8_0 => dequant_blocks::<BlockQ8_0>(bytes, &mut out),
        GgmlType::Q4K => dequant_blocks::<BlockQ4K>(bytes, &mut out),
        GgmlType::Q5K => dequant_blocks::<BlockQ5K>(bytes, &mut out),
        GgmlType::Q6K => dequant_blocks::<BlockQ6K>(bytes, &mut out),
        _ => unreachable!("checked by is_supported"),
    }
    Ok(out)
}

/// Simple reference quantisers (round to nearest; not llama.cpp's optimised search), for tests
/// and for writing small GGUF fixtures. Each returns the block bytes of `x` (whole blocks).
pub mod reference {
    use super::{QK, QK_K};
    use half::f16;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }
    fn amax(x: &[f32]) -> f32 {
        x.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    /// Q8_0: d = amax/127.
    pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK) {
            let d = amax(b) / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f16b(d));
            out.extend(b.iter().map(|v| ((v * id).round() as i8) as u8));
        }
        out
    }

    /// Q4_0: d = amax/8 (ggml picks the signed max: here `-max` of the value of largest |x|).
    pub fn quantize_q4_0(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK) {
            let m = b
                .iter()
                .copied()
                .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            let d = m / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f16b(d));
            for j in 0..QK / 2 {
                let q0 = ((b[j] * id + 8.5) as i32).clamp(0, 15) as u8;
                let q1 = ((b[j + QK / 2] * id + 8.5) as i32).clamp(0, 15) as u8;
                out.push(q0 | (q1 << 4));
            }
        }
        out
    }

    /// Q5_0: d = max/−16.
    pub fn quantize_q5_0(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK) {
            let m = b
                .iter()
                .copied()
                .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            let d = m / -16.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qh = 0u32;
            let mut qs = [0u8; QK / 2];
            for j in 0..QK / 2 {
                let q0 = ((b[j] * id + 16.5) as i32).clamp(0, 31) as u32;
                let q1 = ((b[j + QK / 2] * id + 16.5) as i32).clamp(0, 31) as u32;
                qs[j] = ((q0 & 0x0f) | ((q1 & 0x0f) << 4)) as u8;
                qh |= ((q0 & 0x10) >> 4) << j;
                qh |= ((q1 & 0x10) >> 4) << (j + QK / 2);
            }
            out.extend_from_slice(&f16b(d));
            out.extend_from_slice(&qh.to_le_bytes());
            out.extend_from_slice(&qs);
        }
        out
    }

    /// Per-sub-block (scale, min) with x ≈ scale·q − min, q in 0..=qmax.
    fn sub_scale_min(x: &[f32], qmax: f32) -> (f32, f32) {
        let lo = x.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
        let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        ((hi - lo) / qmax, -lo)
    }

    /// Packs 8 six-bit scales and mins the way `scale_min_k4` reads them.
    fn pack_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
        let mut q = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                q[j] = sc[j] & 63;
                q[j + 4] = m[j] & 63;
            } else {
                q[j + 4] = (sc[j] & 0x0f) | ((m[j] & 0x0f) << 4);
                q[j - 4] |= (sc[j] >> 4) << 6;
                q[j] |= (m[j] >> 4) << 6;
            }
        }
        q
    }

    /// Common part of Q4_K/Q5_K: quantised super-block scales and the per-value quants.
    fn k_quant(b: &[f32], qmax: f32) -> (f32, f32, [u8; 12], Vec<u8>) {
        let sm: Vec<(f32, f32)> = b.chunks(32).map(|s| sub_scale_min(s, qmax)).collect();
        let max_sc = sm.iter().fold(0f32, |a, s| a.max(s.0));
        let max_m = sm.iter().fold(0f32, |a, s| a.max(s.1));
        let d = f16::from_f32(max_sc / 63.0).to_f32();
        let dmin = f16::from_f32(max_m / 63.0).to_f32();
        let mut sc = [0u8; 8];
        let mut mm = [0u8; 8];
        let mut q = vec![0u8; QK_K];
        for (j, &(s, m)) in sm.iter().enumerate() {
            sc[j] = if d > 0.0 {
                (s / d).round().clamp(0.0, 63.0) as u8
            } else {
                0
            };
            mm[j] = if dmin > 0.0 {
                (m / dmin).round().clamp(0.0, 63.0) as u8
            } else {
                0
            };
            let ds = d * sc[j] as f32;
            let dm = dmin * mm[j] as f32;
            for l in 0..32 {
                let v = b[j * 32 + l];
                q[j * 32 + l] = if ds > 0.0 {
                    ((v + dm) / ds).round().clamp(0.0, qmax) as u8
                } else {
                    0
                };
            }
        }
        (d, dmin, pack_scales(&sc, &mm), q)
    }

    /// Q4_K.
    pub fn quantize_q4_k(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK_K) {
            let (d, dmin, scales, q) = k_quant(b, 15.0);
            out.extend_from_slice(&f16b(d));
            out.extend_from_slice(&f16b(dmin));
            out.extend_from_slice(&scales);
            for c in 0..4 {
                for l in 0..32 {
                    out.push(q[c * 64 + l] | (q[c * 64 + 32 + l] << 4));
                }
            }
        }
        out
    }

    /// Q5_K.
    pub fn quantize_q5_k(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK_K) {
            let (d, dmin, scales, q) = k_quant(b, 31.0);
            out.extend_from_slice(&f16b(d));
            out.extend_from_slice(&f16b(dmin));
            out.extend_from_slice(&scales);
            let mut qh = [0u8; 32];
            let mut ql = [0u8; 128];
            for c in 0..4 {
                for l in 0..32 {
                    let a = q[c * 64 + l];
                    let bq = q[c * 64 + 32 + l];
                    ql[c * 32 + l] = (a & 0x0f) | ((bq & 0x0f) << 4);
                    if a & 0x10 != 0 {
                        qh[l] |= 1 << (2 * c);
                    }
                    if bq & 0x10 != 0 {
                        qh[l] |= 2 << (2 * c);
                    }
                }
            }
            out.extend_from_slice(&qh);
            out.extend_from_slice(&ql);
        }
        out
    }

    /// Q6_K.
    pub fn quantize_q6_k(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(QK_K) {
            let sub: Vec<f32> = b.chunks(16).map(|s| amax(s) / 31.0).collect();
            let max_sub = sub.iter().fold(0f32, |a, &s| a.max(s));
            let d = f16::from_f32(max_sub / 127.0).to_f32();
            let sc: Vec<i8> = sub
                .iter()
                .map(|&s| {
                    if d > 0.0 {
                        (s / d).round().clamp(-128.0, 127.0) as i8
                    } else {
                        0
                    }
                })
                .collect();
            let mut q = [0u8; QK_K];
            for (i, v) in b.iter().enumerate() {
                let ds = d * sc[i / 16] as f32;
                q[i] = if ds != 0.0 {
                    ((v / ds).round() + 32.0).clamp(0.0, 63.0) as u8
                } else {
                    32
                };
            }
            let mut ql = [0u8; 128];
            let mut qh = [0u8; 64];
            for n in 0..2 {
                for l in 0..32 {
                    let base = n * 128;
                    let (q1, q2, q3, q4) = (
                        q[base + l],
                        q[base + l + 32],
                        q[base + l + 64],
                        q[base + l + 96],
                    );
                    ql[n * 64 + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
                    ql[n * 64 + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
                    qh[n * 32 + l] =
                        (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
                }
            }
            out.extend_from_slice(&ql);
            out.extend_from_slice(&qh);
            out.extend(sc.iter().map(|&s| s as u8));
            out.extend_from_slice(&f16b(d));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use super::*;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("test.gguf")
    }

    /// Deterministic pseudo-random values in [-scale, scale] (an LCG, no dependency).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Round trip: the max error must be within `steps` quantisation steps of each block's range.
    fn round_trip(ty: GgmlType, quant: fn(&[f32]) -> Vec<u8>, levels: f32) {
        let n = QK_K * 8;
        let x = values(n, 42 + ty.id() as u64, 3.0);
        let bytes = quant(&x);
        assert_eq!(bytes.len(), ty.byte_size(n).unwrap(), "{}", ty.name());
        let y = dequantize(ty, &bytes, n, &p(), "t").unwrap();
        let reference = dequantize_scalar(ty, &bytes, n).unwrap();
        assert_eq!(
            y,
            reference,
            "{}: parallel and scalar paths differ",
            ty.name()
        );
        // Range 6.0 (values in [-3, 3]) split into `levels` steps; allow one step (scale
        // quantisation to 6 bits adds up to half a step on top of rounding).
        let step = 6.0 / levels;
        let max_err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_err <= step,
            "{}: max error {max_err} > step {step}",
            ty.name()
        );
        let mean_err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f32>() / n as f32;
        assert!(
            mean_err <= step / 2.0,
            "{}: mean error {mean_err}",
            ty.name()
        );
    }

    #[test]
    fn q8_0_round_trip() {
        round_trip(GgmlType::Q8_0, quantize_q8_0, 254.0);
    }
    #[test]
    fn q4_0_round_trip() {
        round_trip(GgmlType::Q4_0, quantize_q4_0, 15.0);
    }
    #[test]
    fn q5_0_round_trip() {
        round_trip(GgmlType::Q5_0, quantize_q5_0, 31.0);
    }
    #[test]
    fn q4_k_round_trip() {
        round_trip(GgmlType::Q4K, quantize_q4_k, 15.0);
    }
    #[test]
    fn q5_k_round_trip() {
        round_trip(GgmlType::Q5K, quantize_q5_k, 31.0);
    }
    #[test]
    fn q6_k_round_trip() {
        round_trip(GgmlType::Q6K, quantize_q6_k, 63.0);
    }

    #[test]
    fn float_types_exact() {
        let x = [1.0f32, -2.5, 0.125, 65504.0];
        let f32b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(dequantize(GgmlType::F32, &f32b, 4, &p(), "t").unwrap(), x);
        let f16b: Vec<u8> = x
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(dequantize(GgmlType::F16, &f16b, 4, &p(), "t").unwrap(), x);
        let bf: Vec<u8> = [1.0f32, -2.5, 0.125]
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(
            dequantize(GgmlType::BF16, &bf, 3, &p(), "t").unwrap(),
            [1.0, -2.5, 0.125]
        );
    }

    /// Hand-built blocks with outputs computed by hand from ggml's formulas.
    #[test]
    fn hand_built_blocks() {
        // Q4_0: d = 0.5, nibble 0x3 low / 0xA high → (3-8)*0.5 = -2.5, (10-8)*0.5 = 1.0.
        let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend([0xA3u8; 16]);
        let y = dequantize(GgmlType::Q4_0, &b, 32, &p(), "t").unwrap();
        assert!(y[..16].iter().all(|&v| v == -2.5) && y[16..].iter().all(|&v| v == 1.0));

        // Q5_0: d = 1, qs = 0, qh bit set only for element 0 and 16 → element 0: 16-16 = 0,
        // others low half: -16; element 16: 0.
        let mut b = f16::from_f32(1.0).to_le_bytes().to_vec();
        b.extend(((1u32 << 0) | (1u32 << 16)).to_le_bytes());
        b.extend([0u8; 16]);
        let y = dequantize(GgmlType::Q5_0, &b, 32, &p(), "t").unwrap();
        assert_eq!(y[0], 0.0);
        assert_eq!(y[1], -16.0);
        assert_eq!(y[16], 0.0);
        assert_eq!(y[17], -16.0);

        // Q4_K: d = 1, dmin = 1, sub-block 0 scale 2 min 3, all quants 5 → 2*5-3 = 7 for the
        // first 32 values; sub-block 5 (j ≥ 4 packing) scale 17 min 33 → 17*5-33 = 52.
        let mut sc = [0u8; 12];
        sc[0] = 2;
        sc[4] = 3;
        // j = 5: scale = (q[9] & 0xF) | ((q[1] >> 6) << 4) = 1 | (1 << 4) = 17;
        //        min   = (q[9] >> 4) | ((q[5] >> 6) << 4) = 1 | (2 << 4) = 33.
        sc[9] = 0x11;
        sc[1] = 1 << 6;
        sc[5] = 2 << 6;
        let mut b = f16::from_f32(1.0).to_le_bytes().to_vec();
        b.extend(f16::from_f32(1.0).to_le_bytes());
        b.extend(sc);
        b.extend([0x55u8; 128]);
        let y = dequantize(GgmlType::Q4K, &b, 256, &p(), "t").unwrap();
        assert_eq!(y[0], 7.0);
        assert_eq!(y[31], 7.0);
        assert_eq!(y[5 * 32], 52.0);

        // Q6_K: d = 0.5, scales all 2, ql = 0, qh = 0 → (0-32)*0.5*2 = -32 everywhere.
        let mut b = vec![0u8; 128 + 64];
        b.extend([2u8; 16]);
        b.extend(f16::from_f32(0.5).to_le_bytes());
        let y = dequantize(GgmlType::Q6K, &b, 256, &p(), "t").unwrap();
        assert!(y.iter().all(|&v| v == -32.0));
    }

    #[test]
    fn bad_lengths_and_types_are_errors() {
        let e = dequantize(GgmlType::Q4K, &[0u8; 100], 256, &p(), "blk.0.attn_q.weight")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("blk.0.attn_q.weight") && e.contains("expected 144"),
            "{e}"
        );
        let e = dequantize(GgmlType::Q8_0, &[0u8; 34], 33, &p(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number of Q8_0 blocks"), "{e}");
        let e = dequantize(GgmlType::Other(23), &[], 0, &p(), "x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported") && e.contains("ggml type 23"),
            "{e}"
        );
        let e = dequantize(GgmlType::Q2K, &[], 0, &p(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Q2_K"), "{e}");
    }
}
