"""`mlci store push|pull`: the embedded registry carried between two "runners"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import make_project, run_mlci


def test_store_round_trip_between_two_checkouts(tmp_path: Path) -> None:
    url = tmp_path / "remote" / "iris-store.tar.gz"
    first = make_project(tmp_path / "runner1" / "iris")
    r = run_mlci("store", "pull", "--url", str(url), "--missing-ok", cwd=first)
    assert r.code == 0 and "starting empty" in r.out
    assert run_mlci("run", cwd=first).code == 0
    assert run_mlci("promote", "--to", "champion", "--version", "1", cwd=first).code == 0
    r = run_mlci("store", "push", "--url", str(url), cwd=first)
    assert r.code == 0, r.err
    shutil.rmtree(first)  # the runner is gone

    second = make_project(tmp_path / "runner2" / "elsewhere" / "iris")
    r = run_mlci("store", "pull", "--url", str(url), cwd=second)
    assert r.code == 0, r.err
    r = run_mlci("run", "--json", cwd=second)
    out = json.loads(r.out.strip().splitlines()[-1])
    e = json.loads((second / ".mlci/evaluation.json").read_text())
    assert e["model"]["version"] == "2"
    assert e["baseline"]["kind"] == "registry" and e["baseline"]["version"] == "1"
    assert out["verdict"] in ("pass", "fail")
    hist = json.loads(run_mlci("history", "iris", "--json", cwd=second).out)
    events = hist["events"] if isinstance(hist, dict) else hist
    assert [ev["action"] for ev in events] == ["promote"]


def test_store_pull_errors_are_one_line(tmp_path: Path) -> None:
    r = run_mlci("store", "pull", "--url", str(tmp_path / "nothing.tar.gz"), cwd=tmp_path)
    assert r.code == 2
    assert r.err.strip().endswith("no packed store there")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    r = run_mlci("store", "pull", "--url", str(bad), cwd=tmp_path)
    assert r.code == 2 and "not a packed mlci store" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = run_mlci("store", "push", "--url", str(tmp_path / "x.tar.gz"), cwd=tmp_path)
    assert r.code == 2 and "no embedded store to pack" in r.err


def test_a_stale_store_is_never_pushed_over_a_newer_one(tmp_path: Path, trained_iris: Path
                                                        ) -> None:
    """Two jobs pull the same store; the first pushes; the second, whose store no longer
    is the one at the URL, is refused and the first one's push stays (compare-and-set)."""
    import hashlib

    from test_registry import mlci

    from mlci.registry import store

    url = tmp_path / "remote" / "iris-store.tar.gz"
    url.parent.mkdir()
    store.pack_store(trained_iris / ".mlci", url)
    jobs = [make_project(tmp_path / f"job{i}" / "iris") for i in (1, 2)]
    for job in jobs:
        assert mlci("store", "pull", "--url", str(url), cwd=job).code == 0
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=jobs[0]).code == 0
    assert mlci("store", "push", "--url", str(url), cwd=jobs[0]).code == 0
    first = hashlib.sha256(url.read_bytes()).hexdigest()
    r = mlci("store", "push", "--url", str(url), cwd=jobs[1])
    assert r.code == 2 and "changed since this job pulled it" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    assert hashlib.sha256(url.read_bytes()).hexdigest() == first  # nothing lost
    # pull again (the first job's promotion comes along), then the push goes through
    assert mlci("store", "pull", "--url", str(url), cwd=jobs[1]).code == 0
    assert mlci("store", "push", "--url", str(url), cwd=jobs[1]).code == 0
    # a job that never pulled does not replace an existing store either
    fresh = make_project(tmp_path / "job3" / "iris")
    shutil.copytree(jobs[0] / ".mlci", fresh / ".mlci", dirs_exist_ok=True)
    (fresh / ".mlci" / "store.pulled.json").unlink()
    r = mlci("store", "push", "--url", str(url), cwd=fresh)
    assert r.code == 2 and "never pulled" in r.err, r.err
