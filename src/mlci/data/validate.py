"""Great Expectations validation of the training and golden data.

Writes `validation.json` (success, statistics, every expectation with unexpected counts and
examples) and Data Docs HTML. The suite is JSON in the user's repo.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.data.hashing import data_hash
from mlci.data.load import read_input
from mlci.errors import MlciError
from mlci.io import atomic_write_json, sha256_file

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config

SCHEMA = "mlci.validation/1"
# The golden set is a fixed snapshot of chosen size: row-count bounds profiled from the
# training data do not apply to it (its content hash is recorded instead).
SIZE_EXEMPT = ("golden",)
ROW_COUNT = "expect_table_row_count"


def load_suite_dict(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MlciError(
            f"{path}: expectation suite not found (write one with: "
            f"mlci init --profile <train.csv> --target <column>)"
        )
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MlciError(f"{path}: not a valid JSON expectation suite ({exc})") from None
    if not isinstance(d, dict) or not isinstance(d.get("expectations"), list):
        raise MlciError(f"{path}: not an expectation suite (no 'expectations' list)")
    return d


def _context(docs_dir: Path | None):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import logging

    import great_expectations as gx

    # GE logs a traceback for a malformed expectation; mlci reports it in one line instead.
    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    if docs_dir is not None:
        ctx.add_data_docs_site(
            site_name="mlci",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
            },
        )
    return ctx


def run_suite(
    frames: dict[str, pd.DataFrame], suite_dict: dict[str, Any], docs_dir: Path | None,
    suite_path: Path,
) -> dict[str, Any]:
    """Validate each named frame against the suite; return {name: GE result dict}."""
    import great_expectations as gx

    ctx = _context(docs_dir)
    source = ctx.data_sources.add_pandas("mlci")
    out: dict[str, Any] = {}
    for name, df in frames.items():
        d = dict(suite_dict)
        d.pop("id", None)
        d["name"] = f"{d.get('name') or 'mlci'}"
        if name in SIZE_EXEMPT:
            d["name"] += f"-{name}"
            d["expectations"] = [e for e in d["expectations"]
                                 if not str(e.get("type", "")).startswith(ROW_COUNT)]
        try:
            built = gx.ExpectationSuite(**d)
        except Exception as exc:  # GE raises many types for a bad suite
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MlciError(f"{suite_path}: invalid expectation suite: {msg}") from None
        # GE logs and drops an expectation it cannot build: a typo must not remove a check.
        kept = [e.expectation_type for e in built.expectations]
        for i, e in enumerate(d["expectations"]):
            if i >= len(kept) or kept[i] != e.get("type"):
                raise MlciError(f"{suite_path}: invalid expectation suite: expectation {i} "
                                f"({e.get('type')!r}) is unknown or malformed")
        suite = ctx.suites.add(built)
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                    suite=suite))
        res = vd.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
        out[name] = res.to_json_dict()
    if docs_dir is not None:
        ctx.build_data_docs(site_names=["mlci"])  # once, for both results
    return out


def _summarise(result: dict[str, Any], max_examples: int) -> list[dict[str, Any]]:
    rows = []
    for r in result["results"]:
        cfg = r["expectation_config"]
        kw = {k: v for k, v in cfg["kwargs"].items() if k != "batch_id"}
        res = r.get("result") or {}
        exc = r.get("exception_info") or {}
        row = {
            "expectation": cfg["type"],
            "column": kw.get("column"),
            "kwargs": {k: v for k, v in kw.items() if k not in ("column", "partition_object")},
            "success": bool(r["success"]),
            "observed_value": res.get("observed_value"),
            "element_count": res.get("element_count"),
            "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "examples": (res.get("partial_unexpected_list") or [])[:max_examples],
        }
        if exc.get("raised_exception"):
            row["error"] = (exc.get("exception_message") or "").splitlines()[0][:300]
        row["observed"] = observed_text(row, kw)
        rows.append(row)
    return rows


def observed_text(row: dict[str, Any], kwargs: dict[str, Any]) -> str:
    """What was seen, in words: the value, or the share of rows that broke the rule."""
    v, pct = row.get("observed_value"), row.get("unexpected_percent")
    if row.get("error"):
        return f"error: {row['error']}"
    if v is not None:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)[:200]
    if pct is not None:
        shown = ", ".join(map(str, row["examples"][:3]))
        text = f"{pct:.1f}% of {row.get('element_count')} rows"
        if row["expectation"] == "expect_column_values_to_not_be_null":
            text, shown = f"{pct:.1f}% missing of {row.get('element_count')} rows", ""
        allowed = kwargs.get("mostly")
        if allowed is not None:
            text += f" (allowed {100 * (1 - allowed):.1f}%)"
        return text + (f", e.g. {shown}" if shown else "")
    return "no value (the expectation computed nothing)"


def validate(cfg: Config, out_dir: Path, *, docs: bool = True) -> dict[str, Any]:
    """Validate train and golden data; write validation.json; return its content."""
    t0 = time.perf_counter()
    suite_path = cfg.resolve(cfg.data.expectations)
    suite_dict = load_suite_dict(suite_path)
    paths = {"train": cfg.resolve(cfg.data.train), "golden": cfg.resolve(cfg.data.golden)}
    frames = {k: read_input(cfg, k) for k in paths}
    # Docs are built beside the old ones and swapped in, so a failure leaves the old site whole.
    docs_tmp = out_dir / f".data-docs.{os.getpid()}" if docs else None
    try:
        raw = run_suite(frames, suite_dict, docs_tmp, suite_path)
        if docs_tmp is not None:
            _swap_dir(docs_tmp, out_dir / "data-docs")
    finally:
        if docs_tmp is not None and docs_tmp.exists():
            shutil.rmtree(docs_tmp, ignore_errors=True)
    datasets = {}
    for name, res in raw.items():
        datasets[name] = {
            "path": getattr(cfg.data, name),
            "hash": data_hash(paths[name]),
            "rows": len(frames[name]),
            "columns": len(frames[name].columns),
            "success": bool(res["success"]),
            "statistics": res["statistics"],
            "results": _summarise(res, cfg.validation.max_examples),
        }
    report = {
        "schema": SCHEMA,
        "success": all(d["success"] for d in datasets.values()),
        "blocking": cfg.validation.block_training,
        "suite": cfg.data.expectations,
        "suite_digest": sha256_file(suite_path),
        "datasets": datasets,
        "data_docs": "data-docs/index.html" if docs else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    atomic_write_json(out_dir / "validation.json", report)
    return report


def _swap_dir(new: Path, dest: Path) -> None:
    old = dest.with_name(dest.name + f".old.{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def failed_expectations(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, r) for name, d in report["datasets"].items() for r in d["results"]
            if not r["success"]]
