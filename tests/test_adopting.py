"""Adopting mlci in an existing project: the project's own estimator, package, dependencies,
task, class balance and golden set, each from `mlci init` to a passing code trigger."""

from __future__ import annotations

import json
import re
import subprocess
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


OWN_PACKAGE = {
    "src/acme/__init__.py": "",
    "src/acme/features.py": '''
        import numpy as np
        from sklearn.base import BaseEstimator, TransformerMixin


        class AddRatio(BaseEstimator, TransformerMixin):
            """The project's own feature step, imported by its entrypoint."""

            def fit(self, x, y=None):
                return self

            def transform(self, x):
                x = x.copy()
                x["ratio"] = x["x1"] / (np.abs(x["x2"]) + 1.0)
                return x
        ''',
    "train.py": '''
        from acme.features import AddRatio
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline


        def build(x, y, params=None, seed=0):
            return make_pipeline(AddRatio(), LogisticRegression()).fit(x, y)
        ''',
}


def forget_project(root: Path) -> None:
    """What a new process starts with: neither the project's modules nor its folders."""
    import sys

    for name in [n for n in sys.modules if n == "acme" or n.startswith("acme.")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(str(root.resolve()))]


def test_the_projects_own_package_imports_in_every_stage_that_loads_the_model(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    root = project(tmp_path / "p", binary_table(), OWN_PACKAGE)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    assert mlci(root, "init", "--profile", "data/table.csv", "--target", "y").code == 0
    set_model(root, "model:\n  entrypoint: train.py:build\n")
    forget_project(root)
    r = mlci(root, "run")
    assert r.code == 0, r.out + r.err
    assert evaluation(root)["verdict"] == "pass"
    forget_project(root)
    r = mlci(root, "promote", "--to", "champion")
    assert r.code == 0, r.out + r.err
    # the gateway, in a process of its own, as `mlci serve` starts it in the repository
    script = textwrap.dedent('''
        from pathlib import Path
        import pandas as pd
        from mlci.commands.serve import _model_name
        from mlci.serve.app import Gateway
        _, name = _model_name(Path("mlci.yaml"), None)
        gw = Gateway(name, log_path=Path(".mlci/p.db"), state_file=Path(".mlci/none.json"))
        r = gw.desired()
        gw.apply(r)
        model = gw.active[1][r.champion].model
        print(type(model.steps[0][1]).__module__, model.predict(pd.DataFrame(
            {"x1": [3.0, -3.0], "x2": [-2.0, 2.0]})).tolist())
        ''')
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlci/mlflow.db'}",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    p = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[0] == "acme.features"
    assert "['Yes', 'No']" in p.stdout


def quality_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A wine-like score: integers 3..8 that grow with the features."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    q = np.clip(np.round(5.5 + 1.2 * x1 - 0.6 * x2 + rng.normal(scale=0.4, size=n)), 3, 8)
    return pd.DataFrame({"alcohol": x1.round(4), "acidity": x2.round(4),
                         "quality": q.astype(int)})


def test_task_rule() -> None:
    from mlci.modelspec import infer_task

    cases = {
        "labels": (pd.Series(["a", "b", "a"]), "classification"),
        "booleans": (pd.Series([True, False, True]), "classification"),
        "fractions": (pd.Series([0.5, 1.0, 2.25]), "regression"),
        "codes 0..K-1": (pd.Series([0, 1, 2, 1, 0] * 20), "classification"),
        "codes 1..K": (pd.Series([1, 2, 3, 4] * 20), "classification"),
        "two values": (pd.Series([-1, 1] * 20), "classification"),
        "scale 3..8": (quality_table()["quality"], "regression"),
        "codes with gaps": (pd.Series([10, 20, 40] * 20), "classification"),
        "many integers": (pd.Series(range(300)), "regression"),
    }
    for name, (y, task) in cases.items():
        got, reason = infer_task(y)
        assert got == task, (name, reason)
        assert reason


def test_an_integer_score_becomes_a_regression_and_task_overrides_it(tmp_path: Path) -> None:
    root = project(tmp_path / "wine", quality_table())
    r = mlci(root, "init", "--profile", "data/table.csv", "--target", "quality")
    assert r.code == 0, r.err
    assert "task: regression: the target's 6 integers 3..8 form an ordered scale" in r.out
    assert "task: regression" in (root / "mlci.yaml").read_text()
    r = mlci(root, "run")
    assert r.code == 0, r.out + r.err
    ev = evaluation(root)
    assert ev["task"] == "regression" and ev["metrics"]["r2"] > 0.5

    other = project(tmp_path / "wine-classes", quality_table())
    r = mlci(other, "init", "--profile", "data/table.csv", "--target", "quality",
             "--task", "classification")
    assert r.code == 0, r.err
    assert "task: classification (--task)" in r.out
    assert "RandomForestClassifier" in (other / "mlci.yaml").read_text()
    r = mlci(other, "init", "--profile", "data/table.csv", "--target", "quality", "--task",
             "sideways", "--force")
    assert r.code == 2 and "sideways" in r.err


def test_positive_class_metrics_match_sklearn_and_resample() -> None:
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

    from mlci.stats import metrics as M

    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.15).astype(int)
    score = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1).round(2)  # ties on purpose
    pred = (score > 0.5).astype(int)
    pr = M.Predictions(y, pred, np.c_[1 - score, score], [0, 1],
                       positive=M.positive_index([0, 1], y))
    got = M.metrics_of("classification", pr)
    assert got["precision"] == pytest.approx(precision_score(y, pred))
    assert got["recall"] == pytest.approx(recall_score(y, pred))
    assert got["f1"] == pytest.approx(f1_score(y, pred))
    assert got["average_precision"] == pytest.approx(average_precision_score(y, score))
    # the bootstrap resamples them like every other metric: a candidate against itself
    ci = M.paired_bootstrap("classification", pr, pr, 200, 0.95)
    assert ci["f1"] == (0.0, 0.0) and ci["average_precision"] == (0.0, 0.0)
    # the positive class: configured, else True/1, else the rarer one
    assert M.positive_index(["No", "Yes"], np.array([0, 0, 0, 1])) == 1
    assert M.positive_index(["No", "Yes"], np.array([1, 1, 1, 0])) == 0
    assert M.positive_index(["No", "Yes"], np.array([1, 1, 1, 0]), "Yes") == 1
    assert M.positive_index(["a", "b", "c"], np.array([0, 1, 2])) is None
    with pytest.raises(ValueError, match="positive_label 'Maybe'"):
        M.positive_index(["No", "Yes"], np.array([0, 1]), "Maybe")


def test_an_imbalanced_target_is_gated_on_the_f1_of_its_rare_class(tmp_path: Path) -> None:
    root = project(tmp_path / "p", binary_table(n=400, positive_share=0.15, seed=3))
    r = mlci(root, "init", "--profile", "data/table.csv", "--target", "y")
    assert r.code == 0, r.err
    text = (root / "mlci.yaml").read_text()
    assert 'positive_label: "Yes"' in text and "min: {f1: 0." in text
    r = mlci(root, "run")
    assert r.code == 0, r.out + r.err
    ev = evaluation(root)
    assert ev["positive_label"] == "Yes"
    yes = next(row for row in ev["per_class"] if row["class"] == "Yes")
    assert ev["metrics"]["f1"] == pytest.approx(yes["f1"], abs=1e-4)
    assert [c["metric"] for c in ev["checks"] if c["kind"] == "floor"] == ["f1"]
    report = (root / ".mlci/report.md").read_text()
    assert "<details open><summary>Per-class metrics" in report and "| Yes (positive) |" in report
    # a floor the model cannot reach fails the gate on f1, not on accuracy
    (root / "mlci.yaml").write_text(re.sub(r"min: \{f1: [0-9.]+\}",
                                           "min: {accuracy: 0.5, f1: 0.99}", text))
    r = mlci(root, "evaluate")
    assert r.code == 1 and "f1 >= 0.99" in evaluation(root)["failed"]


def test_positive_label_errors_are_config_errors(tmp_path: Path) -> None:
    root = project(tmp_path / "p", binary_table(n=100))
    assert mlci(root, "init", "--profile", "data/table.csv", "--target", "y").code == 0
    text = (root / "mlci.yaml").read_text()
    (root / "mlci.yaml").write_text(text.replace('  target: "y"\n',
                                                 '  target: "y"\n  positive_label: Maybe\n'))
    r = mlci(root, "train", "--skip-validation")
    assert r.code == 2 and "data.positive_label 'Maybe' is not a value of 'y'" in r.err
    (root / "mlci.yaml").write_text(text.replace("min: {accuracy:", "min: {f2:"))
    r = mlci(root, "train", "--skip-validation")
    assert r.code == 2 and "unknown metric 'f2'" in r.err


def test_init_keeps_identical_rows_on_one_side_of_the_split() -> None:
    from mlci.data.leakage import overlap
    from mlci.data.starter import split

    df = quality_table(200)
    df = pd.concat([df, df.sample(80, random_state=1)], ignore_index=True)  # 80 repeats
    train, golden = split(df, "quality", "regression", 0.25, 0)
    assert len(train) + len(golden) == len(df)
    assert overlap(train, golden).rows == 0
    assert 0.15 < len(golden) / len(df) < 0.35


def test_golden_rows_in_training_fail_validation_and_a_data_update(tmp_path: Path) -> None:
    root = project(tmp_path / "p", binary_table(n=200))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    assert mlci(root, "init", "--profile", "data/table.csv", "--target", "y").code == 0
    assert mlci(root, "validate").code == 0
    report = json.loads((root / ".mlci/validation.json").read_text())
    leak = report["datasets"]["golden"]["leakage"]
    assert leak == {"rows": 0, "share": 0.0, "allowed": 0.01}

    # a data update fed the golden file is refused, and training data stays as it was
    train_before = (root / "data/table-train.csv").read_bytes()
    r = mlci(root, "data", "update", "--source", "data/table-golden.csv", "--no-push")
    assert r.code == 1, r.out + r.err
    assert "rows (100.0%) identical to rows of the golden set" in r.err
    assert (root / "data/table-train.csv").read_bytes() == train_before

    # golden rows copied into training by hand: validate names the leak and fails
    train = pd.read_csv(root / "data/table-train.csv")
    golden = pd.read_csv(root / "data/table-golden.csv")
    pd.concat([train, golden.head(5)]).to_csv(root / "data/table-train.csv", index=False)
    r = mlci(root, "validate")
    assert r.code == 1
    assert f"5 of {len(golden)} golden rows (12.5%) are identical to training rows" in r.out
    # a project that accepts some overlap says so in its config
    with (root / "mlci.yaml").open("a") as fh:
        fh.write("validation: {max_golden_overlap: 0.2}\n")
    assert mlci(root, "validate").code == 0


def test_reinit_with_force_starts_over_consistently(tmp_path: Path) -> None:
    root = project(tmp_path / "p", binary_table(n=200))
    assert mlci(root, "init", "--profile", "data/table.csv", "--target", "y",
                "--name", "credit").code == 0
    v2 = binary_table(n=240, seed=5).assign(x3=np.arange(240) % 7)
    v2.to_csv(root / "data/v2.csv", index=False)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    r = mlci(root, "init", "--profile", "data/v2.csv", "--target", "y")
    assert r.code == 2 and "exists; pass --force" in r.err
    r = mlci(root, "init", "--profile", "data/v2.csv", "--target", "nope", "--force")
    assert r.code == 2 and "target column 'nope' is absent" in r.err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before

    r = mlci(root, "init", "--profile", "data/v2.csv", "--target", "y", "--force")
    assert r.code == 0, r.err
    cfg = (root / "mlci.yaml").read_text()
    assert 'name: "credit"' in cfg and '"data/v2-train.csv"' in cfg and "table-" not in cfg
    assert not (root / "data/table-train.csv").exists()
    assert not (root / "data/table-golden.csv").exists()
    assert "removed" in r.out
    suite = json.loads((root / "expectations/train.json").read_text())
    assert "x3" in json.dumps(suite)
    assert mlci(root, "validate").code == 0

    # profiling the config's own training file refreshes the suite and keeps the config
    r = mlci(root, "init", "--profile", "data/v2-train.csv", "--target", "y", "--force")
    assert r.code == 0 and "kept" in r.out
    assert (root / "mlci.yaml").read_text() == cfg
    assert not (root / "data/v2-train-train.csv").exists()


@pytest.mark.e2e  # builds a venv (seeded from this one: no download)
def test_install_puts_the_projects_requirements_in_the_sealed_venv(tmp_path: Path) -> None:
    import os
    import shutil
    import sys

    repo = Path(__file__).resolve().parents[1]
    checkout = tmp_path / "mlci-actions"
    shutil.copytree(repo, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".mlci", "__pycache__", "*.egg-info", "build", "examples", "tests",
        "bench", ".ruff_cache", ".pytest_cache"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "requirements.txt").write_text("lightgbm\n")
    (user / "pyproject.toml").write_text(
        '[project]\nname = "credit"\nversion = "0"\ndependencies = []\n'
        '[project.optional-dependencies]\ntrain = ["lightgbm"]\n')
    venv = tmp_path / "venv"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLCI_", "GITHUB_"))}
    env = {**base, "MLCI_ACTION_VENV": str(venv), "MLCI_ACTION_SEED_VENV": sys.prefix,
           "MLCI_ACTION_PYTHON": sys.executable}
    script = str(checkout / "scripts/install.sh")

    def install(*args: str, requirements: str | None = None) -> subprocess.CompletedProcess:
        extra = {"MLCI_ACTION_REQUIREMENTS": requirements} if requirements else {}
        return subprocess.run(["bash", script, *args], cwd=user, env={**env, **extra},
                              capture_output=True, text=True, timeout=600)

    ids = {spec: install("--version", requirements=spec).stdout.strip()
           for spec in ("requirements.txt", "pyproject.toml[train]")}
    plain = install("--version").stdout.strip()
    assert len({plain, *ids.values()}) == 3 and all(i.startswith(plain + "+req-")
                                                    for i in ids.values())
    bad = install("--version", requirements="pyproject.toml[gpu]")
    assert bad.returncode == 0  # the digest needs the file only; the extra is read at install
    p = install(requirements="pyproject.toml[gpu]")
    assert p.returncode == 2
    assert "no optional-dependencies extra 'gpu' (has: train)" in p.stderr

    p = install(requirements="pyproject.toml[train]")
    assert p.returncode == 0, p.stderr
    assert "installing the project's requirements (pyproject.toml[train])" in p.stderr
    assert (venv / ".mlci-build").read_text().strip() == ids["pyproject.toml[train]"]
    # a later action that names no requirements keeps the venv, and its seal, as built
    again = install()
    assert again.returncode == 0 and "already installed" in again.stderr, again.stderr
    py = again.stdout.strip()
    assert subprocess.run([py, "-c", "import lightgbm"], capture_output=True).returncode == 0


def test_the_logged_model_requires_the_packages_its_pickle_imports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lightgbm is no dependency of mlci: the model's requirements must name it."""
    from importlib.metadata import version

    from mlci.registry import models

    root = project(tmp_path / "p", binary_table(n=120))
    assert mlci(root, "init", "--profile", "data/table.csv", "--target", "y").code == 0
    set_model(root, "model:\n  estimator: lightgbm.LGBMClassifier\n"
                    "  params: {n_estimators: 10, verbose: -1}\n")
    r = mlci(root, "train", "--skip-validation")
    assert r.code == 0, r.out + r.err
    run = json.loads((root / ".mlci/run.json").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", run["tracking_uri"])
    folder = models.download(run["artifact_uri"], tmp_path / "dl")
    reqs = (folder / "requirements.txt").read_text().split()
    assert f"lightgbm=={version('lightgbm')}" in reqs
    assert f"scikit-learn=={version('scikit-learn')}" in reqs
    assert not any(r.startswith("mlci") for r in reqs)


PIPELINE = """\
# the project's own pipeline: mlci must leave this text as it is
stages:
  prepare:   # split the raw extract
    cmd: {python} prepare.py
    deps:
      - prepare.py
      - data/raw.csv
    outs:
      - data/train.csv
      - data/golden.csv
  featurize:
    cmd: {python} -c "print('features')"
    deps: [data/train.csv]
"""
PREPARE = """
import pandas as pd

df = pd.read_csv("data/raw.csv")
df.iloc[: int(len(df) * 0.8)].to_csv("data/train.csv", index=False)
df.iloc[int(len(df) * 0.8):].to_csv("data/golden.csv", index=False)
"""


@pytest.mark.e2e  # runs dvc
def test_an_existing_dvc_pipeline_is_extended_pulled_and_kept(tmp_path: Path) -> None:
    import sys

    dvc = str(Path(sys.executable).with_name("dvc"))
    env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True,
                              env={"PATH": env_path, "HOME": str(tmp_path)})

    root = tmp_path / "credit"
    root.mkdir()
    binary_table(n=200).to_csv(root / "data.csv", index=False)
    (root / "data").mkdir()
    (root / "data.csv").rename(root / "data/raw.csv")
    (root / "prepare.py").write_text(PREPARE)
    pipeline = PIPELINE.format(python=sys.executable)
    (root / "dvc.yaml").write_text(pipeline)
    run("git", "init", "-q", "-b", "main")
    run(dvc, "init", "-q")
    run(dvc, "remote", "add", "-d", "team", str(tmp_path / "team-remote"))
    run(dvc, "repro", "-q")
    run(dvc, "push", "-q")

    r = mlci(root, "init", "--profile", "data/train.csv", "--target", "y", "--golden",
             "data/golden.csv", "--dvc-pipeline")
    assert r.code == 0, r.out + r.err
    assert "added stages validate, train, evaluate to" in r.out
    text = (root / "dvc.yaml").read_text()
    assert text.startswith(pipeline)  # the project's stages, comments and order untouched
    import yaml

    stages = yaml.safe_load(text)["stages"]
    assert list(stages) == ["prepare", "featurize", "validate", "train", "evaluate"]
    # again: mlci's own stages need --force, and are then rewritten in place, once
    before = (root / "dvc.yaml").read_text()
    r = mlci(root, "init", "--dvc-pipeline")
    assert r.code == 2 and "already has mlci's stage 'validate'" in r.err
    assert (root / "dvc.yaml").read_text() == before
    assert mlci(root, "init", "--dvc-pipeline", "--force").code == 0
    assert (root / "dvc.yaml").read_text() == before

    # a fresh checkout: the stage outputs are absent, and dvc.lock says how to pull them
    (root / "data/train.csv").unlink()
    (root / "data/golden.csv").unlink()
    r = mlci(root, "validate")
    assert r.code == 0, r.out + r.err
    assert (root / "data/train.csv").is_file() and (root / "data/golden.csv").is_file()

    # data init: stage outputs stay the pipeline's, and the team's default remote stays
    r = mlci(root, "data", "init", "--remote", str(tmp_path / "other"), "--remote-name",
             "mine", "--no-push")
    assert r.code == 0, r.out + r.err
    assert "output of DVC stage 'prepare'" in r.out
    assert run(dvc, "remote", "default").stdout.strip() == "team"
    assert not (root / "data/train.csv.dvc").exists()

    # a data update of a stage's output is refused with the reason, nothing written
    r = mlci(root, "data", "update", "--source", "data/raw.csv", "--no-push")
    assert r.code == 2
    assert "is the output of DVC stage 'prepare'" in r.err and "data/raw.csv" in r.err


def test_the_one_step_action_passes_no_docs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlci.gha.actions import ACTIONS

    monkeypatch.delenv("MLCI_NO_DOCS", raising=False)
    assert "--no-docs" not in ACTIONS["run"].argv()
    monkeypatch.setenv("MLCI_NO_DOCS", "true")
    assert "--no-docs" in ACTIONS["run"].argv()
    monkeypatch.setenv("MLCI_NO_DOCS", "false")
    assert "--no-docs" not in ACTIONS["run"].argv()
