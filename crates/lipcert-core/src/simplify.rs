//! Exact simplifications of a network: identity affine maps are removed, and an affine node
//! is folded into the Dense, Conv2d or Affine node before it when that node feeds nothing
//! else (BatchNorm after a convolution, a bias Add after a MatMul, Sub then Div).

use crate::graph::{Network, NetworkBuilder, Op, ValueId};
use crate::GraphError;

/// Returns the simplified network and a note per change.
pub fn simplify(net: Network) -> Result<(Network, Vec<String>), GraphError> {
    let mut notes = vec![];
    let net = rebuild(&net, &mut notes, false)?;
    let net = rebuild(&net, &mut notes, true)?;
    Ok((net, notes))
}

fn is_identity(scale: &[f64], shift: &[f64]) -> bool {
    scale.iter().all(|&s| s == 1.0) && shift.iter().all(|&t| t == 0.0)
}

/// `op` followed by the elementwise map x*scale + shift, as one operator, when exact.
/// `shape` is the per-sample shape of op's output.
fn fold(op: &Op, shape: &[usize], scale: &[f64], shift: &[f64]) -> Option<Op> {
    match op {
        Op::Affine { scale: s1, shift: t1 } => Some(Op::Affine {
            scale: s1.iter().zip(scale).map(|(a, b)| a * b).collect(),
            shift: t1.iter().zip(scale).zip(shift).map(|((t, s), u)| t * s + u).collect(),
        }),
        Op::Dense(d) => {
            // The map must depend on the output feature only (same for every row).
            let o = d.out_features;
            let periodic = |v: &[f64]| v.chunks_exact(o).all(|c| c == &v[..o]);
            if !periodic(scale) || !periodic(shift) {
                return None;
            }
            let mut d = d.clone();
            for i in 0..o {
                d.weight[i * d.in_features..(i + 1) * d.in_features].iter_mut().for_each(|w| *w *= scale[i]);
                d.bias[i] = d.bias[i] * scale[i] + shift[i];
            }
            Some(Op::Dense(d))
        }
        Op::Conv2d(c) => {
            // The map must depend on the output channel only.
            let (ch, plane) = (shape[1], shape[2] * shape[3]);
            let per_channel = |v: &[f64]| -> Option<Vec<f64>> {
                let first: Vec<f64> = (0..ch).map(|k| v[k * plane]).collect();
                v.chunks_exact(plane).enumerate().all(|(i, p)| p.iter().all(|&x| x == first[i % ch])).then_some(first)
            };
            let (s, t) = (per_channel(scale)?, per_channel(shift)?);
            let mut c = c.clone();
            let per_out = c.weight.len() / c.out_channels;
            for k in 0..c.out_channels {
                c.weight[k * per_out..(k + 1) * per_out].iter_mut().for_each(|w| *w *= s[k]);
                c.bias[k] = c.bias[k] * s[k] + t[k];
            }
            Some(Op::Conv2d(c))
        }
        // An elementwise map does not fold exactly into these (listed, so that a new operator
        // is decided here).
        Op::Activation(_)
        | Op::Add
        | Op::AvgPool(_)
        | Op::MaxPool(_)
        | Op::Pad { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. } => None,
    }
}

fn rebuild(net: &Network, notes: &mut Vec<String>, fold_affine: bool) -> Result<Network, GraphError> {
    let mut consumers = vec![0usize; net.shapes.len()];
    for node in &net.nodes {
        for &v in &node.inputs {
            consumers[v] += 1;
        }
    }
    consumers[net.output] += 1;
    let mut b = NetworkBuilder::new(net.value_names[0].clone(), net.shapes[0].clone());
    let mut map: Vec<ValueId> = vec![0; net.shapes.len()];
    for (k, node) in net.nodes.iter().enumerate() {
        let v = k + 1;
        if let Op::Affine { scale, shift } = &node.op {
            let src = node.inputs[0];
            if !fold_affine && is_identity(scale, shift) && v != net.output {
                notes.push(format!("removed '{}' (identity affine map)", node.name));
                map[v] = map[src];
                continue;
            }
            if fold_affine && src != 0 && consumers[src] == 1 {
                let target = map[src];
                if let Some(op) = b.producer_op(target) {
                    if let Some(folded) = fold(op, b.shape(target), scale, shift) {
                        // Merging two affine maps only combines constants: not worth a note.
                        if !matches!(op, Op::Affine { .. }) {
                            notes.push(format!("folded '{}' (affine) into '{}'", node.name, b.name(target)));
                        }
                        b.replace_op(target, folded)?;
                        map[v] = target;
                        continue;
                    }
                }
            }
        }
        let inputs: Vec<ValueId> = node.inputs.iter().map(|&i| map[i]).collect();
        map[v] = b.push(node.name.clone(), node.op.clone(), &inputs)?;
    }
    b.finish(map[net.output], net.output_name.clone())
}
