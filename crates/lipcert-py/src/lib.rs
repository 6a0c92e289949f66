//! `lipcert._lipcert`: the Python bindings. Each function converts its arguments, calls the
//! `compute` function of the matching `lipcert-cli` command with the GIL released, and returns
//! that command's `--json` value as a Python dict. There is no analysis logic here. Errors
//! (and panics) become `LipcertError` with the CLI's one-line message. The Python package
//! (python/lipcert) gives these functions their keyword arguments and NumPy shapes.

use anyhow::anyhow;
use lipcert_cli::commands as cmd;
use lipcert_io::Imported;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

// As in the CLI: keeps the bound engine's freed coefficient blocks instead of page-faulting
// fresh ones (Python's own memory is not affected).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pyo3::create_exception!(_lipcert, LipcertError, PyValueError, "An error of lipcert: the CLI's one-line message.");

/// The one-line message of an error chain, as the CLI prints it after "error: ".
fn py_err(e: anyhow::Error) -> PyErr {
    LipcertError::new_err(format!("{e:#}").replace('\n', " "))
}

/// Runs `f` with the GIL released; an error or a panic becomes a `LipcertError`.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> anyhow::Result<T> + Send) -> PyResult<T> {
    let outcome = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match outcome {
        Ok(r) => r.map_err(py_err),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(LipcertError::new_err(format!("internal error: {msg} (please report this)")))
        }
    }
}

/// A JSON value as the matching Python object (dict, list, float, ...).
fn to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| py_err(e.into()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A contiguous float64 array's values.
fn values(a: &PyReadonlyArray1<'_, f64>) -> PyResult<Vec<f64>> {
    Ok(a.as_slice().map_err(|e| LipcertError::new_err(e.to_string()))?.to_vec())
}

/// One of a clap value enum's names (case-insensitive), as the CLI accepts it.
fn choice<T: clap::ValueEnum>(what: &str, s: &str) -> anyhow::Result<T> {
    T::from_str(s, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        anyhow!("{what} '{s}': expected one of {}", names.join(", "))
    })
}

/// Two float64 arrays returned together (an output and a Jacobian, or u and v).
type ArrayPair<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// A loaded ONNX model.
#[pyclass(module = "lipcert._lipcert", frozen)]
struct Model {
    m: Imported,
    path: PathBuf,
}

impl Model {
    /// The network, refused here if it is too large to analyse (as the CLI's analyses do).
    fn analysable(&self) -> anyhow::Result<&lipcert_core::Network> {
        cmd::check_analysable(&self.path, &self.m.network)?;
        Ok(&self.m.network)
    }
}

#[pymethods]
impl Model {
    /// Outputs of a batch: `x` holds n rows of the model input's elements (shape gives the
    /// array's own shape, for the error messages); returns the n x outputs values, flat.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray1<'_, f64>,
        shape: Vec<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x = values(&x)?;
        let y = detached(py, || {
            let net = self.analysable()?;
            let n = cmd::eval::batch_size("x", &shape, &x, net)?;
            cmd::eval::forward(net, &x, n, &|_| {})
        })?;
        Ok(y.into_pyarray(py))
    }

    /// The output at one sample and the Jacobian, row-major [outputs, inputs], flat.
    fn jacobian<'py>(&self, py: Python<'py>, x: PyReadonlyArray1<'_, f64>) -> PyResult<ArrayPair<'py>> {
        let x = values(&x)?;
        let (y, j) = detached(py, || {
            let net = self.analysable()?;
            cmd::eval::batch_size("x", &[1, x.len()], &x, net)?;
            Ok(net.jacobian(&x)?)
        })?;
        Ok((y.into_pyarray(py), j.into_pyarray(py)))
    }

    /// What `lipcert info --json` prints.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &cmd::info::to_json(&self.path.display().to_string(), &self.m))
    }

    /// Writes the model to ONNX (precision "f32" or "f64"); what `lipcert export --json` prints.
    fn export(&self, py: Python<'_>, path: PathBuf, precision: &str) -> PyResult<Py<PyAny>> {
        let v = detached(py, || {
            let p: cmd::export::Precision = choice("precision", precision)?;
            cmd::export::compute(&self.m.network, &self.m.notes, &path, p)
        })?;
        to_py(py, &v)
    }

    /// The file the model was loaded from.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }
}

/// Loads an ONNX model (the error names the file).
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    let m = detached(py, || cmd::import_model(&path))?;
    Ok(Model { m, path })
}

/// `lipcert spectral --matrix` (w flat, row-major with its shape).
#[pyfunction]
#[pyo3(signature = (w, shape, method, iters, tol, seed))]
fn spectral_matrix(
    py: Python<'_>,
    w: PyReadonlyArray1<'_, f64>,
    shape: Vec<usize>,
    method: &str,
    iters: Option<usize>,
    tol: Option<f64>,
    seed: u64,
) -> PyResult<Py<PyAny>> {
    let w = values(&w)?;
    let v = detached(py, || {
        let settings = cmd::spectral::Settings { method: choice("method", method)?, iters, tol, grid: None, seed };
        cmd::spectral::check_finite("W", &shape, &w)?;
        let op = cmd::spectral::Operator::matrix("W", w, &shape)?;
        Ok(cmd::spectral::compute(&op, &settings)?.to_json())
    })?;
    to_py(py, &v)
}

/// `lipcert spectral --conv` (kernel flat, [c_out, c_in, kh, kw]).
#[pyfunction]
#[pyo3(signature = (kernel, shape, input_size, padding, pad, stride, method, iters, tol, grid, seed))]
#[allow(clippy::too_many_arguments)]
fn spectral_conv(
    py: Python<'_>,
    kernel: PyReadonlyArray1<'_, f64>,
    shape: Vec<usize>,
    input_size: Vec<usize>,
    padding: &str,
    pad: Option<usize>,
    stride: usize,
    method: &str,
    iters: Option<usize>,
    tol: Option<f64>,
    grid: Option<Vec<usize>>,
    seed: u64,
) -> PyResult<Py<PyAny>> {
    let k = values(&kernel)?;
    let v = detached(py, || {
        let settings = cmd::spectral::Settings { method: choice("method", method)?, iters, tol, grid, seed };
        cmd::spectral::check_finite("kernel", &shape, &k)?;
        let geometry = cmd::spectral::ConvGeometry { input_size, padding: choice("padding", padding)?, pad, stride };
        let op = cmd::spectral::Operator::conv("kernel", k, &shape, &geometry)?;
        Ok(cmd::spectral::compute(&op, &settings)?.to_json())
    })?;
    to_py(py, &v)
}

/// The top singular pair (u, v) of the row-major [m, n] matrix w: u v^T is the gradient of
/// sigma_1 (the value every certified bracket closes on) with respect to W.
#[pyfunction]
fn top_singular_pair<'py>(
    py: Python<'py>,
    w: PyReadonlyArray1<'_, f64>,
    m: usize,
    n: usize,
) -> PyResult<ArrayPair<'py>> {
    let w = values(&w)?;
    let (u, v) = detached(py, || {
        cmd::spectral::check_finite("W", &[m, n], &w)?;
        lipcert_spectral::dense::top_singular_pair(&w, m, n)
            .ok_or_else(|| anyhow!("W: no singular pair of a {m} x {n} matrix"))
    })?;
    Ok((u.into_pyarray(py), v.into_pyarray(py)))
}

/// `lipcert lipschitz MODEL --json`.
#[pyfunction]
fn lipschitz(py: Python<'_>, model: &Model, norm: &str, starts: usize, steps: usize, seed: u64) -> PyResult<Py<PyAny>> {
    let v = detached(py, || {
        let norm: cmd::lipschitz::NormArg = choice("norm", norm)?;
        let search = lipcert_spectral::lipschitz::Search { starts, steps, seed, points: vec![] };
        Ok(cmd::lipschitz::compute(model.analysable()?, norm.norm(), search).to_json())
    })?;
    to_py(py, &v)
}

/// `lipcert bounds MODEL --vnnlib P` or `--box LO HI` (exactly one of the two is given).
#[pyfunction]
#[allow(clippy::too_many_arguments)] // one per keyword of the Python function
#[pyo3(signature = (model, vnnlib, lo, hi, method, alpha_iterations, fix_intermediate))]
fn bounds(
    py: Python<'_>,
    model: &Model,
    vnnlib: Option<PathBuf>,
    lo: Option<PyReadonlyArray1<'_, f64>>,
    hi: Option<PyReadonlyArray1<'_, f64>>,
    method: &str,
    alpha_iterations: usize,
    fix_intermediate: bool,
) -> PyResult<Py<PyAny>> {
    let lo = lo.as_ref().map(values).transpose()?;
    let hi = hi.as_ref().map(values).transpose()?;
    let v = detached(py, || {
        let method: cmd::bounds::MethodArg = choice("method", method)?;
        let net = model.analysable()?;
        let pb = match (vnnlib, lo, hi) {
            (Some(p), None, None) => cmd::bounds::Problem::from_vnnlib(&p, net)?,
            (None, Some(lo), Some(hi)) => cmd::bounds::Problem::from_box(lo, hi, net)?,
            _ => anyhow::bail!("give either vnnlib=PATH or box=(lo, hi)"),
        };
        Ok(cmd::bounds::compute(net, &pb, method.method(), alpha_iterations, fix_intermediate)?.to_json(&pb))
    })?;
    to_py(py, &v)
}

/// Reads a VNN-LIB property for the model (checked against its sizes).
fn property(path: &Path, net: &lipcert_core::Network) -> anyhow::Result<lipcert_io::vnnlib::Property> {
    cmd::load_property(path, net)
}

/// `lipcert attack MODEL --vnnlib P --json`.
#[pyfunction]
fn attack(
    py: Python<'_>,
    model: &Model,
    vnnlib: PathBuf,
    method: &str,
    restarts: usize,
    steps: usize,
    seed: u64,
) -> PyResult<Py<PyAny>> {
    let v = detached(py, || {
        let method: cmd::attack::MethodArg = choice("method", method)?;
        let net = model.analysable()?;
        let p = property(&vnnlib, net)?;
        Ok(cmd::attack::compute(net, &p, method, restarts, steps, seed)?.to_json())
    })?;
    to_py(py, &v)
}

/// `lipcert verify MODEL PROPERTY --json`.
#[pyfunction]
fn verify(py: Python<'_>, model: &Model, vnnlib: PathBuf, timeout: f64, seed: u64) -> PyResult<Py<PyAny>> {
    let v = detached(py, || {
        let net = model.analysable()?;
        let p = property(&vnnlib, net)?;
        let (verdict, stats) = cmd::verify::compute(net, &p, timeout, seed)?;
        Ok(cmd::verify::to_json(&verdict, &stats))
    })?;
    to_py(py, &v)
}

/// `lipcert boundary MODEL --input X --label L --json` (x: one sample, flat).
#[pyfunction]
#[pyo3(signature = (model, x, label, norm, timeout, tol, clip, seed))]
#[allow(clippy::too_many_arguments)]
fn boundary(
    py: Python<'_>,
    model: &Model,
    x: PyReadonlyArray1<'_, f64>,
    label: usize,
    norm: &str,
    timeout: f64,
    tol: f64,
    clip: Vec<f64>,
    seed: u64,
) -> PyResult<Py<PyAny>> {
    let x = values(&x)?;
    let v = detached(py, || {
        let settings = cmd::boundary::Settings { label, norm: choice("norm", norm)?, timeout, tol, clip, seed };
        cmd::boundary::check_settings(&settings)?;
        let net = model.analysable()?;
        cmd::boundary::check_sample("x", &[x.len()], x.len(), net)?;
        let r = cmd::boundary::compute(net, "x", &x, &settings, &mut |_| {})?;
        Ok(cmd::boundary::to_json(&r, &settings.clip, tol))
    })?;
    to_py(py, &v)
}

/// `lipcert substitute MODEL --input X --label L --json` (x: one sample, flat); writes the
/// substitute to `output` (f64 ONNX) when given.
#[pyfunction]
#[pyo3(signature = (model, x, label, kind, gamma, gamma0, bounds, timeout, tol, clip, seed, compare, certify, output))]
#[allow(clippy::too_many_arguments)]
fn substitute(
    py: Python<'_>,
    model: &Model,
    x: PyReadonlyArray1<'_, f64>,
    label: usize,
    kind: &str,
    gamma: f64,
    gamma0: f64,
    bounds: &str,
    timeout: f64,
    tol: f64,
    clip: Vec<f64>,
    seed: u64,
    compare: bool,
    certify: bool,
    output: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let x = values(&x)?;
    let v = detached(py, || {
        let settings = cmd::boundary::Settings { label, norm: cmd::lipschitz::NormArg::Inf, timeout, tol, clip, seed };
        let kind: cmd::substitute::KindArg = choice("kind", kind)?;
        let c = cmd::substitute::Choice {
            kind: kind.kind(),
            gamma,
            gamma0,
            bounds: choice("bounds", bounds)?,
            compare,
            certify,
        };
        let net = model.analysable()?;
        cmd::boundary::check_sample("x", &[x.len()], x.len(), net)?;
        let r = cmd::substitute::compute(net, "x", &x, &settings, &c, &mut |_| {})?;
        if let Some(path) = &output {
            lipcert_io::export_file(&r.network, path, lipcert_io::ExportPrecision::F64)
                .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
        }
        Ok(cmd::substitute::to_json(&r, output.as_deref()))
    })?;
    to_py(py, &v)
}

/// `lipcert deviation ORIGINAL PRUNED --box LO HI` or `--vnnlib P`, `--json`.
#[pyfunction]
#[pyo3(signature = (original, pruned, vnnlib, lo, hi, bound, splits, timeout, samples, seed, budget))]
#[allow(clippy::too_many_arguments)]
fn deviation(
    py: Python<'_>,
    original: &Model,
    pruned: &Model,
    vnnlib: Option<PathBuf>,
    lo: Option<PyReadonlyArray1<'_, f64>>,
    hi: Option<PyReadonlyArray1<'_, f64>>,
    bound: &str,
    splits: Option<usize>,
    timeout: f64,
    samples: usize,
    seed: u64,
    budget: Option<f64>,
) -> PyResult<Py<PyAny>> {
    let lo = lo.as_ref().map(values).transpose()?;
    let hi = hi.as_ref().map(values).transpose()?;
    let v = detached(py, || {
        let measure = cmd::deviation::MeasureArgs { bound: choice("bound", bound)?, splits, timeout, samples, seed };
        let (f, g) = (original.analysable()?, pruned.analysable()?);
        let states = match (vnnlib, lo, hi) {
            (Some(p), None, None) => cmd::deviation::BoxArgs { bounds: vec![], system: None, vnnlib: Some(p) }
                .resolve(f)?
                .expect("a vnnlib box"),
            (None, Some(lo), Some(hi)) => cmd::deviation::StateBox::new(lo, hi, "box", f.input_len())?,
            _ => anyhow::bail!("give either vnnlib=PATH or box=(lo, hi)"),
        };
        Ok(cmd::deviation::compute(f, g, &states, &measure, budget)?.to_json())
    })?;
    to_py(py, &v)
}

/// Class labels as indices (a negative label is refused with the CLI's message).
fn class_indices(labels: &[i64], classes: usize) -> anyhow::Result<Vec<usize>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            usize::try_from(l)
                .ok()
                .filter(|&c| c < classes)
                .ok_or_else(|| anyhow!("labels: label {l} of sample {i} is not a class index below {classes}"))
        })
        .collect()
}

/// `lipcert prune MODEL --method M --sparsity P | --nm N:M -o OUTPUT --json` (calib: inputs,
/// flat, or None to draw calib_samples uniform inputs from the box lo..hi).
#[pyfunction]
#[pyo3(signature = (model, output, method, sparsity, nm, calib, lo, hi, calib_samples, seed, damp, block, precision))]
#[allow(clippy::too_many_arguments)]
fn prune(
    py: Python<'_>,
    model: &Model,
    output: PathBuf,
    method: &str,
    sparsity: Option<f64>,
    nm: Option<String>,
    calib: Option<PyReadonlyArray1<'_, f64>>,
    lo: Option<PyReadonlyArray1<'_, f64>>,
    hi: Option<PyReadonlyArray1<'_, f64>>,
    calib_samples: usize,
    seed: u64,
    damp: f64,
    block: usize,
    precision: &str,
) -> PyResult<Py<PyAny>> {
    let calib = calib.as_ref().map(values).transpose()?;
    let lo = lo.as_ref().map(values).transpose()?;
    let hi = hi.as_ref().map(values).transpose()?;
    let v = detached(py, || {
        let method: cmd::prune::MethodArg = choice("method", method)?;
        let precision: cmd::prune::Precision = choice("precision", precision)?;
        let net = model.analysable()?;
        cmd::prune::check_prunable(&model.path, net)?;
        let pattern = match (sparsity, nm) {
            (Some(p), None) => lipcert_prune::Pattern::Unstructured { sparsity: p },
            (None, Some(nm)) => lipcert_prune::Pattern::parse_nm(&nm)?,
            _ => anyhow::bail!("give one of sparsity=P or nm=\"N:M\""),
        };
        let opts = lipcert_prune::PruneOptions { damp, block };
        let (x, source) = match (calib, lo, hi) {
            (Some(x), None, None) => (x, "the calibration array".to_string()),
            (None, Some(lo), Some(hi)) => {
                let b = cmd::deviation::StateBox::new(lo, hi, "box", net.input_len())?;
                cmd::prune::uniform_calibration(&b, calib_samples, seed)?
            }
            _ => anyhow::bail!("give calibration inputs (calib=X) or a box to draw them from (box=(lo, hi))"),
        };
        let n = x.len().checked_div(net.input_len()).unwrap_or(0);
        if n == 0 || x.len() != n * net.input_len() {
            anyhow::bail!("calib: {} values is not a whole number of samples of {} inputs", x.len(), net.input_len());
        }
        let start = std::time::Instant::now();
        let (pruned, report) = cmd::prune::prune_every_layer(net, &x, n, method.method(), pattern, &opts)?;
        let time_s = start.elapsed().as_secs_f64();
        cmd::prune::write(&pruned, &output, precision)?;
        Ok(cmd::prune::to_json(&report, &source, &output, None, time_s))
    })?;
    to_py(py, &v)
}

/// Smoothing options from the Python keywords (a dict; checked by lipcert-smooth).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SmoothArgs {
    sigma: f64,
    n: usize,
    n0: usize,
    alpha: f64,
    batch: usize,
    seed: u64,
    first_index: usize,
    method: String,
    lipschitz: Option<f64>,
    simplex_mass: f64,
    radii: Vec<f64>,
}

impl SmoothArgs {
    fn options(&self) -> anyhow::Result<lipcert_smooth::SmoothOptions> {
        let method: cmd::smooth::MethodArg = choice("method", &self.method)?;
        Ok(lipcert_smooth::SmoothOptions {
            method: method.method(),
            sigma: self.sigma,
            n0: self.n0,
            n: self.n,
            alpha: self.alpha,
            batch: self.batch,
            seed: self.seed,
            first_index: self.first_index,
            lipschitz: self.lipschitz,
            simplex_mass: self.simplex_mass,
            radii: self.radii.clone(),
            ..lipcert_smooth::SmoothOptions::default()
        })
    }
}

/// `lipcert smooth certify --json` on the samples x (flat, [N, inputs]) with their labels.
#[pyfunction]
fn smooth_certify(
    py: Python<'_>,
    model: &Model,
    x: PyReadonlyArray1<'_, f64>,
    labels: Vec<i64>,
    args: SmoothArgs,
) -> PyResult<Py<PyAny>> {
    let x = values(&x)?;
    let v = detached(py, || {
        let opts = args.options()?;
        opts.validate(false)?;
        let net = model.analysable()?;
        let labels = class_indices(&labels, net.output_len())?;
        let report = lipcert_smooth::certify_dataset(net, &x, &labels, &opts, &|_| {})?;
        Ok(serde_json::to_value(&report)?)
    })?;
    to_py(py, &v)
}

/// `lipcert smooth predict --json` (labels optional, only compared with).
#[pyfunction]
fn smooth_predict(
    py: Python<'_>,
    model: &Model,
    x: PyReadonlyArray1<'_, f64>,
    labels: Option<Vec<i64>>,
    args: SmoothArgs,
) -> PyResult<Py<PyAny>> {
    let x = values(&x)?;
    let v = detached(py, || {
        let opts = args.options()?;
        opts.validate(true)?;
        let net = model.analysable()?;
        let labels = labels.map(|l| class_indices(&l, net.output_len())).transpose()?;
        let report = lipcert_smooth::predict_dataset(net, &x, labels.as_deref(), &opts, &|_| {})?;
        Ok(serde_json::to_value(&report)?)
    })?;
    to_py(py, &v)
}

#[pymodule]
fn _lipcert(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LipcertError", m.py().get_type::<LipcertError>())?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(spectral_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(spectral_conv, m)?)?;
    m.add_function(wrap_pyfunction!(top_singular_pair, m)?)?;
    m.add_function(wrap_pyfunction!(lipschitz, m)?)?;
    m.add_function(wrap_pyfunction!(bounds, m)?)?;
    m.add_function(wrap_pyfunction!(attack, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(boundary, m)?)?;
    m.add_function(wrap_pyfunction!(substitute, m)?)?;
    m.add_function(wrap_pyfunction!(deviation, m)?)?;
    m.add_function(wrap_pyfunction!(prune, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_certify, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_predict, m)?)?;
    Ok(())
}
