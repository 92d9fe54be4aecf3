//! From per-user statistics to the report: point estimates, the user bootstrap, rendering.

use super::Options;
use super::compute::{U_ABSENT, U_CONFLICT, Users, poisson_seed, poisson1, poisson1_cdf};
use super::table::{ITEM_ABSENT, NONE, seg_of_code};
use crate::metrics::{AucCounts, UserWeight};
use crate::segment::{Segment, Thresholds};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Where a kind of segment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentSource {
    /// No segments of this kind.
    None,
    /// An explicit `user_segment` / `item_segment` column.
    Column,
    /// Counted from HISTORY with [`Thresholds`].
    History,
}

impl SegmentSource {
    /// `none`, `column` or `history`.
    pub fn name(self) -> &'static str {
        match self {
            SegmentSource::None => "none",
            SegmentSource::Column => "column",
            SegmentSource::History => "history",
        }
    }
}

/// Which rows and users a group covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "segment")]
pub enum GroupKind {
    /// All rows (Table 6).
    Overall,
    /// Users of a segment, all their rows (Table 7, users).
    User(Segment),
    /// Rows whose item is in a segment; per-user AUC within those rows (Table 7, items).
    Item(Segment),
}

impl GroupKind {
    /// Short label, e.g. `user cold-start`.
    pub fn label(&self) -> String {
        match self {
            GroupKind::Overall => "overall".into(),
            GroupKind::User(s) => format!("user {s}"),
            GroupKind::Item(s) => format!("item {s}"),
        }
    }
}

/// One model's metrics in one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Score column name.
    pub model: String,
    /// Global AUC over all rows (overall group only; `None` elsewhere or if one class).
    pub auc: Option<f64>,
    /// UAUC (uniform mean of per-user AUC); `None` if no user has both classes.
    pub uauc: Option<f64>,
    /// WUAUC (weighted mean of per-user AUC); `None` if no user counted.
    pub wuauc: Option<f64>,
}

/// A model's difference to the baseline, in percentage points, with bootstrap 95% CIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub model: String,
    pub baseline: String,
    /// 100·(AUC − AUC_base) (overall only; no CI).
    pub auc_pp: Option<f64>,
    /// 100·(UAUC − UAUC_base).
    pub uauc_pp: Option<f64>,
    /// 2.5% and 97.5% bootstrap percentiles of the UAUC delta (pp).
    pub uauc_ci: Option<[f64; 2]>,
    /// 100·(WUAUC − WUAUC_base).
    pub wuauc_pp: Option<f64>,
    /// 2.5% and 97.5% bootstrap percentiles of the WUAUC delta (pp).
    pub wuauc_ci: Option<[f64; 2]>,
}

/// The metrics of one group (overall, a user segment or an item segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub group: GroupKind,
    /// Users with at least one row in the group.
    pub users: u64,
    /// Rows in the group.
    pub rows: u64,
    /// Distinct items in the group (`None` without an `item_id` column).
    pub items: Option<u64>,
    /// Shares of all users, rows and items.
    pub share_users: f64,
    pub share_rows: f64,
    pub share_items: Option<f64>,
    /// Users whose AUC in the group is defined (both classes).
    pub users_counted: u64,
    /// Users with one class only in the group (skipped).
    pub users_skipped: u64,
    pub models: Vec<ModelMetrics>,
    /// One entry per non-baseline model.
    pub deltas: Vec<Delta>,
}

/// An explicit, counted warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub count: u64,
    pub message: String,
}

/// Kinds of warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// Users of PRED not in HISTORY (counted as cold-start).
    UsersAbsentFromHistory,
    /// Items of PRED not in HISTORY (counted as cold-start).
    ItemsAbsentFromHistory,
    /// Users whose rows carry different `user_segment` values (the lowest segment is used).
    ConflictingUserSegment,
    /// Items whose rows carry different `item_segment` values (counted in each).
    ConflictingItemSegment,
    /// Users skipped because all their rows have one label.
    OneClassUsers,
    /// Bootstrap replicates where a delta was undefined (left out of its CI).
    UndefinedReplicates,
}

/// Bootstrap settings used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInfo {
    /// Replicates (Poisson(1) weights per user).
    pub replicates: u32,
    pub seed: u64,
}

/// The result of `fusion-eval`: Table 6 ([`Report::overall`]) and Table 7 ([`Report::segments`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Score columns, in order.
    pub models: Vec<String>,
    pub baseline: String,
    /// Rows evaluated (after `--shard`, if any).
    pub rows: u64,
    pub users: u64,
    /// Distinct items (`None` without an `item_id` column).
    pub items: Option<u64>,
    pub user_weight: UserWeight,
    pub thresholds: Thresholds,
    pub user_segments: SegmentSource,
    pub item_segments: SegmentSource,
    pub bootstrap: Option<BootstrapInfo>,
    pub overall: GroupReport,
    pub segments: Vec<GroupReport>,
    pub warnings: Vec<Warning>,
}

/// Everything the report is computed from (also the content of a partial file).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    pub models: Vec<String>,
    pub users: Users,
    pub auc: Vec<AucCounts>,
    /// `(item key, bits)` of every item seen, each key once, in no particular order (bits: see
    /// [`super::table::ITEM_NOSEG`]).
    pub items: Option<Vec<(u64, u8)>>,
    pub user_src: SegmentSource,
    pub item_src: SegmentSource,
    pub has_weight: bool,
    pub thresholds: Thresholds,
}

/// A group's membership test for user `u`: the per-user group index `g`, if a member.
fn groups(st: &State) -> Vec<GroupKind> {
    let mut v = vec![GroupKind::Overall];
    if st.user_src != SegmentSource::None {
        v.extend(Segment::ALL.map(GroupKind::User));
    }
    if st.item_src != SegmentSource::None {
        v.extend(Segment::ALL.map(GroupKind::Item));
    }
    v
}

#[inline]
fn member(us: &Users, u: usize, k: GroupKind) -> Option<usize> {
    match k {
        GroupKind::Overall => Some(0),
        GroupKind::User(s) => (seg_of_code(us.useg[u]) == Some(s)).then_some(0),
        GroupKind::Item(s) => {
            let g = 1 + super::table::seg_code(s) as usize;
            (us.rows[u][g] > 0).then_some(g)
        }
    }
}

#[inline]
fn weight_of(us: &Users, u: usize, g: usize, w: UserWeight) -> f64 {
    match w {
        UserWeight::Rows => us.rows[u][g] as f64,
        UserWeight::Positives => us.pos[u][g] as f64,
        UserWeight::Weight => us.wsum.get(u).map_or(0.0, |x| x[g]),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
}

/// Builds the report (point estimates in user-key order, so merges reproduce it bit for bit).
pub(crate) fn finish(st: &State, opt: &Options) -> crate::Result<Report> {
    let m = st.models.len();
    let us = &st.users;
    let base = match &opt.baseline {
        Some(b) => st.models.iter().position(|x| x == b).ok_or_else(|| {
            crate::Error::Invalid(format!("--baseline `{b}` is not a score column ({})", st.models.join(", ")))
        })?,
        None => 0,
    };
    if opt.user_weight == UserWeight::Weight && !st.has_weight {
        return Err(crate::Error::Invalid("--wuauc-weight weight needs a `weight` column".into()));
    }
    let kinds = groups(st);
    let nk = kinds.len();
    // Point estimates: per group [n, w, Σa_j.., Σwa_j..], plus users/rows/skipped.
    let f = 2 + 2 * m;
    let mut acc = vec![0f64; nk * f];
    let mut cnt = vec![[0u64; 4]; nk]; // users, rows, counted, skipped
    for u in 0..us.len() {
        for (ki, &k) in kinds.iter().enumerate() {
            let Some(g) = member(us, u, k) else { continue };
            let c = &mut cnt[ki];
            c[0] += 1;
            c[1] += us.rows[u][g] as u64;
            if us.auc(u, g, 0).is_none() {
                c[3] += 1;
                continue;
            }
            c[2] += 1;
            let w = weight_of(us, u, g, opt.user_weight);
            let a = &mut acc[ki * f..(ki + 1) * f];
            a[0] += 1.0;
            a[1] += w;
            for j in 0..m {
                let x = us.auc(u, g, j).unwrap_or(0.0);
                a[2 + j] += x;
                a[2 + m + j] += w * x;
            }
        }
    }
    let metric = |a: &[f64], j: usize| -> (Option<f64>, Option<f64>) {
        let uauc = (a[0] > 0.0).then(|| a[2 + j] / a[0]);
        let wuauc = (a[1] > 0.0).then(|| a[2 + m + j] / a[1]);
        (uauc, wuauc)
    };
    // Bootstrap: replicates in blocks of 8, users in key order within each replicate.
    let nb = opt.bootstrap as usize;
    let mut boot: Vec<f64> = Vec::new(); // [r][ki][f]
    if nb > 0 {
        let cdf = poisson1_cdf();
        const RB: usize = 8;
        let blocks: Vec<Vec<f64>> = (0..nb.div_ceil(RB))
            .into_par_iter()
            .map(|bi| {
                let r0 = bi * RB;
                let nr = RB.min(nb - r0);
                let mut a = vec![0f64; nr * nk * f];
                let mut cs = [0u32; RB];
                // Per replicate, the part of the draw that does not depend on the user.
                let rseed: Vec<u64> = (0..nr).map(|r| poisson_seed(opt.seed, (r0 + r) as u32)).collect();
                // This user's (group, weight, AUC per model) entries.
                let mut ent: Vec<(usize, f64)> = Vec::with_capacity(nk);
                let mut av: Vec<f64> = Vec::with_capacity(nk * m);
                for u in 0..us.len() {
                    ent.clear();
                    av.clear();
                    for (ki, &k) in kinds.iter().enumerate() {
                        let Some(g) = member(us, u, k) else { continue };
                        if us.auc(u, g, 0).is_none() {
                            continue;
                        }
                        ent.push((ki, weight_of(us, u, g, opt.user_weight)));
                        av.extend((0..m).map(|j| us.auc(u, g, j).unwrap_or(0.0)));
                    }
                    if ent.is_empty() {
                        continue;
                    }
                    for (r, c) in cs.iter_mut().enumerate().take(nr) {
                        *c = poisson1(us.key[u], rseed[r], &cdf);
                    }
                    for (r, &c) in cs.iter().enumerate().take(nr) {
                        if c == 0 {
                            continue;
                        }
                        let c = c as f64;
                        for (e, &(ki, w)) in ent.iter().enumerate() {
                            let x = &mut a[(r * nk + ki) * f..(r * nk + ki + 1) * f];
                            let cw = c * w;
                            x[0] += c;
                            x[1] += cw;
                            for j in 0..m {
                                let v = av[e * m + j];
                                x[2 + j] += c * v;
                                x[2 + m + j] += cw * v;
                            }
                        }
                    }
                }
                a
            })
            .collect();
        boot = blocks.concat();
    }
    let mut undefined_reps = 0u64;
    let total_users = us.len() as u64;
    let total_rows: u64 = us.rows.iter().map(|r| r[0] as u64).sum();
    let total_items = st.items.as_ref().map(|x| x.len() as u64);
    let mut out_groups = Vec::new();
    for (ki, &k) in kinds.iter().enumerate() {
        let a = &acc[ki * f..(ki + 1) * f];
        let models: Vec<ModelMetrics> = (0..m)
            .map(|j| {
                let (uauc, wuauc) = metric(a, j);
                let auc = (k == GroupKind::Overall).then(|| st.auc[j].auc()).flatten();
                ModelMetrics { model: st.models[j].clone(), auc, uauc, wuauc }
            })
            .collect();
        let mut deltas = Vec::new();
        for j in (0..m).filter(|&j| j != base) {
            let d = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| 100.0 * (x - y));
            let mut ci = [None, None];
            if nb > 0 {
                for (which, slot) in ci.iter_mut().enumerate() {
                    let mut xs: Vec<f64> = (0..nb)
                        .filter_map(|r| {
                            let b = &boot[(r * nk + ki) * f..(r * nk + ki + 1) * f];
                            let (mu, mw) = metric(b, j);
                            let (bu, bw) = metric(b, base);
                            if which == 0 { d(mu, bu) } else { d(mw, bw) }
                        })
                        .collect();
                    undefined_reps += (nb - xs.len()) as u64;
                    if !xs.is_empty() {
                        xs.sort_by(f64::total_cmp);
                        *slot = Some([percentile(&xs, 0.025), percentile(&xs, 0.975)]);
                    }
                }
            }
            deltas.push(Delta {
                model: st.models[j].clone(),
                baseline: st.models[base].clone(),
                auc_pp: d(models[j].auc, models[base].auc),
                uauc_pp: d(models[j].uauc, models[base].uauc),
                uauc_ci: ci[0],
                wuauc_pp: d(models[j].wuauc, models[base].wuauc),
                wuauc_ci: ci[1],
            });
        }
        let items = match (k, &st.items) {
            (GroupKind::Overall, Some(it)) => Some(it.len() as u64),
            (GroupKind::Item(s), Some(it)) => {
                let bit = 1u8 << super::table::seg_code(s);
                Some(it.iter().filter(|x| x.1 & bit != 0).count() as u64)
            }
            _ => None,
        };
        let c = cnt[ki];
        let share = |x: u64, t: u64| if t == 0 { 0.0 } else { x as f64 / t as f64 };
        out_groups.push(GroupReport {
            group: k,
            users: c[0],
            rows: c[1],
            items,
            share_users: share(c[0], total_users),
            share_rows: share(c[1], total_rows),
            share_items: items.zip(total_items).map(|(x, t)| share(x, t)),
            users_counted: c[2],
            users_skipped: c[3],
            models,
            deltas,
        });
    }
    let mut warnings = Vec::new();
    let mut warn = |kind, count: u64, message: String| {
        if count > 0 {
            warnings.push(Warning { kind, count, message });
        }
    };
    let overall = out_groups.remove(0);
    warn(
        WarningKind::OneClassUsers,
        overall.users_skipped,
        format!(
            "{} of {} users have one class only: AUC undefined, skipped from UAUC/WUAUC",
            overall.users_skipped, overall.users
        ),
    );
    let absent = us.uflags.iter().filter(|&&x| x & U_ABSENT != 0).count() as u64;
    warn(
        WarningKind::UsersAbsentFromHistory,
        absent,
        format!("{absent} users are not in HISTORY: counted as cold-start"),
    );
    let conflict = us.uflags.iter().filter(|&&x| x & U_CONFLICT != 0).count() as u64;
    warn(
        WarningKind::ConflictingUserSegment,
        conflict,
        format!("{conflict} users have rows with different user_segment values: the lowest segment is used"),
    );
    if let Some(it) = &st.items {
        let absent = it.iter().filter(|x| x.1 & ITEM_ABSENT != 0).count() as u64;
        warn(
            WarningKind::ItemsAbsentFromHistory,
            absent,
            format!("{absent} items are not in HISTORY: counted as cold-start"),
        );
        let conflict = it.iter().filter(|x| (x.1 & 0b1111).count_ones() > 1).count() as u64;
        warn(
            WarningKind::ConflictingItemSegment,
            conflict,
            format!("{conflict} items have rows with different item_segment values: counted in each segment"),
        );
    }
    warn(
        WarningKind::UndefinedReplicates,
        undefined_reps,
        format!(
            "{undefined_reps} (replicate, group, metric) bootstrap deltas were undefined and left out of their CIs"
        ),
    );
    let _ = NONE;
    Ok(Report {
        models: st.models.clone(),
        baseline: st.models[base].clone(),
        rows: total_rows,
        users: total_users,
        items: total_items,
        user_weight: opt.user_weight,
        thresholds: st.thresholds,
        user_segments: st.user_src,
        item_segments: st.item_src,
        bootstrap: (nb > 0).then_some(BootstrapInfo { replicates: opt.bootstrap, seed: opt.seed }),
        overall,
        segments: out_groups,
        warnings,
    })
}

fn f4(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.4}"))
}
fn pp(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:+.2}"))
}
fn ci(x: Option<[f64; 2]>) -> String {
    x.map_or(String::new(), |[a, b]| format!(" [{a:+.2}, {b:+.2}]"))
}
fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl Delta {
    /// Δ UAUC in pp with its CI (when there is one), as the tables print it.
    fn uauc_cell(&self) -> String {
        format!("{}{}", pp(self.uauc_pp), ci(self.uauc_ci))
    }
    /// Δ WUAUC in pp with its CI (when there is one).
    fn wuauc_cell(&self) -> String {
        format!("{}{}", pp(self.wuauc_pp), ci(self.wuauc_ci))
    }
}

impl Report {
    fn header_line(&self) -> String {
        let mut s = format!("{} rows, {} users", self.rows, self.users);
        if let Some(i) = self.items {
            s += &format!(", {i} items");
        }
        s += &format!("; WUAUC weight: {}", self.user_weight.name());
        match self.bootstrap {
            Some(b) => s += &format!("; 95% CIs: bootstrap over users, {} replicates, seed {}", b.replicates, b.seed),
            None => s += "; no bootstrap",
        }
        s
    }

    /// Tables 6 and 7 as plain text.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Table 6 — overall ({})", self.header_line());
        let _ =
            writeln!(o, "{:<20} {:>8} {:>8} {:>8} {:>9} {:>9}", "model", "AUC", "UAUC", "WUAUC", "counted", "skipped");
        for mm in &self.overall.models {
            let _ = writeln!(
                o,
                "{:<20} {:>8} {:>8} {:>8} {:>9} {:>9}",
                mm.model,
                f4(mm.auc),
                f4(mm.uauc),
                f4(mm.wuauc),
                self.overall.users_counted,
                self.overall.users_skipped
            );
        }
        for d in &self.overall.deltas {
            let _ = writeln!(
                o,
                "Δ {} − {} (pp): AUC {}, UAUC {}, WUAUC {}",
                d.model,
                d.baseline,
                pp(d.auc_pp),
                d.uauc_cell(),
                d.wuauc_cell()
            );
        }
        if !self.segments.is_empty() {
            let _ = writeln!(
                o,
                "\nTable 7 — per segment (user segments: {}, item segments: {}; thresholds: user long-tail ≤ {}, item long-tail ≤ {})",
                self.user_segments.name(),
                self.item_segments.name(),
                self.thresholds.user_long_tail_max,
                self.thresholds.item_long_tail_max
            );
            let _ = writeln!(
                o,
                "{:<18} {:>7} {:>7} {:>7} {:>9} {:>8} {:<16} {:>8} {:>8}",
                "segment", "users", "items", "rows", "counted", "skipped", "model", "UAUC", "WUAUC"
            );
            for g in &self.segments {
                for (j, mm) in g.models.iter().enumerate() {
                    let lead = if j == 0 {
                        format!(
                            "{:<18} {:>7} {:>7} {:>7} {:>9} {:>8}",
                            g.group.label(),
                            pct(g.share_users),
                            g.share_items.map_or("—".into(), pct),
                            pct(g.share_rows),
                            g.users_counted,
                            g.users_skipped
                        )
                    } else {
                        format!("{:<18} {:>7} {:>7} {:>7} {:>9} {:>8}", "", "", "", "", "", "")
                    };
                    let _ = writeln!(o, "{lead} {:<16} {:>8} {:>8}", mm.model, f4(mm.uauc), f4(mm.wuauc));
                }
                for d in &g.deltas {
                    let _ = writeln!(
                        o,
                        "{:<18}   Δ {} − {} (pp): UAUC {}, WUAUC {}",
                        "",
                        d.model,
                        d.baseline,
                        d.uauc_cell(),
                        d.wuauc_cell()
                    );
                }
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(o, "\nwarnings:");
            for w in &self.warnings {
                let _ = writeln!(o, "  {}", w.message);
            }
        }
        o
    }

    /// Tables 6 and 7 as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "### Table 6 — overall\n\n{}\n", self.header_line());
        let _ = writeln!(
            o,
            "| model | AUC | UAUC | WUAUC | users counted | users skipped |\n|---|---:|---:|---:|---:|---:|"
        );
        for mm in &self.overall.models {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                mm.model,
                f4(mm.auc),
                f4(mm.uauc),
                f4(mm.wuauc),
                self.overall.users_counted,
                self.overall.users_skipped
            );
        }
        for d in &self.overall.deltas {
            let _ = writeln!(
                o,
                "| Δ {} − {} (pp) | {} | {} | {} | | |",
                d.model,
                d.baseline,
                pp(d.auc_pp),
                d.uauc_cell(),
                d.wuauc_cell()
            );
        }
        if !self.segments.is_empty() {
            let _ = writeln!(o, "\n### Table 7 — per segment\n");
            let mut hdr = "| segment | users | items | rows | counted | skipped |".to_string();
            let mut sep = "|---|---:|---:|---:|---:|---:|".to_string();
            for mm in &self.overall.models {
                hdr += &format!(" UAUC {0} | WUAUC {0} |", mm.model);
                sep += "---:|---:|";
            }
            for d in &self.overall.deltas {
                hdr += &format!(" Δ UAUC {} (pp) | Δ WUAUC {} (pp) |", d.model, d.model);
                sep += "---:|---:|";
            }
            let _ = writeln!(o, "{hdr}\n{sep}");
            for g in &self.segments {
                let mut row = format!(
                    "| {} | {} | {} | {} | {} | {} |",
                    g.group.label(),
                    pct(g.share_users),
                    g.share_items.map_or("—".into(), pct),
                    pct(g.share_rows),
                    g.users_counted,
                    g.users_skipped
                );
                for mm in &g.models {
                    row += &format!(" {} | {} |", f4(mm.uauc), f4(mm.wuauc));
                }
                for d in &g.deltas {
                    row += &format!(" {} | {} |", d.uauc_cell(), d.wuauc_cell());
                }
                let _ = writeln!(o, "{row}");
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(o, "\nWarnings:\n");
            for w in &self.warnings {
                let _ = writeln!(o, "- {}", w.message);
            }
        }
        o
    }
}
