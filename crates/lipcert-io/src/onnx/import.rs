//! ONNX -> IR. Constant subgraphs (Shape, Gather, Concat, ... on known shapes) are folded
//! while reading; MatMul/Gemm become dense nodes, Sub/Div/Mul/Add by constants and
//! BatchNormalization become affine nodes, which `simplify` then folds into the preceding
//! linear node where that is exact.

use super::proto::{data_type, AttributeProto, DimensionValue, GraphProto, ModelProto, NodeProto, TensorProto};
use lipcert_core::kernels::{strides, transpose_gather_index};
use lipcert_core::{simplify, Activation, Conv2d, Dense, Network, NetworkBuilder, Op, Pool2d, ValueId};
use prost::Message;
use std::collections::HashMap;
use std::fmt;

#[derive(Debug)]
pub struct ImportError(pub String);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ImportError {}

type Result<T> = std::result::Result<T, ImportError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(ImportError(msg.into()))
}

/// A model read from ONNX: the IR plus what the file said about itself.
#[derive(Clone, Debug)]
pub struct Imported {
    pub network: Network,
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    /// The input's dimensions as the file declares them (symbolic ones by name).
    pub declared_input: Vec<String>,
    pub declared_output: Vec<String>,
    /// Simplifications applied on import (folded BatchNorm, removed identities, ...).
    pub notes: Vec<String>,
}

/// A constant tensor (initializer, Constant node or folded subgraph), widened to f64.
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Vec<f64>,
}

impl Const {
    fn scalar(v: f64) -> Self {
        Const { dims: vec![], data: vec![v] }
    }
    fn vector(v: Vec<f64>) -> Self {
        Const { dims: vec![v.len()], data: v }
    }
    fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

enum Value {
    Var(ValueId),
    Const(Const),
}

pub fn import_bytes(bytes: &[u8]) -> Result<Imported> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| ImportError(format!("not a valid ONNX model (protobuf decoding failed: {e})")))?;
    import_model(&model)
}

/// The newest default-domain opset (that of onnx 1.23, the version the tests run against).
/// Newer opsets may redefine operators, so they are refused rather than read with old meanings.
pub const NEWEST_OPSET: i64 = 28;

pub fn import_model(model: &ModelProto) -> Result<Imported> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| ImportError("no opset_import for the default ONNX domain (file truncated?)".into()))?;
    if !(1..=NEWEST_OPSET).contains(&opset) {
        return Err(ImportError(format!(
            "opset {opset} is not an ONNX opset lipcert knows (1 to {NEWEST_OPSET}); operators may mean something else there"
        )));
    }
    let graph = model.graph.as_ref().ok_or_else(|| ImportError("the model has no graph".into()))?;
    if graph.node.is_empty() {
        return Err(ImportError("the graph has no nodes: there is no network to analyse".into()));
    }
    let mut importer = Importer::new(graph, opset)?;
    for node in &graph.node {
        importer.node(node)?;
    }
    let producer = format!("{} {}", model.producer_name, model.producer_version).trim().to_string();
    let mut imported = importer.finish(graph)?;
    let (network, simplify_notes) = simplify(imported.network).map_err(|e| ImportError(e.to_string()))?;
    imported.network = network;
    imported.notes.extend(simplify_notes);
    Ok(Imported { ir_version: model.ir_version, opset, producer, ..imported })
}

fn tensor_to_const(t: &TensorProto) -> Result<Const> {
    let name = &t.name;
    if t.data_location == 1 {
        return err(format!("tensor '{name}' keeps its data in an external file, which is not supported"));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| ImportError(format!("tensor '{name}' has a negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let data: Vec<f64> = if !raw.is_empty() {
        let width = match t.data_type {
            data_type::FLOAT | data_type::INT32 => 4,
            data_type::DOUBLE | data_type::INT64 => 8,
            data_type::FLOAT16 => 2,
            data_type::UINT8 | data_type::INT8 | data_type::BOOL => 1,
            other => return err(format!("tensor '{name}' has unsupported data type {other}")),
        };
        if raw.len() != n * width {
            return err(format!("tensor '{name}' holds {} bytes, its shape {:?} needs {}", raw.len(), dims, n * width));
        }
        let c = raw.chunks_exact(width);
        match t.data_type {
            data_type::FLOAT => c.map(|b| f32::from_le_bytes(b.try_into().expect("width 4")) as f64).collect(),
            data_type::DOUBLE => c.map(|b| f64::from_le_bytes(b.try_into().expect("width 8"))).collect(),
            data_type::INT32 => c.map(|b| i32::from_le_bytes(b.try_into().expect("width 4")) as f64).collect(),
            data_type::INT64 => c.map(|b| i64::from_le_bytes(b.try_into().expect("width 8")) as f64).collect(),
            data_type::FLOAT16 => c.map(|b| f16_to_f64(u16::from_le_bytes([b[0], b[1]]))).collect(),
            data_type::INT8 => c.map(|b| b[0] as i8 as f64).collect(),
            _ => c.map(|b| b[0] as f64).collect(),
        }
    } else {
        match t.data_type {
            data_type::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
            data_type::DOUBLE => t.double_data.clone(),
            data_type::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
            data_type::INT32 | data_type::INT8 | data_type::UINT8 | data_type::BOOL => {
                t.int32_data.iter().map(|&v| v as f64).collect()
            }
            data_type::FLOAT16 => t.int32_data.iter().map(|&v| f16_to_f64(v as u16)).collect(),
            other => return err(format!("tensor '{name}' has unsupported data type {other}")),
        }
    };
    if data.len() != n {
        return err(format!("tensor '{name}' holds {} values, its shape {:?} needs {n}", data.len(), dims));
    }
    Ok(Const { dims, data })
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Numpy-style broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Expands `c` to `shape` by broadcasting (None when the shapes do not broadcast to `shape`).
fn broadcast_to(c: &Const, shape: &[usize]) -> Option<Vec<f64>> {
    if broadcast_shape(&c.dims, shape)? != shape {
        return None;
    }
    let r = shape.len();
    let src_strides = strides(&c.dims);
    // Stride of each target axis in the source (0 where broadcast).
    let stride: Vec<usize> = (0..r)
        .map(|i| {
            let j = i as isize - (r - c.dims.len()) as isize;
            if j < 0 || c.dims[j as usize] == 1 {
                0
            } else {
                src_strides[j as usize]
            }
        })
        .collect();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; r];
    for _ in 0..n {
        out.push(c.data[idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>()]);
        for ax in (0..r).rev() {
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    Some(out)
}

fn const_binary(a: &Const, b: &Const, f: impl Fn(f64, f64) -> f64) -> Option<Const> {
    let dims = broadcast_shape(&a.dims, &b.dims)?;
    let (x, y) = (broadcast_to(a, &dims)?, broadcast_to(b, &dims)?);
    Some(Const { data: x.iter().zip(&y).map(|(p, q)| f(*p, *q)).collect(), dims })
}

/// Resolves an ONNX target shape (0 copies the input dim, -1 is inferred) for `numel` elements.
fn resolve_shape(target: &[i64], input: &[usize], allow_zero: bool) -> std::result::Result<Vec<usize>, String> {
    let numel: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => {
                out.push(*input.get(i).ok_or(format!("shape {target:?} copies axis {i}, which the input lacks"))?)
            }
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid target shape {target:?}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {target:?}"));
        }
        out[i] = numel / known;
    }
    Ok(out)
}

fn normalize_axis(axis: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    // A scalar (rank 0) accepts axis 0, as ONNX's Gather and Concat on scalars do.
    if a < 0 || a as usize >= rank.max(1) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

struct Importer {
    opset: i64,
    builder: NetworkBuilder,
    values: HashMap<String, Value>,
    notes: Vec<String>,
    declared_input: Vec<String>,
}

/// The node being imported, for attribute access and error messages.
struct Ctx<'a> {
    node: &'a NodeProto,
    name: String,
}

impl Ctx<'_> {
    fn fail<T>(&self, msg: impl fmt::Display) -> Result<T> {
        err(format!("node '{}' ({}): {msg}", self.name, self.node.op_type))
    }
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f64) -> f64 {
        self.attr(name).map_or(default, |a| a.f as f64)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    fn usizes(&self, name: &str, default: Vec<usize>) -> Result<Vec<usize>> {
        match self.ints(name) {
            None => Ok(default),
            Some(v) => v
                .iter()
                .map(|&x| {
                    usize::try_from(x).or_else(|_| self.fail(format!("attribute {name} has a negative entry {x}")))
                })
                .collect(),
        }
    }
}

impl Importer {
    fn new(graph: &GraphProto, opset: i64) -> Result<Self> {
        let mut values = HashMap::new();
        for t in &graph.initializer {
            values.insert(t.name.clone(), Value::Const(tensor_to_const(t)?));
        }
        // Graph inputs that are not initializers are the model's real inputs.
        let inputs: Vec<_> = graph.input.iter().filter(|i| !values.contains_key(&i.name)).collect();
        if inputs.len() != 1 {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return err(format!("the model has {} inputs {:?}; lipcert supports exactly one", inputs.len(), names));
        }
        let input = inputs[0];
        let tensor = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| ImportError(format!("input '{}' is not a tensor", input.name)))?;
        if tensor.elem_type != data_type::FLOAT
            && tensor.elem_type != data_type::DOUBLE
            && tensor.elem_type != data_type::FLOAT16
        {
            return err(format!(
                "input '{}' has element type {}; lipcert needs a floating-point input",
                input.name, tensor.elem_type
            ));
        }
        let dims = tensor.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
        // Symbolic or unknown dimensions (a batch axis) are evaluated as 1.
        let shape: Vec<usize> = dims
            .iter()
            .map(|d| match &d.value {
                Some(DimensionValue::DimValue(v)) if *v > 0 => *v as usize,
                _ => 1,
            })
            .collect();
        let declared_input = dims
            .iter()
            .map(|d| match &d.value {
                Some(DimensionValue::DimValue(v)) => v.to_string(),
                Some(DimensionValue::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect();
        values.insert(input.name.clone(), Value::Var(0));
        Ok(Importer {
            opset,
            builder: NetworkBuilder::new(input.name.clone(), shape),
            values,
            notes: vec![],
            declared_input,
        })
    }

    fn get<'a>(&'a self, cx: &Ctx, i: usize) -> Result<&'a Value> {
        let name = match cx.node.input.get(i) {
            Some(n) if !n.is_empty() => n,
            _ => return cx.fail(format!("missing input {i}")),
        };
        self.values.get(name).map_or_else(|| cx.fail(format!("input '{name}' is not produced by any earlier node")), Ok)
    }

    fn optional_const(&self, cx: &Ctx, i: usize) -> Result<Option<Const>> {
        if cx.node.input.get(i).is_none_or(|n| n.is_empty()) {
            return Ok(None);
        }
        match self.get(cx, i)? {
            Value::Const(c) => Ok(Some(c.clone())),
            Value::Var(_) => cx.fail(format!("input {i} must be a constant (initializer), not a computed value")),
        }
    }

    fn constant(&self, cx: &Ctx, i: usize) -> Result<Const> {
        self.optional_const(cx, i)?.map_or_else(|| cx.fail(format!("missing input {i}")), Ok)
    }

    fn var(&self, cx: &Ctx, i: usize) -> Result<ValueId> {
        match self.get(cx, i)? {
            Value::Var(v) => Ok(*v),
            Value::Const(_) => cx.fail(format!("input {i} must be a computed value")),
        }
    }

    fn push(&mut self, cx: &Ctx, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        self.builder.push(cx.name.clone(), op, inputs).map_err(|e| ImportError(e.to_string()))
    }

    fn set(&mut self, cx: &Ctx, v: Value) {
        if let Some(out) = cx.node.output.first() {
            self.values.insert(out.clone(), v);
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let name = if node.name.is_empty() {
            format!("{}_{}", node.op_type, node.output.first().map_or("", |s| s.as_str()))
        } else {
            node.name.clone()
        };
        let cx = Ctx { node, name };
        if !(node.domain.is_empty()
            || node.domain == "ai.onnx"
            || (node.domain == "com.microsoft" && node.op_type == "Gelu"))
        {
            return cx.fail(format!("operator domain '{}' is not supported", node.domain));
        }
        // Extra outputs (Dropout's mask, MaxPool's indices) must be unused: they are never defined.
        let value = self.node_value(&cx)?;
        self.set(&cx, value);
        Ok(())
    }

    /// Computes the (single) output of a node.
    fn node_value(&mut self, cx: &Ctx) -> Result<Value> {
        let op = cx.node.op_type.as_str();
        // Constant folding: every input known, and the operator is cheap to evaluate here.
        match op {
            "Constant" => return self.constant_node(cx),
            "Identity" | "Dropout" => {
                return Ok(match self.get(cx, 0)? {
                    Value::Var(v) => Value::Var(*v),
                    Value::Const(c) => Value::Const(c.clone()),
                })
            }
            "Shape" => {
                let dims: Vec<usize> = match self.get(cx, 0)? {
                    Value::Var(v) => self.builder.shape(*v).to_vec(),
                    Value::Const(c) => c.dims.clone(),
                };
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (clamp(cx.int("start", 0)), clamp(cx.int("end", r)));
                return Ok(Value::Const(Const::vector(dims[s..e.max(s)].iter().map(|&d| d as f64).collect())));
            }
            _ => {}
        }
        match op {
            "Gemm" => self.gemm(cx),
            "MatMul" => self.matmul(cx),
            "Conv" => self.conv(cx),
            "BatchNormalization" => self.batchnorm(cx),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(cx),
            "Relu" => self.activation(cx, Activation::Relu),
            "LeakyRelu" => self.activation(cx, Activation::LeakyRelu { alpha: cx.float("alpha", 0.01) }),
            "Elu" => self.activation(cx, Activation::Elu { alpha: cx.float("alpha", 1.0) }),
            "Sigmoid" => self.activation(cx, Activation::Sigmoid),
            "Tanh" => self.activation(cx, Activation::Tanh),
            "Gelu" => match cx.string("approximate").as_deref().unwrap_or("none") {
                "none" => self.activation(cx, Activation::Gelu { tanh_approx: false }),
                "tanh" => self.activation(cx, Activation::Gelu { tanh_approx: true }),
                other => cx.fail(format!("unknown approximate='{other}'")),
            },
            "AveragePool" | "MaxPool" => self.pool(cx, op == "MaxPool", false),
            "GlobalAveragePool" | "GlobalMaxPool" => self.pool(cx, op == "GlobalMaxPool", true),
            "Pad" => self.pad(cx),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => self.reshape(cx),
            "Transpose" => self.transpose(cx),
            "Gather" | "Concat" | "Cast" => self.const_only(cx),
            other => cx.fail(format!("operator '{other}' is not supported by lipcert")),
        }
    }

    fn constant_node(&self, cx: &Ctx) -> Result<Value> {
        let a =
            cx.node.attribute.first().ok_or_else(|| ImportError(format!("node '{}' (Constant): no value", cx.name)))?;
        let c = match (a.name.as_str(), a.r#type) {
            ("value", _) => tensor_to_const(
                a.t.as_ref().ok_or_else(|| ImportError(format!("node '{}' (Constant): empty tensor", cx.name)))?,
            )?,
            ("value_float", _) => Const::scalar(a.f as f64),
            ("value_int", _) => Const::scalar(a.i as f64),
            ("value_floats", _) => Const::vector(a.floats.iter().map(|&v| v as f64).collect()),
            ("value_ints", _) => Const::vector(a.ints.iter().map(|&v| v as f64).collect()),
            (other, _) => return cx.fail(format!("Constant attribute '{other}' is not supported")),
        };
        Ok(Value::Const(c))
    }

    /// Operators lipcert evaluates only on constants (shape arithmetic).
    fn const_only(&self, cx: &Ctx) -> Result<Value> {
        let consts: Vec<Const> = (0..cx.node.input.len())
            .map(|i| match self.get(cx, i)? {
                Value::Const(c) => Ok(c.clone()),
                Value::Var(_) => cx.fail("only supported on constant inputs (shape computations)"),
            })
            .collect::<Result<_>>()?;
        let c = match cx.node.op_type.as_str() {
            "Cast" => {
                let to = cx.int("to", data_type::FLOAT as i64) as i32;
                let mut c = consts[0].clone();
                if !matches!(to, data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16) {
                    c.data.iter_mut().for_each(|v| *v = v.trunc());
                }
                c
            }
            "Gather" => {
                let (data, idx) = (&consts[0], &consts[1]);
                let axis = normalize_axis(cx.int("axis", 0), data.dims.len()).or_else(|e| cx.fail(e))?;
                let outer: usize = data.dims[..axis].iter().product();
                let inner: usize = data.dims[axis + 1..].iter().product();
                let d = data.dims[axis] as i64;
                let mut out = Vec::new();
                for o in 0..outer {
                    for &i in &idx.ints() {
                        let i = if i < 0 { i + d } else { i };
                        if i < 0 || i >= d {
                            return cx.fail(format!("index {i} out of range {d}"));
                        }
                        let base = (o * d as usize + i as usize) * inner;
                        out.extend_from_slice(&data.data[base..base + inner]);
                    }
                }
                let dims = [&data.dims[..axis], &idx.dims[..], &data.dims[axis + 1..]].concat();
                Const { dims, data: out }
            }
            _ => {
                // Concat
                let rank = consts[0].dims.len();
                let axis = normalize_axis(cx.int("axis", 0), rank).or_else(|e| cx.fail(e))?;
                let outer: usize = consts[0].dims[..axis].iter().product();
                let mut dims = consts[0].dims.clone();
                dims[axis] = consts.iter().map(|c| c.dims.get(axis).copied().unwrap_or(0)).sum();
                let mut data = Vec::new();
                for o in 0..outer {
                    for c in &consts {
                        if c.dims.len() != rank {
                            return cx.fail("inputs of different rank");
                        }
                        let chunk: usize = c.dims[axis..].iter().product();
                        data.extend_from_slice(&c.data[o * chunk..(o + 1) * chunk]);
                    }
                }
                Const { dims, data }
            }
        };
        Ok(Value::Const(c))
    }

    fn gemm(&mut self, cx: &Ctx) -> Result<Value> {
        let x = self.var(cx, 0)?;
        let b = self.constant(cx, 1)?;
        if cx.int("transA", 0) != 0 {
            return cx.fail("transA = 1 is not supported");
        }
        if b.dims.len() != 2 {
            return cx.fail(format!("weight must be a matrix, got shape {:?}", b.dims));
        }
        let (alpha, beta) = (cx.float("alpha", 1.0), cx.float("beta", 1.0));
        let trans_b = cx.int("transB", 0) != 0;
        let (k, n) = if trans_b { (b.dims[1], b.dims[0]) } else { (b.dims[0], b.dims[1]) };
        // Dense weight is [out, in] = op(B)^T.
        let weight: Vec<f64> = if trans_b {
            b.data.iter().map(|v| alpha * v).collect()
        } else {
            (0..n).flat_map(|o| (0..k).map(move |i| (o, i))).map(|(o, i)| alpha * b.data[i * n + o]).collect()
        };
        let bias = match self.optional_const(cx, 2)? {
            None => vec![0.0; n],
            Some(c) => {
                let v = broadcast_to(&c, &[n]).or_else(|| broadcast_to(&c, &[1, n]));
                v.map_or_else(
                    || cx.fail(format!("bias of shape {:?} does not broadcast to [{n}]", c.dims)),
                    |v| Ok(v.iter().map(|b| beta * b).collect()),
                )?
            }
        };
        if self.builder.shape(x).len() != 2 {
            return cx.fail(format!("Gemm input must be 2-D, got shape {:?}", self.builder.shape(x)));
        }
        let v = self.push(cx, Op::Dense(Dense { weight, bias, out_features: n, in_features: k }), &[x])?;
        Ok(Value::Var(v))
    }

    fn matmul(&mut self, cx: &Ctx) -> Result<Value> {
        match (self.get(cx, 0)?, self.get(cx, 1)?) {
            (Value::Var(x), Value::Const(b)) => {
                let (x, b) = (*x, b.clone());
                // x @ B: B is [k, n] (or [k] for a vector product).
                let (k, n) = match b.dims.as_slice() {
                    [k, n] => (*k, *n),
                    [k] => (*k, 1),
                    d => return cx.fail(format!("batched constant of shape {d:?} is not supported")),
                };
                let bd = &b.data;
                let weight: Vec<f64> = (0..n).flat_map(|o| (0..k).map(move |i| bd[i * n + o])).collect();
                let dense = Op::Dense(Dense { weight, bias: vec![0.0; n], out_features: n, in_features: k });
                let shape = self.builder.shape(x).to_vec();
                if shape.is_empty() {
                    return cx.fail("input is a scalar");
                }
                let v = self.push(cx, dense, &[x])?;
                if b.dims.len() == 1 {
                    let s = shape[..shape.len() - 1].to_vec();
                    return Ok(Value::Var(self.push(cx, Op::Reshape { shape: s }, &[v])?));
                }
                Ok(Value::Var(v))
            }
            (Value::Const(a), Value::Var(x)) => {
                let (a, x) = (a.clone(), *x);
                // A @ x: A is [m, k], x is [k] or [.., k, n] (then transpose around a dense node).
                let [m, k] = <[usize; 2]>::try_from(a.dims.as_slice())
                    .or_else(|_| cx.fail(format!("constant left operand must be a matrix, got {:?}", a.dims)))?;
                let dense =
                    Op::Dense(Dense { weight: a.data.clone(), bias: vec![0.0; m], out_features: m, in_features: k });
                let shape = self.builder.shape(x).to_vec();
                if shape.len() == 1 {
                    return Ok(Value::Var(self.push(cx, dense, &[x])?));
                }
                let r = shape.len();
                let mut perm: Vec<usize> = (0..r).collect();
                perm.swap(r - 1, r - 2);
                let t = self.push(cx, Op::Transpose { perm: perm.clone() }, &[x])?;
                let d = self.push(cx, dense, &[t])?;
                Ok(Value::Var(self.push(cx, Op::Transpose { perm }, &[d])?))
            }
            (Value::Const(a), Value::Const(b)) => {
                let (a, b) = (a.clone(), b.clone());
                let ([m, k], [k2, n]) = (
                    <[usize; 2]>::try_from(a.dims.as_slice()).or_else(|_| cx.fail("constant MatMul needs matrices"))?,
                    <[usize; 2]>::try_from(b.dims.as_slice()).or_else(|_| cx.fail("constant MatMul needs matrices"))?,
                );
                if k != k2 {
                    return cx.fail("inner dimensions differ");
                }
                let data = (0..m)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| (0..k).map(|t| a.data[i * k + t] * b.data[t * n + j]).sum())
                    .collect();
                Ok(Value::Const(Const { dims: vec![m, n], data }))
            }
            (Value::Var(_), Value::Var(_)) => cx.fail("a product of two computed values is not supported"),
        }
    }

    fn conv(&mut self, cx: &Ctx) -> Result<Value> {
        let x = self.var(cx, 0)?;
        let w = self.constant(cx, 1)?;
        let [co, cig, kh, kw] = <[usize; 4]>::try_from(w.dims.as_slice())
            .or_else(|_| cx.fail(format!("only 2-D convolutions are supported (weight shape {:?})", w.dims)))?;
        let groups = cx.int("group", 1).max(1) as usize;
        let in_shape = self.builder.shape(x).to_vec();
        if in_shape.len() != 4 {
            return cx.fail(format!("input must be [N, C, H, W], got {in_shape:?}"));
        }
        let kernel = cx.usizes("kernel_shape", vec![kh, kw])?;
        if kernel != [kh, kw] {
            return cx.fail(format!("kernel_shape {kernel:?} disagrees with the weight shape {:?}", w.dims));
        }
        let stride = cx.usizes("strides", vec![1, 1])?;
        let dilation = cx.usizes("dilations", vec![1, 1])?;
        let pads = self.window_pads(cx, &in_shape, [kh, kw], &stride, &dilation)?;
        let bias = self.optional_const(cx, 2)?.map_or(vec![0.0; co], |b| b.data);
        let conv = Conv2d {
            weight: w.data,
            bias,
            out_channels: co,
            in_channels: cig * groups,
            kernel: [kh, kw],
            stride: [stride[0], stride[1]],
            pads,
            dilation: [dilation[0], dilation[1]],
            groups,
        };
        Ok(Value::Var(self.push(cx, Op::Conv2d(conv), &[x])?))
    }

    /// Explicit [top, left, bottom, right] padding from `pads` or `auto_pad`.
    fn window_pads(
        &self,
        cx: &Ctx,
        in_shape: &[usize],
        k: [usize; 2],
        stride: &[usize],
        dil: &[usize],
    ) -> Result<[usize; 4]> {
        if stride.len() != 2 || dil.len() != 2 {
            return cx.fail("strides and dilations need two entries");
        }
        match cx.string("auto_pad").as_deref().unwrap_or("NOTSET") {
            "NOTSET" | "" => {
                let p = cx.usizes("pads", vec![0; 4])?;
                <[usize; 4]>::try_from(p.as_slice()).or_else(|_| cx.fail(format!("pads {p:?} must have 4 entries")))
            }
            "VALID" => Ok([0; 4]),
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                let mut pads = [0; 4];
                for ax in 0..2 {
                    let n = in_shape[2 + ax];
                    let out = n.div_ceil(stride[ax]);
                    let span = dil[ax] * (k[ax] - 1) + 1;
                    let total = ((out - 1) * stride[ax] + span).saturating_sub(n);
                    let (small, big) = (total / 2, total - total / 2);
                    (pads[ax], pads[ax + 2]) = if mode == "SAME_UPPER" { (small, big) } else { (big, small) };
                }
                Ok(pads)
            }
            other => cx.fail(format!("auto_pad '{other}' is not supported")),
        }
    }

    fn batchnorm(&mut self, cx: &Ctx) -> Result<Value> {
        let x = self.var(cx, 0)?;
        if cx.int("training_mode", 0) != 0 || cx.node.output.len() > 1 {
            return cx.fail("only inference-mode BatchNormalization is supported");
        }
        let eps = cx.float("epsilon", 1e-5);
        let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|i| self.constant(cx, i));
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let shape = self.builder.shape(x).to_vec();
        let c =
            *shape.get(1).ok_or_else(|| ImportError(format!("node '{}': input must have a channel axis", cx.name)))?;
        if [&gamma, &beta, &mean, &var].iter().any(|t| t.data.len() != c) {
            return cx.fail(format!("parameters must have {c} entries (one per channel)"));
        }
        let inner: usize = shape[2..].iter().product();
        let per_channel: Vec<(f64, f64)> = (0..c)
            .map(|i| {
                let s = gamma.data[i] / (var.data[i] + eps).sqrt();
                (s, beta.data[i] - mean.data[i] * s)
            })
            .collect();
        let (mut scale, mut shift) = (Vec::new(), Vec::new());
        for _ in 0..shape[0] {
            for &(s, t) in &per_channel {
                scale.extend(std::iter::repeat_n(s, inner));
                shift.extend(std::iter::repeat_n(t, inner));
            }
        }
        Ok(Value::Var(self.push(cx, Op::Affine { scale, shift }, &[x])?))
    }

    fn arithmetic(&mut self, cx: &Ctx) -> Result<Value> {
        let op = cx.node.op_type.as_str();
        let (a, b) = (self.get(cx, 0)?, self.get(cx, 1)?);
        let affine = |x: ValueId, scale: Vec<f64>, shift: Vec<f64>| (x, Op::Affine { scale, shift });
        let (x, node) = match (a, b) {
            (Value::Const(a), Value::Const(b)) => {
                let f: fn(f64, f64) -> f64 = match op {
                    "Add" => |p, q| p + q,
                    "Sub" => |p, q| p - q,
                    "Mul" => |p, q| p * q,
                    _ => |p, q| p / q,
                };
                return const_binary(a, b, f).map(Value::Const).map_or_else(|| cx.fail("shapes do not broadcast"), Ok);
            }
            (Value::Var(x), Value::Var(y)) => {
                let (x, y) = (*x, *y);
                return match op {
                    "Add" => Ok(Value::Var(self.push(cx, Op::Add, &[x, y])?)),
                    "Sub" => {
                        let n: usize = self.builder.shape(y).iter().product();
                        let neg = self.push(cx, Op::Affine { scale: vec![-1.0; n], shift: vec![0.0; n] }, &[y])?;
                        Ok(Value::Var(self.push(cx, Op::Add, &[x, neg])?))
                    }
                    _ => cx.fail("a product or quotient of two computed values is not supported"),
                };
            }
            (Value::Var(x), Value::Const(c)) | (Value::Const(c), Value::Var(x)) => {
                let var_first = matches!(a, Value::Var(_));
                let shape = self.builder.shape(*x).to_vec();
                let c = broadcast_to(c, &shape).ok_or_else(|| {
                    ImportError(format!(
                        "node '{}' ({op}): constant of shape {:?} does not broadcast to {:?}",
                        cx.name, c.dims, shape
                    ))
                })?;
                let n = c.len();
                match (op, var_first) {
                    ("Add", _) => affine(*x, vec![1.0; n], c),
                    ("Sub", true) => affine(*x, vec![1.0; n], c.iter().map(|v| -v).collect()),
                    ("Sub", false) => affine(*x, vec![-1.0; n], c),
                    ("Mul", _) => affine(*x, c, vec![0.0; n]),
                    ("Div", true) => {
                        if c.contains(&0.0) {
                            return cx.fail("division by a constant that contains zero");
                        }
                        affine(*x, c.iter().map(|v| 1.0 / v).collect(), vec![0.0; n])
                    }
                    _ => return cx.fail("dividing a constant by a computed value is not supported"),
                }
            }
        };
        Ok(Value::Var(self.push(cx, node, &[x])?))
    }

    fn activation(&mut self, cx: &Ctx, a: Activation) -> Result<Value> {
        let x = self.var(cx, 0)?;
        Ok(Value::Var(self.push(cx, Op::Activation(a), &[x])?))
    }

    fn pool(&mut self, cx: &Ctx, max: bool, global: bool) -> Result<Value> {
        let x = self.var(cx, 0)?;
        let shape = self.builder.shape(x).to_vec();
        if shape.len() != 4 {
            return cx.fail(format!("only 2-D pooling on [N, C, H, W] is supported, got {shape:?}"));
        }
        if cx.node.output.len() > 1 && cx.node.output[1..].iter().any(|o| !o.is_empty()) {
            return cx.fail("the indices output of MaxPool is not supported");
        }
        let pool = if global {
            Pool2d {
                kernel: [shape[2], shape[3]],
                stride: [1, 1],
                pads: [0; 4],
                dilation: [1, 1],
                count_include_pad: false,
            }
        } else {
            if cx.int("ceil_mode", 0) != 0 {
                return cx.fail("ceil_mode = 1 is not supported");
            }
            let k = cx.usizes("kernel_shape", vec![])?;
            let k: [usize; 2] =
                <[usize; 2]>::try_from(k.as_slice()).or_else(|_| cx.fail("kernel_shape must have 2 entries"))?;
            let stride = cx.usizes("strides", vec![1, 1])?;
            let dilation = cx.usizes("dilations", vec![1, 1])?;
            let pads = self.window_pads(cx, &shape, k, &stride, &dilation)?;
            Pool2d {
                kernel: k,
                stride: [stride[0], stride[1]],
                pads,
                dilation: [dilation[0], dilation[1]],
                count_include_pad: cx.int("count_include_pad", 0) != 0,
            }
        };
        let op = if max { Op::MaxPool(pool) } else { Op::AvgPool(pool) };
        Ok(Value::Var(self.push(cx, op, &[x])?))
    }

    fn pad(&mut self, cx: &Ctx) -> Result<Value> {
        let x = self.var(cx, 0)?;
        let rank = self.builder.shape(x).len();
        let mode = cx.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return cx.fail(format!("mode '{mode}' is not supported (only constant padding)"));
        }
        let (raw, value, axes) = if self.opset < 11 {
            (cx.ints("pads").unwrap_or_default(), cx.float("value", 0.0), None)
        } else {
            let pads = self.constant(cx, 1)?.ints();
            let value = self.optional_const(cx, 2)?.map_or(0.0, |c| c.data.first().copied().unwrap_or(0.0));
            let axes = self.optional_const(cx, 3)?.map(|c| c.ints());
            (pads, value, axes)
        };
        let axes: Vec<usize> = match axes {
            None => (0..rank).collect(),
            Some(a) => a
                .iter()
                .map(|&v| normalize_axis(v, rank))
                .collect::<std::result::Result<_, _>>()
                .or_else(|e| cx.fail(e))?,
        };
        if raw.len() != 2 * axes.len() {
            return cx.fail(format!("{} pads for {} axes", raw.len(), axes.len()));
        }
        if raw.iter().any(|&p| p < 0) {
            return cx.fail("negative pads (cropping) are not supported");
        }
        let mut pads = vec![0usize; 2 * rank];
        for (i, &ax) in axes.iter().enumerate() {
            pads[ax] = raw[i] as usize;
            pads[ax + rank] = raw[i + axes.len()] as usize;
        }
        if pads.iter().all(|&p| p == 0) {
            self.notes.push(format!("removed '{}' (Pad with zero pads)", cx.name));
            return Ok(Value::Var(x));
        }
        Ok(Value::Var(self.push(cx, Op::Pad { pads, value }, &[x])?))
    }

    fn reshape(&mut self, cx: &Ctx) -> Result<Value> {
        let op = cx.node.op_type.as_str();
        let (dims, var) = match self.get(cx, 0)? {
            Value::Var(v) => (self.builder.shape(*v).to_vec(), Some(*v)),
            Value::Const(c) => (c.dims.clone(), None),
        };
        let rank = dims.len();
        let axes_of = |this: &Self| -> Result<Option<Vec<i64>>> {
            if this.opset >= 13 {
                Ok(this.optional_const(cx, 1)?.map(|c| c.ints()))
            } else {
                Ok(cx.ints("axes"))
            }
        };
        let shape: Vec<usize> = match op {
            "Flatten" => {
                let axis = cx.int("axis", 1);
                let axis = if axis < 0 { axis + rank as i64 } else { axis };
                if axis < 0 || axis as usize > rank {
                    return cx.fail(format!("axis {axis} is out of range for rank {rank}"));
                }
                let a = axis as usize;
                vec![dims[..a].iter().product(), dims[a..].iter().product()]
            }
            "Reshape" => {
                let target = self.constant(cx, 1)?.ints();
                resolve_shape(&target, &dims, cx.int("allowzero", 0) != 0).or_else(|e| cx.fail(e))?
            }
            "Squeeze" => {
                let axes = axes_of(self)?;
                let drop: Vec<usize> = match axes {
                    None => (0..rank).filter(|&i| dims[i] == 1).collect(),
                    Some(a) => a
                        .iter()
                        .map(|&v| normalize_axis(v, rank))
                        .collect::<std::result::Result<_, _>>()
                        .or_else(|e| cx.fail(e))?,
                };
                if drop.iter().any(|&i| dims[i] != 1) {
                    return cx.fail(format!("cannot squeeze a non-unit axis of {dims:?}"));
                }
                (0..rank).filter(|i| !drop.contains(i)).map(|i| dims[i]).collect()
            }
            _ => {
                // Unsqueeze
                let axes =
                    axes_of(self)?.ok_or_else(|| ImportError(format!("node '{}' (Unsqueeze): no axes", cx.name)))?;
                let out_rank = rank + axes.len();
                let ins: Vec<usize> = axes
                    .iter()
                    .map(|&v| normalize_axis(v, out_rank))
                    .collect::<std::result::Result<_, _>>()
                    .or_else(|e| cx.fail(e))?;
                let mut it = dims.iter();
                (0..out_rank).map(|i| if ins.contains(&i) { 1 } else { *it.next().unwrap_or(&1) }).collect()
            }
        };
        match var {
            Some(v) => Ok(Value::Var(self.push(cx, Op::Reshape { shape }, &[v])?)),
            None => {
                let Value::Const(c) = self.get(cx, 0)? else { unreachable!() };
                if shape.iter().product::<usize>() != c.data.len() {
                    return cx.fail(format!("cannot reshape a constant of shape {:?} to {shape:?}", c.dims));
                }
                Ok(Value::Const(Const { dims: shape, data: c.data.clone() }))
            }
        }
    }

    fn transpose(&mut self, cx: &Ctx) -> Result<Value> {
        let dims = match self.get(cx, 0)? {
            Value::Var(v) => self.builder.shape(*v).to_vec(),
            Value::Const(c) => c.dims.clone(),
        };
        let perm: Vec<usize> = match cx.ints("perm") {
            Some(p) => p
                .iter()
                .map(|&v| normalize_axis(v, dims.len()))
                .collect::<std::result::Result<_, _>>()
                .or_else(|e| cx.fail(e))?,
            None => (0..dims.len()).rev().collect(),
        };
        match self.get(cx, 0)? {
            Value::Var(v) => {
                let v = *v;
                Ok(Value::Var(self.push(cx, Op::Transpose { perm }, &[v])?))
            }
            Value::Const(c) => {
                if perm.len() != dims.len() {
                    return cx.fail("perm does not match the rank");
                }
                let index = transpose_gather_index(&dims, &perm);
                Ok(Value::Const(Const {
                    dims: perm.iter().map(|&p| dims[p]).collect(),
                    data: index.iter().map(|&i| c.data[i]).collect(),
                }))
            }
        }
    }

    /// The network as read (not yet simplified); model-level fields are left for the caller.
    fn finish(self, graph: &GraphProto) -> Result<Imported> {
        if graph.output.len() != 1 {
            return err(format!("the model has {} outputs; lipcert supports exactly one", graph.output.len()));
        }
        let out = &graph.output[0];
        let declared_output = out
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(DimensionValue::DimValue(v)) => v.to_string(),
                        Some(DimensionValue::DimParam(p)) => p.clone(),
                        None => "?".into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let v = match self.values.get(&out.name) {
            Some(Value::Var(v)) => *v,
            Some(Value::Const(_)) => {
                return err(format!("output '{}' is a constant, not a function of the input", out.name))
            }
            None => return err(format!("output '{}' is not produced by any node", out.name)),
        };
        let network = self.builder.finish(v, out.name.clone()).map_err(|e| ImportError(e.to_string()))?;
        Ok(Imported {
            network,
            ir_version: 0,
            opset: self.opset,
            producer: String::new(),
            declared_input: self.declared_input,
            declared_output,
            notes: self.notes,
        })
    }
}
