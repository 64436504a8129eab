"""Great Expectations validation details: row-count bounds, summaries, suite errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlci.data.profile import profile_suite
from mlci.data.validate import run_suite
from mlci.errors import MlciError


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": [float(i % 7) for i in range(n)], "y": ["a", "b"] * (n // 2)})


def test_row_count_bounds_apply_to_training_data_not_to_the_golden_snapshot() -> None:
    suite = profile_suite(_frame(1000), "y", name="s")
    res = run_suite({"train": _frame(20), "golden": _frame(20)}, suite, None, Path("s.json"))
    failed_train = [r["expectation_config"]["type"] for r in res["train"]["results"]
                    if not r["success"]]
    assert failed_train == ["expect_table_row_count_to_be_between"]
    assert res["golden"]["success"] is True


def test_profile_covers_schema_nulls_ranges_sets_and_distributions() -> None:
    df = _frame(200)
    df.loc[3, "x"] = None
    suite = profile_suite(df, "y", name="s")
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    nulls = {e["kwargs"]["column"]: e["kwargs"].get("mostly") for e in suite["expectations"]
             if e["type"] == "expect_column_values_to_not_be_null"}
    assert nulls["y"] is None  # the target: no gaps at all
    assert 0.9 < nulls["x"] < 1 - 0.005  # x has 0.5 % gaps: a tolerance above that
    assert ("expect_column_kl_divergence_to_be_less_than", "x") in kinds
    assert ("expect_column_values_to_be_in_set", "y") in kinds
    between = next(e for e in suite["expectations"]
                   if e["type"] == "expect_column_values_to_be_between")
    assert between["kwargs"]["min_value"] < 0 < 6 < between["kwargs"]["max_value"]
    json.dumps(suite)  # plain JSON, reviewable in the user's repo


def test_shifted_distribution_fails_the_kl_check() -> None:
    df = pd.DataFrame({"x": [float(i % 50) / 10 for i in range(500)], "y": ["a"] * 500})
    suite = profile_suite(df, "y", name="s")
    shifted = df.assign(x=df["x"] * 0.2 + 4.0)  # squeezed into the top of the range
    res = run_suite({"train": shifted}, suite, None, Path("s.json"))["train"]
    failed = {r["expectation_config"]["type"] for r in res["results"] if not r["success"]}
    assert "expect_column_kl_divergence_to_be_less_than" in failed


def test_invalid_suite_is_an_input_error() -> None:
    bad = {"name": "s", "expectations": [{"type": "expect_no_such_thing", "kwargs": {}}]}
    with pytest.raises(MlciError, match="invalid expectation suite"):
        run_suite({"train": _frame(10)}, bad, None, Path("s.json"))


def test_a_profiled_category_column_passes_its_own_suite() -> None:
    """A categorical dtype (Parquet, or a frame the user built) was profiled as
    `of_type: category`, which GX never passes (it sees CategoricalDtypeType): the column's
    value set is its check instead."""
    df = _frame(200)
    df["colour"] = pd.Categorical(["red", "green", "blue", "red"] * 50)
    suite = profile_suite(df, "y", name="s")
    on_colour = {e["type"] for e in suite["expectations"]
                 if e["kwargs"].get("column") == "colour"}
    assert "expect_column_values_to_be_in_set" in on_colour
    for engine in ("fast", "gx"):
        res = run_suite({"train": df, "golden": df.head(40)}, suite, None, Path("s.json"),
                        engine=engine)
        failed = [r["expectation_config"]["type"] for r in res["train"]["results"]
                  if not r["success"]]
        assert failed == [] and res["golden"]["success"] is True, (engine, failed)
