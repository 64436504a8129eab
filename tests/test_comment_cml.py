"""`mlci comment --poster cml`: the exact `cml` command line, with a recording `cml` on PATH."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_mlci

from mlci.gha import cml

RECORDER = Path(__file__).parent / "e2e" / "doubles" / "setup-cml" / "bin" / "cml"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text("## ✅ report\n", encoding="utf-8")
    (tmp_path / "event.json").write_text(json.dumps({"pull_request": {"number": 12}}))
    return tmp_path


def cml_env(work: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{RECORDER.parent}{os.pathsep}{os.environ['PATH']}",
            "MLCI_E2E_CML_LOG": str(work / "cml.jsonl"), "GITHUB_TOKEN": "ghs_secret",
            "GITHUB_EVENT_PATH": str(work / "event.json"), "GITHUB_WORKFLOW": "ml", **extra}


def test_argv_for_a_pull_request_and_a_commit() -> None:
    assert cml.argv(Path("r.md"), pr=3, sha=None, title="t", publish=False) == [
        "cml", "comment", "update", "--target=pr/3", "--watermark-title=t", "--no-publish",
        "r.md"]
    assert cml.argv(Path("r.md"), pr=None, sha="abc", title="t", publish=True)[3:6] == [
        "--target=commit/abc", "--watermark-title=t", "--publish"]


def test_cml_poster_runs_cml_comment_update(work: Path) -> None:
    r = run_mlci("comment", "--poster", "cml", "--json", cwd=work, env=cml_env(work))
    assert r.code == 0, r.err
    assert json.loads(r.out)["url"].startswith("https://github.com/")
    rec = json.loads((work / "cml.jsonl").read_text().splitlines()[0])
    assert rec["argv"] == ["cml", "comment", "update", "--target=pr/12",
                           "--watermark-title=mlci report · ml", "--no-publish",
                           ".mlci/report.md"]
    assert rec["body"] == "## ✅ report\n" and rec["token_set"]
    assert "ghs_secret" not in r.out + r.err


def test_publish_images_is_opt_in(work: Path) -> None:
    r = run_mlci("comment", "--poster", "cml", cwd=work,
                 env=cml_env(work, MLCI_PUBLISH_IMAGES="true"))
    assert r.code == 0, r.err
    assert "--publish" in json.loads((work / "cml.jsonl").read_text())["argv"]


def test_missing_cml_is_one_line(work: Path, tmp_path: Path) -> None:
    python_dir = Path(shutil.which("git") or "/usr/bin/git").parent
    r = run_mlci("comment", "--poster", "cml", cwd=work,
                 env=cml_env(work, PATH=str(python_dir)))
    assert r.code == 3
    assert r.err.strip() == ("mlci: error: cml is not on PATH (add iterative/setup-cml, "
                             "or use poster: github)")
