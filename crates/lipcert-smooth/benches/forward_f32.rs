//! Forward throughput (samples per second) of lipcert's f32 plan (`PlanF32`), measured the
//! same way as bench/forward_ort.py measures onnxruntime: warm-up, then `repeats` timed calls
//! on a fixed random batch; the median call time gives samples/s. bench/forward_compare.py
//! runs both side by side (and the f64 forward) and reports the ratios.
//!
//! cargo bench -p lipcert-smooth --bench forward_f32 -- [--repeats N] [--batches 1,256] [--noise SIGMA] MODEL...
//! Prints one JSON object per model on stdout. With --noise, each call also draws the Gaussian
//! noise for the batch (the smoothing hot loop: noise + forward); with --noise-only, each call
//! only draws the noise (to see how the hot loop's time splits).

use lipcert_core::{PlanF32, Rng};
use lipcert_io::import_file;
use lipcert_smooth::noise::{noisy_copies, stream_key};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WARMUP: Duration = Duration::from_millis(200);

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut repeats, mut batches, mut models, mut noise) = (50usize, vec![1usize, 256], vec![], None::<f32>);
    let mut noise_only = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => repeats = args.next().and_then(|v| v.parse().ok()).expect("--repeats N"),
            "--batches" => {
                batches =
                    args.next().expect("--batches 1,256").split(',').map(|b| b.parse().expect("batch size")).collect()
            }
            "--noise" => noise = Some(args.next().and_then(|v| v.parse().ok()).expect("--noise SIGMA")),
            "--noise-only" => {
                noise = Some(args.next().and_then(|v| v.parse().ok()).expect("--noise-only SIGMA"));
                noise_only = true;
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
        let mut plan = PlanF32::new(&net);
        let mut rng = Rng::new(0);
        let mut results = vec![];
        let d = net.input_len();
        for &batch in &batches {
            let x: Vec<f32> = (0..batch * d).map(|_| rng.uniform() as f32).collect();
            let centre: Vec<f32> = x[..d].to_vec();
            let mut noisy = x.clone();
            let mut call = |k: u64| {
                if let Some(sigma) = noise {
                    noisy_copies(&centre, sigma, stream_key(0, k, 0), &mut noisy);
                    if !noise_only {
                        std::hint::black_box(plan.forward(&noisy, batch).expect("forward"));
                    }
                    std::hint::black_box(&noisy);
                } else {
                    std::hint::black_box(plan.forward(&x, batch).expect("forward"));
                }
            };
            let start = Instant::now();
            let mut k = 0;
            while start.elapsed() < WARMUP {
                call(k);
                k += 1;
            }
            let mut times: Vec<f64> = (0..repeats)
                .map(|i| {
                    let t = Instant::now();
                    call(i as u64);
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
            "{{\"runtime\":\"lipcert\",\"precision\":\"{}\",\"threads\":{},\"model\":\"{}\",\"results\":[{}]}}",
            match (noise.is_some(), noise_only) {
                (_, true) => "noise",
                (true, false) => "f32+noise",
                (false, false) => "f32",
            },
            rayon::current_num_threads(),
            path.display(),
            results.join(",")
        );
    }
}
