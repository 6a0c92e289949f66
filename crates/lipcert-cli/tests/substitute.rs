//! `lipcert substitute`: the JSON contract, the written ONNX substitute (read back by the same
//! commands as the original), one-line errors, and a benchmark network.

mod common;
use common::*;
use lipcert_core::random::random_mlp;
use lipcert_core::{Activation, Rng};
use lipcert_io::{export_bytes, DType, ExportPrecision, NpyArray};
use std::path::Path;

fn write_x(dir: &Path, data: Vec<f64>) -> String {
    let p = dir.join("x0.npy");
    NpyArray::new(vec![1, data.len()], data, DType::F64).write(&p).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn substitute_json_writes_a_smaller_network_that_boundary_reads() {
    let dir = tempdir("cli-substitute");
    let net = random_mlp(&mut Rng::new(5), &[3, 12, 12, 3], Some(Activation::Relu), |_| 1.0, 0.5);
    let model = dir.join("mlp.onnx");
    std::fs::write(&model, export_bytes(&net, ExportPrecision::F64)).unwrap();
    let x = vec![0.3, -0.2, 0.5];
    let y = net.forward(&x, 1).unwrap();
    let label = (0..3).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap().to_string();
    let xp = write_x(&dir, x.clone());
    let sub = dir.join("sub.onnx");
    let (model, sub_s) = (model.to_str().unwrap(), sub.to_str().unwrap());
    let v = json(&[
        "substitute",
        model,
        "--input",
        &xp,
        "--label",
        &label,
        "--kind",
        "act",
        "--gamma",
        "0.5",
        "--timeout",
        "10",
        "--compare",
        "-o",
        sub_s,
        "--json",
    ]);
    for key in
        ["kind", "gamma", "neurons_before", "neurons_after", "d_adv", "d_bnd_estimate", "certified_lower", "times"]
    {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["kind"], "act");
    assert_eq!(v["neurons_before"], 24);
    assert_eq!(v["neurons_after"], 12);
    assert!(v["folded"].as_bool().unwrap());
    assert!(v["d_bnd_estimate"]["how"].as_str().unwrap().contains("not a bound"));
    // The certified lower bound is below the original's witnessed distance.
    let original_upper = v["original"]["upper"].as_f64().unwrap();
    if let Some(l) = v["certified_lower"].as_f64() {
        assert!(l <= original_upper, "certified {l} above the original's witness {original_upper}");
    } else {
        assert!(v["certificate"]["reason"].is_string());
    }
    // The written substitute: same output at x0, and `boundary` on it gives the estimate.
    let out = dir.join("y.npy");
    lipcert_ok(&["eval", sub_s, "--input", &xp, "--output", out.to_str().unwrap()]);
    let ys = NpyArray::read(&out).unwrap().data;
    assert!(scaled_error(&ys, &y) < 1e-12, "substitute output at x0 {ys:?} vs {y:?}");
    let b = json(&["boundary", sub_s, "--input", &xp, "--label", &label, "--timeout", "10", "--json"]);
    if v["d_bnd_estimate"]["closed"].as_bool().unwrap() && b["closed"].as_bool().unwrap() {
        let (e, d) = (v["d_bnd_estimate"]["value"].as_f64().unwrap(), b["upper"].as_f64().unwrap());
        assert!((e - d).abs() <= 2e-3 * d, "estimate {e} vs boundary on the written substitute {d}");
    }
    // The table names the estimate as such.
    let table = lipcert_ok(&["substitute", model, "--input", &xp, "--label", &label, "--timeout", "5"]);
    assert!(table.contains("NOT a bound") && table.contains("certified"), "{table}");
}

#[test]
fn substitute_bad_input_is_one_line() {
    let dir = tempdir("cli-substitute-bad");
    let net = random_mlp(&mut Rng::new(5), &[3, 6, 3], Some(Activation::Relu), |_| 1.0, 0.5);
    let model = dir.join("m.onnx");
    std::fs::write(&model, export_bytes(&net, ExportPrecision::F64)).unwrap();
    let model = model.to_str().unwrap();
    let xp = write_x(&dir, vec![0.1, 0.2, 0.3]);
    let e = fails(&["substitute", model, "--input", &xp, "--label", "9"]);
    assert!(e.contains("--label 9"), "{e}");
    let e = fails(&["substitute", model, "--input", &xp, "--label", "0", "--gamma", "1"]);
    assert!(e.contains("--gamma must be in [0, 1)"), "{e}");
    let e = fails(&["substitute", model, "--input", &xp, "--label", "0", "--gamma0", "0"]);
    assert!(e.contains("--gamma0"), "{e}");
    let bad = dir.join("bad.npy");
    NpyArray::new(vec![1, 4], vec![0.0; 4], DType::F64).write(&bad).unwrap();
    let e = fails(&["substitute", model, "--input", bad.to_str().unwrap(), "--label", "0"]);
    assert!(e.contains("4 elements"), "{e}");
    let e = fails(&["substitute", model, "--input", &xp, "--label", "0", "--kind", "linear"]);
    assert!(e.contains("linear"), "{e}");
}

/// mnist-net_256x2 on the centre of prop_1_0.03: Algorithm 1 at gamma 0.9, the substitute is 10x
/// smaller, equals the original at x0, and its certified lower bound is below PGD's witness.
#[test]
fn substitute_on_mnist_256x2() {
    let Some(b) = benchmarks() else { return };
    let dir = tempdir("cli-substitute-mnist");
    let prop = b.join("mnistfc/prop_1_0.03.vnnlib");
    let prefix = dir.join("c");
    let script = repo_root().join("scripts/vnnlib_centers.py");
    let st = std::process::Command::new("python3")
        .args([script.to_str().unwrap(), prop.to_str().unwrap(), "--out", prefix.to_str().unwrap()])
        .status()
        .expect("python3");
    assert!(st.success());
    let x = NpyArray::read(&dir.join("c_x.npy")).unwrap();
    let xp = write_x(&dir, x.data.clone());
    let model = b.join("mnistfc/mnist-net_256x2.onnx");
    let sub = dir.join("sub.onnx");
    let v = json(&[
        "substitute",
        model.to_str().unwrap(),
        "--input",
        &xp,
        "--label",
        "1",
        "--gamma",
        "0.9",
        "--clip",
        "0",
        "1",
        "--timeout",
        "20",
        "-o",
        sub.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["neurons_before"], 512);
    assert_eq!(v["neurons_after"], 51);
    let d_adv = v["d_adv"].as_f64().unwrap();
    if let Some(l) = v["certified_lower"].as_f64() {
        assert!(l > 0.0 && l <= d_adv, "certified {l} vs d_adv {d_adv}");
    }
    let (ya, yb) = (dir.join("ya.npy"), dir.join("yb.npy"));
    lipcert_ok(&["eval", model.to_str().unwrap(), "--input", &xp, "--output", ya.to_str().unwrap()]);
    lipcert_ok(&["eval", sub.to_str().unwrap(), "--input", &xp, "--output", yb.to_str().unwrap()]);
    let (ya, yb) = (NpyArray::read(&ya).unwrap().data, NpyArray::read(&yb).unwrap().data);
    assert!(scaled_error(&yb, &ya) < 1e-9, "{yb:?} vs {ya:?}");
}
