// Temporary profiling harness (not committed).
use lipcert_bounds::{bound, InputSet, Interval, Method, Options};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let net = lipcert_io::onnx::import_file(std::path::Path::new(&a[1])).unwrap().network;
    let prop = lipcert_io::vnnlib::Property::read(std::path::Path::new(&a[2])).unwrap();
    let (lo, hi, _) = prop.input_boxes().into_iter().next().unwrap();
    let set = InputSet::Box(Interval::new(lo, hi));
    let method = match a[3].as_str() {
        "crown" => Method::Crown,
        "crown-pure" => Method::CrownPure,
        _ => Method::AlphaCrown,
    };
    let n: usize = a[4].parse().unwrap();
    let opts = Options::default();
    let mut ts = vec![];
    for _ in 0..n {
        let t = std::time::Instant::now();
        let b = bound(&net, &set, &[], method, &opts).unwrap();
        ts.push(t.elapsed().as_secs_f64());
        std::hint::black_box(b);
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("median {:.4} min {:.4}", ts[n / 2], ts[0]);
}
