//! Forward throughput (samples per second) of lipcert's f64 forward pass, measured the same
//! way as bench/forward_ort.py measures onnxruntime: warm-up, then `repeats` timed calls on
//! a fixed random batch; the median call time gives samples/s. bench/forward_compare.py runs
//! both side by side and reports the ratios.
//!
//! cargo bench -p lipcert-cli --bench forward_throughput -- [--repeats N] [--batches 1,256] MODEL...
//! Prints one JSON object per model on stdout.

use lipcert_core::Rng;
use lipcert_io::import_file;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WARMUP: Duration = Duration::from_millis(200);

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut repeats, mut batches, mut models) = (50usize, vec![1usize, 256], vec![]);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => repeats = args.next().and_then(|v| v.parse().ok()).expect("--repeats N"),
            "--batches" => {
                batches =
                    args.next().expect("--batches 1,256").split(',').map(|b| b.parse().expect("batch size")).collect()
            }
            "--bench" => {} // passed by cargo bench
            m => models.push(PathBuf::from(m)),
        }
    }
    if models.is_empty() {
        let b = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/benchmarks/vnncomp2021");
        models = vec![b.join("mnistfc/mnist-net_256x6.onnx"), b.join("oval21/nets/cifar_base_kw.onnx")];
    }
    for path in models {
        let net = match import_file(&path) {
            Ok(m) => m.network,
            Err(e) => {
                eprintln!("skipping: {e}");
                continue;
            }
        };
        let mut rng = Rng::new(0);
        let mut results = vec![];
        for &batch in &batches {
            let x: Vec<f64> = (0..batch * net.input_len()).map(|_| rng.uniform() as f32 as f64).collect();
            let start = Instant::now();
            while start.elapsed() < WARMUP {
                std::hint::black_box(net.forward(&x, batch).expect("forward"));
            }
            let mut times: Vec<f64> = (0..repeats)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(net.forward(&x, batch).expect("forward"));
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            results.push(format!(
                "{{\"batch\":{batch},\"median_s\":{median:e},\"min_s\":{:e},\"samples_per_s\":{:.1},\"repeats\":{repeats}}}",
                times[0],
                batch as f64 / median
            ));
        }
        println!(
            "{{\"runtime\":\"lipcert\",\"precision\":\"f64\",\"threads\":{},\"model\":\"{}\",\"results\":[{}]}}",
            rayon::current_num_threads(),
            path.display(),
            results.join(",")
        );
    }
}
