//! Training-time metrics (the reported UAUC/WUAUC live in `learnrec_eval::fusion_eval`).

/// ROC AUC with ties counted half (Mann–Whitney U): `(Σ ranks of positives − P(P+1)/2) / (P·N)`
/// with average ranks for ties. `None` when one class is absent (AUC undefined).
pub fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0f64, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                rank_sum += avg;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let p = pos as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * neg as f64))
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
