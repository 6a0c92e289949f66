"""Randomized-smoothing certification of a data set in shards, locally or as Ray tasks.

usage: python -m lipcert.certify_shards MODEL --data X.npy --labels Y.npy --sigma S
           [--method cohen] [--n 100000] [--n0 100] [--alpha 0.001] [--batch 1000] [--seed 0]
           [--shards K] [--ray [ADDRESS]] [--threads-per-task T] [--out per_sample.csv] [--json]

Each shard is one `lipcert.smooth_certify` call on a contiguous slice of the data; it passes
the slice's first index, so every sample draws the noise it would draw in one run over the
whole set and the merged report equals that run's (a test checks it). With --ray, every
shard is a Ray task (a task whose worker dies is retried by Ray).
"""
import argparse
import csv
import json
import sys
import time

import numpy as np

import lipcert


def shard_bounds(n, shards):
    """[start, end) of each of `shards` near-equal contiguous slices of n samples."""
    shards = max(1, min(shards, n)) if n else 1
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def certify_shard(model, x, labels, start, kwargs):
    """One shard: the `smooth_certify` result of x (samples start, start+1, ...)."""
    return lipcert.smooth_certify(model, x, labels, first_index=start, **kwargs)


def merge(reports):
    """One report from shard reports in data order: the per-sample rows concatenated, and the
    summary (accuracy, ACR, curve) recomputed from them as `lipcert smooth certify` does."""
    rows = [s for r in reports for s in r["per_sample"]]
    n = len(rows)
    frac = (lambda k: k / n) if n else (lambda k: 0.0)
    correct = sum(s["correct"] for s in rows)
    merged = dict(reports[0])
    merged.update(
        samples=n,
        abstained=sum(s["predict"] < 0 for s in rows),
        correct=correct,
        clean_accuracy=frac(correct),
        average_certified_radius=(sum(s["radius"] for s in rows if s["correct"]) / n) if n else 0.0,
        curve=[{"radius": p["radius"],
                "certified": sum(s["correct"] and s["radius"] >= p["radius"] for s in rows),
                "certified_accuracy": frac(sum(s["correct"] and s["radius"] >= p["radius"] for s in rows))}
               for p in reports[0]["curve"]],
        time_s=sum(r["time_s"] for r in reports),
        noise_samples_per_s=(sum(r["noise_samples_per_s"] * r["time_s"] for r in reports)
                             / max(sum(r["time_s"] for r in reports), 1e-12)),
        per_sample=rows,
        shards=len(reports),
    )
    return lipcert.Result(merged)


def run(model, x, labels, shards=1, ray_address=None, use_ray=False, threads_per_task=1, **kwargs):
    """The merged report of certifying x in `shards` shards (as Ray tasks with use_ray)."""
    x = np.asarray(x)
    labels = np.asarray(labels)
    bounds = shard_bounds(len(x), shards)
    if not use_ray:
        return merge([certify_shard(str(model), x[a:b], labels[a:b], a, kwargs) for a, b in bounds])
    import ray
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    # Each task's rayon pool gets the cores Ray gives the task, so tasks do not oversubscribe.
    env = {"env_vars": {"RAYON_NUM_THREADS": str(threads_per_task)}}
    task = ray.remote(max_retries=3, num_cpus=threads_per_task, runtime_env=env)(certify_shard)
    refs = [task.remote(str(model), x[a:b], labels[a:b], a, kwargs) for a, b in bounds]
    return merge([lipcert.Result(r) for r in ray.get(refs)])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lipcert.certify_shards")
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--method", default="cohen")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="run the shards as Ray tasks (a local cluster, or the one at ADDRESS)")
    ap.add_argument("--threads-per-task", type=int, default=1)
    ap.add_argument("--out", default=None, help="per-sample csv (idx,label,predict,radius,correct,time_s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        x, y = np.load(args.data), np.load(args.labels)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.time()
    try:
        r = run(args.model, x, y, shards=args.shards, use_ray=args.ray is not None, ray_address=args.ray or None,
                threads_per_task=args.threads_per_task, sigma=args.sigma, method=args.method, n=args.n,
                n0=args.n0, alpha=args.alpha, batch=args.batch, seed=args.seed)
    except lipcert.LipcertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wall = time.time() - start
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["idx", "label", "predict", "radius", "correct", "time_s"])
            w.writerows([s["idx"], s["label"], s["predict"], f"{s['radius']:.6f}", int(s["correct"]),
                         f"{s['time_s']:.4f}"] for s in r.per_sample)
    if args.json:
        print(json.dumps({**r, "wall_s": wall}, indent=1))
        return 0
    print(f"{r.samples} samples in {r.shards} shards{' on Ray' if args.ray is not None else ''}, method {r.method}, "
          f"sigma {r.sigma}, n {r.n}: clean accuracy {r.clean_accuracy:.4f}, average certified radius "
          f"{r.average_certified_radius:.4f} (wall {wall:.1f} s, {r.time_s:.1f} s in the shards)")
    for p in r.curve:
        print(f"  radius {p['radius']:.4f}: certified accuracy {p['certified_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
