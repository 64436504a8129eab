"""Reading the DVC remote a pull will use, with the real `dvc` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlci.data import dvc
from mlci.errors import MlciError


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.run(["init", "-q"], cwd=root)
    return root


def test_a_long_remote_url_is_read_whole(tmp_path: Path) -> None:
    """`dvc remote list` wraps its table at the terminal width (80 columns without one): a
    long URL came back cut, and the pull said "no DVC remote is configured"."""
    root = _repo(tmp_path)
    url = "s3://a-bucket-with-a-long-name/" + "/".join(["some-team", "some-project"] * 4)
    assert len(url) > 100
    dvc.run(["remote", "add", "-d", "storage", url], cwd=root)
    assert dvc.remote_of(root) == ("storage", url)


def test_no_default_remote_is_none_and_a_broken_config_is_an_error(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    assert dvc.remote_of(root) is None
    dvc.run(["remote", "add", "other", str(tmp_path / "r")], cwd=root)
    assert dvc.remote_of(root) is None  # a remote, but none is the default
    (root / ".dvc" / "config").write_text("[core\nremote = \n", encoding="utf-8")
    with pytest.raises(MlciError, match="dvc remote default failed"):
        dvc.remote_of(root)
