#!/usr/bin/env python3
"""Trains small ReLU classifiers on scikit-learn's bundled digits data set with Gaussian noise
augmentation, one per noise level, as base models for randomized smoothing.

usage: scripts/train_digits.py [--out DIR] [--sigma 0.12 0.25 0.5] [--epochs 60] [--seed 0]

Data: sklearn.datasets.load_digits (1797 real 8x8 handwritten digits, 10 classes), pixels scaled
to [0, 1] (divided by 16), split 80/20 with a fixed seed (stratified). Network: 64-128-128-10
ReLU MLP, He initialisation, Adam (lr 1e-3, batch 64), cross-entropy; every training batch is
perturbed by N(0, sigma^2 I) noise, as Cohen et al. train their base classifiers (each model sees
only its own sigma). Pure NumPy, deterministic for a seed.

Writes DIR/digits_sigma{S}.onnx (Gemm + Relu, opset 13), DIR/digits_test_x.npy (float32 [N, 64])
and DIR/digits_test_y.npy (int64 [N]), and prints the clean and noisy test accuracy of each model.
"""

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HIDDEN = (128, 128)


def init_params(rng, sizes):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        params.append([w, np.zeros(fan_out)])
    return params


def forward(params, x):
    """Returns the logits and the activations of every layer (for backpropagation)."""
    acts = [x]
    for k, (w, b) in enumerate(params):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0.0) if k + 1 < len(params) else z)
    return acts[-1], acts


def gradients(params, acts, y):
    logits = acts[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta = p
    delta[np.arange(len(y)), y] -= 1.0
    delta /= len(y)
    grads = []
    for k in range(len(params) - 1, -1, -1):
        w, _ = params[k]
        grads.append([delta.T @ acts[k], delta.sum(axis=0)])
        if k > 0:
            delta = (delta @ w) * (acts[k] > 0)
    return grads[::-1]


def train(x, y, sigma, epochs, seed):
    rng = np.random.default_rng(seed)
    params = init_params(rng, (x.shape[1], *HIDDEN, 10))
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    lr, b1, b2, step = 1e-3, 0.9, 0.999, 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 64):
            idx = order[start:start + 64]
            xb = x[idx] + rng.normal(0.0, sigma, size=x[idx].shape)
            _, acts = forward(params, xb)
            step += 1
            for layer, g_layer, m_layer, v_layer in zip(params, gradients(params, acts, y[idx]), m, v):
                for i, g in enumerate(g_layer):
                    m_layer[i] = b1 * m_layer[i] + (1 - b1) * g
                    v_layer[i] = b2 * v_layer[i] + (1 - b2) * g * g
                    mhat = m_layer[i] / (1 - b1 ** step)
                    vhat = v_layer[i] / (1 - b2 ** step)
                    layer[i] = layer[i] - lr * mhat / (np.sqrt(vhat) + 1e-8)
    return params


def to_onnx(params, path):
    nodes, inits, prev = [], [], "input"
    for k, (w, b) in enumerate(params):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{k}")]
        out = "output" if k + 1 == len(params) else f"z{k}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{k}", f"b{k}"], [out], transB=1))
        if k + 1 < len(params):
            nodes.append(helper.make_node("Relu", [out], [f"a{k}"]))
            prev = f"a{k}"
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, params[0][0].shape[1]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, params[-1][0].shape[0]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="lipcert train_digits")
    onnx.checker.check_model(model)
    onnx.save(model, path)


def accuracy(params, x, y):
    return float((forward(params, x)[0].argmax(axis=1) == y).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "target" / "digits")
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.12, 0.25, 0.5])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.epochs < 1 or any(not s >= 0 for s in args.sigma):
        ap.error("--epochs must be >= 1 and every --sigma >= 0")
    digits = load_digits()
    x = digits.data / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "digits_test_x.npy", x_test.astype(np.float32))
    np.save(args.out / "digits_test_y.npy", y_test.astype(np.int64))
    rng = np.random.default_rng(args.seed + 1)
    for sigma in args.sigma:
        params = train(x_train, y_train, sigma, args.epochs, args.seed)
        path = args.out / f"digits_sigma{sigma}.onnx"
        to_onnx(params, path)
        noisy = accuracy(params, x_test + rng.normal(0.0, sigma, size=x_test.shape), y_test)
        print(f"{path}: trained at sigma {sigma}, test accuracy {accuracy(params, x_test, y_test):.4f} clean, "
              f"{noisy:.4f} under one draw of N(0, {sigma}^2) noise")
    print(f"test data: {args.out / 'digits_test_x.npy'} {len(y_test)} samples, {args.out / 'digits_test_y.npy'}")


if __name__ == "__main__":
    main()
