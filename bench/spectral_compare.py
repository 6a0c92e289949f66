#!/usr/bin/env python3
"""Dense spectral norms: lipcert's certified brackets against NumPy (BLAS-backed), side by side.

usage: bench/spectral_compare.py [--repeats 3] [--sizes 2000x1000,4096x4096] [--out FILE]

For each seeded Gaussian matrix: NumPy's SVD norm (np.linalg.norm(W, 2)); NumPy's Gram
iteration (thesis Alg. 4, Frobenius rescaling) with the fewest steps whose estimate is within
the tolerance of the SVD value (so NumPy gets the number of steps for free); and lipcert's
gram / auto (certified brackets of the requested width) and exact. Prints a table of median
times and the ratios NumPy / lipcert.
"""

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def gram_numpy(w, steps):
    """Alg. 4: Gram iteration with Frobenius rescaling; returns the upper estimate."""
    if w.shape[0] < w.shape[1]:
        w = w.T
    r = 0.0
    for _ in range(steps):
        f = np.linalg.norm(w)
        r = 2 * (r + np.log(f))
        w = w / f
        w = w.T @ w
    return np.linalg.norm(w) ** (2.0 ** -steps) * np.exp(2.0 ** -steps * r)


def timed(f, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="2000x1000,4096x4096")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-spectral.json")
    args = ap.parse_args()
    data = ROOT / "target" / "bench-data"
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes.split(","):
        m, n = map(int, size.split("x"))
        path = data / f"gaussian_{m}x{n}.npy"
        w = np.random.default_rng(0).standard_normal((m, n))
        np.save(path, w)
        big = m * n > 4_000_000
        reps = 1 if big else args.repeats
        t_svd, sigma = timed(lambda: np.linalg.norm(w, 2), reps)
        numpy = {"svd": t_svd}
        for tol in (1e-6, 1e-10):
            steps = next(s for s in range(1, 40) if gram_numpy(w, s) / sigma - 1 < tol)
            numpy[f"gram {tol:g}"], _ = timed(lambda: gram_numpy(w, steps), reps)
            numpy[f"gram {tol:g} steps"] = steps
        out = subprocess.run(["cargo", "bench", "-q", "-p", "lipcert-spectral", "--bench", "dense_spectral", "--",
                              "--repeats", str(args.repeats), str(path)], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        ours = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for r in ours:
            if r["method"] == "exact":
                ref = numpy["svd"]
                versus = "numpy svd"
            else:
                tol = r["tol"]
                versus = f"numpy gram {tol:g} ({numpy[f'gram {tol:g} steps']} steps)"
                ref = numpy[f"gram {tol:g}"]
            rows.append({**r, "sigma_svd": sigma, "numpy_s": ref, "versus": versus, "speedup": ref / r["median_s"],
                         "speedup_vs_numpy_svd": numpy["svd"] / r["median_s"]})
    print(f"{'matrix':<10} {'method':<6} {'tol':>6} {'lipcert s':>10} {'width':>9} {'iters':>5}  "
          f"{'vs':<26} {'numpy s':>8} {'speedup':>7} {'vs svd':>7}")
    for r in rows:
        tol = "-" if r["tol"] is None else f"{r['tol']:g}"
        print(f"{r['matrix']:<10} {r['used']:<6} {tol:>6} {r['median_s']:>10.3f} {r['width']:>9.1e} {r['iters']:>5}  "
              f"{r['versus']:<26} {r['numpy_s']:>8.3f} {r['speedup']:>7.2f} {r['speedup_vs_numpy_svd']:>7.2f}")
    args.out.write_text(json.dumps(rows, indent=2))
    print(f"(medians of {args.repeats} runs for 2000x1000, 1 run for larger; JSON in {args.out})")


if __name__ == "__main__":
    main()
