//! IR -> ONNX. The exported graph uses standard operators only (opset 13, or higher when an
//! operator needs it), so any ONNX runtime can evaluate it. Weights are written in f64
//! (exact: export then import gives identical outputs) or f32 (the usual model format).

use super::proto::*;
use lipcert_core::{Activation, Network, Op, Pool2d, ValueId};
use prost::Message;
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportPrecision {
    F32,
    F64,
}

struct Writer {
    precision: ExportPrecision,
    graph: GraphProto,
    used: HashSet<String>,
}

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i: v, ..Default::default() }
}

fn attr_float(name: &str, v: f64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f: v as f32, ..Default::default() }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::STRING, s: v.as_bytes().to_vec(), ..Default::default() }
}

fn pool_attrs(p: &Pool2d) -> Vec<AttributeProto> {
    let mut a = vec![attr_ints("kernel_shape", &p.kernel), attr_ints("strides", &p.stride), attr_ints("pads", &p.pads)];
    if p.dilation != [1, 1] {
        a.push(attr_ints("dilations", &p.dilation));
    }
    a
}

fn value_info(name: &str, elem_type: i32, shape: &[usize]) -> ValueInfoProto {
    let dim = shape.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d as i64)) }).collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type, shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: String::new(),
    }
}

impl Writer {
    fn elem_type(&self) -> i32 {
        match self.precision {
            ExportPrecision::F32 => data_type::FLOAT,
            ExportPrecision::F64 => data_type::DOUBLE,
        }
    }

    /// A tensor name not used yet, based on `base`.
    fn fresh(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "t" } else { base };
        let mut name = base.to_string();
        let mut i = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }

    fn initializer(&mut self, base: &str, dims: &[usize], data: &[f64]) -> String {
        let name = self.fresh(base);
        let raw_data = match self.precision {
            ExportPrecision::F32 => data.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
            ExportPrecision::F64 => data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        };
        self.graph.initializer.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: self.elem_type(),
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    fn int64_initializer(&mut self, base: &str, data: &[i64]) -> String {
        let name = self.fresh(base);
        self.graph.initializer.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op_type: &str, name: &str, inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>) {
        self.graph.node.push(NodeProto {
            input: inputs,
            output: vec![output],
            name: name.into(),
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
    }
}

/// Lowest opset that has every operator the network uses.
fn required_opset(net: &Network) -> i64 {
    let mut opset = 13;
    for node in &net.nodes {
        match &node.op {
            Op::Activation(Activation::Gelu { .. }) => opset = opset.max(20),
            Op::AvgPool(p) if p.dilation != [1, 1] => opset = opset.max(19),
            _ => {}
        }
    }
    opset
}

/// Builds the ONNX model of a network.
pub fn export_model(net: &Network, precision: ExportPrecision) -> ModelProto {
    let mut w =
        Writer { precision, graph: GraphProto { name: "lipcert".into(), ..Default::default() }, used: HashSet::new() };
    // Tensor name of every value: the input and output keep their model names.
    let mut names: Vec<String> = vec![String::new(); net.shapes.len()];
    names[0] = w.fresh(net.input_name());
    let output_name = w.fresh(net.output_name());
    for (k, node) in net.nodes.iter().enumerate() {
        let v: ValueId = k + 1;
        let x = names[node.inputs[0]].clone();
        let out = if v == net.output { output_name.clone() } else { w.fresh(&net.value_names[v]) };
        names[v] = out.clone();
        let name = node.name.as_str();
        let in_shape = &net.shapes[node.inputs[0]];
        match &node.op {
            Op::Dense(d) => {
                if in_shape.len() == 2 {
                    let wn = w.initializer(&format!("{name}.weight"), &[d.out_features, d.in_features], &d.weight);
                    let bn = w.initializer(&format!("{name}.bias"), &[d.out_features], &d.bias);
                    w.node("Gemm", name, vec![x, wn, bn], out, vec![attr_int("transB", 1)]);
                } else {
                    // MatMul contracts the last axis of inputs of any rank; it takes B = W^T.
                    let (o, i) = (d.out_features, d.in_features);
                    let wt: Vec<f64> = (0..i).flat_map(|r| (0..o).map(move |c| d.weight[c * i + r])).collect();
                    let wn = w.initializer(&format!("{name}.weight_t"), &[i, o], &wt);
                    // The first node carries the name: re-import folds the Add into it.
                    let mm = w.fresh(&format!("{name}/matmul"));
                    w.node("MatMul", name, vec![x, wn], mm.clone(), vec![]);
                    let bn = w.initializer(&format!("{name}.bias"), &[o], &d.bias);
                    w.node("Add", &format!("{name}/bias"), vec![mm, bn], out, vec![]);
                }
            }
            Op::Conv2d(c) => {
                let dims = [c.out_channels, c.in_channels / c.groups, c.kernel[0], c.kernel[1]];
                let wn = w.initializer(&format!("{name}.weight"), &dims, &c.weight);
                let bn = w.initializer(&format!("{name}.bias"), &[c.out_channels], &c.bias);
                let attrs = vec![
                    attr_ints("kernel_shape", &c.kernel),
                    attr_ints("strides", &c.stride),
                    attr_ints("pads", &c.pads),
                    attr_ints("dilations", &c.dilation),
                    attr_int("group", c.groups as i64),
                ];
                w.node("Conv", name, vec![x, wn, bn], out, attrs);
            }
            Op::Affine { scale, shift } => {
                // Mul then Add; the first node carries the name (re-import folds the pair).
                let mut cur = x;
                let unit_scale = scale.iter().all(|&s| s == 1.0);
                let zero_shift = shift.iter().all(|&t| t == 0.0);
                if !unit_scale {
                    let sn = w.initializer(&format!("{name}.scale"), in_shape, scale);
                    let target = if zero_shift { out.clone() } else { w.fresh(&format!("{name}/scaled")) };
                    w.node("Mul", name, vec![cur, sn], target.clone(), vec![]);
                    cur = target;
                }
                if !zero_shift {
                    let tn = w.initializer(&format!("{name}.shift"), in_shape, shift);
                    let add_name = if unit_scale { name.to_string() } else { format!("{name}/shift") };
                    w.node("Add", &add_name, vec![cur, tn], out.clone(), vec![]);
                } else if unit_scale {
                    w.node("Identity", name, vec![cur], out.clone(), vec![]);
                }
            }
            Op::Activation(a) => {
                let (op_type, attrs) = match a {
                    Activation::Relu => ("Relu", vec![]),
                    Activation::LeakyRelu { alpha } => ("LeakyRelu", vec![attr_float("alpha", *alpha)]),
                    Activation::Elu { alpha } => ("Elu", vec![attr_float("alpha", *alpha)]),
                    Activation::Gelu { tanh_approx } => {
                        ("Gelu", vec![attr_string("approximate", if *tanh_approx { "tanh" } else { "none" })])
                    }
                    Activation::Sigmoid => ("Sigmoid", vec![]),
                    Activation::Tanh => ("Tanh", vec![]),
                };
                w.node(op_type, name, vec![x], out, attrs);
            }
            Op::Add => {
                let y = names[node.inputs[1]].clone();
                w.node("Add", name, vec![x, y], out, vec![]);
            }
            Op::AvgPool(p) => {
                let mut attrs = pool_attrs(p);
                attrs.push(attr_int("count_include_pad", p.count_include_pad as i64));
                w.node("AveragePool", name, vec![x], out, attrs);
            }
            Op::MaxPool(p) => w.node("MaxPool", name, vec![x], out, pool_attrs(p)),
            Op::Pad { pads, value } => {
                let pn =
                    w.int64_initializer(&format!("{name}.pads"), &pads.iter().map(|&p| p as i64).collect::<Vec<_>>());
                let vn = w.initializer(&format!("{name}.value"), &[], &[*value]);
                w.node("Pad", name, vec![x, pn, vn], out, vec![attr_string("mode", "constant")]);
            }
            Op::Reshape { shape } => {
                let sn =
                    w.int64_initializer(&format!("{name}.shape"), &shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
                w.node("Reshape", name, vec![x, sn], out, vec![]);
            }
            Op::Transpose { perm } => w.node("Transpose", name, vec![x], out, vec![attr_ints("perm", perm)]),
        }
    }
    if net.output == 0 {
        w.node("Identity", "output", vec![names[0].clone()], output_name.clone(), vec![]);
    }
    let elem = w.elem_type();
    w.graph.input.push(value_info(&names[0], elem, net.input_shape()));
    w.graph.output.push(value_info(&output_name, elem, net.output_shape()));
    let opset = required_opset(net);
    ModelProto {
        // IR version 8 goes with opsets up to 18, 9 with 19 and 20.
        ir_version: if opset >= 19 { 9 } else { 8 },
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "lipcert".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(w.graph),
        ..Default::default()
    }
}

/// Serialized ONNX bytes of a network.
pub fn export_bytes(net: &Network, precision: ExportPrecision) -> Vec<u8> {
    export_model(net, precision).encode_to_vec()
}
