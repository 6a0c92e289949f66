//! The small network that lipcert ships as its built-in example (`models/demo.onnx`):
//! a 3-class classifier of 1 x 12 x 12 images with input normalization, two convolutions,
//! average pooling and two dense layers. Its weights come from a fixed seed, so the shipped
//! file can be regenerated and checked byte for byte.

use crate::graph::{Activation, Conv2d, Dense, Network, NetworkBuilder, Op, Pool2d};
use crate::rng::Rng;

pub const DEMO_SEED: u64 = 2026;

fn conv(rng: &mut Rng, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Op {
    let fan_in = (cin * k * k) as f64;
    Op::Conv2d(Conv2d {
        weight: rng.normals(cout * cin * k * k, (2.0 / fan_in).sqrt()),
        bias: rng.normals(cout, 0.05),
        out_channels: cout,
        in_channels: cin,
        kernel: [k, k],
        stride: [stride, stride],
        pads: [pad; 4],
        dilation: [1, 1],
        groups: 1,
    })
}

fn dense(rng: &mut Rng, fan_in: usize, out: usize) -> Op {
    Op::Dense(Dense {
        weight: rng.normals(out * fan_in, (2.0 / fan_in as f64).sqrt()),
        bias: rng.normals(out, 0.05),
        out_features: out,
        in_features: fan_in,
    })
}

/// Builds the demo network (deterministic).
pub fn demo_network() -> Network {
    let mut rng = Rng::new(DEMO_SEED);
    let mut b = NetworkBuilder::new("image", vec![1, 1, 12, 12]);
    let build = |b: &mut NetworkBuilder, rng: &mut Rng| -> Result<Network, crate::GraphError> {
        let n = 144;
        let x = b.push("normalize", Op::Affine { scale: vec![1.0 / 0.3; n], shift: vec![-0.5 / 0.3; n] }, &[0])?;
        let x = b.push("conv1", conv(rng, 1, 4, 3, 1, 1), &[x])?;
        let x = b.push("relu1", Op::Activation(Activation::Relu), &[x])?;
        let pool = Pool2d { kernel: [2, 2], stride: [2, 2], pads: [0; 4], dilation: [1, 1], count_include_pad: false };
        let x = b.push("pool1", Op::AvgPool(pool), &[x])?;
        let x = b.push("conv2", conv(rng, 4, 8, 3, 2, 1), &[x])?;
        let x = b.push("relu2", Op::Activation(Activation::Relu), &[x])?;
        let x = b.push("flatten", Op::Reshape { shape: vec![1, 72] }, &[x])?;
        let x = b.push("fc1", dense(rng, 72, 16), &[x])?;
        let x = b.push("relu3", Op::Activation(Activation::Relu), &[x])?;
        let x = b.push("fc2", dense(rng, 16, 3), &[x])?;
        std::mem::replace(b, NetworkBuilder::new("", vec![])).finish(x, "logits")
    };
    build(&mut b, &mut rng).expect("the demo network is well formed")
}
