"""The registry seam: one rule moves an alias, one loader opens a model, for any MLflow model.

Each test reproduces a way the gate's promise ("a model serves only on recorded evidence")
used to break, on a real MLflow SQLite store:

- a canary of a version whose gate failed (start refused, promotion refused; `--force
  --reason` is audited);
- a pyfunc model with integer input columns through train, evaluate, promote and the gateway;
- a changed feature set: the champion is still scored, on its own columns, and promotion works;
- rewritten evidence and a swapped pickle: refused before anything is unpickled;
- `kill -9` between an alias move and its audit record, in `mlci promote` and in
  `mlci canary promote`: the next command settles the trail and the state from the registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_registry import add_dummy_version, client_for, mlci, one_line_error, packed, proj

from mlci.registry import aliases, audit

__all__ = ["packed", "proj"]  # fixtures used here
NAME = "iris"


def events(root: Path) -> list[audit.AuditEvent]:
    c = client_for(root)
    exp = c.get_experiment_by_name(audit.experiment_name(NAME))
    return audit.events(c, exp.experiment_id if exp else None)


def new_version(root: Path, verdict: int = 0, env: dict[str, str] | None = None) -> str:
    """Validate, train and evaluate once more (exit `verdict` from the gate)."""
    assert mlci("validate", "--no-docs", cwd=root, env=env).code == 0
    r = mlci("train", cwd=root, env=env)
    assert r.code == 0, r.err
    r = mlci("evaluate", cwd=root, env=env)
    assert r.code == verdict, r.err
    return json.loads((root / ".mlci/run.json").read_text())["model_version"]


def gate_failed_version(root: Path) -> str:
    """Version 2 of iris: trained and evaluated by mlci, its gate failed."""
    cfg = root / "mlci.yaml"
    cfg.write_text(cfg.read_text().replace("accuracy: 0.9", "accuracy: 0.999"))
    return new_version(root, verdict=1)


# ---------------------------------------------------------------- the canary and the gate


def test_a_canary_cannot_make_a_gate_failed_version_champion(proj: Path) -> None:
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    v = gate_failed_version(proj)
    assert mlci("promote", "--to", "champion", "--version", v, cwd=proj).code == 1
    r = mlci("canary", "start", "--version", v, cwd=proj)
    assert r.code == 1 and "refused to start a canary" in r.err, r.err
    assert "evaluation gate passed" in r.err
    c = client_for(proj)
    assert aliases.current(c, NAME, "challenger") is None
    assert not (proj / ".mlci/canary/state.json").exists()
    refusals = [e for e in events(proj) if e.action == "refuse" and e.alias == "challenger"]
    assert refusals and refusals[-1].to_version == v

    # forced past the gate, with a reason: audited as a force, never silent
    r = mlci("canary", "start", "--version", v, "--force", cwd=proj)
    assert r.code == 2 and "--force needs --reason" in r.err
    r = mlci("canary", "start", "--version", v, "--force", "--reason", "hotfix test", cwd=proj)
    assert r.code == 0, r.err
    assert aliases.current(c, NAME, "challenger") == v
    forced = [e for e in events(proj) if e.action == "force" and e.alias == "challenger"]
    assert forced and forced[-1].reason == "hotfix test"

    # promotion still needs the evidence and a passing analysis
    r = mlci("canary", "promote", cwd=proj)
    assert r.code == 1 and "refused to promote" in r.err, r.err
    assert "evaluation gate passed" in r.err and "canary analysis passed" in r.err
    assert aliases.current(c, NAME, "champion") == "1"
    state = json.loads((proj / ".mlci/canary/state.json").read_text())
    assert state["status"] == "running" and state["promoting"] is None


def test_a_canary_of_a_passing_version_starts(proj: Path) -> None:
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    assert new_version(proj) == "2"
    r = mlci("canary", "start", "--version", "2", cwd=proj)
    assert r.code == 0, r.err
    assert aliases.current(client_for(proj), NAME, "challenger") == "2"
    started = [e for e in events(proj) if e.alias == "challenger"]
    assert started[-1].action == "canary" and "started" in (started[-1].message or "")


# ---------------------------------------------------------------- any MLflow model

RULE = '''import mlflow.pyfunc


class Rule(mlflow.pyfunc.PythonModel):
    """A hand-written rule served through MLflow's generic interface."""

    def predict(self, context, model_input, params=None):
        return ["yes" if a > b else "no" for a, b in zip(model_input["a"], model_input["b"])]


def build(x, y, params=None, seed=0):
    return Rule()
'''


def rules_project(root: Path) -> Path:
    """A project whose model is a `PythonModel` taking two integer columns."""
    import random

    root.mkdir(parents=True)
    rng = random.Random(0)
    for name, n in (("train", 200), ("golden", 80)):
        rows = ["a,b,label"]
        for _ in range(n):
            a, b = rng.randint(0, 100), rng.randint(0, 100)
            rows.append(f"{a},{b},{'yes' if a > b else 'no'}")
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    (root / "rule.py").write_text(RULE)
    (root / "mlci.yaml").write_text(
        "name: rules\ndata: {train: train.csv, golden: golden.csv, target: label}\n"
        "model: {entrypoint: 'rule.py:build'}\ngate: {min: {accuracy: 0.9}}\n")
    assert mlci("init", "--profile", "train.csv", "--target", "label", cwd=root).code == 0
    return root


def lightgbm_project(root: Path) -> Path:
    """Iris with a LightGBM classifier: a model library mlci itself does not depend on."""
    from conftest import make_project

    make_project(root)
    cfg = root / "mlci.yaml"
    cfg.write_text(cfg.read_text().replace(
        "estimator: sklearn.ensemble.RandomForestClassifier\n"
        "  params: {n_estimators: 200, random_state: 0}",
        "estimator: lightgbm.LGBMClassifier\n"
        "  params: {n_estimators: 30, min_child_samples: 5, verbose: -1, n_jobs: 1}"))
    assert "lightgbm" in cfg.read_text()
    return root


MODELS = {
    "pyfunc-integer-columns": (rules_project, "rules",
                               [{"a": 7.0, "b": 3}, {"a": 1, "b": 9}], ["yes", "no"]),
    "lightgbm": (lightgbm_project, "iris",
                 [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                   "petal_width": 0.2}], ["setosa"]),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_any_mlflow_model_goes_through_every_stage(kind: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """train -> evaluate -> promote -> serve -> canary -> promotion -> rollback, with one
    loader: a pyfunc `PythonModel` on integer columns (JSON gives 7.0), and LightGBM."""
    from starlette.testclient import TestClient

    from mlci.serve.app import Gateway

    make, name, rows, expected = MODELS[kind]
    root = make(tmp_path / name)
    r = mlci("run", cwd=root)
    assert r.code == 0, r.err
    assert mlci("promote", "--to", "champion", cwd=root).code == 0
    v2 = new_version(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.mlci/mlflow.db'}")

    def served() -> tuple[str, list]:
        gw = Gateway(name, log_path=root / ".mlci/predictions.db",
                     state_file=root / ".mlci/canary/state.json")
        gw.apply(gw.desired())
        with TestClient(gw.app()) as http:
            res = http.post("/predict", json={"instances": rows})
            assert res.status_code == 200, res.text
            return res.json()["model_version"], res.json()["predictions"]

    assert served() == ("1", expected)
    assert mlci("canary", "start", "--version", v2, "--steps", "50,100", cwd=root).code == 0
    r = mlci("canary", "promote", "--force", "--reason", "no live traffic in this test",
             cwd=root)
    assert r.code == 0, r.err
    assert served() == (v2, expected)
    r = mlci("rollback", name, "--reason", "back to the first version", cwd=root)
    assert r.code == 0, r.err
    assert served() == ("1", expected)
    c = client_for(root)
    exp = c.get_experiment_by_name(audit.experiment_name(name)).experiment_id
    actions = [(e.action, e.alias, e.to_version) for e in audit.events(c, exp)]
    assert actions[-3:] == [("canary", "challenger", v2), ("force", "champion", v2),
                            ("rollback", "champion", "1")]


def test_a_changed_feature_set_is_still_compared_and_promoted(proj: Path) -> None:
    """After `data.drop`, the champion gets the golden rows through its own signature."""
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    cfg = proj / "mlci.yaml"
    cfg.write_text(cfg.read_text().replace("data:\n", "data:\n  drop: [sepal_width]\n", 1))
    assert mlci("validate", "--no-docs", cwd=proj).code == 0
    assert mlci("train", cwd=proj).code == 0
    r = mlci("evaluate", cwd=proj)
    assert r.code in (0, 1), r.err
    ev = json.loads((proj / ".mlci/evaluation.json").read_text())
    assert ev["baseline"]["kind"] == "registry" and ev["baseline"]["version"] == "1"
    assert ev["comparison"] and "accuracy" in ev["comparison"]
    run = json.loads((proj / ".mlci/run.json").read_text())
    assert "sepal_width" not in run["features"]
    r = mlci("promote", "--to", "champion", "--version", run["model_version"], "--json",
             cwd=proj)
    assert r.code == (0 if ev["verdict"] == "pass" else 1), r.err
    assert "internal error" not in r.err


# ---------------------------------------------------------------- evidence you can trust


def _forge_evidence(root: Path, version: str) -> None:
    """What someone with write access to the registry can do: give a version the evaluation
    record of a passing one (run id rewritten) and the digest param that matches it."""
    import hashlib
    import tempfile

    c = client_for(root)
    mv = c.get_model_version(NAME, version)
    good = c.get_model_version(NAME, "1")
    with tempfile.TemporaryDirectory() as tmp:
        rec = json.loads(Path(c.download_artifacts(good.run_id, "mlci/evaluation.json", tmp))
                         .read_text())
        rec["model"]["run_id"] = mv.run_id
        text = json.dumps(rec)
        p = Path(tmp) / "evaluation.json"
        p.write_text(text)
        c.log_artifact(mv.run_id, str(p), artifact_path="mlci")
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    c.log_param(mv.run_id, "mlci.evaluation.digest." + digest[7:23], digest)
    c.log_param(mv.run_id, "mlci.validation.success", "true")


def test_rewritten_evidence_is_refused_with_a_trust_key(proj: Path) -> None:
    key = {"MLCI_TRUST_KEY": "k" * 32}
    # evidence written under the key is signed and promotes
    assert new_version(proj, env=key) == "2"
    assert mlci("promote", "--to", "champion", "--version", "2", cwd=proj, env=key).code == 0
    dummy = add_dummy_version(proj)
    _forge_evidence(proj, dummy)
    r = mlci("promote", "--to", "staging", "--version", dummy, cwd=proj, env=key)
    assert r.code == 1, r.err
    assert "not signed with MLCI_TRUST_KEY" in r.out + r.err
    assert aliases.current(client_for(proj), NAME, "staging") is None
    # and a version whose origin and files are unsigned is never loaded as the champion
    r = mlci("evaluate", cwd=proj, env=key)  # v2's run.json; champion v2 is signed: loads
    assert r.code in (0, 1), r.err
    # without the key the same forgery is only a registry writer's word: documented, and
    # the reason the key exists (docs/registry.md)
    assert mlci("promote", "--to", "staging", "--version", dummy, cwd=proj).code == 0


PAYLOAD = '''import os, pickle


class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))


with open({path!r}, "wb") as fh:
    pickle.dump(Payload(), fh)
'''


def test_a_swapped_pickle_is_never_opened(proj: Path, tmp_path: Path) -> None:
    """The version's files are checked against the digest training recorded before any of
    them is unpickled: by evaluate (the champion as baseline) and by the gateway."""
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    assert mlci("validate", "--no-docs", cwd=proj).code == 0
    assert mlci("train", cwd=proj).code == 0
    c = client_for(proj)
    model_id = c.get_model_version(NAME, "1").source.rsplit("/", 1)[-1]
    [pkl] = [p for p in (proj / ".mlci").rglob("model.pkl") if model_id in str(p)]
    marker = tmp_path / "payload-ran"
    subprocess.run([sys.executable, "-c", PAYLOAD.format(marker=marker, path=str(pkl))],
                   check=True)
    r = mlci("evaluate", cwd=proj)
    one_line_error(r, 2)
    assert "its files differ from the ones training recorded" in r.err
    from mlci.errors import MlciError
    from mlci.registry import models

    with pytest.raises(MlciError, match="files differ"):
        models.load_version(c, NAME, "1", role="served model")
    assert not marker.exists()


# ---------------------------------------------------------------- kill -9 windows

KILL_AFTER_MOVE = """
import os, signal, sys
from mlci.registry import aliases
real = aliases.set_alias
def set_then_die(client, name, alias, version):
    real(client, name, alias, version)
    if alias == {alias!r}:
        os.kill(os.getpid(), signal.SIGKILL)  # after the move, before the audit confirms it
aliases.set_alias = set_then_die
from mlci.cli import main
sys.argv = ["mlci", *sys.argv[1:]]
main()
"""


def killed(root: Path, alias: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}
    p = subprocess.run([sys.executable, "-c", KILL_AFTER_MOVE.format(alias=alias), *args],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    return p


@pytest.mark.e2e
def test_a_kill_between_move_and_audit_loses_nothing(proj: Path) -> None:
    killed(proj, "champion", "promote", "--to", "champion", "--version", "1")
    c = client_for(proj)
    assert aliases.current(c, NAME, "champion") == "1"  # moved, its event not confirmed
    assert not [e for e in events(proj) if e.action == "promote"]
    shown = mlci("history", NAME, cwd=proj)
    assert shown.code == 0 and "pending: promote champion none->1" in shown.out
    as_json = json.loads(mlci("history", NAME, "--json", cwd=proj).out)
    assert [(e["action"], e["pending"]) for e in as_json if e["alias"] == "champion"] == \
        [("promote", True)]
    # the next writer settles the intent from the registry before it moves anything
    assert new_version(proj) == "2"
    assert mlci("promote", "--to", "staging", "--version", "2", cwd=proj).code == 0
    evs = events(proj)
    promoted = [e for e in evs if e.action == "promote" and e.alias == "champion"]
    assert len(promoted) == 1 and promoted[0].to_version == "1"
    assert [e.alias for e in evs if e.action == "promote"] == ["champion", "staging"]
    assert "pending" not in mlci("history", NAME, cwd=proj).out


@pytest.mark.e2e
def test_a_kill_during_canary_promotion_is_settled_from_the_registry(proj: Path) -> None:
    assert mlci("promote", "--to", "champion", "--version", "1", cwd=proj).code == 0
    assert new_version(proj) == "2"
    assert mlci("canary", "start", "--version", "2", cwd=proj).code == 0
    killed(proj, "champion", "canary", "promote", "--force", "--reason", "ship it")
    state = json.loads((proj / ".mlci/canary/state.json").read_text())
    assert state["status"] == "running" and state["promoting"] is not None
    assert aliases.current(client_for(proj), NAME, "champion") == "2"
    # abort now finds the rollout promoted (the registry moved), not something to roll back
    r = mlci("canary", "abort", "--reason", "too late", cwd=proj)
    assert r.code == 2 and "no canary of iris is running" in r.err, r.err
    state = json.loads((proj / ".mlci/canary/state.json").read_text())
    assert state["status"] == "promoted" and state["champion"] == "2" and state["weight"] == 100
    assert aliases.current(client_for(proj), NAME, "champion") == "2"
    assert aliases.current(client_for(proj), NAME, "challenger") is None
    moves = [e for e in events(proj) if e.alias == "champion" and e.to_version == "2"]
    assert len(moves) == 1 and moves[0].action == "force" and "ship it" in (moves[0].reason or "")
    assert not [e for e in events(proj) if "1->1" in f"{e.from_version}->{e.to_version}"]


# ---------------------------------------------------------------- adopt


def foreign_version(root: Path) -> str:
    """A version logged and registered with MLflow alone: no mlci evidence at all."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.read_csv(root / "data/train.csv")
    x, y = df.drop(columns=["species"]), df["species"]
    c = client_for(root)
    with mlflow.start_run(experiment_id=c.get_experiment_by_name(NAME).experiment_id):
        info = mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(x, y), name="model",
                                        pip_requirements=["scikit-learn"],
                                        serialization_format="cloudpickle")
    return str(c.create_model_version(NAME, source=info.model_uri, run_id=info.run_id,
                                      model_id=info.model_id).version)


def test_a_model_logged_outside_mlci_is_adopted_then_gated(proj: Path) -> None:
    v = foreign_version(proj)
    r = mlci("promote", "--to", "champion", "--version", v, cwd=proj)
    assert r.code == 1 and "no mlci evidence" in r.out + r.err
    r = mlci("adopt", "--version", v, "--reason", "the model we serve today", "--json", cwd=proj)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["verdict"] == "pass" and out["model_digest"].startswith("sha256:")
    r = mlci("promote", "--to", "champion", "--version", v, cwd=proj)
    assert r.code == 0, r.out + r.err
    adopted = [e for e in events(proj) if e.action == "adopt"]
    assert adopted[-1].to_version == v and adopted[-1].reason == "the model we serve today"
    # the adopted champion is a baseline like any other: the next candidate is compared
    assert mlci("train", cwd=proj).code == 0
    assert mlci("evaluate", cwd=proj).code in (0, 1)
    ev = json.loads((proj / ".mlci/evaluation.json").read_text())
    assert ev["baseline"]["kind"] == "registry" and ev["baseline"]["version"] == v
    r = mlci("adopt", "--version", v, cwd=proj)
    assert r.code == 2 and "already under mlci" in r.err


def test_the_version_page_says_what_the_gate_said(proj: Path) -> None:
    """MLflow's UI shows a version's description: the verdict, the metrics, the run."""
    v = new_version(proj, env={"GITHUB_SERVER_URL": "https://github.com",
                               "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "7"})
    text = client_for(proj).get_model_version(NAME, v).description
    assert text.startswith("mlci gate: **pass**") and "- accuracy: " in text
    assert "https://github.com/o/r/actions/runs/7" in text


def test_export_puts_a_checked_version_at_a_storage_uri(proj: Path, tmp_path: Path) -> None:
    """`mlci export` is the step before a KServe rollout: the version's MLflow model folder at
    the `storageUri` template's path, checked like a load, never over other files."""
    dest = tmp_path / "bucket" / "iris" / "{version}"
    r = mlci("export", "--version", "1", "--to", str(dest), "--json", cwd=proj)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    folder = tmp_path / "bucket/iris/1"
    assert out["copied"] and (folder / "MLmodel").is_file() and (folder / "model.pkl").is_file()
    from mlci.registry import models

    m = models.load_local(folder, "exported")  # what a server loads from there
    assert m.flavour == "sklearn"
    r = mlci("export", "--version", "1", "--to", str(dest), "--json", cwd=proj)
    assert r.code == 0 and not json.loads(r.out)["copied"]  # already there: nothing copied
    other = tmp_path / "bucket/iris/other"
    other.mkdir()
    (other / "model.pkl").write_bytes(b"someone else's")
    r = mlci("export", "--version", "1", "--to", str(other), cwd=proj)
    one_line_error(r, 2)
    assert "not overwriting" in r.err and (other / "model.pkl").read_bytes() == b"someone else's"
