#!/usr/bin/env python3
"""Reference bounds from auto_LiRPA (IBP, CROWN = 'backward', alpha-CROWN = 'CROWN-optimized').

usage: python bench/crown_autolirpa.py MODEL.onnx PROP.vnnlib [--spec-only]

Needs torch and auto_LiRPA (not lipcert's dependencies: run it with a separate virtualenv).
The sequential ONNX graph (Flatten, Gemm, MatMul[+Add], Add, Sub, Div, Conv, Relu) is rebuilt as
a torch.nn.Sequential in float64. Each distinct output atom of the VNN-LIB property, in file
order, is normalised to its unsafe side c.y <= d: (>= Y_a Y_b) -> c = e_b - e_a, (<= Y_a Y_b) ->
c = e_a - e_b, (>= Y_a k) -> c = -e_a, (<= Y_a k) -> c = e_a. The rows c form the spec matrix C.
Methods: ibp, crown (auto_LiRPA 'backward'), crown-dense ('backward' with
sparse_intermediate_bounds off: textbook CROWN), alpha-crown ('CROWN-optimized', default options:
intermediate bounds re-derived with optimized alphas), alpha-crown-fixed (CROWN-optimized with
CROWN's intermediate bounds passed in, so only the final rows' alphas are optimized).
auto_LiRPA 0.7.1 supports torch < 2.9: under torch 2.15 its alpha optimization never moves off
CROWN's bound (early stop after 10 steps); main then warns on stderr.
Prints one JSON object: per method "spec_lower" (lower bound of C y over the input box), "lower" /
"upper" (bounds of every output, C = None), "time_s" (the C call, lower bound only) and
"time_s_outputs" (the C = None call, both sides): medians of 3 runs after one warm-up.
--spec-only skips the C = None calls (no "lower", "upper", "time_s_outputs"): half the time.
Errors: one line on stderr, exit 2.
"""
import contextlib
import inspect
import json
import re
import statistics
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper, helper

import auto_LiRPA
from auto_LiRPA import BoundedModule, BoundedTensor
from auto_LiRPA.perturbations import PerturbationLpNorm

NUM = r'([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'


# The keyword that passes intermediate bounds in: renamed in auto_LiRPA 0.7.
INTERM_BOUNDS_KW = ('interm_bounds' if 'interm_bounds' in
                    inspect.signature(BoundedModule.compute_bounds).parameters
                    else 'intermediate_layer_bounds')


class Fail(Exception):
    pass


class Const(torch.nn.Module):
    """x - c, x / c or x + c with a constant tensor c (e.g. ACAS Xu input normalisation)."""

    def __init__(self, op, c):
        super().__init__()
        self.op = op
        self.register_buffer('c', torch.tensor(c))

    def forward(self, x):
        return {'Sub': x - self.c, 'Div': x / self.c, 'Add': x + self.c}[self.op]


def load_onnx(path):
    """ONNX chain -> (nn.Sequential in float64, input shape)."""
    g = onnx.load(path).graph
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inp = [i for i in g.input if i.name not in init]
    if len(inp) != 1:
        raise Fail(f'expected one input, got {len(inp)}')
    shape = [d.dim_value or 1 for d in inp[0].type.tensor_type.shape.dim]
    layers, nodes, i = [], list(g.node), 0
    while i < len(nodes):
        n = nodes[i]
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        consts = [init[x] for x in n.input if x in init]
        if n.op_type == 'Flatten':
            if a.get('axis', 1) != 1:
                raise Fail('Flatten axis != 1')
            layers.append(torch.nn.Flatten())
        elif n.op_type == 'Relu':
            layers.append(torch.nn.ReLU())
        elif n.op_type == 'Gemm':
            W = consts[0] if a.get('transB', 0) else consts[0].T
            lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=len(consts) > 1)
            lin.weight.data = torch.tensor(W * a.get('alpha', 1.0))
            if len(consts) > 1:
                lin.bias.data = torch.tensor(consts[1] * a.get('beta', 1.0))
            layers.append(lin)
        elif n.op_type == 'MatMul':
            W = consts[0].T  # x @ W  ->  Linear with weight W^T
            nxt = nodes[i + 1] if i + 1 < len(nodes) else None
            fuse = nxt is not None and nxt.op_type == 'Add' and n.output[0] in nxt.input \
                and any(x in init for x in nxt.input)
            lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=fuse)
            lin.weight.data = torch.tensor(W)
            if fuse:  # MatMul + Add(bias) -> one Linear
                lin.bias.data = torch.tensor([init[x] for x in nxt.input if x in init][0])
                i += 1
            layers.append(lin)
        elif n.op_type in ('Sub', 'Div', 'Add'):
            if len(consts) != 1 or n.input[1] not in init:
                raise Fail(f'{n.op_type} needs a constant second operand')
            layers.append(Const(n.op_type, consts[0]))
        elif n.op_type == 'Conv':
            W, p = consts[0], a.get('pads', [0, 0, 0, 0])
            if p[0] != p[2] or p[1] != p[3] or a.get('group', 1) != 1:
                raise Fail('asymmetric padding or grouped Conv')
            conv = torch.nn.Conv2d(W.shape[1], W.shape[0], W.shape[2:], stride=a.get('strides', 1),
                                   padding=p[:2], dilation=a.get('dilations', 1),
                                   bias=len(consts) > 1)
            conv.weight.data = torch.tensor(W)
            if len(consts) > 1:
                conv.bias.data = torch.tensor(consts[1])
            layers.append(conv)
        else:
            raise Fail(f'unsupported ONNX op {n.op_type}')
        i += 1
    return torch.nn.Sequential(*layers).double().eval(), shape


def load_vnnlib(path, n_in):
    """Input box (lo, hi) and the distinct output atoms as (label, c row as dict, d)."""
    with open(path) as f:
        text = re.sub(r';[^\n]*', '', f.read())
    lo, hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    for op, i, v in re.findall(r'\((<=|>=)\s+X_(\d+)\s+' + NUM + r'\s*\)', text):
        (hi if op == '<=' else lo)[int(i)] = float(v)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise Fail('input box not bounded for every X_i')
    atoms, seen = [], set()
    for op, a, b in re.findall(r'\((<=|>=)\s+Y_(\d+)\s+(Y_\d+|' + NUM[1:-1] + r')\s*\)', text):
        label = f'({op} Y_{a} {b})'
        if label in seen:
            continue
        seen.add(label)
        sgn = 1.0 if op == '<=' else -1.0  # '<=' : y_a - rhs <= 0 ; '>=' : rhs - y_a <= 0
        if b.startswith('Y_'):
            c, d = {int(a): sgn, int(b[2:]): -sgn}, 0.0
        else:
            c, d = {int(a): sgn}, sgn * float(b)
        atoms.append((label, c, d))
    if not atoms:
        raise Fail('no output atoms')
    return lo, hi, atoms


def timed(make, call):
    """Warm-up, then the median time of 3 runs; returns (last result, seconds). Every run gets a
    fresh BoundedModule from make() (built outside the timing): auto_LiRPA 0.3 keeps alpha state
    in the module and fails on a second CROWN-optimized call."""
    call(make())
    ts, r = [], None
    for _ in range(3):
        bm = make()
        t0 = time.perf_counter()
        r = call(bm)
        ts.append(time.perf_counter() - t0)
    return r, statistics.median(ts)


def main():
    if len(sys.argv) < 3 or sys.argv[3:] not in ([], ['--spec-only']):
        raise Fail('usage: crown_autolirpa.py MODEL.onnx PROP.vnnlib [--spec-only]')
    spec_only = sys.argv[3:] == ['--spec-only']
    torch.set_num_threads(2)
    torch.set_default_dtype(torch.float64)
    model, shape = load_onnx(sys.argv[1])
    lo, hi, atoms = load_vnnlib(sys.argv[2], int(np.prod(shape)))
    x_L = torch.tensor(lo).reshape(shape)
    x_U = torch.tensor(hi).reshape(shape)
    n_out = model(x_L).numel()
    C = torch.zeros(1, len(atoms), n_out)
    for k, (_, c, _) in enumerate(atoms):
        for j, v in c.items():
            C[0, k, j] = v
    out = {'atoms': [a[0] for a in atoms], 'thresholds': [a[2] for a in atoms],
           'auto_lirpa_version': auto_LiRPA.__version__, 'torch_version': torch.__version__}
    x = BoundedTensor((x_L + x_U) / 2, PerturbationLpNorm(norm=np.inf, x_L=x_L, x_U=x_U))
    # 'sparse_features_alpha': False works around an auto_LiRPA 0.3 bug (BoundRelu.
    # init_opt_parameters resets alpha_indices only when verbosity > 0, so a layer with > 90%
    # unstable neurons crashes CROWN-optimized). Alphas are then stored densely: same bounds.
    opts = {'sparse_features_alpha': False}
    make = lambda: BoundedModule(model, torch.zeros(shape), bound_opts=opts, device='cpu')
    # CROWN's pre-activation bounds, for alpha-CROWN with fixed intermediate bounds below.
    bm = make()
    bm.compute_bounds(x=(x,), method='backward')
    ilb = {r.inputs[0].name: [r.inputs[0].lower.detach(), r.inputs[0].upper.detach()]
           for r in bm.relus}
    # 'alpha-crown' is auto_LiRPA's default CROWN-optimized: with no intermediate_layer_bounds
    # given it re-derives every intermediate bound with its own optimized alphas each step.
    # 'alpha-crown-fixed' passes CROWN's intermediate bounds: only the final rows' alphas move
    # (lipcert's --fix-intermediate); its time excludes the CROWN pass that produced them.
    # 'crown-dense' sets sparse_intermediate_bounds off: every intermediate bound by CROWN, none
    # kept from IBP (the default keeps IBP's bounds for neurons that IBP shows stable).
    make_dense = lambda: BoundedModule(model, torch.zeros(shape), device='cpu',
                                       bound_opts=dict(opts, sparse_intermediate_bounds=False))
    for name, method, kw in (('ibp', 'IBP', {}), ('crown', 'backward', {}),
                             ('crown-dense', 'backward', {}),
                             ('alpha-crown', 'CROWN-optimized', {}),
                             ('alpha-crown-fixed', 'CROWN-optimized',
                              {INTERM_BOUNDS_KW: ilb})):
        mk = make_dense if name == 'crown-dense' else make
        with torch.set_grad_enabled(method == 'CROWN-optimized'):
            (lb, _), t_spec = timed(mk, lambda bm: bm.compute_bounds(
                x=(x,), C=C, method=method, bound_upper=False, **kw))
            out[name] = {'spec_lower': lb.flatten().tolist(), 'time_s': t_spec}
            if not spec_only:
                (ol, ou), t_out = timed(mk, lambda bm: bm.compute_bounds(
                    x=(x,), method=method, **kw))
                out[name].update({'lower': ol.flatten().tolist(), 'upper': ou.flatten().tolist(),
                                  'time_s_outputs': t_out})
        if method == 'CROWN-optimized':
            o = bm.bound_opts['optimize_bound_args']
            # auto_LiRPA 0.7 renamed fix_intermediate_layer_bounds to fix_interm_bounds.
            out[name]['options'] = {k: o[k] for k in (
                'iteration', 'lr_alpha', 'optimizer', 'lr_decay', 'init_alpha', 'keep_best',
                'early_stop_patience', 'fix_intermediate_layer_bounds', 'fix_interm_bounds')
                if k in o}
    # A broken torch/auto_LiRPA pairing optimizes nothing (also possible: no unstable neuron).
    if out['alpha-crown']['spec_lower'] == out['crown']['spec_lower']:
        print(f'warning: alpha-CROWN returned exactly CROWN\'s bounds (torch {torch.__version__}, '
              f'auto_LiRPA {auto_LiRPA.__version__}: 0.7.1 needs torch < 2.9)', file=sys.stderr)
    return out


if __name__ == '__main__':
    try:
        # auto_LiRPA prints progress ("Early stop at ...") on stdout: keep stdout for the JSON.
        with contextlib.redirect_stdout(sys.stderr):
            result = main()
        print(json.dumps(result, indent=1))
    except Exception as e:  # one-line error, exit 2
        print(f'error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}',
              file=sys.stderr)
        sys.exit(2)
