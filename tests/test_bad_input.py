"""Bad input: a distinct exit code, a one-line message, nothing registered, nothing lost.

Each case starts from a project that already has a registered model and a report, so the
test can also check that no earlier `.mlci/` file is overwritten or left half-written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_project, run_mlci


def _edit_csv(rel: str, fn: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        p.write_text("\n".join(fn(p.read_text().splitlines())) + "\n")
    return apply


def _drop_column(name: str) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        i = lines[0].split(",").index(name)
        return [",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines]
    return fn


def _set_cell(row: int, col: int, value: str) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        cells = lines[row].split(",")
        cells[col] = value
        lines[row] = ",".join(cells)
        return lines
    return fn


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(data)


def _config(old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / "mlci.yaml"
        p.write_text(p.read_text().replace(old, new))
    return apply


def _both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for edit in edits:
            edit(root)
    return apply


def _entrypoint_file(source: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / "build.py").write_text(source)
        _config("  estimator: sklearn.ensemble.RandomForestClassifier\n",
                "  entrypoint: build.py:build\n")(root)
    return apply


_entrypoint_that_raises = _entrypoint_file(
    "def build(x, y):\n    raise ValueError('learning rate must be positive')\n")


CASES = {
    # name: (edit, command, exit code, message on stderr)
    "missing-data-file": (lambda r: (r / "data/train.csv").unlink(), ["run"], 2,
                          "mlci.yaml: data.train: file not found: data/train.csv"),
    "empty-csv": (_write("data/train.csv", b""), ["run"], 2, "data/train.csv: file is empty"),
    "header-only": (_write("data/train.csv",
                           b"sepal_length,sepal_width,petal_length,petal_width,species\n"),
                    ["run"], 2, "data/train.csv: header only, no rows"),
    "target-absent": (_edit_csv("data/train.csv", _drop_column("species")), ["run"], 1,
                      "data validation failed"),
    "target-absent-unvalidated": (_edit_csv("data/train.csv", _drop_column("species")),
                                  ["train", "--skip-validation"], 2,
                                  "data/train.csv: target column 'species' is absent"),
    "wrong-type": (_edit_csv("data/train.csv", _set_cell(3, 1, "wide")), ["run"], 1,
                   "data validation failed"),
    "wrong-type-without-preprocessing": (_both(_edit_csv("data/train.csv",
                                                         _set_cell(3, 1, "wide")),
                                               _config("model:", "preprocess: none\nmodel:")),
                                         ["train", "--skip-validation"], 2,
                                         "(preprocess: none passes the columns as they are)"),
    "nan-in-target-unvalidated": (_edit_csv("data/train.csv", _set_cell(5, 4, "")),
                                  ["train", "--skip-validation"], 2,
                                  "data/train.csv: target 'species' has 1 missing value(s)"),
    "nan-in-features": (_edit_csv("data/train.csv", _set_cell(5, 2, "")), ["run"], 1,
                        "data validation failed"),
    "extra-column": (_edit_csv("data/train.csv", lambda ls: [ls[0] + ",extra"] +
                               [line + ",1.0" for line in ls[1:]]), ["run"], 1,
                     "data validation failed"),
    "extra-column-unvalidated": (_edit_csv("data/train.csv", lambda ls: [ls[0] + ",extra"] +
                                           [line + ",1.0" for line in ls[1:]]),
                                 ["train", "--skip-validation"], 2,
                                 "data/golden.csv: lacks feature column 'extra'"),
    "missing-column": (_edit_csv("data/golden.csv", _drop_column("petal_width")), ["run"], 1,
                       "data validation failed"),
    "non-utf8": (_write("data/train.csv", b"sepal_length,species\n5.1,\xe9t\xe9\n"), ["run"], 2,
                 "data/train.csv: not valid UTF-8"),
    "malformed-config": (_write("mlci.yaml", b"name: iris\ndata: {train: [\n"), ["run"], 2,
                         "mlci.yaml: malformed YAML"),
    "estimator-does-not-import": (_config("sklearn.ensemble.RandomForestClassifier",
                                          "sklearn.ensembl.RandomForestClassifier"), ["run"], 2,
                                  "model.estimator 'sklearn.ensembl.RandomForestClassifier' "
                                  "does not import"),
    # the config error is reported, not the data error that validation would find first
    "unknown-estimator-and-invalid-data": (
        _both(_config("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForrest"),
              _edit_csv("data/train.csv", _set_cell(3, 1, "wide"))), ["run"], 2,
        "model.estimator 'sklearn.ensemble.RandomForrest': sklearn.ensemble defines no "
        "'RandomForrest'"),
    "rejected-params": (_config("n_estimators: 200", "n_trees: 200"), ["validate"], 2,
                        "model.params: sklearn.ensemble.RandomForestClassifier rejected them"),
    "gate-metric-of-other-task": (_config("RandomForestClassifier", "RandomForestRegressor"),
                                  ["validate"], 2, "gate.min.accuracy: a regression model is "
                                  "not scored by accuracy"),
    "entrypoint-without-build": (_entrypoint_file("def fit(x, y):\n    pass\n"), ["run"], 2,
                                 "build.py defines no function 'build' (define `def build("),
    "params-yaml-key-missing": (_both(_write("params.yaml", b"train: {trees: 10}\n"),
                                      _config("n_estimators: 200",
                                              "n_estimators: '${train.n_estimators}'")),
                                ["run"], 2, "key 'train.n_estimators' not found"),
    "entrypoint-raises": (_entrypoint_that_raises, ["run"], 2,
                          "entrypoint build.py:build raised ValueError: learning rate must be "
                          "positive"),
}


@pytest.fixture(scope="module")
def baseline_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("bad") / "iris")
    assert run_mlci("run", cwd=root).code == 0
    return root


def _snapshot(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*")) if p.is_file() and p.suffix in (".json", ".md")}


# Run as real processes too: what the console script prints on the real stderr (logging
# handlers, interpreter start-up), one input error and one failed validation.
IN_A_PROCESS = ("missing-column", "entrypoint-raises")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, baseline_project: Path, tmp_path: Path) -> None:
    edit, args, code, message = CASES[case]
    root = tmp_path / "iris"
    shutil.copytree(baseline_project, root)
    before = _snapshot(root / ".mlci")
    edit(root)
    # the per-stage progress lines are status, not the error (tests/test_progress.py checks
    # them), so they are off here
    r = run_mlci(*args, cwd=root, process=case in IN_A_PROCESS, env={"MLCI_PROGRESS": "off"})
    assert r.code == code, (r.out, r.err)
    assert "Traceback" not in r.err + r.out
    err_lines = r.err.strip().splitlines()
    assert len(err_lines) == 1, r.err
    assert message in err_lines[0], err_lines[0]
    with sqlite3.connect(root / ".mlci/mlflow.db") as con:
        assert con.execute("select count(*) from model_versions").fetchone()[0] == 1
        assert con.execute("select alias, version from registered_model_aliases").fetchall() == [
            ("candidate", 1)]
    after = _snapshot(root / ".mlci")
    for name in after:  # nothing half-written
        p = root / ".mlci" / name
        if name.endswith(".json"):
            json.loads(p.read_text())
    assert not list((root / ".mlci").glob(".*.tmp"))
    if code == 2:  # an input error loses nothing: the earlier records stay as they were
        for name in ("run.json", "evaluation.json", "report.md", "metrics.json"):
            assert after[name] == before[name], name
