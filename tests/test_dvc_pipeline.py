"""DVC pipeline mode: `dvc repro` reruns only changed stages; `dvc metrics diff` in the report."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project, run_mlci

pytestmark = pytest.mark.e2e  # dvc repro runs each stage as its own mlci process

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
DVC = str(Path(sys.executable).with_name("dvc"))


def repro(root: Path) -> tuple[str, float]:
    env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    t = time.perf_counter()
    p = subprocess.run([DVC, "repro"], cwd=root, capture_output=True, text=True,
                       env={"PATH": env_path, "HOME": str(root)})
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout, time.perf_counter() - t


def test_repro_skips_unchanged_stages_and_report_shows_metrics_diff(tmp_path: Path) -> None:
    root = make_project(tmp_path / "iris")
    (root / ".gitignore").write_text(".mlci/*\n!.mlci/metrics.json\n")
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True)
    r = run_mlci("init", "--dvc-pipeline", cwd=root)
    assert r.code == 0, r.err
    first, _ = repro(root)
    assert "Running stage 'validate'" in first and "Running stage 'evaluate'" in first
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "pipeline"], cwd=root, check=True)

    second, seconds = repro(root)
    assert second.count("didn't change, skipping") == 3, second
    assert seconds < 15

    cfg = root / "mlci.yaml"
    cfg.write_text(cfg.read_text().replace("n_estimators: 200", "n_estimators: 2"))
    third, _ = repro(root)
    assert "Stage 'validate' didn't change, skipping" in third
    assert "Running stage 'train'" in third and "Running stage 'evaluate'" in third

    r = run_mlci("report", "--metrics-diff", "HEAD", cwd=root,
                 env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert r.code == 0, r.err
    report = (root / ".mlci/report.md").read_text()
    assert "### Metrics against `HEAD` (dvc metrics diff)" in report
    assert "| Path" in report and "accuracy" in report
