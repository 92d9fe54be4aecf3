//! Fused linear layers for the LEARN tower: `y = act(x·W + b)` as one custom autodiff op on the
//! CPU backends.
//!
//! Burn's `Linear` on Flex is a matmul (whose output buffer is zeroed, then copied once more to
//! realign it), a broadcast bias add, and for the feed-forward block a GELU built from five
//! element-wise ops with scalar `erf`/`exp` calls — forward and again backward. Here one op calls
//! the GEMM (the `gemm` crate Flex itself uses) straight into its output buffer, adds the bias in
//! the same pass as the activation, and the backward computes
//! `dz = dy ⊙ act'(u)` and `db = Σ_rows dz` in one pass, then `dX = dz·Wᵀ` and `dW = Xᵀ·dz` as one
//! GEMM each on the stored layouts (no transposed copies). GELU is the exact erf form
//! `0.5·u·(1 + erf(u/√2))` with a branch-free `erf` and `exp` that vectorise (AVX-512 when the CPU
//! has it, detected at run time); they are within a few f32 ulps of libm's (tests).
//!
//! Like [`super::fused`], this applies only to learnrec's CPU backends; [`linear`] returns `None`
//! elsewhere (or with `LEARNREC_FUSED=0`) and the caller takes Burn's composite path, which the
//! tests compare against.

use super::fused::{Prim, active, back, classify, flex, slice};
use crate::host_gemm::{Mat, Par, gemm_new};
use crate::backbone::layers::host::{erf, exp};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

/// The activation applied after a fused linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `y = x·W + b`.
    Identity,
    /// `y = gelu(x·W + b)`, the exact erf form (BERT's `gelu`, Burn's `activation::gelu`).
    Gelu,
}

/// Above this many multiply-adds a GEMM runs on all rayon threads (Flex's threshold).
const PARALLEL_GEMM: usize = 192 * 192 * 192;

/// About this many values per parallel task of the element-wise passes.
const CHUNK: usize = 1 << 14;

fn rows_per_task(d: usize) -> usize {
    (CHUNK / d.max(1)).max(1)
}

/// [`Par`] of a product that may use every thread (false inside an already parallel loop).
fn par(parallel: bool) -> Par {
    if parallel { Par::AllFrom(PARALLEL_GEMM) } else { Par::One }
}

/// Runs `$body` compiled for AVX-512 (+FMA) when the CPU has it (detected at run time), else for
/// the baseline target: the element loops below then vectorise 16 wide.
macro_rules! simd_fn_impl {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? $body
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx2") && has!("fma") {
                    // SAFETY: the target features were detected on this CPU just above.
                    return unsafe { avx512($($arg),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use simd_fn_impl as simd_fn;

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `Φ(u) = 0.5·(1 + erf(u/√2))`.
#[inline(always)]
fn cdf(u: f32) -> f32 {
    0.5 * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2))
}

/// `gelu(u) = u·Φ(u)` (Burn's operation order: `u · 0.5 · (1 + erf(u/√2))`).
#[inline(always)]
pub(crate) fn gelu(u: f32) -> f32 {
    u * 0.5 * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2))
}

/// `gelu'(u) = Φ(u) + u·φ(u)`.
#[inline(always)]
pub(crate) fn gelu_grad(u: f32) -> f32 {
    cdf(u) + u * exp(-0.5 * u * u) * FRAC_1_SQRT_2PI
}

simd_fn_impl! {
    /// `z += b` row by row.
    fn bias_block(z: &mut [f32], b: &[f32]) {
        for row in z.chunks_exact_mut(b.len()) {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
}

simd_fn_impl! {
    /// `u = z + b` (in place) and `y = gelu(u)`, row by row.
    fn bias_gelu_block(z: &mut [f32], y: &mut [f32], b: &[f32]) {
        for (zr, yr) in z.chunks_exact_mut(b.len()).zip(y.chunks_exact_mut(b.len())) {
            for ((u, y), b) in zr.iter_mut().zip(yr.iter_mut()).zip(b) {
                *u += b;
                *y = gelu(*u);
            }
        }
    }
}

simd_fn_impl! {
    /// `dz = dy ⊙ gelu'(u)` (written over `u`) and `db += Σ_rows dz`.
    fn gelu_bwd_block(u: &mut [f32], dy: &[f32], db: &mut [f32]) {
        let d = db.len();
        for (ur, dyr) in u.chunks_exact_mut(d).zip(dy.chunks_exact(d)) {
            for ((u, dy), db) in ur.iter_mut().zip(dyr).zip(db.iter_mut()) {
                let g = dy * gelu_grad(*u);
                *u = g;
                *db += g;
            }
        }
    }
}

simd_fn_impl! {
    /// `db += Σ_rows dy`.
    fn colsum_block(dy: &[f32], db: &mut [f32]) {
        for row in dy.chunks_exact(db.len()) {
            for (s, v) in db.iter_mut().zip(row) {
                *s += v;
            }
        }
    }
}

/// The sum of per-block partial vectors, in block order: the result does not depend on how
/// rayon split the work (runs are reproducible bit for bit).
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>, d: usize) -> Vec<f32> {
    let mut acc = vec![0f32; d];
    for p in parts {
        for (x, y) in acc.iter_mut().zip(&p) {
            *x += y;
        }
    }
    acc
}

/// Forward: `(y, u)` with `u` the pre-activation when the activation needs it for the backward.
fn linear_fwd(x: &[f32], w: &[f32], b: &[f32], n: usize, din: usize, dout: usize, act: Activation) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut z = gemm_new(n, dout, din, Mat::rows(x, din), Mat::rows(w, dout), par(true));
    let rows = rows_per_task(dout) * dout;
    match act {
        Activation::Identity => {
            z.par_chunks_mut(rows).for_each(|z| bias_block(z, b));
            (z, None)
        }
        Activation::Gelu => {
            let mut y = vec![0f32; n * dout];
            z.par_chunks_mut(rows).zip(y.par_chunks_mut(rows)).for_each(|(z, y)| bias_gelu_block(z, y, b));
            (y, Some(z))
        }
    }
}

/// What the backward needs to produce.
#[derive(Debug, Clone, Copy)]
struct Needs {
    dx: bool,
    dw: bool,
    db: bool,
}

/// Backward: `(dX, dW, dB)` for the parts asked for. `u`: the pre-activation (GELU), consumed.
#[allow(clippy::too_many_arguments)]
fn linear_bwd(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    u: Option<Vec<f32>>,
    n: usize,
    din: usize,
    dout: usize,
    need: Needs,
) -> (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>) {
    let rows = rows_per_task(dout) * dout;
    let zero = || vec![0f32; dout];
    // dz (the gradient of the pre-activation) and db in one pass.
    let (dz, db): (std::borrow::Cow<'_, [f32]>, Option<Vec<f32>>) = match u {
        Some(mut u) => {
            let parts = u
                .par_chunks_mut(rows)
                .zip(dy.par_chunks(rows))
                .map(|(u, dy)| {
                    let mut db = zero();
                    gelu_bwd_block(u, dy, &mut db);
                    db
                })
                .collect();
            let db = sum_in_order(parts, dout);
            (u.into(), Some(db))
        }
        None => {
            let db = need.db.then(|| {
                let parts = dy
                    .par_chunks(rows)
                    .map(|dy| {
                        let mut db = zero();
                        colsum_block(dy, &mut db);
                        db
                    })
                    .collect();
                sum_in_order(parts, dout)
            });
            (dy.into(), db)
        }
    };
    // dX = dz · Wᵀ (W is [din, dout] row-major), dW = Xᵀ · dz.
    // The two products are independent and of equal size (n·din·dout multiply-adds each): when
    // both are needed they run side by side (`rayon::join`), each split further only when
    // there are more than two threads — no product is split across two threads that then wait
    // on each other.
    let join = need.dx && need.dw;
    let split = par(!join || rayon::current_num_threads() > 2);
    let fdx = || need.dx.then(|| gemm_new(n, din, dout, Mat::rows(&dz, dout), Mat::t(w, dout), split));
    let fdw = || need.dw.then(|| gemm_new(din, dout, n, Mat::t(x, din), Mat::rows(&dz, dout), split));
    let (dx, dw) = if join { rayon::join(fdx, fdw) } else { (fdx(), fdw()) };
    (dx, dw, if need.db { db } else { None })
}

#[derive(Debug)]
struct LinearOp;

#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    w: FlexTensor,
    /// The pre-activation (GELU only).
    u: Option<FlexTensor>,
    din: usize,
    dout: usize,
}

impl Backward<Flex, 3> for LinearOp {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw, pb] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let LinearState { x, w, u, din, dout } = ops.state;
        let need = Needs { dx: px.is_some(), dw: pw.is_some(), db: pb.is_some() };
        let (xs, ws, dys) = (slice(&x), slice(&w), slice(&dy));
        let n = dys.len() / dout;
        let u = u.map(|u| slice(&u).into_owned());
        let (dx, dw, db) = linear_bwd(&dys, &xs, &ws, u, n, din, dout, need);
        if let (Some(node), Some(g)) = (px, dx) {
            grads.register::<Flex>(node.id, flex(g, vec![n, din]));
        }
        if let (Some(node), Some(g)) = (pw, dw) {
            grads.register::<Flex>(node.id, flex(g, vec![din, dout]));
        }
        if let (Some(node), Some(g)) = (pb, db) {
            grads.register::<Flex>(node.id, flex(g, vec![dout]));
        }
    }
}

/// `act(x·W + b)` of a Burn [`Linear`] (with a bias) as one fused op, or `None` when the fused
/// kernels do not apply (other backends, disabled, no bias) — then the caller takes the
/// composite path ([`dense`] does both).
///
/// # Shapes
/// `x`: `[rows, in]` → `[rows, out]`.
pub fn linear<B: Backend>(lin: &Linear<B>, x: &Tensor<B, 2>, act: Activation) -> Option<Tensor<B, 2>> {
    if !active() {
        return None;
    }
    let bias = lin.bias.as_ref()?;
    let [n, din] = x.dims();
    let [wi, dout] = lin.weight.dims();
    if wi != din {
        return None; // let the composite path report the shape error
    }
    match (classify(x.clone()), classify(lin.weight.val()), classify(bias.val())) {
        (Prim::Ad(x), Prim::Ad(w), Prim::Ad(b)) => {
            let (y, u) = linear_fwd(&slice(&x.primitive), &slice(&w.primitive), &slice(&b.primitive), n, din, dout, act);
            let out = flex(y, vec![n, dout]);
            let nodes = [x.node.clone(), w.node.clone(), b.node.clone()];
            let res = match LinearOp.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let state = LinearState {
                        x: x.primitive.clone(),
                        w: w.primitive.clone(),
                        u: u.map(|u| flex(u, vec![n, dout])),
                        din,
                        dout,
                    };
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Some(back::<B, 2, _>(res))
        }
        (Prim::Flex(x), Prim::Flex(w), Prim::Flex(b)) => {
            let (y, _) = linear_fwd(&slice(&x), &slice(&w), &slice(&b), n, din, dout, act);
            Some(back::<B, 2, _>(flex(y, vec![n, dout])))
        }
        _ => None,
    }
}

/// `act(x·W + b)`: the fused op on the CPU backends, Burn's `Linear` (+ `gelu`) elsewhere.
///
/// # Shapes
/// `x`: `[rows, in]` → `[rows, out]`.
pub fn dense<B: Backend>(lin: &Linear<B>, x: Tensor<B, 2>, act: Activation) -> Tensor<B, 2> {
    if let Some(y) = linear(lin, &x, act) {
        return y;
    }
    let y = lin.forward(x);
    match act {
        Activation::Identity => y,
        Activation::Gelu => burn::tensor::activation::gelu(y),
    }
}

#[cfg(test)]
mod tests {
    use super::{Activation, dense, gelu, gelu_grad};
    use crate::CpuAutodiff as B;
    use crate::CpuBackend as I;
    use crate::towers::fused::tests::{assert_close, tensor, vec};
    use crate::towers::fused::with_composite;
    use burn::nn::LinearConfig;

    /// GELU and its derivative against f64 references over [-10, 10].
    #[test]
    fn gelu_and_derivative_match_f64_reference() {
        let erf64 = |x: f64| {
            // The Taylor series, accurate to ~1e-9 in f64 for |x| ≤ 4 (cancellation grows as
            // e^{x²}); beyond, |erf| = 1 − erfc with erfc(4) < 2e-8, below the tolerance.
            if x.abs() > 4.0 {
                return x.signum();
            }
            let (mut term, mut sum, mut k) = (x, x, 0f64);
            while term.abs() > 1e-17 * sum.abs().max(1e-300) || k < 5.0 {
                k += 1.0;
                term *= -x * x / k;
                sum += term / (2.0 * k + 1.0);
                if k > 400.0 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut worst = (0f64, 0f64);
        for i in -2000..=2000 {
            let u = i as f64 * 0.005;
            let phi = 0.5 * (1.0 + erf64(u / std::f64::consts::SQRT_2));
            let g = u * phi;
            let dg = phi + u * (-0.5 * u * u).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (a, b) = (gelu(u as f32) as f64, gelu_grad(u as f32) as f64);
            worst.0 = worst.0.max((a - g).abs() / g.abs().max(1.0));
            worst.1 = worst.1.max((b - dg).abs() / dg.abs().max(1.0));
        }
        assert!(worst.0 < 2e-6 && worst.1 < 2e-6, "gelu error {:e}, gelu' error {:e}", worst.0, worst.1);
    }

    /// The fused linear (+GELU) against Burn's `Linear` (+`gelu`): values and all three
    /// gradients, on the autodiff and the inference backend.
    #[test]
    fn fused_linear_matches_composite_values_and_gradients() {
        let dev = Default::default();
        for act in [Activation::Identity, Activation::Gelu] {
            let mut lin = LinearConfig::new(20, 37).init::<B>(&dev);
            lin.weight = burn::module::Param::from_tensor(tensor::<B, 2>([20, 37], 3).mul_scalar(0.7));
            lin.bias = Some(burn::module::Param::from_tensor(tensor::<B, 1>([37], 4)));
            let w = tensor::<B, 2>([70, 37], 5);
            let run = |fused: bool| {
                let x = tensor::<B, 2>([70, 20], 6).mul_scalar(2.0).require_grad();
                let f = || dense(&lin, x.clone(), act);
                let y = if fused { f() } else { with_composite(f) };
                let g = (y.clone() * w.clone()).sum().backward();
                let gx = x.grad(&g).expect("x grad");
                let gw = lin.weight.val().grad(&g).expect("weight grad");
                let gb = lin.bias.as_ref().expect("bias").val().grad(&g).expect("bias grad");
                (vec(y), vec(gx), vec(gw), vec(gb))
            };
            let (a, b) = (run(true), run(false));
            let what = format!("{act:?}");
            assert!(a.2.iter().any(|v| v.abs() > 1e-6), "{what}: gradient must not vanish");
            assert_close(&a.0, &b.0, 1e-5, &format!("{what} output"));
            assert_close(&a.1, &b.1, 1e-5, &format!("{what} d x"));
            assert_close(&a.2, &b.2, 1e-5, &format!("{what} d weight"));
            assert_close(&a.3, &b.3, 1e-5, &format!("{what} d bias"));
            // Inference backend.
            let inner = burn::module::AutodiffModule::valid(&lin);
            let x = tensor::<I, 2>([70, 20], 6).mul_scalar(2.0);
            let y = vec(dense(&inner, x, act));
            assert_close(&y, &b.0, 1e-5, &format!("{what} inference output"));
        }
    }

    /// The weight gradient with the input not tracked (a frozen input) and vice versa.
    #[test]
    fn fused_linear_gradients_of_untracked_parents_are_skipped() {
        let dev = Default::default();
        let lin = LinearConfig::new(8, 5).init::<B>(&dev);
        let x = tensor::<B, 2>([6, 8], 7);
        let g = dense(&lin, x, Activation::Gelu).sum().backward();
        let gw = with_composite(|| {
            let x = tensor::<B, 2>([6, 8], 7);
            let g = dense(&lin, x, Activation::Gelu).sum().backward();
            vec(lin.weight.val().grad(&g).expect("weight grad"))
        });
        assert_close(&vec(lin.weight.val().grad(&g).expect("weight grad")), &gw, 1e-5, "d weight");
    }
}
