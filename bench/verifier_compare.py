#!/usr/bin/env python3
"""Complete verification, side by side on the same machine: `lipcert verify` against Marabou
(maraboupy 2.0, from PyPI) on VNN-COMP 2021 ACAS Xu instances.

usage: python3 bench/verifier_compare.py [--subset default|all] [--filter SUBSTRING ...]
                                         [--max-timeout 60] [--workers 2] [--out FILE.csv]
                                         [--python VENV_PYTHON] [--lipcert BINARY]

Marabou runs in a separate Python (a virtualenv with maraboupy, onnx and onnxruntime), given by
--python or the VERIFIER_PYTHON environment variable (default: ../venv-verifiers/bin/python next
to the repository). To set one up:

    python3 -m venv ../venv-verifiers
    ../venv-verifiers/bin/pip install maraboupy==2.0.0 "numpy<2" "onnx<2" "onnxruntime<2"

For each instance the two tools run one after the other (which one goes first alternates from
instance to instance), each as a fresh process, with the same timeout: the csv timeout capped at
--max-timeout. Marabou reads the network with Marabou.read_onnx and the property with
MarabouCore.loadProperty (its own VNN-LIB parser, which encodes `or` as a disjunction
constraint), and solves in its divide-and-conquer mode (snc) with --workers workers, its other
options at their defaults. Each tool's time is the wall time of its process (start-up, model
loading and search); the csv also has each tool's own solve time. A Marabou counterexample is
checked here: onnxruntime evaluates the network at it and the VNN-LIB formula is evaluated on
that output (column marabou_cex; the point is in marabou_point). Answers are compared with known_answers.csv: a sat/unsat
contradiction is flagged (WRONG ANSWER) and makes the script exit 1.

The summary gives solved counts (a Marabou sat whose counterexample fails the check is not counted), total time (an unsolved instance counts at its timeout), median
time over the instances both tools solved, and the per-instance ratio marabou / lipcert (median
and range) over the instances both solved.

--subset default is the fixed subset used for the project's notes (32 instances): props 1-4 on
networks 1_1, 1_9, 2_1, 3_3, 4_2, 5_9; the six instances of props 5-10 (1_1 p5, 1_1 p6, 1_9 p7,
2_9 p8, 3_3 p9, 4_5 p10); prop 1 on 3_7 and 4_6. --subset all takes the whole csv; --filter
keeps instances whose onnx or vnnlib name contains the substring (repeatable: all must match).
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LIPCERT_SHARED", ROOT.parent / "shared"))
ACAS = SHARED / "benchmarks" / "vnncomp2021" / "acasxu"
KNOWN = SHARED / "benchmarks" / "known_answers.csv"
LIPCERT = ROOT / "target" / "release" / "lipcert"
DEFAULT_PYTHON = os.environ.get("VERIFIER_PYTHON", str(ROOT.parent / "venv-verifiers" / "bin" / "python"))


def default_subset():
    net = "ACASXU_run2a_{}_batch_2000.onnx"
    out = []
    for n in ["1_1", "1_9", "2_1", "3_3", "4_2", "5_9"]:
        for p in range(1, 5):
            out.append((net.format(n), f"prop_{p}.vnnlib"))
    for n, p in [("1_1", 5), ("1_1", 6), ("1_9", 7), ("2_9", 8), ("3_3", 9), ("4_5", 10), ("3_7", 1), ("4_6", 1)]:
        out.append((net.format(n), f"prop_{p}.vnnlib"))
    return out


# ---------------------------------------------------------------------------------------------
# Worker: runs inside the verifier virtualenv (python verifier_compare.py --marabou-worker ...)
# ---------------------------------------------------------------------------------------------

def _sexprs(text):
    """Parses VNN-LIB text into nested lists of tokens."""
    toks = []
    for line in text.splitlines():
        line = line.split(";", 1)[0]
        toks += line.replace("(", " ( ").replace(")", " ) ").split()
    stack, cur = [], []
    for t in toks:
        if t == "(":
            stack.append(cur)
            cur = []
        elif t == ")":
            done = cur
            cur = stack.pop()
            cur.append(done)
        else:
            cur.append(t)
    return cur


def _holds(e, env, tol):
    op = e[0]
    if op == "and":
        return all(_holds(a, env, tol) for a in e[1:])
    if op == "or":
        return any(_holds(a, env, tol) for a in e[1:])
    val = lambda t: env[t] if t in env else float(t)
    a, b = val(e[1]), val(e[2])
    if op == "<=":
        return a <= b + tol
    if op == ">=":
        return a >= b - tol
    raise ValueError(f"unsupported VNN-LIB operator {op}")


def check_counterexample(onnx_path, vnnlib_path, x, tol=1e-4):
    """Runs the network at x with onnxruntime and evaluates every assertion of the property."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y = sess.run(None, {inp.name: np.array(x, dtype=np.float32).reshape(shape)})[0].reshape(-1)
    env = {f"X_{i}": float(v) for i, v in enumerate(x)}
    env.update({f"Y_{j}": float(v) for j, v in enumerate(y)})
    asserts = [e[1] for e in _sexprs(Path(vnnlib_path).read_text()) if e and e[0] == "assert"]
    return all(_holds(a, env, tol) for a in asserts), [float(v) for v in y]


def marabou_worker(onnx_path, vnnlib_path, timeout, workers):
    t0 = time.time()
    import warnings
    warnings.filterwarnings("ignore")
    from maraboupy import Marabou, MarabouCore
    net = Marabou.read_onnx(onnx_path)
    ipq = net.getInputQuery()
    MarabouCore.loadProperty(ipq, vnnlib_path)
    opts = Marabou.createOptions(timeoutInSeconds=int(math.ceil(timeout)), verbosity=0,
                                 snc=workers > 1, numWorkers=max(workers, 1))
    t1 = time.time()
    code, vals, stats = MarabouCore.solve(ipq, opts, "")
    t2 = time.time()
    out = {"code": code, "load_s": t1 - t0, "solve_s": t2 - t1, "timed_out": bool(stats.hasTimedOut())}
    if code == "sat":
        x = [vals[ipq.inputVariableByIndex(i)] for i in range(ipq.getNumInputVariables())]
        ok, y = check_counterexample(onnx_path, vnnlib_path, x)
        out.update({"x": x, "y_ort": y, "cex_ok": ok})
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def run_lipcert(binary, onnx, prop, t):
    start = time.time()
    try:
        p = subprocess.run([binary, "verify", str(onnx), str(prop), "--timeout", str(t), "--json"],
                           capture_output=True, text=True, timeout=t + 30)
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - start, None, "killed"
    wall = time.time() - start
    if p.returncode != 0:
        return "error", wall, None, p.stderr.strip()[-300:]
    d = json.loads(p.stdout)
    return d["result"], wall, d.get("time_s"), ""


def run_marabou(python, onnx, prop, t, workers):
    start = time.time()
    try:
        p = subprocess.run([python, str(Path(__file__).resolve()), "--marabou-worker", str(onnx), str(prop),
                            str(t), str(workers)], capture_output=True, text=True, timeout=t + 30)
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - start, None, "", "killed", ""
    wall = time.time() - start
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        return "error", wall, None, "", (p.stderr.strip() or p.stdout.strip())[-300:], ""
    d = json.loads(line[-1][len("RESULT "):])
    code = d["code"].lower()
    result = code if code in ("sat", "unsat") else ("timeout" if d["timed_out"] or code == "timeout" else code)
    cex, point = "", ""
    if result == "sat":
        cex = "ok" if d["cex_ok"] else "INVALID"
        point = json.dumps({"x": d["x"], "y_onnxruntime": d["y_ort"]})
    return result, wall, d["solve_s"], cex, "", point


def check_python(python):
    try:
        p = subprocess.run([python, "-c", "import maraboupy, onnx, onnxruntime, numpy; "
                            "from importlib.metadata import version; print(version('maraboupy'))"],
                           capture_output=True, text=True)
    except FileNotFoundError:
        p = None
    if p is None or p.returncode != 0:
        sys.exit(f"error: {python} cannot import maraboupy, onnx, onnxruntime and numpy.\n"
                 "Create the virtualenv (see this script's docstring) and pass its python with --python "
                 "or VERIFIER_PYTHON." + (f"\n{p.stderr.strip()[-500:]}" if p else ""))
    return p.stdout.strip()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--marabou-worker":
        marabou_worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subset", choices=["default", "all"], default="default")
    ap.add_argument("--filter", action="append", default=[])
    ap.add_argument("--max-timeout", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2,
                    help="Marabou divide-and-conquer workers (1: sequential mode); default 2, like lipcert's 2 threads")
    ap.add_argument("--out", default="verifier_compare.csv")
    ap.add_argument("--python", default=DEFAULT_PYTHON, help="Python of the virtualenv with maraboupy")
    ap.add_argument("--lipcert", default=str(LIPCERT))
    ap.add_argument("--bench-dir", default=str(ACAS))
    ap.add_argument("--known", default=str(KNOWN))
    args = ap.parse_args()

    version = check_python(args.python)
    if not Path(args.lipcert).exists():
        sys.exit(f"error: lipcert binary {args.lipcert} not found (build it or pass --lipcert)")
    bench = Path(args.bench_dir)
    timeouts = {(r[0], r[1]): float(r[2]) for r in csv.reader(open(bench / "acasxu_instances.csv")) if r}
    insts = default_subset() if args.subset == "default" else list(timeouts)
    insts = [i for i in insts if all(f in i[0] or f in i[1] for f in args.filter)]
    known = {}
    if Path(args.known).exists():
        for row in csv.DictReader(open(args.known)):
            if row["category"] == "acasxu":
                known[(row["onnx"], row["vnnlib"])] = row["answer"]
    print(f"lipcert {args.lipcert} vs maraboupy {version} ({'snc, %d workers' % args.workers if args.workers > 1 else 'sequential'}), "
          f"{len(insts)} instances, timeout min(csv, {args.max_timeout:g}) s", flush=True)

    rows, wrong = [], []
    for n, (onnx, prop) in enumerate(insts):
        t = min(timeouts[(onnx, prop)], args.max_timeout)
        o, p = bench / onnx, bench / prop
        res = {}
        order = ["lipcert", "marabou"] if n % 2 == 0 else ["marabou", "lipcert"]
        for tool in order:
            if tool == "lipcert":
                res[tool] = run_lipcert(args.lipcert, o, p, t)
            else:
                res[tool] = run_marabou(args.python, o, p, t, args.workers)
        lr, lw, ls, lerr = res["lipcert"]
        mr, mw, ms, mcex, merr, mpoint = res["marabou"]
        k = known.get((onnx, prop), "")
        for tool, r in (("lipcert", lr), ("marabou", mr)):
            if {r, k} == {"sat", "unsat"}:
                wrong.append(f"{tool} {onnx} {prop}: {r}, known {k}")
        if {lr, mr} == {"sat", "unsat"}:
            wrong.append(f"lipcert and marabou disagree on {onnx} {prop}: {lr} vs {mr}")
        if mcex == "INVALID":
            wrong.append(f"marabou counterexample fails the property: {onnx} {prop}")
        for e in (lerr, merr):
            if e:
                print(f"  error: {e}", file=sys.stderr)
        name = onnx.replace("ACASXU_run2a_", "").replace("_batch_2000.onnx", "")
        rows.append({"onnx": onnx, "vnnlib": prop, "net": name, "timeout_s": t, "known": k,
                     "lipcert": lr, "lipcert_wall_s": round(lw, 3), "lipcert_solve_s": ls and round(ls, 3),
                     "marabou": mr, "marabou_wall_s": round(mw, 3), "marabou_solve_s": ms and round(ms, 3),
                     "marabou_cex": mcex, "first": order[0], "marabou_point": mpoint})
        print(f"{name:5s} {prop:15s} lipcert {lr:8s} {lw:7.2f} s | marabou {mr:8s} {mw:7.2f} s {mcex:7s} (known: {k or '-'})",
              flush=True)

    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # a sat whose counterexample fails the property is not counted as solved
    solved = lambda r, tool: r[tool] in ("sat", "unsat") and not (tool == "marabou" and r["marabou_cex"] == "INVALID")
    cost = lambda r, tool: r[f"{tool}_wall_s"] if solved(r, tool) else r["timeout_s"]
    print(f"\n{len(rows)} instances, timeout min(csv, {args.max_timeout:g}) s; csv in {args.out}")
    for tool in ("lipcert", "marabou"):
        ans = [r[tool] for r in rows]
        print(f"{tool:8s} solved {sum(solved(r, tool) for r in rows):3d} (sat {ans.count('sat')}, unsat {ans.count('unsat')}, "
              f"other {len(ans) - ans.count('sat') - ans.count('unsat')}"
              f"{', invalid sat %d' % sum(r['marabou_cex'] == 'INVALID' for r in rows) if tool == 'marabou' else ''}), total {sum(cost(r, tool) for r in rows):8.1f} s")
    both = [r for r in rows if solved(r, "lipcert") and solved(r, "marabou")]
    if both:
        ratios = sorted(r["marabou_wall_s"] / r["lipcert_wall_s"] for r in both)
        print(f"both solved {len(both)}: median time lipcert {statistics.median(r['lipcert_wall_s'] for r in both):.3f} s, "
              f"marabou {statistics.median(r['marabou_wall_s'] for r in both):.3f} s; ratio marabou/lipcert median "
              f"{statistics.median(ratios):.2f}, range {ratios[0]:.2f} .. {ratios[-1]:.2f}")
        sr = sorted(r["marabou_solve_s"] / r["lipcert_solve_s"] for r in both if r["marabou_solve_s"] and r["lipcert_solve_s"])
        if sr:
            print(f"  on each tool's own solve time (process start-up and model loading left out): ratio median "
                  f"{statistics.median(sr):.2f}, range {sr[0]:.2f} .. {sr[-1]:.2f}")
    only = lambda a, b: [f"{r['net']} {r['vnnlib']}" for r in rows if solved(r, a) and not solved(r, b)]
    print(f"solved by lipcert only: {only('lipcert', 'marabou') or '-'}")
    print(f"solved by marabou only: {only('marabou', 'lipcert') or '-'}")
    for m in wrong:
        print(f"WRONG ANSWER: {m}", file=sys.stderr)
    print(f"wrong answers: {len(wrong)}")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
