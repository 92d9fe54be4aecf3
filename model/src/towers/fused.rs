//! Fused CPU kernels for the LEARN tower, with hand-written backward passes (custom autodiff ops).
//!
//! Burn composes attention, LayerNorm and the loss from many small tensor ops; on Flex each is a
//! full pass over memory in the forward and two or three more in the backward (softmax alone is
//! max, sub, exp, sum, div forward and as many backward). The kernels here do each in one or two
//! passes over contiguous `f32` slices (rayon-parallel), and register their own backward step with
//! Burn's autodiff graph ([`Backward`]):
//!
//! - [`causal_attention`]: `qkv [n = batch·len, 3d]` → context `[n, d]`; scores, causal softmax
//!   and `P·V` per (batch, head) with no reshapes or transposes; the backward recomputes nothing
//!   (the probabilities are kept) and writes `dQ | dK | dV` straight into `[n, 3d]`.
//! - [`layer_norm`]: one pass forward (keeps x̂ and 1/σ), one pass backward plus a reduction for
//!   the scale and shift gradients.
//! - [`dense_loss_from_embeddings`]: the dense all-action InfoNCE from the user and item
//!   embeddings; user by user, one small GEMM for its scores, one pass for the loss and the score
//!   gradient (a fused softmax–cross-entropy), two GEMMs for the embedding gradients — the
//!   `[B·Lh, B·Lt]` score matrix is never held whole.
//! - softmax and the loss use a branch-free `exp` that vectorises (within a few ulps of libm's).
//!
//! They run only on learnrec's CPU backends ([`crate::CpuBackend`] = Flex and
//! [`crate::CpuAutodiff`]); the tensor type is checked at run time (`TypeId`), so the tower stays
//! generic over `B: Backend` and any other backend (CUDA, LibTorch) takes the composite path.
//! Setting `LEARNREC_FUSED=0` forces the composite path everywhere (for benchmarks and tests).
//! The composite and fused paths agree to float rounding (tests below).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, checkpoint::strategy::NoCheckpointing};
use super::config::AttentionMask;
use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;
use std::any::{Any, TypeId};
use std::sync::OnceLock;
use super::fused_linear::simd_fn;
use crate::backbone::layers::host::exp;

type AdFlex = Autodiff<Flex, NoCheckpointing>;

/// Whether the fused kernels are enabled (`LEARNREC_FUSED=0` disables them; read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("LEARNREC_FUSED").map(|v| v != "0").unwrap_or(true))
}

thread_local! {
    static FORCE_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the fused kernels disabled on this thread (tests compare both paths).
pub fn with_composite<R>(f: impl FnOnce() -> R) -> R {
    FORCE_OFF.with(|c| {
        let old = c.replace(true);
        let r = f();
        c.set(old);
        r
    })
}

pub(crate) fn active() -> bool {
    enabled() && !FORCE_OFF.with(|c| c.get())
}

/// Moves `t` into type `U` when they are the same type.
fn cast<T: 'static, U: 'static>(t: T) -> Result<U, T> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        let b: Box<dyn Any> = Box::new(t);
        Ok(*b.downcast::<U>().expect("same TypeId"))
    } else {
        Err(t)
    }
}

/// A float primitive of backend `B`, seen as one of the two CPU backends when it is one.
pub(super) enum Prim<B: Backend> {
    Ad(FloatTensor<AdFlex>),
    Flex(FlexTensor),
    Other(FloatTensor<B>),
}

pub(super) fn classify<B: Backend, const D: usize>(t: Tensor<B, D>) -> Prim<B> {
    let p = t.into_primitive().tensor();
    match cast::<FloatTensor<B>, FloatTensor<AdFlex>>(p) {
        Ok(a) => Prim::Ad(a),
        Err(p) => match cast::<FloatTensor<B>, FlexTensor>(p) {
            Ok(f) => Prim::Flex(f),
            Err(p) => Prim::Other(p),
        },
    }
}

pub(super) fn back<B: Backend, const D: usize, T: 'static>(t: T) -> Tensor<B, D> {
    let p = cast::<T, FloatTensor<B>>(t).unwrap_or_else(|_| unreachable!("classified as this backend"));
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

pub(super) fn slice(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous").to_vec()),
    }
}

pub(super) fn flex(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

// ---------------------------------------------------------------------------------------------
// Small vector helpers (eight accumulators so the compiler vectorises the reductions).

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for t in 0..8 {
            acc[t] += x[t] * y[t];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

// ---------------------------------------------------------------------------------------------
// Causal attention.

/// Forward kernel of one block of `b` sequences of length `l`: writes the context `ctx [b·l, d]`
/// and the probabilities `p [b, heads, l, l]`.
fn attention_fwd(qkv: &[f32], ctx: &mut [f32], p: &mut [f32], b: usize, l: usize, h: usize, d: usize) {
    ctx.par_chunks_mut(l * d).zip(p.par_chunks_mut(h * l * l)).enumerate().for_each(|(bi, (ctx, p))| {
        let x = &qkv[bi * l * 3 * d..(bi + 1) * l * 3 * d];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { attention_fwd_one_avx512(x, ctx, p, l, h, d) };
        }
        attention_fwd_one(x, ctx, p, l, h, d)
    });
    debug_assert_eq!(ctx.len(), b * l * d);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn attention_fwd_one_avx512(x: &[f32], ctx: &mut [f32], p: &mut [f32], l: usize, h: usize, d: usize) {
    attention_fwd_one(x, ctx, p, l, h, d)
}

/// One sequence: `x [l, 3d]` → `ctx [l, d]`, `p [h, l, l]`.
#[inline(always)]
fn attention_fwd_one(x: &[f32], ctx: &mut [f32], p: &mut [f32], l: usize, h: usize, d: usize) {
    let dh = d / h;
    let scale = 1.0 / (dh as f32).sqrt();
    {
        for hh in 0..h {
            for i in 0..l {
                let q = &x[i * 3 * d + hh * dh..][..dh];
                let row = &mut p[(hh * l + i) * l..][..l];
                let mut m = f32::NEG_INFINITY;
                for j in 0..=i {
                    let s = dot(q, &x[j * 3 * d + d + hh * dh..][..dh]) * scale;
                    row[j] = s;
                    m = m.max(s);
                }
                let mut sum = 0f32;
                for r in row[..=i].iter_mut() {
                    *r = exp(*r - m);
                    sum += *r;
                }
                let inv = 1.0 / sum;
                let out = &mut ctx[i * d + hh * dh..][..dh];
                for (j, r) in row[..=i].iter_mut().enumerate() {
                    *r *= inv;
                    axpy(out, *r, &x[j * 3 * d + 2 * d + hh * dh..][..dh]);
                }
            }
        }
    }
}

/// Backward kernel of one block: `dctx [b·l, d]` → `dqkv [b·l, 3d]` (written, not added).
#[allow(clippy::too_many_arguments)]
fn attention_bwd(qkv: &[f32], p: &[f32], dctx: &[f32], dqkv: &mut [f32], b: usize, l: usize, h: usize, d: usize) {
    debug_assert_eq!(dqkv.len(), b * l * 3 * d);
    dqkv.par_chunks_mut(l * 3 * d).enumerate().for_each(|(bi, dx)| {
        let x = &qkv[bi * l * 3 * d..(bi + 1) * l * 3 * d];
        let dc = &dctx[bi * l * d..(bi + 1) * l * d];
        let p = &p[bi * h * l * l..(bi + 1) * h * l * l];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { attention_bwd_one_avx512(x, p, dc, dx, l, h, d) };
        }
        attention_bwd_one(x, p, dc, dx, l, h, d)
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn attention_bwd_one_avx512(x: &[f32], p: &[f32], dc: &[f32], dx: &mut [f32], l: usize, h: usize, d: usize) {
    attention_bwd_one(x, p, dc, dx, l, h, d)
}

/// One sequence: `x [l, 3d]`, `p [h, l, l]`, `dc [l, d]` → `dx [l, 3d]` (written).
#[inline(always)]
fn attention_bwd_one(x: &[f32], p: &[f32], dc: &[f32], dx: &mut [f32], l: usize, h: usize, d: usize) {
    let dh = d / h;
    let scale = 1.0 / (dh as f32).sqrt();
    {
        dx.fill(0.0);
        let mut ds = vec![0f32; l];
        for hh in 0..h {
            for i in 0..l {
                let row = &p[(hh * l + i) * l..][..l];
                let dci = &dc[i * d + hh * dh..][..dh];
                let mut rowdot = 0f32;
                for j in 0..=i {
                    let dp = dot(dci, &x[j * 3 * d + 2 * d + hh * dh..][..dh]);
                    ds[j] = dp;
                    rowdot += row[j] * dp;
                }
                for j in 0..=i {
                    let pij = row[j];
                    let g = pij * (ds[j] - rowdot) * scale;
                    // dQ_i += g·K_j ; dK_j += g·Q_i ; dV_j += p_ij·dC_i
                    let (qi, kj) = (i * 3 * d + hh * dh, j * 3 * d + d + hh * dh);
                    axpy_split(dx, qi, g, x, kj, dh);
                    axpy_split(dx, kj, g, x, qi, dh);
                    axpy(&mut dx[j * 3 * d + 2 * d + hh * dh..][..dh], pij, dci);
                }
            }
        }
    }
}

#[inline(always)]
fn axpy_split(dst: &mut [f32], at: usize, a: f32, src: &[f32], from: usize, n: usize) {
    axpy(&mut dst[at..at + n], a, &src[from..from + n]);
}

/// A block of rows of a stacked token matrix: `batch` sequences of `len` tokens under `mask`.
/// The user and the item tower run as one pass over `[users' rows; items' rows]`
/// ([`super::model::LearnTower::user_and_item_sequences`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Sequences in the block.
    pub batch: usize,
    /// Tokens per sequence.
    pub len: usize,
    /// Attention mask inside each sequence.
    pub mask: AttentionMask,
}

impl Segment {
    fn rows(&self) -> usize {
        self.batch * self.len
    }
    fn probs(&self, h: usize) -> usize {
        match self.mask {
            AttentionMask::Causal => self.batch * h * self.len * self.len,
            AttentionMask::Diagonal => 0,
        }
    }
}

/// Forward over all segments: the context `[n, d]` and the probabilities of every causal segment
/// one after another. A diagonal segment's context is its V (softmax weight exactly 1).
fn segments_fwd(qkv: &[f32], segs: &[Segment], h: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let n: usize = segs.iter().map(Segment::rows).sum();
    let mut ctx = vec![0f32; n * d];
    let mut p = vec![0f32; segs.iter().map(|s| s.probs(h)).sum()];
    let (mut r0, mut p0) = (0, 0);
    for s in segs {
        let (rows, np) = (s.rows(), s.probs(h));
        let x = &qkv[r0 * 3 * d..(r0 + rows) * 3 * d];
        let c = &mut ctx[r0 * d..(r0 + rows) * d];
        match s.mask {
            AttentionMask::Causal => attention_fwd(x, c, &mut p[p0..p0 + np], s.batch, s.len, h, d),
            AttentionMask::Diagonal => {
                for (c, x) in c.chunks_mut(d).zip(x.chunks(3 * d)) {
                    c.copy_from_slice(&x[2 * d..]);
                }
            }
        }
        (r0, p0) = (r0 + rows, p0 + np);
    }
    (ctx, p)
}

fn segments_bwd(qkv: &[f32], p: &[f32], dctx: &[f32], segs: &[Segment], h: usize, d: usize) -> Vec<f32> {
    let n: usize = segs.iter().map(Segment::rows).sum();
    let mut dqkv = vec![0f32; n * 3 * d];
    let (mut r0, mut p0) = (0, 0);
    for s in segs {
        let (rows, np) = (s.rows(), s.probs(h));
        let x = &qkv[r0 * 3 * d..(r0 + rows) * 3 * d];
        let dc = &dctx[r0 * d..(r0 + rows) * d];
        let dx = &mut dqkv[r0 * 3 * d..(r0 + rows) * 3 * d];
        match s.mask {
            AttentionMask::Causal => attention_bwd(x, &p[p0..p0 + np], dc, dx, s.batch, s.len, h, d),
            AttentionMask::Diagonal => {
                for (dx, dc) in dx.chunks_mut(3 * d).zip(dc.chunks(d)) {
                    dx[2 * d..].copy_from_slice(dc);
                }
            }
        }
        (r0, p0) = (r0 + rows, p0 + np);
    }
    dqkv
}

#[derive(Debug)]
struct AttentionOp;

#[derive(Debug, Clone)]
struct AttentionState {
    qkv: FlexTensor,
    p: FlexTensor,
    segs: Vec<Segment>,
    heads: usize,
    d: usize,
}

impl Backward<Flex, 1> for AttentionOp {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = parent {
            let AttentionState { qkv, p, segs, heads, d } = ops.state;
            let dq = segments_bwd(&slice(&qkv), &slice(&p), &slice(&grad), &segs, heads, d);
            let n = dq.len() / (3 * d);
            grads.register::<Flex>(node.id, flex(dq, vec![n, 3 * d]));
        }
    }
}

/// Causal multi-head self-attention from a fused QKV projection, or `None` when the fused
/// kernels do not apply (other backends, or disabled) — then the caller takes the composite path.
///
/// # Shapes
/// `qkv`: `[batch·len, 3d]` (Q | K | V, heads contiguous inside each) → `[batch·len, d]`.
pub fn causal_attention<B: Backend>(
    qkv: &Tensor<B, 2>,
    batch: usize,
    len: usize,
    heads: usize,
) -> Option<Tensor<B, 2>> {
    segment_attention(qkv, &[Segment { batch, len, mask: AttentionMask::Causal }], heads)
}

/// Multi-head self-attention over stacked blocks of sequences ([`Segment`]s, each with its own
/// length and mask) from a fused QKV projection, or `None` when the fused kernels do not apply.
///
/// # Shapes
/// `qkv`: `[Σ batch·len, 3d]` (rows of the segments in order) → `[Σ batch·len, d]`.
pub fn segment_attention<B: Backend>(qkv: &Tensor<B, 2>, segs: &[Segment], heads: usize) -> Option<Tensor<B, 2>> {
    if !active() {
        return None;
    }
    let [n, d3] = qkv.dims();
    let d = d3 / 3;
    debug_assert_eq!(n, segs.iter().map(Segment::rows).sum::<usize>());
    match classify(qkv.clone()) {
        Prim::Ad(t) => {
            let (ctx, p) = segments_fwd(&slice(&t.primitive), segs, heads, d);
            let out = flex(ctx, vec![n, d]);
            let res = match AttentionOp.prepare::<NoCheckpointing>([t.node.clone()]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let np = p.len();
                    let state =
                        AttentionState { qkv: t.primitive.clone(), p: flex(p, vec![np]), segs: segs.to_vec(), heads, d };
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Some(back::<B, 2, _>(res))
        }
        Prim::Flex(t) => {
            let (ctx, _) = segments_fwd(&slice(&t), segs, heads, d);
            Some(back::<B, 2, _>(flex(ctx, vec![n, d])))
        }
        Prim::Other(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm.

const LN_ROWS: usize = 64;

fn layer_norm_fwd(x: &[f32], gamma: &[f32], beta: &[f32], d: usize, eps: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = x.len() / d;
    let mut y = vec![0f32; n * d];
    let mut xhat = vec![0f32; n * d];
    let mut rstd = vec![0f32; n];
    y.par_chunks_mut(d * LN_ROWS)
        .zip(xhat.par_chunks_mut(d * LN_ROWS))
        .zip(rstd.par_chunks_mut(LN_ROWS))
        .zip(x.par_chunks(d * LN_ROWS))
        .for_each(|(((y, xh), rs), x)| {
            for (r, ((y, xh), x)) in y.chunks_mut(d).zip(xh.chunks_mut(d)).zip(x.chunks(d)).enumerate() {
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                let inv = (1.0 / (var + eps).sqrt()) as f32;
                let mean = mean as f32;
                for t in 0..d {
                    let v = (x[t] - mean) * inv;
                    xh[t] = v;
                    y[t] = v * gamma[t] + beta[t];
                }
                rs[r] = inv;
            }
        });
    (y, xhat, rstd)
}

/// Returns `(dx, dgamma, dbeta)`.
fn layer_norm_bwd(dy: &[f32], xhat: &[f32], rstd: &[f32], gamma: &[f32], d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = dy.len() / d;
    let mut dx = vec![0f32; n * d];
    let parts = dx
        .par_chunks_mut(d * LN_ROWS)
        .zip(dy.par_chunks(d * LN_ROWS))
        .zip(xhat.par_chunks(d * LN_ROWS))
        .zip(rstd.par_chunks(LN_ROWS))
        .map(|(((dx, dy), xh), rs)| {
            let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
            for (r, ((dx, dy), xh)) in dx.chunks_mut(d).zip(dy.chunks(d)).zip(xh.chunks(d)).enumerate() {
                let (mut s1, mut s2) = (0f32, 0f32);
                for t in 0..d {
                    let g = dy[t] * gamma[t];
                    s1 += g;
                    s2 += g * xh[t];
                    dg[t] += dy[t] * xh[t];
                    db[t] += dy[t];
                }
                let (m1, m2) = (s1 / d as f32, s2 / d as f32);
                for t in 0..d {
                    dx[t] = rs[r] * (dy[t] * gamma[t] - m1 - xh[t] * m2);
                }
            }
            (dg, db)
        })
        .collect::<Vec<_>>();
    // Summed in block order: the result does not depend on rayon's work split.
    let (mut dg, mut db) = (vec![0f32; d], vec![0f32; d]);
    for (g, b) in &parts {
        axpy(&mut dg, 1.0, g);
        axpy(&mut db, 1.0, b);
    }
    (dx, dg, db)
}

#[derive(Debug)]
struct LayerNormOp;

#[derive(Debug, Clone)]
struct LayerNormState {
    xhat: FlexTensor,
    rstd: FlexTensor,
    gamma: FlexTensor,
    shape: Vec<usize>,
}

impl Backward<Flex, 3> for LayerNormOp {
    type State = LayerNormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pg, pb] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let LayerNormState { xhat, rstd, gamma, shape } = ops.state;
        let d = *shape.last().expect("rank ≥ 1");
        let (dx, dg, db) = layer_norm_bwd(&slice(&grad), &slice(&xhat), &slice(&rstd), &slice(&gamma), d);
        if let Some(node) = px {
            grads.register::<Flex>(node.id, flex(dx, shape));
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, flex(dg, vec![d]));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, flex(db, vec![d]));
        }
    }
}

/// LayerNorm over the last dimension, or `None` when the fused kernels do not apply.
///
/// # Shapes
/// `x`: `[.., d]`, `gamma`, `beta`: `[d]` → same as `x`.
pub fn layer_norm<B: Backend, const D: usize>(
    x: &Tensor<B, D>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, D>> {
    if !active() {
        return None;
    }
    let shape = x.dims().to_vec();
    let d = shape[D - 1];
    match (classify(x.clone()), classify(gamma.clone()), classify(beta.clone())) {
        (Prim::Ad(x), Prim::Ad(g), Prim::Ad(bt)) => {
            let gs = g.primitive.clone();
            let (y, xhat, rstd) = layer_norm_fwd(&slice(&x.primitive), &slice(&gs), &slice(&bt.primitive), d, eps);
            let n = rstd.len();
            let out = flex(y, shape.clone());
            let nodes = [x.node.clone(), g.node.clone(), bt.node.clone()];
            let res = match LayerNormOp.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let state =
                        LayerNormState { xhat: flex(xhat, vec![n, d]), rstd: flex(rstd, vec![n]), gamma: gs, shape };
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Some(back::<B, D, _>(res))
        }
        (Prim::Flex(x), Prim::Flex(g), Prim::Flex(bt)) => {
            let (y, _, _) = layer_norm_fwd(&slice(&x), &slice(&g), &slice(&bt), d, eps);
            Some(back::<B, D, _>(flex(y, shape)))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Dense all-action InfoNCE from the score matrix (fused softmax–cross-entropy).

/// Host description of the dense loss over a `[b·lh, b·lt]` score matrix.
pub(crate) struct DenseLossPlan {
    pub b: usize,
    pub lh: usize,
    pub lt: usize,
    /// Valid history positions per user.
    pub nh: Vec<usize>,
    /// Valid target positions per user.
    pub nt: Vec<usize>,
    /// `neg[i·c + col]`: column `col` is a negative of user i.
    pub neg: Vec<bool>,
    pub n_pairs: usize,
    pub scale: f32,
}

simd_fn! {
    /// One valid row `(i, j)` of the score matrix: returns its loss `Σ_k ℓ_ijk` and writes the
    /// gradient w.r.t. the raw scores into `g` (already divided by the number of pairs).
    /// Branch-free over the columns (masks as selects), so the loops vectorise.
    fn loss_row(row: &[f32], neg: &[bool], g: &mut [f32], first_col: usize, nt: usize, scale: f32, norm: f32) -> f64 {
        let mut mx = f32::NEG_INFINITY;
        for (&v, &n) in row.iter().zip(neg) {
            mx = if n { mx.max(v * scale) } else { mx };
        }
        let has_neg = mx > f32::NEG_INFINITY;
        let mut negsum = 0f32;
        if has_neg {
            // Eight partial sums: vectorises (f32 order differs from a serial sum by rounding).
            let mut acc = [0f32; 8];
            for ((r8, n8), g8) in row.chunks(8).zip(neg.chunks(8)).zip(g.chunks_mut(8)) {
                for t in 0..r8.len() {
                    let e = exp(r8[t] * scale - mx);
                    let e = if n8[t] { e } else { 0.0 };
                    g8[t] = e;
                    acc[t] += e;
                }
            }
            negsum = acc.iter().sum();
        } else {
            g.fill(0.0);
        }
        let mut loss = 0f64;
        let mut w = 0f32; // Σ_k e^{M − m_k} / D_k
        for k in 0..nt {
            let col = first_col + k;
            let sp = row[col] * scale;
            let m = if mx > sp { mx } else { sp };
            let ep = (sp - m).exp();
            let en = if has_neg { (mx - m).exp() } else { 0.0 };
            let dk = ep + en * negsum;
            loss += (dk.ln() + m - sp) as f64;
            g[col] = (ep / dk - 1.0) * scale * norm;
            w += en / dk;
        }
        let f = w * scale * norm;
        for (gg, &n) in g.iter_mut().zip(neg) {
            *gg = if n { *gg * f } else { *gg };
        }
        loss
    }
}

/// The loss (sum over valid pairs / n_pairs) and the gradient w.r.t. the raw scores, over a
/// given score matrix (tests check [`loss_row`] by hand with it).
#[cfg(test)]
fn dense_loss_kernel(s: &[f32], plan: &DenseLossPlan) -> (f64, Vec<f32>) {
    let (b, lh, lt) = (plan.b, plan.lh, plan.lt);
    let c = b * lt;
    let norm = 1.0 / plan.n_pairs.max(1) as f32;
    let mut grad = vec![0f32; b * lh * c];
    let loss: f64 = grad
        .par_chunks_mut(c)
        .enumerate()
        .map(|(r, g)| {
            let (i, j) = (r / lh, r % lh);
            if j >= plan.nh[i] || plan.nt[i] == 0 {
                return 0.0;
            }
            loss_row(&s[r * c..(r + 1) * c], &plan.neg[i * c..(i + 1) * c], g, i * lt, plan.nt[i], plan.scale, norm)
        })
        .sum();
    (loss / plan.n_pairs.max(1) as f64, grad)
}

/// User groups of the dense loss (each a task with its own item-gradient accumulator).
const LOSS_GROUPS: usize = 16;

/// The dense loss straight from the embeddings, never holding the `[B·Lh, B·Lt]` score matrix:
/// user by user, the scores of its valid history rows against all targets (`U_i·Iᵀ`, one small
/// GEMM), their loss and score gradient `G_i` ([`loss_row`]), then `dU_i = G_i·I` and
/// `dI += G_iᵀ·U_i` (per-thread accumulators, summed at the end). Returns
/// `(loss, dU [b·lh, dim], dI [b·lt, dim])`; padding rows get zero gradient.
fn dense_loss_embeddings(u: &[f32], it: &[f32], dim: usize, plan: &DenseLossPlan) -> (f64, Vec<f32>, Vec<f32>) {
    use crate::host_gemm::{Mat, Par, gemm};
    let (b, lh, lt) = (plan.b, plan.lh, plan.lt);
    let c = b * lt;
    let norm = 1.0 / plan.n_pairs.max(1) as f32;
    let mut du = vec![0f32; b * lh * dim];
    // A fixed number of user groups, each with its own dI accumulator, summed in group order:
    // the result does not depend on rayon's work split (reproducible bit for bit).
    let per_group = b.div_ceil(LOSS_GROUPS).max(1);
    let parts: Vec<(f64, Vec<f32>)> = du
        .par_chunks_mut(per_group * lh * dim)
        .enumerate()
        .map(|(gi, du)| {
            let (mut loss, mut di) = (0f64, vec![0f32; c * dim]);
            for (k, du) in du.chunks_mut(lh * dim).enumerate() {
                let i = gi * per_group + k;
                let (nh, nt) = (plan.nh[i], plan.nt[i]);
                if nh == 0 || nt == 0 {
                    continue;
                }
                let ui = &u[i * lh * dim..(i * lh + nh) * dim];
                let mut s = vec![0f32; nh * c];
                gemm(&mut s, nh, c, dim, Mat::rows(ui, dim), Mat::t(it, dim), false, Par::One);
                let neg = &plan.neg[i * c..(i + 1) * c];
                for row in s.chunks_mut(c) {
                    // The row is read (scores) before it is overwritten (gradient): copy it once.
                    let scores = row.to_vec();
                    loss += loss_row(&scores, neg, row, i * lt, nt, plan.scale, norm);
                }
                // dU_i = G_i · I ; dI += G_iᵀ · U_i
                gemm(&mut du[..nh * dim], nh, dim, c, Mat::rows(&s, c), Mat::rows(it, dim), false, Par::One);
                gemm(&mut di, c, dim, nh, Mat::t(&s, c), Mat::rows(ui, dim), true, Par::One);
            }
            (loss, di)
        })
        .collect();
    let loss = parts.iter().map(|p| p.0).sum::<f64>();
    let di = super::fused_linear::sum_in_order(parts.into_iter().map(|p| p.1).collect(), c * dim);
    (loss / plan.n_pairs.max(1) as f64, du, di)
}

#[derive(Debug)]
struct DenseLossEmbOp;

impl Backward<Flex, 2> for DenseLossEmbOp {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [pu, pi] = ops.parents;
        let g = grads.consume::<Flex>(&ops.node);
        let g = slice(&g)[0];
        // The usual root gradient is exactly 1: hand over the kept gradients without a copy.
        let scaled = |t: FlexTensor| {
            if g == 1.0 {
                return t;
            }
            let shape = t.layout().shape().to_vec();
            let mut v = slice(&t).into_owned();
            v.par_iter_mut().for_each(|x| *x *= g);
            flex(v, shape)
        };
        let (du, di) = ops.state;
        if let Some(node) = pu {
            grads.register::<Flex>(node.id, scaled(du));
        }
        if let Some(node) = pi {
            grads.register::<Flex>(node.id, scaled(di));
        }
    }
}

/// The dense loss from the user and item embeddings (the score matrix `U·Iᵀ` is formed block by
/// block inside, never whole), or `None` when the fused kernels do not apply.
///
/// # Shapes
/// `users`: `[b·lh, dim]`, `items`: `[b·lt, dim]` → scalar `[1]`.
pub(crate) fn dense_loss_from_embeddings<B: Backend>(
    users: &Tensor<B, 2>,
    items: &Tensor<B, 2>,
    plan: &DenseLossPlan,
) -> Option<Tensor<B, 1>> {
    if !active() {
        return None;
    }
    let [r, dim] = users.dims();
    let [c, _] = items.dims();
    match (classify(users.clone()), classify(items.clone())) {
        (Prim::Ad(u), Prim::Ad(it)) => {
            let (loss, du, di) = dense_loss_embeddings(&slice(&u.primitive), &slice(&it.primitive), dim, plan);
            let out = flex(vec![loss as f32], vec![1]);
            let nodes = [u.node.clone(), it.node.clone()];
            let res = match DenseLossEmbOp.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((flex(du, vec![r, dim]), flex(di, vec![c, dim])), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Some(back::<B, 1, _>(res))
        }
        (Prim::Flex(u), Prim::Flex(it)) => {
            let (loss, _, _) = dense_loss_embeddings(&slice(&u), &slice(&it), dim, plan);
            Some(back::<B, 1, _>(flex(vec![loss as f32], vec![1])))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Allocator.

/// Keeps freed tensor buffers in the process heap (glibc only; a no-op elsewhere).
///
/// A training step allocates and frees the same large activation buffers (up to tens of MB) every
/// step. glibc serves large requests with fresh `mmap`s and trims freed heap memory back to the
/// OS, so every step page-faults and zeroes those pages again (5–10% of a step here). This sets
/// the mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 2 GiB, once per
/// process: buffers are reused from the heap. It changes no results. Called by
/// [`super::train::train`] and the benchmark; process-wide, like `MALLOC_MMAP_THRESHOLD_`.
pub fn keep_heap_memory() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only sets glibc allocator parameters; any value is accepted or
            // rejected (return 0) without other effect.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Adam: one in-place pass per parameter.

/// Adam's hyper-parameters (Burn's `AdaptiveMomentum`, no weight decay, no AMSGrad).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamHyper {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

const ADAM_CHUNK: usize = 1 << 14;

/// Burn's Adam update, element by element, in the same f32 operation order as its tensor ops
/// (`m₁ = β₁m₁ + (1−β₁)g`, `m₂ = β₂m₂ + (1−β₂)g²`,
/// `p −= lr · (m₁·c) / (√m₂ + ε·√(1−β₂ᵗ))` with `c = √(1−β₂ᵗ) / (1−β₁ᵗ)`), so the result is the
/// same to the bit. `first`: there are no moments yet (they start from zero).
fn adam_kernel(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], first: bool, h: AdamHyper, time: i32, lr: f32) {
    let bc2 = (1.0 - h.beta_2.powi(time)).sqrt();
    let k = AdamConsts {
        b1: h.beta_1,
        b2: h.beta_2,
        f1: 1.0 - h.beta_1,
        f2: 1.0 - h.beta_2,
        cf: bc2 / (1.0 - h.beta_1.powi(time)),
        eps: h.epsilon * bc2,
        lr,
    };
    p.par_chunks_mut(ADAM_CHUNK)
        .zip(g.par_chunks(ADAM_CHUNK))
        .zip(m1.par_chunks_mut(ADAM_CHUNK))
        .zip(m2.par_chunks_mut(ADAM_CHUNK))
        .for_each(|(((p, g), m1), m2)| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { adam_chunk_avx512(p, g, m1, m2, first, k) };
            }
            adam_chunk(p, g, m1, m2, first, k)
        });
}

#[derive(Clone, Copy)]
struct AdamConsts {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    cf: f32,
    eps: f32,
    lr: f32,
}

/// The element loop (iterators, no bounds checks: it vectorises). No FMA contraction happens in
/// Rust, so every build rounds as Burn's separate tensor ops do.
#[inline(always)]
fn adam_chunk(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], first: bool, k: AdamConsts) {
    let it = p.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut());
    if first {
        for (((p, &g), a), v) in it {
            *a = g * k.f1;
            *v = (g * g) * k.f2;
            *p -= ((*a * k.cf) / (v.sqrt() + k.eps)) * k.lr;
        }
    } else {
        for (((p, &g), a), v) in it {
            *a = *a * k.b1 + g * k.f1;
            *v = *v * k.b2 + (g * g) * k.f2;
            *p -= ((*a * k.cf) / (v.sqrt() + k.eps)) * k.lr;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn adam_chunk_avx512(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], first: bool, k: AdamConsts) {
    adam_chunk(p, g, m1, m2, first, k)
}

/// A whole contiguous f32 buffer of a Flex tensor, writable (copied first when shared).
fn whole_mut(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.layout().num_elements();
    let full = t.dtype() == burn::tensor::DType::F32
        && t.is_contiguous()
        && t.layout().start_offset() == 0
        && t.bytes().len() == n * 4;
    full.then(|| t.storage_mut::<f32>())
}

/// Moments of one parameter: `(steps taken, m₁, m₂)`.
pub(crate) type AdamMoments<B, const D: usize> = (usize, Tensor<B, D>, Tensor<B, D>);

/// One Adam step of one parameter in place on the Flex backend: returns the new parameter and
/// moments, or gives the inputs back (`Err`) when the fused step does not apply (disabled, other
/// backend, not f32, non-contiguous).
#[allow(clippy::type_complexity)]
pub(crate) fn adam_step<B: Backend, const D: usize>(
    h: AdamHyper,
    lr: f64,
    tensor: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<AdamMoments<B, D>>,
) -> Result<(Tensor<B, D>, AdamMoments<B, D>), (Tensor<B, D>, Tensor<B, D>, Option<AdamMoments<B, D>>)> {
    let flex_ok = |t: &Tensor<B, D>| {
        TypeId::of::<FloatTensor<B>>() == TypeId::of::<FlexTensor>()
            && t.dtype() == burn::tensor::DType::F32
    };
    if !active() || !flex_ok(&tensor) || !flex_ok(&grad) || moments.as_ref().is_some_and(|m| !flex_ok(&m.1) || !flex_ok(&m.2)) {
        return Err((tensor, grad, moments));
    }
    let to_flex = |t: Tensor<B, D>| match classify(t) {
        Prim::Flex(f) => f,
        _ => unreachable!("checked: Flex tensor"),
    };
    let shape = tensor.dims().to_vec();
    let n: usize = shape.iter().product();
    let mut p = to_flex(tensor);
    let g = to_flex(grad);
    let (time, mut m1, mut m2, first) = match moments {
        Some((t, a, b)) => (t + 1, to_flex(a), to_flex(b), false),
        None => (1, flex(vec![0.0; n], shape.clone()), flex(vec![0.0; n], shape.clone()), true),
    };
    let gs = slice(&g);
    match (whole_mut(&mut p), whole_mut(&mut m1), whole_mut(&mut m2)) {
        (Some(pp), Some(a), Some(b)) if pp.len() == n && a.len() == n && b.len() == n && gs.len() == n => {
            adam_kernel(pp, &gs, a, b, first, h, time as i32, lr as f32);
        }
        _ => {
            // Non-contiguous parameter or moment: make them contiguous, then the same kernel.
            drop(gs);
            let mut p = p.to_contiguous();
            let (mut m1, mut m2) = (m1.to_contiguous(), m2.to_contiguous());
            let gs = slice(&g);
            let (pp, a, b) = (p.storage_mut::<f32>(), m1.storage_mut::<f32>(), m2.storage_mut::<f32>());
            adam_kernel(pp, &gs, a, b, first, h, time as i32, lr as f32);
            return Ok((back::<B, D, _>(p), (time, back::<B, D, _>(m1), back::<B, D, _>(m2))));
        }
    }
    Ok((back::<B, D, _>(p), (time, back::<B, D, _>(m1), back::<B, D, _>(m2))))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::with_composite;
    use crate::CpuAutodiff as B;
    use crate::CpuBackend as I;
    use crate::towers::attention::{LayerNorm, SelfAttentionConfig};
    use crate::towers::config::AttentionMask;
    use crate::towers::loss::{LossMasks, dense_all_action_loss};
    use crate::towers::model::{TowerInput, l2_normalize};
    use crate::towers::{InputKind, TowerConfig};
    use burn::module::AutodiffModule;
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub(crate) fn tensor<BB: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<BB, D> {
        let n = shape.iter().product();
        Tensor::from_data(TensorData::new(values(n, seed), shape), &Default::default())
    }

    pub(crate) fn vec<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().expect("f32")
    }

    pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "{what}[{i}]: fused {x} vs composite {y} (scale {scale})");
        }
    }

    #[test]
    fn fused_attention_matches_composite_values_and_gradients() {
        let dev = Default::default();
        let att = SelfAttentionConfig::new(16, 4).init::<B>(&dev);
        let w = tensor::<B, 3>([3, 7, 16], 9);
        let run = |fused: bool| {
            let x = tensor::<B, 3>([3, 7, 16], 1).mul_scalar(3.0).require_grad();
            let f = || att.forward(x.clone(), AttentionMask::Causal);
            let y = if fused { f() } else { with_composite(f) };
            let g = (y.clone() * w.clone()).sum().backward();
            let gx = x.grad(&g).expect("x grad");
            let gw = att.qkv.weight.val().grad(&g).expect("qkv weight grad");
            let gb = att.qkv.bias.as_ref().expect("bias").val().grad(&g).expect("qkv bias grad");
            (vec(y), vec(gx), vec(gw), vec(gb))
        };
        let (a, b) = (run(true), run(false));
        assert!(a.1.iter().any(|v| v.abs() > 1e-6), "gradient must not vanish");
        assert_close(&a.0, &b.0, 1e-5, "attention output");
        assert_close(&a.1, &b.1, 1e-4, "d input");
        assert_close(&a.2, &b.2, 1e-4, "d qkv weight");
        assert_close(&a.3, &b.3, 1e-4, "d qkv bias");
        // Causality: output at position 0 does not depend on later positions.
        let x = tensor::<I, 3>([1, 5, 16], 3);
        let inner = att.valid();
        let y1 = vec(inner.forward(x.clone(), AttentionMask::Causal).narrow(1, 0, 2));
        let x2 = Tensor::cat(vec![x.clone().narrow(1, 0, 2), tensor::<I, 3>([1, 3, 16], 4)], 1);
        let y2 = vec(inner.forward(x2, AttentionMask::Causal).narrow(1, 0, 2));
        assert_close(&y1, &y2, 1e-6, "causal prefix");
        let y3 = vec(with_composite(|| inner.forward(x, AttentionMask::Causal).narrow(1, 0, 2)));
        assert_close(&y1, &y3, 1e-5, "inference fused vs composite");
    }

    #[test]
    fn fused_layer_norm_matches_composite_values_and_gradients() {
        let dev = Default::default();
        let mut ln = LayerNorm::<B>::new(24, 1e-12, &dev);
        ln.gamma = burn::module::Param::from_tensor(tensor::<B, 1>([24], 5).add_scalar(1.0));
        ln.beta = burn::module::Param::from_tensor(tensor::<B, 1>([24], 6));
        let w = tensor::<B, 3>([2, 70, 24], 7);
        let run = |fused: bool| {
            let x = tensor::<B, 3>([2, 70, 24], 2).mul_scalar(4.0).add_scalar(1.5).require_grad();
            let f = || ln.forward(x.clone());
            let y = if fused { f() } else { with_composite(f) };
            let g = (y.clone() * w.clone()).sum().backward();
            let gx = x.grad(&g).expect("x grad");
            let gg = ln.gamma.val().grad(&g).expect("gamma grad");
            let gb = ln.beta.val().grad(&g).expect("beta grad");
            (vec(y), vec(gx), vec(gg), vec(gb))
        };
        let (a, b) = (run(true), run(false));
        assert_close(&a.0, &b.0, 1e-5, "layer norm output");
        assert_close(&a.1, &b.1, 1e-4, "d x");
        assert_close(&a.2, &b.2, 1e-4, "d gamma");
        assert_close(&a.3, &b.3, 1e-4, "d beta");
    }

    #[test]
    fn fused_dense_loss_matches_composite_value_and_gradients() {
        // Padding on both sides, a target item shared by two users, a user without negatives
        // among duplicates.
        let masks = LossMasks {
            history_lens: vec![4, 2, 3, 1],
            targets: vec![vec![1, 2, 3], vec![3, 4], vec![5], vec![6, 7, 1]],
        };
        let run = |fused: bool| {
            let u = l2_normalize(tensor::<B, 3>([4, 4, 8], 11)).detach().require_grad();
            let it = l2_normalize(tensor::<B, 3>([4, 3, 8], 12)).detach().require_grad();
            let f = || dense_all_action_loss(u.clone(), it.clone(), &masks, 20.0);
            let loss = if fused { f() } else { with_composite(f) };
            let g = loss.clone().backward();
            (vec(loss), vec(u.grad(&g).expect("u grad")), vec(it.grad(&g).expect("items grad")))
        };
        let (a, b) = (run(true), run(false));
        assert!(a.0[0].is_finite() && a.0[0] > 0.0, "loss {}", a.0[0]);
        assert_close(&a.0, &b.0, 1e-5, "loss");
        assert_close(&a.1, &b.1, 1e-4, "d users");
        assert_close(&a.2, &b.2, 1e-4, "d items");
        // A root gradient other than 1 scales the kept score gradient.
        let u = l2_normalize(tensor::<B, 3>([4, 4, 8], 11)).detach().require_grad();
        let it = l2_normalize(tensor::<B, 3>([4, 3, 8], 12)).detach().require_grad();
        let g = dense_all_action_loss(u.clone(), it, &masks, 20.0).mul_scalar(3.0).backward();
        let tripled: Vec<f32> = a.1.iter().map(|v| v * 3.0).collect();
        assert_close(&vec(u.grad(&g).expect("u grad")), &tripled, 1e-5, "3 × d users");
        // Padded history rows get no gradient.
        assert!(a.1[(1 * 4 + 3) * 8..(1 * 4 + 4) * 8].iter().all(|&v| v == 0.0));
        // Inference backend: same value.
        let u = l2_normalize(tensor::<I, 3>([4, 4, 8], 11));
        let it = l2_normalize(tensor::<I, 3>([4, 3, 8], 12));
        let v = vec(dense_all_action_loss(u, it, &masks, 20.0));
        assert_close(&v, &b.0, 1e-5, "inference loss");
    }

    #[test]
    fn fused_tower_step_matches_composite() {
        let dev = Default::default();
        let mut c = TowerConfig::tiny(InputKind::LlmContent, 12);
        c.n_layers = 2;
        let tower = c.init::<B>(&dev).expect("valid config");
        let x = tensor::<B, 3>([3, 6, 12], 21);
        let masks = LossMasks { history_lens: vec![6, 4, 2], targets: vec![vec![1, 2], vec![3, 4], vec![5, 6]] };
        let run = |fused: bool| {
            let f = || {
                let u = tower.user_sequence(TowerInput::Content(x.clone()));
                let it = tower.user_sequence(TowerInput::Content(x.clone().narrow(1, 0, 2)));
                dense_all_action_loss(u, it, &masks, 20.0)
            };
            let loss = if fused { f() } else { with_composite(f) };
            let g = loss.clone().backward();
            let gw = tower.layers[0].attention.qkv.weight.val().grad(&g).expect("qkv grad");
            let gn = tower.layers[1].norm_ff.gamma.val().grad(&g).expect("gamma grad");
            let gp = tower.content_proj.weight.val().grad(&g).expect("proj grad");
            (vec(loss), vec(gw), vec(gn), vec(gp))
        };
        let (a, b) = (run(true), run(false));
        assert_close(&a.0, &b.0, 1e-5, "loss");
        assert_close(&a.1, &b.1, 1e-3, "d qkv (layer 0)");
        assert_close(&a.2, &b.2, 1e-3, "d gamma (layer 1)");
        assert_close(&a.3, &b.3, 1e-3, "d content projection");
    }

    /// The one-pass user + item towers (stacked tokens, fused) against two composite passes:
    /// values and gradients, item tower variants 1 (causal) and 2 (diagonal), content and ids.
    #[test]
    fn stacked_towers_match_two_composite_passes() {
        use crate::towers::ItemTowerVariant;
        let dev = Default::default();
        for (variant, ids) in [(ItemTowerVariant::SharedCausal, false), (ItemTowerVariant::SharedDiagonal, true)] {
            let mut c = if ids { TowerConfig::tiny(InputKind::Id, 12) } else { TowerConfig::tiny(InputKind::LlmContent, 12) };
            c.n_layers = 2;
            c.dropout = 0.0;
            c.n_items = 30;
            let tower = c.init::<B>(&dev).expect("valid config");
            let input = |b: usize, l: usize, seed: u64| {
                if ids {
                    let v: Vec<i64> = values(b * l, seed).iter().map(|x| ((x + 1.0) * 14.0) as i64 + 1).collect();
                    TowerInput::Ids(Tensor::from_data(TensorData::new(v, [b, l]), &dev))
                } else {
                    TowerInput::Content(tensor::<B, 3>([b, l, 12], seed))
                }
            };
            let (h, t) = (input(3, 6, 31), input(3, 4, 32));
            let masks = LossMasks {
                history_lens: vec![6, 4, 2],
                targets: vec![vec![1, 2, 3], vec![3, 4], vec![5, 6, 7, 8]],
            };
            let wu = tensor::<B, 3>([3, 6, c.embedding_dim()], 33);
            let run = |stacked: bool| {
                let f = || {
                    let (u, it) = if stacked {
                        tower.user_and_item_sequences(h.clone(), t.clone(), variant)
                    } else {
                        (tower.user_sequence(h.clone()), tower.item_sequence(t.clone(), variant))
                    };
                    let loss = dense_all_action_loss(u.clone(), it.clone(), &masks, 20.0) + (u.clone() * wu.clone()).sum();
                    (loss, u, it)
                };
                let (loss, u, it) = if stacked { f() } else { with_composite(f) };
                let g = loss.clone().backward();
                let gw = tower.layers[0].attention.qkv.weight.val().grad(&g).expect("qkv grad");
                let gn = tower.layers[1].norm_ff.gamma.val().grad(&g).expect("gamma grad");
                let gp = match &tower.id_embedding {
                    Some(e) => e.weight.val().grad(&g).expect("id embedding grad"),
                    None => tower.content_proj.weight.val().grad(&g).expect("proj grad"),
                };
                (vec(loss), vec(u), vec(it), vec(gw), vec(gn), vec(gp))
            };
            let (a, b) = (run(true), run(false));
            let what = format!("{variant:?}");
            assert!(a.3.iter().any(|v| v.abs() > 1e-6), "{what}: gradient must not vanish");
            assert_close(&a.0, &b.0, 1e-5, &format!("{what} loss"));
            assert_close(&a.1, &b.1, 1e-5, &format!("{what} users"));
            assert_close(&a.2, &b.2, 1e-5, &format!("{what} items"));
            assert_close(&a.3, &b.3, 1e-3, &format!("{what} d qkv (layer 0)"));
            assert_close(&a.4, &b.4, 1e-3, &format!("{what} d gamma (layer 1)"));
            assert_close(&a.5, &b.5, 1e-3, &format!("{what} d input projection"));
            // The composite path of the stacked pass (per-segment attention) agrees too.
            let c1 = with_composite(|| tower.user_and_item_sequences(h.clone(), t.clone(), variant));
            assert_close(&vec(c1.0), &b.1, 1e-5, &format!("{what} composite stacked users"));
            assert_close(&vec(c1.1), &b.2, 1e-5, &format!("{what} composite stacked items"));
        }
    }
}

#[cfg(test)]
mod dispatch_tests {
    use super::{DenseLossPlan, causal_attention, dense_loss_from_embeddings, layer_norm, with_composite};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};

    fn plan() -> DenseLossPlan {
        DenseLossPlan {
            b: 2,
            lh: 1,
            lt: 1,
            nh: vec![1, 1],
            nt: vec![1, 1],
            neg: vec![false, true, true, false],
            n_pairs: 2,
            scale: 1.0,
        }
    }

    fn applies<B: Backend>() -> [bool; 3] {
        let dev = Default::default();
        let qkv = Tensor::<B, 2>::from_data(TensorData::new(vec![0.1f32; 6 * 24], [6, 24]), &dev);
        let g = Tensor::<B, 1>::ones([24], &dev);
        let e = Tensor::<B, 2>::from_data(TensorData::new(vec![0.5f32, 0.1, 0.2, 0.3], [2, 2]), &dev);
        [
            causal_attention(&qkv, 2, 3, 4).is_some(),
            layer_norm(&qkv.clone().narrow(1, 0, 24), &g, &g.clone().zeros_like(), 1e-5).is_some(),
            dense_loss_from_embeddings(&e, &e, &plan()).is_some(),
        ]
    }

    #[test]
    fn fused_kernels_apply_on_both_cpu_backends_and_can_be_switched_off() {
        if !super::enabled() {
            println!("skipped: LEARNREC_FUSED=0");
            return;
        }
        assert_eq!(applies::<crate::CpuAutodiff>(), [true; 3]);
        assert_eq!(applies::<crate::CpuBackend>(), [true; 3]);
        assert_eq!(with_composite(applies::<crate::CpuAutodiff>), [false; 3]);
    }

    #[test]
    fn dense_loss_kernel_matches_hand_computation() {
        // Two users, one position, one target each; each has the other's target as negative.
        // loss_i = log(e^{s_ii} + e^{s_iz}) − s_ii.
        let s = [0.5f32, 0.1, 0.2, 0.3];
        let (loss, grad) = super::dense_loss_kernel(&s, &plan());
        let l0 = ((0.5f64).exp() + (0.1f64).exp()).ln() - 0.5;
        let l1 = ((0.3f64).exp() + (0.2f64).exp()).ln() - 0.3;
        assert!((loss - (l0 + l1) / 2.0).abs() < 1e-6, "{loss}");
        let p0 = (0.5f64).exp() / ((0.5f64).exp() + (0.1f64).exp());
        assert!((grad[0] as f64 - (p0 - 1.0) / 2.0).abs() < 1e-6, "{grad:?}");
        assert!((grad[1] as f64 - (1.0 - p0) / 2.0).abs() < 1e-6, "{grad:?}");
    }
}
