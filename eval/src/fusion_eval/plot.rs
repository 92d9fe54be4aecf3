//! A per-segment chart of the deltas (UAUC and WUAUC, pp, with 95% CI whiskers) as SVG.

use super::Report;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// Draws the deltas of every non-baseline model per group (overall and each segment) to an SVG
/// file, written atomically.
pub fn deltas_svg(report: &Report, path: &Path) -> Result<()> {
    let mut groups = vec![&report.overall];
    groups.extend(report.segments.iter());
    let nd = report.overall.deltas.len();
    if nd == 0 {
        return Err(Error::Invalid("--plot needs at least two score columns (a delta)".into()));
    }
    let mut lo = 0f64;
    let mut hi = 0f64;
    for g in &groups {
        for d in &g.deltas {
            for v in [d.uauc_pp, d.wuauc_pp].into_iter().flatten() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            for [a, b] in [d.uauc_ci, d.wuauc_ci].into_iter().flatten() {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
    }
    let pad = ((hi - lo) * 0.1).max(0.05);
    let (lo, hi) = (lo - pad, hi + pad);
    let ng = groups.len();
    let mut svg = String::new();
    let draw = |svg: &mut String| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(svg, (220 + 120 * ng as u32, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!("Δ vs {} (pp), 95% bootstrap CI", report.baseline);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..ng as f64, lo..hi)?;
        let labels: Vec<String> = groups.iter().map(|g| g.group.label()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(ng * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_desc("pp")
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (ng as f64, 0.0)], BLACK))?;
        let bars = 2 * nd;
        let width = 0.8 / bars as f64;
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for di in 0..nd {
            for (mi, metric) in ["UAUC", "WUAUC"].iter().enumerate() {
                let color = colors[(2 * di + mi) % colors.len()];
                let style = if mi == 0 { color.filled() } else { color.mix(0.5).filled() };
                let mut rects = Vec::new();
                let mut whiskers = Vec::new();
                for (gi, g) in groups.iter().enumerate() {
                    let Some(d) = g.deltas.get(di) else { continue };
                    let (v, ci) = if mi == 0 { (d.uauc_pp, d.uauc_ci) } else { (d.wuauc_pp, d.wuauc_ci) };
                    let x0 = gi as f64 + 0.1 + (2 * di + mi) as f64 * width;
                    if let Some(v) = v {
                        rects.push(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], style));
                    }
                    if let Some([a, b]) = ci {
                        let xm = x0 + width * 0.45;
                        whiskers.push(PathElement::new(vec![(xm, a), (xm, b)], BLACK));
                    }
                }
                let name = format!("{} {}", report.overall.deltas[di].model, metric);
                chart
                    .draw_series(rects)?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], style));
                chart.draw_series(whiskers)?;
            }
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| Error::Invalid(format!("plot {}: {e}", path.display())))?;
    crate::atomic::write(path, svg.as_bytes())
}
