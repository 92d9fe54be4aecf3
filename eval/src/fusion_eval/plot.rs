//! A per-segment chart of the deltas (UAUC and WUAUC, pp, with 95% CI whiskers) as SVG or PNG.

use super::Report;
use super::report::GroupReport;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// Draws the deltas chart to `path`: SVG for `.svg`, PNG for `.png` (written atomically).
pub fn deltas_plot(report: &Report, path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("svg") => deltas_svg(report, path),
        Some("png") => deltas_png(report, path),
        _ => Err(Error::Invalid(format!("--plot {}: the file name must end in .svg or .png", path.display()))),
    }
}

/// The groups (overall, then each segment) and the y range, padded, that holds every delta and CI.
fn groups_and_range(report: &Report) -> Result<(Vec<&GroupReport>, f64, f64)> {
    let mut groups = vec![&report.overall];
    groups.extend(report.segments.iter());
    if report.overall.deltas.is_empty() {
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
    Ok((groups, lo - pad, hi + pad))
}

/// Draws the deltas of every non-baseline model per group (overall and each segment) to an SVG
/// file, written atomically.
pub fn deltas_svg(report: &Report, path: &Path) -> Result<()> {
    let (groups, lo, hi) = groups_and_range(report)?;
    let nd = report.overall.deltas.len();
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

/// Bar colours (RGB), one per (model, metric) pair; WUAUC bars are the lighter tint.
const PALETTE: [[u8; 3]; 6] = [[31, 90, 200], [200, 40, 40], [30, 150, 60], [170, 40, 170], [20, 160, 170], [60, 60, 60]];

/// A small RGB canvas with 8×8 bitmap text (font8x8, ASCII).
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas { w, h, px: vec![255; w * h * 3] }
    }
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        let (xa, xb) = (x0.min(x1).max(0) as usize, (x0.max(x1) + 1).clamp(0, self.w as i64) as usize);
        let (ya, yb) = (y0.min(y1).max(0) as usize, (y0.max(y1) + 1).clamp(0, self.h as i64) as usize);
        for y in ya..yb {
            for x in xa..xb {
                self.px[(y * self.w + x) * 3..][..3].copy_from_slice(&c);
            }
        }
    }
    /// Text with its top-left corner at (x, y); non-ASCII characters draw as `?`.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let g = font8x8::legacy::BASIC_LEGACY[if ch.is_ascii() { ch as usize } else { b'?' as usize }];
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        let (px, py) = (x + 8 * i as i64 + col, y + row as i64);
                        self.rect(px, py, px, py, c);
                    }
                }
            }
        }
    }
    fn text_width(s: &str) -> i64 {
        8 * s.chars().count() as i64
    }
    fn png(&self) -> std::result::Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.px)?;
        w.finish()?;
        Ok(out)
    }
}

/// Nice tick step for a range: 1, 2 or 5 × 10^k, about 6 ticks.
fn tick_step(span: f64) -> f64 {
    let raw = span / 6.0;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

/// The same chart as [`deltas_svg`] as a PNG (ASCII labels: `d` for Δ), written atomically.
pub fn deltas_png(report: &Report, path: &Path) -> Result<()> {
    let (groups, lo, hi) = groups_and_range(report)?;
    let nd = report.overall.deltas.len();
    let ng = groups.len() as i64;
    let (left, right, top, bottom, gw) = (70i64, 20i64, 70i64, 50i64, 130i64);
    let (w, h) = (left + gw * ng + right, 480i64);
    let mut cv = Canvas::new(w as usize, h as usize);
    let black = [0u8; 3];
    let grey = [200u8; 3];
    let ph = (h - top - bottom) as f64;
    let y_of = |v: f64| top + ((hi - v) / (hi - lo) * ph).round() as i64;
    // Title.
    let title = format!("d vs {} (pp), 95% bootstrap CI", report.baseline);
    cv.text((w - Canvas::text_width(&title)) / 2, 12, &title, black);
    // Y grid, ticks and labels.
    let step = tick_step(hi - lo);
    let mut t = (lo / step).ceil() * step;
    while t <= hi + 1e-12 {
        let t0 = if t.abs() < step * 1e-6 { 0.0 } else { t };
        let y = y_of(t0);
        cv.rect(left, y, w - right, y, grey);
        let lab = format!("{:+.*}", if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize }, t0);
        cv.text(left - 6 - Canvas::text_width(&lab), y - 4, &lab, black);
        t += step;
    }
    cv.text(8, top - 20, "pp", black);
    // Axes and the zero line.
    cv.rect(left, top, left, h - bottom, black);
    cv.rect(left, h - bottom, w - right, h - bottom, black);
    let y0 = y_of(0.0);
    cv.rect(left, y0, w - right, y0, black);
    // Bars and whiskers.
    let bars = 2 * nd as i64;
    let bw = ((gw as f64 * 0.8) / bars as f64).floor().max(2.0) as i64;
    for (gi, g) in groups.iter().enumerate() {
        let gx = left + gi as i64 * gw;
        let lab = g.group.label();
        cv.text(gx + (gw - Canvas::text_width(&lab)) / 2, h - bottom + 10, &lab, black);
        for di in 0..nd {
            let Some(d) = g.deltas.get(di) else { continue };
            for mi in 0..2usize {
                let base = PALETTE[(2 * di + mi) % PALETTE.len()];
                let c = if mi == 0 { base } else { base.map(|x| x / 2 + 128) };
                let (v, ci) = if mi == 0 { (d.uauc_pp, d.uauc_ci) } else { (d.wuauc_pp, d.wuauc_ci) };
                let x0 = gx + (gw as f64 * 0.1) as i64 + (2 * di + mi) as i64 * bw;
                if let Some(v) = v {
                    cv.rect(x0, y0, x0 + bw - 2, y_of(v), c);
                }
                if let Some([a, b]) = ci {
                    let xm = x0 + (bw - 2) / 2;
                    cv.rect(xm, y_of(b), xm, y_of(a), black);
                    cv.rect(xm - 2, y_of(a), xm + 2, y_of(a), black);
                    cv.rect(xm - 2, y_of(b), xm + 2, y_of(b), black);
                }
            }
        }
    }
    // Legend, one line per (model, metric), under the title.
    let mut lx = left;
    for di in 0..nd {
        for (mi, metric) in ["UAUC", "WUAUC"].iter().enumerate() {
            let base = PALETTE[(2 * di + mi) % PALETTE.len()];
            let c = if mi == 0 { base } else { base.map(|x| x / 2 + 128) };
            let name = format!("{} {}", report.overall.deltas[di].model, metric);
            cv.rect(lx, 34, lx + 10, 44, c);
            cv.text(lx + 14, 36, &name, black);
            lx += 14 + Canvas::text_width(&name) + 16;
        }
    }
    let bytes = cv.png().map_err(|e| Error::Invalid(format!("plot {}: {e}", path.display())))?;
    crate::atomic::write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(6.0), 1.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(25.0), 5.0);
    }

    #[test]
    fn text_sets_pixels_inside_the_canvas_only() {
        let mut c = Canvas::new(20, 10);
        c.text(-4, -2, "AB", [0, 0, 0]);
        assert!(c.px.contains(&0), "some glyph pixels are drawn");
        assert_eq!(c.px.len(), 20 * 10 * 3);
        let png = c.png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
