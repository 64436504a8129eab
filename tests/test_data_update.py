"""The data trigger: `mlci data update` on a DVC-tracked repo with a local remote.

Each refusal must leave the tracked data, the DVC cache, the remote and the registry exactly
as they were.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_project, run_mlci
from e2e.loopback import serving

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
DVC = str(Path(sys.executable).with_name("dvc"))


@pytest.fixture(scope="module")
def dvc_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC-tracked Iris repo with a local remote, one model trained: copied per test."""
    base = tmp_path_factory.mktemp("dvcbase")
    root = make_project(base / "repo")
    r = run_mlci("data", "init", "--remote", str(base / "remote"), cwd=root)
    assert r.code == 0, r.err
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "track data with dvc"], cwd=root, check=True)
    assert run_mlci("run", cwd=root).code == 0
    return base


@pytest.fixture
def repo(dvc_base: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(dvc_base, tmp_path / "w", symlinks=True)
    root = tmp_path / "w" / "repo"
    # the remote path is absolute in .dvc/config: point it at this copy
    subprocess.run([DVC, "remote", "modify", "storage", "url", str(tmp_path / "w" / "remote")],
                   cwd=root, check=True, capture_output=True)
    set_data_update(root, tmp_path)
    return root


def set_data_update(root: Path, tmp_path: Path, extra: str = "") -> None:
    """The test's sources live in tmp_path and on 127.0.0.1: allow exactly those."""
    cfg = root / "mlci.yaml"
    text = cfg.read_text().split("data_update:")[0]
    cfg.write_text(text + "data_update:\n"
                   f"  fetch: {{schemes: [file, http], hosts: [127.0.0.1], "
                   f"private_addresses: [127.0.0.1], local_roots: ['.', '{tmp_path}']}}\n"
                   + "".join(f"  {line}\n" for line in extra.splitlines()))


def state(root: Path) -> dict[str, object]:
    """Everything an update may touch."""
    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-"

    remote = root.parent / "remote"
    with sqlite3.connect(root / ".mlci/mlflow.db") as con:
        # MLflow soft-deletes versions (the number is never reused); the API no longer shows them
        versions = con.execute("select version from model_versions where current_stage != "
                               "'Deleted_Internal' order by version").fetchall()
        aliases = con.execute("select alias, version from registered_model_aliases").fetchall()
    return {
        "train": digest(root / "data/train.csv"),
        "train.dvc": digest(root / "data/train.csv.dvc"),
        "cache": sorted(str(p.relative_to(root)) for p in (root / ".dvc/cache").rglob("*")
                        if p.is_file()),
        "remote": sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()),
        "versions": versions,
        "aliases": sorted(aliases),
    }


def _train(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data/train.csv")


def write_batch(root: Path, kind: str, path: Path) -> Path:
    df = _train(root)
    rng = np.random.default_rng(5)
    if kind == "good":
        b = df.sample(40, random_state=1).copy()
        for c in df.columns[:4]:
            b[c] = (b[c] + rng.normal(0, 0.05, len(b))).round(2)
    elif kind == "drifted":  # valid values, but only one species and its petal sizes
        b = df[df.species == "virginica"].sample(60, replace=True, random_state=2).copy()
        b["petal_length"] = (b["petal_length"] + rng.normal(0, 0.05, len(b))).round(2)
        b["sepal_length"] = (b["sepal_length"] + rng.normal(0, 0.05, len(b))).round(2)
    elif kind == "schema":
        b = df.drop(columns=["sepal_width"]).head(30)
    elif kind == "invalid":  # right schema, impossible values
        b = df.head(30).copy()
        b["petal_width"] = -5.0
    elif kind == "duplicates":
        b = pd.concat([df.head(5)] * 8)
    else:
        raise ValueError(kind)
    b.to_csv(path, index=False)
    return path


def test_good_data_is_validated_tracked_pushed_and_registered(repo: Path, tmp_path: Path) -> None:
    before = state(repo)
    src = write_batch(repo, "good", tmp_path / "new.csv")
    r = run_mlci("data", "update", "--source", str(src), "--json", cwd=repo)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["status"] == "updated" and out["model_version"] == "2"
    after = state(repo)
    assert after["train"] != before["train"] and after["train.dvc"] != before["train.dvc"]
    assert len(after["remote"]) == len(before["remote"]) + 1
    assert after["versions"] == [(1,), (2,)]
    assert ("candidate", 2) in after["aliases"]
    assert len(_train(repo)) == 160
    md5 = hashlib.md5((repo / "data/train.csv").read_bytes()).hexdigest()
    assert f"md5: {md5}" in (repo / "data/train.csv.dvc").read_text()
    run = json.loads((repo / ".mlci/run.json").read_text())
    assert run["tags"]["mlci.data.train.hash"] == f"dvc-md5:{md5}"
    assert run["tags"]["mlci.trigger"] == "local"
    report = (repo / ".mlci/report.md").read_text()
    assert report.startswith("## ✅ mlci: iris v2: gate passed")
    assert "### Data update" in report and "Rows: 120 → 160 (+40 / −0)." in report


def test_replace_mode_counts_rows_removed(repo: Path, tmp_path: Path) -> None:
    src = write_batch(repo, "good", tmp_path / "new.csv")
    r = run_mlci("data", "update", "--source", str(src), "--mode", "replace", "--no-push",
                 "--json", cwd=repo)
    assert r.code == 0, r.err
    upd = json.loads((repo / ".mlci/data_update.json").read_text())
    assert upd["data_diff"]["rows_after"] == 40
    assert upd["data_diff"]["rows_removed"] == 120
    assert "pushed" not in upd


@pytest.mark.parametrize(
    ("kind", "config_edit", "code", "message"),
    [
        ("schema", None, 1, "new data has a different schema: missing column(s) 'sepal_width'"),
        ("invalid", None, 1, "new data failed validation"),
        ("duplicates", None, 1, "duplicated rows (limit 5.0%)"),
        ("drifted", "block", 1, "new data drifted in"),
        ("good", "gate", 1, "gate failed on the new data: accuracy >= 1.01"),
        ("good", "push", 2, "dvc push"),
    ],
    ids=["schema", "invalid", "duplicates", "drift-blocked", "gate", "push-fails"],
)
def test_refusals_change_nothing(repo: Path, tmp_path: Path, kind: str, config_edit: str | None,
                                 code: int, message: str) -> None:
    cfg = repo / "mlci.yaml"
    if config_edit == "block":
        set_data_update(repo, tmp_path, "on_drift: block")
    elif config_edit == "gate":
        cfg.write_text(cfg.read_text().replace("{accuracy: 0.90}", "{accuracy: 1.01}"))
    elif config_edit == "push":
        bad = tmp_path / "not-a-dir"
        bad.write_text("a file where the remote folder should be")
        subprocess.run([DVC, "remote", "modify", "storage", "url", str(bad)], cwd=repo,
                       check=True, capture_output=True)
    before = state(repo)
    src = write_batch(repo, kind, tmp_path / "new.csv")
    r = run_mlci("data", "update", "--source", str(src), cwd=repo)
    assert r.code == code, (r.out, r.err)
    assert "Traceback" not in r.err
    assert message in r.err.strip().splitlines()[-1]
    assert state(repo) == before
    if code == 1:  # a refusal explains itself in the report
        report = (repo / ".mlci/report.md").read_text()
        assert report.startswith("## ❌")
        assert "### Data update" in report


def test_drifted_but_valid_data_is_flagged_when_warning(repo: Path, tmp_path: Path) -> None:
    src = write_batch(repo, "drifted", tmp_path / "new.csv")
    r = run_mlci("data", "update", "--source", str(src), "--no-push", "--json", cwd=repo)
    assert r.code == 0, r.err
    drifted = json.loads(r.out)["drifted_columns"]
    assert "species" in drifted and "petal_length" in drifted
    report = (repo / ".mlci/report.md").read_text()
    assert "| species | ⚠️ drifted | chi2 |" in report


class _Handler(http.server.BaseHTTPRequestHandler):
    """A loopback file server; /slow sleeps past the client's timeout."""

    body = b""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/slow"):
            time.sleep(3)
        self.send_response(200 if self.path.endswith(".csv") else 404)
        self.end_headers()
        if self.path.endswith(".csv"):
            self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_source(repo: Path, tmp_path: Path):
    _Handler.body = write_batch(repo, "good", tmp_path / "b.csv").read_bytes()
    with serving(_Handler) as url:
        yield url


def test_http_source(repo: Path, http_source: str) -> None:
    r = run_mlci("data", "update", "--source", f"{http_source}/new.csv", "--no-push", cwd=repo)
    assert r.code == 0, r.err
    assert len(_train(repo)) == 160


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/nope.csv", "file not found"),
        ("{http}/slow/new.csv", "timed out after 1s (total deadline)"),
        ("{http}/missing.txt", "HTTP 404"),
        ("{tmp}/data.json", "unsupported format '.json'"),
        ("{tmp}/empty.csv", "file is empty"),
        ("{tmp}/header.csv", "header only, no rows"),
    ],
    ids=["missing", "timeout", "http-404", "not-csv", "empty", "header-only"],
)
def test_bad_sources(repo: Path, tmp_path: Path, http_source: str, source: str,
                     message: str) -> None:
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width,species\n")
    set_data_update(repo, tmp_path, "timeout: 1")
    before = state(repo)
    report = (repo / ".mlci/report.md").read_bytes()
    r = run_mlci("data", "update", "--source", source.format(tmp=tmp_path, http=http_source),
                 cwd=repo)
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.err
    assert state(repo) == before
    assert (repo / ".mlci/report.md").read_bytes() == report


def test_a_secrets_file_is_neither_read_nor_quoted(repo: Path, tmp_path: Path) -> None:
    """Outside local_roots: refused unread. Inside but not data: its first line (the
    column names) never reaches the report or stderr."""
    outside = tmp_path.parent / f"{tmp_path.name}-home" / "credentials.csv"
    outside.parent.mkdir()
    outside.write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\nx\n")
    inside = tmp_path / "creds.csv"
    inside.write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\nx\n")
    before = state(repo)
    for src, code in ((outside, 2), (inside, 1)):
        r = run_mlci("data", "update", "--source", str(src), cwd=repo)
        assert r.code == code, r.err
        assert "wJalrXUtnFEMI" not in r.err + r.out
        report = repo / ".mlci/report.md"
        assert not report.exists() or "wJalrXUtnFEMI" not in report.read_text()
        upd = repo / ".mlci/data_update.json"
        assert not upd.exists() or "wJalrXUtnFEMI" not in upd.read_text()
    assert state(repo) == before


def test_kill_9_mid_update_is_rolled_back_and_a_resent_batch_is_refused(
        repo: Path, tmp_path: Path) -> None:
    """A real SIGKILL once the training file has changed (the forced point: between the write
    and the end); the next run rolls back, then applies the batch once; a resend is refused."""
    import os
    import signal

    src = write_batch(repo, "good", tmp_path / "new.csv")
    train = repo / "data/train.csv"
    original = train.read_bytes()
    exe = Path(sys.executable).with_name("mlci")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLCI_"))}
    p = subprocess.Popen([str(exe), "data", "update", "--source", str(src), "--no-push"],
                         cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while train.read_bytes() == original:
        assert p.poll() is None and time.monotonic() < deadline, "never wrote the data"
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert train.read_bytes() != original  # the kill left the file changed
    assert (repo / ".mlci/data_update.journal/journal.json").is_file()

    r = run_mlci("data", "update", "--source", str(src), "--no-push", "--json", cwd=repo)
    assert r.code == 0, r.err
    assert len(_train(repo)) == 160  # rolled back, then appended once (not 200)
    assert not (repo / ".mlci/data_update.journal").exists()

    before = state(repo)
    r = run_mlci("data", "update", "--source", str(src), "--no-push", cwd=repo)
    assert r.code == 1, r.err
    assert "refused as a duplicate" in r.err
    assert state(repo) == before and len(_train(repo)) == 160


def test_no_remote_is_said_out_loud(repo: Path, tmp_path: Path) -> None:
    """Without a DVC remote the update succeeds, but the new data lives only in this checkout's
    cache: a warning on stderr, in --json, in the record and in the report."""
    subprocess.run([DVC, "remote", "remove", "storage"], cwd=repo, check=True,
                   capture_output=True)
    src = write_batch(repo, "good", tmp_path / "new.csv")
    r = run_mlci("data", "update", "--source", str(src), "--json", cwd=repo)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["status"] == "updated" and len(out["warnings"]) == 1
    assert out["warnings"][0].startswith("no DVC remote: the new data was not pushed")
    assert "mlci: warning: no DVC remote" in r.err
    upd = json.loads((repo / ".mlci" / "data_update.json").read_text())
    assert upd["pushed"] is False
    assert "⚠️ no DVC remote" in (repo / ".mlci" / "report.md").read_text()


# ------------------------------------------------------------------ the journal, idempotency


def test_rollback_undoes_exactly_the_update_and_keeps_rows_added_since(tmp_path: Path) -> None:
    """The journal of an update killed after appending: a row added to the file afterwards
    (by hand, by a pull) survives the rollback; before, the whole file was put back."""
    from mlci.flows.data_update import JournalConflict, Undo

    f = tmp_path / "train.csv"
    f.write_bytes(b"a,b\n1,2\n")
    undo = Undo(tmp_path / "journal")
    undo.keep(f)
    undo.expect(f, b"a,b\n1,2\n3,4\n", appended=b"3,4\n")
    f.write_bytes(b"a,b\n1,2\n3,4\n")  # the update's write; then it is killed
    with f.open("ab") as fh:
        fh.write(b"5,6\n")              # someone adds a row
    Undo.load(tmp_path / "journal").restore(None, tmp_path)  # type: ignore[arg-type]
    assert f.read_bytes() == b"a,b\n1,2\n5,6\n"
    assert not (tmp_path / "journal").exists()
    # a file rewritten in another way is left alone, and the journal kept for a person
    undo = Undo(tmp_path / "journal")
    undo.keep(f)
    undo.expect(f, b"x\n")
    f.write_bytes(b"y\n")
    with pytest.raises(JournalConflict, match="not rolled back"):
        Undo.load(tmp_path / "journal").restore(None, tmp_path)  # type: ignore[arg-type]
    assert f.read_bytes() == b"y\n" and (tmp_path / "journal" / "journal.json").is_file()


def test_the_same_rows_resent_in_another_form_are_refused(repo: Path, tmp_path: Path) -> None:
    """The applied batch again with CRLF line endings, shuffled, numbers written `5.10`:
    before, only the file's bytes were compared and every row was appended a second time."""
    src = write_batch(repo, "good", tmp_path / "new.csv")
    assert run_mlci("data", "update", "--source", str(src), "--no-push", cwd=repo).code == 0
    rows = len(_train(repo))
    df = pd.read_csv(src).sample(frac=1, random_state=3)
    text = df.to_csv(index=False, float_format="%.2f", lineterminator="\r\n")
    again = tmp_path / "again.csv"
    again.write_bytes(text.encode())
    assert again.read_bytes() != src.read_bytes()
    before = state(repo)
    r = run_mlci("data", "update", "--source", str(again), "--no-push", cwd=repo)
    assert r.code == 1 and "refused as a duplicate" in r.err, r.err
    # a batch of mostly known rows (not the same batch) is refused as well
    df.head(30).to_csv(tmp_path / "part.csv", index=False)
    r = run_mlci("data", "update", "--source", str(tmp_path / "part.csv"), "--no-push",
                 cwd=repo)
    assert r.code == 1 and "already in the training data" in r.err, r.err
    assert state(repo) == before and len(_train(repo)) == rows


def test_a_version_registered_by_a_killed_update_is_removed(repo: Path, tmp_path: Path
                                                             ) -> None:
    """SIGKILL as soon as the update's version appears in the registry (during training):
    the next run removes that version and its run."""
    import os
    import signal

    src = write_batch(repo, "good", tmp_path / "new.csv")
    before = state(repo)
    db = repo / ".mlci/mlflow.db"

    def versions() -> int:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from model_versions").fetchone()[0]

    n0 = versions()
    exe = Path(sys.executable).with_name("mlci")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLCI_"))}
    p = subprocess.Popen([str(exe), "data", "update", "--source", str(src), "--no-push"],
                         cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while versions() == n0:
        assert p.poll() is None and time.monotonic() < deadline, "never registered"
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # the next run: its recovery, then a refusal that changes nothing
    r = run_mlci("data", "update", "--source", str(write_batch(repo, "schema", tmp_path /
                                                               "bad.csv")), cwd=repo)
    assert r.code == 1 and "different schema" in r.err, r.err
    assert state(repo) == before
    assert not (repo / ".mlci/incoming/bad.csv").exists()  # refused content is deleted
