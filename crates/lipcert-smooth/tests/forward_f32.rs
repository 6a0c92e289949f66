//! The f32 plan against the f64 forward on benchmark networks (fails under CI when the
//! benchmark files are missing; skips, saying why, elsewhere).

use lipcert_core::{PlanF32, Rng};

fn benchmark(rel: &str) -> Option<lipcert_core::Network> {
    let dir = lipcert_io::testing::benchmarks_dir();
    let path = dir.as_ref().map(|d| d.join(rel));
    match path.filter(|p| p.exists()) {
        Some(p) => Some(lipcert_io::import_file(&p).expect("benchmark model loads").network),
        None => {
            assert!(std::env::var_os("CI").is_none(), "CI: benchmark network {rel} is missing (set LIPCERT_SHARED)");
            println!("SKIPPED: benchmark network {rel} not found");
            None
        }
    }
}

#[test]
fn f32_plan_matches_f64_on_benchmark_networks() {
    for rel in [
        "mnistfc/mnist-net_256x6.onnx",
        "oval21/nets/cifar_base_kw.onnx",
        "cifar10_resnet/onnx/resnet_2b.onnx",
        "verivital/Convnet_maxpool.onnx",
        "verivital/Convnet_avgpool.onnx",
        "eran/nets/ffnnSIGMOID__Point_6x200.onnx",
    ] {
        let Some(net) = benchmark(rel) else { continue };
        let mut plan = PlanF32::new(&net);
        let mut rng = Rng::new(1);
        let n = 33;
        let x: Vec<f64> = (0..n * net.input_len()).map(|_| rng.uniform() as f32 as f64).collect();
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let want = net.forward(&x, n).unwrap();
        let got = plan.forward(&xf, n).unwrap();
        let m = net.output_len();
        for (i, (a, b)) in got.chunks(m).zip(want.chunks(m)).enumerate() {
            let scale = b.iter().fold(1.0f64, |s, v| s.max(v.abs()));
            let err = a.iter().zip(b).map(|(&p, &q)| (p as f64 - q).abs()).fold(0.0, f64::max) / scale;
            // f32 rounding over a few thousand-term dot products: ~1e-6 typical.
            assert!(err < 1e-4, "{rel} sample {i}: scaled error {err}");
        }
    }
}
