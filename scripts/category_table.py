#!/usr/bin/env python3
"""The README's per-category table from results csvs of scripts/run_category.py.

usage: scripts/category_table.py RESULTS.csv... [--cap S]

Each csv is one category (named after the file: oval21.csv -> oval21). Prints one markdown row
per category: instances, solved (unsat / sat), timeouts and unknowns, answers that contradict
known_answers.csv (the `known` column), answers that agree with it, the total time, and
alpha-beta-CROWN's VNN-COMP 2021 count for the category (with a GPU and the 2021 timeouts; its
instance counts differ where our set keeps fewer properties, see ../shared/benchmarks/README.md).
"""
import argparse
import csv
from pathlib import Path

# alpha-beta-CROWN, VNN-COMP 2021 (solved / instances of that year's category).
ABCROWN_2021 = {"acasxu": "186/186", "mnistfc": "70/90", "eran": "64/72", "oval21": "15/30",
                "cifar10_resnet": "58/72", "verivital": "60/60"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--cap", help="the per-instance time cap the runs used (for the table's column)")
    args = ap.parse_args()
    print("| category | instances | timeout | solved | unsat | sat | timeout / unknown | wrong | agree with known "
          "| total time | alpha-beta-CROWN 2021 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.results:
        rows = list(csv.DictReader(open(path)))
        count = lambda r: sum(row["result"] == r for row in rows)
        unsat, sat = count("unsat"), count("sat")
        wrong = sum({row["result"], row["known"]} == {"sat", "unsat"} for row in rows)
        agree = sum(row["known"] in ("sat", "unsat") and row["result"] == row["known"] for row in rows)
        known = sum(row["known"] in ("sat", "unsat") for row in rows)
        total = sum(float(row["time_s"]) for row in rows)
        name = path.stem
        print(f"| {name} | {len(rows)} | {args.cap or 'csv'} | {unsat + sat} | {unsat} | {sat} | "
              f"{count('timeout')} / {count('unknown') + count('error')} | {wrong} | {agree} of {known} | "
              f"{total:.0f} s | {ABCROWN_2021.get(name, '-')} |")


if __name__ == "__main__":
    main()
