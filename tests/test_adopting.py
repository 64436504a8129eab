"""Adopting mlci in an existing project: the project's own estimator, package, dependencies,
task, class balance and golden set, each from `mlci init` to a passing code trigger."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Result, run_mlci

# an estimator that, like xgboost's, takes only the label codes 0..K-1
CODES_ONLY = '''
import numpy as np
from sklearn.linear_model import LogisticRegression


class CodesOnly(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        labels = np.unique(np.asarray(y))
        if labels.dtype.kind not in "iu" or labels.tolist() != list(range(len(labels))):
            raise ValueError(f"Invalid classes inferred from unique values of y. "
                             f"Expected: {list(range(len(labels)))}, got {labels}")
        return super().fit(X, y, sample_weight=sample_weight)
'''


def binary_table(n: int = 300, positive_share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Two informative numbers and a Yes/No label with the given share of 'Yes'."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < positive_share
    x1 = rng.normal(size=n) + 1.5 * y
    x2 = rng.normal(size=n) - 1.0 * y
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4),
                         "y": np.where(y, "Yes", "No")})


def project(root: Path, df: pd.DataFrame, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    df.to_csv(root / "data/table.csv", index=False)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def mlci(root: Path, *args: str) -> Result:
    return run_mlci(*args, cwd=root, env={"MLCI_NO_DOCS": "1"})


def set_model(root: Path, model: str) -> None:
    """Replace the model section `mlci init` wrote (what a user does to bring their own)."""
    text = (root / "mlci.yaml").read_text()
    head, _, tail = text.partition("model:\n")
    rest = tail.split("gate:", 1)[1]
    (root / "mlci.yaml").write_text(f"{head}{model}gate:{rest}")


def evaluation(root: Path) -> dict:
    return json.loads((root / ".mlci/evaluation.json").read_text())


def test_an_estimator_that_takes_only_codes_sees_codes_and_everyone_else_the_labels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path / "p", binary_table(), {"strict_model.py": CODES_ONLY})
    r = mlci(root, "init", "--profile", "data/table.csv", "--target", "y")
    assert r.code == 0, r.err
    set_model(root, "model:\n  estimator: strict_model.CodesOnly\n")
    r = mlci(root, "run")
    assert r.code == 0, r.out + r.err
    ev = evaluation(root)
    assert ev["classes"] == ["No", "Yes"]
    assert {row["class"] for row in ev["per_class"]} == {"No", "Yes"}
    assert ev["metrics"]["accuracy"] > 0.7
    from mlci.registry import models

    run = json.loads((root / ".mlci/run.json").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", run["tracking_uri"])
    model = models.load(run["artifact_uri"])  # the logged model answers in the labels
    golden = pd.read_csv(root / "data/table-golden.csv")
    pred = model.estimator.predict(model.frame(golden.drop(columns=["y"]), "golden"))
    assert set(pred.tolist()) <= {"No", "Yes"} and len(set(pred.tolist())) == 2
    assert list(model.estimator.classes_) == ["No", "Yes"]
    assert type(model.estimator.steps[-1][1]).__name__ == "EncodedLabels"
