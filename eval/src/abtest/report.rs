//! The A/B report: serde types, and writers for `report.json`, `report.md` and a self-contained
//! `report.html` with inline SVG charts (daily lift with its CI band, per-segment lift bars and
//! the paper's Table 7 layout with each segment's proportion).

use super::EnvKind;
use super::sim::{Mode, PositionBias, RetrievalConfig};
use super::split::Split;
use super::stats::{Auc, Lift, Srm, UserAuc};
use crate::segment::{Segment, Thresholds};
use crate::{Error, Result, atomic};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The whole report of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of this layout.
    pub schema_version: u32,
    /// Experiment name.
    pub experiment: String,
    /// A/B or A/A.
    pub mode: Mode,
    /// The world the experiment ran against (ground truth or fitted oracle).
    pub environment: EnvInfo,
    /// Simulation settings.
    pub config: ConfigInfo,
    /// The traffic split (salt, arms, bucket ranges).
    pub split: Split,
    /// Sample-ratio-mismatch check on active users per group (`None` if undefined).
    pub srm: Option<Srm>,
    /// Segment proportions (Table 7).
    pub segment_proportions: SegmentProportions,
    /// Per-arm metrics; the first arm is the control.
    pub arms: Vec<ArmReport>,
    /// Each treatment against the control.
    pub comparisons: Vec<Comparison>,
    /// Wall time and throughput.
    pub performance: Performance,
    /// Warnings and caveats, most important first.
    pub notes: Vec<String>,
}

/// The environment, labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvInfo {
    /// Name.
    pub name: String,
    /// Ground truth or fitted oracle.
    pub kind: EnvKind,
    /// Human-readable label of `kind`.
    pub label: String,
    /// What it is and what it can tell.
    pub description: String,
    /// Number of users.
    pub users: u32,
    /// Number of items.
    pub items: u32,
}

/// Simulation settings recorded in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigInfo {
    /// Outcome seed.
    pub seed: u64,
    /// First day.
    pub start_day: u32,
    /// Number of days.
    pub days: u32,
    /// Shown slots per request.
    pub slots: usize,
    /// Position bias.
    pub position_bias: PositionBias,
    /// Candidate retrieval.
    pub retrieval: RetrievalConfig,
    /// Segment thresholds.
    pub thresholds: Thresholds,
    /// Significance level.
    pub alpha: f64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
}

/// A segment's count and proportion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentShare {
    /// Segment.
    pub segment: Segment,
    /// Number of users (or items).
    pub count: u64,
    /// Share of all.
    pub proportion: f64,
}

/// Segment proportions: users among the experiment's active users, items in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentProportions {
    /// User segments.
    pub users: Vec<SegmentShare>,
    /// Item segments.
    pub items: Vec<SegmentShare>,
}

/// Which slice of the traffic a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Slice {
    /// The whole experiment.
    Total,
    /// One day.
    Day {
        /// Day on the environment's clock.
        day: u32,
    },
    /// Users of one segment (all their impressions).
    UserSegment {
        /// Segment.
        segment: Segment,
    },
    /// Impressions of items of one segment (all users of the arm).
    ItemSegment {
        /// Segment.
        segment: Segment,
    },
}

impl Slice {
    /// Short label.
    pub fn label(&self) -> String {
        match self {
            Slice::Total => "total".into(),
            Slice::Day { day } => format!("day {day}"),
            Slice::UserSegment { segment } => format!("users: {segment}"),
            Slice::ItemSegment { segment } => format!("items: {segment}"),
        }
    }
}

/// Metrics of one arm on one slice. Ratio metrics are `None` when undefined (no denominator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceMetrics {
    /// The slice.
    pub slice: Slice,
    /// Active users.
    pub users: u64,
    /// Requests.
    pub requests: u64,
    /// Shown impressions.
    pub impressions: u64,
    /// Clicks.
    pub clicks: u64,
    /// Conversions.
    pub conversions: u64,
    /// Revenue (price × conversions).
    pub revenue: f64,
    /// Clicks / impressions.
    pub ctr: Option<f64>,
    /// Conversions / clicks.
    pub cvr: Option<f64>,
    /// Revenue / active users.
    pub revenue_per_user: Option<f64>,
    /// Conversions / active users.
    pub conversions_per_user: Option<f64>,
    /// AUC of the arm's scores on its own impressions with conversion labels (`None`: one class).
    pub auc: Option<Auc>,
    /// Per-user AUC, uniform (UAUC) and impression-weighted (WUAUC), on the same impressions.
    pub user_auc: Option<UserAuc>,
}

/// One arm's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// Arm name.
    pub name: String,
    /// Traffic share.
    pub share: f64,
    /// Whole experiment.
    pub total: SliceMetrics,
    /// Per day.
    pub days: Vec<SliceMetrics>,
    /// Per user segment (cold-start, long-tail, regular).
    pub user_segments: Vec<SliceMetrics>,
    /// Per item segment.
    pub item_segments: Vec<SliceMetrics>,
}

/// A compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Click-through rate (relative lift).
    Ctr,
    /// Post-click conversion rate (relative lift).
    Cvr,
    /// Revenue per active user (relative lift).
    RevenuePerUser,
    /// Conversions per active user (relative lift).
    ConversionsPerUser,
    /// AUC of each arm's scores (absolute difference).
    Auc,
    /// Uniform per-user AUC (absolute difference).
    Uauc,
    /// Impression-weighted per-user AUC (absolute difference).
    Wuauc,
}

impl Metric {
    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Ctr => "CTR",
            Metric::Cvr => "CVR",
            Metric::RevenuePerUser => "revenue / user",
            Metric::ConversionsPerUser => "conversions / user",
            Metric::Auc => "AUC (Δ abs.)",
            Metric::Uauc => "UAUC (Δ abs.)",
            Metric::Wuauc => "WUAUC (Δ abs.)",
        }
    }
    /// Whether the lift is relative (else an absolute difference).
    pub fn relative(self) -> bool {
        !matches!(self, Metric::Auc | Metric::Uauc | Metric::Wuauc)
    }
}

/// Bootstrap percentile interval of a relative lift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapCi {
    /// Resamples that were defined.
    pub resamples: usize,
    /// Lower percentile.
    pub low: f64,
    /// Upper percentile.
    pub high: f64,
}

/// One metric's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLift {
    /// The metric.
    pub metric: Metric,
    /// The lift with CI and p-value (`None` when undefined).
    pub lift: Option<Lift>,
    /// `p < α`.
    pub significant: bool,
    /// User-level bootstrap check (totals only).
    pub bootstrap: Option<BootstrapCi>,
}

impl MetricLift {
    /// Wraps a lift, marking it significant when `p < alpha`.
    pub fn new(metric: Metric, lift: Option<Lift>, alpha: f64) -> Self {
        MetricLift {
            metric,
            significant: lift.is_some_and(|l| l.p_value < alpha),
            lift,
            bootstrap: None,
        }
    }
}

/// Lifts on one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceLifts {
    /// The slice.
    pub slice: Slice,
    /// One entry per metric.
    pub lifts: Vec<MetricLift>,
}

/// A treatment against the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Control arm.
    pub control: String,
    /// Treatment arm.
    pub treatment: String,
    /// Whole-experiment lifts.
    pub total: Vec<MetricLift>,
    /// Per day.
    pub days: Vec<SliceLifts>,
    /// Per user segment.
    pub user_segments: Vec<SliceLifts>,
    /// Per item segment.
    pub item_segments: Vec<SliceLifts>,
}

impl Comparison {
    /// The total lift of `metric`.
    pub fn total_lift(&self, metric: Metric) -> Option<&MetricLift> {
        self.total.iter().find(|m| m.metric == metric)
    }
}

/// Wall time and throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Seconds of simulation and analysis.
    pub seconds: f64,
    /// Of which simulating (the rest is analysis: AUCs, bootstrap).
    pub simulate_seconds: f64,
    /// Worker threads.
    pub threads: usize,
    /// Simulated requests (arms only; unassigned users are not simulated).
    pub requests: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Candidates scored (approximate: requests × candidates per request).
    pub candidates_scored: u64,
}

fn find(lifts: &[MetricLift], m: Metric) -> Option<&MetricLift> {
    lifts.iter().find(|l| l.metric == m)
}

fn fmt_lift(m: Metric, l: &Option<Lift>) -> String {
    match l {
        None => "n/a".into(),
        Some(l) if m.relative() => format!(
            "{:+.2}% [{:+.2}%, {:+.2}%]",
            100.0 * l.lift,
            100.0 * l.ci_low,
            100.0 * l.ci_high
        ),
        Some(l) => format!("{:+.4} [{:+.4}, {:+.4}]", l.lift, l.ci_low, l.ci_high),
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.digits$}"))
}

fn fmt_p(p: f64) -> String {
    if p < 1e-15 {
        "<1e-15".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("report: cannot serialise to JSON: {e}")))
    }

    /// Writes `report.json`, `report.md` and `report.html` into `dir` (atomically, each file).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        atomic::write(&dir.join("report.json"), self.to_json()?.as_bytes())?;
        atomic::write(&dir.join("report.md"), self.to_markdown().as_bytes())?;
        atomic::write(&dir.join("report.html"), self.to_html().as_bytes())
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# A/B report: {}\n", self.experiment);
        let _ = writeln!(
            s,
            "**Environment: {}** — {}",
            self.environment.label, self.environment.name
        );
        if !self.environment.description.is_empty() {
            let _ = writeln!(s, "\n{}", self.environment.description);
        }
        let _ = writeln!(
            s,
            "\nMode: {}; {} day(s) from day {}; seed {}; {} slots, {} candidates per request; α = {}.\n",
            if self.mode == Mode::Aa { "A/A" } else { "A/B" },
            self.config.days,
            self.config.start_day,
            self.config.seed,
            self.config.slots,
            self.config.retrieval.total,
            self.config.alpha
        );
        if !self.notes.is_empty() {
            for n in &self.notes {
                let _ = writeln!(s, "> {n}\n");
            }
        }
        let _ = writeln!(s, "## Traffic split\n");
        let _ = writeln!(
            s,
            "Salt `{}`; bucket = first 8 bytes of SHA-256(\"{{salt}}:{{user_id}}\") as big-endian u64 mod 10000.\n",
            self.split.salt
        );
        let _ = writeln!(
            s,
            "| arm | share | buckets | active users |\n|---|---|---|---|"
        );
        for (i, a) in self.split.arms.iter().enumerate() {
            let users = self.arms.get(i).map_or(0, |r| r.total.users);
            let _ = writeln!(
                s,
                "| {} | {:.2}% | {}..{} | {} |",
                a.name,
                100.0 * a.share,
                a.lo,
                a.hi,
                users
            );
        }
        if let Some(srm) = &self.srm {
            let _ = writeln!(
                s,
                "\nSample-ratio check: χ² = {:.3} (dof {}), p = {} — {}.\n",
                srm.chi2,
                srm.dof,
                fmt_p(srm.p_value),
                if srm.mismatch {
                    "**MISMATCH: the split is broken**"
                } else {
                    "ok"
                }
            );
        }
        let _ = writeln!(s, "## Arms (whole experiment)\n");
        let _ = writeln!(
            s,
            "| arm | users | requests | impressions | clicks | conversions | CTR | CVR | revenue/user | AUC | UAUC | WUAUC |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for a in &self.arms {
            let t = &a.total;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                a.name,
                t.users,
                t.requests,
                t.impressions,
                t.clicks,
                t.conversions,
                fmt_opt(t.ctr, 4),
                fmt_opt(t.cvr, 4),
                fmt_opt(t.revenue_per_user, 3),
                fmt_opt(t.auc.map(|x| x.value), 4),
                fmt_opt(t.user_auc.map(|x| x.uauc), 4),
                fmt_opt(t.user_auc.map(|x| x.wuauc), 4)
            );
        }
        for c in &self.comparisons {
            let _ = writeln!(s, "\n## {} vs {}\n", c.treatment, c.control);
            let _ = writeln!(
                s,
                "| metric | {} | {} | lift [{:.0}% CI] | p | bootstrap CI | significant |",
                c.control,
                c.treatment,
                100.0 * (1.0 - self.config.alpha)
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|");
            for m in &c.total {
                let (cv, tv, p) = m
                    .lift
                    .map_or(("n/a".into(), "n/a".into(), "n/a".into()), |l| {
                        (
                            format!("{:.5}", l.control),
                            format!("{:.5}", l.treatment),
                            fmt_p(l.p_value),
                        )
                    });
                let boot = m.bootstrap.map_or("—".into(), |b| {
                    format!("[{:+.2}%, {:+.2}%]", 100.0 * b.low, 100.0 * b.high)
                });
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    m.metric.label(),
                    cv,
                    tv,
                    fmt_lift(m.metric, &m.lift),
                    p,
                    boot,
                    if m.significant { "yes" } else { "no" }
                );
            }
            let _ = writeln!(s, "\n### Per segment (Table 7 layout)\n");
            let _ = writeln!(
                s,
                "| segment | proportion | {0} AUC | {1} AUC | ΔAUC [CI] | {0} UAUC | {1} UAUC | ΔUAUC [CI] | revenue/user lift [CI] | CTR lift [CI] |",
                c.control, c.treatment
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
            for (kind, lifts, props) in [
                ("users", &c.user_segments, &self.segment_proportions.users),
                ("items", &c.item_segments, &self.segment_proportions.items),
            ] {
                for (i, sl) in lifts.iter().enumerate() {
                    let prop = props.get(i).map_or(0.0, |p| p.proportion);
                    let auc = find(&sl.lifts, Metric::Auc).and_then(|m| m.lift);
                    let uauc = find(&sl.lifts, Metric::Uauc).and_then(|m| m.lift);
                    let _ = writeln!(
                        s,
                        "| {kind}: {} | {:.1}% | {} | {} | {} | {} | {} | {} | {} | {} |",
                        props.get(i).map_or(Segment::ALL[i], |p| p.segment),
                        100.0 * prop,
                        fmt_opt(auc.map(|a| a.control), 4),
                        fmt_opt(auc.map(|a| a.treatment), 4),
                        fmt_lift(Metric::Auc, &auc),
                        fmt_opt(uauc.map(|a| a.control), 4),
                        fmt_opt(uauc.map(|a| a.treatment), 4),
                        fmt_lift(Metric::Uauc, &uauc),
                        find(&sl.lifts, Metric::RevenuePerUser)
                            .map_or("n/a".into(), |m| fmt_lift(m.metric, &m.lift)),
                        find(&sl.lifts, Metric::Ctr)
                            .map_or("n/a".into(), |m| fmt_lift(m.metric, &m.lift)),
                    );
                }
            }
            let _ = writeln!(s, "\n### Daily\n");
            let _ = writeln!(
                s,
                "| day | revenue/user lift [CI] | CTR lift [CI] | CVR lift [CI] | ΔAUC [CI] |\n|---|---|---|---|---|"
            );
            for d in &c.days {
                let f =
                    |m: Metric| find(&d.lifts, m).map_or("n/a".into(), |x| fmt_lift(m, &x.lift));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    d.slice.label(),
                    f(Metric::RevenuePerUser),
                    f(Metric::Ctr),
                    f(Metric::Cvr),
                    f(Metric::Auc)
                );
            }
        }
        let p = &self.performance;
        let _ = writeln!(
            s,
            "\n## Performance\n\n{} requests in {:.2} s ({:.2} s simulating) on {} thread(s): {:.0} requests/s.",
            p.requests, p.seconds, p.simulate_seconds, p.threads, p.requests_per_sec
        );
        s
    }

    /// The report as one self-contained HTML page with inline SVG charts.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>A/B report: {}</title><style>\
             body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
             table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
             th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.warn{{background:#fff3cd;border:1px solid #e0c060;padding:0.6em}}\
             .oracle{{background:#fde2e2;border:2px solid #c33;padding:0.6em;font-weight:bold}}.sig{{font-weight:bold;color:#064}}\
             .charts{{display:flex;flex-wrap:wrap;gap:12px}}</style></head><body>",
            esc(&self.experiment)
        );
        let _ = write!(h, "<h1>A/B report: {}</h1>", esc(&self.experiment));
        let cls = if self.environment.kind == EnvKind::FittedOracle {
            "oracle"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<p class=\"{cls}\">Environment: {} — {}</p>",
            esc(&self.environment.label),
            esc(&self.environment.name)
        );
        if !self.environment.description.is_empty() {
            let _ = write!(h, "<p>{}</p>", esc(&self.environment.description));
        }
        for n in &self.notes {
            let _ = write!(h, "<p class=\"warn\">{}</p>", esc(n));
        }
        let _ = write!(
            h,
            "<p>Mode {}; {} day(s) from day {}; seed {}; {} slots, {} candidates per request; α = {}.</p>",
            if self.mode == Mode::Aa { "A/A" } else { "A/B" },
            self.config.days,
            self.config.start_day,
            self.config.seed,
            self.config.slots,
            self.config.retrieval.total,
            self.config.alpha
        );
        let _ = write!(
            h,
            "<h2>Traffic split</h2><p>Salt <code>{}</code>; bucket = first 8 bytes of SHA-256(\"{{salt}}:{{user_id}}\") as big-endian u64 mod 10000.</p>",
            esc(&self.split.salt)
        );
        let _ = write!(
            h,
            "<table><tr><th>arm</th><th>share</th><th>buckets</th><th>active users</th></tr>"
        );
        for (i, a) in self.split.arms.iter().enumerate() {
            let users = self.arms.get(i).map_or(0, |r| r.total.users);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.2}%</td><td>{}..{}</td><td>{}</td></tr>",
                esc(&a.name),
                100.0 * a.share,
                a.lo,
                a.hi,
                users
            );
        }
        let _ = write!(h, "</table>");
        if let Some(srm) = &self.srm {
            let _ = write!(
                h,
                "<p>Sample-ratio check: χ² = {:.3} (dof {}), p = {} — {}</p>",
                srm.chi2,
                srm.dof,
                esc(&fmt_p(srm.p_value)),
                if srm.mismatch {
                    "<b>MISMATCH: the split is broken</b>"
                } else {
                    "ok"
                }
            );
        }
        let _ = write!(
            h,
            "<h2>Arms (whole experiment)</h2><table><tr><th>arm</th><th>users</th><th>requests</th><th>impressions</th><th>clicks</th><th>conversions</th><th>CTR</th><th>CVR</th><th>revenue/user</th><th>AUC</th><th>UAUC</th><th>WUAUC</th></tr>"
        );
        for a in &self.arms {
            let t = &a.total;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.name),
                t.users,
                t.requests,
                t.impressions,
                t.clicks,
                t.conversions,
                fmt_opt(t.ctr, 4),
                fmt_opt(t.cvr, 4),
                fmt_opt(t.revenue_per_user, 3),
                fmt_opt(t.auc.map(|x| x.value), 4),
                fmt_opt(t.user_auc.map(|x| x.uauc), 4),
                fmt_opt(t.user_auc.map(|x| x.wuauc), 4)
            );
        }
        let _ = write!(h, "</table>");
        for c in &self.comparisons {
            let _ = write!(h, "<h2>{} vs {}</h2>", esc(&c.treatment), esc(&c.control));
            let _ = write!(
                h,
                "<table><tr><th>metric</th><th>{}</th><th>{}</th><th>lift [{:.0}% CI]</th><th>p</th><th>bootstrap CI</th></tr>",
                esc(&c.control),
                esc(&c.treatment),
                100.0 * (1.0 - self.config.alpha)
            );
            for m in &c.total {
                let (cv, tv, p) = m
                    .lift
                    .map_or(("n/a".into(), "n/a".into(), "n/a".into()), |l| {
                        (
                            format!("{:.5}", l.control),
                            format!("{:.5}", l.treatment),
                            esc(&fmt_p(l.p_value)),
                        )
                    });
                let boot = m.bootstrap.map_or("—".into(), |b| {
                    format!("[{:+.2}%, {:+.2}%]", 100.0 * b.low, 100.0 * b.high)
                });
                let sig = if m.significant { " class=\"sig\"" } else { "" };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{cv}</td><td>{tv}</td><td{sig}>{}</td><td>{p}</td><td>{boot}</td></tr>",
                    m.metric.label(),
                    fmt_lift(m.metric, &m.lift)
                );
            }
            let _ = write!(h, "</table><h3>Daily lift</h3><div class=\"charts\">");
            for m in [
                Metric::RevenuePerUser,
                Metric::Ctr,
                Metric::Cvr,
                Metric::Auc,
            ] {
                let pts: Vec<(f64, Option<Lift>)> = c
                    .days
                    .iter()
                    .map(|d| {
                        let day = match d.slice {
                            Slice::Day { day } => day as f64,
                            _ => 0.0,
                        };
                        (day, find(&d.lifts, m).and_then(|x| x.lift))
                    })
                    .collect();
                h.push_str(&svg_band_chart(
                    &format!("{} — daily", m.metric_title()),
                    &pts,
                    m.relative(),
                ));
            }
            let _ = write!(h, "</div><h3>Per segment</h3><div class=\"charts\">");
            for m in [Metric::RevenuePerUser, Metric::Auc, Metric::Uauc] {
                let mut bars = Vec::new();
                for (kind, lifts) in [("user", &c.user_segments), ("item", &c.item_segments)] {
                    for sl in lifts.iter() {
                        let seg = match sl.slice {
                            Slice::UserSegment { segment } | Slice::ItemSegment { segment } => {
                                segment.name()
                            }
                            _ => "",
                        };
                        bars.push((
                            format!("{kind}: {seg}"),
                            find(&sl.lifts, m).and_then(|x| x.lift),
                        ));
                    }
                }
                h.push_str(&svg_bar_chart(
                    &format!("{} — per segment", m.metric_title()),
                    &bars,
                    m.relative(),
                ));
            }
            let _ = write!(
                h,
                "</div><h3>Table 7 layout</h3><table><tr><th>segment</th><th>proportion</th><th>{0} AUC</th><th>{1} AUC</th><th>ΔAUC [CI]</th><th>{0} UAUC</th><th>{1} UAUC</th><th>ΔUAUC [CI]</th><th>revenue/user lift [CI]</th><th>CTR lift [CI]</th><th>CVR lift [CI]</th></tr>",
                esc(&c.control),
                esc(&c.treatment)
            );
            for (kind, lifts, props) in [
                ("users", &c.user_segments, &self.segment_proportions.users),
                ("items", &c.item_segments, &self.segment_proportions.items),
            ] {
                for (i, sl) in lifts.iter().enumerate() {
                    let auc = find(&sl.lifts, Metric::Auc).and_then(|m| m.lift);
                    let uauc = find(&sl.lifts, Metric::Uauc).and_then(|m| m.lift);
                    let f = |m: Metric| {
                        find(&sl.lifts, m).map_or("n/a".into(), |x| fmt_lift(m, &x.lift))
                    };
                    let _ = write!(
                        h,
                        "<tr><td>{kind}: {}</td><td>{:.1}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        props.get(i).map_or(Segment::ALL[i], |p| p.segment),
                        100.0 * props.get(i).map_or(0.0, |p| p.proportion),
                        fmt_opt(auc.map(|a| a.control), 4),
                        fmt_opt(auc.map(|a| a.treatment), 4),
                        fmt_lift(Metric::Auc, &auc),
                        fmt_opt(uauc.map(|a| a.control), 4),
                        fmt_opt(uauc.map(|a| a.treatment), 4),
                        fmt_lift(Metric::Uauc, &uauc),
                        f(Metric::RevenuePerUser),
                        f(Metric::Ctr),
                        f(Metric::Cvr)
                    );
                }
            }
            let _ = write!(h, "</table>");
        }
        let p = &self.performance;
        let _ = write!(
            h,
            "<h2>Performance</h2><p>{} requests in {:.2} s ({:.2} s simulating) on {} thread(s): {:.0} requests/s.</p></body></html>",
            p.requests, p.seconds, p.simulate_seconds, p.threads, p.requests_per_sec
        );
        h
    }
}

impl Metric {
    fn metric_title(self) -> String {
        match self {
            Metric::Auc => "AUC difference (treatment − control)".into(),
            Metric::Uauc => "UAUC difference (treatment − control)".into(),
            Metric::Wuauc => "WUAUC difference (treatment − control)".into(),
            m => format!("{} lift (%)", m.label()),
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 520.0;
const H: f64 = 260.0;
const ML: f64 = 60.0;
const MR: f64 = 16.0;
const MT: f64 = 28.0;
const MB: f64 = 40.0;

fn y_range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi - lo < 1e-12 {
        hi += 1.0;
        lo -= 1.0;
    }
    let pad = 0.08 * (hi - lo);
    (lo - pad, hi + pad)
}

fn fmt_tick(v: f64, pct: bool) -> String {
    if pct {
        format!("{:+.1}%", 100.0 * v)
    } else {
        format!("{v:+.3}")
    }
}

fn svg_frame(title: &str, lo: f64, hi: f64, pct: bool, y: &dyn Fn(f64) -> f64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<rect width=\"{W}\" height=\"{H}\" fill=\"#fff\" stroke=\"#ddd\"/>"
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        W / 2.0,
        esc(title)
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{ML}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>",
            W - MR
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ML - 4.0,
            yy + 4.0,
            fmt_tick(v, pct)
        );
    }
    let y0 = y(0.0);
    let _ = write!(
        s,
        "<line x1=\"{ML}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>",
        W - MR
    );
    s
}

/// A line of point estimates over days with a shaded CI band.
fn svg_band_chart(title: &str, pts: &[(f64, Option<Lift>)], pct: bool) -> String {
    let defined: Vec<(f64, Lift)> = pts
        .iter()
        .filter_map(|(x, l)| l.map(|l| (*x, l)))
        .filter(|(_, l)| l.ci_low.is_finite() && l.ci_high.is_finite())
        .collect();
    let (lo, hi) = y_range(
        defined
            .iter()
            .flat_map(|(_, l)| [l.ci_low, l.ci_high, l.lift]),
    );
    let (x0, x1) = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        (Some(a), _) => (a.0 - 1.0, a.0 + 1.0),
        _ => (0.0, 1.0),
    };
    let x = |v: f64| ML + (v - x0) / (x1 - x0) * (W - ML - MR);
    let y = |v: f64| MT + (hi - v) / (hi - lo) * (H - MT - MB);
    let mut s = svg_frame(title, lo, hi, pct, &y);
    if !defined.is_empty() {
        let mut band = String::new();
        for (d, l) in &defined {
            let _ = write!(band, "{:.1},{:.1} ", x(*d), y(l.ci_high));
        }
        for (d, l) in defined.iter().rev() {
            let _ = write!(band, "{:.1},{:.1} ", x(*d), y(l.ci_low));
        }
        let _ = write!(
            s,
            "<polygon points=\"{}\" fill=\"#4a7fd0\" fill-opacity=\"0.22\" stroke=\"none\"/>",
            band.trim()
        );
        let line: Vec<String> = defined
            .iter()
            .map(|(d, l)| format!("{:.1},{:.1}", x(*d), y(l.lift)))
            .collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f4e9c\" stroke-width=\"2\"/>",
            line.join(" ")
        );
        for (d, l) in &defined {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f4e9c\"><title>day {d}: {}</title></circle>",
                x(*d),
                y(l.lift),
                fmt_tick(l.lift, pct)
            );
        }
    }
    for (d, _) in pts {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{d}</text>",
            x(*d),
            H - MB + 16.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">day</text></svg>",
        (ML + W - MR) / 2.0,
        H - 6.0
    );
    s
}

/// Bars of point estimates with CI whiskers.
fn svg_bar_chart(title: &str, bars: &[(String, Option<Lift>)], pct: bool) -> String {
    let (lo, hi) = y_range(
        bars.iter()
            .filter_map(|(_, l)| *l)
            .flat_map(|l| [l.ci_low, l.ci_high, l.lift]),
    );
    let y = |v: f64| MT + (hi - v) / (hi - lo) * (H - MT - MB);
    let mut s = svg_frame(title, lo, hi, pct, &y);
    let n = bars.len().max(1) as f64;
    let slot = (W - ML - MR) / n;
    for (i, (label, l)) in bars.iter().enumerate() {
        let cx = ML + slot * (i as f64 + 0.5);
        if let Some(l) = l.filter(|l| l.lift.is_finite()) {
            let (top, bot) = (y(l.lift.max(0.0)), y(l.lift.min(0.0)));
            let color = if l.p_value < 0.05 {
                if l.lift > 0.0 { "#2e8b57" } else { "#c0392b" }
            } else {
                "#999"
            };
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {} (p = {})</title></rect>",
                cx - slot * 0.3,
                slot * 0.6,
                (bot - top).max(0.5),
                esc(label),
                fmt_tick(l.lift, pct),
                esc(&fmt_p(l.p_value))
            );
            if l.ci_low.is_finite() && l.ci_high.is_finite() {
                let (a, b) = (y(l.ci_high), y(l.ci_low));
                let _ = write!(
                    s,
                    "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{a:.1}\" y2=\"{b:.1}\" stroke=\"#222\"/>"
                );
                for yy in [a, b] {
                    let _ = write!(
                        s,
                        "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#222\"/>",
                        cx - 5.0,
                        cx + 5.0
                    );
                }
            }
        } else {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#999\">n/a</text>",
                y(0.0) - 4.0
            );
        }
        let _ = write!(
            s,
            "<text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
            H - MB + 16.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}
