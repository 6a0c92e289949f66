import json
import os

import numpy as np
import pytest

import lipcert
from conftest import DEMO

ACAS = "acasxu/ACASXU_run2a_1_1_batch_2000.onnx"


def demo_x(n=4):
    return np.random.default_rng(0).random((n, 1, 1, 12, 12)).astype("float32")


def test_forward_matches_lipcert_eval_exactly(tmp_path, cli):
    x = demo_x()
    np.save(tmp_path / "x.npy", x)
    out = cli("eval", DEMO, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert out.returncode == 0, out.stderr
    y = lipcert.load(DEMO).forward(x)
    assert y.shape == (4, 3)
    assert np.array_equal(y, np.load(tmp_path / "y.npy"))


def test_forward_matches_onnxruntime():
    ort = pytest.importorskip("onnxruntime") if not os.environ.get("CI") else __import__("onnxruntime")
    x = demo_x(1)[0]
    sess = ort.InferenceSession(str(DEMO))
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)
    y = lipcert.load(DEMO).forward(x[None])
    assert np.max(np.abs(y - ref)) / max(1.0, np.max(np.abs(ref))) < 1e-5


def test_jacobian_matches_finite_differences(bench):
    m = lipcert.load(bench / ACAS)
    x = np.array([0.1, -0.2, 0.05, 0.3, -0.1])
    y, j = m.jacobian(x)
    assert j.shape == (5, 5)
    assert np.allclose(y, m.forward(x[None])[0])
    h = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = h
        fd = (m.forward((x + e)[None])[0] - m.forward((x - e)[None])[0]) / (2 * h)
        assert np.allclose(j[:, i], fd, atol=1e-5)


def test_info_matches_cli_json_and_export_round_trips(tmp_path, cli):
    m = lipcert.load(DEMO)
    info = m.info()
    cli_info = json.loads(cli("info", DEMO, "--json").stdout)
    assert info.keys() == cli_info.keys()
    assert info.nodes == cli_info["nodes"] and info.params == 1843
    r = m.export(tmp_path / "e.onnx", precision="f64")
    assert r.nodes == len(info.nodes)
    x = demo_x()
    assert np.array_equal(lipcert.load(tmp_path / "e.onnx").forward(x), m.forward(x))


def test_spectral_norm_brackets_numpy_svd():
    w = np.random.default_rng(1).standard_normal((60, 40))
    s = np.linalg.svd(w, compute_uv=False)[0]
    for method in ["auto", "gram", "exact"]:
        r = lipcert.spectral_norm(w, method=method, tol=1e-8)
        assert r.lower <= s * (1 + 1e-12) and s <= r.upper * (1 + 1e-12), (method, r)
        assert r.iters >= 0 and r.method in ("gram", "exact")
    p = lipcert.spectral_norm(w, method="power")
    assert p.upper is None and p.lower <= s


def test_conv_spectral_norm_contains_the_circular_norm():
    k = np.random.default_rng(0).normal(0, 0.1, (4, 3, 3, 3))
    n = 8
    # The circular convolution is block-diagonalized by the 2-D DFT: max over frequencies.
    fk = np.fft.fft2(k, s=(n, n))
    s = max(np.linalg.svd(fk[:, :, a, b], compute_uv=False)[0] for a in range(n) for b in range(n))
    r = lipcert.conv_spectral_norm(k, (n, n), padding="circular", tol=1e-8)
    assert r.lower <= s * (1 + 1e-9) <= r.upper * (1 + 1e-9)
    assert r.operator.startswith("conv 4x3x3x3 on 8x8, circular")


def test_spectral_norm_grad_is_the_top_singular_pair():
    w = np.random.default_rng(2).standard_normal((30, 20))
    r, g = lipcert.spectral_norm_grad(w)
    u, s, vt = np.linalg.svd(w)
    assert np.allclose(g, np.outer(u[:, 0], vt[0]), atol=1e-10)
    assert r.lower <= s[0] <= r.upper
    # d sigma / dW . dW matches a finite difference.
    d = np.random.default_rng(3).standard_normal(w.shape) * 1e-7
    fd = np.linalg.svd(w + d, compute_uv=False)[0] - s[0]
    assert abs(fd - np.sum(g * d)) < 1e-12


def test_torch_regularizer_example():
    torch = pytest.importorskip("torch")

    class CertifiedSpectralNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            r, g = lipcert.spectral_norm_grad(w.detach().cpu().double().numpy())
            ctx.save_for_backward(torch.from_numpy(g).to(w))
            return w.new_tensor(r.upper)

        @staticmethod
        def backward(ctx, grad_out):
            (g,) = ctx.saved_tensors
            return grad_out * g

    w = torch.randn(20, 10, dtype=torch.float64, requires_grad=True)
    CertifiedSpectralNorm.apply(w).backward()
    assert torch.allclose(w.grad, torch.func.jacrev(lambda a: torch.linalg.matrix_norm(a, 2))(w.detach()), atol=1e-8)


def test_spectral_errors_are_one_line_lipcert_errors():
    w = np.ones((3, 3))
    w[1, 2] = np.nan
    with pytest.raises(lipcert.LipcertError, match=r"^W: element \[1, 2\] is NaN or infinite$"):
        lipcert.spectral_norm(w)
    with pytest.raises(lipcert.LipcertError, match="method 'svd': expected one of exact, power, gram, auto, toep"):
        lipcert.spectral_norm(np.eye(3), method="svd")
    with pytest.raises(lipcert.LipcertError, match="--iters must be at least 1"):
        lipcert.spectral_norm(np.eye(3), iters=0)
    with pytest.raises(lipcert.LipcertError, match="dtype int64 is not supported"):
        lipcert.spectral_norm(np.eye(3, dtype=np.int64))
    assert issubclass(lipcert.LipcertError, ValueError)


def test_load_and_forward_errors():
    with pytest.raises(lipcert.LipcertError, match="nope.onnx: no such file"):
        lipcert.load("nope.onnx")
    m = lipcert.load(DEMO)
    with pytest.raises(lipcert.LipcertError, match=r"x: each row has 3 elements, but the model input 'image'"):
        m.forward(np.zeros((4, 3)))
    x = demo_x(2)
    x[1, 0, 0, 3, 3] = np.inf
    with pytest.raises(lipcert.LipcertError, match="x: sample 1 holds a NaN or infinite value"):
        m.forward(x)


def test_lipschitz_matches_cli(bench, cli):
    r = lipcert.lipschitz(bench / ACAS, starts=4, steps=10)
    c = json.loads(cli("lipschitz", bench / ACAS, "--starts", 4, "--steps", 10, "--json").stdout)
    assert r.keys() == c.keys()
    assert r["global"]["upper"] == c["global"]["upper"] and r.layers == c["layers"]
    assert 0 < r["global"]["lower"] <= r["global"]["upper"]
    with pytest.raises(lipcert.LipcertError, match="norm '3': expected one of 2, inf"):
        lipcert.lipschitz(bench / ACAS, norm=3)


def test_bounds_on_a_property_and_a_box(bench, cli):
    net, prop = bench / ACAS, bench / "acasxu" / "prop_1.vnnlib"
    for method in ["ibp", "crown", "alpha-crown"]:
        r = lipcert.bounds(net, vnnlib=prop, method=method, alpha_iterations=5)
        c = json.loads(cli("bounds", net, "--vnnlib", prop, "--method", method, "--alpha-iterations", 5,
                           "--json").stdout)
        assert {k: v for k, v in r.items() if k != "time_s"} == {k: v for k, v in c.items() if k != "time_s"}
        assert len(r.spec_lower) == len(r.atoms) == len(r.refuted)
    lo, hi = np.full(5, -0.1), np.full(5, 0.1)
    r = lipcert.bounds(net, box=(lo, hi))
    y = lipcert.load(net).forward(np.random.default_rng(0).uniform(lo, hi, (200, 5)))
    assert np.all(y >= np.array(r.lower) - 1e-12) and np.all(y <= np.array(r.upper) + 1e-12)
    assert r.spec_lower is None
    with pytest.raises(lipcert.LipcertError, match="box: expected 5 lower and 5 upper bounds"):
        lipcert.bounds(net, box=(np.zeros(4), np.zeros(4)))
    with pytest.raises(lipcert.LipcertError, match="--alpha-iterations must be at least 1"):
        lipcert.bounds(net, vnnlib=prop, alpha_iterations=0)
    fixed = lipcert.bounds(net, vnnlib=prop, method="alpha-crown", alpha_iterations=5, fix_intermediate=True)
    c = json.loads(cli("bounds", net, "--vnnlib", prop, "--method", "alpha-crown", "--alpha-iterations", 5,
                       "--fix-intermediate", "--json").stdout)
    assert fixed.spec_lower == c["spec_lower"]
    with pytest.raises(lipcert.LipcertError, match="--fix-intermediate applies to --method alpha-crown only"):
        lipcert.bounds(net, vnnlib=prop, method="crown", fix_intermediate=True)


def test_attack_and_verify_sat_with_counterexample(bench):
    net, prop = bench / "test" / "test_sat.onnx", bench / "test" / "test_prop.vnnlib"
    a = lipcert.attack(net, prop)
    assert a.found and a.method == "pgd" and a.evaluations > 0
    v = lipcert.verify(net, prop, timeout=30)
    assert v.result == "sat"
    y = lipcert.load(net).forward(np.array(v.counterexample)[None])[0]
    assert np.allclose(y, v.output) and len(a.counterexample) == len(v.counterexample)
    u = lipcert.verify(bench / "test" / "test_unsat.onnx", prop, timeout=30)
    assert u.result == "unsat" and u.counterexample is None
    with pytest.raises(lipcert.LipcertError, match="--timeout must be a positive number of seconds, got 0"):
        lipcert.verify(net, prop, timeout=0)
    with pytest.raises(lipcert.LipcertError, match="--steps and --restarts must be at least 1"):
        lipcert.attack(net, prop, steps=0)
    with pytest.raises(lipcert.LipcertError, match=r"the property has \d+ inputs and \d+ outputs"):
        lipcert.verify(DEMO, prop)


def test_boundary_brackets_the_distance():
    m = lipcert.load(DEMO)
    x = demo_x(1)[0]
    label = int(np.argmax(m.forward(x[None])[0]))
    r = lipcert.boundary(m, x, label, timeout=20, clip=(0, 1))
    assert 0 <= r.lower <= r.upper and r.clip == [0.0, 1.0]
    w = np.array(r.witness)
    assert np.max(np.abs(w - x.ravel())) <= r.upper * (1 + 1e-9)
    # Misclassified as documented: the label is not strictly on top (a tie is on the boundary,
    # and argmax would pick the first of the tied classes).
    y = m.forward(w[None])[0]
    assert any(y[j] >= y[label] for j in range(len(y)) if j != label), y
    with pytest.raises(lipcert.LipcertError, match=r"--label 7: the model has 3 outputs"):
        lipcert.boundary(m, x, 7)


def test_substitute_is_smaller_and_equal_at_the_anchor(tmp_path):
    m = lipcert.load(DEMO)
    x = demo_x(1)[0]
    label = int(np.argmax(m.forward(x[None])[0]))
    out = tmp_path / "sub.onnx"
    r = lipcert.substitute(m, x, label, kind="lin", gamma=0.5, timeout=10, clip=(0, 1), output=out)
    assert r.kind == "lin" and r.neurons_after < r.neurons_before and r.output == str(out)
    assert "not a bound" in r.d_bnd_estimate["how"]
    g = lipcert.load(out)
    np.testing.assert_allclose(g.forward(x[None]), m.forward(x[None]), rtol=0, atol=1e-9)
    with pytest.raises(lipcert.LipcertError, match=r"--gamma must be in \[0, 1\)"):
        lipcert.substitute(m, x, label, gamma=1.0)


def test_deviation_of_an_f32_export(tmp_path, bench):
    m = lipcert.load(bench / ACAS)
    m.export(tmp_path / "f32.onnx", precision="f32")
    lo, hi = np.full(5, -0.5), np.full(5, 0.5)
    r = lipcert.deviation(m, tmp_path / "f32.onnx", box=(lo, hi), samples=2000, splits=0)
    assert 0 <= r.observed_max <= r.certified and r.observed_max <= r.closed_form
    assert r.box == "box" and r.norm == "2"
    with pytest.raises(lipcert.LipcertError, match="box: element 0 is"):
        lipcert.deviation(m, m, box=(hi, lo))


def test_prune_writes_a_model_with_the_reported_sparsity(tmp_path, bench):
    net = bench / ACAS
    lo, hi = np.full(5, -0.5), np.full(5, 0.5)
    r = lipcert.prune(net, tmp_path / "p.onnx", method="sparsegpt", sparsity=0.5, box=(lo, hi), calib_samples=512)
    rep = r.report
    assert rep["zeros"] / rep["weights"] == pytest.approx(0.5, abs=0.02) and r.output == str(tmp_path / "p.onnx")
    assert r.calibration == "512 uniform samples of box"
    p = lipcert.load(tmp_path / "p.onnx")
    d = lipcert.deviation(net, p, box=(lo, hi), samples=2000, splits=0)
    assert 0 < d.observed_max <= d.certified
    x = np.random.default_rng(0).uniform(lo, hi, (300, 5))
    r2 = lipcert.prune(net, tmp_path / "q.onnx", method="magnitude", nm="2:4", calib=x)
    assert r2.calibration == "the calibration array" and r2.report["sparsity"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(lipcert.LipcertError, match="give one of sparsity=P or nm="):
        lipcert.prune(net, tmp_path / "r.onnx", box=(lo, hi))
    with pytest.raises(lipcert.LipcertError, match="method 'random': expected one of magnitude, obd, obs, sparsegpt"):
        lipcert.prune(net, tmp_path / "r.onnx", method="random", sparsity=0.5, box=(lo, hi))
    with pytest.raises(lipcert.LipcertError, match="calib: 7 values is not a whole number of samples of 5 inputs"):
        lipcert.prune(net, tmp_path / "r.onnx", sparsity=0.5, calib=np.zeros(7))


def test_smooth_certify_matches_the_cli(tmp_path, cli):
    m = lipcert.load(DEMO)
    x = demo_x(6).astype(np.float64)
    labels = np.argmax(m.forward(x), axis=1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    r = lipcert.smooth_certify(m, x, labels, sigma=0.25, n=2000, n0=50, method="two-sided")
    out = cli("smooth", "certify", DEMO, "--data", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--sigma",
              0.25, "--n", 2000, "--n0", 50, "--method", "two-sided", "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)
    assert [s["radius"] for s in r.per_sample] == [s["radius"] for s in c["per_sample"]]
    assert r.curve == c["curve"] and r.average_certified_radius == c["average_certified_radius"]
    assert r.method == "two-sided" and r.samples == 6
    # A shard that starts at sample 2 certifies samples 2.. as the whole run did.
    tail = lipcert.smooth_certify(m, x[2:], labels[2:], sigma=0.25, n=2000, n0=50, method="two-sided", first_index=2)
    assert [s["radius"] for s in tail.per_sample] == [s["radius"] for s in r.per_sample[2:]]
    assert [s["idx"] for s in tail.per_sample] == [2, 3, 4, 5]


def test_smooth_predict_and_errors():
    m = lipcert.load(DEMO)
    x = demo_x(3)
    labels = np.argmax(m.forward(x), axis=1)
    p = lipcert.smooth_predict(m, x, sigma=0.1, labels=labels, n=1000)
    assert p.samples == 3 and all(s["predict"] in (-1, *range(3)) for s in p.per_sample)
    assert all(s["correct"] == (s["predict"] == l) for s, l in zip(p.per_sample, labels))
    with pytest.raises(lipcert.LipcertError, match="--sigma must be a positive number, got -1"):
        lipcert.smooth_certify(m, x, labels, sigma=-1)
    with pytest.raises(lipcert.LipcertError, match=r"--n0 \(200\) must not exceed --n \(100\)"):
        lipcert.smooth_certify(m, x, labels, sigma=0.1, n=100, n0=200)
    with pytest.raises(lipcert.LipcertError, match="labels: label -1 of sample 0 is not a class index below 3"):
        lipcert.smooth_certify(m, x, [-1, 0, 0], sigma=0.1, n=100)
    with pytest.raises(lipcert.LipcertError, match="labels: 2 labels for 3 samples"):
        lipcert.smooth_certify(m, x, [0, 0], sigma=0.1, n=100)
    with pytest.raises(lipcert.LipcertError, match="method 'gauss': expected one of cohen, two-sided, cpm"):
        lipcert.smooth_certify(m, x, labels, sigma=0.1, n=100, method="gauss")
    with pytest.raises(lipcert.LipcertError, match="the data has 10 values, not a whole number of samples of 144 inputs"):
        lipcert.smooth_predict(m, np.zeros(10), sigma=0.1)
