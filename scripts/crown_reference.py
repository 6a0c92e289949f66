#!/usr/bin/env python3
"""Independent NumPy reference for interval bound propagation (IBP) and textbook CROWN.

usage: scripts/crown_reference.py MODEL.onnx PROP.vnnlib [--method ibp|crown-pure|both]

Prints one JSON object {"ibp": {"lower", "upper", "spec_lower"}, "crown-pure": {...}, "atoms",
"time_s"}: bounds on every network output, and for the i-th distinct output atom of the property,
normalised to its unsafe side c.y <= d, a certified lower bound spec_lower[i] of c.y (the atom
cannot hold when spec_lower[i] > d). Errors: one line on stderr, exit code 2. Used by lipcert's
Rust tests as an oracle.

The sequential ONNX graph is folded into x -> W1 x + b1 -> relu -> ... -> WL . + bL, every linear
operator (Conv included) an explicit dense float64 matrix on C-order flattened tensors.
crown-pure is CROWN (Zhang et al. 2018; auto_LiRPA backward mode, every intermediate bound by
CROWN): layer 1 gets the exact interval bounds of W1 x + b1, each later layer a full backward
pass to the input through the relaxations of all earlier ReLUs. ReLU relaxation on [l, u]: l >= 0
identity; u <= 0 zero; else upper line u/(u-l) (z - l), lower line alpha z, alpha = 1 if u > -l
else 0 (auto_LiRPA's "adaptive" lower_d = (upper_d > 0.5)).
"""
import argparse
import json
import re
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper


class RefError(Exception):
    """A user-facing failure (unsupported model or property); printed as one line."""


# ------------------------------------------------------------------ ONNX -> affine layers

class Affine:
    """A tensor equal to M z + b (flattened C order), z the input of ReLU segment `seg`.
    M is None for the identity (avoids multiplying by a large identity matrix)."""

    def __init__(self, M, b, shape, seg):
        self.M, self.b, self.shape, self.seg = M, b, tuple(shape), seg

    def matrix(self):
        return np.eye(self.b.size) if self.M is None else self.M

    def apply(self, K, shape, bias=0.0):
        """Apply the linear map K (rows = output entries), then add bias."""
        M = K if self.M is None else K @ self.M
        return Affine(M, K @ self.b + bias, shape, self.seg)

    def gather(self, idx, shape):
        """Entry i of the result is entry idx[i] of this tensor (transpose / broadcast)."""
        return Affine(self.matrix()[idx], self.b[idx], shape, self.seg)


def broadcast_to(t, shape):
    if t.shape == tuple(shape):
        return t
    idx = np.broadcast_to(np.arange(t.b.size).reshape(t.shape), shape).ravel()
    return t.gather(idx, shape)


def elementwise(op, a, b):
    """Add/Sub/Mul/Div where at least one side is Affine."""
    if isinstance(a, Affine) and isinstance(b, Affine):
        if op not in ("Add", "Sub") or a.seg != b.seg:
            raise RefError(f"{op} of two variable tensors is not supported (non-sequential?)")
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = broadcast_to(a, shape), broadcast_to(b, shape)
        s = 1.0 if op == "Add" else -1.0
        return Affine(a.matrix() + s * b.matrix(), a.b + s * b.b, shape, a.seg)
    t, k, t_first = (a, b, True) if isinstance(a, Affine) else (b, a, False)
    shape = np.broadcast_shapes(t.shape, k.shape)
    t, k = broadcast_to(t, shape), np.broadcast_to(k, shape).ravel()
    if op == "Add" or (op == "Sub" and t_first):
        return Affine(t.M, t.b + (k if op == "Add" else -k), shape, t.seg)
    if op == "Sub":  # constant - tensor
        return Affine(-t.matrix(), k - t.b, shape, t.seg)
    if op == "Mul" or (op == "Div" and t_first):
        k = k if op == "Mul" else 1.0 / k
        return Affine(None if t.M is None and np.all(k == 1) else t.matrix() * k[:, None],
                      t.b * k, shape, t.seg)
    raise RefError("division by a variable tensor is not supported")


def conv_matrix(w, in_shape, attrs):
    """Dense matrix of an ONNX Conv (no bias) on an input of shape (1, C, H, W)."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise RefError("Conv auto_pad is not supported")
    n, C, H, W = in_shape
    O, Cg, kh, kw = w.shape
    g = attrs.get("group", 1)
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    sy, sx = attrs.get("strides", [1, 1])
    dy, dx = attrs.get("dilations", [1, 1])
    if n != 1 or len(w.shape) != 4 or Cg * g != C:
        raise RefError("only 2-D Conv with batch 1 is supported")
    OH, OW = (H + pt + pb - dy * (kh - 1) - 1) // sy + 1, (W + pl + pr - dx * (kw - 1) - 1) // sx + 1
    # One entry per (output channel, input channel of its group, tap, output position).
    o, ci, ky, kx, oy, ox = np.meshgrid(*map(np.arange, (O, Cg, kh, kw, OH, OW)), indexing="ij")
    iy, ix = oy * sy - pt + ky * dy, ox * sx - pl + kx * dx
    ok = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)  # taps on the zero padding drop out
    c = (o // (O // g)) * Cg + ci
    K = np.zeros((O * OH * OW, C * H * W))
    np.add.at(K, (((o * OH + oy) * OW + ox)[ok], ((c * H + iy) * W + ix)[ok]), w[o, ci, ky, kx][ok])
    return K, (1, O, OH, OW)


def load_network(path):
    """Returns (input size, [(W, b), ...]); a ReLU sits between consecutive layers."""
    graph = onnx.load(path).graph
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in env]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise RefError("the model must have exactly one input and one output")
    in_shape = tuple(max(d.dim_value, 1) for d in inputs[0].type.tensor_type.shape.dim)
    n_in = int(np.prod(in_shape))
    env[inputs[0].name] = Affine(None, np.zeros(n_in), in_shape, 0)
    layers = []

    def current(t, what):
        if not isinstance(t, Affine) or t.seg != len(layers):
            raise RefError(f"{what}: not a sequential ReLU network")
        return t

    for node in graph.node:
        op, attrs = node.op_type, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = [env[i] if i else None for i in node.input]
        if op == "Constant":
            out = numpy_helper.to_array(attrs["value"]).astype(np.float64)
        elif all(not isinstance(v, Affine) for v in x):
            raise RefError(f"constant folding of {op} is not supported")
        elif op in ("Add", "Sub", "Mul", "Div"):
            out = elementwise(op, x[0], x[1])
        elif not isinstance(x[0], Affine) or any(isinstance(v, Affine) for v in x[1:]):
            raise RefError(f"{op}: only the first input may depend on the network input")
        elif op in ("Identity", "Dropout"):
            out = x[0]
        elif op in ("Flatten", "Reshape"):
            t = x[0]
            if op == "Flatten":
                ax = attrs.get("axis", 1) % len(t.shape)
                shape = (int(np.prod(t.shape[:ax])), int(np.prod(t.shape[ax:])))
            else:
                req = [t.shape[i] if s == 0 else int(s) for i, s in enumerate(x[1].astype(np.int64))]
                shape = np.empty(t.shape).reshape(req).shape
            out = Affine(t.M, t.b, shape, t.seg)
        elif op == "Transpose":
            t = x[0]
            perm = attrs.get("perm", list(range(len(t.shape)))[::-1])
            idx = np.arange(t.b.size).reshape(t.shape).transpose(perm)
            out = t.gather(idx.ravel(), idx.shape)
        elif op in ("MatMul", "Gemm"):
            t, w = x[0], (x[1].T if attrs.get("transB", 0) else x[1])
            if w.ndim != 2 or attrs.get("transA", 0):
                raise RefError(f"{op}: only (variable) @ (constant 2-D matrix) is supported")
            shape, bias = t.shape[:-1] + (w.shape[1],), 0.0
            if len(x) > 2 and x[2] is not None:  # Gemm's C
                bias = np.broadcast_to(attrs.get("beta", 1.0) * x[2], shape).ravel()
            # y = x w on the last axis, for every index of the leading axes
            K = np.kron(np.eye(int(np.prod(t.shape[:-1]))), attrs.get("alpha", 1.0) * w.T)
            out = t.apply(K, shape, bias)
        elif op == "Conv":
            K, shape = conv_matrix(x[1], x[0].shape, attrs)
            bias = np.repeat(x[2], shape[2] * shape[3]) if len(x) > 2 and x[2] is not None else 0.0
            out = x[0].apply(K, shape, bias)
        elif op == "BatchNormalization":  # inference mode: per-channel scale and shift
            gamma, beta, mean, var = x[1:5]
            scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            cshape = (1, -1) + (1,) * (len(x[0].shape) - 2)
            out = elementwise("Add", elementwise("Mul", x[0], scale.reshape(cshape)),
                              (beta - mean * scale).reshape(cshape))
        elif op == "Relu":
            t = current(x[0], "Relu")
            layers.append((t.matrix(), t.b))
            out = Affine(None, np.zeros(t.b.size), t.shape, len(layers))
        else:
            raise RefError(f"unsupported ONNX operator {op}")
        env[node.output[0]] = out
    t = current(env[graph.output[0].name], "output")
    layers.append((t.matrix(), t.b))
    return n_in, layers


# ------------------------------------------------------------------ VNN-LIB

def parse_sexprs(text):
    stack = [[]]
    for tok in re.findall(r"\(|\)|[^\s()]+", re.sub(r";[^\n]*", "", text)):
        if tok == "(":
            stack.append([])
        elif tok == ")" and len(stack) > 1:
            stack[-2].append(stack.pop())
        else:
            stack[-1].append(tok)
    if len(stack) != 1 or ")" in stack[0]:
        raise RefError("unbalanced parentheses in the VNN-LIB file")
    return stack[0]


def parse_vnnlib(path, n_in, n_out):
    """Returns (lo, hi, atoms, C, d): the input box and the atoms as rows of C.y <= d."""
    lo, hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    atoms, C, d = [], [], []

    def var(s, n):  # index of X_i / Y_j, checked against the network's size
        if int(s[2:]) >= n:
            raise RefError(f"{s} is out of range for a network with {n_in} inputs, {n_out} outputs")
        return int(s[2:])

    def term(s):  # a term of an output atom: (coefficients on Y, constant)
        return (np.eye(n_out)[var(s, n_out)], 0.0) if s.startswith("Y_") else (np.zeros(n_out), float(s))

    def visit(e, in_or):
        if isinstance(e, str) or not e:
            raise RefError(f"unexpected expression {e!r}")
        if e[0] in ("and", "or"):
            for sub in e[1:]:
                visit(sub, in_or or (e[0] == "or" and len(e) > 2))
            return
        if e[0] not in ("<=", ">=", "<", ">") or len(e) != 3:
            raise RefError(f"unsupported atom {e!r}")
        a, b = (e[1], e[2]) if e[0] in ("<=", "<") else (e[2], e[1])  # now a <= b
        if "X_" in e[1] + e[2]:  # input bound: X_i <= k or k <= X_i
            if in_or:
                raise RefError("several input boxes (disjunction over X) are not supported")
            if a.startswith("X_") and not b.startswith(("X_", "Y_")):
                hi[var(a, n_in)] = min(hi[var(a, n_in)], float(b))
            elif b.startswith("X_") and not a.startswith(("X_", "Y_")):
                lo[var(b, n_in)] = max(lo[var(b, n_in)], float(a))
            else:
                raise RefError(f"unsupported input constraint {e!r}")
            return
        text = "(" + " ".join(e) + ")"
        if text not in atoms:  # distinct atoms, first occurrence order
            (ca, ka), (cb, kb) = term(a), term(b)
            atoms.append(text)
            C.append(ca - cb)
            d.append(kb - ka)

    for e in parse_sexprs(open(path).read()):
        if isinstance(e, list) and e and e[0] == "assert":
            visit(e[1], False)
    if not np.all(np.isfinite(lo) & np.isfinite(hi)) or np.any(lo > hi):
        raise RefError(f"the property does not bound all {n_in} inputs in a non-empty box")
    return lo, hi, atoms, np.array(C).reshape(-1, n_out), np.array(d)


# ------------------------------------------------------------------ IBP and CROWN

def interval(W, b, l, u):
    c, r = (l + u) / 2, (u - l) / 2
    mid, rad = W @ c + b, np.abs(W) @ r
    return mid - rad, mid + rad


def ibp(layers, lo, hi, C):
    l, u = lo, hi
    for W, b in layers[:-1]:
        zl, zu = interval(W, b, l, u)
        l, u = np.maximum(zl, 0), np.maximum(zu, 0)  # box of the ReLU output
    W, b = layers[-1]
    lower, upper = interval(W, b, l, u)
    spec_lower, _ = interval(C @ W, C @ b, l, u)
    return {"lower": lower, "upper": upper, "spec_lower": spec_lower}


def relu_relaxation(l, u):
    """(lower slope, upper slope, upper intercept) per neuron; the lower intercept is 0."""
    act, unstable = l >= 0, (l < 0) & (u > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(unstable, u / (u - l), act.astype(np.float64))
    lower_slope = np.where(unstable, (u > -l).astype(np.float64), s)
    return lower_slope, s, np.where(unstable, -s * l, 0.0)


def backward_lower(L, d, j, layers, relax, lo, hi):
    """Lower bound of L a_j + d over the input box, a_j the output of ReLU j (a_0 = x)."""
    for i in range(j, 0, -1):
        lower_slope, upper_slope, upper_int = relax[i - 1]
        pos, neg = np.maximum(L, 0), np.minimum(L, 0)
        d = d + neg @ upper_int  # negative coefficients take the upper line
        L = pos * lower_slope + neg * upper_slope  # now on z_i
        W, b = layers[i - 1]
        d, L = d + L @ b, L @ W  # now on a_{i-1}
    c, r = (lo + hi) / 2, (hi - lo) / 2
    return L @ c - np.abs(L) @ r + d


def crown_pure(layers, lo, hi, C):
    relax = []
    for k, (W, b) in enumerate(layers):
        # Both bounds at once: upper(W z + b) = -lower(-W z - b).
        both = backward_lower(np.vstack([W, -W]), np.concatenate([b, -b]), k, layers, relax, lo, hi)
        l, u = both[:len(b)], -both[len(b):]
        if k < len(layers) - 1:
            relax.append(relu_relaxation(l, u))
    W, b = layers[-1]
    spec_lower = backward_lower(C @ W, C @ b, len(layers) - 1, layers, relax, lo, hi)
    return {"lower": l, "upper": u, "spec_lower": spec_lower}


# ------------------------------------------------------------------ CLI

class Parser(argparse.ArgumentParser):
    def error(self, message):  # one-line usage errors, exit code 2 like every other failure
        raise RefError(message)


def main():
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("property")
    ap.add_argument("--method", choices=["ibp", "crown-pure", "both"], default="both")
    try:
        args = ap.parse_args()
        t0 = time.perf_counter()
        n_in, layers = load_network(args.model)
        lo, hi, atoms, C, _ = parse_vnnlib(args.property, n_in, layers[-1][1].size)
        result, times = {}, {"load": time.perf_counter() - t0}
        for name, fn in (("ibp", ibp), ("crown-pure", crown_pure)):
            if args.method in (name, "both"):
                t0 = time.perf_counter()
                result[name] = {k: v.tolist() for k, v in fn(layers, lo, hi, C).items()}
                times[name] = time.perf_counter() - t0
        result["atoms"], result["time_s"] = atoms, times
    except Exception as e:  # noqa: BLE001 -- every failure is reported as one line
        print(f"error: {e}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
