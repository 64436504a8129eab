"""The gateway's input and label checks, in process (the served behaviour is in
test_serve*.py against a real gateway)."""

from __future__ import annotations

import math

import pytest

from mlci.serve.inputs import (
    BOOL,
    NUMBER,
    STRING,
    BadInput,
    Column,
    InputSpec,
    labels_of,
    matrix,
    rows_of,
    spec_of,
)

MIXED = InputSpec([Column("age", NUMBER, optional=True), Column("city", STRING),
                   Column("vip", BOOL)], 3)


def test_schema_from_an_mlflow_signature() -> None:
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"], "c": [True, False]})
    spec = spec_of(None, infer_signature(df).inputs)
    assert spec.columns == [Column("a", NUMBER, True), Column("b", STRING, False),
                            Column("c", BOOL, False)]
    assert spec.width == 3 and not spec.numeric


@pytest.mark.parametrize("instance,msg", [
    ({"age": 3, "city": "x"}, "lacks feature 'vip'"),
    ({"age": "3", "city": "x", "vip": True}, "'age' must be a number, got str"),
    ({"age": True, "city": "x", "vip": True}, "'age' must be a number, got bool"),
    ({"age": math.inf, "city": "x", "vip": True}, "infinite"),
    ({"age": 3, "city": 4, "vip": True}, "'city' must be a string"),
    ({"age": 3, "city": None, "vip": True}, "'city' is missing"),
    ({"age": 3, "city": "x", "vip": 1}, "'vip' must be true or false"),
    ({"age": 3, "city": "x" * 1025, "vip": True}, "at most 1024"),
    ([3, "x", True], "send objects keyed by feature name"),
])
def test_bad_instances(instance, msg) -> None:
    with pytest.raises(BadInput, match=msg):
        rows_of([instance], MIXED)


def test_missing_values_where_the_model_takes_them() -> None:
    rows = rows_of([{"age": None, "city": "x", "vip": False},
                    {"age": math.nan, "city": "y", "vip": True}], MIXED)
    assert rows == [[None, "x", False], [None, "y", True]]
    df = matrix(rows, MIXED)
    assert df["age"].dtype == float and df["age"].isna().all()
    assert list(df["city"]) == ["x", "y"] and df["vip"].dtype == bool
    numeric = InputSpec(None, 2)
    with pytest.raises(BadInput, match="missing"):
        rows_of([[1.0, None]], numeric)
    numeric.missing_ok = True  # a model that imputes
    assert math.isnan(matrix(rows_of([[1.0, None]], numeric), numeric)[0, 1])


def test_labels() -> None:
    assert labels_of("3", 1, [1, 2, 3], False) == [3]
    assert labels_of(["a", "b"], 2, ["a", "b"], False) == ["a", "b"]
    for bad in ("x" * 5000, 4, None, {"a": 1}, [[1]]):
        with pytest.raises(BadInput):
            labels_of(bad, 1, [1, 2, 3], False)
    with pytest.raises(BadInput, match="2 labels for 1"):
        labels_of([1, 2], 1, [1, 2], False)
    assert labels_of(2.5, 1, None, True) == [2.5]
    for bad in ("2.5", math.nan, True):
        with pytest.raises(BadInput, match="finite number"):
            labels_of(bad, 1, None, True)


def test_a_short_token_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from mlci.cli import cli

    r = CliRunner().invoke(cli, ["serve"], env={"MLCI_FEEDBACK_TOKEN": "short"})
    assert r.exit_code == 2 and "at least 16 characters" in r.output
    assert "Traceback" not in r.output


def test_a_token_on_the_command_line_is_refused(tmp_path) -> None:
    """Anyone on the host reads a process's arguments (ps, /proc/PID/cmdline): a token
    there is refused, pointing at the environment and the file options."""
    from click.testing import CliRunner

    from mlci.cli import cli

    secret = "s3cret-token-0123456789"
    for flag in ("--feedback-token", "--predict-token"):
        r = CliRunner().invoke(cli, ["serve", flag, secret])
        assert r.exit_code == 2 and "process list" in r.output and f"{flag}-file" in r.output
        assert secret not in r.output and "Traceback" not in r.output
    short = tmp_path / "short"
    short.write_text("abc\n")
    r = CliRunner().invoke(cli, ["serve", "--predict-token-file", str(short)])
    assert r.exit_code == 2 and "at least 16 characters" in r.output
    r = CliRunner().invoke(cli, ["serve", "--feedback-token-file", str(tmp_path / "none")])
    assert r.exit_code == 2 and "cannot read" in r.output
