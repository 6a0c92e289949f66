//! The network IR: a single-input, single-output graph of nodes in topological order.
//!
//! Every value has a *per-sample* shape: the model's own shape for one sample, including a
//! leading model batch axis of 1 when the model has one (symbolic batch dimensions are fixed
//! to 1 on import). Batched evaluation adds an outer batch axis of N on top of that, so
//! layout operators (Reshape, Transpose) act on exactly the shapes the model declares.
//!
//! Value 0 is the network input; node `k` produces value `k + 1`.

use crate::error::GraphError;

/// Index of a value (the input or the output of a node).
pub type ValueId = usize;

/// y = W x + b applied to the last axis. `weight` is row-major `[out_features, in_features]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
    pub out_features: usize,
    pub in_features: usize,
}

/// 2-D convolution on `[.., C, H, W]` values (the leading axis is the model's batch axis).
/// `weight` is `[out_channels, in_channels / groups, kh, kw]` in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
    pub out_channels: usize,
    pub in_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// Window of an average or max pooling node (2-D, `ceil_mode = 0`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
    /// Average pooling only: divide by the full window (true) or by its in-bounds part.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu {
        alpha: f64,
    },
    Elu {
        alpha: f64,
    },
    /// GELU, exact (erf) or the tanh approximation.
    Gelu {
        tanh_approx: bool,
    },
    Sigmoid,
    Tanh,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Dense(Dense),
    Conv2d(Conv2d),
    /// Elementwise y = x * scale + shift; both have the value's per-sample length.
    /// BatchNormalization that could not be folded, input normalization, Mul/Div/Add/Sub by constants.
    Affine {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    Activation(Activation),
    /// Sum of two values of the same shape (residual connections).
    Add,
    AvgPool(Pool2d),
    MaxPool(Pool2d),
    /// Constant padding; `pads` holds the begin pads of every axis, then the end pads.
    Pad {
        pads: Vec<usize>,
        value: f64,
    },
    /// Same elements in the same order, new shape (Reshape, Flatten, Squeeze, Unsqueeze).
    Reshape {
        shape: Vec<usize>,
    },
    /// Axis permutation: output axis i is input axis perm[i].
    Transpose {
        perm: Vec<usize>,
    },
}

impl Op {
    /// Short operator name used in tables and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Dense(_) => "Dense",
            Op::Conv2d(_) => "Conv2d",
            Op::Affine { .. } => "Affine",
            Op::Activation(a) => match a {
                Activation::Relu => "Relu",
                Activation::LeakyRelu { .. } => "LeakyRelu",
                Activation::Elu { .. } => "Elu",
                Activation::Gelu { .. } => "Gelu",
                Activation::Sigmoid => "Sigmoid",
                Activation::Tanh => "Tanh",
            },
            Op::Add => "Add",
            Op::AvgPool(_) => "AvgPool",
            Op::MaxPool(_) => "MaxPool",
            Op::Pad { .. } => "Pad",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
        }
    }

    /// Number of trainable parameters (weights and biases; affine scale and shift).
    pub fn param_count(&self) -> usize {
        match self {
            Op::Dense(d) => d.weight.len() + d.bias.len(),
            Op::Conv2d(c) => c.weight.len() + c.bias.len(),
            Op::Affine { scale, shift } => scale.len() + shift.len(),
            _ => 0,
        }
    }

    /// How many input values the operator takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add => 2,
            _ => 1,
        }
    }

    /// All floating-point parameters, for validity checks.
    pub fn params(&self) -> Vec<&[f64]> {
        match self {
            Op::Dense(d) => vec![&d.weight, &d.bias],
            Op::Conv2d(c) => vec![&c.weight, &c.bias],
            Op::Affine { scale, shift } => vec![scale, shift],
            Op::Pad { value, .. } => vec![std::slice::from_ref(value)],
            Op::Activation(Activation::LeakyRelu { alpha } | Activation::Elu { alpha }) => {
                vec![std::slice::from_ref(alpha)]
            }
            _ => vec![],
        }
    }

    /// Output shape for the given input shapes, or a description of why they do not fit.
    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        if inputs.len() != self.arity() {
            return Err(format!("expects {} input(s), got {}", self.arity(), inputs.len()));
        }
        let x = inputs[0];
        let numel: usize = x.iter().product();
        match self {
            Op::Dense(d) => {
                let last = *x.last().ok_or("Dense needs an input of rank >= 1")?;
                if last != d.in_features {
                    return Err(format!("input's last axis is {last}, weight expects {}", d.in_features));
                }
                check_len("weight", d.weight.len(), d.out_features * d.in_features)?;
                check_len("bias", d.bias.len(), d.out_features)?;
                let mut s = x.to_vec();
                *s.last_mut().expect("rank checked") = d.out_features;
                Ok(s)
            }
            Op::Conv2d(c) => {
                let [lead, ch, h, w] = rank4(x)?;
                if ch != c.in_channels {
                    return Err(format!("input has {ch} channels, weight expects {}", c.in_channels));
                }
                if c.groups == 0 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                    return Err(format!(
                        "groups = {} does not divide {} input and {} output channels",
                        c.groups, c.in_channels, c.out_channels
                    ));
                }
                check_len(
                    "weight",
                    c.weight.len(),
                    c.out_channels * (c.in_channels / c.groups) * c.kernel[0] * c.kernel[1],
                )?;
                check_len("bias", c.bias.len(), c.out_channels)?;
                let (oh, ow) = window_output(h, w, c.kernel, c.stride, c.pads, c.dilation)?;
                Ok(vec![lead, c.out_channels, oh, ow])
            }
            Op::Affine { scale, shift } => {
                check_len("scale", scale.len(), numel)?;
                check_len("shift", shift.len(), numel)?;
                Ok(x.to_vec())
            }
            Op::Activation(_) => Ok(x.to_vec()),
            Op::Add => {
                if inputs[1] != x {
                    return Err(format!("cannot add shapes {:?} and {:?}", x, inputs[1]));
                }
                Ok(x.to_vec())
            }
            Op::AvgPool(p) | Op::MaxPool(p) => {
                let [lead, ch, h, w] = rank4(x)?;
                let (oh, ow) = window_output(h, w, p.kernel, p.stride, p.pads, p.dilation)?;
                Ok(vec![lead, ch, oh, ow])
            }
            Op::Pad { pads, .. } => {
                if pads.len() != 2 * x.len() {
                    return Err(format!("{} pads for an input of rank {}", pads.len(), x.len()));
                }
                Ok(x.iter().enumerate().map(|(i, d)| d + pads[i] + pads[i + x.len()]).collect())
            }
            Op::Reshape { shape } => {
                let n: usize = shape.iter().product();
                if n != numel {
                    return Err(format!("cannot reshape {:?} ({numel} elements) to {:?}", x, shape));
                }
                Ok(shape.clone())
            }
            Op::Transpose { perm } => {
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() || perm.iter().any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!("perm {:?} is not a permutation of the {} axes", perm, x.len()));
                }
                Ok(perm.iter().map(|&p| x[p]).collect())
            }
        }
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!("{what} has {got} elements, expected {want}"));
    }
    Ok(())
}

fn rank4(x: &[usize]) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(x).map_err(|_| format!("needs a rank-4 [N, C, H, W] input, got shape {:?}", x))
}

/// Output size of a sliding window (convolution or pooling, floor mode).
pub fn window_output(
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
) -> Result<(usize, usize), String> {
    let dim = |n: usize, k: usize, s: usize, p0: usize, p1: usize, d: usize| -> Result<usize, String> {
        if k == 0 || s == 0 || d == 0 {
            return Err("kernel, stride and dilation must be positive".into());
        }
        let span = d * (k - 1) + 1;
        let padded = n + p0 + p1;
        if padded < span {
            return Err(format!("window {span} is larger than the padded input {padded}"));
        }
        Ok((padded - span) / s + 1)
    };
    Ok((
        dim(h, kernel[0], stride[0], pads[0], pads[2], dilation[0])?,
        dim(w, kernel[1], stride[1], pads[1], pads[3], dilation[1])?,
    ))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
}

/// A trained network: one input, one output, nodes in topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Name of each value (value 0 is the input).
    pub value_names: Vec<String>,
    /// Per-sample shape of each value.
    pub shapes: Vec<Vec<usize>>,
    pub nodes: Vec<Node>,
    pub output: ValueId,
    /// Name of the graph output (kept from the model file for export).
    pub output_name: String,
}

impl Network {
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }
    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.output]
    }
    /// Number of elements of one input sample.
    pub fn input_len(&self) -> usize {
        self.shapes[0].iter().product()
    }
    /// Number of elements of one output sample.
    pub fn output_len(&self) -> usize {
        self.shapes[self.output].iter().product()
    }
    pub fn value_len(&self, v: ValueId) -> usize {
        self.shapes[v].iter().product()
    }
    pub fn input_name(&self) -> &str {
        &self.value_names[0]
    }
    pub fn output_name(&self) -> &str {
        &self.output_name
    }
    pub fn param_count(&self) -> usize {
        self.nodes.iter().map(|n| n.op.param_count()).sum()
    }
    /// The node that produces value `v` (None for the input).
    pub fn producer(&self, v: ValueId) -> Option<&Node> {
        v.checked_sub(1).map(|k| &self.nodes[k])
    }
    /// For each value, the index of the last node that reads it (the output is read "at the end").
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0usize; self.shapes.len()];
        for (k, node) in self.nodes.iter().enumerate() {
            for &v in &node.inputs {
                last[v] = k;
            }
        }
        last[self.output] = usize::MAX;
        last
    }
}

/// Builds a [`Network`] node by node, checking shapes as it goes.
pub struct NetworkBuilder {
    net: Network,
}

impl NetworkBuilder {
    pub fn new(input_name: impl Into<String>, input_shape: Vec<usize>) -> Self {
        NetworkBuilder {
            net: Network {
                value_names: vec![input_name.into()],
                shapes: vec![input_shape],
                nodes: vec![],
                output: 0,
                output_name: String::new(),
            },
        }
    }

    pub fn input(&self) -> ValueId {
        0
    }

    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.net.shapes[v]
    }

    /// Name of value `v` (the name of the node that produces it).
    pub fn name(&self, v: ValueId) -> &str {
        &self.net.value_names[v]
    }

    /// The operator that produces `v`, for in-place folding (None for the input).
    pub fn producer_op_mut(&mut self, v: ValueId) -> Option<&mut Op> {
        v.checked_sub(1).map(|k| &mut self.net.nodes[k].op)
    }

    pub fn producer_op(&self, v: ValueId) -> Option<&Op> {
        v.checked_sub(1).map(|k| &self.net.nodes[k].op)
    }

    /// Appends a node; its output value is named after the node.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[ValueId]) -> Result<ValueId, GraphError> {
        let name = name.into();
        let err = |message: String| GraphError::Node { node: name.clone(), op: op.kind(), message };
        if let Some(&bad) = inputs.iter().find(|&&v| v >= self.net.shapes.len()) {
            return Err(err(format!("input value {bad} does not exist yet")));
        }
        for p in op.params() {
            if let Some(i) = p.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("parameter {i} is {} (NaN or infinite weights)", p[i])));
            }
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|&v| self.net.shapes[v].as_slice()).collect();
        let out_shape = op.output_shape(&shapes).map_err(err)?;
        self.net.value_names.push(name.clone());
        self.net.shapes.push(out_shape);
        self.net.nodes.push(Node { name, op, inputs: inputs.to_vec() });
        Ok(self.net.nodes.len())
    }

    /// Replaces the operator of an existing node when its output shape stays the same
    /// (folding BatchNorm or an affine map into the preceding linear node).
    pub fn replace_op(&mut self, v: ValueId, op: Op) -> Result<(), GraphError> {
        let k = v.checked_sub(1).ok_or_else(|| GraphError::Invalid("cannot replace the input".into()))?;
        let node = &self.net.nodes[k];
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| self.net.shapes[i].as_slice()).collect();
        let shape = op.output_shape(&shapes).map_err(|message| GraphError::Node {
            node: node.name.clone(),
            op: op.kind(),
            message,
        })?;
        if shape != self.net.shapes[v] {
            return Err(GraphError::Invalid(format!("replacing node '{}' changes its shape", node.name)));
        }
        self.net.nodes[k].op = op;
        Ok(())
    }

    pub fn finish(mut self, output: ValueId, output_name: impl Into<String>) -> Result<Network, GraphError> {
        if output >= self.net.shapes.len() {
            return Err(GraphError::Invalid(format!("output value {output} does not exist")));
        }
        self.net.output = output;
        self.net.output_name = output_name.into();
        // Drop nodes that do not contribute to the output, then renumber values.
        let mut needed = vec![false; self.net.shapes.len()];
        needed[output] = true;
        for k in (0..self.net.nodes.len()).rev() {
            if needed[k + 1] {
                for &i in &self.net.nodes[k].inputs {
                    needed[i] = true;
                }
            }
        }
        if needed.iter().all(|&b| b) {
            return Ok(self.net);
        }
        let mut new_id = vec![usize::MAX; self.net.shapes.len()];
        new_id[0] = 0;
        let mut out = NetworkBuilder::new(self.net.value_names[0].clone(), self.net.shapes[0].clone());
        for (k, node) in std::mem::take(&mut self.net.nodes).into_iter().enumerate() {
            if needed[k + 1] {
                let inputs: Vec<ValueId> = node.inputs.iter().map(|&i| new_id[i]).collect();
                new_id[k + 1] = out.push(node.name, node.op, &inputs)?;
            }
        }
        out.net.output = new_id[output];
        out.net.output_name = self.net.output_name;
        Ok(out.net)
    }
}
