//! Training-time metrics (the reported UAUC/WUAUC live in `learnrec_eval::fusion_eval`).

/// ROC AUC with ties counted half (Mann–Whitney U), computed by the project's exact AUC
/// ([`learnrec_eval::metrics::auc`], the one `fusion-eval` reports). `None` when one class is
/// absent or a score is not finite (AUC undefined).
pub fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    let labels: Vec<bool> = labels.iter().map(|&y| y > 0.5).collect();
    learnrec_eval::metrics::auc(&labels, scores).ok().flatten()
}

/// Mean log loss of probabilities `p` (clamped to `[1e-7, 1 − 1e-7]`).
pub fn logloss(p: &[f32], labels: &[f32]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
            if y > 0.5 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force AUC over all positive/negative pairs, ties = 1/2.
    fn brute(s: &[f32], y: &[f32]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..s.len() {
            for j in 0..s.len() {
                if y[i] > 0.5 && y[j] < 0.5 {
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
        num / den
    }

    #[test]
    fn auc_matches_brute_force_with_ties() {
        let s = [0.1, 0.4, 0.4, 0.8, 0.3, 0.4, 0.9, 0.1];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let a = auc(&s, &y).unwrap();
        assert!((a - brute(&s, &y)).abs() < 1e-12, "{a}");
        assert_eq!(auc(&[0.1, 0.2], &[1.0, 1.0]), None);
    }
}
