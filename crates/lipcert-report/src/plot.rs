//! Dependency-free SVG line plots: axes with "nice" ticks (1-2-5 steps, or decades on a log
//! axis), grid lines, a title, axis labels and a legend. One plot ([`line_plot`]) or a grid of
//! panels in one file ([`grid`]).
//!
//! Points that are not finite (or not positive on a log axis) break a line instead of
//! distorting the axes. Series with few points also get markers, so sparse sweeps read well.

use std::fmt::Write;

/// One named line.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points }
    }
}

/// One plot: a title, axis labels and its series.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub log_y: bool,
}

/// Colours of successive series (a palette readable on white and by most colour-blind
/// readers); after the last one the dash pattern changes.
const COLOURS: [&str; 8] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#7f7f7f"];
const DASHES: [&str; 3] = ["", "6 3", "2 3"];
/// Series with at most this many points get markers.
const MARKER_POINTS: usize = 40;

const PLOT_WIDTH: f64 = 640.0;
const PLOT_HEIGHT: f64 = 400.0;
const PANEL_WIDTH: f64 = 520.0;
const PANEL_HEIGHT: f64 = 320.0;

/// A single SVG line plot.
pub fn line_plot(title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> String {
    let panel =
        Panel { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), series: series.to_vec(), log_y };
    let mut svg = header(PLOT_WIDTH, PLOT_HEIGHT);
    draw_panel(&mut svg, &panel, 0, 0.0, 0.0, PLOT_WIDTH, PLOT_HEIGHT);
    svg.push_str("</svg>\n");
    svg
}

/// Several panels in one SVG, `columns` per row, filled row by row.
pub fn grid(panels: &[Panel], columns: usize) -> String {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let (w, h) = (PANEL_WIDTH * columns as f64, PANEL_HEIGHT * rows as f64);
    let mut svg = header(w, h);
    for (i, p) in panels.iter().enumerate() {
        let (r, c) = (i / columns, i % columns);
        draw_panel(&mut svg, p, i, c as f64 * PANEL_WIDTH, r as f64 * PANEL_HEIGHT, PANEL_WIDTH, PANEL_HEIGHT);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Gives the clip-path ids of one SVG a prefix, so that several plots inlined in one HTML page
/// do not share ids (a `url(#id)` resolves to the first element of the whole document).
pub fn with_id_prefix(svg: &str, prefix: &str) -> String {
    svg.replace("plot-area-", &format!("plot-area-{prefix}-"))
}

/// One named group of bar heights, one per category.
#[derive(Clone, Debug, Default)]
pub struct Bars {
    pub name: String,
    pub values: Vec<f64>,
}

/// Grouped vertical bars: one group per category, one bar per series. Values that cannot be
/// drawn (not finite, or not positive on a log axis) leave a gap; the category labels are
/// written at 45 degrees under the axis.
pub fn bar_plot(title: &str, y_label: &str, categories: &[String], series: &[Bars], log_y: bool) -> String {
    let longest = categories.iter().map(|c| c.chars().count()).max().unwrap_or(0).min(24) as f64;
    let (left, right, top) = (72.0, 18.0, TITLE_HEIGHT + LEGEND_ROW + 6.0);
    let bottom = 24.0 + 5.0 * longest;
    let group = 14.0 * series.len().max(1) as f64 + 10.0;
    let pw = (group * categories.len() as f64).max(PLOT_WIDTH - left - right);
    let (w, h) = (pw + left + right, PLOT_HEIGHT + bottom - 48.0);
    let ph = h - top - bottom;
    let (px, py) = (left, top);
    // Bars grow from the axis' bottom: on a log axis, half the smallest value keeps it visible.
    let smallest = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if log_y { 0.5 * smallest } else { 0.0 };
    let ys = Axis::new(series.iter().flat_map(|s| s.values.iter().copied()).chain(Some(floor)), log_y, false);
    let mut svg = header(w, h);
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        px + pw / 2.0,
        escape(title)
    );
    y_ticks(&mut svg, &ys, px, py, pw, ph);
    let (lx, ly) = (16.0, py + ph / 2.0);
    let _ = writeln!(
        svg,
        "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {lx:.1} {ly:.1})\">{}</text>",
        escape(y_label)
    );
    let base = if log_y { py + ph } else { ys.frac(0.0).map_or(py + ph, |f| py + ph - f * ph) };
    let slot = pw / categories.len().max(1) as f64;
    let bar = (slot - 10.0) / series.len().max(1) as f64;
    for (c, name) in categories.iter().enumerate() {
        let gx = px + c as f64 * slot + 5.0;
        for (i, s) in series.iter().enumerate() {
            let Some(f) = s.values.get(c).and_then(|&v| ys.frac(v)) else { continue };
            let y = py + ph - f.clamp(0.0, 1.0) * ph;
            let (top_y, height) = if y <= base { (y, base - y) } else { (base, y - base) };
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{top_y:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"><title>{}: {} = {}</title></rect>",
                gx + i as f64 * bar,
                (bar - 1.0).max(1.0),
                COLOURS[i % COLOURS.len()],
                escape(name),
                escape(&s.name),
                s.values[c]
            );
        }
        let (tx, ty) = (px + (c as f64 + 0.5) * slot, py + ph + 14.0);
        let label: String = name.chars().take(24).collect();
        let _ = writeln!(
            svg,
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {tx:.1} {ty:.1})\">{}</text>",
            escape(&label)
        );
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#333333\"/>"
    );
    let mut x = px;
    for (i, s) in series.iter().enumerate() {
        let y = TITLE_HEIGHT + LEGEND_ROW * 0.75;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 9.0,
            COLOURS[i % COLOURS.len()],
            x + 20.0,
            escape(&s.name)
        );
        x += 40.0 + 6.8 * s.name.chars().count() as f64;
    }
    svg.push_str("</svg>\n");
    svg
}

fn header(w: f64, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    )
}

/// Escapes text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An axis: the data range mapped to pixels, and its ticks.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// (value, label) of labelled ticks; minor ticks only get grid lines.
    ticks: Vec<(f64, String)>,
    minor: Vec<f64>,
}

impl Axis {
    /// A tight axis has exactly the data range (ticks inside it); otherwise the range is
    /// widened to the nearest ticks.
    fn new(values: impl Iterator<Item = f64>, log: bool, tight: bool) -> Self {
        let (mut lo, mut hi) = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if lo > hi {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            let (mut a, mut b) = (lo.log10().floor(), hi.log10().ceil());
            if a == b {
                a -= 0.5;
                b += 0.5;
            }
            let mut ticks = vec![];
            let mut minor = vec![];
            // Label every decade, or every k-th one on wide ranges.
            let every = ((b - a) / 8.0).ceil().max(1.0) as i64;
            for e in a.floor() as i64..=b.ceil() as i64 {
                let v = 10f64.powi(e as i32);
                if (e - a.floor() as i64) % every == 0 {
                    ticks.push((e as f64, format_decade(e)));
                }
                if b - a <= 4.0 {
                    for k in 2..10 {
                        minor.push((k as f64 * v).log10());
                    }
                }
            }
            ticks.retain(|(t, _)| *t >= a - 1e-9 && *t <= b + 1e-9);
            minor.retain(|t| *t >= a && *t <= b);
            return Axis { lo: a, hi: b, log, ticks, minor };
        }
        if lo == hi {
            let pad = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
            lo -= pad;
            hi += pad;
        }
        let step = nice_step((hi - lo) / 6.0);
        // The first and last ticks at or beyond the data (a data value within rounding of a
        // tick counts as on it).
        let (first, last) = ((lo / step + 1e-9).floor(), (hi / step - 1e-9).ceil());
        let (first, last) = if tight { ((lo / step - 1e-9).ceil(), (hi / step + 1e-9).floor()) } else { (first, last) };
        let ticks = (first as i64..=last as i64).map(|i| i as f64 * step).map(|v| (v, format_tick(v, step))).collect();
        let (lo, hi) = if tight { (lo, hi) } else { (first * step, last * step) };
        Axis { lo, hi, log, ticks, minor: vec![] }
    }

    /// Position in [0, 1] of a data value (None when it cannot be drawn).
    fn frac(&self, v: f64) -> Option<f64> {
        let v = if self.log {
            if v > 0.0 {
                v.log10()
            } else {
                return None;
            }
        } else {
            v
        };
        v.is_finite().then(|| (v - self.lo) / (self.hi - self.lo))
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw > 0.0 && raw.is_finite() { raw } else { 1.0 };
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let f = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * p
}

/// A tick label with as many decimals as the step needs (scientific for extreme values).
fn format_tick(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    let big = v.abs().max(step);
    if big >= 1e6 || step < 1e-4 {
        return format_sci(v);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn format_sci(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let e = v.abs().log10().floor() as i32;
    let m = v / 10f64.powi(e);
    let m = format!("{m:.2}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    format!("{m}e{e}")
}

fn format_decade(e: i64) -> String {
    match e {
        -3..=-1 => format!("{}", 10f64.powi(e as i32)),
        0..=4 => format!("{}", 10i64.pow(e as u32)),
        _ => format!("1e{e}"),
    }
}

/// Labelled y ticks with their grid lines across the plot area.
fn y_ticks(svg: &mut String, ys: &Axis, px: f64, py: f64, pw: f64, ph: f64) {
    for (v, label) in &ys.ticks {
        let y = py + ph - (v - ys.lo) / (ys.hi - ys.lo) * ph;
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>",
            px + pw
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            px - 6.0,
            y + 4.0,
            escape(label)
        );
    }
}

const TITLE_HEIGHT: f64 = 28.0;
const LEGEND_ROW: f64 = 18.0;

/// Legend entries of named series: (series index, series, x offset from the plot area's
/// left edge, row), flowing left to right and wrapping at the plot area's width.
fn legend_layout(p: &Panel, width: f64) -> Vec<(usize, &Series, f64, usize)> {
    let mut out = vec![];
    let (mut x, mut row) = (0.0, 0);
    for (i, s) in p.series.iter().enumerate().filter(|(_, s)| !s.name.is_empty()) {
        let w = 28.0 + 6.8 * s.name.chars().count() as f64 + 18.0;
        if x > 0.0 && x + w > width {
            x = 0.0;
            row += 1;
        }
        out.push((i, s, x, row));
        x += w;
    }
    out
}

fn draw_panel(svg: &mut String, p: &Panel, id: usize, x0: f64, y0: f64, w: f64, h: f64) {
    let (left, right, bottom) = (72.0, 18.0, 48.0);
    let pw = w - left - right;
    let rows = legend_layout(p, pw).last().map_or(0, |e| e.3 + 1);
    let top = TITLE_HEIGHT + LEGEND_ROW * rows as f64 + 6.0;
    let (px, py, ph) = (x0 + left, y0 + top, h - top - bottom);
    let xs = Axis::new(p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)), false, true);
    let ys = Axis::new(
        p.series.iter().flat_map(|s| s.points.iter().filter(|q| q.0.is_finite()).map(|q| q.1)),
        p.log_y,
        false,
    );
    let sx = |v: f64| xs.frac(v).map(|f| px + f * pw);
    let sy = |v: f64| ys.frac(v).map(|f| py + ph - f * ph);
    let _ = writeln!(svg, "<g>");
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        px + pw / 2.0,
        y0 + 20.0,
        escape(&p.title)
    );
    let _ = writeln!(svg, "<defs><clipPath id=\"plot-area-{id}\"><rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\"/></clipPath></defs>");
    // Grid and ticks.
    for &v in &ys.minor {
        let y = py + ph - (v - ys.lo) / (ys.hi - ys.lo) * ph;
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#f0f0f0\"/>",
            px + pw
        );
    }
    y_ticks(svg, &ys, px, py, pw, ph);
    for (v, label) in &xs.ticks {
        let x = px + (v - xs.lo) / (xs.hi - xs.lo) * pw;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{py:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>",
            py + ph
        );
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            py + ph + 16.0,
            escape(label)
        );
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{px:.1}\" y=\"{py:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#333333\"/>"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        px + pw / 2.0,
        py + ph + 36.0,
        escape(&p.x_label)
    );
    let (lx, ly) = (x0 + 16.0, py + ph / 2.0);
    let _ = writeln!(
        svg,
        "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {lx:.1} {ly:.1})\">{}</text>",
        escape(&p.y_label)
    );
    // Lines, broken at points that cannot be drawn.
    let drawable = p.series.iter().any(|s| s.points.iter().any(|&(x, y)| sx(x).is_some() && sy(y).is_some()));
    if !drawable {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888888\">no data</text>",
            px + pw / 2.0,
            py + ph / 2.0
        );
    }
    let _ = writeln!(svg, "<g clip-path=\"url(#plot-area-{id})\" fill=\"none\" stroke-width=\"1.8\">");
    let mut markers = String::new();
    for (i, s) in p.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = DASHES[(i / COLOURS.len()) % DASHES.len()];
        let dash_attr = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        let mut d = String::new();
        let mut pen_down = false;
        let mut pixels: Vec<(f64, f64)> = vec![];
        for &(x, y) in &s.points {
            match (sx(x), sy(y)) {
                (Some(x), Some(y)) => {
                    let _ = write!(d, "{}{x:.2},{y:.2} ", if pen_down { "L" } else { "M" });
                    pen_down = true;
                    pixels.push((x, y));
                }
                _ => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = writeln!(svg, "<path d=\"{}\" stroke=\"{colour}\"{dash_attr}/>", d.trim_end());
        }
        if s.points.len() <= MARKER_POINTS {
            for &(x, y) in &pixels {
                let _ = writeln!(markers, "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"3\" fill=\"{colour}\"/>");
            }
        }
    }
    let _ = writeln!(svg, "</g>");
    svg.push_str(&markers);
    // Legend: entries in rows between the title and the plot area.
    for (i, s, lx, row) in legend_layout(p, pw) {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = DASHES[(i / COLOURS.len()) % DASHES.len()];
        let dash_attr = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        let (x, y) = (px + lx, y0 + TITLE_HEIGHT + LEGEND_ROW * (row as f64 + 0.75));
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash_attr}/>",
            y - 4.0,
            x + 22.0,
            y - 4.0
        );
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{y:.1}\">{}</text>", x + 28.0, escape(&s.name));
    }
    let _ = writeln!(svg, "</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_data() {
        let a = Axis::new([0.13, 9.7].into_iter(), false, false);
        assert!(a.lo <= 0.13 && a.hi >= 9.7);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "2", "4", "6", "8", "10"]);
        let t = Axis::new([0.0, 10.0].into_iter(), false, true);
        assert_eq!((t.lo, t.hi, t.ticks.len()), (0.0, 10.0, 6));
        let t = Axis::new([1.0, 200.0].into_iter(), false, true);
        assert_eq!(t.ticks.first().unwrap().1, "50");
        let a = Axis::new([0.0012, 0.0051].into_iter(), false, false);
        assert!(a.ticks.iter().all(|t| t.1.len() <= 6), "{:?}", a.ticks);
        let l = Axis::new([3e-4, 2.0, -1.0, f64::NAN].into_iter(), true, false);
        assert_eq!((l.lo, l.hi), (-4.0, 1.0));
        assert_eq!(l.ticks.first().unwrap().1, "1e-4");
    }

    #[test]
    fn plots_are_well_formed_and_skip_bad_points() {
        let s = vec![
            Series::new("a <b>", vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)]),
            Series::new("c", vec![(0.0, 0.0)]),
        ];
        for log in [false, true] {
            let svg = line_plot("t & u", "x", "y", &s, log);
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("a &lt;b&gt;") && svg.contains("t &amp; u"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
            // The NaN breaks the first line into two pieces.
            let first = svg.split("<path d=\"").nth(1).unwrap().split('"').next().unwrap();
            assert_eq!(first.matches('M').count(), 2, "{first}");
        }
        let g = grid(&[Panel::default(), Panel { title: "p".into(), ..Default::default() }], 2);
        assert!(g.contains("no data") && g.contains("plot-area-1"));
        assert!(with_id_prefix(&g, "p7").contains("url(#plot-area-p7-1)"));
    }

    #[test]
    fn bars_are_well_formed_and_skip_bad_values() {
        let cats = vec!["fc1".to_string(), "relu & co".to_string(), "fc2".to_string()];
        let s = vec![
            Bars { name: "upper".into(), values: vec![3.0, 1.0, f64::INFINITY] },
            Bars { name: "lower".into(), values: vec![2.5, 1.0, 0.0] },
        ];
        for log in [false, true] {
            let svg = bar_plot("per layer", "constant", &cats, &s, log);
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("relu &amp; co") && !svg.contains("NaN"));
            // The infinite bar is left out, and on a log axis the zero one too.
            let bars = svg.matches("<rect x=").count() - 1 - 2; // frame and legend swatches
            assert_eq!(bars, if log { 4 } else { 5 }, "{svg}");
        }
    }
}
