//! `lipcert boundary`: the JSON contract, the table, the witness file, and one-line errors
//! that name the file or the argument.

mod common;
use common::*;
use lipcert_core::random::random_mlp;
use lipcert_core::{Activation, Rng};
use lipcert_io::{export_bytes, DType, ExportPrecision, NpyArray};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, shape: Vec<usize>, data: Vec<f64>) -> String {
    let p = dir.join(name);
    NpyArray::new(shape, data, DType::F64).write(&p).unwrap();
    p.to_str().unwrap().to_string()
}

/// A random 3-input, 3-class ReLU MLP written as f64 ONNX (re-imports to the identical network),
/// an input point and the model's class there.
fn small_model(dir: &Path) -> (PathBuf, Vec<f64>, usize) {
    let mut rng = Rng::new(11);
    let net = random_mlp(&mut rng, &[3, 8, 8, 3], Some(Activation::Relu), |_| 1.0, 0.5);
    let path = dir.join("mlp.onnx");
    std::fs::write(&path, export_bytes(&net, ExportPrecision::F64)).unwrap();
    let x = vec![0.3, -0.2, 0.5];
    let y = net.forward(&x, 1).unwrap();
    let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    (path, x, label)
}

fn eval_row(model: &str, x: &str, dir: &Path) -> Vec<f64> {
    let out = dir.join("y.npy");
    lipcert_ok(&["eval", model, "--input", x, "--output", out.to_str().unwrap()]);
    NpyArray::read(&out).unwrap().data
}

#[test]
fn boundary_json_brackets_the_distance_and_writes_the_witness() {
    let dir = tempdir("cli-boundary");
    let (model, x, label) = small_model(&dir);
    let model = model.to_str().unwrap();
    let xp = write(&dir, "x.npy", vec![1, 3], x.clone());
    let wp = dir.join("w.npy");
    let label_s = label.to_string();
    let args = ["boundary", model, "--input", &xp, "--label", &label_s, "--timeout", "10", "--json"];
    let v = json(&[&args[..], &["-o", wp.to_str().unwrap()]].concat());
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} is not a number: {v}"));
    let (lower, upper) = (f("lower"), f("upper"));
    assert!(f("crown_radius") <= lower && lower <= upper && upper <= f("pgd_radius"), "{v}");
    assert_eq!(v["closed"], true, "{v}");
    assert!(upper - lower <= 1e-3 * upper, "{v}");
    assert_eq!(v["norm"], "inf");
    assert_eq!(v["exact_search"], true);
    assert_eq!(v["label"].as_u64(), Some(label as u64));
    assert!(["crown", "verify", "verify-milp"].contains(&v["lower_by"].as_str().unwrap()), "{v}");
    assert!(["pgd", "verify"].contains(&v["upper_by"].as_str().unwrap()), "{v}");
    let calls = &v["calls"];
    let probes = v["probes"].as_array().unwrap();
    let total: u64 = ["crown", "pgd", "verify"].iter().map(|k| calls[k].as_u64().unwrap()).sum();
    assert_eq!(total as usize, probes.len());
    assert!(probes.iter().all(|p| p["phase"].is_string() && p["eps"].is_f64() && p["outcome"].is_string()));
    // The witness: at distance `upper`, misclassified by `lipcert eval`, and written to -o.
    let w: Vec<f64> = v["witness"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let dist = w.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    // (serde_json reads floats to within an ulp or so.)
    assert!((dist - upper).abs() <= 1e-14 * upper, "witness at {dist}, upper {upper}");
    let written = NpyArray::read(&wp).unwrap().data;
    assert!(written.iter().zip(&w).all(|(a, b)| (a - b).abs() <= 1e-14 * b.abs().max(1e-300)), "{written:?} vs {w:?}");
    let y = eval_row(model, wp.to_str().unwrap(), &dir);
    let j = v["witness_class"].as_u64().unwrap() as usize;
    assert!(j != label && y[j] >= y[label], "witness output {y:?}");

    // The table names both bounds and how they were obtained.
    let table = lipcert_ok(&args[..args.len() - 1]);
    for s in
        ["crown radius", "pgd radius", "exact search", "lower (proven)", "upper (witnessed)", "d_bnd in [", "closed"]
    {
        assert!(table.contains(s), "missing '{s}' in:\n{table}");
    }

    // l2: the bracket is ordered; without exact search it says so unless it closed anyway.
    let v = json(&["boundary", model, "--input", &xp, "--label", &label_s, "--norm", "2", "--timeout", "5", "--json"]);
    assert_eq!(v["exact_search"], false);
    assert!(v["lower"].as_f64().unwrap() <= v["upper"].as_f64().unwrap(), "{v}");
    assert!(v["closed"] == true || v["note"].as_str().unwrap().contains("l2"), "{v}");

    // Clipped to a domain, the witness stays inside it.
    let v = json(&[&args[..], &["--clip", "-0.6", "0.6"]].concat());
    if let Some(w) = v["witness"].as_array() {
        assert!(w.iter().all(|x| x.as_f64().unwrap().abs() <= 0.6), "{v}");
    }
    assert_eq!(v["clip"], serde_json::json!([-0.6, 0.6]));

    // Another label: the point is already across the boundary.
    let other = ((label + 1) % 3).to_string();
    let v = json(&["boundary", model, "--input", &xp, "--label", &other, "--json"]);
    assert_eq!((v["lower"].as_f64(), v["upper"].as_f64()), (Some(0.0), Some(0.0)), "{v}");
    assert_eq!(v["upper_by"], "clean");
    let table = lipcert_ok(&["boundary", model, "--input", &xp, "--label", &other]);
    assert!(table.contains("distance 0"), "{table}");
}

#[test]
fn boundary_runs_on_a_convolutional_model() {
    let dir = tempdir("cli-boundary-demo");
    let model = repo_root().join("models/demo.onnx");
    let model = model.to_str().unwrap();
    let x: Vec<f64> = (0..144).map(|i| (i % 7) as f64 * 0.1).collect();
    let xp = write(&dir, "x.npy", vec![1, 1, 12, 12], x);
    let y = eval_row(model, &xp, &dir);
    let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap().to_string();
    let v = json(&["boundary", model, "--input", &xp, "--label", &label, "--timeout", "3", "--json"]);
    let (lower, upper) = (v["lower"].as_f64().unwrap(), v["upper"].as_f64().unwrap_or(f64::INFINITY));
    assert!(0.0 < lower && lower <= upper, "{v}");
    assert!(v["time_s"].as_f64().unwrap() < 10.0, "{v}");
}

#[test]
fn boundary_errors_are_one_line_and_name_the_file() {
    let dir = tempdir("cli-boundary-errors");
    let (model, x, label) = small_model(&dir);
    let model = model.to_str().unwrap();
    let xp = write(&dir, "x.npy", vec![3], x);
    let label = label.to_string();
    let e = fails(&["boundary", model, "--input", &xp, "--label", "3"]);
    assert!(e.contains("--label 3") && e.contains("3 outputs"), "{e}");
    let short = write(&dir, "short.npy", vec![5], vec![0.0; 5]);
    let e = fails(&["boundary", model, "--input", &short, "--label", &label]);
    assert!(e.contains("short.npy") && e.contains("5 elements") && e.contains("has 3"), "{e}");
    let nan = write(&dir, "nan.npy", vec![3], vec![0.0, f64::NAN, 0.0]);
    let e = fails(&["boundary", model, "--input", &nan, "--label", &label]);
    assert!(e.contains("nan.npy") && e.contains("element 1") && e.contains("NaN"), "{e}");
    let e = fails(&["boundary", model, "--input", &xp, "--label", &label, "--clip", "0", "1"]);
    assert!(e.contains("x.npy") && e.contains("outside --clip"), "{e}");
    let e = fails(&["boundary", model, "--input", &xp, "--label", &label, "--clip", "1", "0"]);
    assert!(e.contains("--clip 1 0"), "{e}");
    let e = fails(&["boundary", model, "--input", &xp, "--label", &label, "--tol=-1"]);
    assert!(e.contains("--tol"), "{e}");
    let e = fails(&["boundary", model, "--input", &xp, "--label", &label, "--timeout", "0"]);
    assert!(e.contains("--timeout"), "{e}");
    let missing = dir.join("missing.npy");
    let e = fails(&["boundary", model, "--input", missing.to_str().unwrap(), "--label", &label]);
    assert!(e.contains("missing.npy"), "{e}");
}
