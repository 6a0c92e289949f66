import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def benchmarks():
    """The VNN-COMP 2021 benchmarks; missing ones skip the test, or fail it under CI."""
    base = Path(os.environ.get("LIPCERT_SHARED", ROOT.parent / "shared")) / "benchmarks" / "vnncomp2021"
    if not base.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI: the benchmarks are missing ({base})")
        pytest.skip(f"benchmarks missing: {base}")
    return base


@pytest.fixture
def bench():
    return benchmarks()


@pytest.fixture
def cli():
    """The lipcert binary (built by cargo build --release)."""
    exe = ROOT / "target" / "release" / "lipcert"
    if not exe.exists():
        exe = shutil.which("lipcert")
        if exe is None:
            if os.environ.get("CI"):
                pytest.fail("CI: target/release/lipcert is missing")
            pytest.skip("no lipcert binary (cargo build --release)")
    return lambda *args: subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)


DEMO = ROOT / "models" / "demo.onnx"
