//! `lipcert report` as a user sees it: the page and the JSON agree number by number, the page
//! loads in headless Chromium without console messages and with every plot laid out, and a
//! screenshot is taken.

mod common;

use common::{fails, lipcert_ok, repo_root, tempdir};
use lipcert_io::{DType, NpyArray};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The report of the demo model with every section: points from a VNN-LIB property, a pruned
/// model, boundary brackets. Built once per test binary.
fn demo_report() -> &'static (PathBuf, Value, String) {
    static REPORT: OnceLock<(PathBuf, Value, String)> = OnceLock::new();
    REPORT.get_or_init(|| {
        let dir = tempdir("report");
        let demo = repo_root().join("models/demo.onnx");
        let demo = demo.to_str().unwrap();
        let (lo, hi) = (dir.join("lo.npy"), dir.join("hi.npy"));
        NpyArray::new(vec![144], vec![0.0; 144], DType::F64).write(&lo).unwrap();
        NpyArray::new(vec![144], vec![1.0; 144], DType::F64).write(&hi).unwrap();
        let pruned = dir.join("pruned.onnx");
        lipcert_ok(&[
            "prune",
            demo,
            "--method",
            "magnitude",
            "--sparsity",
            "0.5",
            "--box",
            lo.to_str().unwrap(),
            hi.to_str().unwrap(),
            "-o",
            pruned.to_str().unwrap(),
        ]);
        // A robustness property around a point, with the model's own class at its centre.
        let x: Vec<f64> = (0..144).map(|i| 0.3 + 0.4 * ((i * 37 % 11) as f64 / 10.0)).collect();
        let xp = dir.join("x.npy");
        NpyArray::new(vec![1, 144], x.clone(), DType::F64).write(&xp).unwrap();
        let yp = dir.join("y.npy");
        lipcert_ok(&["eval", demo, "--input", xp.to_str().unwrap(), "--output", yp.to_str().unwrap()]);
        let y = NpyArray::read(&yp).unwrap().data;
        let label = (0..3).fold(0, |b, j| if y[j] > y[b] { j } else { b });
        let mut prop = String::new();
        for (i, v) in x.iter().enumerate() {
            prop += &format!(
                "(declare-const X_{i} Real)\n(assert (>= X_{i} {}))\n(assert (<= X_{i} {}))\n",
                v - 0.004,
                v + 0.004
            );
        }
        prop += "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n(assert (or";
        for j in (0..3).filter(|&j| j != label) {
            prop += &format!(" (and (>= Y_{j} Y_{label}))");
        }
        prop += "))\n";
        let pp = dir.join("prop.vnnlib");
        std::fs::write(&pp, prop).unwrap();
        let out = dir.join("out");
        let stdout = lipcert_ok(&[
            "report",
            demo,
            "--vnnlib",
            pp.to_str().unwrap(),
            "--box",
            lo.to_str().unwrap(),
            hi.to_str().unwrap(),
            "--pruned",
            pruned.to_str().unwrap(),
            "--budget",
            "30",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        let printed: Value = serde_json::from_str(&stdout).expect("--json prints the report");
        let json: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        assert_eq!(printed, json, "--json prints report.json");
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        (out, json, html)
    })
}

/// The value at a dotted path ("robustness.rows.2.accuracy.3").
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

#[test]
fn report_has_every_section_and_sound_radii() {
    let (_, r, _) = demo_report();
    for key in ["model", "points", "lipschitz", "robustness", "smoothing", "verification", "boundary", "deviation"] {
        assert!(!r[key].is_null(), "missing section {key}: {r:#}");
    }
    assert_eq!(r["points"]["source"], "vnnlib-centres");
    let verdict = r["verification"]["properties"][0]["result"].as_str().unwrap();
    let rb = &r["robustness"];
    let methods: Vec<&str> = rb["rows"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["lipschitz", "pgd", "ibp", "crown", "alpha-crown"]);
    for s in rb["samples"].as_array().unwrap() {
        let pgd = s["pgd"].as_f64().unwrap_or(f64::INFINITY);
        for m in ["lipschitz", "ibp", "crown", "alpha_crown"] {
            let c = s[m].as_f64().unwrap();
            assert!(c <= pgd, "{m} certifies {c} but PGD found a misclassified point at {pgd}");
        }
        assert!(s["alpha_crown"].as_f64() >= s["crown"].as_f64());
    }
    // Point 0 is the centre of the VNN-LIB box (l_inf radius 0.004): the verdict and the
    // boundary bracket at that point must agree.
    let b = &r["boundary"]["rows"][0];
    let (lower, upper) = (b["lower"].as_f64().unwrap(), b["upper"].as_f64().unwrap_or(f64::INFINITY));
    assert!(lower <= upper);
    match verdict {
        "sat" => {
            assert!(lower <= 0.004, "a counterexample within 0.004, but d_bnd >= {lower}");
            assert!(r["verification"]["properties"][0]["counterexample_output"].is_array());
        }
        "unsat" => assert!(upper >= 0.004 * (1.0 - 1e-9), "proven robust at 0.004, but a witness at {upper}"),
        other => assert!(["unknown", "timeout"].contains(&other), "{other}"),
    }
    // Smoothing: every run certifies radii no larger than its curve allows, at the three sigmas.
    let runs = r["smoothing"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{:#}", r["smoothing"]);
    for run in runs {
        assert!(run["n"].as_u64().unwrap() >= 1000);
        assert!(run["average_certified_radius"].as_f64().unwrap() >= 0.0);
    }
    let d = &r["deviation"]["given"];
    assert!(d["observed_max"].as_f64() <= d["certified"].as_f64());
    assert!(d["certified"].as_f64() <= d["closed_form"].as_f64().or(Some(f64::INFINITY)));
    assert!((d["sparsity"].as_f64().unwrap() - 0.5).abs() < 0.02, "{d}");
}

#[test]
fn page_numbers_agree_with_the_json() {
    let (_, json, html) = demo_report();
    let mut checked = 0;
    for part in html.split("data-key=\"").skip(1) {
        let (key, rest) = part.split_once('"').unwrap();
        let scale: f64 =
            rest.strip_prefix(" data-scale=\"").map_or(1.0, |r| r.split('"').next().unwrap().parse().unwrap());
        let text = rest.split_once('>').unwrap().1.split('<').next().unwrap().trim().trim_end_matches('%');
        let v = at(json, key);
        match text {
            "none" | "∞" => assert!(v.is_null(), "{key}: page says {text}, JSON {v}"),
            _ => {
                let shown: f64 = text.parse().unwrap_or_else(|_| panic!("{key}: {text:?} is not a number"));
                let j = v.as_f64().unwrap_or_else(|| panic!("{key}: page {text}, JSON {v}")) * scale;
                // Six significant digits, or one decimal of a percentage.
                let tol = if scale == 100.0 { 0.051 } else { 1e-5 * j.abs() + 1e-12 };
                assert!((shown - j).abs() <= tol, "{key}: page {shown}, JSON {j}");
            }
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} numbers carry a data-key");
    assert_eq!(
        html.matches("<figure class=\"plot\">").count(),
        4,
        "robustness, smoothing, Lipschitz and deviation plots"
    );
}

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: Chromium is required for the report's browser test (see .ci/run)"
        );
        println!("SKIPPED: no Chromium (apt-get install chromium)");
    }
    found
}

fn headless(browser: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium")
}

#[test]
fn page_renders_in_chromium_without_console_messages() {
    let Some(browser) = chromium() else { return };
    let (out, _, html) = demo_report();
    let page = format!("file://{}", out.join("index.html").display());
    let profile = tempdir("chromium-profile");
    let dom = headless(&browser, &profile, &["--dump-dom", &page]);
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let figures = html.matches("<figure class=\"plot\">").count();
    assert!(
        dom.contains(&format!("data-plots-rendered=\"{figures}/{figures}\"")),
        "not every plot was laid out: {}",
        dom.split("<body").nth(1).unwrap_or("").chars().take(200).collect::<String>()
    );
    let shot = out.join("screenshot.png");
    let s =
        headless(&browser, &profile, &[&format!("--screenshot={}", shot.display()), "--window-size=1200,3000", &page]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "screenshot of {} bytes", png.len());
}

#[test]
fn bad_report_input_gets_one_line_errors() {
    let demo = repo_root().join("models/demo.onnx");
    let demo = demo.to_str().unwrap();
    let dir = tempdir("report-bad");
    let out = dir.join("o");
    let out = out.to_str().unwrap();
    assert!(fails(&["report", demo, "--budget", "0", "-o", out]).contains("--budget"));
    assert!(fails(&["report", demo, "--budget", "nan", "-o", out]).contains("--budget"));
    assert!(fails(&["report", demo, "--clip", "1", "0", "-o", out]).contains("--clip"));
    let x = dir.join("x.npy");
    NpyArray::new(vec![2, 10], vec![0.5; 20], DType::F32).write(&x).unwrap();
    let y = dir.join("y.npy");
    NpyArray::new(vec![2], vec![0.0, 1.0], DType::F64).write(&y).unwrap();
    let e = fails(&["report", demo, "--data", x.to_str().unwrap(), "--labels", y.to_str().unwrap(), "-o", out]);
    assert!(e.contains("x.npy") && e.contains("144"), "{e}");
    assert!(fails(&["report", "no/such.onnx", "-o", out]).contains("no/such.onnx"));
}
