"""The code-trigger pipeline on Iris against real Great Expectations and a real MLflow store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import run_glue, run_mlci
from test_actions_glue import parse as parse_outputs


def versions(root: Path) -> list[tuple[str, int]]:
    db = root / ".mlci" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("select name, version from model_versions order by version").fetchall()


def aliases(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / ".mlci" / "mlflow.db") as con:
        return dict(con.execute("select alias, version from registered_model_aliases").fetchall())


def test_run_produces_report_registry_and_lineage(trained_iris: Path) -> None:
    out = trained_iris / ".mlci"
    report = (out / "report.md").read_text()
    assert report.splitlines()[0] == "## ✅ mlci: iris v1: gate passed"
    for section in ("### Data validation", "### Metrics on the golden set", "### Gate",
                    "Per-class metrics", "### Confusion matrix", "### Lineage"):
        assert section in report
    assert "Baseline: none (no champion yet)" in report
    assert versions(trained_iris) == [("iris", 1)]
    assert aliases(trained_iris) == {"candidate": 1}
    run = json.loads((out / "run.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=trained_iris, capture_output=True,
                          text=True, check=True).stdout.strip()
    tags = run["tags"]
    assert tags["mlci.git.commit"] == head
    assert tags["mlci.git.branch"] == "main"
    assert tags["mlci.git.dirty"] == "false"
    assert tags["mlci.trigger"] == "local"
    assert tags["mlci.validation.success"] == "true"
    assert tags["mlci.data.train.hash"].startswith("sha256:")
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["verdict"] == "pass"
    assert evaluation["metrics"]["accuracy"] >= 0.9
    assert {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"} <= set(
        evaluation["metrics"])
    assert (out / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "data-docs" / "index.html").is_file()
    validation = json.loads((out / "validation.json").read_text())
    assert validation["success"] is True
    assert set(validation["datasets"]) == {"train", "golden"}


def test_model_version_carries_lineage_and_evidence(trained_iris: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{trained_iris / '.mlci' / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = c.get_model_version_by_alias("iris", "candidate")
    assert mv.tags["mlci.gate.passed"] == "true"
    assert mv.tags["mlci.validation.success"] == "true"
    assert mv.tags["mlci.evaluation.digest"].startswith("sha256:")
    run = c.get_run(mv.run_id)
    assert run.data.params["n_estimators"] == "200"
    assert "golden_accuracy" in run.data.metrics and "train_accuracy" in run.data.metrics
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["train"]
    names = {a.path for a in c.list_artifacts(mv.run_id, "mlci")}
    assert names == {"mlci/validation.json", "mlci/evaluation.json", "mlci/reference.json",
                     "mlci/preprocessing.json"}


def _set_champion(root: Path, version: int) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.mlci' / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "iris", "champion", str(version))


def _regression_check(e: dict) -> dict:
    regression = [c for c in e["checks"] if c["kind"] == "regression"]
    assert len(regression) == 1
    return regression[0]


def test_second_run_compares_with_champion(iris: Path) -> None:
    """The same model retrained (same data, seed, params: identical predictions) is no worse
    than its champion, so the regression check must pass; the verdict is known beforehand."""
    assert run_mlci("run", cwd=iris).code == 0
    _set_champion(iris, 1)
    r = run_mlci("run", cwd=iris)
    e = json.loads((iris / ".mlci" / "evaluation.json").read_text())
    assert e["baseline"]["kind"] == "registry" and e["baseline"]["version"] == "1"
    acc = e["comparison"]["accuracy"]
    assert acc["champion"] is not None and acc["ci"] is not None
    assert acc["delta"] == 0 and acc["ci"] == [0.0, 0.0]
    assert _regression_check(e)["passed"] is True
    assert r.code == 0, r.err
    report = (iris / ".mlci" / "report.md").read_text()
    assert "registry champion iris/1" in report
    assert "| accuracy |" in report and "CI of delta" in report


def test_a_much_worse_candidate_fails_the_regression_check(iris: Path) -> None:
    """A majority-class dummy (accuracy about 1/3 on Iris) against a forest (about 0.95): shown
    worse by far more than the 0.01 allowance, whatever the bootstrap draws. The floor is
    lowered so that the regression check alone decides."""
    assert run_mlci("run", cwd=iris).code == 0
    _set_champion(iris, 1)
    cfg = (iris / "mlci.yaml").read_text()
    cfg = cfg.replace("sklearn.ensemble.RandomForestClassifier", "sklearn.dummy.DummyClassifier")
    cfg = cfg.replace("{n_estimators: 200, random_state: 0}", "{strategy: most_frequent}")
    cfg = cfg.replace("{accuracy: 0.90}", "{accuracy: 0.0}")
    (iris / "mlci.yaml").write_text(cfg)
    r = run_mlci("run", cwd=iris)
    e = json.loads((iris / ".mlci" / "evaluation.json").read_text())
    check = _regression_check(e)
    assert check["passed"] is False and check["shown_worse_by"] > 0.3, check
    assert [c["kind"] for c in e["checks"] if not c["passed"]] == ["regression"]
    assert r.code == 1


def test_impossible_gate_fails_with_a_report(iris: Path) -> None:
    """In GitHub Actions each stage is a log group (closed, in order, on stderr), and --json
    carries each stage's own --json record."""
    cfg = (iris / "mlci.yaml").read_text().replace("{accuracy: 0.90}", "{accuracy: 1.01}")
    (iris / "mlci.yaml").write_text(cfg)
    r = run_mlci("run", "--json", cwd=iris, env={"GITHUB_ACTIONS": "true"})
    assert r.code == 1
    report = (iris / ".mlci" / "report.md").read_text()
    assert report.startswith("## ❌ mlci: iris v1: gate failed: accuracy >= 1.01")
    mv_tag = json.loads((iris / ".mlci" / "evaluation.json").read_text())
    assert mv_tag["verdict"] == "fail"
    markers = [line for line in r.err.splitlines() if line.startswith("::")]
    assert markers == [m for stage in ("validate", "train", "evaluate", "report")
                       for m in (f"::group::mlci {stage}", "::endgroup::")]
    evaluate = r.err.split("::group::mlci evaluate")[1].split("::endgroup::")[0]
    assert "[FAIL] accuracy >= 1.01" in evaluate and "verdict: fail" in evaluate
    result = json.loads(r.out.splitlines()[-1])
    stages = result["stages"]
    assert stages["validate"] == {"success": True, "report": ".mlci/validation.json"}
    assert stages["train"]["model_uri"] == "models:/iris/1"
    assert stages["evaluate"]["verdict"] == "fail"
    assert stages["evaluate"]["failed"] and stages["evaluate"]["metrics"]["accuracy"] < 1.01


def test_invalid_data_fails_before_training_and_report_explains(iris: Path) -> None:
    train = iris / "data" / "train.csv"
    lines = train.read_text().splitlines()
    lines[1] = "99.0," + lines[1].split(",", 1)[1]  # sepal_length far out of range
    train.write_text("\n".join(lines) + "\n")
    r = run_mlci("run", cwd=iris)
    assert r.code == 1
    assert versions(iris) == []
    report = (iris / ".mlci" / "report.md").read_text()
    assert report.startswith("## ❌ mlci: iris: data validation failed")
    assert "expect_column_values_to_be_between" in report and "99.0" in report
    assert "_No model was trained._" in report


ENTRYPOINT_RAISES = "def build(x, y):\n    raise RuntimeError('no GPU here')\n"


def test_a_stage_error_keeps_what_ran_and_the_root_action_still_reports(iris: Path) -> None:
    """The root action's step (one process) after a training error: the validate outputs, the
    verdict `error`, exit 2, and the report of what ran, written as a step-by-step job's
    report step would write it."""
    (iris / "train.py").write_text(ENTRYPOINT_RAISES)
    cfg = (iris / "mlci.yaml").read_text()
    cfg = cfg.replace("  estimator: sklearn.ensemble.RandomForestClassifier\n",
                      "  entrypoint: train.py:build\n")
    (iris / "mlci.yaml").write_text(cfg.replace("  params: {n_estimators: 200, random_state: 0}\n",
                                                ""))
    out = iris / "github_output"
    r = run_glue("run", cwd=iris, env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out),
                                       "MLCI_BASELINE": "", "MLCI_NO_DOCS": "true"})
    assert r.code == 2, r.err
    assert "entrypoint train.py:build raised RuntimeError: no GPU here" in r.err
    assert r.err.count("::group::") == r.err.count("::endgroup::") == 2  # validate, train
    values = parse_outputs(out)
    assert values["passed"] == "true"
    assert values["validation-report"] == str(iris / ".mlci" / "validation.json")
    assert (values["verdict"], values["model-version"], values["exit-code"]) == ("error", "", "2")
    assert values["report-path"] == str(iris / ".mlci" / "report.md")
    report = (iris / ".mlci" / "report.md").read_text()
    assert "### Data validation" in report and "_No model was trained._" in report
    assert versions(iris) == []


def test_stages_run_one_by_one(iris: Path) -> None:
    assert run_mlci("validate", cwd=iris).code == 0
    r = run_mlci("train", "--json", cwd=iris)
    assert r.code == 0
    rec = json.loads(r.out)
    assert rec["model_uri"] == "models:/iris/1"
    r = run_mlci("evaluate", "--json", cwd=iris)
    assert r.code == 0 and json.loads(r.out)["verdict"] == "pass"
    r = run_mlci("report", cwd=iris, env={"GITHUB_STEP_SUMMARY": str(iris / "summary.md")})
    assert r.code == 0
    assert (iris / "summary.md").read_text() == (iris / ".mlci" / "report.md").read_text() + "\n"


def test_train_refuses_failed_validation(iris: Path) -> None:
    (iris / "data" / "train.csv").write_text(
        (iris / "data" / "train.csv").read_text().replace("setosa", "setosaa", 1))
    assert run_mlci("validate", cwd=iris).code == 1
    r = run_mlci("train", cwd=iris)
    assert r.code == 1
    assert "refusing to train: data validation failed" in r.err
    assert versions(iris) == []
    r = run_mlci("train", "--skip-validation", cwd=iris)
    assert r.code == 0
    assert versions(iris) == [("iris", 1)]


def test_git_baseline_from_the_base_branch(iris: Path) -> None:
    """No registry champion on a fresh runner: the committed record of the base branch is used."""
    assert run_mlci("run", cwd=iris).code == 0
    (iris / "mlci-baseline.json").write_text((iris / ".mlci" / "baseline.json").read_text())
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "mlci-baseline.json"], cwd=iris, check=True)
    subprocess.run([*git, "commit", "-qm", "baseline"], cwd=iris, check=True)
    subprocess.run(["rm", "-rf", ".mlci"], cwd=iris, check=True)  # fresh runner: empty store
    r = run_mlci("run", "--baseline", "git:main", cwd=iris)
    assert r.code == 0, r.err
    e = json.loads((iris / ".mlci" / "evaluation.json").read_text())
    assert e["baseline"]["kind"] == "git"
    acc = e["comparison"]["accuracy"]
    assert acc["delta"] == pytest.approx(0.0) and acc["ci"] == [0.0, 0.0]
    assert "committed record mlci-baseline.json at main" in (iris / ".mlci/report.md").read_text()


def test_init_profiles_a_suite(tmp_path: Path, iris: Path) -> None:
    r = run_mlci("init", "--profile", "data/train.csv", "--target", "species", "--suite",
                 "new.json", cwd=iris)
    assert r.code == 0, r.err
    suite = json.loads((iris / "new.json").read_text())
    kinds = [e["type"] for e in suite["expectations"]]
    assert kinds.count("expect_column_kl_divergence_to_be_less_than") == 4
    assert "expect_table_columns_to_match_set" in kinds
    assert "expect_table_row_count_to_be_between" in kinds
    species = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    assert species[0]["kwargs"]["value_set"] == ["setosa", "versicolor", "virginica"]
    r = run_mlci("init", "--profile", "data/train.csv", "--target", "species", "--suite",
                 "new.json", cwd=iris)
    assert r.code == 2 and "exists" in r.err


def test_no_register_compares_with_the_champion_and_writes_no_version(iris: Path) -> None:
    """A pull request on a shared registry reads the champion but registers nothing."""
    assert run_mlci("run", cwd=iris).code == 0
    _set_champion(iris, 1)
    r = run_mlci("run", "--no-register", "--json", cwd=iris)
    assert r.code == 0, r.err
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["verdict"] == "pass" and out["heading"].startswith("## ✅ mlci: iris:")
    assert versions(iris) == [("iris", 1)]
    assert aliases(iris) == {"candidate": 1, "champion": 1}
    e = json.loads((iris / ".mlci/evaluation.json").read_text())
    assert e["baseline"]["kind"] == "registry" and e["model"]["version"] is None
    assert e["comparison"]["accuracy"]["ci"] is not None
    from mlflow import MlflowClient

    uri = f"sqlite:///{iris / '.mlci' / 'mlflow.db'}"
    run = MlflowClient(tracking_uri=uri).get_run(e["model"]["run_id"])
    assert run.data.tags["mlci.gate.passed"] == "true"


def test_trigger_reason_from_a_repository_dispatch_payload(iris: Path) -> None:
    event = iris / "event.json"
    event.write_text(json.dumps({"action": "mlci-retrain",
                                 "client_payload": {"reason": "drift in petal_length"}}))
    assert run_mlci("validate", cwd=iris).code == 0
    r = run_mlci("train", cwd=iris, env={"GITHUB_EVENT_NAME": "repository_dispatch",
                                         "GITHUB_EVENT_PATH": str(event)})
    assert r.code == 0, r.err
    tags = json.loads((iris / ".mlci/run.json").read_text())["tags"]
    assert tags["mlci.trigger"] == "repository_dispatch"
    assert tags["mlci.trigger.reason"] == "drift in petal_length"
