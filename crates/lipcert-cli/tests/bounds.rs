//! `lipcert bounds` against an independent implementation: scripts/crown_reference.py
//! (NumPy, explicit matrices, its own ONNX and VNN-LIB readers) computes IBP and textbook
//! CROWN; lipcert's `ibp` and `crown-pure` must match it to 1e-6 relative on mnistfc, ACAS Xu
//! and oval21 properties. On the same properties the default `crown` must never be looser than
//! crown-pure or IBP, and alpha-CROWN never looser than `crown`.

mod common;

use common::{benchmarks, lipcert_ok, oracle_available, repo_root};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn ours(model: &Path, prop: &Path, method: &str) -> Value {
    ours_with(model, prop, method, &[])
}

fn ours_with(model: &Path, prop: &Path, method: &str, extra: &[&str]) -> Value {
    let mut args = vec!["bounds", model.to_str().unwrap(), "--vnnlib", prop.to_str().unwrap(), "--method", method];
    args.extend_from_slice(extra);
    args.push("--json");
    serde_json::from_str(&lipcert_ok(&args)).expect("json")
}

fn reference(model: &Path, prop: &Path) -> Value {
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/crown_reference.py"))
        .args([model.to_str().unwrap(), prop.to_str().unwrap(), "--method", "both"])
        .output()
        .expect("run python3");
    assert!(out.status.success(), "reference failed on {}: {}", prop.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reference json")
}

/// |a - b| <= 1e-6 max(1, |b|) elementwise.
fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{what}[{i}]: lipcert {x}, reference {y}");
    }
}

fn instances(bench: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let m = bench.join("mnistfc");
    let a = bench.join("acasxu");
    let o = bench.join("oval21");
    let mut list = Vec::new();
    for net in ["mnist-net_256x2", "mnist-net_256x4", "mnist-net_256x6"] {
        for prop in ["prop_0_0.03", "prop_1_0.05", "prop_7_0.03"] {
            list.push((m.join(format!("{net}.onnx")), m.join(format!("{prop}.vnnlib"))));
        }
    }
    for (i, j, p) in [(1, 1, 1), (1, 2, 2), (2, 3, 3), (3, 4, 4), (1, 9, 7), (4, 5, 1)] {
        list.push((a.join(format!("ACASXU_run2a_{i}_{j}_batch_2000.onnx")), a.join(format!("prop_{p}.vnnlib"))));
    }
    // oval21 (three convolutional networks): the first 3 instances of each network, or all 30
    // with LIPCERT_FULL_REFERENCE=1 (the reference needs ~6 s per instance).
    let per_net = if std::env::var_os("LIPCERT_FULL_REFERENCE").is_some() { usize::MAX } else { 3 };
    if let Ok(csv) = std::fs::read_to_string(o.join("oval21_instances.csv")) {
        let mut taken = std::collections::HashMap::new();
        for line in csv.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            let count = taken.entry(f[0].to_string()).or_insert(0usize);
            if *count < per_net {
                *count += 1;
                list.push((o.join(f[0]), o.join(f[1])));
            }
        }
    }
    list
}

#[test]
fn ibp_and_crown_pure_match_an_independent_implementation() {
    let (Some(bench), true) = (benchmarks(), oracle_available()) else {
        return;
    };
    let mut compared = 0;
    for (model, prop) in instances(&bench) {
        let r = reference(&model, &prop);
        let what = prop.file_name().unwrap().to_string_lossy().to_string();
        for (ours_name, ref_name) in [("ibp", "ibp"), ("crown-pure", "crown-pure")] {
            let o = ours(&model, &prop, ours_name);
            let rr = &r[ref_name];
            assert_close(&floats(&o["spec_lower"]), &floats(&rr["spec_lower"]), &format!("{what} {ours_name} spec"));
            assert_close(&floats(&o["lower"]), &floats(&rr["lower"]), &format!("{what} {ours_name} lower"));
            assert_close(&floats(&o["upper"]), &floats(&rr["upper"]), &format!("{what} {ours_name} upper"));
            compared += 1;
        }
    }
    println!("{compared} (instance, method) pairs match the reference to 1e-6");
}

#[test]
fn tighter_methods_are_never_looser_on_mnistfc() {
    let Some(bench) = benchmarks() else {
        return;
    };
    let m = bench.join("mnistfc");
    let mut rows = 0;
    for net in ["mnist-net_256x2", "mnist-net_256x4"] {
        for prop in ["prop_0_0.03", "prop_3_0.03", "prop_5_0.05", "prop_11_0.03", "prop_14_0.05"] {
            let (model, p) = (m.join(format!("{net}.onnx")), m.join(format!("{prop}.vnnlib")));
            let get = |method| floats(&ours(&model, &p, method)["spec_lower"]);
            let (ibp, pure, crown, alpha) = (get("ibp"), get("crown-pure"), get("crown"), get("alpha-crown"));
            let fixed = floats(&ours_with(&model, &p, "alpha-crown", &["--fix-intermediate"])["spec_lower"]);
            for i in 0..ibp.len() {
                assert!(crown[i] >= ibp[i], "{net} {prop} atom {i}: crown {} < ibp {}", crown[i], ibp[i]);
                assert!(
                    crown[i] >= pure[i] - 1e-9,
                    "{net} {prop} atom {i}: crown {} < crown-pure {}",
                    crown[i],
                    pure[i]
                );
                assert!(alpha[i] >= crown[i], "{net} {prop} atom {i}: alpha-crown {} < crown {}", alpha[i], crown[i]);
                assert!(
                    fixed[i] >= crown[i],
                    "{net} {prop} atom {i}: alpha-crown --fix-intermediate {} < crown {}",
                    fixed[i],
                    crown[i]
                );
                rows += 1;
            }
        }
    }
    println!(
        "{rows} spec rows: ibp <= crown, crown-pure <= crown <= alpha-crown (also with fixed intermediate bounds)"
    );
}

#[test]
fn attack_writes_a_counterexample_that_violates_the_property() {
    let Some(bench) = benchmarks() else {
        return;
    };
    let m = bench.join("mnistfc");
    let dir = common::tempdir("attack");
    let cex = dir.join("cex.npy");
    let model = m.join("mnist-net_256x2.onnx");
    let prop = m.join("prop_7_0.03.vnnlib");
    let out = lipcert_ok(&[
        "attack",
        model.to_str().unwrap(),
        "--vnnlib",
        prop.to_str().unwrap(),
        "-o",
        cex.to_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["found"], Value::Bool(true), "{out}");
    // The written input, run through `lipcert eval`, satisfies one case of the property.
    let y = dir.join("y.npy");
    lipcert_ok(&["eval", model.to_str().unwrap(), "--input", cex.to_str().unwrap(), "--output", y.to_str().unwrap()]);
    let y = lipcert_io::NpyArray::read(&y).unwrap().data;
    let p = lipcert_io::vnnlib::Property::read(&prop).unwrap();
    assert!((0..p.cases.len()).any(|k| p.case_holds(k, &y)), "output {y:?} is safe");
    // Bounds of the same property cannot refute the atom the attack satisfied.
    let b = ours(&model, &prop, "alpha-crown");
    let refuted: Vec<bool> = b["refuted"].as_array().unwrap().iter().map(|r| r.as_bool().unwrap()).collect();
    assert!(refuted.iter().any(|r| !r));
}

#[test]
fn a_bad_property_is_a_one_line_error_with_its_line() {
    let Some(bench) = benchmarks() else {
        return;
    };
    let dir = common::tempdir("badprop");
    let prop = dir.join("bad.vnnlib");
    std::fs::write(&prop, "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 0.5)\n").unwrap();
    let model = bench.join("mnistfc/mnist-net_256x2.onnx");
    let out = common::lipcert(&["bounds", model.to_str().unwrap(), "--vnnlib", prop.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.vnnlib:3"), "{err}");
}
