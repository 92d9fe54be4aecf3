//! Statistics of the A/B engine: delta-method ratio metrics, relative lift with confidence
//! intervals, the sample-ratio-mismatch test, a midrank AUC with DeLong's standard error, and
//! the special functions they need (normal and chi-square tails).
//!
//! The randomisation unit is the user, so every ratio metric is a ratio of two per-user means,
//! `R = ȳ / x̄` (e.g. CTR: y = a user's clicks, x = their impressions), and its variance is the
//! delta-method variance of Deng, Knoblich & Lu, "Applying the Delta Method in Metric Analytics"
//! (KDD 2018):
//!
//! `Var(R) ≈ (1/n) · (σ²_y/x̄² − 2·ȳ·σ_xy/x̄³ + ȳ²·σ²_x/x̄⁴)`
//!
//! which accounts for the correlation of impressions within a user (an impression-level binomial
//! variance would be too small and inflate false positives).

use serde::{Deserialize, Serialize};

/// Running first and second moments of per-user pairs `(x, y)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of users.
    pub n: f64,
    /// Σx
    pub sx: f64,
    /// Σy
    pub sy: f64,
    /// Σx²
    pub sxx: f64,
    /// Σy²
    pub syy: f64,
    /// Σxy
    pub sxy: f64,
}

impl Moments {
    /// Adds one user's `(x, y)`.
    pub fn push(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.syy += y * y;
        self.sxy += x * y;
    }

    /// The ratio `Σy / Σx` and its delta-method variance; `None` when `Σx = 0` or `n < 2`.
    pub fn ratio(&self) -> Option<(f64, f64)> {
        if self.n < 2.0 || self.sx <= 0.0 {
            return None;
        }
        let n = self.n;
        let mx = self.sx / n;
        let my = self.sy / n;
        // Sample (co)variances with n − 1.
        let vx = ((self.sxx - n * mx * mx) / (n - 1.0)).max(0.0);
        let vy = ((self.syy - n * my * my) / (n - 1.0)).max(0.0);
        let cxy = (self.sxy - n * mx * my) / (n - 1.0);
        let r = my / mx;
        let var = (vy / (mx * mx) - 2.0 * my * cxy / (mx * mx * mx)
            + my * my * vx / (mx * mx * mx * mx))
            / n;
        Some((r, var.max(0.0)))
    }
}

/// A treatment-vs-control comparison of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    /// Control value.
    pub control: f64,
    /// Treatment value.
    pub treatment: f64,
    /// `treatment − control`.
    pub abs_diff: f64,
    /// Standard error of `abs_diff`.
    pub abs_se: f64,
    /// Relative lift `treatment / control − 1` (for AUC: the absolute difference).
    pub lift: f64,
    /// Standard error of `lift`.
    pub se: f64,
    /// Lower end of the (1 − α) confidence interval of `lift`.
    pub ci_low: f64,
    /// Upper end of the (1 − α) confidence interval of `lift`.
    pub ci_high: f64,
    /// Two-sided p-value of "no difference" (z-test on `abs_diff`).
    pub p_value: f64,
}

/// Relative lift of two independent estimates `(value, variance)`: the delta method for
/// `t/c − 1` gives `Var ≈ Var(t)/c² + t²·Var(c)/c⁴`. The p-value tests `t − c = 0` with
/// `Var(t) + Var(c)`. `None` when the control value is 0 or not finite.
pub fn relative_lift(control: (f64, f64), treatment: (f64, f64), alpha: f64) -> Option<Lift> {
    let (c, vc) = control;
    let (t, vt) = treatment;
    if c == 0.0 || !c.is_finite() || !t.is_finite() {
        return None;
    }
    let lift = t / c - 1.0;
    let se = (vt / (c * c) + t * t * vc / (c * c * c * c)).sqrt();
    let abs_diff = t - c;
    let abs_se = (vt + vc).sqrt();
    let z = normal_quantile(1.0 - alpha / 2.0);
    Some(Lift {
        control: c,
        treatment: t,
        abs_diff,
        abs_se,
        lift,
        se,
        ci_low: lift - z * se,
        ci_high: lift + z * se,
        p_value: two_sided_p(abs_diff, abs_se),
    })
}

/// Absolute difference of two independent estimates (used for AUC, where the paper reports
/// absolute gains): `lift = abs_diff`.
pub fn absolute_diff(control: (f64, f64), treatment: (f64, f64), alpha: f64) -> Option<Lift> {
    let (c, vc) = control;
    let (t, vt) = treatment;
    if !c.is_finite() || !t.is_finite() {
        return None;
    }
    let d = t - c;
    let se = (vt + vc).sqrt();
    let z = normal_quantile(1.0 - alpha / 2.0);
    Some(Lift {
        control: c,
        treatment: t,
        abs_diff: d,
        abs_se: se,
        lift: d,
        se,
        ci_low: d - z * se,
        ci_high: d + z * se,
        p_value: two_sided_p(d, se),
    })
}

/// Two-sided normal p-value of `estimate / se`; 1 when both are 0, 0 when only `se` is 0.
pub fn two_sided_p(estimate: f64, se: f64) -> f64 {
    if se <= 0.0 || !se.is_finite() {
        return if estimate == 0.0 { 1.0 } else { 0.0 };
    }
    2.0 * normal_sf((estimate / se).abs())
}

/// Result of the sample-ratio-mismatch check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Observed user counts per group (arms, then "unassigned" when it has a share).
    pub observed: Vec<u64>,
    /// Expected counts under the configured shares.
    pub expected: Vec<f64>,
    /// Pearson's chi-square statistic.
    pub chi2: f64,
    /// Degrees of freedom (groups − 1).
    pub dof: u32,
    /// Upper-tail p-value.
    pub p_value: f64,
    /// Threshold below which the split is declared broken (0.001, the common SRM alarm level).
    pub threshold: f64,
    /// `p_value < threshold`: the split is broken and the experiment's results are not to be trusted.
    pub mismatch: bool,
}

/// Pearson chi-square test of observed group counts against shares (normalised to sum 1).
/// `None` with fewer than 2 groups, a non-positive share, or no users.
pub fn srm_check(observed: &[u64], shares: &[f64]) -> Option<Srm> {
    if observed.len() != shares.len()
        || observed.len() < 2
        || shares.iter().any(|&s| s.is_nan() || s <= 0.0)
    {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let ssum: f64 = shares.iter().sum();
    let expected: Vec<f64> = shares.iter().map(|s| s / ssum * total as f64).collect();
    let chi2: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| {
            let d = o as f64 - e;
            d * d / e
        })
        .sum();
    let dof = (observed.len() - 1) as u32;
    let p_value = chi2_sf(chi2, dof as f64);
    let threshold = 1e-3;
    Some(Srm {
        observed: observed.to_vec(),
        expected,
        chi2,
        dof,
        p_value,
        threshold,
        mismatch: p_value < threshold,
    })
}

/// AUC with its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Auc {
    /// Area under the ROC curve (ties count ½).
    pub value: f64,
    /// DeLong's standard error (impressions treated as independent; within-user correlation is
    /// ignored, so it is optimistic).
    pub se: f64,
    /// Number of positive impressions.
    pub positives: u64,
    /// Number of negative impressions.
    pub negatives: u64,
}

/// Midrank AUC of `scores` against `labels`: the fraction of (positive, negative) pairs ordered
/// correctly, ties counting ½ — equal to `(Σ_{pos} midrank − P(P+1)/2) / (P·N)` — plus DeLong's
/// variance from the structural components `V10_i` (share of negatives below positive `i`, ties
/// ½) and `V01_j` (share of positives above negative `j`):
/// `Var = s²(V10)/P + s²(V01)/N`. One sort of `(score, label)` pairs, then a sweep over tie groups.
/// `None` (undefined) when either class is empty or a score is NaN.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<Auc> {
    let n = scores.len().min(labels.len());
    let mut pairs: Vec<(f32, bool)> = Vec::with_capacity(n);
    for i in 0..n {
        if scores[i].is_nan() {
            return None;
        }
        pairs.push((scores[i], labels[i]));
    }
    auc_pairs(&mut pairs)
}

/// [`auc`] on `(score, label)` pairs, sorted in place.
fn auc_pairs(pairs: &mut [(f32, bool)]) -> Option<Auc> {
    let p = pairs.iter().filter(|x| x.1).count();
    let q = pairs.len() - p;
    if p == 0 || q == 0 {
        return None;
    }
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let (pf, qf) = (p as f64, q as f64);
    // First pass: tie groups in ascending score; positives see the negatives below them.
    let (mut neg_below, mut pos_below) = (0.0f64, 0.0f64);
    let (mut s10, mut ss10, mut s01, mut ss01) = (0.0, 0.0, 0.0, 0.0);
    for g in pairs.chunk_by(|a, b| a.0 == b.0) {
        let gp = g.iter().filter(|x| x.1).count() as f64;
        let gn = g.len() as f64 - gp;
        let v10 = (neg_below + 0.5 * gn) / qf; // for each positive in the group
        let pos_above = pf - pos_below - gp;
        let v01 = (pos_above + 0.5 * gp) / pf; // for each negative in the group
        s10 += gp * v10;
        ss10 += gp * v10 * v10;
        s01 += gn * v01;
        ss01 += gn * v01 * v01;
        neg_below += gn;
        pos_below += gp;
    }
    let value = s10 / pf;
    let var_of = |s: f64, ss: f64, k: f64| {
        if k > 1.0 {
            ((ss - s * s / k) / (k - 1.0)).max(0.0)
        } else {
            0.0
        }
    };
    let var = var_of(s10, ss10, pf) / pf + var_of(s01, ss01, qf) / qf;
    Some(Auc {
        value,
        se: var.sqrt(),
        positives: p as u64,
        negatives: q as u64,
    })
}

/// Per-user AUCs aggregated uniformly (UAUC) and impression-weighted (WUAUC), the paper's
/// Table 6/7 metrics: `UAUC = (1/|U|) Σ_u AUC_u`, `WUAUC = Σ_u n_u·AUC_u / Σ_u n_u` over users
/// with both classes (`n_u` = the user's impressions); the others are counted in `skipped_users`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UserAuc {
    /// Uniform mean of per-user AUCs.
    pub uauc: f64,
    /// Its standard error over users (`sd(AUC_u) / √|U|`).
    pub uauc_se: f64,
    /// Impression-weighted mean of per-user AUCs.
    pub wuauc: f64,
    /// Its delta-method standard error over users.
    pub wuauc_se: f64,
    /// Users with both classes.
    pub users: u64,
    /// Users skipped because all their impressions have one label.
    pub skipped_users: u64,
}

/// UAUC and WUAUC of `(user, score, label)` records (sorted in place by user).
/// `None` when no user has both classes.
pub fn user_auc(records: &mut [(u32, f32, bool)]) -> Option<UserAuc> {
    records.sort_by_key(|r| r.0);
    let mut aucs = Moments::default(); // x = 1, y = AUC_u
    let mut weighted = Moments::default(); // x = n_u, y = n_u · AUC_u
    let mut skipped = 0u64;
    let mut pairs = Vec::new();
    for group in records.chunk_by(|a, b| a.0 == b.0) {
        pairs.clear();
        pairs.extend(group.iter().map(|r| (r.1, r.2)));
        if pairs.iter().any(|x| x.0.is_nan()) {
            skipped += 1;
            continue;
        }
        match auc_pairs(&mut pairs) {
            Some(a) => {
                let n = group.len() as f64;
                aucs.push(1.0, a.value);
                weighted.push(n, n * a.value);
            }
            None => skipped += 1,
        }
    }
    if aucs.n < 1.0 {
        return None;
    }
    let (uauc, uvar) = aucs.ratio().unwrap_or((aucs.sy / aucs.n, 0.0));
    let (wuauc, wvar) = weighted.ratio().unwrap_or((weighted.sy / weighted.sx, 0.0));
    Some(UserAuc {
        uauc,
        uauc_se: uvar.sqrt(),
        wuauc,
        wuauc_se: wvar.sqrt(),
        users: aucs.n as u64,
        skipped_users: skipped,
    })
}

/// Upper tail of the standard normal, `P(Z > z)`, via `erfc`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function, `erfc(x) = Q(½, x²)` for `x ≥ 0` (regularised incomplete gamma,
/// ~1e-15 relative accuracy), `2 − erfc(−x)` below 0.
pub fn erfc(x: f64) -> f64 {
    let q = gamma_q(0.5, x * x);
    if x >= 0.0 { q } else { 2.0 - q }
}

/// Quantile of the standard normal (Acklam's rational approximation, refined by one Halley step).
#[allow(clippy::excessive_precision)] // the published coefficients, digit for digit
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    let x = if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step against the normal cdf.
    let e = (1.0 - normal_sf(x)) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// Upper tail of the chi-square distribution with `k` degrees of freedom: `Q(k/2, x/2)`.
pub fn chi2_sf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(k / 2.0, x / 2.0)
}

/// Regularised upper incomplete gamma `Q(a, x)` (series for `x < a + 1`, else Lentz's
/// continued fraction; Numerical Recipes §6.2).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let gln = ln_gamma(a);
    if x < a + 1.0 {
        let mut ap = a;
        let mut sum = 1.0 / a;
        let mut del = sum;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * (-x + a * x.ln() - gln).exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        ((-x + a * x.ln() - gln).exp() * h).clamp(0.0, 1.0)
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, n = 9; ~15 significant digits).
#[allow(clippy::excessive_precision)] // the published coefficients, digit for digit
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tails_and_quantiles() {
        assert!((normal_sf(1.959_963_984_540_054) - 0.025).abs() < 1e-8);
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-12);
        // scipy: norm.sf(6) = 9.865876450376946e-10
        assert!((normal_sf(6.0) / 9.865_876_450_376_946e-10 - 1.0).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813).abs() < 1e-7);
    }

    #[test]
    fn chi_square_tails() {
        // scipy.stats.chi2.sf(3.841458820694124, 1) = 0.05; sf(5.991464547107979, 2) = 0.05
        assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-7);
        assert!((chi2_sf(5.991_464_547_107_979, 2.0) - 0.05).abs() < 1e-9);
        assert!((chi2_sf(10.0, 2.0) - (-5.0f64).exp()).abs() < 1e-12);
        // scipy: chi2.sf(0.5, 10) = 0.999993388289439
        assert!((chi2_sf(0.5, 10.0) - 0.999_993_388_289_439).abs() < 1e-9);
    }

    #[test]
    fn auc_against_brute_force_with_ties() {
        let s = [0.1f32, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1];
        let l = [false, false, true, true, true, false, true, false];
        let mut num = 0.0;
        let mut den = 0.0;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if l[i] && !l[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        let a = auc(&s, &l).unwrap();
        assert!((a.value - num / den).abs() < 1e-12);
        // DeLong's variance from brute-force structural components.
        let psi = |x: f32, y: f32| {
            if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            }
        };
        let pos: Vec<f32> = (0..8).filter(|&i| l[i]).map(|i| s[i]).collect();
        let neg: Vec<f32> = (0..8).filter(|&i| !l[i]).map(|i| s[i]).collect();
        let v10: Vec<f64> = pos
            .iter()
            .map(|&x| neg.iter().map(|&y| psi(x, y)).sum::<f64>() / neg.len() as f64)
            .collect();
        let v01: Vec<f64> = neg
            .iter()
            .map(|&y| pos.iter().map(|&x| psi(x, y)).sum::<f64>() / pos.len() as f64)
            .collect();
        let var = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
        };
        let se = (var(&v10) / pos.len() as f64 + var(&v01) / neg.len() as f64).sqrt();
        assert!((a.se - se).abs() < 1e-12, "{} vs {se}", a.se);
        assert!(auc(&s, &[true; 8]).is_none());
        // UAUC: user 1 has AUC 1 over 2 impressions, user 2 AUC 0 over 4, user 3 one class only.
        let mut r = vec![
            (2, 0.9, false),
            (1, 0.9, true),
            (1, 0.1, false),
            (2, 0.1, true),
            (3, 0.5, true),
            (2, 0.8, false),
            (2, 0.7, false),
        ];
        let u = user_auc(&mut r).unwrap();
        assert!(
            (u.uauc - 0.5).abs() < 1e-12 && (u.wuauc - 2.0 / 6.0).abs() < 1e-12,
            "{u:?}"
        );
        assert_eq!((u.users, u.skipped_users), (2, 1));
    }

    #[test]
    fn delta_ratio_equals_mean_when_x_is_one() {
        let mut m = Moments::default();
        for y in [1.0, 2.0, 4.0, 7.0] {
            m.push(1.0, y);
        }
        let (r, v) = m.ratio().unwrap();
        assert!((r - 3.5).abs() < 1e-12);
        // sample variance 7 / n 4
        assert!((v - 7.0 / 4.0).abs() < 1e-12);
    }
}
