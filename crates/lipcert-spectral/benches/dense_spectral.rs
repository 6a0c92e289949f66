//! Dense spectral-norm timings, in-process, on matrices stored as .npy (so that
//! bench/spectral_compare.py can run NumPy on the very same matrices).
//!
//! cargo bench -p lipcert-spectral --bench dense_spectral -- [--repeats N] W.npy...
//! One JSON line per (matrix, method, tolerance): median seconds, bracket, iterations.

use faer::MatRef;
use lipcert_io::NpyArray;
use lipcert_spectral::{spectral_norm, Method, Options};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut repeats, mut files) = (3usize, vec![]);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeats" => repeats = args.next().and_then(|v| v.parse().ok()).expect("--repeats N"),
            "--bench" => {}
            f => files.push(f.to_string()),
        }
    }
    for file in files {
        let w = NpyArray::read(file.as_ref()).expect("matrix .npy");
        let (m, n) = (w.shape[0], w.shape[1]);
        let view = MatRef::from_column_major_slice(&w.data, n, m);
        let big = m * n > 4_000_000;
        let mut cases = vec![
            (Method::Gram, Some(1e-6)),
            (Method::Gram, Some(1e-10)),
            (Method::Auto, Some(1e-6)),
            (Method::Auto, Some(1e-10)),
        ];
        // The full SVD of the large matrix takes minutes; it is timed once.
        cases.push((Method::Exact, None));
        for (method, tol) in cases {
            let reps = if big || method == Method::Exact { 1 } else { repeats };
            let mut times = vec![];
            let mut last = None;
            for _ in 0..reps {
                let t = Instant::now();
                last = Some(spectral_norm(view, method, Options { iters: None, tol, seed: 0 }));
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let b = last.expect("ran");
            println!(
                "{{\"matrix\":\"{m}x{n}\",\"method\":\"{}\",\"used\":\"{}\",\"tol\":{},\"median_s\":{:.6},\"runs\":{reps},\"lower\":{:e},\"upper\":{:e},\"width\":{:e},\"iters\":{}}}",
                method.name(),
                b.method,
                tol.map_or("null".to_string(), |t| format!("{t:e}")),
                times[times.len() / 2],
                b.lower,
                b.upper,
                b.relative_width(),
                b.iters
            );
        }
    }
}
