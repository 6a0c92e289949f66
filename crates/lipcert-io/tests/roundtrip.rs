//! export(import(m)) evaluates identically: f64 export is exact for every benchmark network
//! and random networks that use every operator; f32 export is exact when the weights are.

use lipcert_core::random::random_network;
use lipcert_core::{Network, Rng};
use lipcert_io::{export_bytes, import_bytes, import_file, ExportPrecision};
use std::path::PathBuf;

fn benchmark_models() -> Vec<PathBuf> {
    let Some(dir) = lipcert_io::testing::benchmarks_dir() else { return vec![] };
    let mut out = vec![];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "onnx") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn random_batch(net: &Network, n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n * net.input_len()).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// The first difference between two networks, described briefly (None when equal).
fn difference(a: &Network, b: &Network) -> Option<String> {
    if a == b {
        return None;
    }
    if a.nodes.len() != b.nodes.len() {
        return Some(format!("{} vs {} nodes", a.nodes.len(), b.nodes.len()));
    }
    for (x, y) in a.nodes.iter().zip(&b.nodes) {
        if x != y {
            let params = x.op.params() == y.op.params();
            return Some(format!(
                "node '{}' ({}) vs '{}' ({}), inputs {:?} vs {:?}, same parameters: {params}",
                x.name,
                x.op.kind(),
                y.name,
                y.op.kind(),
                x.inputs,
                y.inputs
            ));
        }
    }
    Some(format!("names {:?} vs {:?}, output {} vs {}", a.value_names, b.value_names, a.output_name, b.output_name))
}

fn f32_exact(net: &Network) -> bool {
    net.nodes.iter().all(|n| n.op.params().iter().all(|p| p.iter().all(|&v| v as f32 as f64 == v)))
}

#[test]
fn f64_export_round_trip_is_identical_on_benchmarks() {
    let models = benchmark_models();
    let mut rng = Rng::new(1);
    let mut f32_identical = 0;
    for path in &models {
        let net = import_file(path).unwrap().network;
        let again = import_bytes(&export_bytes(&net, ExportPrecision::F64)).unwrap().network;
        assert_eq!(difference(&net, &again), None, "{}: the re-imported network differs", path.display());
        let x = random_batch(&net, 4, &mut rng);
        assert_eq!(net.forward(&x, 4).unwrap(), again.forward(&x, 4).unwrap(), "{}", path.display());
        if f32_exact(&net) {
            let f32_again = import_bytes(&export_bytes(&net, ExportPrecision::F32)).unwrap().network;
            assert_eq!(
                difference(&net, &f32_again),
                None,
                "{}: f32 export of f32 weights must be exact",
                path.display()
            );
            f32_identical += 1;
        }
    }
    println!("{} models round-tripped exactly; {f32_identical} also exactly in f32", models.len());
}

#[test]
fn f64_export_round_trip_is_identical_on_random_networks() {
    let mut rng = Rng::new(5);
    for _ in 0..30 {
        let net = random_network(&mut rng);
        let again = import_bytes(&export_bytes(&net, ExportPrecision::F64)).unwrap().network;
        assert_eq!(difference(&net, &again), None);
    }
}

#[test]
fn f32_export_stays_close() {
    let mut rng = Rng::new(6);
    for _ in 0..10 {
        let net = random_network(&mut rng);
        let again = import_bytes(&export_bytes(&net, ExportPrecision::F32)).unwrap().network;
        let x = random_batch(&net, 3, &mut rng);
        let (a, b) = (net.forward(&x, 3).unwrap(), again.forward(&x, 3).unwrap());
        let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max) / scale;
        assert!(err < 1e-5, "f32 export moved outputs by {err:e}");
    }
}
