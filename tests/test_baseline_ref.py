"""`--baseline git:<ref>` takes a ref, never a git option (`git:--output=…` wrote a file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_project

from mlci.config import load_config
from mlci.errors import MlciError
from mlci.evaluate import resolve_baseline


@pytest.mark.parametrize("ref", ["--output=PWNED", "-p", "main --output=x", "a..b", "main\n",
                                 "@{-1}", "ref:with:colons", "x" * 300])
def test_option_like_or_malformed_refs_are_refused(tmp_path: Path, ref: str) -> None:
    root = make_project(tmp_path / "p")
    cfg = load_config(root / "mlci.yaml")
    spec = "git:" + ref.replace("PWNED", str(tmp_path / "pwned"))
    with pytest.raises(MlciError, match="not a git ref"):
        resolve_baseline(cfg, root / ".mlci", spec, None, "1", "sha256:x")
    assert not any(p.name.startswith("pwned") for p in tmp_path.rglob("*"))


def test_a_plain_ref_still_reads_the_committed_record(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    cfg = load_config(root / "mlci.yaml")
    for ref in ("main", "origin/main", "HEAD~0", "v1.2.3", "a" * 40):
        base = resolve_baseline(cfg, root / ".mlci", "git:" + ref, None, "1", "sha256:x")
        assert base["kind"] == "none" and "not found" in base["label"]  # no record committed
