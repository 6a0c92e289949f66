#!/usr/bin/env python3
"""Runs every example of README.md as written, in order, the way a new user would.

Every line in a fenced code block that starts with "$ " is a command; the lines after it, up to
the next command, are its printed output. The commands run in one bash session (so variables
such as B=... carry over), in a fresh clone of the repository placed beside a link to the shared
benchmarks, so that every file an example needs must be created by an earlier example.
`lipcert` is the release binary, and `cargo run --release --` is replaced by it (the binary is
already built). A command whose shown output starts with "error:" must fail; every other one
must succeed.

    python3 scripts/readme_examples.py [--lipcert target/release/lipcert] [--shared ../shared]

Exit status 0 when every example behaved as the README shows.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def examples(readme):
    """(command, expected_failure, line number) for every "$ " line of a fenced block."""
    out, fence, current = [], False, None
    for n, line in enumerate(open(readme, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
            current = None
            continue
        if not fence:
            continue
        if line.startswith("$ "):
            cmd = line[2:].rstrip("\n")
            # A trailing comment explains the example; it is not part of the command.
            if "    #" in cmd:
                cmd = cmd.split("    #")[0].rstrip()
            current = [cmd, False, n]
            out.append(current)
        elif current is not None and line.startswith("error:"):
            current[1] = True
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lipcert", default=os.path.join(ROOT, "target/release/lipcert"))
    ap.add_argument("--shared", default=os.environ.get("LIPCERT_SHARED", os.path.join(ROOT, "../shared")))
    ap.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = ap.parse_args()
    binary = os.path.abspath(args.lipcert)
    if not os.access(binary, os.X_OK):
        sys.exit(f"error: {binary}: not built (cargo build --release)")
    scratch = tempfile.mkdtemp(prefix="lipcert-readme-")
    clone = os.path.join(scratch, "lipcert")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    os.symlink(os.path.abspath(args.shared), os.path.join(scratch, "shared"))
    bindir = os.path.join(scratch, "bin")
    os.mkdir(bindir)
    os.symlink(binary, os.path.join(bindir, "lipcert"))
    cmds = examples(os.path.join(clone, "README.md"))
    script = ["cd " + shlex.quote(clone), f"export PATH={shlex.quote(bindir)}:$PATH"]
    for cmd, must_fail, n in cmds:
        cmd = cmd.replace("cargo run --release --", "lipcert")
        q = shlex.quote(cmd)
        check = "[ $rc -ne 0 ]" if must_fail else "[ $rc -eq 0 ]"
        want = "fail" if must_fail else "succeed"
        script.append(
            f'echo "README:{n}: $ "{q} >&2; eval {q} >/tmp/readme_out.$$ 2>&1; rc=$?; '
            f'if ! {check}; then cat /tmp/readme_out.$$ >&2; '
            f'echo "README:{n}: exit status $rc, the README shows it should {want}" >&2; exit 1; fi'
        )
    script.append("rm -f /tmp/readme_out.$$")
    r = subprocess.run(["bash", "-c", "\n".join(script)])
    if not args.keep:
        subprocess.run(["rm", "-rf", scratch])
    if r.returncode == 0:
        print(f"all {len(cmds)} README examples ran as shown")
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
