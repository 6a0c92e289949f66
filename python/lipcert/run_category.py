"""Runs `lipcert.verify` on every instance of a VNN-COMP category and writes a results csv.

usage: python -m lipcert.run_category CATEGORY_DIR [--ray [ADDRESS]] [--out results.csv]
           [--timeout-scale 1.0] [--max-timeout S] [--known KNOWN.csv] [--filter SUBSTRING]
           [--limit N] [--threads-per-task T] [--pid-dir DIR]

The same csv (onnx,vnnlib,result,time_s,boxes,known) and answer checking as
scripts/run_category.py (a wrong answer makes it exit 1), but each instance calls the package
in-process. With --ray, every instance is one Ray task (on a local cluster, or on the cluster
at ADDRESS); a task whose worker dies is retried by Ray. --pid-dir: each task writes its
worker's pid to DIR/<index>.pid (one line per attempt) before it starts, so a test can kill a worker mid-run.
"""
import argparse
import csv
import os
import sys
import time
from pathlib import Path

import lipcert


def instances(category, filters=()):
    """(onnx, vnnlib, timeout) rows of CATEGORY_instances.csv that contain every filter."""
    cat = Path(category)
    rows = [r for r in csv.reader(open(cat / f"{cat.name}_instances.csv")) if r]
    return [(o, p, float(t)) for o, p, t in rows if all(f in o or f in p for f in filters)]


def known_answers(path, name):
    """{(onnx file name, vnnlib file name): answer} of one category."""
    known = {}
    if Path(path).exists():
        for row in csv.DictReader(open(path)):
            if row["category"] == name:
                known[(Path(row["onnx"]).name, Path(row["vnnlib"]).name)] = row["answer"]
    return known


def run_instance(category, onnx, prop, timeout, index=0, pid_dir=None):
    """Verifies one instance: {"result", "boxes", "time_s", "error"}; errors are answers."""
    if pid_dir:
        with open(Path(pid_dir, f"{index}.pid"), "a") as f:
            f.write(f"{os.getpid()}\n")
    start = time.time()
    try:
        r = lipcert.verify(Path(category) / onnx, Path(category) / prop, timeout=timeout)
        out = {"result": r.result, "boxes": r.boxes, "error": None}
    except lipcert.LipcertError as e:
        out = {"result": "error", "boxes": 0, "error": str(e)}
    out["time_s"] = time.time() - start
    return out


def run_local(category, jobs, pid_dir=None):
    return [run_instance(category, o, p, t, i, pid_dir) for i, (o, p, t) in enumerate(jobs)]


def run_ray(category, jobs, address=None, pid_dir=None, threads_per_task=1):
    """One Ray task per instance; Ray retries a task whose worker dies (max_retries). Each
    task's rayon pool gets the cores Ray gives the task, so tasks do not oversubscribe."""
    import ray
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    env = {"env_vars": {"RAYON_NUM_THREADS": str(threads_per_task)}}
    task = ray.remote(max_retries=3, num_cpus=threads_per_task, runtime_env=env)(run_instance)
    refs = [task.remote(str(Path(category).resolve()), o, p, t, i, pid_dir) for i, (o, p, t) in enumerate(jobs)]
    return ray.get(refs)


def check(name, jobs, results, known):
    """The csv rows, the answer counts and the number of wrong answers (sat vs unsat)."""
    rows, counts, wrong = [], {}, 0
    for (onnx, prop, _), r in zip(jobs, results):
        k = known.get((Path(onnx).name, Path(prop).name), "")
        if {r["result"], k} == {"sat", "unsat"}:
            wrong += 1
            print(f"WRONG ANSWER: {onnx} {prop}: {r['result']}, known {k}", file=sys.stderr)
        if r["error"]:
            print(f"{onnx} {prop}: error: {r['error']}", file=sys.stderr)
        counts[r["result"]] = counts.get(r["result"], 0) + 1
        rows.append([onnx, prop, r["result"], f"{r['time_s']:.3f}", r["boxes"], k])
    return rows, counts, wrong


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lipcert.run_category")
    ap.add_argument("category")
    ap.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="run the instances as Ray tasks (a local cluster, or the one at ADDRESS)")
    ap.add_argument("--out", default="results.csv")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("--max-timeout", type=float, default=float("inf"))
    ap.add_argument("--known", default=None,
                    help="default: known_answers.csv two levels above CATEGORY_DIR (benchmarks/)")
    ap.add_argument("--filter", action="append", default=[])
    ap.add_argument("--limit", type=int, default=None, help="only the first N instances")
    ap.add_argument("--threads-per-task", type=int, default=1, help="with --ray: cores (and threads) per task")
    ap.add_argument("--pid-dir", default=None)
    args = ap.parse_args(argv)
    name = Path(args.category).name
    jobs = [(o, p, min(t * args.timeout_scale, args.max_timeout)) for o, p, t in instances(args.category, args.filter)]
    jobs = jobs[:args.limit]
    start = time.time()
    if args.ray is None:
        results = run_local(args.category, jobs, args.pid_dir)
    else:
        results = run_ray(args.category, jobs, args.ray or None, args.pid_dir, args.threads_per_task)
    wall = time.time() - start
    known = args.known or Path(args.category).resolve().parent.parent / "known_answers.csv"
    rows, counts, wrong = check(name, jobs, results, known_answers(known, name))
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["onnx", "vnnlib", "result", "time_s", "boxes", "known"])
        w.writerows(rows)
    solved = counts.get("sat", 0) + counts.get("unsat", 0)
    total = sum(r["time_s"] for r in results)
    print(f"{name}: {len(rows)} instances, solved {solved} ({counts}), wrong {wrong}, "
          f"total {total:.1f} s, wall {wall:.1f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
