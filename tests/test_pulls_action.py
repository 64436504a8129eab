"""The data-update action's glue (python -m mlci.gha data-update) without act: the step
outputs it writes, the DVC pull a fresh checkout needs, and its bad-input lines. act runs the
whole action in tests/e2e/test_act_data.py; these are the quick cases around it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Result, make_project, run_glue, run_mlci

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "examples" / "iris"

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]


def outputs(path: Path) -> dict[str, str]:
    """Parse the `name<<DELIM ... DELIM` blocks of a $GITHUB_OUTPUT file."""
    out, lines = {}, path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    i = 0
    while i < len(lines):
        name, delim = lines[i].split("<<", 1)
        j = lines.index(delim, i + 1)
        out[name] = "\n".join(lines[i + 1:j])
        i = j + 1
    return out


def action(cwd: Path, tmp: Path, process: bool = False, **env: str) -> tuple[Result, dict]:
    gh_out = tmp / "github_output"
    gh_out.unlink(missing_ok=True)
    full = {"GITHUB_OUTPUT": str(gh_out), "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
            "MLCI_CONFIG": "mlci.yaml", "MLCI_PUSH": "true", **env}
    return run_glue("data-update", cwd=cwd, env=full, process=process), outputs(gh_out)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo after `mlci data init`, committed, then the data removed as a checkout has it."""
    base = tmp_path_factory.mktemp("checkout")
    root = make_project(base / "repo")
    assert run_mlci("data", "init", "--remote", str(base / "remote"), cwd=root).code == 0
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "track data"], cwd=root, check=True)
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
    for name in ("train.csv", "golden.csv"):
        (root / "data" / name).unlink()
    return base


@pytest.fixture
def repo(checkout: Path, tmp_path: Path) -> Path:
    shutil.copytree(checkout, tmp_path / "w", symlinks=True)
    root = tmp_path / "w" / "repo"
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "remote", "modify", "storage",
                    "url", str(tmp_path / "w" / "remote")], cwd=root, check=True)
    allow_tmp_sources(root, tmp_path)
    return root


def allow_tmp_sources(root: Path, tmp_path: Path, extra: str = "") -> None:
    """The batches lie in tmp_path, outside the project: allow that folder as a source."""
    cfg = root / "mlci.yaml"
    cfg.write_text(cfg.read_text().split("data_update:")[0] + "data_update:\n"
                   f"  fetch: {{local_roots: ['.', '{tmp_path}']}}\n" + extra)


def test_pulls_the_data_then_updates(repo: Path, tmp_path: Path) -> None:
    assert not (repo / "data" / "train.csv").exists()  # only in the DVC remote
    df = pd.read_csv(IRIS / "data" / "train.csv")
    b = df.sample(40, random_state=1).copy()
    b["sepal_length"] = (b["sepal_length"] + 0.01).round(2)
    src = tmp_path / "new.csv"
    b.to_csv(src, index=False)
    p, out = action(repo, tmp_path, MLCI_SOURCE=str(src))
    assert p.code == 0, p.err
    assert "dvc pull" in p.err
    assert out["status"] == "updated" and out["model-version"] == "1"
    assert out["drifted-columns"] == "[]"
    assert out["report-path"] == str(repo / ".mlci" / "report.md")
    assert len(pd.read_csv(repo / "data" / "train.csv")) == len(df) + 40
    assert "### Data update" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_a_refusal_still_names_the_drifted_columns(repo: Path, tmp_path: Path) -> None:
    allow_tmp_sources(repo, tmp_path, "  on_drift: block\n")
    df = pd.read_csv(IRIS / "data" / "train.csv")
    b = df[df.species == "virginica"].sample(60, replace=True, random_state=2)
    rng = np.random.default_rng(5)
    for c in ("petal_length", "sepal_length"):  # jitter: no duplicated rows
        b[c] = (b[c] + rng.normal(0, 0.05, len(b))).round(2)
    src = tmp_path / "drift.csv"
    b.to_csv(src, index=False)
    p, out = action(repo, tmp_path, MLCI_SOURCE=str(src))
    assert p.code == 1, p.err
    assert out["status"] == "refused" and out["model-version"] == ""
    assert "species" in out["drifted-columns"]


@pytest.mark.parametrize(("env", "message"), [
    ({"MLCI_SOURCE": "x.csv", "MLCI_CONFIG": "nope.yaml"}, "config not found: nope.yaml"),
    ({"MLCI_SOURCE": "  "}, "no source: set the `source` input"),
])
def test_bad_input_is_one_line_exit_2(repo: Path, tmp_path: Path, env: dict, message: str) -> None:
    p, out = action(repo, tmp_path, **env)
    assert p.code == 2 and message in p.err
    assert len(p.err.strip().splitlines()) == 1 and "Traceback" not in p.err
    assert out["status"] == "error"


def test_a_source_that_does_not_exist_is_an_input_error(repo: Path, tmp_path: Path) -> None:
    # a real interpreter and child, as the step runs them
    p, out = action(repo, tmp_path, process=True, MLCI_SOURCE=str(tmp_path / "missing.csv"))
    assert p.code == 2, p.err
    assert out["status"] == "error" and "Traceback" not in p.err
