//! Batched forward pass, vector-Jacobian products, Jacobians and dense parameter gradients.
//!
//! A batch of `n` samples is a flat slice of `n * len` values: the outer batch axis first,
//! then the per-sample shape in C order.

use crate::error::GraphError;
use crate::graph::{Activation, Network, Node, Op, ValueId};
use crate::kernels;
use rayon::prelude::*;
use std::borrow::Cow;

/// Every value of a forward pass over a batch (kept for backward passes).
pub struct Trace {
    pub n: usize,
    pub values: Vec<Vec<f64>>,
}

impl Trace {
    pub fn output<'a>(&'a self, net: &Network) -> &'a [f64] {
        &self.values[net.output]
    }
}

/// Gradients of a dense node's parameters, summed over the batch.
#[derive(Clone, Debug)]
pub struct DenseGrad {
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

/// Result of a backward pass.
pub struct Gradients {
    /// Gradient with respect to the input, `[n, input_len]`.
    pub input: Vec<f64>,
    /// Per node: dense parameter gradients (None for other nodes or when not requested).
    pub dense: Vec<Option<DenseGrad>>,
}

/// Elementwise work is split in chunks of this many values across threads.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// Applies `f` to every value, in parallel chunks for large batches. Generic so that each
/// activation compiles to its own (vectorizable) loop.
fn map_in_place<F: Fn(f64) -> f64 + Sync>(xs: &mut [f64], f: F) {
    if xs.len() > ELEMENTWISE_CHUNK {
        xs.par_chunks_mut(ELEMENTWISE_CHUNK).for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    } else {
        xs.iter_mut().for_each(|v| *v = f(*v));
    }
}

fn activation_in_place(a: Activation, xs: &mut [f64]) {
    match a {
        Activation::Relu => map_in_place(xs, |v| v.max(0.0)),
        Activation::LeakyRelu { alpha } => map_in_place(xs, move |v| if v >= 0.0 { v } else { alpha * v }),
        other => map_in_place(xs, move |v| other.apply(v)),
    }
}

/// [lead, C, H, W] -> (images or planes, [H, W]).
fn spatial(shape: &[usize]) -> (usize, usize, [usize; 2]) {
    (shape[0], shape[1], [shape[2], shape[3]])
}

impl Network {
    fn check_batch(&self, x: &[f64], n: usize) -> Result<(), GraphError> {
        let len = self.input_len();
        if x.len() != n * len {
            return Err(GraphError::Data(format!(
                "input batch has {} values, expected {n} samples x {len} elements",
                x.len()
            )));
        }
        Ok(())
    }

    /// Output of node `k` for a batch of `n`.
    fn eval_node(&self, node: &Node, out: ValueId, inputs: &[&[f64]], n: usize) -> Vec<f64> {
        let x = inputs[0];
        let in_shape = &self.shapes[node.inputs[0]];
        let out_shape = &self.shapes[out];
        match &node.op {
            Op::Dense(d) => kernels::dense_forward(d, x, x.len() / d.in_features),
            Op::Conv2d(c) => {
                let (lead, _, hw) = spatial(in_shape);
                kernels::conv_forward(c, x, n * lead, hw, [out_shape[2], out_shape[3]])
            }
            Op::Affine { .. } | Op::Activation(_) | Op::Add | Op::Reshape { .. } => {
                self.eval_in_place(node, x.to_vec(), &inputs[1..])
            }
            Op::AvgPool(p) => {
                let (lead, ch, hw) = spatial(in_shape);
                kernels::avgpool_forward(p, x, n * lead * ch, hw, [out_shape[2], out_shape[3]])
            }
            Op::MaxPool(p) => {
                let (lead, ch, hw) = spatial(in_shape);
                kernels::maxpool_forward(p, x, n * lead * ch, hw, [out_shape[2], out_shape[3]])
            }
            Op::Pad { pads, value } => {
                let index = kernels::pad_scatter_index(in_shape, pads);
                let out_len = self.value_len(out);
                let mut y = vec![*value; n * out_len];
                for (dst, src) in y.chunks_exact_mut(out_len).zip(x.chunks_exact(index.len().max(1))) {
                    for (&i, &v) in index.iter().zip(src) {
                        dst[i] = v;
                    }
                }
                y
            }
            Op::Transpose { perm } => {
                let index = kernels::transpose_gather_index(in_shape, perm);
                let mut y = Vec::with_capacity(x.len());
                for src in x.chunks_exact(index.len().max(1)) {
                    y.extend(index.iter().map(|&i| src[i]));
                }
                y
            }
        }
    }

    /// Elementwise and layout operators, computed in the buffer of their first input.
    fn eval_in_place(&self, node: &Node, mut x: Vec<f64>, others: &[&[f64]]) -> Vec<f64> {
        match &node.op {
            Op::Affine { scale, shift } => {
                for row in x.chunks_exact_mut(scale.len()) {
                    for ((v, a), b) in row.iter_mut().zip(scale).zip(shift) {
                        *v = *v * a + b;
                    }
                }
            }
            Op::Activation(a) => activation_in_place(*a, &mut x),
            Op::Add => x.iter_mut().zip(others[0]).for_each(|(a, b)| *a += b),
            Op::Reshape { .. } => {}
            Op::Dense(_) | Op::Conv2d(_) | Op::AvgPool(_) | Op::MaxPool(_) | Op::Pad { .. } | Op::Transpose { .. } => {
                unreachable!("not an in-place operator")
            }
        }
        x
    }

    /// Batched forward pass: `x` holds `n` samples; returns `[n, output_len]`.
    pub fn forward(&self, x: &[f64], n: usize) -> Result<Vec<f64>, GraphError> {
        self.check_batch(x, n)?;
        let last_use = self.last_uses();
        let mut values: Vec<Option<Cow<[f64]>>> = vec![None; self.shapes.len()];
        values[0] = Some(Cow::Borrowed(x));
        for (k, node) in self.nodes.iter().enumerate() {
            let first = node.inputs[0];
            let in_place = matches!(node.op, Op::Affine { .. } | Op::Activation(_) | Op::Add | Op::Reshape { .. });
            // Reuse the first input's buffer when no later node reads it.
            let y = if in_place && last_use[first] == k && !node.inputs[1..].contains(&first) {
                let owned = values[first].take().expect("topological order").into_owned();
                let others: Vec<&[f64]> =
                    node.inputs[1..].iter().map(|&v| values[v].as_deref().expect("topological order")).collect();
                self.eval_in_place(node, owned, &others)
            } else {
                let inputs: Vec<&[f64]> =
                    node.inputs.iter().map(|&v| values[v].as_deref().expect("topological order")).collect();
                self.eval_node(node, k + 1, &inputs, n)
            };
            values[k + 1] = Some(Cow::Owned(y));
            // Free what no later node reads.
            for &v in &node.inputs {
                if last_use[v] == k {
                    values[v] = None;
                }
            }
        }
        Ok(values[self.output].take().expect("output computed").into_owned())
    }

    /// Forward pass that keeps every value, for backward passes.
    pub fn trace(&self, x: &[f64], n: usize) -> Result<Trace, GraphError> {
        self.check_batch(x, n)?;
        let mut values = Vec::with_capacity(self.shapes.len());
        values.push(x.to_vec());
        for (k, node) in self.nodes.iter().enumerate() {
            let inputs: Vec<&[f64]> = node.inputs.iter().map(|&v| values[v].as_slice()).collect();
            let y = self.eval_node(node, k + 1, &inputs, n);
            values.push(y);
        }
        Ok(Trace { n, values })
    }

    /// Output of node `k` for a batch of `n` (any node type; the inputs are its input values).
    pub fn eval_node_batch(&self, k: usize, inputs: &[&[f64]], n: usize) -> Vec<f64> {
        self.eval_node(&self.nodes[k], k + 1, inputs, n)
    }

    /// Gradients of node `k`'s inputs from the gradient `gy` of its output.
    fn node_vjp(&self, node: &Node, out: ValueId, trace: &Trace, gy: &[f64]) -> Vec<Vec<f64>> {
        let x = trace.values[node.inputs[0]].as_slice();
        let in_shape = &self.shapes[node.inputs[0]];
        let out_shape = &self.shapes[out];
        let n = trace.n;
        match &node.op {
            Op::Activation(a) => vec![x.iter().zip(gy).map(|(&v, &g)| g * a.derivative(v)).collect()],
            Op::MaxPool(p) => {
                let (lead, ch, hw) = spatial(in_shape);
                vec![kernels::maxpool_backward(p, x, gy, n * lead * ch, hw, [out_shape[2], out_shape[3]])]
            }
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Add
            | Op::AvgPool(_)
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. } => self.linear_vjp(out - 1, gy, n).expect("linear node"),
        }
    }

    /// Transpose of a linear node (every node except activations and max pooling) applied to
    /// `n` rows `gy` of its output's length: one gradient per input (None for nonlinear nodes).
    /// The bias is not involved: this is the adjoint of the linear part.
    pub fn linear_vjp(&self, k: usize, gy: &[f64], n: usize) -> Option<Vec<Vec<f64>>> {
        let node = &self.nodes[k];
        let out = k + 1;
        let in_shape = &self.shapes[node.inputs[0]];
        let out_shape = &self.shapes[out];
        let single = |g: Vec<f64>| Some(vec![g]);
        match &node.op {
            Op::Dense(d) => single(kernels::dense_backward(d, gy, gy.len() / d.out_features)),
            Op::Conv2d(c) => {
                let (lead, _, hw) = spatial(in_shape);
                single(kernels::conv_backward(c, gy, n * lead, hw, [out_shape[2], out_shape[3]]))
            }
            Op::Affine { scale, .. } => {
                let mut g = gy.to_vec();
                for row in g.chunks_exact_mut(scale.len()) {
                    for (v, a) in row.iter_mut().zip(scale) {
                        *v *= a;
                    }
                }
                single(g)
            }
            Op::Activation(_) | Op::MaxPool(_) => None,
            Op::Add => Some(vec![gy.to_vec(), gy.to_vec()]),
            Op::AvgPool(p) => {
                let (lead, ch, hw) = spatial(in_shape);
                single(kernels::avgpool_backward(p, gy, n * lead * ch, hw, [out_shape[2], out_shape[3]]))
            }
            Op::Pad { pads, .. } => {
                let index = kernels::pad_scatter_index(in_shape, pads);
                let out_len = self.value_len(out);
                let mut g = Vec::with_capacity(n * index.len());
                for src in gy.chunks_exact(out_len) {
                    g.extend(index.iter().map(|&i| src[i]));
                }
                single(g)
            }
            Op::Reshape { .. } => single(gy.to_vec()),
            Op::Transpose { perm } => {
                let index = kernels::transpose_gather_index(in_shape, perm);
                let mut g = vec![0.0; gy.len()];
                for (dst, src) in g.chunks_exact_mut(index.len().max(1)).zip(gy.chunks_exact(index.len().max(1))) {
                    for (&i, &v) in index.iter().zip(src) {
                        dst[i] = v;
                    }
                }
                single(g)
            }
        }
    }

    /// Vector-Jacobian product: for each sample, seed^T J(x). `seed` is `[n, output_len]`.
    /// With `dense_params`, also returns the gradients of every dense node's parameters
    /// (of the sum over the batch of seed . f(x)).
    pub fn vjp(&self, trace: &Trace, seed: &[f64], dense_params: bool) -> Result<Gradients, GraphError> {
        if seed.len() != trace.n * self.output_len() {
            return Err(GraphError::Data(format!(
                "seed has {} values, expected {} samples x {} outputs",
                seed.len(),
                trace.n,
                self.output_len()
            )));
        }
        let mut grads: Vec<Option<Vec<f64>>> = vec![None; self.shapes.len()];
        grads[self.output] = Some(seed.to_vec());
        let mut dense = vec![None; self.nodes.len()];
        for (k, node) in self.nodes.iter().enumerate().rev() {
            let Some(gy) = grads[k + 1].take() else {
                continue;
            };
            if dense_params {
                if let Op::Dense(d) = &node.op {
                    let x = &trace.values[node.inputs[0]];
                    let (weight, bias) = kernels::dense_param_grads(d, x, &gy, x.len() / d.in_features);
                    dense[k] = Some(DenseGrad { weight, bias });
                }
            }
            for (&v, g) in node.inputs.iter().zip(self.node_vjp(node, k + 1, trace, &gy)) {
                match &mut grads[v] {
                    Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                    slot @ None => *slot = Some(g),
                }
            }
        }
        let input = grads[0].take().unwrap_or_else(|| vec![0.0; trace.n * self.input_len()]);
        Ok(Gradients { input, dense })
    }

    /// The output at `x` (one sample) and the full Jacobian, row-major `[output_len, input_len]`.
    pub fn jacobian(&self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>), GraphError> {
        self.check_batch(x, 1)?;
        let m = self.output_len();
        // One backward pass over m copies of x, seeded with the identity.
        let batch: Vec<f64> = (0..m).flat_map(|_| x.iter().copied()).collect();
        let trace = self.trace(&batch, m)?;
        let mut seed = vec![0.0; m * m];
        for i in 0..m {
            seed[i * m + i] = 1.0;
        }
        let y = trace.output(self)[..m].to_vec();
        Ok((y, self.vjp(&trace, &seed, false)?.input))
    }
}
