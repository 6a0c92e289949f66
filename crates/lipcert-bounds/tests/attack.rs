//! Attacks: every counterexample is real (in the set, unsafe by a fresh forward pass), exact
//! answers where the minimum is known (linear networks over boxes and l2 balls), bad input gets
//! errors, and PGD finds the known counterexamples of VNN-COMP 2021 (mnistfc, acasxu, test).

use lipcert_bounds::attack::{attack, Atom, AttackOptions, AttackResult, Method, StepSchedule, Unsafe};
use lipcert_bounds::{InputSet, Interval};
use lipcert_core::random::random_network;
use lipcert_core::{Dense, GraphError, Network, NetworkBuilder, Op, Rng};
use lipcert_io::vnnlib::Property;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The invariants every result must satisfy, whatever was found.
fn check_result(net: &Network, set: &InputSet, unsafe_: &Unsafe, res: &AttackResult, what: &str) {
    assert!(set.contains(&res.best_x), "{what}: best_x is outside the set");
    let y = net.forward(&res.best_x, 1).unwrap();
    let fresh = unsafe_.loss(&y);
    let tol = 1e-9 * (1.0 + fresh.abs());
    if res.best_loss.is_finite() {
        assert!((fresh - res.best_loss).abs() <= tol, "{what}: best_loss {} but loss at best_x {fresh}", res.best_loss);
    }
    match &res.counterexample {
        Some(x) => {
            assert!(set.contains(x), "{what}: counterexample outside the set");
            let y = net.forward(x, 1).unwrap();
            assert!(unsafe_.loss(&y) <= 0.0, "{what}: counterexample is safe (loss {})", unsafe_.loss(&y));
            assert_eq!(res.output.as_deref(), Some(y.as_slice()), "{what}: output is not the forward pass");
            assert_eq!(x, &res.best_x, "{what}: best_x is not the counterexample");
            assert!(res.best_loss <= 0.0);
        }
        None => {
            assert!(res.output.is_none());
            assert!(res.best_loss > 0.0, "{what}: best loss {} without a counterexample", res.best_loss);
        }
    }
}

fn random_set(rng: &mut Rng, n: usize, case: usize) -> InputSet {
    let center: Vec<f64> = (0..n).map(|_| rng.range(0.1, 0.9)).collect();
    let scale = [0.01, 0.1, 1.0][case % 3];
    match case % 4 {
        // Non-uniform boxes with some zero-width coordinates.
        0 | 1 => {
            let r: Vec<f64> = (0..n).map(|_| if rng.uniform() < 0.1 { 0.0 } else { scale * rng.uniform() }).collect();
            let lo = center.iter().zip(&r).map(|(c, r)| c - r).collect();
            let hi = center.iter().zip(&r).map(|(c, r)| c + r).collect();
            InputSet::Box(Interval::new(lo, hi))
        }
        2 => InputSet::l2_ball(&center, 3.0 * scale, None).unwrap(),
        _ => {
            let domain = Interval::new(vec![0.0; n], vec![1.0; n]);
            InputSet::l2_ball(&center, 3.0 * scale, Some(&domain)).unwrap()
        }
    }
}

fn center_of(set: &InputSet) -> Vec<f64> {
    match set {
        InputSet::Box(b) => b.lo.iter().zip(&b.hi).map(|(l, h)| 0.5 * l + 0.5 * h).collect(),
        InputSet::L2Ball { center, .. } => center.clone(),
    }
}

/// Two conjunctions of two random atoms each, with bounds set around the center's output so
/// that some are violated nearby and some are not.
fn random_unsafe(rng: &mut Rng, y0: &[f64]) -> Unsafe {
    let any_of = (0..2)
        .map(|_| {
            (0..2)
                .map(|_| {
                    let c = rng.normals(y0.len(), 1.0);
                    let v: f64 = c.iter().zip(y0).map(|(c, y)| c * y).sum();
                    Atom { c, d: v + rng.range(-0.5, 0.2) }
                })
                .collect()
        })
        .collect();
    Unsafe { any_of }
}

#[test]
fn counterexamples_are_real_on_random_networks() {
    let mut rng = Rng::new(2024);
    let (mut found, mut missed) = (0, 0);
    for case in 0..24 {
        let net = random_network(&mut rng);
        let n = net.input_len();
        let set = random_set(&mut rng, n, case);
        let center = center_of(&set);
        let y0 = net.forward(&center, 1).unwrap();
        let m = y0.len();
        let label = (0..m).max_by(|&a, &b| y0[a].total_cmp(&y0[b])).unwrap();
        let unsafe_ = match case % 3 {
            0 => Unsafe::misclassified(label, m),
            1 => Unsafe::targeted(label, (label + 1) % m, m),
            _ => random_unsafe(&mut rng, &y0),
        };
        let loss0 = unsafe_.loss(&y0);
        let schedule = [
            StepSchedule::Mixed { patience: 5 },
            StepSchedule::Cosine,
            StepSchedule::Constant,
            StepSchedule::Halving { patience: 3 },
        ][(case + case / 4) % 4];
        for method in [Method::Fgsm, Method::Pgd] {
            let opts = AttackOptions { restarts: 4, steps: 20, seed: case as u64, schedule, ..Default::default() };
            let res = attack(&net, &set, &unsafe_, method, &opts).unwrap();
            let what = format!("case {case}, {method:?}, {schedule:?}");
            check_result(&net, &set, &unsafe_, &res, &what);
            // Restart 0 starts at the center, and the best point is kept.
            assert!(res.best_loss <= loss0 + 1e-9 * (1.0 + loss0.abs()), "{what}: {} > {loss0}", res.best_loss);
            assert!(res.evaluations > 0);
            // Seeded: the same options give the same answer.
            let again = attack(&net, &set, &unsafe_, method, &opts).unwrap();
            assert_eq!(again.best_x, res.best_x, "{what}: not reproducible");
            if res.counterexample.is_some() {
                found += 1;
            } else {
                missed += 1;
            }
        }
    }
    // Both paths are exercised.
    assert!(found >= 5 && missed >= 5, "found {found}, missed {missed}");
}

fn linear_network(w: Vec<f64>, b: Vec<f64>, n: usize, m: usize) -> Network {
    let mut builder = NetworkBuilder::new("x", vec![1, n]);
    let dense = Dense { weight: w, bias: b, out_features: m, in_features: n };
    let out = builder.push("fc", Op::Dense(dense), &[0]).unwrap();
    builder.finish(out, "y").unwrap()
}

/// A box with coordinates of very different widths (1e-3 to 10) and some of width zero.
fn uneven_box(rng: &mut Rng, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = Vec::with_capacity(n);
    let mut hi = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.range(-1.0, 1.0);
        let r = if i % 7 == 3 { 0.0 } else { 10f64.powf(rng.range(-3.0, 1.0)) };
        lo.push(c - r);
        hi.push(c + r);
    }
    (lo, hi)
}

/// Untargeted margins of label 0 on y = W x + b, where every margin y_0 - y_j has the same
/// coefficient signs, so that all margins, and hence their minimum over the box, are smallest at
/// the same known corner. The bias of class 0 is set so that this minimum is `target`.
fn linear_case(rng: &mut Rng, n: usize, m: usize, lo: &[f64], hi: &[f64], target: f64) -> (Network, Vec<f64>) {
    let w0 = rng.normals(n, 1.0);
    let s: Vec<f64> = (0..n).map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 }).collect();
    let corner: Vec<f64> = (0..n).map(|i| if s[i] > 0.0 { lo[i] } else { hi[i] }).collect();
    let mut w = w0.clone();
    let mut b = vec![0.0; m];
    for bj in b.iter_mut().skip(1) {
        // W_0 - W_j = s * u with u > 0.
        w.extend((0..n).map(|i| w0[i] - s[i] * rng.range(0.1, 2.0)));
        *bj = rng.normal();
    }
    let margin =
        |b0: f64, j: usize| -> f64 { (0..n).map(|i| (w[i] - w[j * n + i]) * corner[i]).sum::<f64>() + b0 - b[j] };
    let min = (1..m).map(|j| margin(0.0, j)).fold(f64::INFINITY, f64::min);
    b[0] = target - min;
    (linear_network(w, b, n, m), corner)
}

/// PGD with every schedule, and FGSM.
const METHODS: [(Method, StepSchedule); 5] = [
    (Method::Pgd, StepSchedule::Mixed { patience: 5 }),
    (Method::Pgd, StepSchedule::Cosine),
    (Method::Pgd, StepSchedule::Constant),
    (Method::Pgd, StepSchedule::Halving { patience: 3 }),
    (Method::Fgsm, StepSchedule::Mixed { patience: 5 }),
];

#[test]
fn linear_networks_attain_the_known_corner() {
    let mut rng = Rng::new(7);
    for case in 0..16 {
        let n = 5 + rng.below(40);
        let m = 2 + case % 4;
        let (lo, hi) = uneven_box(&mut rng, n);
        let set = InputSet::Box(Interval::new(lo.clone(), hi.clone()));
        let unsafe_ = Unsafe::misclassified(0, m);
        for sign in [-1.0, 1.0] {
            let delta = sign * 1e-6;
            let (net, corner) = linear_case(&mut rng, n, m, &lo, &hi, delta);
            let exact = unsafe_.loss(&net.forward(&corner, 1).unwrap());
            assert!((exact - delta).abs() < 1e-9, "construction: {exact} vs {delta}");
            for (method, schedule) in METHODS {
                let opts = AttackOptions { restarts: 3, steps: 30, seed: case as u64, schedule, ..Default::default() };
                let res = attack(&net, &set, &unsafe_, method, &opts).unwrap();
                let what = format!("case {case} (n {n}, m {m}), {method:?} {schedule:?}, minimum {delta}");
                check_result(&net, &set, &unsafe_, &res, &what);
                assert_eq!(res.counterexample.is_some(), delta < 0.0, "{what}: best loss {}", res.best_loss);
                // The search reached the minimizing corner.
                assert!((res.best_loss - delta).abs() < 1e-9, "{what}: best loss {}", res.best_loss);
            }
        }
    }
}

#[test]
fn linear_network_over_an_l2_ball() {
    // One margin a . x + b0 over ||x - c|| <= r has its minimum a . c + b0 - r ||a||.
    let mut rng = Rng::new(11);
    for case in 0..8 {
        let n = 3 + rng.below(50);
        let w = rng.normals(2 * n, 1.0);
        let c: Vec<f64> = (0..n).map(|_| rng.range(-1.0, 1.0)).collect();
        let radius = rng.range(0.01, 2.0);
        let a: Vec<f64> = (0..n).map(|i| w[i] - w[n + i]).collect();
        let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
        let at_center: f64 = a.iter().zip(&c).map(|(a, c)| a * c).sum();
        let set = InputSet::l2_ball(&c, radius, None).unwrap();
        let unsafe_ = Unsafe::targeted(0, 1, 2);
        for delta in [-1e-6, 1e-6] {
            let net = linear_network(w.clone(), vec![delta - (at_center - radius * norm), 0.0], n, 2);
            for (method, schedule) in METHODS {
                let opts = AttackOptions { restarts: 2, steps: 25, seed: case as u64, schedule, ..Default::default() };
                let res = attack(&net, &set, &unsafe_, method, &opts).unwrap();
                let what = format!("case {case}, {method:?} {schedule:?}, minimum {delta}");
                check_result(&net, &set, &unsafe_, &res, &what);
                assert_eq!(res.counterexample.is_some(), delta < 0.0, "{what}: best loss {}", res.best_loss);
                assert!((res.best_loss - delta).abs() < 1e-9, "{what}: best loss {}", res.best_loss);
            }
        }
    }
}

fn data_error(r: Result<AttackResult, GraphError>, what: &str) -> String {
    match r {
        Err(GraphError::Data(msg)) => {
            assert!(!msg.contains('\n') && !msg.is_empty(), "{what}: not a one-line message: {msg:?}");
            msg
        }
        Err(e) => panic!("{what}: wrong error kind {e:?}"),
        Ok(_) => panic!("{what}: accepted"),
    }
}

#[test]
fn bad_input_is_an_error_and_degenerate_sets_work() {
    let mut rng = Rng::new(3);
    let net = random_network(&mut rng);
    let n = net.input_len();
    let m = net.output_len();
    let good = Unsafe::misclassified(0, m);
    let opts = AttackOptions::default();
    let unit = |lo: f64, hi: f64| InputSet::Box(Interval::new(vec![lo; n], vec![hi; n]));
    let run = |set: &InputSet, u: &Unsafe, o: &AttackOptions| attack(&net, set, u, Method::Pgd, o);

    let short = InputSet::Box(Interval::new(vec![0.0; n - 1], vec![1.0; n - 1]));
    assert!(data_error(run(&short, &good, &opts), "short box").contains("inputs"));
    let mut nan = unit(0.0, 1.0);
    if let InputSet::Box(b) = &mut nan {
        b.hi[5] = f64::NAN;
    }
    assert!(data_error(run(&nan, &good, &opts), "NaN box").contains("element 5"));
    data_error(run(&unit(1.0, 0.0), &good, &opts), "lo > hi");
    data_error(run(&unit(0.0, f64::INFINITY), &good, &opts), "infinite box");
    let ball = |center: Vec<f64>, radius: f64, domain: Option<Interval>| InputSet::L2Ball { center, radius, domain };
    data_error(run(&ball(vec![0.5; n], f64::NAN, None), &good, &opts), "NaN radius");
    data_error(run(&ball(vec![0.5; n], -1.0, None), &good, &opts), "negative radius");
    data_error(run(&ball(vec![0.5; n + 1], 1.0, None), &good, &opts), "long center");
    data_error(run(&ball(vec![f64::NAN; n], 1.0, None), &good, &opts), "NaN center");
    let domain = Interval::new(vec![0.0; n], vec![1.0; n]);
    data_error(run(&ball(vec![2.0; n], 1.0, Some(domain)), &good, &opts), "center outside the domain");
    let bad_domain = Interval::new(vec![0.0; n], vec![f64::NAN; n]);
    data_error(run(&ball(vec![0.5; n], 1.0, Some(bad_domain)), &good, &opts), "NaN domain");

    let set = unit(0.0, 1.0);
    let msg = data_error(run(&set, &Unsafe::misclassified(0, m + 1), &opts), "long atoms");
    assert!(msg.contains(&format!("{} coefficients", m + 1)), "{msg}");
    data_error(run(&set, &Unsafe::misclassified(m, m), &opts), "label out of range");
    data_error(run(&set, &Unsafe::misclassified(usize::MAX, m), &opts), "huge label");
    data_error(run(&set, &Unsafe::targeted(usize::MAX, 0, m), &opts), "huge label");
    data_error(run(&set, &Unsafe::targeted(0, m + 3, m), &opts), "target out of range");
    let nan_d = Unsafe { any_of: vec![vec![Atom { c: vec![1.0; m], d: f64::NAN }]] };
    data_error(run(&set, &nan_d, &opts), "NaN bound");
    for s in [f64::NAN, -0.1, f64::INFINITY] {
        data_error(run(&set, &good, &AttackOptions { step_size: Some(s), ..Default::default() }), "bad step size");
    }

    // A point box: the attack can only report its one point.
    let x: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
    let point = InputSet::Box(Interval::new(x.clone(), x.clone()));
    let y = net.forward(&x, 1).unwrap();
    let label = (0..m).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
    for (l, unsafe_at_x) in [(label, false), ((label + 1) % m, true)] {
        let u = Unsafe::misclassified(l, m);
        for method in [Method::Pgd, Method::Fgsm] {
            let res = attack(&net, &point, &u, method, &opts).unwrap();
            check_result(&net, &point, &u, &res, "point box");
            assert_eq!(res.best_x, x);
            assert_eq!(res.counterexample.is_some(), unsafe_at_x);
        }
    }
    // A zero-radius ball and degenerate options.
    let zero = InputSet::l2_ball(&x, 0.0, None).unwrap();
    let odd = AttackOptions { restarts: 0, steps: 0, ..Default::default() };
    let res = attack(&net, &zero, &good, Method::Pgd, &odd).unwrap();
    check_result(&net, &zero, &good, &res, "zero ball");
    assert_eq!(res.best_x, x);

    // An empty conjunction holds everywhere; an empty disjunction nowhere.
    let always = Unsafe { any_of: vec![vec![]] };
    let res = run(&set, &always, &opts).unwrap();
    assert!(res.counterexample.is_some() && res.best_loss == f64::NEG_INFINITY);
    assert!(res.evaluations <= 2 * opts.restarts, "did not stop early: {}", res.evaluations);
    let never = Unsafe { any_of: vec![] };
    let res = run(&set, &never, &opts).unwrap();
    assert!(res.counterexample.is_none() && res.best_loss == f64::INFINITY);
    assert!(set.contains(&res.best_x));
}

#[test]
fn margin_loss_and_its_active_atom() {
    let u = Unsafe::misclassified(1, 4);
    let y = [0.5, 2.0, 1.5, -1.0];
    assert_eq!(u.loss(&y), 0.5); // y_1 - max(y_0, y_2, y_3)
    assert_eq!(u.active(&y).1.unwrap().c, vec![0.0, 1.0, -1.0, 0.0]);
    assert_eq!(Unsafe::targeted(1, 3, 4).loss(&y), 3.0);
    assert!(u.loss(&[f64::NAN, 0.0, 0.0, 0.0]).is_nan());
    // Conjunctions take the max of their atoms: "Y_0 is the largest" (ACAS Xu property 2 style).
    let largest = Unsafe { any_of: vec![(1..4).map(|j| Unsafe::targeted(j, 0, 4).any_of[0][0].clone()).collect()] };
    assert_eq!(largest.loss(&y), 1.5); // max_j (y_j - y_0) = y_1 - y_0
    assert_eq!(largest.loss(&[3.0, 2.0, 1.5, -1.0]), -1.0);
}

// ---------------------------------------------------------------------------------------------
// VNN-COMP 2021 instances with a known counterexample.

struct Instance {
    category: String,
    onnx: String,
    vnnlib: String,
}

fn sat_instances(dir: &Path) -> Vec<Instance> {
    let csv = dir.join("../known_answers.csv");
    let text = std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.trim().split(',').collect();
            let wanted = ["mnistfc", "acasxu", "test"].contains(&f[0]) && f.get(3) == Some(&"sat");
            wanted.then(|| Instance { category: f[0].into(), onnx: f[1].into(), vnnlib: f[2].into() })
        })
        .collect()
}

/// The property's unsafe region over each distinct input box.
fn regions(prop: &Property) -> Vec<(InputSet, Unsafe, Vec<usize>)> {
    prop.input_boxes()
        .into_iter()
        .map(|(lo, hi, cases)| {
            let any_of = cases
                .iter()
                .map(|&k| {
                    prop.cases[k]
                        .atoms
                        .iter()
                        .map(|&a| Atom { c: prop.atoms[a].c.clone(), d: prop.atoms[a].d })
                        .collect()
                })
                .collect();
            (InputSet::Box(Interval::new(lo, hi)), Unsafe { any_of }, cases)
        })
        .collect()
}

/// Attacks every input box of the property; returns whether a counterexample was found (checked
/// against the parsed property itself) and the evaluations spent.
fn attack_property(net: &Network, prop: &Property, opts: &AttackOptions, what: &str) -> (bool, usize) {
    let mut evaluations = 0;
    for (set, unsafe_, cases) in regions(prop) {
        let res = attack(net, &set, &unsafe_, Method::Pgd, opts).unwrap();
        check_result(net, &set, &unsafe_, &res, what);
        evaluations += res.evaluations;
        if let (Some(x), Some(y)) = (&res.counterexample, &res.output) {
            assert!(cases.iter().any(|&k| prop.case_holds(k, y)), "{what}: the property does not hold at the output");
            assert!(x.iter().zip(&prop.cases[cases[0]].lo).all(|(v, l)| l <= v), "{what}: below the box");
            return (true, evaluations);
        }
    }
    (false, evaluations)
}

struct Loaded {
    instance: Instance,
    net: Network,
    prop: Property,
}

fn load_all(dir: &Path) -> Vec<Loaded> {
    let mut nets: HashMap<String, Network> = HashMap::new();
    sat_instances(dir)
        .into_iter()
        .map(|instance| {
            let folder = dir.join(&instance.category);
            let net = nets
                .entry(instance.onnx.clone())
                .or_insert_with(|| lipcert_io::import_file(&folder.join(&instance.onnx)).unwrap().network)
                .clone();
            let prop = Property::read(&folder.join(&instance.vnnlib)).unwrap();
            Loaded { instance, net, prop }
        })
        .collect()
}

/// Settings tried in turn until one finds the counterexample (default options otherwise).
const LADDER: [(usize, usize); 4] = [(10, 50), (50, 100), (200, 200), (1000, 200)];

/// Runs the ladder up to `rungs` settings; returns the setting that found the counterexample,
/// the evaluations and the milliseconds spent (over all settings tried).
fn climb(l: &Loaded, rungs: usize, seed: u64) -> (Option<(usize, usize)>, usize, f64) {
    let name = format!("{}/{} {}", l.instance.category, l.instance.onnx, l.instance.vnnlib);
    let (mut evaluations, mut ms) = (0, 0.0);
    for &(restarts, steps) in &LADDER[..rungs] {
        let opts = AttackOptions { restarts, steps, seed, ..Default::default() };
        let t = Instant::now();
        let (found, e) = attack_property(&l.net, &l.prop, &opts, &name);
        ms += t.elapsed().as_secs_f64() * 1e3;
        evaluations += e;
        if found {
            return (Some((restarts, steps)), evaluations, ms);
        }
    }
    (None, evaluations, ms)
}

/// Instances that PGD may miss within the CI budget (up to 200 restarts x 200 steps): they need
/// many restarts and luck (ACAS Xu), or were never found (mnistfc prop_0_0.05).
const HARD: [(&str, &str); 8] = [
    ("ACASXU_run2a_1_2_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_3_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_4_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_5_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_6_batch_2000.onnx", "prop_2.vnnlib"),
    ("ACASXU_run2a_1_9_batch_2000.onnx", "prop_7.vnnlib"),
    ("ACASXU_run2a_2_9_batch_2000.onnx", "prop_8.vnnlib"),
    ("mnist-net_256x2.onnx", "prop_0_0.05.vnnlib"),
];

/// The CI run: every known counterexample outside `HARD` is found within 200 restarts x 200
/// steps, at least 28 of the 34 in all, and every one found is checked against the network and
/// the parsed property.
#[test]
fn pgd_finds_the_known_counterexamples() {
    let Some(dir) = lipcert_io::testing::benchmarks_dir() else {
        return;
    };
    let start = Instant::now();
    let loaded = load_all(&dir);
    assert!(loaded.len() >= 30, "only {} sat instances listed", loaded.len());
    let mut missed = vec![];
    for l in &loaded {
        if climb(l, 3, 0).0.is_none() {
            missed.push((l.instance.onnx.as_str(), l.instance.vnnlib.as_str()));
        }
    }
    println!("{} sat instances in {:.2} s; missed {missed:?}", loaded.len(), start.elapsed().as_secs_f64());
    let unexpected: Vec<_> = missed.iter().filter(|m| !HARD.contains(m)).collect();
    assert!(unexpected.is_empty(), "PGD missed {unexpected:?}");
    assert!(loaded.len() - missed.len() >= 28, "PGD found only {} of {}", loaded.len() - missed.len(), loaded.len());
}

/// The full table (times and evaluations add up over the settings tried):
/// `cargo test --release -p lipcert-bounds --test attack -- --ignored --nocapture`
/// (`ATTACK_SEED=k` for another seed).
#[test]
#[ignore]
fn pgd_table_of_the_known_counterexamples() {
    let Some(dir) = lipcert_io::testing::benchmarks_dir() else {
        return;
    };
    let seed = std::env::var("ATTACK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    println!("| category | network | property | found | restarts x steps | evaluations | time (ms) |");
    println!("|---|---|---|---|---|---|---|");
    for l in load_all(&dir) {
        let (found, evaluations, ms) = climb(&l, LADDER.len(), seed);
        let setting = found.map_or("-".to_string(), |(r, s)| format!("{r} x {s}"));
        println!(
            "| {} | {} | {} | {} | {setting} | {evaluations} | {ms:.1} |",
            l.instance.category,
            l.instance.onnx,
            l.instance.vnnlib,
            if found.is_some() { "yes" } else { "no" }
        );
    }
}
