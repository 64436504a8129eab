"""The registry gate, audit trail, rollback and lineage on a real MLflow SQLite store.

One `mlci run` trains Iris once per session (conftest's `trained_iris`); its store is packed
once and unpacked into a fresh project for every test, so each test starts from the same
registry: model `iris`, version 1 with real evidence, no champion.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Result, make_project, run_mlci

from mlci.registry import aliases, gate, lock, store

NAME = "iris"


@pytest.fixture(scope="session")
def packed(trained_iris: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("packed") / "store.tar.gz"
    store.pack_store(trained_iris / ".mlci", archive)
    return archive


@pytest.fixture
def proj(tmp_path: Path, packed: Path) -> Path:
    root = make_project(tmp_path / "iris")
    store.unpack_store(packed, root / ".mlci")
    return root


def client_for(root: Path):
    """A client of the project's store. Also the process-wide URI: registering a version from
    a logged model looks the model up through the global tracking store."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def add_version(root: Path, *, passed: bool = True, validation: str = "true",
                evaluated_against: str | None = None, evidence: bool = True,
                source_version: str = "1", client=None) -> str:
    """Register another version of a trained model, with evidence tags like the pipeline's
    (gate result and baseline chosen by the test)."""
    c = client or client_for(root)
    base = c.get_model_version(NAME, source_version)
    tags = dict(base.tags) if evidence else {}
    if evidence:
        tags["mlci.gate.passed"] = "true" if passed else "false"
        tags["mlci.validation.success"] = validation
        if evaluated_against is not None:
            tags["mlci.evaluation.champion_version"] = evaluated_against
            tags["mlci.evaluation.baseline"] = (f"registry champion {NAME}/{evaluated_against}"
                                                if evaluated_against else "none (no champion)")
    mv = c.create_model_version(NAME, source=base.source, run_id=base.run_id, tags=tags,
                                model_id=base.model_id or _model_id(base.source))
    return str(mv.version)


def _model_id(source: str) -> str | None:
    return source.split("/", 1)[1] if source.startswith("models:/m-") else None


def add_dummy_version(root: Path) -> str:
    """A genuinely worse model (always the majority class) with passing tags recorded
    against no champion: only a re-evaluation can find it out."""
    import mlflow
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    from mlci.config import load_config
    from mlci.data.load import load_xy

    cfg = load_config(root / "mlci.yaml")
    x, y = load_xy(cfg, "train")
    c = client_for(root)
    exp = c.get_experiment_by_name(NAME)
    with mlflow.start_run(experiment_id=exp.experiment_id):
        info = mlflow.sklearn.log_model(DummyClassifier().fit(x, y), name="model",
                                        pip_requirements=["scikit-learn"],
                                        serialization_format="cloudpickle")
    base = c.get_model_version(NAME, "1")
    tags = {**base.tags, "mlci.evaluation.champion_version": ""}
    return str(c.create_model_version(NAME, source=info.model_uri, run_id=info.run_id,
                                      tags=tags, model_id=info.model_id).version)


def mlci(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run the CLI entry point in this process (exit codes and output exactly as `main`
    gives them): a subprocess costs ~4 s of imports, so most tests use this and a few use
    `run_mlci` to check the installed command end to end."""
    import contextlib
    import io
    import os

    from mlci.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    for k in list(os.environ):
        if k.startswith(("GITHUB_", "MLCI_", "MLFLOW_")):
            del os.environ[k]
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue())


def champion(root: Path) -> str | None:
    return aliases.current(client_for(root), NAME, "champion")


def history(root: Path, env: dict[str, str] | None = None) -> list[dict]:
    r = mlci("history", NAME, "--json", cwd=root, env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)


def one_line_error(r, code: int) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("mlci: "), r.err


CI_ENV = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/repo",
          "GITHUB_RUN_ID": "77", "GITHUB_ACTOR": "ci-bot", "MLCI_APPROVER": "alice"}


def test_promote_records_event_and_lineage_answers(proj: Path) -> None:
    r = run_mlci("promote", "--to", "champion", "--json", cwd=proj, env=CI_ENV)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["version"] == "1" and out["alias"] == "champion" and out["from_version"] is None
    assert out["changed"] is True
    assert champion(proj) == "1"

    [ev] = history(proj)
    assert ev["action"] == "promote" and ev["alias"] == "champion"
    assert ev["from_version"] is None and ev["to_version"] == "1"
    assert ev["actor"] == "ci-bot" and ev["approver"] == "alice"
    assert ev["ci_run_url"] == "https://github.com/org/repo/actions/runs/77"
    assert ev["evidence_digest"].startswith("sha256:") and ev["time"]

    # promoting again is a no-op and records nothing
    r = mlci("promote", "--to", "champion", "--version", "1", cwd=proj)
    assert r.code == 0 and "already" in r.out
    assert len(history(proj)) == 1

    r = mlci("lineage", f"{NAME}@champion", "--json", cwd=proj)
    assert r.code == 0, r.err
    d = json.loads(r.out)
    tags = client_for(proj).get_model_version(NAME, "1").tags
    assert d["model"]["version"] == "1" and "champion" in d["model"]["aliases"]
    assert d["git"]["commit"] == tags["mlci.git.commit"] and len(d["git"]["commit"]) == 40
    assert d["data"]["train"]["hash"] == tags["mlci.data.train.hash"]
    assert d["data"]["golden"]["path"] == "data/golden.csv"
    assert d["validation"]["success"] == "true"
    assert d["validation"]["digest"] == tags["mlci.validation.digest"]
    assert d["validation"]["link"].endswith("mlci/validation.json")
    assert d["evaluation"]["gate_passed"] == "true"
    assert d["evaluation"]["metrics"]["accuracy"] >= 0.9
    assert any(c["check"] == "accuracy >= 0.9" and c["passed"] for c in d["evaluation"]["checks"])
    assert d["approval"]["approver"] == "alice" and d["approval"]["action"] == "promote"
    assert d["replaced"] is None and d["rollback_of"] is None
    assert json.loads((proj / ".mlci" / "lineage.json").read_text()) == d

    r = run_mlci("lineage", f"{NAME}/1", "--md", cwd=proj)
    assert r.code == 0 and r.out.startswith("### Lineage of iris v1")
    assert "| approved | promote to `champion` by alice" in r.out


def test_refuses_version_whose_gate_failed(proj: Path) -> None:
    assert mlci("promote", "--to", "champion", cwd=proj).code == 0
    bad = add_version(proj, passed=False)
    r = mlci("promote", "--to", "champion", "--version", bad, "--json", cwd=proj)
    assert r.code == 1, r.err
    assert "evaluation gate passed" in r.err and "Traceback" not in r.err
    out = json.loads(r.out)
    assert out["changed"] is False and "evaluation gate passed" in out["failed"]
    assert champion(proj) == "1"
    evs = history(proj)
    assert [e["action"] for e in evs] == ["promote", "refuse"]
    assert evs[1]["to_version"] == bad and evs[1]["from_version"] == "1"
    assert "evaluation gate passed" in evs[1]["message"]
    # staging too: the gate applies to every alias
    r = mlci("promote", "--to", "staging", "--version", bad, cwd=proj)
    assert r.code == 1
    assert aliases.current(client_for(proj), NAME, "staging") is None


def test_refuses_failed_validation_and_missing_evidence(proj: Path) -> None:
    v_invalid = add_version(proj, validation="false")
    v_bare = add_version(proj, evidence=False)
    r = mlci("promote", "--to", "staging", "--version", v_invalid, cwd=proj)
    assert r.code == 1 and "data validation passed" in r.err
    r = mlci("promote", "--to", "champion", "--version", v_bare, cwd=proj)
    assert r.code == 1 and "has no mlci evidence" in r.err
    assert champion(proj) is None
    assert [e["action"] for e in history(proj)] == ["refuse", "refuse"]


def test_bad_input_is_one_line_and_moves_nothing(proj: Path) -> None:
    r = run_mlci("promote", "--to", "Champion", cwd=proj)
    one_line_error(r, 2)
    err = r.err
    assert "case-sensitive" in err and "'champion'" in err
    one_line_error(mlci("promote", "--to", "production", cwd=proj), 2)
    one_line_error(mlci("promote", "--to", "champion", "--version", "42", cwd=proj), 2)
    one_line_error(mlci("promote", "--to", "champion", "--version", "x1", cwd=proj), 2)
    one_line_error(mlci("promote", "--to", "champion", "--force", cwd=proj), 2)
    other = proj / "other.yaml"
    other.write_text((proj / "mlci.yaml").read_text().replace("name: iris", "name: nosuch"))
    r = mlci("promote", "-c", str(other), "--to", "champion", cwd=proj)
    one_line_error(r, 2)
    assert "registered model 'nosuch' not found" in r.err
    one_line_error(mlci("promote", "-c", "missing.yaml", "--to", "champion", cwd=proj), 2)
    one_line_error(mlci("history", "nope", cwd=proj), 2)
    one_line_error(mlci("history", NAME, "--alias", "x' or '1'='1", cwd=proj), 2)
    one_line_error(mlci("lineage", "nope@champion", cwd=proj), 2)
    one_line_error(mlci("lineage", "iris@Champion", cwd=proj), 2)
    one_line_error(mlci("lineage", "iris", cwd=proj), 2)
    one_line_error(mlci("lineage", "iris/7", cwd=proj), 2)
    one_line_error(mlci("rollback", NAME, "--reason", "x", cwd=proj), 2)  # nothing before
    one_line_error(mlci("rollback", NAME, "--version", "9", "--reason", "x", cwd=proj), 2)
    assert champion(proj) is None
    assert history(proj) == []

    # an unreachable tracking server: bounded retries, then one line
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    r = run_mlci("promote", "--to", "champion", cwd=proj,
                 env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    one_line_error(r, 2)
    assert "unreachable" in r.err and time.monotonic() - t0 < 30
    assert champion(proj) is None


def test_force_moves_with_reason_recorded(proj: Path) -> None:
    bad = add_version(proj, passed=False)
    r = mlci("promote", "--to", "champion", "--version", bad, "--force", "--reason",
                 "hotfix for incident 12", "--json", cwd=proj)
    assert r.code == 0, r.err
    assert json.loads(r.out)["action"] == "force"
    assert champion(proj) == bad
    [ev] = history(proj)
    assert ev["action"] == "force" and ev["reason"] == "hotfix for incident 12"
    assert "evaluation gate passed" in ev["message"]


def test_reevaluates_against_a_champion_that_changed(proj: Path) -> None:
    assert mlci("promote", "--to", "champion", cwd=proj).code == 0
    # same model, evaluated before version 1 became champion: re-scored, passes
    same = add_version(proj, evaluated_against="")
    r = mlci("promote", "--to", "champion", "--version", same, "--json", cwd=proj)
    assert r.code == 0, r.err
    assert champion(proj) == same
    # a worse model carrying passing tags copied from another version but never evaluated:
    # its run has no evaluation record, so the tags count for nothing
    worse = add_dummy_version(proj)
    r = mlci("promote", "--to", "champion", "--version", worse, "--json", cwd=proj)
    assert r.code == 1, r.err
    failed = json.loads(r.out)["failed"]
    assert any(f.startswith("evaluation record verified (no evaluation record") for f in failed)
    assert champion(proj) == same
    # an older version than the champion is refused: that is what rollback is for
    r = mlci("promote", "--to", "champion", "--version", "1", cwd=proj)
    assert r.code == 1 and "not older than champion" in r.err
    assert [e["action"] for e in history(proj)] == ["promote", "promote", "refuse", "refuse"]


def test_staging_needs_gate_not_champion(proj: Path) -> None:
    r = mlci("promote", "--to", "staging", "--version", "1", "--json", cwd=proj)
    assert r.code == 0, r.err
    assert aliases.current(client_for(proj), NAME, "staging") == "1"
    assert champion(proj) is None


def test_rollback_walks_back_the_champion_chain(proj: Path) -> None:
    v2, v3 = add_version(proj, evaluated_against="1"), None
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    assert mlci("promote", "--to", "champion", "--version", v2, cwd=proj).code == 0
    v3 = add_version(proj, evaluated_against=v2)
    assert mlci("promote", "--to", "champion", "--version", v3, cwd=proj).code == 0
    bad = add_version(proj, passed=False)

    r = mlci("rollback", NAME, "--reason", "latency regression", "--json", cwd=proj)
    assert r.code == 0, r.err
    assert json.loads(r.out)["version"] == v2 and champion(proj) == v2
    r = mlci("rollback", NAME, "--reason", "still bad", "--json", cwd=proj)
    assert r.code == 0, r.err
    assert json.loads(r.out)["version"] == "1" and champion(proj) == "1"

    r = mlci("rollback", NAME, "--version", bad, "--reason", "x", cwd=proj)
    assert r.code == 1 and "did not pass its gate" in r.err
    assert champion(proj) == "1"
    r = mlci("rollback", NAME, "--version", v3, "--reason", "fixed upstream", "--json", cwd=proj)
    assert r.code == 0 and champion(proj) == v3

    evs = [e for e in history(proj) if e["alias"] == "champion"]
    assert [(e["action"], e["from_version"], e["to_version"], e["rollback_of"]) for e in evs] == [
        ("promote", None, "1", None), ("promote", "1", v2, None), ("promote", v2, v3, None),
        ("rollback", v3, v2, v3), ("rollback", v2, "1", v2), ("refuse", "1", bad, "1"),
        ("rollback", "1", v3, "1"),
    ]
    d = json.loads(mlci("lineage", f"{NAME}@champion", "--json", cwd=proj).out)
    assert d["rollback_of"] == "1" and d["approval"]["action"] == "rollback"
    assert d["approval"]["reason"] == "fixed upstream"
    r = mlci("history", NAME, cwd=proj)
    assert r.code == 0 and "rollback" in r.out and "latency regression" in r.out


def test_champion_stack_replay() -> None:
    from mlci.registry.audit import AuditEvent

    def ev(action: str, frm: str | None, to: str) -> AuditEvent:
        return AuditEvent(action=action, model=NAME, alias="champion", from_version=frm,
                          to_version=to, actor="t")

    evs = [ev("promote", None, "1"), ev("promote", "1", "2"), ev("refuse", "2", "9"),
           ev("promote", "2", "3"), ev("rollback", "3", "2"), ev("promote", "2", "4")]
    assert gate.champion_stack(evs) == ["1", "2", "4"]
    assert gate.champion_stack([ev("rollback", "5", "3")]) == ["3"]


def test_approver_from_github_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLCI_APPROVER", raising=False)
    monkeypatch.setenv("GITHUB_ACTOR", "pusher")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"review": {"user": {"login": "reviewer1"}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    assert gate.approver() == "reviewer1"
    event.write_text(json.dumps({"approver": {"login": "env-approver"}}))
    assert gate.approver() == "env-approver"
    event.write_text(json.dumps({"pusher": {"name": "x"}}))
    assert gate.approver() == "pusher"
    monkeypatch.setenv("MLCI_APPROVER", "explicit")
    assert gate.approver() == "explicit"


def test_lock_left_by_a_killed_job_expires_and_a_live_one_waits(proj: Path) -> None:
    c = client_for(proj)
    stale = lock.RegistryLock(c, NAME, ttl=-1)  # a holder that died long ago
    stale.acquire()
    r = mlci("promote", "--to", "champion", "--json", cwd=proj)
    assert r.code == 0, r.err
    assert champion(proj) == "1"
    assert list(c.search_registered_models(filter_string="name = 'mlci-lock.iris'")) == []

    live = lock.RegistryLock(c, NAME, ttl=300)
    live.acquire()
    try:
        v2 = add_version(proj, evaluated_against="1")
        t0 = time.monotonic()
        r = mlci("promote", "--to", "champion", "--version", v2, cwd=proj,
                 env={"MLCI_LOCK_WAIT": "2"})
        one_line_error(r, 2)
        assert "still held" in r.err and time.monotonic() - t0 < 30
        assert champion(proj) == "1"
    finally:
        live.release()
    assert mlci("promote", "--to", "champion", "--version", v2, cwd=proj).code == 0
    assert [e["to_version"] for e in history(proj)] == ["1", v2]


def test_hand_edited_tags_do_not_promote_a_refused_model(proj: Path) -> None:
    """A uniform-random DummyClassifier fails its gate; setting the evidence tags by hand
    (the three a reviewer would edit) must not get it promoted: the gate reads the run's
    evaluation record and checks its digest against the run's immutable params."""
    cfg = (proj / "mlci.yaml").read_text()
    cfg = cfg.replace("sklearn.ensemble.RandomForestClassifier", "sklearn.dummy.DummyClassifier")
    cfg = cfg.replace("{n_estimators: 200, random_state: 0}",
                      "{strategy: uniform, random_state: 0}")
    (proj / "mlci.yaml").write_text(cfg)
    for step in ("validate", "train", "evaluate"):
        r = mlci(step, cwd=proj)
        assert r.code == (1 if step == "evaluate" else 0), (step, r.out, r.err)
    run = json.loads((proj / ".mlci/run.json").read_text())
    v = run["model_version"]
    c = client_for(proj)
    for k, val in (("mlci.gate.passed", "true"), ("mlci.evaluation.champion_version", ""),
                   ("mlci.evaluation.baseline", "registry champion iris/1")):
        c.set_model_version_tag(NAME, v, k, val)
    r = mlci("promote", "--to", "staging", "--version", v, "--json", cwd=proj)
    assert r.code == 1, (r.out, r.err)
    assert aliases.current(c, NAME, "staging") is None
    # and a forged record (the artifact rewritten to say "pass") fails its digest check
    import tempfile

    ev = json.loads((proj / ".mlci/evaluation.json").read_text())
    ev["verdict"], ev["failed"] = "pass", []
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "evaluation.json"
        p.write_text(json.dumps(ev))
        c.log_artifact(run["run_id"], str(p), artifact_path="mlci")
    r = mlci("promote", "--to", "staging", "--version", v, "--json", cwd=proj)
    assert r.code == 1, (r.out, r.err)
    assert "digest" in r.out + r.err
    assert aliases.current(c, NAME, "staging") is None


def test_a_hand_edited_validation_tag_does_not_pass_validation(proj: Path) -> None:
    """Validation failed, training was forced past it, the gate passed: the version must not
    be promoted, and setting `mlci.validation.success=true` on it by hand changes nothing
    (the gate reads the run's immutable param written at training)."""
    train = proj / "data" / "train.csv"
    lines = train.read_text().splitlines()
    lines[1] = "99.0," + lines[1].split(",", 1)[1]  # one value far out of range
    train.write_text("\n".join(lines) + "\n")
    assert mlci("validate", cwd=proj).code == 1
    assert mlci("train", "--skip-validation", cwd=proj).code == 0
    assert mlci("evaluate", cwd=proj).code == 0
    v = json.loads((proj / ".mlci/run.json").read_text())["model_version"]
    c = client_for(proj)
    r = mlci("promote", "--to", "staging", "--version", v, cwd=proj)
    assert r.code == 1 and "data validation passed" in r.err, (r.out, r.err)
    c.set_model_version_tag(NAME, v, "mlci.validation.success", "true")
    r = mlci("promote", "--to", "staging", "--version", v, cwd=proj)
    assert r.code == 1 and "data validation passed" in r.err, (r.out, r.err)
    assert aliases.current(c, NAME, "staging") is None


@pytest.mark.parametrize("argv", [("train",), ("promote", "--to", "staging"),
                                  ("rollback", NAME, "--reason", "x")])
def test_pull_request_runs_never_write_to_the_registry(proj: Path, argv) -> None:
    """A shared store (here: any store but the job's own `.mlci/mlflow.db`) refuses every
    write from a pull request; promote and rollback refuse on the job's own store too."""
    before = sorted(str(v.version) for v in client_for(proj).search_model_versions(
        f"name = '{NAME}'"))
    env = {"GITHUB_EVENT_NAME": "pull_request"}
    if argv[0] == "train":
        shared = (proj / "shared" / "mlflow.db").resolve()
        shared.parent.mkdir()
        env["MLCI_TRACKING_URI"] = f"sqlite:///{shared}"
    r = mlci(*argv, cwd=proj, env=env)
    one_line_error(r, 2)
    assert "pull-request runs never write to the registry" in r.err
    assert sorted(str(v.version) for v in client_for(proj).search_model_versions(
        f"name = '{NAME}'")) == before
    assert aliases.current(client_for(proj), NAME, "staging") is None
    assert not list((proj / "shared").glob("*")) if argv[0] == "train" else True


def test_a_pull_request_trains_into_its_own_throwaway_store(proj: Path) -> None:
    """The code trigger on a pull request registers into the job's embedded store (never
    saved from a pull request), so the report can compare candidate and champion."""
    assert mlci("validate", cwd=proj).code == 0
    r = mlci("train", cwd=proj, env={"GITHUB_EVENT_NAME": "pull_request"})
    assert r.code == 0, r.err
    assert json.loads((proj / ".mlci/run.json").read_text())["model_version"]


def test_a_champion_not_from_the_default_branch_is_never_loaded(proj: Path, trained_iris: Path,
                                                                monkeypatch) -> None:
    """A version registered elsewhere (here: no recorded origin, like a pull request's
    model in a restored store) is refused as the baseline before its pickle is opened."""
    from mlci.registry import models

    v = add_dummy_version(proj)
    client_for(proj).set_registered_model_alias(NAME, "champion", v)
    loaded: list[str] = []
    real = models.load_local

    def spy(folder, uri: str):  # records every model URI a stage opens, then opens it
        loaded.append(uri)
        return real(folder, uri)

    monkeypatch.setattr(models, "load_local", spy)
    import shutil

    shutil.copy(trained_iris / ".mlci/run.json", proj / ".mlci/run.json")  # candidate: v1
    r = mlci("evaluate", cwd=proj)
    one_line_error(r, 2)
    assert "has no recorded origin" in r.err and f"mlci adopt --version {v}" in r.err
    assert f"models:/{NAME}/{v}" not in loaded and len(loaded) == 1  # the candidate only
    assert not (proj / ".mlci/evaluation.json").exists()


def test_the_default_branch_records_a_trusted_origin(proj: Path, monkeypatch) -> None:
    from mlci.registry import trust

    run_id = client_for(proj).get_model_version(NAME, "1").run_id
    params = client_for(proj).get_run(run_id).data.params
    assert params["mlci.trust.trusted"] == "true"  # a local run (the fixture's `mlci run`)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_REF", "refs/heads/feature")
    monkeypatch.setenv("MLCI_DEFAULT_BRANCH", "main")
    assert trust.origin()["trusted"] == "false"
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    assert trust.origin()["trusted"] == "true"
    monkeypatch.delenv("MLCI_DEFAULT_BRANCH")
    assert trust.origin()["trusted"] == "false"  # a push whose default branch is unknown
    monkeypatch.setenv("GITHUB_EVENT_NAME", "schedule")  # its payload names no repository
    assert trust.origin()["trusted"] == "true"
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    assert trust.origin()["trusted"] == "false"
