//! The substitute as a network, in two forms.
//!
//! - `masked`: the original graph with each activation node split into the kept neurons'
//!   activation and the replaced neurons' line. In exact arithmetic it is the substitute, and
//!   for the activation-pattern kind its f64 evaluation equals the original's bit for bit
//!   wherever the replaced neurons keep their sign (the masks and slopes are 0 and 1). The
//!   sound path (Lemma 1) runs on this form.
//! - `fold`: the genuinely smaller network. A replaced neuron is affine in its pre-activation,
//!   so every kept pre-activation is an affine function of the input and of the kept
//!   activations of all earlier layers; `fold` writes exactly those maps as dense layers (a
//!   DenseNet-like graph of Dense and Add nodes), so only kept neurons remain. Needs a chain
//!   of linear nodes and activations (no residual Add, no MaxPool).

use crate::plan::Plan;
use lipcert_core::{Dense, GraphError, Network, NetworkBuilder, Op, ValueId};

/// The masked substitute and, per plan layer, the value of its pre-activation there.
pub fn masked(net: &Network, plan: &Plan) -> Result<(Network, Vec<ValueId>), GraphError> {
    let mut b = NetworkBuilder::new(net.input_name(), net.input_shape().to_vec());
    let mut id: Vec<ValueId> = vec![0; net.shapes.len()];
    let mut pre = vec![0; plan.layers.len()];
    for (k, node) in net.nodes.iter().enumerate() {
        let inputs: Vec<ValueId> = node.inputs.iter().map(|&v| id[v]).collect();
        let layer = plan.layers.iter().position(|l| l.node == k);
        if let Some(li) = layer {
            pre[li] = inputs[0];
        }
        let replaced = layer.map(|li| &plan.layers[li]).filter(|l| l.replaced.iter().any(|r| r.is_some()));
        let Some(layer) = replaced else {
            id[k + 1] = b.push(node.name.clone(), node.op.clone(), &inputs)?;
            continue;
        };
        let z = inputs[0];
        let keep: Vec<f64> = layer.replaced.iter().map(|r| if r.is_none() { 1.0 } else { 0.0 }).collect();
        // The kept part sees 0 where a neuron is replaced; remove phi(0) there.
        let at_zero = layer.activation.apply(0.0);
        let slope: Vec<f64> = layer.replaced.iter().map(|r| r.map_or(0.0, |r| r.slope)).collect();
        let offset: Vec<f64> = layer.replaced.iter().map(|r| r.map_or(0.0, |r| r.offset - at_zero)).collect();
        let kept_in =
            b.push(format!("{}_kept", node.name), Op::Affine { scale: keep, shift: vec![0.0; slope.len()] }, &[z])?;
        let kept = b.push(node.name.clone(), node.op.clone(), &[kept_in])?;
        let line = b.push(format!("{}_replaced", node.name), Op::Affine { scale: slope, shift: offset }, &[z])?;
        id[k + 1] = b.push(format!("{}_sum", node.name), Op::Add, &[kept, line])?;
    }
    Ok((b.finish(id[net.output], net.output_name())?, pre))
}

/// How `fold` sees the network: linear segments (node ranges) between activation nodes.
struct Chain {
    /// segments[l] = the linear nodes before activation layer l; the last one leads to the output.
    segments: Vec<std::ops::Range<usize>>,
}

fn not_foldable(net: &Network, k: usize, why: &str) -> GraphError {
    let node = &net.nodes[k];
    GraphError::Node {
        node: node.name.clone(),
        op: node.op.kind(),
        message: format!("the folded substitute needs a chain of linear nodes and activations: {why}"),
    }
}

fn chain(net: &Network, plan: &Plan) -> Result<Chain, GraphError> {
    let mut segments = Vec::new();
    let mut start = 0;
    for (k, node) in net.nodes.iter().enumerate() {
        if node.inputs != [k] {
            return Err(not_foldable(net, k, "it does not read the previous node's output"));
        }
        match node.op {
            Op::Activation(_) => {
                segments.push(start..k);
                start = k + 1;
            }
            Op::Add => return Err(not_foldable(net, k, "residual connections are not supported")),
            Op::MaxPool(_) => return Err(not_foldable(net, k, "max pooling is not linear")),
            Op::Dense(_)
            | Op::Conv2d(_)
            | Op::Affine { .. }
            | Op::Pad { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::AvgPool(_) => {}
        }
    }
    if net.output != net.nodes.len() {
        return Err(GraphError::Invalid("the folded substitute needs the last node to be the output".into()));
    }
    segments.push(start..net.nodes.len());
    debug_assert_eq!(segments.len(), plan.layers.len() + 1);
    Ok(Chain { segments })
}

/// The operator without its constant term (the linear part of an affine node); None for
/// nodes that are not affine.
fn linear_part(op: &Op) -> Option<Op> {
    Some(match op {
        Op::Dense(d) => Op::Dense(Dense { bias: vec![0.0; d.bias.len()], ..d.clone() }),
        Op::Conv2d(c) => {
            let mut c = c.clone();
            c.bias.iter_mut().for_each(|b| *b = 0.0);
            Op::Conv2d(c)
        }
        Op::Affine { scale, shift } => Op::Affine { scale: scale.clone(), shift: vec![0.0; shift.len()] },
        Op::Pad { pads, .. } => Op::Pad { pads: pads.clone(), value: 0.0 },
        Op::Reshape { .. } | Op::Transpose { .. } | Op::AvgPool(_) => op.clone(),
        Op::Activation(_) | Op::Add | Op::MaxPool(_) => return None,
    })
}

/// One segment as a network of its own: the affine map, or its linear part.
fn segment(net: &Network, range: std::ops::Range<usize>, linear: bool) -> Result<Network, GraphError> {
    // In a chain, node k reads value k.
    let mut b = NetworkBuilder::new("in", net.shapes[range.start].clone());
    let mut v = b.input();
    for k in range {
        let node = &net.nodes[k];
        let op = if linear { linear_part(&node.op) } else { Some(node.op.clone()) };
        let op = op.ok_or_else(|| not_foldable(net, k, "the node is not affine"))?;
        v = b.push(node.name.clone(), op, &[v])?;
    }
    b.finish(v, "out")
}

/// A value of the folded network that later layers read, with its column range in the
/// basis (input, then the kept activations of each layer).
struct Block {
    value: ValueId,
    start: usize,
    len: usize,
}

/// Dense layers from the blocks to `rows` of an affine map given by its columns `z`
/// ([p, width], column-major over the basis) and constant `zc`, summed by Add nodes.
fn emit(
    b: &mut NetworkBuilder,
    name: &str,
    blocks: &[Block],
    z: &[f64],
    zc: &[f64],
    width: usize,
    rows: &[usize],
) -> Result<ValueId, GraphError> {
    let mut sum: Option<ValueId> = None;
    for (bi, block) in blocks.iter().enumerate() {
        let mut weight = vec![0.0; rows.len() * block.len];
        for (r, &i) in rows.iter().enumerate() {
            for j in 0..block.len {
                weight[r * block.len + j] = z[(block.start + j) * width + i];
            }
        }
        let last = bi + 1 == blocks.len();
        if weight.iter().all(|&w| w == 0.0) && !(last && sum.is_none()) {
            continue;
        }
        let bias = if sum.is_none() { rows.iter().map(|&i| zc[i]).collect() } else { vec![0.0; rows.len()] };
        let dense = Dense { weight, bias, out_features: rows.len(), in_features: block.len };
        let v = b.push(format!("{name}_from_{bi}"), Op::Dense(dense), &[block.value])?;
        sum = Some(match sum {
            None => v,
            Some(s) => b.push(format!("{name}_add_{bi}"), Op::Add, &[s, v])?,
        });
    }
    Ok(sum.expect("the last block is always emitted"))
}

/// The folded substitute: only the kept neurons remain (see the module comment). The
/// function is the masked substitute's up to rounding.
pub fn fold(net: &Network, plan: &Plan) -> Result<Network, GraphError> {
    let chain = chain(net, plan)?;
    let n0 = net.input_len();
    let mut b = NetworkBuilder::new(net.input_name(), net.input_shape().to_vec());
    let flat = if net.input_shape() == [1, n0] {
        b.input()
    } else {
        b.push("flatten", Op::Reshape { shape: vec![1, n0] }, &[b.input()])?
    };
    let mut blocks = vec![Block { value: flat, start: 0, len: n0 }];
    // The current value as an affine map of the basis: columns t ([p, width]) and constant e.
    let mut p = n0;
    let mut t = vec![0.0; n0 * n0];
    for i in 0..n0 {
        t[i * n0 + i] = 1.0;
    }
    let mut e = vec![0.0; n0];
    for (layer, range) in plan.layers.iter().zip(&chain.segments) {
        let z = segment(net, range.clone(), true)?.forward(&t, p)?;
        let zc = segment(net, range.clone(), false)?.forward(&e, 1)?;
        let width = zc.len();
        let kept: Vec<usize> = (0..width).filter(|&i| layer.replaced[i].is_none()).collect();
        let new_p = p + kept.len();
        let mut t_next = vec![0.0; new_p * width];
        let mut e_next = vec![0.0; width];
        for (i, r) in layer.replaced.iter().enumerate() {
            if let Some(r) = r {
                for j in 0..p {
                    t_next[j * width + i] = r.slope * z[j * width + i];
                }
                e_next[i] = r.slope * zc[i] + r.offset;
            }
        }
        if !kept.is_empty() {
            let name = net.nodes[layer.node].name.clone();
            let pre = emit(&mut b, &name, &blocks, &z, &zc, width, &kept)?;
            let act = b.push(name, Op::Activation(layer.activation), &[pre])?;
            for (c, &i) in kept.iter().enumerate() {
                t_next[(p + c) * width + i] = 1.0;
            }
            blocks.push(Block { value: act, start: p, len: kept.len() });
        }
        (t, e, p) = (t_next, e_next, new_p);
    }
    let last = chain.segments.last().expect("a chain has an output segment").clone();
    let z = segment(net, last.clone(), true)?.forward(&t, p)?;
    let zc = segment(net, last, false)?.forward(&e, 1)?;
    let rows: Vec<usize> = (0..zc.len()).collect();
    let mut y = emit(&mut b, "output", &blocks, &z, &zc, zc.len(), &rows)?;
    if b.shape(y) != net.output_shape() {
        y = b.push("output_shape", Op::Reshape { shape: net.output_shape().to_vec() }, &[y])?;
    }
    b.finish(y, net.output_name())
}
