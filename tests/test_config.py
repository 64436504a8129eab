"""mlci.yaml: every bad config is one line naming the file and key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_mlci

GOOD = (Path(__file__).resolve().parents[1] / "examples/iris/mlci.yaml").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "colour: blue\n", "mlci.yaml: colour: unknown key"),
        (GOOD.replace("  target: species\n", "  target: species\n  tagret: x\n"),
         "mlci.yaml: data.tagret: unknown key"),
        (GOOD.replace("{accuracy: 0.90}", "{accuracy: high}"),
         "mlci.yaml: gate.min.accuracy: Input should be a valid number"),
        (GOOD.replace("{accuracy: 0.90}", "{acurracy: 0.9}"),
         "mlci.yaml: gate.min: unknown metric"),
        (GOOD.replace("  target: species\n", ""),
         "mlci.yaml: data.target: required key is missing"),
        ("name: iris\ndata: [1, 2\n", "mlci.yaml: malformed YAML (line 3, column 1)"),
        ("- just\n- a list\n", "mlci.yaml: expected a mapping at the top level"),
        (GOOD.replace("data/train.csv", "data/nope.csv"),
         "mlci.yaml: data.train: file not found: data/nope.csv"),
        (GOOD.replace("  estimator: sklearn.ensemble.RandomForestClassifier\n", ""),
         "mlci.yaml: model: give exactly one of model.estimator and model.entrypoint"),
    ],
    ids=["unknown-top", "unknown-nested", "wrong-type", "unknown-metric", "missing-key",
         "malformed", "not-mapping", "missing-file", "no-model"],
)
def test_bad_config(iris: Path, text: str, expected: str) -> None:
    (iris / "mlci.yaml").write_text(text)
    for cmd in ("validate", "train", "evaluate", "run"):
        r = run_mlci(cmd, cwd=iris)
        assert r.code == 2, (cmd, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1, r.err
        assert lines[0].startswith("mlci: error: " + expected), lines[0]
    assert not (iris / ".mlci").exists()


def test_config_not_utf8(iris: Path) -> None:
    (iris / "mlci.yaml").write_bytes(b"name: \xff\xfe\n")
    r = run_mlci("run", cwd=iris)
    assert r.code == 2
    assert r.err.strip() == "mlci: error: mlci.yaml: not valid UTF-8"


def test_loader_resolves_paths_against_the_config_folder(iris: Path, tmp_path: Path) -> None:
    from mlci.config import load_config

    cfg = load_config(iris / "mlci.yaml")
    assert cfg.resolve(cfg.data.train) == iris / "data/train.csv"
    assert cfg.gate.min == {"accuracy": 0.9}
    assert cfg.gate.bootstrap == 1000
