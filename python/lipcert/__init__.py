"""lipcert: certified robustness of neural networks (Python bindings of the lipcert CLI).

Every analysis returns a `Result` whose attributes are the fields of the matching CLI
command's `--json` output; errors raise `LipcertError` (a ValueError) with the CLI's
one-line message.
"""
import numpy as np

from . import _lipcert
from ._lipcert import LipcertError

__all__ = ["LipcertError", "Result", "Model", "load", "spectral_norm", "conv_spectral_norm",
           "spectral_norm_grad", "lipschitz", "bounds", "attack", "verify", "boundary", "substitute", "deviation", "prune",
           "smooth_certify", "smooth_predict"]


class Result(dict):
    """A command's JSON fields, readable as attributes (`r.upper`) or keys (`r["upper"]`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _floats(x, what):
    """x as a contiguous float64 array (exact for float32); other dtypes are refused."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise LipcertError(f"{what}: dtype {a.dtype} is not supported; expected float32 or float64")
    return np.ascontiguousarray(a, dtype=np.float64)


class Model:
    """An ONNX model as lipcert reads it (folded, simplified)."""

    def __init__(self, raw):
        self._raw = raw

    @property
    def path(self):
        return self._raw.path

    def forward(self, x):
        """Outputs [N, outputs] of a batch x [N, ...] (each row one model input, C order)."""
        a = _floats(x, "x")
        y = self._raw.forward(a.ravel(), list(a.shape))
        n = 1 if a.ndim == 1 else a.shape[0]
        return y.reshape(n, -1)

    def jacobian(self, x):
        """(output [outputs], Jacobian [outputs, inputs]) at one sample."""
        a = _floats(x, "x").ravel()
        y, j = self._raw.jacobian(a)
        return y, j.reshape(len(y), a.size)

    def info(self):
        return Result(self._raw.info())

    def export(self, path, precision="f32"):
        return Result(self._raw.export(str(path), precision))


def _model(m):
    return m if isinstance(m, Model) else load(m)


def load(path):
    """Loads an ONNX model."""
    return Model(_lipcert.load(str(path)))


def spectral_norm(w, method="auto", tol=None, iters=None, seed=0):
    """Certified bracket lower <= sigma_1(W) <= upper (`lipcert spectral --matrix`)."""
    a = _floats(w, "W")
    return Result(_lipcert.spectral_matrix(a.ravel(), list(a.shape), method, iters, tol, seed))


def conv_spectral_norm(kernel, input_size, padding="zeros", pad=None, stride=1, method="auto", tol=None,
                       iters=None, grid=None, seed=0):
    """Certified bracket on the norm of a convolution (`lipcert spectral --conv`)."""
    k = _floats(kernel, "kernel")
    size = [input_size] if isinstance(input_size, int) else list(input_size)
    g = None if grid is None else ([grid] if isinstance(grid, int) else list(grid))
    return Result(_lipcert.spectral_conv(k.ravel(), list(k.shape), size, padding, pad, stride, method, iters, tol,
                                         g, seed))


def spectral_norm_grad(w, method="gram", tol=1e-6):
    """(certified result, gradient u v^T of sigma_1 with respect to W): the Gram-iteration
    bound's gradient, for a spectral-norm regularizer (see python/README.md)."""
    a = _floats(w, "W")
    if a.ndim != 2:
        raise LipcertError(f"W: expected a 2-D matrix [m, n], got shape {list(a.shape)}")
    r = spectral_norm(a, method=method, tol=tol)
    u, v = _lipcert.top_singular_pair(a.ravel(), a.shape[0], a.shape[1])
    return r, np.outer(u, v)


def lipschitz(model, norm="2", starts=16, steps=30, seed=0):
    """`lipcert lipschitz`: per-layer and global certified Lipschitz bounds."""
    return Result(_lipcert.lipschitz(_model(model)._raw, str(norm), starts, steps, seed))


def _box(box):
    if box is None:
        return None, None
    lo, hi = box
    return _floats(lo, "box").ravel(), _floats(hi, "box").ravel()


def bounds(model, vnnlib=None, box=None, method="crown", alpha_iterations=20, fix_intermediate=False):
    """`lipcert bounds`: certified output bounds (and spec rows of a VNN-LIB property).
    `fix_intermediate` (alpha-crown only): keep CROWN's intermediate bounds, optimize only the
    output rows' slopes."""
    lo, hi = _box(box)
    return Result(_lipcert.bounds(_model(model)._raw, None if vnnlib is None else str(vnnlib), lo, hi, method,
                                  alpha_iterations, bool(fix_intermediate)))


def attack(model, vnnlib, method="pgd", restarts=20, steps=100, seed=0):
    """`lipcert attack`: search a property's input set for a counterexample."""
    return Result(_lipcert.attack(_model(model)._raw, str(vnnlib), method, restarts, steps, seed))


def verify(model, vnnlib, timeout=60.0, seed=0):
    """`lipcert verify`: sat (with a counterexample), unsat, unknown or timeout."""
    return Result(_lipcert.verify(_model(model)._raw, str(vnnlib), float(timeout), seed))


def boundary(model, x, label, norm="inf", timeout=60.0, tol=1e-3, clip=None, seed=0):
    """`lipcert boundary`: proven lower and witnessed upper bound on the distance to the
    decision boundary of class `label` at the sample x."""
    a = _floats(x, "x").ravel()
    return Result(_lipcert.boundary(_model(model)._raw, a, label, str(norm), float(timeout), float(tol),
                                    [] if clip is None else [float(c) for c in clip], seed))


def substitute(model, x, label, kind="act", gamma=0.9, gamma0=0.1, bounds="crown", timeout=60.0, tol=1e-3,
               clip=None, seed=0, compare=False, certify=True, output=None):
    """`lipcert substitute`: a local substitute network around the sample x (paper 004). The
    result's `d_bnd_estimate` is the substitute's exact distance to the boundary (an estimate,
    not a bound); `certified_lower` is Lemma 1's certified lower bound on the original's
    distance (kind "act" only, None with `certificate.reason` otherwise). `output`: write the
    substitute as f64 ONNX."""
    a = _floats(x, "x").ravel()
    return Result(_lipcert.substitute(_model(model)._raw, a, label, str(kind), float(gamma), float(gamma0),
                                      str(bounds), float(timeout), float(tol),
                                      [] if clip is None else [float(c) for c in clip], seed, bool(compare),
                                      bool(certify), None if output is None else str(output)))


def deviation(original, pruned, vnnlib=None, box=None, bound="crown", splits=None, timeout=60.0, samples=100_000,
              seed=0, budget=None):
    """`lipcert deviation`: closed-form, certified and observed sup ||f - f_hat||_2 over a box."""
    lo, hi = _box(box)
    return Result(_lipcert.deviation(_model(original)._raw, _model(pruned)._raw,
                                     None if vnnlib is None else str(vnnlib), lo, hi, bound, splits,
                                     float(timeout), samples, seed, budget))


def prune(model, output, method="sparsegpt", sparsity=None, nm=None, calib=None, box=None, calib_samples=4096,
          seed=0, damp=0.01, block=128, precision="f32"):
    """`lipcert prune`: prunes every dense and convolutional layer (sparsity=P or nm="N:M") with
    Hessians from calibration inputs (calib [N, ...], or calib_samples uniform inputs of box)
    and writes the pruned model to `output`; the result's `report` has the per-layer errors."""
    x = None if calib is None else _floats(calib, "calib").ravel()
    lo, hi = _box(box)
    return Result(_lipcert.prune(_model(model)._raw, str(output), method, sparsity, nm, x, lo, hi, calib_samples,
                                 seed, damp, block, precision))


def _labels(labels, n):
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise LipcertError(f"labels: expected integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).ravel()
    if y.size != n:
        raise LipcertError(f"labels: {y.size} labels for {n} samples")
    return y.tolist()


def _smooth_args(sigma, n, n0, alpha, batch, seed, first_index, method="cohen", lipschitz=None, simplex_mass=1.0,
                 radii=()):
    return {"sigma": float(sigma), "n": n, "n0": n0, "alpha": float(alpha), "batch": batch, "seed": seed,
            "first_index": first_index, "method": method, "lipschitz": lipschitz,
            "simplex_mass": float(simplex_mass), "radii": [float(r) for r in radii]}


def _rows(x, what):
    a = _floats(x, what)
    return a.ravel(), (1 if a.ndim == 1 else a.shape[0])


def smooth_certify(model, x, labels, sigma, method="cohen", n=100_000, n0=100, alpha=0.001, batch=1000, seed=0,
                   lipschitz=None, simplex_mass=1.0, radii=(), first_index=0):
    """`lipcert smooth certify`: certified l2 radius of the smoothed classifier at every sample
    of x [N, ...] (each holds with probability >= 1 - alpha). first_index: index of x[0] in the
    whole data set (its noise streams), so shards of a data set give the results of one run."""
    a, rows = _rows(x, "x")
    args = _smooth_args(sigma, n, n0, alpha, batch, seed, first_index, method, lipschitz, simplex_mass, radii)
    return Result(_lipcert.smooth_certify(_model(model)._raw, a, _labels(labels, rows), args))


def smooth_predict(model, x, sigma, labels=None, n=100_000, alpha=0.001, batch=1000, seed=0, first_index=0):
    """`lipcert smooth predict`: the smoothed classifier's class per sample (-1: abstain)."""
    a, rows = _rows(x, "x")
    y = None if labels is None else _labels(labels, rows)
    return Result(_lipcert.smooth_predict(_model(model)._raw, a, y, _smooth_args(sigma, n, 1, alpha, batch, seed,
                                                                                  first_index)))
