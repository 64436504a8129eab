"""The `setup` action puts `mlci` on PATH through GITHUB_PATH, like setup-python and setup-cml
expose their tools: its own step script runs here with bash against the test venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _step() -> dict:
    steps = yaml.safe_load((ROOT / "setup" / "action.yml").read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "Put mlci on PATH"]
    return step


def _run(tmp_path: Path, python: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    gh_path = tmp_path / "github_path"
    gh_path.write_text("")
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "GITHUB_PATH": str(gh_path),
           "MLCI_PYTHON": python}
    p = subprocess.run(["bash", "-c", _step()["run"]], env=env, capture_output=True, text=True,
                       timeout=60)
    return p, gh_path


def test_the_step_reads_the_interpreter_only_through_env() -> None:
    step = _step()
    assert step["env"] == {"MLCI_PYTHON": "${{ steps.install.outputs.python }}"}
    assert "${{" not in step["run"]
    (write,) = [line for line in step["run"].splitlines() if "GITHUB_PATH" in line]
    assert write.strip() == 'echo "$RUNNER_TEMP/mlci-bin" >> "$GITHUB_PATH"'


def test_that_write_is_the_only_zizmor_exception() -> None:
    """zizmor flags any computed line written to GITHUB_PATH in an action; this one is the
    runner's temp folder plus a constant, so it is allowed inline, once, and nowhere else."""
    files = [ROOT / "action.yml", *ROOT.glob("*/action.yml"),
             *(ROOT / ".github" / "workflows").glob("*.yml"),
             *(ROOT / "examples" / "workflows").glob("*.yml")]
    hits = [(p.relative_to(ROOT), line.strip()) for p in files
            for line in p.read_text(encoding="utf-8").splitlines() if "zizmor: ignore" in line]
    assert hits == [(Path("setup/action.yml"),
                     'run: | # zizmor: ignore[github-env] -- writes "$RUNNER_TEMP/mlci-bin" only')]


def test_mlci_runs_by_name_in_a_later_step(tmp_path: Path) -> None:
    p, gh_path = _run(tmp_path, sys.executable)  # the test venv has the `mlci` script beside it
    assert p.returncode == 0, p.stderr
    (entry,) = gh_path.read_text().splitlines()
    # the runner prepends each GITHUB_PATH line to PATH for the steps after this one
    later = subprocess.run(["mlci", "--version"], env={"PATH": f"{entry}:/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert later.returncode == 0 and later.stdout.startswith("mlci, version"), later.stderr
    # only mlci is exposed: the venv's python and pip do not shadow the job's own
    assert sorted(os.listdir(entry)) == ["mlci"]


def test_a_line_break_in_the_path_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    p, gh_path = _run(tmp_path, f"{sys.executable}\n/tmp/evil")
    assert p.returncode == 1 and "line break" in p.stderr
    assert gh_path.read_text() == ""


def test_mlci_runs_from_a_venv_restored_at_another_path(tmp_path: Path) -> None:
    """A cached venv restored elsewhere keeps its console scripts' old shebang (a link to
    `bin/mlci` failed with "required file not found"); the launcher runs its python."""
    import shlex

    fake_venv = tmp_path / "restored" / "bin"
    fake_venv.mkdir(parents=True)
    (fake_venv / "mlci").write_text("#!/nonexistent/old/venv/bin/python\n")
    (fake_venv / "mlci").chmod(0o755)
    (fake_venv / "python").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (fake_venv / "python").chmod(0o755)  # the restored venv's interpreter, at its new path
    p, gh_path = _run(tmp_path, str(fake_venv / "python"))
    assert p.returncode == 0, p.stderr
    (entry,) = gh_path.read_text().splitlines()
    later = subprocess.run(["mlci", "--version"], env={"PATH": f"{entry}:/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert later.returncode == 0 and later.stdout.startswith("mlci, version"), later.stderr
