//! Renders a [`Report`] as one self-contained HTML page: tables, plots as inline SVG, and for
//! every number a sentence on what it certifies with a link to docs/GUARANTEES.md.
//!
//! Every number drawn from the report carries `data-key="path.in.report.json"`, so a test can
//! check that the page and the JSON agree.

use crate::plot::{bar_plot, line_plot, with_id_prefix, Bars, Series};
use crate::robustness::RobustnessSection;
use crate::Report;
use std::fmt::Write;

/// Sections of docs/GUARANTEES.md the page links to (their headings).
const G_LIPSCHITZ: &str = "Lipschitz constants of networks (`lipcert lipschitz`)";
const G_RADII: &str = "Certified radii from Lipschitz constants (`lipcert certify --method lipschitz`)";
const G_IBP: &str = "Interval bound propagation (lipcert-bounds, `lipcert bounds --box LO.npy HI.npy`)";
const G_CROWN: &str = "Linear bound propagation: CROWN, crown-pure, alpha-CROWN (`lipcert bounds`, `certify`)";
const G_ATTACK: &str = "Attacks (`lipcert certify`, PGD)";
const G_VERIFY: &str = "Input-splitting branch and bound (lipcert-verify `verify`)";
const G_BOUNDARY: &str = "Distance to the decision boundary (lipcert-verify `boundary`, `lipcert boundary`)";
/// The smoothing guarantees are in docs/SMOOTHING.md (its first section).
const SMOOTHING_DOC: &str = "SMOOTHING.md";
const G_DEVIATION: &str = "Pruning deviation (lipcert-prune, `lipcert deviation`)";

/// GitHub's anchor of a Markdown heading: lower case, spaces to '-', other punctuation dropped.
pub fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Six significant digits; "none" for a missing value and "∞" for an infinite one.
pub fn fmt(v: Option<f64>) -> String {
    match v {
        None => "none".into(),
        Some(v) if v.is_infinite() => if v > 0.0 { "∞" } else { "-∞" }.into(),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(0.0) => "0".into(),
        Some(v) if v.abs() >= 1e6 || v.abs() < 1e-4 => format!("{v:.5e}"),
        Some(v) => {
            let decimals = (5 - v.abs().log10().floor() as i64).clamp(0, 10) as usize;
            let s = format!("{v:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
    }
}

/// A table cell holding a number of the report at JSON path `key`.
fn num(key: &str, v: Option<f64>) -> String {
    format!("<td class=\"num\" data-key=\"{key}\">{}</td>", fmt(v))
}

fn percent(key: &str, v: f64) -> String {
    format!("<td class=\"num\" data-key=\"{key}\" data-scale=\"100\">{:.1}%</td>", 100.0 * v)
}

struct Page<'a> {
    out: String,
    guarantees: &'a str,
    plots: usize,
}

impl Page<'_> {
    fn link(&self, heading: &str) -> String {
        let title = heading.split(" (").next().unwrap_or(heading);
        format!("<a href=\"{}#{}\">what this certifies: {}</a>", esc(self.guarantees), anchor(heading), esc(title))
    }

    fn plot(&mut self, svg: String, caption: &str) {
        self.plots += 1;
        let svg = with_id_prefix(&svg, &format!("p{}", self.plots));
        let _ = writeln!(self.out, "<figure class=\"plot\">{svg}<figcaption>{}</figcaption></figure>", esc(caption));
    }

    fn section(&mut self, id: &str, title: &str) {
        let _ = writeln!(self.out, "<section id=\"{id}\"><h2>{}</h2>", esc(title));
    }

    fn end(&mut self) {
        self.out.push_str("</section>\n");
    }

    fn para(&mut self, html: &str) {
        let _ = writeln!(self.out, "<p>{html}</p>");
    }
}

const STYLE: &str = "body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.8em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f6f6f6}\
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.7em 1em;min-width:12em}\
.card .v{font-size:1.5em;font-weight:bold}.card .l{color:#555;font-size:.9em}\
figure.plot{margin:1em 0;overflow-x:auto}figcaption{color:#555;font-size:.9em}\
.est{color:#a33}.small{color:#666;font-size:.9em}";

/// Checks, once the page has loaded, that every plot was laid out with a non-empty size, and
/// records the count on <body data-plots-rendered> (read by the browser test).
const SCRIPT: &str = "window.addEventListener('load',function(){var s=document.querySelectorAll('figure.plot svg');\
var ok=0;s.forEach(function(e){var b=e.getBBox();if(b.width>0&&b.height>0)ok++;});\
document.body.setAttribute('data-plots-rendered',ok+'/'+s.length);});";

/// The whole page. `guarantees` is the address of docs/GUARANTEES.md as seen from the page.
pub fn render(r: &Report, guarantees: &str) -> String {
    let mut p = Page { out: String::new(), guarantees, plots: 0 };
    let title = format!("Robustness report: {}", r.model.file);
    let _ = write!(
        p.out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style>\
         <script>{SCRIPT}</script></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        p.out,
        "<p class=\"small\">lipcert {} · {} · budget {} s, took <span data-key=\"time_s\">{}</span> s · every number is also in <a href=\"report.json\">report.json</a></p>",
        r.lipcert_version,
        esc(&r.points.description),
        r.budget_s,
        fmt(Some(r.time_s))
    );
    cards(&mut p, r);
    model(&mut p, r);
    if let Some(rb) = &r.robustness {
        robustness(&mut p, rb);
    }
    smoothing(&mut p, r);
    lipschitz(&mut p, r);
    verification(&mut p, r);
    boundary(&mut p, r);
    deviation(&mut p, r);
    if !r.skipped.is_empty() {
        p.section("skipped", "Not run, or run in part");
        p.out.push_str("<ul>");
        for s in &r.skipped {
            let _ = write!(p.out, "<li><b>{}</b>: {}</li>", esc(&s.analysis), esc(&s.reason));
        }
        p.out.push_str("</ul>");
        p.end();
    }
    p.out.push_str("</body></html>\n");
    p.out
}

fn cards(p: &mut Page, r: &Report) {
    p.out.push_str("<div class=\"cards\">");
    let mut card = |value: String, label: &str| {
        let _ = write!(
            p.out,
            "<div class=\"card\"><div class=\"v\">{value}</div><div class=\"l\">{}</div></div>",
            esc(label)
        );
    };
    if let Some(rb) = &r.robustness {
        card(
            format!(
                "<span data-key=\"robustness.clean_accuracy\" data-scale=\"100\">{:.1}%</span>",
                100.0 * rb.clean_accuracy
            ),
            "clean accuracy",
        );
        // The best certified accuracy at the middle radius of the table.
        let k = rb.radii.len() / 2;
        if let Some((i, row)) = rb
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind == "certified")
            .max_by(|a, b| a.1.accuracy[k].total_cmp(&b.1.accuracy[k]))
        {
            card(
                format!(
                    "<span data-key=\"robustness.rows.{i}.accuracy.{k}\" data-scale=\"100\">{:.1}%</span>",
                    100.0 * row.accuracy[k]
                ),
                &format!("certified at l_inf radius {} ({})", fmt(Some(rb.radii[k])), row.method),
            );
        }
    }
    for (i, l) in r.lipschitz.iter().enumerate() {
        card(
            format!("≤ <span data-key=\"lipschitz.{i}.upper\">{}</span>", fmt(Some(l.upper))),
            &format!("Lipschitz constant, l_{} (certified; ≥ {})", l.norm, fmt(Some(l.lower))),
        );
    }
    if let Some(v) = &r.verification {
        let unsat = v.properties.iter().filter(|p| p.result == "unsat").count();
        card(format!("{unsat} / {}", v.properties.len()), "VNN-LIB properties proven (unsat)");
    }
    if let Some(d) = &r.deviation {
        card(
            format!("≤ <span data-key=\"deviation.given.certified\">{}</span>", fmt(Some(d.given.certified))),
            "certified output deviation of the pruned model (l2)",
        );
    }
    p.out.push_str("</div>\n");
}

fn model(p: &mut Page, r: &Report) {
    let m = &r.model;
    p.section("model", "Model");
    p.para(&format!(
        "{} (ONNX IR {}, opset {}, producer '{}'): input <code>{}</code> {:?}, output <code>{}</code> {:?}, <span data-key=\"model.params\">{}</span> parameters.",
        esc(&m.file),
        m.ir_version,
        m.opset,
        esc(&m.producer),
        esc(&m.input_name),
        m.input_shape,
        esc(&m.output_name),
        m.output_shape,
        m.params
    ));
    p.out.push_str("<table><tr><th>#</th><th>node</th><th>op</th><th>output shape</th><th>params</th></tr>");
    for (k, n) in m.nodes.iter().enumerate() {
        let _ = write!(
            p.out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td class=\"num\">{}</td></tr>",
            k + 1,
            esc(&n.name),
            n.op,
            n.output_shape,
            n.params
        );
    }
    p.out.push_str("</table>");
    for n in &m.notes {
        p.para(&format!("note: {}", esc(n)));
    }
    p.end();
}

fn method_sentence(p: &Page, method: &str) -> String {
    match method {
        "lipschitz" => format!("<b>lipschitz</b>: the margin at the point over 2 L (class pairs: over the pair's constant), with L the certified l_inf Lipschitz bound: no perturbation within that radius changes the class. {}", p.link(G_RADII)),
        "pgd" => format!("<b>pgd</b>: the distance of the closest misclassified point PGD found (re-checked by a forward pass): an upper bound on the robust radius, so its curve bounds robust accuracy from above. {}", p.link(G_ATTACK)),
        "ibp" => format!("<b>ibp</b>: interval bound propagation proves every margin positive on the ball. {}", p.link(G_IBP)),
        "crown" => format!("<b>crown</b>: linear bound propagation (CROWN) proves every margin positive on the ball. {}", p.link(G_CROWN)),
        _ => format!("<b>alpha-crown</b>: CROWN with optimized relaxation slopes proves every margin positive on the ball. {}", p.link(G_CROWN)),
    }
}

/// Certified accuracy as a step function of the radius, from the per-point radii.
fn curve(rb: &RobustnessSection, method: &str, top: f64) -> Vec<(f64, f64)> {
    let mut knots: Vec<f64> =
        rb.samples.iter().filter_map(|s| s.get(method)).filter(|v| v.is_finite() && *v <= top).collect();
    knots.push(0.0);
    knots.push(top);
    knots.sort_by(f64::total_cmp);
    knots.dedup();
    let mut pts = vec![];
    for w in knots.windows(2) {
        // Constant between knots: sample just after the left one and at the right one.
        let a = rb.accuracy_at(method, w[0] + 1e-12 * top.max(1e-300));
        pts.push((w[0], rb.accuracy_at(method, w[0])));
        pts.push((w[0], a));
        pts.push((w[1], a));
    }
    pts
}

fn robustness(p: &mut Page, rb: &RobustnessSection) {
    p.section("robustness", "Certified and adversarial accuracy (l_inf)");
    p.para(&format!(
        "Over {} points: a point counts at radius r when it is classified correctly and the method proves the whole l_inf ball of radius r keeps its class (for PGD: when no misclassified point was found within r). Certified curves lie below the true robust accuracy, the PGD curve above it.",
        rb.points
    ));
    let top = rb.radii.last().copied().unwrap_or(1.0) * 1.1;
    let series: Vec<Series> =
        rb.rows.iter().map(|r| Series::new(r.method.clone(), curve(rb, &r.method, top))).collect();
    p.plot(
        line_plot("Accuracy vs l_inf radius", "radius", "fraction of points", &series, false),
        "Certified accuracy per method (lower bounds) and PGD accuracy (an upper bound), from the per-point radii.",
    );
    p.out.push_str("<table><tr><th>method</th><th>kind</th>");
    for (k, r) in rb.radii.iter().enumerate() {
        let _ = write!(p.out, "<th>r = <span data-key=\"robustness.radii.{k}\">{}</span></th>", fmt(Some(*r)));
    }
    p.out.push_str("<th>time s</th></tr>");
    for (i, row) in rb.rows.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>{}</td><td>{}</td>", row.method, row.kind);
        for (k, a) in row.accuracy.iter().enumerate() {
            p.out.push_str(&percent(&format!("robustness.rows.{i}.accuracy.{k}"), *a));
        }
        p.out.push_str(&num(&format!("robustness.rows.{i}.time_s"), Some(row.time_s)));
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table><ul>");
    for row in &rb.rows {
        let _ = write!(p.out, "<li>{}</li>", method_sentence(p, &row.method));
    }
    p.out.push_str("</ul>");
    p.out.push_str("<details><summary>per-point radii</summary><table><tr><th>#</th><th>label</th><th>predicted</th><th>lipschitz</th><th>ibp</th><th>crown</th><th>alpha-crown</th><th>pgd (upper)</th></tr>");
    for (i, s) in rb.samples.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>{}</td><td>{}</td><td>{}</td>", s.index, s.label, s.predicted);
        for (field, v) in [
            ("lipschitz", s.lipschitz),
            ("ibp", s.ibp),
            ("crown", s.crown),
            ("alpha_crown", s.alpha_crown),
            ("pgd", s.pgd),
        ] {
            p.out.push_str(&num(&format!("robustness.samples.{i}.{field}"), v));
        }
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table></details>");
    p.end();
}

fn smoothing(p: &mut Page, r: &Report) {
    let Some(sm) = &r.smoothing else { return };
    if sm.runs.is_empty() {
        return;
    }
    p.section("smoothing", "Randomized smoothing (l2, the smoothed classifier)");
    let doc = p.guarantees.replace("GUARANTEES.md", SMOOTHING_DOC);
    p.para(&format!(
        "Cohen et al.'s certificate: the smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c) keeps its class on the l2 ball of the certified radius, each certificate wrong with probability at most alpha = {} over the noise. It certifies g, not the network itself; points where g abstains count as not certified. <a href=\"{}\">what this certifies: docs/SMOOTHING.md</a>",
        sm.alpha,
        esc(&doc)
    ));
    let series: Vec<Series> = sm
        .runs
        .iter()
        .map(|run| {
            Series::new(
                format!("sigma {}", run.sigma),
                run.curve.iter().map(|c| (c.radius, c.certified_accuracy)).collect(),
            )
        })
        .collect();
    p.plot(
        line_plot(
            "Certified accuracy of the smoothed classifier vs l2 radius",
            "l2 radius",
            "fraction of points",
            &series,
            false,
        ),
        "One curve per noise level sigma (Cohen et al., Clopper-Pearson at level alpha).",
    );
    p.out.push_str("<table><tr><th>sigma</th><th>noise samples n</th><th>clean (smoothed)</th><th>abstained</th><th>average certified radius</th><th>time s</th></tr>");
    for (i, run) in sm.runs.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>{}</td><td class=\"num\">{}</td>", run.sigma, run.n);
        p.out.push_str(&percent(&format!("smoothing.runs.{i}.clean_accuracy"), run.clean_accuracy));
        let _ = write!(p.out, "<td class=\"num\">{}</td>", run.abstained);
        p.out.push_str(&num(
            &format!("smoothing.runs.{i}.average_certified_radius"),
            Some(run.average_certified_radius),
        ));
        p.out.push_str(&num(&format!("smoothing.runs.{i}.time_s"), Some(run.time_s)));
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table>");
    p.end();
}

fn lipschitz(p: &mut Page, r: &Report) {
    p.section("lipschitz", "Lipschitz constants");
    let link = p.link(G_LIPSCHITZ);
    p.para(&format!(
        "The network's upper bound composes certified per-layer bounds along the graph (products, sums at residual adds); the lower bound is the largest slope ||f(y) - f(x)|| / ||y - x|| proven by enclosures of f at pairs a search proposed. The true constant lies in the bracket. {link}"
    ));
    if let Some(l2) = r.lipschitz.first() {
        let cats: Vec<String> = l2.layers.iter().map(|l| l.name.clone()).collect();
        let series: Vec<Bars> = r
            .lipschitz
            .iter()
            .map(|l| Bars { name: format!("upper, l_{}", l.norm), values: l.layers.iter().map(|x| x.upper).collect() })
            .collect();
        p.plot(
            bar_plot("Per-layer Lipschitz bounds", "certified upper bound", &cats, &series, true),
            "Certified upper bound of each layer's own constant (log scale), in l2 and l_inf.",
        );
    }
    p.out.push_str("<table><tr><th>norm</th><th>lower (certified)</th><th>upper (certified)</th><th>time s</th></tr>");
    for (i, l) in r.lipschitz.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>l_{}</td>", l.norm);
        p.out.push_str(&num(&format!("lipschitz.{i}.lower"), Some(l.lower)));
        p.out.push_str(&num(&format!("lipschitz.{i}.upper"), Some(l.upper)));
        p.out.push_str(&num(&format!("lipschitz.{i}.time_s"), Some(l.time_s)));
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table>");
    for (i, l) in r.lipschitz.iter().enumerate() {
        if let Some(e) = l.estimate {
            p.para(&format!(
                "<span class=\"est\">Architecture estimate (paper 002, Prop. 5), NOT a bound: <span data-key=\"lipschitz.{i}.estimate\">{}</span></span> (l_{}).",
                fmt(Some(e)),
                l.norm
            ));
        }
    }
    p.out.push_str("<details><summary>per-layer table</summary><table><tr><th>#</th><th>node</th><th>op</th>");
    for l in &r.lipschitz {
        let _ = write!(p.out, "<th>lower l_{0}</th><th>upper l_{0}</th>", l.norm);
    }
    p.out.push_str("</tr>");
    let layers = r.lipschitz.first().map_or(0, |l| l.layers.len());
    for k in 0..layers {
        let first = &r.lipschitz[0].layers[k];
        let _ = write!(p.out, "<tr><td>{}</td><td>{}</td><td>{}</td>", k + 1, esc(&first.name), first.op);
        for (i, l) in r.lipschitz.iter().enumerate() {
            p.out.push_str(&num(&format!("lipschitz.{i}.layers.{k}.lower"), l.layers[k].lower));
            p.out.push_str(&num(&format!("lipschitz.{i}.layers.{k}.upper"), Some(l.layers[k].upper)));
        }
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table></details>");
    p.end();
}

fn verification(p: &mut Page, r: &Report) {
    let Some(v) = &r.verification else { return };
    p.section("verification", "VNN-LIB properties");
    let link = p.link(G_VERIFY);
    p.para(&format!("<b>unsat</b>: proven, no input of the property's set reaches its unsafe outputs. <b>sat</b>: a counterexample, re-checked by a forward pass. <b>unknown</b>/<b>timeout</b>: neither within the time given. {link}"));
    p.out.push_str("<table><tr><th>property</th><th>result</th><th>time s</th><th>timeout s</th><th>sub-boxes</th><th>note</th></tr>");
    for (i, q) in v.properties.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>{}</td><td><b>{}</b></td>", esc(&q.file), q.result);
        p.out.push_str(&num(&format!("verification.properties.{i}.time_s"), Some(q.time_s)));
        p.out.push_str(&num(&format!("verification.properties.{i}.timeout_s"), Some(q.timeout_s)));
        let _ =
            write!(p.out, "<td class=\"num\">{}</td><td>{}</td></tr>", q.boxes, esc(q.reason.as_deref().unwrap_or("")));
    }
    p.out.push_str("</table>");
    p.end();
}

fn boundary(p: &mut Page, r: &Report) {
    let Some(b) = &r.boundary else { return };
    if b.rows.is_empty() {
        return;
    }
    p.section("boundary", "Distance to the decision boundary (l_inf)");
    let link = p.link(G_BOUNDARY);
    p.para(&format!("d_bnd is the distance from the point to the nearest input of another class (within the clip range). <b>lower</b> is proven (CROWN, or verify unsat on the box); <b>upper</b> is witnessed by a misclassified point. {link}"));
    p.out.push_str("<table><tr><th>point</th><th>label</th><th>lower (proven)</th><th>by</th><th>upper (witnessed)</th><th>by</th><th>closed</th><th>time s</th></tr>");
    for (i, q) in b.rows.iter().enumerate() {
        let _ = write!(p.out, "<tr><td>{}</td><td>{}</td>", q.index, q.label);
        p.out.push_str(&num(&format!("boundary.rows.{i}.lower"), Some(q.lower)));
        let _ = write!(p.out, "<td>{}</td>", q.lower_by);
        p.out.push_str(&num(&format!("boundary.rows.{i}.upper"), q.upper));
        let _ = write!(p.out, "<td>{}</td><td>{}</td>", q.upper_by, if q.closed { "yes" } else { "no" });
        p.out.push_str(&num(&format!("boundary.rows.{i}.time_s"), Some(q.time_s)));
        p.out.push_str("</tr>");
    }
    p.out.push_str("</table>");
    p.end();
}

fn deviation(p: &mut Page, r: &Report) {
    let Some(d) = &r.deviation else { return };
    p.section("deviation", "Deviation of the pruned model");
    let link = p.link(G_DEVIATION);
    p.para(&format!(
        "sup over {} of ||f(x) - f_hat(x)||_2 for {}: the closed form (paper 000, sound form) and the certified bound (bound propagation on f - f_hat) are upper bounds; the observed maximum (sampling and gradient ascent) is NOT a bound, it is the yardstick. {link}",
        esc(&d.box_source),
        esc(&d.pruned_file)
    ));
    p.out.push_str(
        "<table><tr><th>model</th><th>sparsity</th><th>closed form</th><th>certified</th><th>observed max</th></tr>",
    );
    let row = |p: &mut Page, name: &str, key: &str, m: &crate::deviation::Measures| {
        let _ = write!(p.out, "<tr><td>{}</td>", esc(name));
        p.out.push_str(&percent(&format!("{key}.sparsity"), m.sparsity));
        p.out.push_str(&num(&format!("{key}.closed_form"), m.closed_form));
        p.out.push_str(&num(&format!("{key}.certified"), Some(m.certified)));
        p.out.push_str(&num(&format!("{key}.observed_max"), Some(m.observed_max)));
        p.out.push_str("</tr>");
    };
    row(p, &d.pruned_file, "deviation.given", &d.given);
    for (i, m) in d.sweep.iter().enumerate() {
        row(p, "SparseGPT (for comparison)", &format!("deviation.sweep.{i}"), m);
    }
    p.out.push_str("</table>");
    if let Some(why) = &d.closed_form_unavailable {
        p.para(&format!("closed form not available: {}", esc(why)));
    }
    let pts = |f: &dyn Fn(&crate::deviation::Measures) -> Option<f64>| -> Vec<(f64, f64)> {
        d.sweep.iter().filter_map(|m| f(m).map(|v| (m.sparsity, v))).collect()
    };
    let series = vec![
        Series::new("closed form", pts(&|m| m.closed_form)),
        Series::new("certified", pts(&|m| Some(m.certified))),
        Series::new("observed (not a bound)", pts(&|m| Some(m.observed_max))),
        Series::new(format!("{} certified", d.pruned_file), vec![(d.given.sparsity, d.given.certified)]),
        Series::new(format!("{} observed", d.pruned_file), vec![(d.given.sparsity, d.given.observed_max)]),
    ];
    p.plot(
        line_plot("Deviation vs sparsity", "sparsity", "sup ||f - f_hat||_2", &series, true),
        "SparseGPT at 10-90% sparsity on the same box (lines) and the given pruned model (single points), log scale.",
    );
    p.end();
}
