#!/usr/bin/env python3
"""Independent onnxruntime oracle for lipcert's tests and benchmarks.

Subcommands:

  parity --benchmarks DIR --out OUTDIR [--samples 8] [--props 2] [--seed 0]
      For every .onnx file under DIR, take up to --props input boxes from the
      VNN-LIB properties its category's instances CSV pairs it with, sample
      points in each box, run onnxruntime on them and write
      OUTDIR/<id>.x.npy, OUTDIR/<id>.y.npy and OUTDIR/manifest.json.

  eval MODEL X.npy Y.npy
      Run MODEL on every row of X ([N, numel]) and write Y ([N, m]).

Input rows are the model input flattened in C order, which is also the order
of the VNN-LIB variables X_0, X_1, ...
"""

import argparse
import csv
import json
import os
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort


class OracleError(Exception):
    """A user-facing failure; main() prints it as one line."""


# --------------------------------------------------------------------------
# VNN-LIB input boxes
# --------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMMENT = re.compile(r";[^\n]*")
_DECLARED_X = re.compile(r"\(\s*declare-const\s+X_(\d+)\s")
# A bound atom in either orientation: (<= X_3 0.5) or (<= 0.5 X_3).
_ATOM = re.compile(
    rf"\(\s*(<=|>=)\s+(?:X_(\d+)\s+({_NUM})|({_NUM})\s+X_(\d+))\s*\)"
)
# The atoms that constrain the input box: a plain top-level assert, a
# top-level conjunction, or the first (and ...) group of a top-level
# disjunction. Later groups of a disjunction are not matched because the
# pattern is anchored at "(assert". Atom lists never nest, so [^()] suffices.
_BOX_ASSERT = re.compile(
    r"\(\s*assert\s+(?:\(\s*or\s+)?"
    r"(?:\(\s*and\s+((?:\(\s*[^()]*\)\s*)+)\)"
    r"|(\(\s*(?:<=|>=)\s+[^()]*\)))"
)


def parse_input_box(path, numel):
    """Return (lower, upper) float64 arrays of length numel for a VNN-LIB file.

    Bounds on the same variable from several asserts are intersected. A
    variable without a lower (upper) bound gets 0 (1), widened if needed so
    that a one-sided bound still yields a non-empty interval.
    """
    text = _COMMENT.sub("", Path(path).read_text())
    declared = len(_DECLARED_X.findall(text))
    if declared and declared != numel:
        raise OracleError(
            f"{path}: declares {declared} input variables but the model "
            f"input has {numel} elements"
        )
    atoms = _ATOM.findall(
        " ".join(b.group(1) or b.group(2) for b in _BOX_ASSERT.finditer(text))
    )
    lower = np.full(numel, -np.inf)
    upper = np.full(numel, np.inf)
    if atoms:
        ops, i_left, c_right, c_left, i_right = zip(*atoms)
        index = np.array([int(a or b) for a, b in zip(i_left, i_right)])
        value = np.array([float(a or b) for a, b in zip(c_right, c_left)])
        # (<= X c) and (>= c X) are upper bounds; the others lower bounds.
        is_upper = np.array([(op == "<=") == bool(i) for op, i in zip(ops, i_left)])
        if index.max() >= numel:
            raise OracleError(
                f"{path}: X_{index.max()} is out of range (numel {numel})"
            )
        np.minimum.at(upper, index[is_upper], value[is_upper])
        np.maximum.at(lower, index[~is_upper], value[~is_upper])
    lower = np.where(np.isinf(lower), np.minimum(0.0, upper), lower)
    upper = np.where(np.isinf(upper), np.maximum(1.0, lower), upper)
    empty = np.flatnonzero(lower > upper)
    if empty.size:
        raise OracleError(f"{path}: empty input box at X_{empty[0]}")
    return lower, upper


def sample_box(lower, upper, count, rng):
    """count >= 2 float32 points in [lower, upper]: both corners, then uniform."""
    u = rng.random((count - 2, lower.size))
    points = np.vstack([lower, upper, lower + u * (upper - lower)])
    return points.astype(np.float32)


# --------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class Model:
    """An onnxruntime CPU session over a single-input, single-output model."""

    def __init__(self, path):
        options = ort.SessionOptions()
        options.log_severity_level = 3  # keep ORT's warnings out of the output
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:
            raise OracleError(f"{path}: onnxruntime cannot load it: {first_line(e)}")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise OracleError(
                f"{path}: expected 1 input and 1 output, found "
                f"{len(inputs)} and {len(outputs)}"
            )
        self.path = path
        self.input = inputs[0]
        self.output = outputs[0]
        if self.input.type not in _FLOAT_TYPES:
            raise OracleError(f"{path}: unsupported input type {self.input.type}")
        self.dtype = _FLOAT_TYPES[self.input.type]
        # onnxruntime reports symbolic or unknown dims as str or None.
        self.shape = [d if isinstance(d, int) else None for d in self.input.shape]
        self.sample_shape = [1 if d is None else d for d in self.shape]
        self.numel = int(np.prod(self.sample_shape))
        # Batch along dim 0 only if it is the sole symbolic dim.
        self.batchable = (
            len(self.shape) > 1
            and self.shape[0] is None
            and None not in self.shape[1:]
        )

    def run(self, x, batch):
        """Evaluate rows of x ([N, numel]); returns [N, m] in the output dtype."""
        if x.ndim != 2 or x.shape[1] != self.numel:
            raise OracleError(
                f"{self.path}: inputs have shape {list(x.shape)}, expected "
                f"[N, {self.numel}] for model input shape {self.input.shape}"
            )
        if len(x) == 0:
            raise OracleError(f"{self.path}: no input rows")
        x = x.astype(self.dtype, copy=False)
        try:
            if batch and self.batchable:
                y = self._run(x.reshape([len(x)] + self.shape[1:]))
                return y.reshape(len(x), -1)
            return np.stack(
                [self._run(row.reshape(self.sample_shape)).reshape(-1) for row in x]
            )
        except Exception as e:
            raise OracleError(f"{self.path}: onnxruntime run failed: {first_line(e)}")

    def _run(self, x):
        return np.asarray(
            self.session.run([self.output.name], {self.input.name: x})[0]
        )


def first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------


def find_category(model, root):
    """The nearest folder between model and root holding <name>_instances.csv.

    Returns (category name, csv path or None).
    """
    for folder in model.parents:
        csv_path = folder / f"{folder.name}_instances.csv"
        if csv_path.is_file():
            return folder.name, csv_path
        if folder == root:
            break
    rel = model.relative_to(root)
    return (rel.parts[0] if len(rel.parts) > 1 else root.name), None


def read_instances(csv_path):
    """[(onnx path, vnnlib path)] in file order, resolved against the csv folder."""
    folder = csv_path.parent
    pairs = []
    with open(csv_path, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].strip():
                continue
            pairs.append(tuple(absolute(folder / cell.strip()) for cell in row[:2]))
    return pairs


def absolute(path):
    """Absolute and normalized ("./", "..") but, unlike resolve(), without
    following symlinks, so that models stay inside the benchmark root."""
    return Path(os.path.abspath(path))


def safe_id(model, root):
    stem = model.relative_to(root).with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem.replace("/", "__"))


def parity(args):
    if args.props < 1:
        raise OracleError("--props must be at least 1")
    if args.samples < 2:
        raise OracleError("--samples must be at least 2 (the two box corners)")
    root = absolute(args.benchmarks)
    if not root.is_dir():
        raise OracleError(f"{args.benchmarks}: not a directory")
    models = sorted(root.rglob("*.onnx"))
    if not models:
        raise OracleError(f"{root}: no .onnx files found")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    instances = {}
    manifest = []
    for path in models:
        category, csv_path = find_category(path, root)
        if csv_path is not None and csv_path not in instances:
            instances[csv_path] = read_instances(csv_path)
        properties = []
        for onnx_path, vnnlib in instances.get(csv_path, []):
            if onnx_path == path and vnnlib not in properties:
                properties.append(vnnlib)
        properties = properties[: args.props]

        model = Model(path)
        mid = safe_id(path, root)
        # Seeding per model keeps each model's samples independent of which
        # other models are present under DIR.
        rng = np.random.default_rng([args.seed, zlib.crc32(mid.encode())])
        if properties:
            boxes = [parse_input_box(p, model.numel) for p in properties]
        else:
            print(f"note: {path}: no properties in instances csv, using [0,1] box",
                  file=sys.stderr)
            boxes = [(np.zeros(model.numel), np.ones(model.numel))]
        x = np.vstack([sample_box(lo, hi, args.samples, rng) for lo, hi in boxes])
        y = model.run(x, batch=False).astype(np.float32)

        x_path, y_path = absolute(out / f"{mid}.x.npy"), absolute(out / f"{mid}.y.npy")
        np.save(x_path, x)
        np.save(y_path, y)
        manifest.append(
            {
                "model": str(path),
                "x": str(x_path),
                "y": str(y_path),
                "properties": [str(p) for p in properties],
                "category": category,
            }
        )

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest)} models to {absolute(out)}")


# --------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------


def evaluate(args):
    model = Model(args.model)
    try:
        x = np.load(args.x)
    except (OSError, ValueError) as e:
        raise OracleError(f"{args.x}: cannot read npy: {first_line(e)}")
    if x.dtype not in (np.float32, np.float64):
        raise OracleError(f"{args.x}: dtype {x.dtype}, expected float32 or float64")
    y = model.run(x, batch=True)
    np.save(args.y, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parity", help="sample benchmark boxes and record ORT outputs")
    p.add_argument("--benchmarks", required=True, help="benchmark root folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--samples", type=int, default=8, help="samples per property")
    p.add_argument("--props", type=int, default=2, help="properties per model")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=parity)

    e = sub.add_parser("eval", help="evaluate a model on the rows of an npy file")
    e.add_argument("model")
    e.add_argument("x", metavar="X.npy")
    e.add_argument("y", metavar="Y.npy")
    e.set_defaults(func=evaluate)

    args = parser.parse_args()
    try:
        args.func(args)
    except (OracleError, OSError) as err:
        sys.exit(f"ort_oracle: error: {err}")


if __name__ == "__main__":
    main()
