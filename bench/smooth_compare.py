#!/usr/bin/env python3
"""Cohen et al. CERTIFY on many images: `lipcert smooth certify` against onnxruntime + NumPy
doing the same, side by side, alternating, median of the rounds.

usage: bench/smooth_compare.py [--rounds 5] [--images 100] [--n 100000] [--n0 100] [--batch 1000]
                               [--sigma 0.25] [--alpha 0.001] [--threads 2] [--model M.onnx]

Inputs: the real MNIST test images of the mnistfc and eran VNN-LIB box centres (15 + 72 = 87
distinct images; the first ones repeated to reach --images), on mnist-net_256x2 by default.
Both sides run the same algorithm with the same sizes: n0 selection samples pick the top
class, n estimation samples count it, Clopper-Pearson lower bound at alpha, radius
sigma * Phi^-1(pA) (abstain when pA <= 1/2), noisy batches of --batch. The time of each is
in-process compute time: lipcert's `time_s` (the certification loop, model loading excluded)
and, for the reference, the loop after the onnxruntime session is built (noise by NumPy's
default generator in float32, single-threaded as NumPy is; forward by onnxruntime with
--threads intra-op threads; scipy for the bound). Prints per-round times, medians, the ratio
and how far the two sides' radii differ (different random streams: equal up to sampling noise).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT.parent / "shared" / "benchmarks" / "vnncomp2021"


def images(count, out):
    props = sorted((BENCH / "mnistfc").glob("prop_*_0.03.vnnlib"), key=lambda p: int(p.name.split("_")[1]))
    props += sorted((BENCH / "eran" / "specs" / "mnist").glob("*.vnnlib"))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "vnnlib_centers.py"), *map(str, props), "--out", str(out)],
                   check=True, capture_output=True)
    x, y = np.load(f"{out}_x.npy"), np.load(f"{out}_y.npy")
    reps = -(-count // len(x))
    x, y = np.concatenate([x] * reps)[:count], np.concatenate([y] * reps)[:count]
    np.save(f"{out}_x.npy", x)
    np.save(f"{out}_y.npy", y)
    return x, y, len(props)


def reference(session, name, shape, x, labels, args):
    """Cohen CERTIFY with onnxruntime + NumPy; returns (seconds, radii)."""
    from scipy.stats import beta, norm
    rng = np.random.default_rng(0)

    def counts(x0, num):
        c = np.zeros(10, dtype=np.int64)
        done = 0
        while done < num:
            m = min(args.batch, num - done)
            noisy = x0 + args.sigma * rng.standard_normal((m, x0.size), dtype=np.float32)
            logits = session.run(None, {name: noisy.reshape(m, *shape[1:])})[0].reshape(m, -1)
            c += np.bincount(logits.argmax(axis=1), minlength=10)
            done += m
        return c

    start = time.perf_counter()
    radii = []
    for x0, _ in zip(x, labels):
        top = int(counts(x0, args.n0).argmax())
        k = int(counts(x0, args.n)[top])
        pa = beta.ppf(args.alpha, k, args.n - k + 1) if k > 0 else 0.0
        radii.append(args.sigma * norm.ppf(pa) if pa > 0.5 else -1.0)
    return time.perf_counter() - start, radii


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=BENCH / "mnistfc" / "mnist-net_256x2.onnx")
    ap.add_argument("--lipcert", default=str(ROOT / "target" / "release" / "lipcert"))
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-smooth.json")
    args = ap.parse_args()
    import onnxruntime as ort
    prefix = ROOT / "target" / "smooth_compare"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    x, y, distinct = images(args.images, prefix)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    # The benchmark models fix the batch to 1: a copy with a symbolic batch (as forward_ort.py).
    sys.path.insert(0, str(ROOT / "bench"))
    import onnx
    from forward_ort import dynamic_batch
    model = onnx.load(str(args.model))
    dynamic_batch(model)
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    x = x.reshape(len(x), -1).astype(np.float32)
    cmd = [args.lipcert, "smooth", "certify", str(args.model), "--data", f"{prefix}_x.npy", "--labels", f"{prefix}_y.npy",
           "--sigma", str(args.sigma), "--n0", str(args.n0), "--n", str(args.n), "--alpha", str(args.alpha),
           "--batch", str(args.batch), "--json"]
    times = {"lipcert": [], "onnxruntime+numpy": []}
    for r in range(args.rounds):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rep = json.loads(out.stdout)
        times["lipcert"].append(rep["time_s"])
        lip_radii = [s["radius"] if s["predict"] >= 0 else -1.0 for s in rep["per_sample"]]
        t, ref_radii = reference(session, name, shape, x, y, args)
        times["onnxruntime+numpy"].append(t)
        print(f"round {r + 1}: lipcert {rep['time_s']:.2f} s, onnxruntime+numpy {t:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    both = [(a, b) for a, b in zip(lip_radii, ref_radii) if a >= 0 and b >= 0]
    diff = max(abs(a - b) for a, b in both) if both else float("nan")
    samples = args.images * (args.n + args.n0)
    print(f"{args.images} images ({distinct} distinct), {args.model.name}, sigma {args.sigma}, n0 {args.n0}, n {args.n}, "
          f"batch {args.batch}, {args.rounds} rounds, {samples} noisy samples per run")
    for k, v in med.items():
        print(f"  {k:18s} median {v:8.2f} s  ({samples / v:,.0f} samples/s)")
    print(f"  ratio onnxruntime+numpy / lipcert: {med['onnxruntime+numpy'] / med['lipcert']:.2f}x")
    print(f"  radii: {len(both)} images certified by both, largest difference {diff:.4f} (sampling noise)")
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "times": times,
                                    "median": med, "max_radius_difference": diff}, indent=1))


if __name__ == "__main__":
    main()
