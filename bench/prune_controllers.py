#!/usr/bin/env python3
"""Pruning benchmark on the four trained controllers (and optionally ACAS Xu networks).

For each system: train a ReLU policy (lipcert control train), sweep every pruning method at
10/30/50/70% (lipcert prune --sweep: closed-form, certified and observed deviation over the
state box), then run each SparseGPT-pruned policy in closed loop against the original
(lipcert control simulate --compare) with the certified bound checked at every visited state.
Prints markdown tables; writes the plots and models to OUT (default /tmp/lipcert-prune-bench).

    cargo build --release && python3 bench/prune_controllers.py [--acas ../shared/benchmarks/vnncomp2021/acasxu]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIPCERT = os.path.join(ROOT, "target", "release", "lipcert")
SYSTEMS = ["pendulum", "cartpole", "quadrotor", "acc"]
SPARSITIES = [0.1, 0.3, 0.5, 0.7]


def run(args):
    out = subprocess.run([LIPCERT] + args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"lipcert {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout) if "--json" in args else out.stdout


def sweep_table(name, box_args, model, out_dir):
    plot = os.path.join(out_dir, f"{name}_sweep.svg")
    res = run(["prune", model, *box_args, "--sweep", ",".join(map(str, SPARSITIES)),
               "--method", "magnitude,obd,obs,sparsegpt", "--plot", plot, "--json"])
    print(f"\n### {name} ({res['box']}, {res['time_s']:.1f} s)\n")
    print("| method | target | sparsity | closed form | certified | observed | closed/obs | cert/obs |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res["results"]:
        fmt = lambda v: "n/a" if v is None else f"{v:.3g}"
        print(f"| {r['method']} | {r['target_sparsity']:.0%} | {r['sparsity']:.1%} | {fmt(r['closed_form'])} | "
              f"{fmt(r['certified'])} | {fmt(r['observed_max'])} | {fmt(r['closed_form_over_observed'])} | "
              f"{fmt(r['certified_over_observed'])} |")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/lipcert-prune-bench")
    ap.add_argument("--acas", help="ACAS Xu directory (networks and prop_7.vnnlib)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    closed_loop = []
    for s in SYSTEMS:
        model = os.path.join(a.out, f"{s}.onnx")
        run(["control", "train", "--system", s, "-o", model, "--precision", "f64", "--json"])
        sweep_table(s, ["--system", s], model, a.out)
        for p in SPARSITIES:
            pruned = os.path.join(a.out, f"{s}_sparsegpt_{int(p * 100)}.onnx")
            run(["prune", model, "--system", s, "--method", "sparsegpt", "--sparsity", str(p), "-o", pruned,
                 "--precision", "f64", "--json"])
            dev = run(["deviation", model, pruned, "--system", s, "--json"])
            sim = run(["control", "simulate", "--system", s, model, "--compare", pruned,
                       "--bound", repr(dev["certified"]), "--json"])
            closed_loop.append((s, p, dev, sim))
    print("\n### Closed loop, SparseGPT-pruned policies (100 episodes from the initial box)\n")
    print("| system | sparsity | certified bound | max action dev. in box | success orig / pruned | "
          "return orig / pruned | violating episodes (pruned) | states over the bound |")
    print("|---|---|---|---|---|---|---|---|")
    for s, p, dev, sim in closed_loop:
        c = sim["comparison"]
        o, q = c["original"], c["pruned"]
        print(f"| {s} | {p:.0%} | {dev['certified']:.3g} | {c['max_action_dev_in_box']:.3g} | "
              f"{o['success_rate']:.0%} / {q['success_rate']:.0%} | {o['mean_cost']:.4g} / {q['mean_cost']:.4g} | "
              f"{q['episodes_with_violations']} | {c['bound_exceeded']} |")
    if a.acas:
        for net in ["1_1", "3_3"]:
            model = os.path.join(a.acas, f"ACASXU_run2a_{net}_batch_2000.onnx")
            sweep_table(f"ACAS Xu {net}", ["--vnnlib", os.path.join(a.acas, "prop_7.vnnlib"), "--splits", "256"],
                        model, a.out)


if __name__ == "__main__":
    main()
