import os
import signal
import threading
import time
from pathlib import Path

import pytest

import numpy as np

import lipcert
from conftest import DEMO
from lipcert import certify_shards, run_category


@pytest.fixture(scope="module")
def ray():
    """A local Ray cluster on this machine's 2 cores, shared by the tests of this file."""
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_shards_give_the_report_of_one_local_run(ray):
    x = np.random.default_rng(4).random((9, 1, 1, 12, 12))
    m = lipcert.load(DEMO)
    labels = np.argmax(m.forward(x), axis=1)
    kwargs = dict(sigma=0.25, n=3000, n0=50, seed=7)
    whole = lipcert.smooth_certify(m, x, labels, **kwargs)
    sharded = certify_shards.run(DEMO, x, labels, shards=4, use_ray=True, **kwargs)
    assert sharded.shards == 4
    for key in ["samples", "abstained", "correct", "clean_accuracy", "average_certified_radius", "curve"]:
        assert sharded[key] == whole[key], key
    strip = lambda rows: [{k: v for k, v in s.items() if k != "time_s"} for s in rows]
    assert strip(sharded.per_sample) == strip(whole.per_sample)


def test_ray_run_checks_answers_and_survives_a_killed_worker(tmp_path, bench, ray):
    known = run_category.known_answers(bench.parent / "known_answers.csv", "test")
    jobs = run_category.instances(bench / "test")
    results = run_category.run_ray(bench / "test", jobs)
    rows, counts, wrong = run_category.check("test", jobs, results, known)
    assert wrong == 0 and len(rows) == len(jobs) == 5
    assert counts.get("sat") == 1 and counts.get("unsat", 0) >= 2

    # Instance 0 (4_2 prop 2) takes seconds, so its worker is killed mid-task.
    acas = bench / "acasxu"
    all_jobs = run_category.instances(acas)
    slow = [j for j in all_jobs if j[0] == "ACASXU_run2a_4_2_batch_2000.onnx" and j[1] == "prop_2.vnnlib"]
    jobs = [(o, p, min(t, 30.0)) for o, p, t in slow + all_jobs[:3]]
    pids = tmp_path / "pids"
    pids.mkdir()
    out = {}
    runner = threading.Thread(target=lambda: out.update(r=run_category.run_ray(acas, jobs, pid_dir=str(pids))))
    runner.start()
    victim = pids / "0.pid"
    deadline = time.time() + 60
    while not victim.exists() and time.time() < deadline:
        time.sleep(0.02)
    first_pid = int(victim.read_text().split()[0])
    os.kill(first_pid, signal.SIGKILL)
    runner.join(timeout=150)
    assert "r" in out, "the Ray run did not finish"
    # The task ran again, in another worker.
    attempts = [int(p) for p in victim.read_text().split()]
    assert len(attempts) == 2 and attempts[1] != first_pid, attempts
    rows, counts, wrong = run_category.check("acasxu", jobs, out["r"],
                                             run_category.known_answers(bench.parent / "known_answers.csv", "acasxu"))
    assert wrong == 0 and len(rows) == 4
    assert [r[2] for r in rows] == [r[2] for r in rows if r[2] in ("sat", "unsat")], rows
