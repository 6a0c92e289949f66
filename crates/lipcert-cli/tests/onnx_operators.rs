//! Import of ONNX operators the benchmark networks do not use (BatchNormalization folded and
//! unfolded, arithmetic with constants on either side, PyTorch's Shape/Gather/Concat/Reshape
//! flatten, auto_pad, global pooling, constant-left MatMul, Pad with a value, Squeeze, ...),
//! checked against onnxruntime on hand-built models.

mod common;
use common::*;
use lipcert_core::Rng;
use lipcert_io::onnx::proto::*;
use lipcert_io::{DType, NpyArray};
use prost::Message;

#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    count: usize,
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints: v.to_vec(), ..Default::default() }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i: v, ..Default::default() }
}
fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f: v, ..Default::default() }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::STRING, s: v.as_bytes().to_vec(), ..Default::default() }
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}{}", self.count)
    }
    fn init(&mut self, dims: &[usize], data: Vec<f32>) -> String {
        assert_eq!(dims.iter().product::<usize>(), data.len());
        let name = self.fresh("w");
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }
    fn random(&mut self, rng: &mut Rng, dims: &[usize]) -> String {
        let n = dims.iter().product();
        self.init(dims, (0..n).map(|_| rng.normal() as f32 * 0.5).collect())
    }
    fn positive(&mut self, rng: &mut Rng, n: usize) -> String {
        self.init(&[n], (0..n).map(|_| rng.range(0.5, 2.0) as f32).collect())
    }
    fn i64s(&mut self, data: &[i64]) -> String {
        let name = self.fresh("i");
        self.inits.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            int64_data: data.to_vec(), // typed field, not raw_data
            ..Default::default()
        });
        name
    }
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&format!("{op}_out"));
        let name = self.fresh(op);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name,
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        out
    }
    fn batchnorm(&mut self, rng: &mut Rng, x: &str, c: usize) -> String {
        let g = self.positive(rng, c);
        let b = self.random(rng, &[c]);
        let m = self.random(rng, &[c]);
        let v = self.positive(rng, c);
        self.node("BatchNormalization", &[x, &g, &b, &m, &v], vec![float("epsilon", 1e-3)])
    }
    fn model(self, input: Vec<DimensionValue>, output: &str) -> ModelProto {
        let vi = |name: &str, dims: Vec<DimensionValue>| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: data_type::FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: dims.into_iter().map(|d| Dimension { value: Some(d) }).collect(),
                    }),
                }),
            }),
            doc_string: String::new(),
        };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(GraphProto {
                node: self.nodes,
                initializer: self.inits,
                input: vec![vi("x", input)],
                output: vec![vi(output, vec![])],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn dims(d: &[i64]) -> Vec<DimensionValue> {
    d.iter().map(|&v| DimensionValue::DimValue(v)).collect()
}

/// Saves the model, evaluates it with lipcert and onnxruntime on random inputs, compares.
/// Returns lipcert's `info --json` for further checks.
fn check(name: &str, model: ModelProto, input_len: usize) -> serde_json::Value {
    let dir = tempdir(&format!("ops-{name}"));
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let mut rng = Rng::new(11);
    let n = 6;
    let x: Vec<f64> = (0..n * input_len).map(|_| rng.range(-1.5, 1.5) as f32 as f64).collect();
    let xp = dir.join("x.npy");
    NpyArray::new(vec![n, input_len], x, DType::F32).write(&xp).unwrap();
    let (ours, theirs) = (dir.join("ours.npy"), dir.join("theirs.npy"));
    let (p, xs) = (path.to_str().unwrap(), xp.to_str().unwrap());
    lipcert_ok(&["eval", p, "--input", xs, "--output", ours.to_str().unwrap()]);
    oracle(&["eval", p, xs, theirs.to_str().unwrap()]);
    let err = max_row_error(&NpyArray::read(&ours).unwrap(), &NpyArray::read(&theirs).unwrap());
    assert!(err <= 1e-5, "{name}: lipcert differs from onnxruntime by {err:e}");
    serde_json::from_str(&lipcert_ok(&["info", p, "--json"])).unwrap()
}

fn ops(info: &serde_json::Value) -> Vec<String> {
    info["nodes"].as_array().unwrap().iter().map(|n| n["op"].as_str().unwrap().to_string()).collect()
}

#[test]
fn conv_batchnorm_pooling_gemm_model() {
    if !oracle_available() {
        return;
    }
    let mut rng = Rng::new(1);
    let mut g = Graph::default();
    let w1 = g.random(&mut rng, &[4, 3, 3, 3]);
    let b1 = g.random(&mut rng, &[4]);
    let c1 = g.node("Conv", &["x", &w1, &b1], vec![ints("pads", &[1, 1, 1, 1])]);
    let bn1 = g.batchnorm(&mut rng, &c1, 4);
    let r1 = g.node("Relu", &[&bn1], vec![]);
    let w2 = g.random(&mut rng, &[6, 2, 3, 3]);
    let c2 =
        g.node("Conv", &[&r1, &w2], vec![string("auto_pad", "SAME_UPPER"), ints("strides", &[2, 2]), int("group", 2)]);
    let bn2 = g.batchnorm(&mut rng, &c2, 6);
    let gap = g.node("GlobalAveragePool", &[&bn2], vec![]);
    let flat = g.node("Flatten", &[&gap], vec![]);
    let wg = g.random(&mut rng, &[6, 5]);
    let bg = g.random(&mut rng, &[5]);
    let gemm = g.node("Gemm", &[&flat, &wg, &bg], vec![float("alpha", 0.5), float("beta", 2.0)]);
    let out = g.node("Dropout", &[&gemm], vec![]);
    let info = check("conv-bn", g.model(dims(&[1, 3, 7, 7]), &out), 3 * 49);
    // Both BatchNorms fold into their convolutions.
    assert_eq!(ops(&info), ["Conv2d", "Relu", "Conv2d", "AvgPool", "Reshape", "Dense"]);
}

#[test]
fn arithmetic_pooling_and_pytorch_flatten_model() {
    if !oracle_available() {
        return;
    }
    let mut rng = Rng::new(2);
    let mut g = Graph::default();
    // BatchNorm right after the input cannot fold: it stays an affine node.
    let a = g.batchnorm(&mut rng, "x", 2);
    let k = g.random(&mut rng, &[1, 2, 1, 1]);
    let b = g.node("Mul", &["x", &k], vec![]);
    let c = g.node("Sub", &[&a, &b], vec![]);
    let two = g.init(&[], vec![2.0]);
    let d = g.node("Div", &[&c, &two], vec![]);
    let one = g.init(&[1], vec![1.0]);
    let e = g.node("Sub", &[&one, &d], vec![]);
    let f = g.node("LeakyRelu", &[&e], vec![float("alpha", 0.2)]);
    let p = g.node(
        "AveragePool",
        &[&f],
        vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1]), int("count_include_pad", 1)],
    );
    let q = g.node("AveragePool", &[&p], vec![ints("kernel_shape", &[2, 2]), ints("pads", &[1, 0, 0, 1])]);
    let m = g.node(
        "MaxPool",
        &[&q],
        vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2]), ints("pads", &[0, 0, 1, 1])],
    );
    // x.view(x.size(0), -1) as PyTorch exports it.
    let shape = g.node("Shape", &[&m], vec![]);
    let zero = g.i64s(&[0]);
    let batch = g.node("Gather", &[&shape, &zero], vec![int("axis", 0)]);
    let minus_one = g.i64s(&[-1]);
    let target = g.node("Concat", &[&batch, &minus_one], vec![int("axis", 0)]);
    let flat = g.node("Reshape", &[&m, &target], vec![]);
    let w = g.random(&mut rng, &[18, 4]);
    let mm = g.node("MatMul", &[&flat, &w], vec![]);
    let bias = g.random(&mut rng, &[4]);
    let add = g.node("Add", &[&bias, &mm], vec![]);
    let elu = g.node("Elu", &[&add], vec![float("alpha", 0.5)]);
    let th = g.node("Tanh", &[&elu], vec![]);
    let sg = g.node("Sigmoid", &[&th], vec![]);
    let out = g.node("Identity", &[&sg], vec![]);
    let info = check(
        "arith",
        g.model(
            vec![
                DimensionValue::DimParam("batch".into()),
                DimensionValue::DimValue(2),
                DimensionValue::DimValue(5),
                DimensionValue::DimValue(5),
            ],
            &out,
        ),
        50,
    );
    assert_eq!(info["inputs"][0]["shape"], serde_json::json!([1, 2, 5, 5]));
    assert_eq!(info["inputs"][0]["declared_shape"][0], "batch");
}

#[test]
fn constant_left_matmul_pad_squeeze_model() {
    if !oracle_available() {
        return;
    }
    let mut rng = Rng::new(3);
    let mut g = Graph::default();
    // x is [3, 4] with no batch axis; A @ x with A [5, 3] contracts the first axis.
    let a = g.random(&mut rng, &[5, 3]);
    let ax = g.node("MatMul", &[&a, "x"], vec![]);
    let r = g.node("Relu", &[&ax], vec![]);
    let t = g.node("Transpose", &[&r], vec![]);
    let axes = g.i64s(&[0, 1]);
    let u = g.node("Unsqueeze", &[&t, &axes], vec![]);
    let pads = g.i64s(&[0, 0, 1, 2, 0, 0, 2, 1]);
    let value = g.init(&[], vec![0.5]);
    let p = g.node("Pad", &[&u, &pads, &value], vec![]);
    let w = g.random(&mut rng, &[2, 1, 2, 2]);
    let c = g.node("Conv", &[&p, &w], vec![ints("dilations", &[2, 1]), ints("strides", &[1, 2])]);
    let sq_axes = g.i64s(&[0]);
    let s = g.node("Squeeze", &[&c, &sq_axes], vec![]);
    let f = g.node("Flatten", &[&s], vec![int("axis", 0)]);
    let wg = g.random(&mut rng, &[3, 40]);
    let out = g.node("Gemm", &[&f, &wg], vec![int("transB", 1)]);
    check("matmul-left", g.model(dims(&[3, 4]), &out), 12);
}
