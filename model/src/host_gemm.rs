//! The one entry to the `gemm` crate (the kernel Burn's Flex matmul calls) for learnrec's host
//! kernels: the packed backbones' matmuls and the towers' fused linear layers and loss.
//!
//! Operands are strided views of `f32` slices ([`Mat`]), so a transpose is a view, never a copy;
//! the bounds of every operand are checked before the product runs.

/// A strided matrix operand: `v[r·rs + c·cs]` is element `(r, c)`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub v: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(v: &'a [f32], cols: usize) -> Self {
        Mat { v, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major `[rows, cols]` matrix (a view).
    pub fn t(v: &'a [f32], cols: usize) -> Self {
        Mat { v, rs: 1, cs: cols }
    }
    /// Whether elements `(0..r, 0..c)` lie inside the slice.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.v.len()
    }
}

/// How a product uses the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Par {
    /// The calling thread only (inside an already parallel loop).
    One,
    /// Rayon's threads when the product has at least this many multiply-adds.
    AllFrom(usize),
}

impl Par {
    fn of(self, m: usize, n: usize, k: usize) -> gemm::Parallelism {
        match self {
            Par::AllFrom(min) if m * n * k >= min => gemm::Parallelism::Rayon(0),
            _ => gemm::Parallelism::None,
        }
    }
}

/// `dst [m, n] (row-major) = a [m, k] · b [k, n]`, or `+=` with `accumulate`.
///
/// # Panics
/// When an operand does not fit its slice (a caller bug, never input data).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(dst: &mut [f32], m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: Par) {
    assert!(
        dst.len() >= m * n && a.fits(m, k) && b.fits(k, n),
        "gemm: [{m}, {k}] x [{k}, {n}] does not fit slices of {}, {}, {}",
        a.v.len(),
        b.v.len(),
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every element the product reads (`a`, `b`) or writes (`dst[..m·n]`, row-major) is
    // in bounds (asserted above), and `dst` is borrowed mutably, so it aliases neither input.
    unsafe { raw(dst.as_mut_ptr(), m, n, k, a, b, accumulate, par.of(m, n, k)) }
}

/// A new `[m, n]` buffer holding `a · b` (written by the product, never zeroed first).
pub(crate) fn gemm_new(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, par: Par) -> Vec<f32> {
    if k == 0 || m == 0 || n == 0 {
        return vec![0f32; m * n];
    }
    assert!(a.fits(m, k) && b.fits(k, n), "gemm: [{m}, {k}] x [{k}, {n}] does not fit its operands");
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    // SAFETY: the operands are in bounds (asserted above); the destination is the vector's
    // allocation of m·n f32s, which a product without `accumulate` writes completely without
    // reading (k > 0), so every element is initialised before `set_len`.
    unsafe {
        raw(out.as_mut_ptr(), m, n, k, a, b, false, par.of(m, n, k));
        out.set_len(m * n);
    }
    out
}

/// # Safety
/// `a` and `b` hold every element of their `[m, k]` / `[k, n]` views, `dst` points to `m·n`
/// writable f32s (initialised when `accumulate`) that alias neither, and `k > 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn raw(dst: *mut f32, m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool, par: gemm::Parallelism) {
    // SAFETY: the caller's contract is `gemm::gemm`'s: in-bounds strided operands and a
    // destination of m·n row-major values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.v.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.v.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
