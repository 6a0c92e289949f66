//! Soundness of the deviation bounds: observed_max <= certified and observed_max <= closed_form
//! on random networks (every activation, every pruner), on the ACAS Xu networks as policies
//! over their input box, and on trained controllers; the printed (first-order) corollary is
//! shown to fail where ours holds.

use lipcert_bounds::Method as BoundMethod;
use lipcert_control::{system_by_name, train_policy, TrainConfig};
use lipcert_core::random::{random_mlp, ALL_ACTIVATIONS};
use lipcert_core::{Activation, Dense, Network, NetworkBuilder, Op, Rng};
use lipcert_io::testing::benchmarks_dir;
use lipcert_io::vnnlib::Property;
use lipcert_prune::deviation::{certified, closed_form, observed_max, CertifyOptions};
use lipcert_prune::{prunable_layers, prune_network, Method, Pattern, PruneOptions};

struct Measured {
    closed: f64,
    printed: f64,
    certified: f64,
    observed: f64,
}

fn measure(f: &Network, g: &Network, lo: &[f64], hi: &[f64], splits: usize, samples: usize) -> Measured {
    let c = closed_form(f, g, lo, hi).unwrap();
    let opts = CertifyOptions { splits, ..CertifyOptions::default() };
    let cert = certified(f, g, lo, hi, &opts).unwrap();
    let obs = observed_max(f, g, lo, hi, samples, 3).unwrap();
    Measured { closed: c.bound, printed: c.printed_first_order, certified: cert.l2, observed: obs.max }
}

/// Rounding of the sampled forward passes aside, no observed deviation may exceed a bound.
fn assert_sound(m: &Measured, what: &str) {
    let slack = 1e-10 * (1.0 + m.observed);
    assert!(m.observed <= m.certified + slack, "{what}: observed {} > certified {}", m.observed, m.certified);
    assert!(m.observed <= m.closed + slack, "{what}: observed {} > closed form {}", m.observed, m.closed);
}

fn uniform(rng: &mut Rng, lo: &[f64], hi: &[f64], n: usize) -> Vec<f64> {
    (0..n * lo.len()).map(|i| rng.range(lo[i % lo.len()], hi[i % lo.len()])).collect()
}

fn prune_all(f: &Network, calib: &[f64], n: usize, method: Method, p: f64) -> Network {
    let layers = prunable_layers(f).len();
    let pattern = Some(Pattern::Unstructured { sparsity: p });
    prune_network(f, calib, n, method, &vec![pattern; layers], &PruneOptions::default()).unwrap().0
}

#[test]
fn printed_corollary_fails_where_the_telescoped_bound_holds() {
    // f(s) = 1 * (0.1 s); the "pruned" weights 10.1 and 2 (dW = 10 and 1): f_hat(s) = 20.2 s.
    let chain = |w1: f64, w2: f64| {
        let mut b = NetworkBuilder::new("s", vec![1, 1]);
        let dense = |w: f64| Op::Dense(Dense { weight: vec![w], bias: vec![0.0], out_features: 1, in_features: 1 });
        let v = b.push("fc1", dense(w1), &[0]).unwrap();
        let v = b.push("fc2", dense(w2), &[v]).unwrap();
        b.finish(v, "a").unwrap()
    };
    let (f, g) = (chain(0.1, 1.0), chain(10.1, 2.0));
    let m = measure(&f, &g, &[-1.0], &[1.0], 0, 1000);
    assert!((m.observed - 20.1).abs() < 1e-9, "observed {}", m.observed);
    assert!(m.printed < m.observed, "the printed sum {} should fail here", m.printed);
    assert!((m.printed - 10.1).abs() < 1e-6);
    assert_sound(&m, "scalar chain");
    assert!(m.closed <= 20.1 * (1.0 + 1e-9), "closed form {} should be tight here", m.closed);
}

#[test]
fn unpruned_networks_have_zero_deviation() {
    let mut rng = Rng::new(4);
    let f = random_mlp(&mut rng, &[4, 16, 16, 2], Some(Activation::Relu), |n| 1.0 / (n as f64).sqrt(), 0.2);
    let (lo, hi) = (vec![-1.0; 4], vec![1.0; 4]);
    let calib = uniform(&mut rng, &lo, &hi, 256);
    let g = prune_all(&f, &calib, 256, Method::SparseGpt, 0.0);
    let m = measure(&f, &g, &lo, &hi, 0, 1000);
    assert_eq!(m.observed, 0.0);
    assert!(m.closed < 1e-12 && m.certified < 1e-9, "closed {} certified {}", m.closed, m.certified);
}

#[test]
fn bounds_hold_on_random_networks_for_every_pruner_and_activation() {
    let mut rng = Rng::new(11);
    let mut ratios = vec![];
    for (case, act) in ALL_ACTIVATIONS.iter().enumerate() {
        for method in Method::ALL {
            let n_in = 2 + rng.below(4);
            let widths = [n_in, 8 + rng.below(12), 8 + rng.below(12), 1 + rng.below(3)];
            let f = random_mlp(&mut rng, &widths, Some(*act), |n| 1.5 / (n as f64).sqrt(), 0.3);
            let lo: Vec<f64> = (0..n_in).map(|_| rng.range(-2.0, 0.0)).collect();
            let hi: Vec<f64> = lo.iter().map(|l| l + rng.range(0.1, 2.0)).collect();
            let calib = uniform(&mut rng, &lo, &hi, 128);
            let p = [0.1, 0.3, 0.5, 0.7][rng.below(4)];
            let g = prune_all(&f, &calib, 128, method, p);
            let m = measure(&f, &g, &lo, &hi, 8 * (case % 2), 20_000);
            assert_sound(&m, &format!("{act:?}, {}, {p}", method.name()));
            ratios.push(m.certified / m.observed.max(1e-300));
        }
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "certified / observed over {} random cases: median {:.3}, max {:.3}",
        ratios.len(),
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
}

#[test]
fn bounds_hold_on_acasxu_networks_over_their_input_box() {
    let Some(dir) = benchmarks_dir() else { return };
    let prop = Property::read(&dir.join("acasxu/prop_7.vnnlib")).unwrap();
    let (lo, hi, _) = prop.input_boxes().remove(0);
    let mut rng = Rng::new(9);
    let calib = uniform(&mut rng, &lo, &hi, 1024);
    for (net, method, p) in
        [("1_1", Method::Magnitude, 0.3), ("2_3", Method::SparseGpt, 0.5), ("4_5", Method::Obs, 0.1)]
    {
        let f =
            lipcert_io::import_file(&dir.join(format!("acasxu/ACASXU_run2a_{net}_batch_2000.onnx"))).unwrap().network;
        let g = prune_all(&f, &calib, 1024, method, p);
        let m = measure(&f, &g, &lo, &hi, 16, 100_000);
        assert_sound(&m, &format!("ACAS Xu {net}, {} {p}", method.name()));
        println!(
            "ACAS Xu {net} {} {p}: closed/obs {:.1}, certified/obs {:.2}",
            method.name(),
            m.closed / m.observed,
            m.certified / m.observed
        );
    }
}

#[test]
fn bounds_hold_on_trained_controllers() {
    for (name, act) in [("pendulum", Activation::Relu), ("cartpole", Activation::Tanh)] {
        let sys = system_by_name(name).unwrap();
        let mut cfg = TrainConfig::new(vec![32, 32], act, 1);
        cfg.epochs = 30;
        cfg.dagger_epochs = 10;
        let f = train_policy(sys.as_ref(), &cfg).unwrap().network;
        let (lo, hi): (Vec<f64>, Vec<f64>) = sys.state_box().into_iter().unzip();
        let mut rng = Rng::new(2);
        let calib = uniform(&mut rng, &lo, &hi, 2048);
        for p in [0.3, 0.7] {
            let g = prune_all(&f, &calib, 2048, Method::SparseGpt, p);
            let m = measure(&f, &g, &lo, &hi, 32, 100_000);
            assert_sound(&m, &format!("{name} {p}"));
        }
    }
}

#[test]
fn alpha_crown_is_sound_and_no_looser() {
    let mut rng = Rng::new(21);
    let f = random_mlp(&mut rng, &[3, 24, 24, 2], Some(Activation::Relu), |n| 1.5 / (n as f64).sqrt(), 0.3);
    let (lo, hi) = (vec![-1.0; 3], vec![1.0; 3]);
    let calib = uniform(&mut rng, &lo, &hi, 256);
    let g = prune_all(&f, &calib, 256, Method::Magnitude, 0.5);
    let crown = certified(&f, &g, &lo, &hi, &CertifyOptions::default()).unwrap();
    let alpha =
        certified(&f, &g, &lo, &hi, &CertifyOptions { method: BoundMethod::AlphaCrown, ..CertifyOptions::default() })
            .unwrap();
    let obs = observed_max(&f, &g, &lo, &hi, 50_000, 1).unwrap();
    assert!(obs.max <= alpha.l2 && alpha.l2 <= crown.l2 * (1.0 + 1e-12));
}

#[test]
fn unsupported_graphs_and_bad_boxes_are_refused() {
    let mut rng = Rng::new(1);
    let f = lipcert_core::random::random_network(&mut rng);
    let n = f.input_len();
    let err = closed_form(&f, &f, &vec![0.0; n], &vec![0.1; n]).unwrap_err().to_string();
    assert!(err.contains("chain") || err.contains("covers"), "{err}");
    let g = random_mlp(&mut rng, &[2, 4, 1], Some(Activation::Relu), |_| 1.0, 0.1);
    let err = closed_form(&g, &g, &[1.0, 0.0], &[0.0, 1.0]).unwrap_err().to_string();
    assert!(err.contains("not a finite interval"), "{err}");
    let err = certified(&g, &g, &[0.0], &[1.0], &CertifyOptions::default()).unwrap_err().to_string();
    assert!(err.contains("inputs"), "{err}");
}

#[test]
fn schedule_stays_within_the_budget() {
    use lipcert_prune::schedule::{schedule, ScheduleOptions};
    let mut rng = Rng::new(30);
    let f = random_mlp(&mut rng, &[3, 16, 16, 2], Some(Activation::Tanh), |n| 1.5 / (n as f64).sqrt(), 0.3);
    let (lo, hi) = (vec![-1.0; 3], vec![1.0; 3]);
    let calib = uniform(&mut rng, &lo, &hi, 512);
    let mut opts = ScheduleOptions::default();
    opts.certify.splits = 8;
    for eps in [0.05, 0.3] {
        let s = schedule(&f, &calib, 512, Method::SparseGpt, &lo, &hi, eps, &opts).unwrap();
        assert!(s.certified <= eps, "certified {} > budget {eps}", s.certified);
        assert!(s.report.zeros > 0, "budget {eps}: nothing pruned");
        let obs = observed_max(&f, &s.network, &lo, &hi, 50_000, 2).unwrap();
        assert!(obs.max <= s.certified);
        // Every accepted step is certified and adds zeros.
        assert!(s.steps.windows(2).all(|w| w[1].zeros > w[0].zeros && w[1].certified <= eps));
        println!("budget {eps}: {} zeros of {}, sparsities {:?}", s.report.zeros, s.report.weights, s.sparsities);
    }
}
