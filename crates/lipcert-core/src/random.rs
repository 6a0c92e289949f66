//! Random networks that use every node type, for property tests across the workspace
//! (gradients, export round trips, and later the soundness of bounds).

use crate::graph::{Activation, Conv2d, Dense, Network, NetworkBuilder, Op, Pool2d, ValueId};
use crate::rng::Rng;
use crate::GraphError;

/// Slopes are exact in f32, as ONNX stores activation attributes in f32.
pub const ALL_ACTIVATIONS: [Activation; 7] = [
    Activation::Relu,
    Activation::LeakyRelu { alpha: 0.125 },
    Activation::Elu { alpha: 0.75 },
    Activation::Gelu { tanh_approx: false },
    Activation::Gelu { tanh_approx: true },
    Activation::Sigmoid,
    Activation::Tanh,
];

fn random_conv(rng: &mut Rng, cin: usize, cout: usize, groups: usize, same: bool) -> Op {
    let k = if same { 3 } else { 1 + rng.below(3) };
    let (stride, dilation, pads) = if same {
        ([1, 1], [1, 1], [1, 1, 1, 1])
    } else {
        (
            [1 + rng.below(2), 1 + rng.below(2)],
            [1 + rng.below(2), 1],
            [rng.below(2), rng.below(3), rng.below(3), rng.below(2)],
        )
    };
    let fan_in = (cin / groups * k * k) as f64;
    Op::Conv2d(Conv2d {
        weight: rng.normals(cout * cin / groups * k * k, 1.5 / fan_in.sqrt()),
        bias: rng.normals(cout, 0.3),
        out_channels: cout,
        in_channels: cin,
        kernel: [k, k],
        stride,
        pads,
        dilation,
        groups,
    })
}

fn random_dense(rng: &mut Rng, fan_in: usize, out: usize) -> Op {
    Op::Dense(Dense {
        weight: rng.normals(out * fan_in, 1.5 / (fan_in as f64).sqrt()),
        bias: rng.normals(out, 0.3),
        out_features: out,
        in_features: fan_in,
    })
}

/// A random network on `[1, 2, h, w]` inputs (h, w in 7..=10) with every operator of the IR:
/// affine, convolutions (stride, dilation, asymmetric padding, groups), every activation,
/// a residual add, padding, average and max pooling, a transpose, a reshape and dense layers.
pub fn random_network(rng: &mut Rng) -> Network {
    let (h, w) = (7 + rng.below(4), 7 + rng.below(4));
    // Every activation appears once, in a random order.
    let mut acts = ALL_ACTIVATIONS.to_vec();
    for i in (1..acts.len()).rev() {
        acts.swap(i, rng.below(i + 1));
    }
    let mut b = NetworkBuilder::new("x", vec![1, 2, h, w]);
    let build = |b: &mut NetworkBuilder, rng: &mut Rng| -> Result<ValueId, GraphError> {
        let n = 2 * h * w;
        let x = b.push("affine", Op::Affine { scale: rng.normals(n, 1.0), shift: rng.normals(n, 0.3) }, &[0])?;
        let groups = 1 + rng.below(2);
        let x = b.push("conv1", random_conv(rng, 2, 4, groups, false), &[x])?;
        let a1 = b.push("act1", Op::Activation(acts[0]), &[x])?;
        let x = b.push("conv2", random_conv(rng, 4, 4, 1, true), &[a1])?;
        let x = b.push("act2", Op::Activation(acts[1]), &[x])?;
        let x = b.push("residual", Op::Add, &[a1, x])?;
        let rank = 4;
        let mut pads = vec![0; 2 * rank];
        pads[2] = rng.below(2);
        pads[3] = 1;
        pads[rank + 3] = rng.below(2);
        let x = b.push("pad", Op::Pad { pads, value: 0.0 }, &[x])?;
        let pool = |stride, pad| Pool2d {
            kernel: [2, 2],
            stride: [stride, stride],
            pads: [pad, 0, 0, pad],
            dilation: [1, 1],
            count_include_pad: false,
        };
        let x = b.push("avgpool", Op::AvgPool(pool(1, 1)), &[x])?;
        let x = b.push("maxpool", Op::MaxPool(pool(1 + rng.below(2), 0)), &[x])?;
        let x = b.push("act3", Op::Activation(acts[2]), &[x])?;
        let x = b.push("nhwc", Op::Transpose { perm: vec![0, 2, 3, 1] }, &[x])?;
        let len: usize = b.shape(x).iter().product();
        let x = b.push("flatten", Op::Reshape { shape: vec![1, len] }, &[x])?;
        let mut x = b.push("fc1", random_dense(rng, len, 8), &[x])?;
        for (i, act) in acts[3..].iter().enumerate() {
            x = b.push(format!("act{}", i + 4), Op::Activation(*act), &[x])?;
            x = b.push(format!("fc{}", i + 2), random_dense(rng, 8, 8), &[x])?;
        }
        b.push("out", random_dense(rng, 8, 3), &[x])
    };
    let out = build(&mut b, rng).expect("random networks are well formed");
    b.finish(out, "y").expect("output exists")
}

/// A random MLP on `[1, widths[0]]` inputs: dense layers of the given widths with `activation`
/// between them (none after the last). Weights are uniform in +-`weight(fan_in)`, biases in
/// +-`bias`, drawn layer by layer (all weights, then the biases).
pub fn random_mlp(
    rng: &mut Rng,
    widths: &[usize],
    activation: Option<Activation>,
    weight: impl Fn(usize) -> f64,
    bias: f64,
) -> Network {
    let mut b = NetworkBuilder::new("x", vec![1, widths[0]]);
    let mut v = b.input();
    for (i, pair) in widths.windows(2).enumerate() {
        let (inp, out) = (pair[0], pair[1]);
        let w = weight(inp);
        let d = Dense {
            weight: (0..out * inp).map(|_| rng.range(-w, w)).collect(),
            bias: (0..out).map(|_| rng.range(-bias, bias)).collect(),
            out_features: out,
            in_features: inp,
        };
        v = b.push(format!("dense{i}"), Op::Dense(d), &[v]).expect("valid dense layer");
        if let (Some(a), true) = (activation, i + 2 < widths.len()) {
            v = b.push(format!("act{i}"), Op::Activation(a), &[v]).expect("valid activation");
        }
    }
    b.finish(v, "y").expect("valid network")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operator variants: one more than the largest number `variant` gives.
    const VARIANTS: usize = 10;

    /// A number per operator variant, from an exhaustive match: a new operator does not compile
    /// until it has the next number here (and `VARIANTS` grows by one), and then the test
    /// below fails until `random_network` uses it, so every property test built on the random
    /// networks covers it.
    fn variant(op: &Op) -> usize {
        match op {
            Op::Dense(_) => 0,
            Op::Conv2d(_) => 1,
            Op::Affine { .. } => 2,
            Op::Activation(_) => 3,
            Op::Add => 4,
            Op::AvgPool(_) => 5,
            Op::MaxPool(_) => 6,
            Op::Pad { .. } => 7,
            Op::Reshape { .. } => 8,
            Op::Transpose { .. } => 9,
        }
    }

    /// The same for activations (`ALL_ACTIVATIONS` must list each one).
    fn activation_variant(a: &Activation) -> usize {
        match a {
            Activation::Relu => 0,
            Activation::LeakyRelu { .. } => 1,
            Activation::Elu { .. } => 2,
            Activation::Gelu { tanh_approx: false } => 3,
            Activation::Gelu { tanh_approx: true } => 4,
            Activation::Sigmoid => 5,
            Activation::Tanh => 6,
        }
    }

    #[test]
    fn random_networks_use_every_operator_and_every_activation() {
        let mut rng = Rng::new(1);
        let net = random_network(&mut rng);
        let mut seen = vec![false; VARIANTS];
        let mut acts = vec![false; ALL_ACTIVATIONS.len()];
        for node in &net.nodes {
            seen[variant(&node.op)] = true;
            if let Op::Activation(a) = &node.op {
                acts[activation_variant(a)] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "operators not in random_network: {seen:?}");
        assert!(acts.iter().all(|&s| s), "activations not in random_network: {acts:?}");
        let listed: Vec<usize> = ALL_ACTIVATIONS.iter().map(activation_variant).collect();
        assert_eq!(listed, (0..ALL_ACTIVATIONS.len()).collect::<Vec<_>>(), "ALL_ACTIVATIONS lists each once");
    }
}
