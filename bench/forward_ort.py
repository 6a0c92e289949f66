#!/usr/bin/env python3
"""Measure onnxruntime forward throughput of an ONNX model.

usage: forward_ort.py MODEL [--batches 1,256] [--repeats 15] [--threads 2] [--json]

For each batch size: warm up, time --repeats calls of session.run on a fixed
random batch, and report the median and minimum seconds per call and the
median samples per second. If the model's batch dimension is fixed to a size
other than a requested batch, a copy is made in memory whose input and output
have a symbolic first dimension.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

WARMUP_RUNS = 3
WARMUP_SECONDS = 0.2
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def graph_input(model):
    """The single non-initializer graph input."""
    initializers = {t.name for t in model.graph.initializer}
    # IR < 4 models (ACAS Xu) also list their weights as graph inputs.
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ValueError(
            f"expected 1 input and 1 output, found {len(inputs)} and "
            f"{len(model.graph.output)}"
        )
    return inputs[0]


def fixed_batch_mismatch(model, batches):
    """True if the input's first dim is fixed and differs from a requested batch."""
    dims = graph_input(model).type.tensor_type.shape.dim
    fixed = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    return fixed is not None and any(b != fixed for b in batches)


def dynamic_batch(model):
    """Set dim 0 of the single graph input and output to the symbol 'N'.

    Only the declared shapes change: this works when the graph itself does not
    hard-code the batch size (e.g. a Flatten(axis=1) or a Reshape to [-1, k]
    after the input), and onnxruntime reports an error at run time otherwise.
    """
    for value in (graph_input(model), model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) < 2:
            raise ValueError(
                f"'{value.name}' has rank {len(dims)}, so it has no batch dimension"
            )
        dims[0].dim_param = "N"  # clears dim_value (same protobuf oneof)
    # Stale intermediate shapes would pin the batch size; ORT re-infers them.
    del model.graph.value_info[:]
    return model


def measure(session, batch, repeats, rng):
    """Time session.run on one random batch; returns the result record."""
    feed = session.get_inputs()[0]
    if feed.type not in _FLOAT_TYPES:
        raise ValueError(f"unsupported input type {feed.type}")
    shape = [batch] + [d if isinstance(d, int) else 1 for d in feed.shape[1:]]
    x = {feed.name: rng.random(shape, dtype=np.float32).astype(_FLOAT_TYPES[feed.type])}
    # Warm up for a minimum number of runs and time, so that thread pools
    # and allocator caches are settled before timing.
    runs, warmup_end = 0, time.perf_counter() + WARMUP_SECONDS
    while runs < WARMUP_RUNS or time.perf_counter() < warmup_end:
        session.run(None, x)
        runs += 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, x)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "batch": batch,
        "median_s": median,
        "min_s": min(times),
        "samples_per_s": batch / median,
        "repeats": repeats,
    }


def parse_batches(text):
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}")
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive: {text!r}")
    return batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batches", type=parse_batches, default=[1, 256],
                        help="comma-separated batch sizes (default 1,256)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2,
                        help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        sys.exit("forward_ort: error: --repeats and --threads must be at least 1")

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # keep ORT's warnings out of the output
    rng = np.random.default_rng(0)
    try:
        model = onnx.load(args.model)
        if fixed_batch_mismatch(model, args.batches):
            model = dynamic_batch(model)
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        results = [measure(session, b, args.repeats, rng) for b in args.batches]
    except Exception as e:
        lines = str(e).strip().splitlines()
        sys.exit(f"forward_ort: error: {args.model}: "
                 f"{lines[0] if lines else type(e).__name__}")

    if args.json:
        print(json.dumps({
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "model": str(Path(args.model).resolve()),
            "results": results,
        }))
        return
    print(f"onnxruntime {ort.__version__}  {args.model}  "
          f"threads={args.threads} repeats={args.repeats}")
    print(f"{'batch':>7} {'median ms':>11} {'min ms':>11} {'samples/s':>14}")
    for r in results:
        print(f"{r['batch']:>7} {r['median_s'] * 1e3:>11.4f} {r['min_s'] * 1e3:>11.4f} "
              f"{r['samples_per_s']:>14,.0f}")


if __name__ == "__main__":
    main()
