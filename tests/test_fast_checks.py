"""The vectorised checks against Great Expectations itself, field by field.

`run_suite` evaluates the expectations `mlci.data.fast_checks` covers in pandas and sends the
rest to GX; `run_suite(engine="gx")` sends everything to GX. On every frame below, both give
the same result dicts: success, observed values, counts, percentages, missing counts, examples
and their counts and index labels, KL partitions, statistics, the order of the results (GX
groups them by column and lists the ones it could not compute first) and the meta, apart from
run times, random ids and GX's md5 fingerprint of the frame (which the fast path skips).
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlci.data.fast_checks import SUPPORTED, FrameChecks
from mlci.data.profile import ISO_DATE, profile_suite
from mlci.data.validate import run_suite

REPO = Path(__file__).resolve().parents[1]
VOLATILE_META = {"ge_load_time", "validation_id", "run_id", "validation_time"}
FINGERPRINT = "pandas_data_fingerprint"


def _reference(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "i": rng.integers(0, 5, n),
        "big": rng.integers(0, 1000, n),
        "f": rng.normal(size=n).round(3),
        "fn": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        "s": pd.Series(rng.choice(["a", "b", "c"], n)).where(rng.random(n) > 0.2, None),
        "o": pd.Series(rng.choice(["a", "b"], n).tolist(), dtype=object).where(
            rng.random(n) > 0.2, None),
        "d": pd.Series(pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d")),
        "b": rng.random(n) > 0.5,
        "cat": pd.Categorical(rng.choice(["x", "y"], n)),
        "id": [f"C{i:04d}" for i in range(n)],
        "y": rng.choice(["p", "q"], n),
    })


def _broken(ref: pd.DataFrame) -> pd.DataFrame:
    g = ref.copy()
    g.loc[3, "d"] = "not a date"
    g.loc[5:9, "f"] = 99.0  # outside the bounds
    g.loc[0:30, "fn"] = np.nan
    g.loc[1, "id"] = g.loc[2, "id"]  # a duplicate key
    g.loc[4, "s"] = "zzz"  # outside the set
    g.loc[10:40, "i"] = 7
    return g


def _churn() -> pd.DataFrame:
    spec = importlib.util.spec_from_file_location("make_churn", REPO / "scripts/make_churn.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.make(400, seed=5)


REF = _reference()
FRAMES: dict[str, pd.DataFrame] = {
    "same distribution": _reference(seed=1),
    "broken": _broken(REF),
    "empty": REF.head(0),
    "all null": REF.assign(f=np.nan, s=None, o=None, i=np.nan, b=None),
    "column missing": REF.drop(columns=["f", "s"]),
    "mixed objects": REF.assign(f=[1, "a", 2.5, None, True] * 12,
                                o=[1, "a", None, b"x", 2.0, [1]] * 10),
    "narrow numbers": REF.assign(i=REF["i"].astype("int32"), big=REF["big"].astype("uint8"),
                                 f=REF["f"].astype("float32"), fn=REF["fn"].astype("float32")),
    "nullable types": REF.assign(i=REF["i"].astype("Int64"), b=REF["b"].astype(object),
                                 fn=REF["fn"].astype("Float64"), s=REF["s"].astype(object)),
    "dates": REF.assign(d=pd.to_datetime(REF["d"]), big=REF["d"]),
    "duplicates": pd.concat([REF.head(30)] * 2, ignore_index=True),
    "shuffled int index": REF.set_axis(np.random.default_rng(2).permutation(60) + 100),
    "text index": REF.set_axis([f"r{i}" for i in range(60)]),
    "one row": REF.head(1),
}


def E(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


PARTITION = {"bins": [-2.0, -1.0, 0.0, 1.0, 2.0], "weights": [0.2, 0.3, 0.3, 0.2]}
TYPE_LISTS = (["int", "float"], ["int64"], ["str", "object"], ["float64", "Float64"],
              ["StringDtype", "CategoricalDtype", "Int64", "bool"], ["object_", "O"],
              ["BooleanDtype", "datetime64"], ["int32", "uint8", "float32"])
TYPES = ("int", "int64", "int32", "float", "float32", "str", "object", "bool", "bool_",
         "CategoricalDtype", "StringDtype", "datetime64", "O")
COLUMNS = ("i", "big", "f", "fn", "s", "o", "b", "cat", "d")
# Keyword variants of every type the profiler writes, in an order GX regroups by column, with
# expectations the fast path leaves to GX in between (last block).
HAND = {"name": "hand", "expectations": [
    E("expect_column_values_to_be_between", column="f", min_value=-1, max_value=1, mostly=0.5),
    E("expect_table_columns_to_match_set", column_set=["i", "f", "nope"], exact_match=False),
    E("expect_column_values_to_be_between", column="f", min_value=-1, strict_min=True),
    E("expect_column_values_to_be_between", column="big", max_value=500, strict_max=True),
    E("expect_column_values_to_be_between", column="i", min_value=1, max_value=3,
      strict_min=True, strict_max=True),
    E("expect_column_values_to_be_between", column="b", min_value=0, max_value=0.5),
    E("expect_column_values_to_be_between", column="fn", min_value=-0.5, max_value=0.5),
    E("expect_table_row_count_to_be_between", min_value=60, max_value=60, strict_max=True),
    E("expect_table_row_count_to_be_between", max_value=10),
    E("expect_table_row_count_to_be_between", min_value=1, strict_min=True),
    E("expect_table_columns_to_match_set", column_set=list(REF.columns)),
    E("expect_table_columns_to_match_set", column_set=["i", "f"]),
    E("expect_column_values_to_be_in_set", column="s", value_set=["a", None, 1]),
    E("expect_column_values_to_be_in_set", column="o", value_set=["a"], mostly=0.3),
    E("expect_column_values_to_be_in_set", column="cat", value_set=["x"]),
    E("expect_column_values_to_be_in_set", column="b", value_set=[True]),
    E("expect_column_values_to_be_in_set", column="fn", value_set=[0.5]),
    E("expect_column_values_to_be_in_set", column="i", value_set=[0, 1, 2], mostly=0.9),
    E("expect_column_values_to_be_unique", column="i"),
    E("expect_column_values_to_be_unique", column="fn"),
    E("expect_column_values_to_be_unique", column="id"),
    E("expect_column_values_to_be_unique", column="s", mostly=0.1),
    E("expect_column_values_to_match_regex", column="d", regex=ISO_DATE),
    E("expect_column_values_to_match_regex", column="d", regex=ISO_DATE, mostly=0.97),
    E("expect_column_values_to_match_regex", column="s", regex="^a"),
    E("expect_column_values_to_match_regex", column="f", regex=r"\.\d\d"),
    E("expect_column_values_to_match_regex", column="id", regex="C00[0-2]", mostly=0.1),
    *[E("expect_column_values_to_be_in_type_list", column=c, type_list=t)
      for c in COLUMNS for t in TYPE_LISTS],
    *[E("expect_column_values_to_be_of_type", column=c, type_=t) for c in COLUMNS for t in TYPES],
    E("expect_column_values_to_not_be_null", column="fn", mostly=0.5),
    E("expect_column_values_to_not_be_null", column="s"),
    E("expect_column_values_to_not_be_null", column="o", mostly=0.9),
    E("expect_column_values_to_not_be_null", column="d"),
    E("expect_column_kl_divergence_to_be_less_than", column="f", partition_object=PARTITION,
      threshold=0.1),
    E("expect_column_kl_divergence_to_be_less_than", column="fn", partition_object=PARTITION,
      threshold=0.5, tail_weight_holdout=0.1),
    E("expect_column_kl_divergence_to_be_less_than", column="f",
      partition_object={"bins": [-1.0, 0.0, 1.0, 3.0], "weights": [0.5, 0.0, 0.5]},
      threshold=1, internal_weight_holdout=0.05, tail_weight_holdout=0.02),
    E("expect_column_kl_divergence_to_be_less_than", column="f",
      partition_object={"bins": [-1.0, 0.0, 1.0], "weights": [0.4, 0.4],
                        "tail_weights": [0.1, 0.1]}),
    E("expect_column_kl_divergence_to_be_less_than", column="big",
      partition_object={"bins": [0, 100, 900, 1000], "weights": [0.1, 0.8, 0.1]}, threshold=0.2),
    E("expect_column_kl_divergence_to_be_less_than", column="i",
      partition_object={"bins": [0, 2, 4], "weights": [0.5, 0.5]}, threshold=0.2,
      tail_weight_holdout=0.01),
    # left to GX
    E("expect_column_kl_divergence_to_be_less_than", column="f",
      partition_object={"bins": [-np.inf, 0.0, np.inf], "weights": [0.5, 0.5]}, threshold=0.2),
    E("expect_column_kl_divergence_to_be_less_than", column="s",
      partition_object={"values": ["a", "b", "c"], "weights": [0.3, 0.3, 0.4]}, threshold=0.2),
    E("expect_column_mean_to_be_between", column="f", min_value=-1, max_value=1),
    E("expect_column_values_to_be_null", column="fn"),
    E("expect_column_values_to_be_between", column="f", min_value=-1, max_value=1,
      row_condition="i>2", condition_parser="pandas"),
    E("expect_column_values_to_be_in_set", column="nope", value_set=[1]),
    E("expect_column_values_to_be_in_set", column="S", value_set=["a"]),
    E("expect_column_values_to_not_be_null", column="i", catch_exceptions=False),
]}
LEFT_TO_GX = {("expect_column_kl_divergence_to_be_less_than", "f", "inf"),
              ("expect_column_kl_divergence_to_be_less_than", "s", None),
              ("expect_column_mean_to_be_between", "f", None),
              ("expect_column_values_to_be_null", "fn", None),
              ("expect_column_values_to_be_between", "f", "row_condition"),
              ("expect_column_values_to_be_in_set", "nope", None),
              ("expect_column_values_to_be_in_set", "S", None),
              ("expect_column_values_to_not_be_null", "i", "catch_exceptions")}


def _normal(res: dict[str, Any]) -> dict[str, Any]:
    """The result without what differs between any two runs (times, random ids)."""
    res = json.loads(json.dumps(res))
    res.pop("id", None)
    for r in res["results"]:
        r["expectation_config"].pop("id", None)
    for key in VOLATILE_META:
        res["meta"].pop(key, None)
    res["meta"].get("batch_markers", {}).pop("ge_load_time", None)
    return res


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in {'fast' if k in a else 'GX'}"
               for k in sorted(set(a) ^ set(b), key=str)]
        for k in a.keys() & b.keys():
            out += _differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items (fast) vs {len(b)} (GX): {a!r:.300} vs {b!r:.300}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{path}[{i}]")]
    same_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    if type(a) is not type(b) or (a != b and not same_nan):
        return [f"{path}: fast {a!r:.300} vs GX {b!r:.300}"]
    return []


def _assert_same(frames: dict[str, pd.DataFrame], suite: dict[str, Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 on empty columns, in both
        fast = run_suite(frames, suite, None, Path("s.json"))
        gx = run_suite(frames, suite, None, Path("s.json"), engine="gx")
    for name in frames:
        a, b = _normal(fast[name]), _normal(gx[name])
        fingerprinted = FINGERPRINT in b["meta"]["batch_markers"]
        if FINGERPRINT not in a["meta"]["batch_markers"]:
            b["meta"]["batch_markers"].pop(FINGERPRINT, None)
        diff = _differences(a, b)
        assert not diff, f"{name}: {len(diff)} fields differ:\n" + "\n".join(diff[:40])
        assert fingerprinted  # GX alone computes it on frames this small
    return fast


def _left_to_gx(df: pd.DataFrame, suite: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    import great_expectations as gx

    checks = FrameChecks(df)
    built = gx.ExpectationSuite(**suite)
    left = []
    for c in built.expectation_configurations:
        if checks.evaluate(c.type, c.kwargs) is None:
            po = c.kwargs.get("partition_object") or {}
            mark = ("inf" if np.isinf(po.get("bins", [0])).any() else
                    next((k for k in ("row_condition", "catch_exceptions") if k in c.kwargs),
                         None))
            left.append((c.type, c.kwargs.get("column"), mark))
    return left


PROFILED = profile_suite(REF, "y", name="profiled")


def test_the_profiled_suite_writes_only_supported_types() -> None:
    kinds = {e["type"] for e in PROFILED["expectations"]}
    assert kinds == SUPPORTED  # so the frames below exercise every supported type
    churn = profile_suite(_churn(), "Churn", name="churn")
    assert {e["type"] for e in churn["expectations"]} <= SUPPORTED


@pytest.mark.parametrize("frame", list(FRAMES))
def test_profiled_suite_gives_gx_results(frame: str) -> None:
    _assert_same({"train": FRAMES[frame], "golden": FRAMES[frame]}, PROFILED)


@pytest.mark.parametrize("frame", list(FRAMES))
def test_every_keyword_variant_gives_gx_results(frame: str) -> None:
    _assert_same({"train": FRAMES[frame]}, HAND)


def test_churn_with_planted_defects_gives_gx_results() -> None:
    df = _churn()
    suite = profile_suite(df.iloc[:300], "Churn", name="churn")
    golden = df.iloc[300:].reset_index(drop=True)
    golden.loc[::3, "TotalCharges"] = np.nan
    golden.loc[5, "customerID"] = golden.loc[6, "customerID"]
    golden.loc[::7, "signup_date"] = "not a date"
    golden["MonthlyCharges"] = golden["MonthlyCharges"] * 0.2 + 90
    golden["tenure"] = golden["tenure"].astype(str).where(golden.index != 3, "twelve")
    res = _assert_same({"train": df.iloc[:300], "golden": golden}, suite)
    failed = {r["expectation_config"]["type"] for r in res["golden"]["results"]
              if not r["success"]}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_match_regex",
            "expect_column_kl_divergence_to_be_less_than",
            "expect_column_values_to_be_in_type_list"} <= failed
    # text in a numeric column: GX's range and histogram metrics raise; its errors are kept
    assert _left_to_gx(golden, suite) == [
        ("expect_column_values_to_be_between", "tenure", None),
        ("expect_column_kl_divergence_to_be_less_than", "tenure", None)]


@pytest.mark.parametrize("frame", ["same distribution", "broken", "shuffled int index",
                                   "text index", "duplicates", "one row"])
def test_the_fast_path_covers_the_profiled_suite(frame: str) -> None:
    assert _left_to_gx(FRAMES[frame], PROFILED) == []


def test_only_what_the_fast_path_does_not_cover_goes_to_gx() -> None:
    assert set(_left_to_gx(FRAMES["same distribution"], HAND)) == LEFT_TO_GX
    # GX cannot compute these either; its own error results are kept
    left = set(_left_to_gx(FRAMES["mixed objects"], HAND)) - LEFT_TO_GX
    assert ("expect_column_values_to_be_between", "f", None) in left
    assert ("expect_column_kl_divergence_to_be_less_than", "f", None) in left


def test_a_missing_column_is_gx_s_error_listed_first() -> None:
    res = _assert_same({"train": FRAMES["column missing"]}, PROFILED)["train"]
    first = res["results"][0]
    assert first["success"] is False and first["expectation_config"]["kwargs"]["column"] in "fs"
    assert any("does not exist" in str(v) for v in first["exception_info"].values())


def test_data_docs_list_both_datasets_and_render_the_expectations(tmp_path: Path) -> None:
    res = run_suite({"train": FRAMES["broken"], "golden": REF}, PROFILED, tmp_path,
                    Path("s.json"))
    index = (tmp_path / "index.html").read_text()
    pages = sorted(tmp_path.glob("validations/**/*.html"))
    assert sorted(p.name for p in pages) == ["mlci-golden.html", "mlci-train.html"]
    assert "mlci-train" in index and "mlci-golden" in index
    assert "profiled-golden" in index and not list(tmp_path.glob("expectations/**/*.html"))
    train = next(p for p in pages if p.name == "mlci-train.html").read_text()
    assert "values must be" in train and "Failed" in train
    assert res["train"]["success"] is False


def test_mlci_validate_writes_what_gx_alone_writes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from conftest import make_project, run_mlci

    import mlci.data.validate as validate

    reports = {}
    for engine in ("fast", "gx"):
        root = make_project(tmp_path / engine, git=False)
        monkeypatch.setattr(validate, "run_suite",
                            functools.partial(run_suite, engine=engine))
        r = run_mlci("validate", cwd=root)
        assert r.code == 0, r.err
        report = json.loads((root / ".mlci/validation.json").read_text())
        report.pop("seconds")
        reports[engine] = report
        assert (root / ".mlci/data-docs/index.html").stat().st_size > 1000
        assert len(list((root / ".mlci/data-docs/validations").rglob("*.html"))) == 2
    assert reports["fast"] == reports["gx"]
    assert all(len(d["results"]) > 10 for d in reports["fast"]["datasets"].values())
