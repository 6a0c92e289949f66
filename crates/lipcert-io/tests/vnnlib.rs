//! The VNN-LIB reader: every benchmark property, every syntax form, every error, and fuzzing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lipcert_io::testing::benchmarks_dir;
use lipcert_io::vnnlib::{Property, VnnlibError, MAX_CASES};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Two inputs and two outputs (lines 1-4).
const DECL: &str =
    "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n";
/// The box [0, 1] x [0, 1] (lines 5-8).
const BOX: &str = "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 1))\n(assert (>= X_1 0))\n";

fn parse(text: &str) -> Property {
    Property::parse(text).unwrap_or_else(|e| panic!("{e}\n--- text:\n{text}"))
}

/// `DECL + BOX + body`; body starts at line 9.
fn with_box(body: &str) -> Property {
    parse(&format!("{DECL}{BOX}{body}"))
}

fn parse_err(text: &str) -> VnnlibError {
    match Property::parse(text) {
        Ok(p) => panic!("expected an error, parsed {p:?}\n--- text:\n{text}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
            e
        }
    }
}

fn e(i: usize, n: usize) -> Vec<f64> {
    let mut v = vec![0.0; n];
    v[i] = 1.0;
    v
}

fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

/// Every `.vnnlib` file under `dir`, sorted.
fn vnnlib_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().contains(".vnnlib") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Checks that hold for every parsed property.
fn check_consistent(p: &Property, what: &str) {
    assert!(p.num_inputs > 0 && p.num_outputs > 0, "{what}");
    assert!(!p.cases.is_empty(), "{what}");
    for a in &p.atoms {
        assert_eq!(a.c.len(), p.num_outputs, "{what}");
        assert!(a.c.iter().all(|c| c.is_finite()) && a.d.is_finite(), "{what}: {a:?}");
        assert!(a.c.iter().any(|&c| c != 0.0), "{what}: {a:?}");
        assert!(a.text.starts_with('(') && a.text.ends_with(')') && !a.text.contains('\n'), "{what}: {a:?}");
    }
    assert!(p.atoms.windows(2).all(|w| w[0].line <= w[1].line), "{what}: atoms not in file order");
    for c in &p.cases {
        assert_eq!(c.lo.len(), p.num_inputs, "{what}");
        assert_eq!(c.hi.len(), p.num_inputs, "{what}");
        for (l, h) in c.lo.iter().zip(&c.hi) {
            assert!(l.is_finite() && h.is_finite() && l <= h, "{what}: bad box [{l}, {h}]");
        }
        assert!(c.atoms.windows(2).all(|w| w[0] < w[1]), "{what}");
        assert!(c.atoms.iter().all(|&a| a < p.atoms.len()), "{what}");
    }
    let boxes = p.input_boxes();
    let mut seen: Vec<usize> = boxes.iter().flat_map(|b| b.2.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..p.cases.len()).collect::<Vec<_>>(), "{what}");
    for (lo, hi, cases) in &boxes {
        for &k in cases {
            assert_eq!((&p.cases[k].lo, &p.cases[k].hi), (lo, hi), "{what}");
        }
    }
}

/// An independent reading of the simple top-level bounds `(assert (<= X_i c))` and
/// `(assert (>= X_i c))`; None if the file constrains inputs in any other way.
fn simple_box(text: &str, n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut lo = vec![f64::NEG_INFINITY; n];
    let mut hi = vec![f64::INFINITY; n];
    for line in text.lines() {
        let line = line.split(';').next().unwrap().trim();
        if !line.contains("X_") || line.starts_with("(declare-const") {
            continue;
        }
        let inner = line.strip_prefix("(assert (")?.strip_suffix("))")?;
        let mut it = inner.split_whitespace();
        let (op, var, val) = (it.next()?, it.next()?, it.next()?);
        let i: usize = var.strip_prefix("X_")?.parse().ok()?;
        let v: f64 = val.parse().ok()?;
        match op {
            "<=" => hi[i] = hi[i].min(v),
            ">=" => lo[i] = lo[i].max(v),
            _ => return None,
        }
    }
    Some((lo, hi))
}

/// The texts `(<= Y_.. ..)` / `(>= Y_.. ..)` in the file, distinct.
fn output_atom_texts(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.split(';').next().unwrap();
        let mut rest = line;
        while let Some(pos) = rest.find('(') {
            rest = &rest[pos..];
            let end = rest[1..].find(['(', ')']).map(|e| e + 1).unwrap_or(rest.len());
            if rest[end..].starts_with(')') && rest[1..end].contains("Y_") {
                out.insert(rest[..=end].split_whitespace().collect::<Vec<_>>().join(" "));
            }
            rest = &rest[1..];
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The benchmark files

#[test]
fn parses_every_benchmark_property() {
    let Some(dir) = benchmarks_dir() else { return };
    let files = vnnlib_files(&dir);
    assert!(files.len() >= 200, "found only {} .vnnlib files under {}", files.len(), dir.display());
    let mut slowest = (0.0, PathBuf::new());
    let mut total_cases = 0;
    for f in &files {
        let what = f.display().to_string();
        if f.extension().is_some_and(|e| e == "gz") {
            let err = Property::read(f).unwrap_err().to_string();
            assert!(err.contains("gzip"), "{err}");
            continue;
        }
        let t = Instant::now();
        let p = Property::read(f).unwrap_or_else(|e| panic!("{e}"));
        let secs = t.elapsed().as_secs_f64();
        if secs > slowest.0 {
            slowest = (secs, f.clone());
        }
        check_consistent(&p, &what);
        total_cases += p.cases.len();

        let rel = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        let expected = if rel.starts_with("acasxu") {
            Some((5, 5))
        } else if rel.starts_with("mnistfc") || rel.starts_with("eran/specs/mnist") || rel.starts_with("verivital") {
            Some((784, 10))
        } else if rel.starts_with("cifar10_resnet") || rel.starts_with("marabou-cifar10") || rel.starts_with("oval21") {
            Some((3072, 10))
        } else {
            None
        };
        if let Some((n, m)) = expected {
            assert_eq!((p.num_inputs, p.num_outputs), (n, m), "{what}");
        }
        if n_of_images(&rel) {
            // Image classification: one box around the image, one case per other class.
            assert_eq!(p.input_boxes().len(), 1, "{what}");
            assert!(p.cases.iter().all(|c| !c.atoms.is_empty()), "{what}");
        }

        // Independent cross-checks where the file is simple enough.
        let text = std::fs::read_to_string(f).unwrap();
        if let Some((lo, hi)) = simple_box(&text, p.num_inputs) {
            let boxes = p.input_boxes();
            assert_eq!(boxes.len(), 1, "{what}");
            assert_eq!((&boxes[0].0, &boxes[0].1), (&lo, &hi), "{what}: box differs from the simple reading");
        }
        let texts = output_atom_texts(&text);
        assert!(p.atoms.len() <= texts.len(), "{what}");
        for a in &p.atoms {
            assert!(texts.contains(&a.text), "{what}: atom text {:?} is not in the file", a.text);
        }
    }
    println!(
        "parsed {} VNN-LIB files ({} cases in all); slowest {:.2} ms: {}",
        files.len(),
        total_cases,
        slowest.0 * 1e3,
        slowest.1.display()
    );
}

fn n_of_images(rel: &str) -> bool {
    ["mnistfc", "eran", "verivital", "cifar10_resnet", "oval21"].iter().any(|d| rel.starts_with(d))
}

#[test]
fn mnistfc_prop_0() {
    let Some(dir) = benchmarks_dir() else { return };
    let path = dir.join("mnistfc/prop_0_0.03.vnnlib");
    let text = std::fs::read_to_string(&path).unwrap();
    let label: usize = text.split("label: ").nth(1).unwrap().split('.').next().unwrap().trim().parse().unwrap();
    assert_eq!(label, 8);
    let p = Property::read(&path).unwrap();
    assert_eq!((p.num_inputs, p.num_outputs), (784, 10));
    assert_eq!(p.atoms.len(), 9);
    let others: Vec<usize> = (0..10).filter(|&j| j != label).collect();
    for (a, &j) in p.atoms.iter().zip(&others) {
        // (>= Y_j Y_8): Y_8 - Y_j <= 0, so +1 at the label and -1 at the other class.
        assert_eq!(a.c, sub(&e(label, 10), &e(j, 10)), "{a:?}");
        assert_eq!(a.d, 0.0);
        assert_eq!(a.text, format!("(>= Y_{j} Y_{label})"));
    }
    assert_eq!(p.atoms[0].line, text.lines().position(|l| l.contains("(>= Y_0 Y_8)")).unwrap() + 1);
    assert_eq!(p.cases.len(), 9);
    for (k, c) in p.cases.iter().enumerate() {
        assert_eq!(c.atoms, vec![k]);
    }
    let boxes = p.input_boxes();
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0].2, (0..9).collect::<Vec<_>>());
    assert_eq!((boxes[0].0[0], boxes[0].1[0]), (0.0, 0.029999999329447746));
    // The label's logit is the largest: safe for every case. Class 3 ahead: case 2 (Y_3) holds.
    let mut y = vec![0.0; 10];
    y[label] = 1.0;
    assert!((0..9).all(|k| !p.case_holds(k, &y)));
    y[3] = 2.0;
    assert!(p.case_holds(3, &y) && !p.case_holds(2, &y));

    // Parsing a 784-input file must take well under 10 ms.
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            Property::parse(&text).unwrap();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!("mnistfc prop_0 ({} bytes) parses in {:.3} ms", text.len(), best * 1e3);
    assert!(best < 0.010, "parsing took {:.3} ms", best * 1e3);
}

#[test]
fn largest_benchmark_file_parses_fast() {
    let Some(dir) = benchmarks_dir() else { return };
    let files = vnnlib_files(&dir);
    let largest = files.iter().max_by_key(|f| std::fs::metadata(f).unwrap().len()).unwrap();
    let text = std::fs::read_to_string(largest).unwrap();
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            Property::parse(&text).unwrap();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!("largest file {} ({} bytes) parses in {:.3} ms", largest.display(), text.len(), best * 1e3);
    assert!(best < 0.050, "parsing took {:.3} ms", best * 1e3);
}

#[test]
fn acasxu_disjunctions() {
    let Some(dir) = benchmarks_dir() else { return };
    let read = |n: u32| Property::read(&dir.join(format!("acasxu/prop_{n}.vnnlib"))).unwrap();

    // prop_1: Y_0 >= 3.99... is unsafe, i.e. -Y_0 <= -3.99...
    let p = read(1);
    assert_eq!((p.num_inputs, p.num_outputs, p.cases.len(), p.atoms.len()), (5, 5, 1, 1));
    assert_eq!(p.atoms[0].c, vec![-1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(p.atoms[0].d, -3.991125645861615);
    assert_eq!(p.cases[0].lo, vec![0.6, -0.5, -0.5, 0.45, -0.5]);
    assert_eq!(p.cases[0].hi, vec![0.679857769, 0.5, 0.5, 0.5, -0.45]);

    // prop_7: (or (and 3 atoms) (and 3 atoms)).
    let p = read(7);
    assert_eq!(p.cases.len(), 2);
    assert_eq!(p.atoms.len(), 6);
    assert_eq!(p.cases[0].atoms, vec![0, 1, 2]);
    assert_eq!(p.cases[1].atoms, vec![3, 4, 5]);
    assert_eq!(p.atoms[0].text, "(<= Y_3 Y_0)");
    assert_eq!(p.atoms[0].c, sub(&e(3, 5), &e(0, 5)));
    assert_eq!(p.atoms[5].c, sub(&e(4, 5), &e(2, 5)));
    assert_eq!(p.input_boxes().len(), 1);
    // Y_3 smallest among Y_0..Y_3: case 0 holds.
    assert!(p.case_holds(0, &[1.0, 1.0, 1.0, 0.0, 2.0]));
    assert!(!p.case_holds(1, &[1.0, 1.0, 1.0, 0.0, 2.0]));

    // prop_6: two input boxes (in one assert) times four output alternatives.
    let p = read(6);
    assert_eq!(p.cases.len(), 8);
    assert_eq!(p.atoms.len(), 4);
    let boxes = p.input_boxes();
    assert_eq!(boxes.len(), 2);
    assert_eq!(boxes[0].2, vec![0, 1, 2, 3]);
    assert_eq!(boxes[1].2, vec![4, 5, 6, 7]);
    assert_eq!((boxes[0].0[1], boxes[0].1[1]), (0.11140846, 0.499999896));
    assert_eq!((boxes[1].0[1], boxes[1].1[1]), (-0.499999896, -0.11140846));
    for k in 0..8 {
        assert_eq!(p.cases[k].atoms, vec![k % 4]);
    }
}

#[test]
fn test_benchmark_mixes_inputs_and_outputs_in_one_conjunction() {
    let Some(dir) = benchmarks_dir() else { return };
    let p = Property::read(&dir.join("test/test_small.vnnlib")).unwrap();
    assert_eq!((p.num_inputs, p.num_outputs, p.cases.len(), p.atoms.len()), (1, 1, 1, 1));
    assert_eq!((p.cases[0].lo.clone(), p.cases[0].hi.clone()), (vec![-1.0], vec![1.0]));
    assert_eq!((p.atoms[0].c.clone(), p.atoms[0].d), (vec![-1.0], -100.0));
    assert!(p.case_holds(0, &[100.0]) && !p.case_holds(0, &[99.0]));
}

// ---------------------------------------------------------------------------------------------
// Syntax forms

#[test]
fn numeric_literal_forms() {
    let p = parse(
        "(declare-const X_0 Real)(declare-const X_1 Real)(declare-const X_2 Real)(declare-const X_3 Real)
         (declare-const Y_0 Real)
         (assert (>= X_0 1e-05)) (assert (<= X_0 5.))
         (assert (>= X_1 -.5)) (assert (<= X_1 .5))
         (assert (>= X_2 (- 3))) (assert (<= X_2 +2E1))
         (assert (>= X_3 -1.5e+2)) (assert (<= X_3 0))
         (assert (<= Y_0 -0.0))",
    );
    assert_eq!(p.cases[0].lo, vec![1e-5, -0.5, -3.0, -150.0]);
    assert_eq!(p.cases[0].hi, vec![5.0, 0.5, 20.0, 0.0]);
    assert_eq!((p.atoms[0].c.clone(), p.atoms[0].d), (vec![1.0], 0.0));
    assert!(p.atoms[0].d.is_sign_positive());
}

#[test]
fn input_bounds_in_every_orientation() {
    let p = with_box(
        "(assert (<= 0.25 X_0))      ; lower
         (assert (>= 0.75 X_0))      ; upper
         (assert (< X_1 0.5))        ; strict: closure
         (assert (> X_1 0.125))
         (assert (<= (- X_1) -0.2))  ; X_1 >= 0.2 (tighter)
         (assert (<= X_1 0.9))       ; looser, ignored
         (assert (<= Y_0 0))",
    );
    assert_eq!(p.cases[0].lo, vec![0.25, 0.2]);
    assert_eq!(p.cases[0].hi, vec![0.75, 0.5]);

    let p = with_box("(assert (= X_1 0.5)) (assert (<= Y_0 0))");
    assert_eq!((p.cases[0].lo[1], p.cases[0].hi[1]), (0.5, 0.5));

    // Scaled inputs: directed rounding never shrinks the box.
    let p =
        with_box("(assert (<= (* 2 X_0) 1)) (assert (<= (* 3 X_1) 1)) (assert (>= (* -3 X_1) -1)) (assert (<= Y_0 0))");
    assert_eq!(p.cases[0].hi[0], 0.5);
    let h = p.cases[0].hi[1];
    assert!(h.mul_add(3.0, -1.0) >= 0.0 && h <= 1.0 / 3.0 + 1e-16, "{h}");
    let p = with_box("(assert (>= (* -3 X_1) -1)) (assert (<= (* 0.5 (- (* 3 X_0) 1)) -0.4)) (assert (<= Y_0 0))");
    let h = p.cases[0].hi[1];
    assert!(h.mul_add(3.0, -1.0) >= 0.0, "{h}");
    // 0.5 * (3 x - 1) <= -0.4  <=>  x <= 0.2 / 3 (rounded up) ... and below the box's upper bound.
    let h0 = p.cases[0].hi[0];
    assert!((0.2 / 3.0 - 1e-15..=0.2 / 3.0 + 1e-15).contains(&h0), "{h0}");
    let p = with_box("(assert (<= (* -3 X_1) -1)) (assert (<= Y_0 0))");
    let l = p.cases[0].lo[1];
    assert!(l.mul_add(3.0, -1.0) <= 0.0 && l >= 1.0 / 3.0 - 1e-16, "{l}");
}

#[test]
fn output_atoms_are_normalized_to_the_unsafe_side() {
    let p = parse(&format!(
        "(declare-const X_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))
         {}
         (assert (or
           (>= Y_0 Y_3)                         ; Y_3 - Y_0 <= 0
           (<= Y_3 Y_0)                         ; the same atom: deduplicated
           (<= Y_0 3.5)
           (>= Y_0 3.5)
           (<= (+ Y_0 (* 2 Y_1)) (- Y_2 1))     ; Y_0 + 2 Y_1 - Y_2 <= -1
           (> (- Y_0 Y_1 Y_2) (* 0.5 Y_1 -2))  ; -Y_0 + Y_1 + Y_2 - Y_1 <= 0 -> -Y_0 + Y_2 <= 0 (closure)
           (< (+ Y_1 1 2) (- 4))                ; Y_1 <= -7
         ))",
        (0..4).map(|j| format!("(declare-const Y_{j} Real)")).collect::<String>()
    ));
    let want: Vec<(Vec<f64>, f64)> = vec![
        (vec![-1.0, 0.0, 0.0, 1.0], 0.0),
        (vec![1.0, 0.0, 0.0, 0.0], 3.5),
        (vec![-1.0, 0.0, 0.0, 0.0], -3.5),
        (vec![1.0, 2.0, -1.0, 0.0], -1.0),
        (vec![-1.0, 0.0, 1.0, 0.0], 0.0),
        (vec![0.0, 1.0, 0.0, 0.0], -7.0),
    ];
    let got: Vec<(Vec<f64>, f64)> = p.atoms.iter().map(|a| (a.c.clone(), a.d)).collect();
    assert_eq!(got, want);
    assert_eq!(p.atoms[0].text, "(>= Y_0 Y_3)");
    assert_eq!(p.atoms[3].text, "(<= (+ Y_0 (* 2 Y_1)) (- Y_2 1))");
    assert_eq!(p.atoms.iter().map(|a| a.line).collect::<Vec<_>>(), vec![4, 6, 7, 8, 9, 10]);
    assert_eq!(p.cases.len(), 7);
    assert_eq!(
        p.cases.iter().map(|c| c.atoms.clone()).collect::<Vec<_>>(),
        vec![vec![0], vec![0], vec![1], vec![2], vec![3], vec![4], vec![5]]
    );
    assert!(p.case_holds(2, &[3.5, 0.0, 0.0, 0.0]) && !p.case_holds(2, &[3.6, 0.0, 0.0, 0.0]));
    assert!(p.atoms[3].holds(&[0.0, 0.0, 1.0, 0.0]) && !p.atoms[3].holds(&[0.0, 0.0, 0.5, 0.0]));
    assert_eq!(p.atoms[3].value(&[1.0, 1.0, 1.0, 1.0]), 2.0);
}

#[test]
fn conjunctions_distribute_over_disjunctions() {
    // (A or B) and (C or D) -> AC, AD, BC, BD.
    let p = with_box("(assert (and (or (<= Y_0 1) (<= Y_0 2)) (or (<= Y_1 3) (<= Y_1 4))))");
    assert_eq!(p.atoms.iter().map(|a| a.d).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 4.0]);
    let cases: Vec<Vec<usize>> = p.cases.iter().map(|c| c.atoms.clone()).collect();
    assert_eq!(cases, vec![vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3]]);
    // The same across separate asserts, with a nested and inside or.
    let p = with_box("(assert (or (<= Y_0 1) (and (<= Y_0 2) (<= Y_1 5))))\n(assert (or (<= Y_1 3) (<= Y_1 4)))");
    let cases: Vec<Vec<usize>> = p.cases.iter().map(|c| c.atoms.clone()).collect();
    assert_eq!(cases, vec![vec![0, 3], vec![0, 4], vec![1, 2, 3], vec![1, 2, 4]]);
    // true / false / empty and / constant atoms.
    let p = with_box("(assert (or false (and) (<= Y_0 1) (< 1 1) (<= 1 1)))\n(assert true)\n(assert (<= 2 3))");
    let cases: Vec<Vec<usize>> = p.cases.iter().map(|c| c.atoms.clone()).collect();
    assert_eq!(cases, vec![vec![], vec![0], vec![]]);
    assert!(p.case_holds(0, &[1e9, 1e9]));
    // Repeated atoms within a case collapse.
    let p = with_box("(assert (and (<= Y_0 1) (<= Y_0 1.0) (<= Y_1 Y_0) (< Y_1 Y_0)))");
    assert_eq!(p.atoms.len(), 2);
    assert_eq!(p.cases[0].atoms, vec![0, 1]);
}

#[test]
fn disjunctive_input_boxes_and_empty_cases() {
    let p = parse(&format!(
        "{DECL}(assert (>= X_1 0)) (assert (<= X_1 1))
         (assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))
                     (and (>= X_0 2) (<= X_0 3) (<= Y_1 0))
                     (and (>= X_0 0) (<= X_0 1) (<= Y_1 0))
                     (and (>= X_0 5) (<= X_0 4) (<= Y_0 7))))  ; empty: dropped"
    ));
    assert_eq!(p.cases.len(), 3);
    assert_eq!(p.atoms.len(), 3, "the atom of the dropped case stays listed");
    let boxes = p.input_boxes();
    assert_eq!(boxes.len(), 2);
    assert_eq!(
        (boxes[0].0.clone(), boxes[0].1.clone(), boxes[0].2.clone()),
        (vec![0.0, 0.0], vec![1.0, 1.0], vec![0, 2])
    );
    assert_eq!((boxes[1].0.clone(), boxes[1].1.clone(), boxes[1].2.clone()), (vec![2.0, 0.0], vec![3.0, 1.0], vec![1]));
    // A degenerate box (lo == hi) is kept.
    let p = with_box("(assert (<= X_0 0)) (assert (<= Y_0 0))");
    assert_eq!((p.cases[0].lo[0], p.cases[0].hi[0]), (0.0, 0.0));
    assert!(p.cases[0].hi[0].is_sign_positive(), "bounds are normalized to +0");
}

#[test]
fn whitespace_comments_and_commands() {
    let text = "; header comment\r\n(set-logic QF_LRA)\r\n(set-info :status unknown)\r\n\
                (declare-fun Y_0 () Real) ; outputs first\r\n\t(declare-const X_1 Real)(declare-const X_0 Real)\r\n\
                (assert\t(and (<= X_0 1) ; inside\r\n (>= X_0 0)(<= X_1 1)(>= X_1 0)\r\n\r\n (<= Y_0\r\n 0)))\r\n\
                (check-sat)\r\n(get-model)\r\n(exit)\r\n";
    let p = parse(text);
    assert_eq!((p.num_inputs, p.num_outputs, p.cases.len()), (2, 1, 1));
    assert_eq!(p.atoms[0].text, "(<= Y_0 0)");
    assert_eq!(p.atoms[0].line, 9);
}

// ---------------------------------------------------------------------------------------------
// Errors

/// `DECL + BOX + body` must fail with `want` in the message and at `line`.
fn check_err(body: &str, line: Option<usize>, want: &str) {
    let text = format!("{DECL}{BOX}{body}");
    let err = parse_err(&text);
    let msg = err.to_string();
    assert!(msg.contains(want), "{body:?}: message {msg:?} lacks {want:?}");
    assert_eq!(err.line(), line, "{body:?}: {msg}");
    if let Some(l) = line {
        assert!(msg.starts_with(&format!("line {l}: ")), "{msg}");
    }
}

#[test]
fn errors_carry_line_numbers() {
    let deep = format!("(assert (<= Y_0 {}1{}))", "(+ ".repeat(300), ")".repeat(300));
    let cases: &[(&str, usize, &str)] = &[
        ("(assert (<= Y_0 1)))", 9, "unexpected ')'"),
        ("\n(assert (<= Y_0 1)", 10, "unclosed '('"),
        ("(assert (or (<= Y_0 1)\n  (and (<= Y_1 1)\n", 10, "unclosed '('"),
        ("(assert (foo Y_0 1))", 9, "unknown function 'foo'"),
        ("(assert (<= (foo Y_0) 1))", 9, "unknown function 'foo'"),
        ("(assert (<= Y_0 1.2.3))", 9, "bad number '1.2.3'"),
        ("(assert (<= Y_0 1e))", 9, "bad number '1e'"),
        ("(assert (<= Y_0 -))", 9, "unknown symbol '-'"),
        ("(assert (<= Y_0 1e999))", 9, "out of range"),
        ("(assert (<= Y_0 (* 1e300 1e300)))", 9, "overflow"),
        ("(assert (<= Y_0 inf))", 9, "unknown symbol 'inf'"),
        ("(assert (<= Y_5 1))", 9, "undeclared variable 'Y_5'"),
        ("(assert (<= X_2 1))", 9, "undeclared variable 'X_2'"),
        ("(assert (<= Y_0 X_01))", 9, "bad variable name 'X_01'"),
        ("(assert (<= Y_0 X_99999999999999999999999))", 9, "bad variable name"),
        ("(assert (<= Y_0 foo))", 9, "unknown symbol 'foo'"),
        ("(assert (or (<= Y_0 1)\n  (<= X_0 Y_1)))", 10, "mixes inputs and outputs (X_0 and Y_1)"),
        ("(assert (<= (+ X_0 X_1) 1))", 9, "linear constraints over several inputs are not supported yet"),
        ("(assert (<= X_0 (- 1 X_1)))", 9, "linear constraints over several inputs are not supported yet"),
        ("(assert (<= (* Y_0 Y_1) 1))", 9, "nonlinear"),
        ("(assert (= Y_0 1))", 9, "'=' over outputs"),
        ("(assert (not (<= Y_0 1)))", 9, "'not' is not supported"),
        ("(assert (=> (<= Y_0 1) (<= Y_1 1)))", 9, "'=>' is not supported"),
        ("(assert (<= Y_0 (/ 1 3)))", 9, "'/' is not supported"),
        ("(assert (<= Y_0 1 2))", 9, "'<=' takes 2 arguments, found 3"),
        ("(assert (<= Y_0))", 9, "'<=' takes 2 arguments, found 1"),
        ("(assert (<= (+) 1))", 9, "'+' needs at least 1 argument"),
        ("(assert (<= (- ) 1))", 9, "'-' needs at least 1 argument"),
        ("(assert (<= Y_0 1) (<= Y_1 2))", 9, "'assert' takes one formula, found 2"),
        ("(assert)", 9, "'assert' takes one formula, found 0"),
        ("(assert Y_0)", 9, "expected a formula"),
        ("(assert ())", 9, "empty list"),
        ("(assert ((<= Y_0 1)))", 9, "expected a function name"),
        ("(assert (<= Y_0 \"a\"))", 9, "string literals"),
        ("(assert (<= Y_0 |a b|))", 9, "quoted symbols"),
        ("foo", 9, "unexpected 'foo' outside parentheses"),
        ("()", 9, "empty list"),
        ("(frobnicate 1)", 9, "unknown command 'frobnicate'"),
        ("(define-fun f () Real 1)", 9, "command 'define-fun' is not supported"),
        ("(declare-const Z Real)", 9, "only inputs X_<i> and outputs Y_<j>"),
        ("(declare-const X_0 Real)", 9, "X_0 is declared twice (also at line 1)"),
        ("(declare-const X_5 Real)", 9, "X_5 is declared but X_2 is not"),
        ("(declare-const Y_2 Int)", 9, "sort 'Int' is not supported"),
        ("(declare-const Y_2 Float)", 9, "unknown sort 'Float'"),
        ("(declare-const X_2)", 9, "malformed declare-const"),
        ("(declare-fun X_2 (Real) Real)", 9, "declare-fun with parameters"),
        (&deep, 9, "nested more than"),
    ];
    for &(body, line, want) in cases {
        check_err(body, Some(line), want);
    }
}

#[test]
fn errors_about_the_whole_property() {
    // Missing bounds name the input.
    let text = format!("{DECL}(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= Y_0 0))");
    let msg = parse_err(&text).to_string();
    assert_eq!(msg, "X_1 (declared at line 2) has no upper bound");
    let text = format!("{DECL}(assert (<= X_0 1))(assert (<= X_1 1))(assert (<= Y_0 0))");
    assert_eq!(parse_err(&text).to_string(), "X_0 (declared at line 1) has no lower bound");
    let text = format!(
        "{DECL}(assert (>= X_1 0))(assert (<= X_1 1))(assert (or (and (>= X_0 0) (<= X_0 1)) (>= X_0 0)))\
         (assert (<= Y_0 0))"
    );
    assert_eq!(parse_err(&text).to_string(), "X_0 (declared at line 1) has no upper bound in case 2 of 2");
}

#[test]
fn empty_and_degenerate_properties() {
    // A box without output atoms: every input is a counterexample (valid).
    let p = with_box("");
    assert_eq!((p.cases.len(), p.atoms.len()), (1, 0));
    assert!(p.case_holds(0, &[0.0, 0.0]));

    let msg = parse_err(&format!("{DECL}{BOX}(assert (>= X_0 2))(assert (<= Y_0 0))")).to_string();
    assert!(msg.contains("every one of the 1 case(s) has an empty input box"), "{msg}");
    let msg = parse_err(&format!("{DECL}{BOX}(assert (or (>= X_0 2) (< 1 0)))")).to_string();
    assert!(msg.contains("every one of the 1 case(s)"), "{msg}");
    let msg = parse_err(&format!("{DECL}{BOX}(assert false)")).to_string();
    assert!(msg.contains("unsatisfiable"), "{msg}");
    let msg = parse_err(&format!("{DECL}{BOX}(assert (or))")).to_string();
    assert!(msg.contains("unsatisfiable"), "{msg}");
    assert!(parse_err("").to_string().contains("no inputs declared"));
    assert!(parse_err("; nothing\n").to_string().contains("no inputs declared"));
    assert!(parse_err("(declare-const X_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))")
        .to_string()
        .contains("no outputs declared"));
    assert!(parse_err("(declare-const X_1 Real)(declare-const Y_0 Real)")
        .to_string()
        .contains("X_1 is declared but X_0 is not"));
}

#[test]
fn dnf_blow_up_is_refused() {
    // 2^16 cases are fine; the 17th binary disjunction (line 9 + 16) exceeds MAX_CASES.
    const { assert!(1 << 16 <= MAX_CASES && 1 << 17 > MAX_CASES) };
    let ok = "(assert (or (<= Y_0 1) (<= Y_1 2)))\n".repeat(16);
    assert_eq!(with_box(&ok).cases.len(), 1 << 16);
    let body = "(assert (or (<= Y_0 1) (<= Y_1 2)))\n".repeat(17);
    check_err(&body, Some(25), "more than 100000");
    // The same inside one formula.
    let body = format!("(assert (and\n{}))", "(or (<= Y_0 1) (<= Y_1 2) (<= Y_0 3) (<= Y_1 4))\n".repeat(9));
    check_err(&body, Some(9), "more than 100000");
}

#[test]
fn read_names_the_file() {
    let dir = std::env::temp_dir().join(format!("lipcert-vnnlib-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.vnnlib");
    std::fs::write(&good, format!("{DECL}{BOX}(assert (<= Y_0 Y_1))")).unwrap();
    assert_eq!(Property::read(&good).unwrap().atoms.len(), 1);

    let bad = dir.join("bad.vnnlib");
    std::fs::write(&bad, format!("{DECL}{BOX}\n(assert (<= X_0 Y_1))")).unwrap();
    let msg = Property::read(&bad).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}:10: constraint mixes", bad.display())), "{msg}");

    let bad = dir.join("missing-bound.vnnlib");
    std::fs::write(&bad, format!("{DECL}(assert (<= Y_0 Y_1))")).unwrap();
    let msg = Property::read(&bad).unwrap_err().to_string();
    assert_eq!(msg, format!("{}: X_0 (declared at line 1) has no lower bound", bad.display()));

    let missing = dir.join("no-such-file.vnnlib");
    let err = Property::read(&missing).unwrap_err();
    assert!(matches!(err, VnnlibError::Io { .. }));
    assert!(err.to_string().starts_with(&missing.display().to_string()), "{err}");

    let gz = dir.join("prop.vnnlib.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let msg = Property::read(&gz).unwrap_err().to_string();
    assert!(msg.contains("gzip") && msg.contains("prop.vnnlib.gz"), "{msg}");

    // Non-UTF-8 bytes in a comment are fine; in a token they give an error, not a panic.
    let latin1 = dir.join("latin1.vnnlib");
    let mut bytes = format!("; caf\u{e9}\n{DECL}{BOX}").into_bytes();
    bytes.extend_from_slice(b"; \xe9\xff\n(assert (<= Y_0 \xff))");
    std::fs::write(&latin1, &bytes).unwrap();
    let msg = Property::read(&latin1).unwrap_err().to_string();
    assert!(msg.contains(":11: unknown symbol"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: no input makes the reader panic, and every error is one line.

const SAMPLE: &str = "; acasxu-like\n(declare-const X_0 Real)\n(declare-const X_1 Real)\n\
(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n\
(assert (<= X_0 0.679857769))\n(assert (>= X_0 -0.328422877))\n\
(assert (or\n    (and (<= X_1 0.5) (>= X_1 1e-05) (<= Y_2 Y_0) (<= Y_2 Y_1))\n\
    (and (<= X_1 -.5) (>= X_1 -1.5) (< (+ Y_0 (* 2 Y_1)) (- Y_2 3)))\n))\n(assert (> Y_0 (- 3.5)))\n";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn must_not_panic(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Err(e) = Property::parse(&text) {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    }
}

fn fuzz(text: &str, mutations: usize, seed: u64) {
    let src = text.as_bytes();
    let pieces: &[&[u8]] = &[
        b"(",
        b")",
        b"((",
        b"))",
        b" ",
        b"\n",
        b";",
        b"-",
        b"+",
        b"*",
        b"/",
        b".",
        b"e",
        b"e999",
        b"0",
        b"9",
        b"X_",
        b"Y_",
        b"X_0",
        b"Y_9",
        b"X_99999999999999999999",
        b"or",
        b"and",
        b"<=",
        b">=",
        b"=",
        b"not",
        b"(or ",
        b"(and ",
        b"(assert ",
        b"(declare-const X_7 Real)",
        b"1e308",
        b"\"",
        b"|",
        b"\xff",
        b"()",
    ];
    let mut rng = Rng(seed);
    // Truncation at evenly spread points (every point for small texts).
    let step = (src.len() / 600).max(1);
    for cut in (0..=src.len()).step_by(step) {
        must_not_panic(&src[..cut]);
        must_not_panic(&src[cut..]);
    }
    for _ in 0..mutations {
        let mut t = src.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(t.len() + 1);
            match rng.below(4) {
                0 if at < t.len() => {
                    let len = 1 + rng.below(8.min(t.len() - at));
                    t.drain(at..at + len);
                }
                1 => {
                    let p = pieces[rng.below(pieces.len())];
                    t.splice(at..at, p.iter().copied());
                }
                2 if at < t.len() => t[at] = pieces[rng.below(pieces.len())][0],
                _ => {
                    // Duplicate a span elsewhere.
                    let from = rng.below(t.len().max(1));
                    let len = rng.below(40).min(t.len() - from.min(t.len()));
                    let span: Vec<u8> = t[from..from + len].to_vec();
                    let at = at.min(t.len());
                    t.splice(at..at, span);
                }
            }
        }
        must_not_panic(&t);
    }
}

#[test]
fn fuzz_sample_never_panics() {
    parse(SAMPLE);
    fuzz(SAMPLE, 20_000, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn fuzz_benchmark_files_never_panic() {
    let Some(dir) = benchmarks_dir() else { return };
    for (name, mutations) in [
        ("test/test_small.vnnlib", 3000),
        ("acasxu/prop_6.vnnlib", 3000),
        ("acasxu/prop_7.vnnlib", 3000),
        ("mnistfc/prop_0_0.03.vnnlib", 400),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        fuzz(&text, mutations, name.len() as u64 * 0x2545_f491_4f6c_dd1d);
    }
}
