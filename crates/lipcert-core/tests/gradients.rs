//! Gradients against central finite differences on random networks that use every node type.

use lipcert_core::random::random_network;
use lipcert_core::{Network, Op, Rng};
use proptest::prelude::*;

const H: f64 = 1e-6;

fn random_input(net: &Network, rng: &mut Rng) -> Vec<f64> {
    (0..net.input_len()).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// Max |a - b| / max(1, |b|) over the elements.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn jacobian_matches_finite_differences(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let net = random_network(&mut rng);
        let x = random_input(&net, &mut rng);
        let (y, jac) = net.jacobian(&x).unwrap();
        prop_assert!(rel_err(&y, &net.forward(&x, 1).unwrap()) < 1e-12);
        let (m, n) = (net.output_len(), net.input_len());
        let mut fd = vec![0.0; m * n];
        for j in 0..n {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += H;
            xm[j] -= H;
            let (yp, ym) = (net.forward(&xp, 1).unwrap(), net.forward(&xm, 1).unwrap());
            for i in 0..m {
                fd[i * n + j] = (yp[i] - ym[i]) / (2.0 * H);
            }
        }
        let err = rel_err(&jac, &fd);
        prop_assert!(err < 1e-5, "Jacobian differs from finite differences by {err}");
    }

    #[test]
    fn batched_vjp_matches_per_sample_jacobians(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let net = random_network(&mut rng);
        let batch = 3;
        let x: Vec<f64> = (0..batch).flat_map(|_| random_input(&net, &mut rng)).collect();
        let seed_v: Vec<f64> = (0..batch * net.output_len()).map(|_| rng.normal()).collect();
        let trace = net.trace(&x, batch).unwrap();
        let g = net.vjp(&trace, &seed_v, false).unwrap().input;
        let (m, n) = (net.output_len(), net.input_len());
        for s in 0..batch {
            let (_, jac) = net.jacobian(&x[s * n..(s + 1) * n]).unwrap();
            let want: Vec<f64> = (0..n).map(|j| (0..m).map(|i| seed_v[s * m + i] * jac[i * n + j]).sum()).collect();
            prop_assert!(rel_err(&g[s * n..(s + 1) * n], &want) < 1e-12);
        }
    }

    #[test]
    fn dense_parameter_gradients_match_finite_differences(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let net = random_network(&mut rng);
        let batch = 2;
        let x: Vec<f64> = (0..batch).flat_map(|_| random_input(&net, &mut rng)).collect();
        let c: Vec<f64> = (0..batch * net.output_len()).map(|_| rng.normal()).collect();
        // Loss L = sum over the batch of c . f(x).
        let loss = |net: &Network| -> f64 { net.forward(&x, batch).unwrap().iter().zip(&c).map(|(a, b)| a * b).sum() };
        let grads = net.vjp(&net.trace(&x, batch).unwrap(), &c, true).unwrap();
        for (k, node) in net.nodes.iter().enumerate() {
            let Op::Dense(d) = &node.op else { prop_assert!(grads.dense[k].is_none()); continue };
            let g = grads.dense[k].as_ref().unwrap();
            // A few random weights and biases of every dense node.
            for _ in 0..4 {
                let i = rng.below(d.weight.len());
                let j = rng.below(d.bias.len());
                for (param, analytic) in [(0usize, g.weight[i]), (1, g.bias[j])] {
                    let perturbed = |delta: f64| {
                        let mut p = net.clone();
                        let Op::Dense(dd) = &mut p.nodes[k].op else { unreachable!() };
                        if param == 0 { dd.weight[i] += delta } else { dd.bias[j] += delta }
                        loss(&p)
                    };
                    let fd = (perturbed(H) - perturbed(-H)) / (2.0 * H);
                    prop_assert!((fd - analytic).abs() <= 1e-5 * fd.abs().max(1.0), "node {} param {param}: fd {fd} vs {analytic}", node.name);
                }
            }
        }
    }
}
