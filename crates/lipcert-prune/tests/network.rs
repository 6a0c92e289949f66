//! Whole-network pruning: SparseGPT's reconstruction error is no larger than magnitude
//! pruning's on every layer of the mnistfc and ACAS Xu networks at 50% sparsity; reported
//! errors and norms agree with independent computations (forward passes, explicit matrices);
//! pruned models survive an ONNX round trip with the same zeros and outputs.

use lipcert_core::random::random_network;
use lipcert_core::{Network, Op, Rng};
use lipcert_io::testing::benchmarks_dir;
use lipcert_io::vnnlib::Property;
use lipcert_io::{export_bytes, import_bytes, import_file, ExportPrecision};
use lipcert_prune::{prunable_layers, prune_network, Method, Pattern, PruneOptions, PruneReport};
use std::path::Path;

fn prune(net: &Network, calib: &[f64], n: usize, method: Method, pattern: Pattern) -> (Network, PruneReport) {
    let layers = prunable_layers(net).len();
    prune_network(net, calib, n, method, &vec![Some(pattern); layers], &PruneOptions::default()).unwrap()
}

/// Calibration states: uniform samples of each property's input box (for mnistfc, the boxes
/// are l_inf balls around real test images).
fn calibration(dir: &Path, props: &[&str], per_box: usize, seed: u64) -> (Vec<f64>, usize) {
    let mut rng = Rng::new(seed);
    let mut x = vec![];
    let mut n = 0;
    for p in props {
        let prop = Property::read(&dir.join(p)).unwrap();
        let (lo, hi, _) = prop.input_boxes().remove(0);
        for _ in 0..per_box {
            x.extend(lo.iter().zip(&hi).map(|(l, h)| rng.range(*l, *h)));
            n += 1;
        }
    }
    (x, n)
}

fn sparsegpt_beats_magnitude(net: &Network, calib: &[f64], n: usize, what: &str) {
    // Per layer on the same inputs: prune one layer at a time (the others left dense), so that
    // both methods see the same calibration activations.
    let layers = prunable_layers(net).len();
    for i in 0..layers {
        let mut patterns = vec![None; layers];
        patterns[i] = Some(Pattern::Unstructured { sparsity: 0.5 });
        let opts = PruneOptions::default();
        let (_, s) = prune_network(net, calib, n, Method::SparseGpt, &patterns, &opts).unwrap();
        let (_, m) = prune_network(net, calib, n, Method::Magnitude, &patterns, &opts).unwrap();
        let (s, m) = (&s.layers[i], &m.layers[i]);
        assert!(
            s.recon_error <= m.recon_error,
            "{what} layer {}: SparseGPT {} > magnitude {}",
            s.node,
            s.recon_error,
            m.recon_error
        );
        println!("{what} {}: SparseGPT / magnitude reconstruction error {:.3}", s.node, s.recon_error / m.recon_error);
    }
    // And in the sequential pipeline (each layer sees the pruned predecessors' outputs).
    let (_, s) = prune(net, calib, n, Method::SparseGpt, Pattern::Unstructured { sparsity: 0.5 });
    let (_, m) = prune(net, calib, n, Method::Magnitude, Pattern::Unstructured { sparsity: 0.5 });
    let total = |r: &PruneReport| r.layers.iter().map(|l| l.recon_error).sum::<f64>();
    assert!(total(&s) <= total(&m), "{what}: sequential SparseGPT {} > magnitude {}", total(&s), total(&m));
}

#[test]
fn sparsegpt_beats_magnitude_on_mnistfc_and_acasxu_at_half_sparsity() {
    let Some(dir) = benchmarks_dir() else { return };
    let mnist_props: Vec<String> = (0..15).map(|i| format!("mnistfc/prop_{i}_0.05.vnnlib")).collect();
    let mnist_props: Vec<&str> = mnist_props.iter().map(|s| s.as_str()).collect();
    let (x, n) = calibration(&dir, &mnist_props, 64, 1);
    for name in ["mnist-net_256x2", "mnist-net_256x4", "mnist-net_256x6"] {
        let net = import_file(&dir.join(format!("mnistfc/{name}.onnx"))).unwrap().network;
        sparsegpt_beats_magnitude(&net, &x, n, name);
    }
    let (x, n) = calibration(&dir, &["acasxu/prop_7.vnnlib"], 2048, 2);
    for name in ["1_1", "3_3", "5_9"] {
        let net = import_file(&dir.join(format!("acasxu/ACASXU_run2a_{name}_batch_2000.onnx"))).unwrap().network;
        sparsegpt_beats_magnitude(&net, &x, n, &format!("ACAS Xu {name}"));
    }
}

/// ||W X - W_hat X||_F^2 of layer k from forward passes of that node alone (bias cancels).
fn forward_recon(f: &Network, g: &Network, k: usize, x: &[f64], n: usize) -> f64 {
    let a = f.eval_node_batch(k, &[x], n);
    let b = g.eval_node_batch(k, &[x], n);
    a.iter().zip(&b).map(|(p, q)| (p - q) * (p - q)).sum()
}

#[test]
fn reported_errors_match_forward_passes_on_convolutional_networks() {
    let mut rng = Rng::new(3);
    for method in Method::ALL {
        let f = random_network(&mut rng);
        let n = 24;
        let x: Vec<f64> = (0..n * f.input_len()).map(|_| rng.range(-1.0, 1.0)).collect();
        let (g, report) = prune(&f, &x, n, method, Pattern::Unstructured { sparsity: 0.4 });
        // Inputs of each layer in the pruned network, as the pipeline saw them.
        let trace = g.trace(&x, n).unwrap();
        for (r, &k) in report.layers.iter().zip(&prunable_layers(&f)) {
            let input = &trace.values[f.nodes[k].inputs[0]];
            let direct = forward_recon(&f, &g, k, input, n);
            let rel = (r.recon_error - direct).abs() / direct.max(1e-300);
            assert!(rel < 1e-8, "{} layer {}: reported {} vs forward {}", method.name(), r.node, r.recon_error, direct);
        }
        // (OBS prunes round(0.4 cols) per row: a layer with one column per row keeps it.)
        assert!(report.sparsity >= 0.3, "{}: sparsity {}", method.name(), report.sparsity);
    }
}

#[test]
fn nm_patterns_hold_in_every_row_of_every_layer() {
    let mut rng = Rng::new(6);
    let f = random_network(&mut rng);
    let n = 16;
    let x: Vec<f64> = (0..n * f.input_len()).map(|_| rng.range(-1.0, 1.0)).collect();
    for method in Method::ALL {
        let (g, _) = prune(&f, &x, n, method, Pattern::NM { keep: 2, group: 4 });
        for &k in &prunable_layers(&g) {
            let (w, cols) = match &g.nodes[k].op {
                Op::Dense(d) => (&d.weight, d.in_features),
                Op::Conv2d(c) => (&c.weight, c.in_channels / c.groups * c.kernel[0] * c.kernel[1]),
                _ => unreachable!(),
            };
            for row in w.chunks(cols) {
                for group in row.chunks(4) {
                    let kept = group.iter().filter(|v| **v != 0.0).count();
                    let quota = (2 * group.len()).div_ceil(4);
                    assert!(kept <= quota, "{}: a group keeps {kept} > {quota}", method.name());
                }
            }
        }
    }
}

#[test]
fn pruned_models_round_trip_through_onnx() {
    let mut rng = Rng::new(7);
    let f = random_network(&mut rng);
    let n = 16;
    let x: Vec<f64> = (0..n * f.input_len()).map(|_| rng.range(-1.0, 1.0)).collect();
    let (g, report) = prune(&f, &x, n, Method::SparseGpt, Pattern::Unstructured { sparsity: 0.5 });
    let zeros = |net: &Network| -> usize {
        prunable_layers(net)
            .iter()
            .map(|&k| match &net.nodes[k].op {
                Op::Dense(d) => d.weight.iter().filter(|v| **v == 0.0).count(),
                Op::Conv2d(c) => c.weight.iter().filter(|v| **v == 0.0).count(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(zeros(&g), report.zeros);
    let y = g.forward(&x, n).unwrap();
    for (precision, tol) in [(ExportPrecision::F64, 0.0), (ExportPrecision::F32, 1e-4)] {
        let back = import_bytes(&export_bytes(&g, precision)).unwrap().network;
        assert_eq!(zeros(&back), report.zeros, "{precision:?}: zeros changed");
        let y2 = back.forward(&x, n).unwrap();
        let err = y.iter().zip(&y2).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0f64, f64::max);
        assert!(err <= tol, "{precision:?}: outputs differ by {err}");
    }
}

#[test]
fn bad_inputs_are_refused_with_messages() {
    let mut rng = Rng::new(8);
    let f = random_network(&mut rng);
    let layers = prunable_layers(&f).len();
    let p = vec![Some(Pattern::Unstructured { sparsity: 0.5 }); layers];
    let opts = PruneOptions::default();
    let err = prune_network(&f, &[0.0; 3], 1, Method::Obs, &p, &opts).unwrap_err().to_string();
    assert!(err.contains("calibration"), "{err}");
    let x = vec![0.5; f.input_len()];
    let err = prune_network(&f, &x, 1, Method::Obs, &p[1..], &opts).unwrap_err().to_string();
    assert!(err.contains("patterns"), "{err}");
    let bad = vec![Some(Pattern::Unstructured { sparsity: 1.5 }); layers];
    let err = prune_network(&f, &x, 1, Method::Obs, &bad, &opts).unwrap_err().to_string();
    assert!(err.contains("sparsity"), "{err}");
}
