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

from mlci.data.hashing import dataset_hash
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
        from mlci.data import docs_site

        ctx.add_data_docs_site(
            site_name="mlci",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": docs_site.INDEX,
                # a key GX's site builder reads that its (self-declared incomplete) type omits
                "site_section_builders": docs_site.SITE_SECTIONS,  # type: ignore[typeddict-unknown-key]
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
            },
        )
    return ctx


def run_suite(
    frames: dict[str, pd.DataFrame], suite_dict: dict[str, Any], docs_dir: Path | None,
    suite_path: Path, *, engine: str = "fast",
) -> dict[str, Any]:
    """Validate each named frame against the suite; return {name: GE result dict}.

    `engine="fast"` evaluates the expectations `mlci.data.fast_checks` covers in vectorised
    pandas and only the others with GX; `engine="gx"` sends every expectation to GX (the
    reference the differential tests compare with). Both give the same result dicts.
    """
    import great_expectations as gx

    if engine not in ("fast", "gx"):
        raise ValueError(f"unknown validation engine {engine!r}")
    from mlci.data import data_docs

    ctx = _context(docs_dir)
    source = ctx.data_sources.add_pandas("mlci")
    out: dict[str, Any] = {}
    pages: list[Any] = []  # Data Docs pages built here at the end
    apart: list[tuple[int, list[Any]]] = []  # those built by a forked child meanwhile
    last = list(frames)[-1] if frames else None
    for name, df in frames.items():
        suite = _build_suite(suite_dict, name, suite_path)
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        if engine == "gx":
            suite = ctx.suites.add(suite)
            vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                        suite=suite))
            out[name] = vd.run(batch_parameters={"dataframe": df},
                               result_format="SUMMARY").to_json_dict()
            continue
        _add_ids(suite)  # what the store's add does, without its serialising round trip
        out[name], batch_id = _run_fast(suite, batch, df, f"{source.name}-{asset.name}")
        if docs_dir is not None:  # the site has result pages only (mlci.data.docs_site)
            keys = [_store_result(ctx, out[name], batch_id)]
            # this dataset's pages are built by a child while the next one is validated
            child = data_docs.build_apart(ctx, "mlci", keys) if name != last else None
            if child is None:
                pages += keys
            else:
                apart.append(child)
    if docs_dir is not None:
        if engine == "gx":
            data_docs.build(ctx, "mlci")  # once, for every result
        else:
            data_docs.finish(ctx, "mlci", pages, apart)
    return out


def _build_suite(suite_dict: dict[str, Any], name: str, suite_path: Path):
    import great_expectations as gx

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
    return built


def _add_ids(suite: Any) -> None:
    """Fresh ids for the suite and each expectation, as GX's ExpectationsStore gives on add
    (results pair up with their expectations by id)."""
    import uuid

    suite.id = str(uuid.uuid4())
    for e in suite.expectations:
        e.id = str(uuid.uuid4())


def _store_result(ctx: Any, result: dict[str, Any], batch_id: str) -> Any:
    """Put a result in the validation results store for Data Docs, as the JSON text GX's
    store writes (the site builder reads it back with GX's own schema)."""
    import json

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run = result["meta"]["run_id"]
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result["suite_name"]),
        run_id=RunIdentifier(run_name=run["run_name"], run_time=run["run_time"]),
        batch_identifier=batch_id)
    store = ctx.validation_results_store
    # GX's store.set would turn the result object into this same JSON first; the text is
    # what its in-memory backend keeps and its deserialize reads.
    store._store_backend.set(store.key_to_tuple(key), json.dumps(result))
    return key


def _run_fast(suite: Any, batch: Any, df: pd.DataFrame,
              batch_id: str) -> tuple[dict[str, Any], str]:
    """What `ValidationDefinition.run(batch_parameters={"dataframe": df},
    result_format="SUMMARY").to_json_dict()` returns, with the expectations fast_checks covers
    computed there and only the rest by GX; the JSON of fast results is built directly (GX's
    to_json_dict deep-copies and re-serialises every result several times), and the batch id."""
    import datetime
    import uuid

    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.util import convert_to_json_serializable
    from great_expectations.validator.v1_validator import Validator

    from mlci.data.fast_checks import FrameChecks

    checks = FrameChecks(df)
    ordered = _gx_order(suite.expectation_configurations)
    fast = {c.id: checks.evaluate(c.type, c.kwargs) for c in ordered}
    rest = [c for c in ordered if fast[c.id] is None]
    first: list[Any] = []
    by_gx: dict[Any, Any] = {}
    now = datetime.datetime.now(datetime.timezone.utc)
    if rest:
        # One GX run for the rest of the suite: its batch, markers and errors are GX's own.
        validator = Validator(batch_definition=batch, result_format="SUMMARY",
                              batch_parameters={"dataframe": df})
        part = validator.validate_expectation_suite(gx.ExpectationSuite(name=suite.name,
                                                                        expectations=rest))
        for r in part.results:
            if _reported_first(r):
                first.append(r)
            else:
                by_gx[_config_id(r)] = r
        meta, batch_id = dict(part.meta), part.batch_id or batch_id
    else:
        # GX's meta for this batch, less its md5 fingerprint of the whole frame, which costs
        # as much as the checks (GX omits it too above 1 GB; validation.json has the file hash)
        meta = {
            "great_expectations_version": gx.__version__,
            "batch_spec": {"batch_data": "PandasDataFrame"},
            "batch_markers": {"ge_load_time": now.strftime("%Y%m%dT%H%M%S.%fZ")},
            "active_batch_definition": {
                "datasource_name": batch.data_asset.datasource.name,
                "data_connector_name": "fluent",
                "data_asset_name": batch.data_asset.name,
                "batch_identifiers": {"dataframe": DATAFRAME},
            },
        }
    results = [r.to_json_dict() for r in first]
    successes = [bool(r.success) for r in first]
    shown_first = {_config_id(r) for r in first}
    for c in ordered:
        raw = fast[c.id]
        if raw is None:
            if c.id not in shown_first:
                r = by_gx[c.id]
                results.append(r.to_json_dict())
                successes.append(bool(r.success))
            continue
        c.kwargs.update({"batch_id": batch_id})  # a fresh copy: the suite builds one per call
        results.append(_result_json(raw, c.to_json_dict()))
        successes.append(results[-1]["success"])
    run_id = RunIdentifier(run_time=now)
    meta.update({"validation_id": str(uuid.uuid4()), "checkpoint_id": None, "run_id": run_id,
                 "validation_time": run_id.run_time,
                 "batch_parameters": {"dataframe": DATAFRAME}})
    evaluated, successful = len(successes), sum(successes)
    out = {
        "success": successful == evaluated,
        "results": results,
        "suite_name": suite.name,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": evaluated,
            "successful_expectations": successful,
            "unsuccessful_expectations": evaluated - successful,
            "success_percent": successful / evaluated * 100 if evaluated else None},
        "meta": convert_to_json_serializable(meta),
        "id": None,
    }
    return out, batch_id


NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}


def _result_json(raw: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """`ExpectationValidationResult(**raw, expectation_config=...).to_json_dict()`, without
    its deep copies: the same keys, and values made JSON by GX's own rules."""
    return {"success": bool(raw["success"]), "expectation_config": config,
            "result": _json(raw.get("result") or {}), "meta": {},
            "exception_info": dict(NO_EXCEPTION)}


def _json(v: Any) -> Any:
    """great_expectations.util.convert_to_json_serializable, with plain Python values (the
    bulk of a result) handled here and everything else passed to it."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if t is float:
        return None if v != v else v  # GX writes NaN as null
    if t is dict:
        return {str(k): _json(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [_json(x) for x in v]
    from great_expectations.util import convert_to_json_serializable

    return convert_to_json_serializable(v)


def _config_id(r: Any) -> Any:
    return r.expectation_config.id if r.expectation_config is not None else None


DATAFRAME = "<DATAFRAME>"  # great_expectations.constants.DATAFRAME_REPLACEMENT_STR


def _gx_order(configs: list[Any]) -> list[Any]:
    """GX validates (and lists) expectations grouped by column, in order of first appearance
    (Validator.process_expectations_for_validation)."""
    groups: dict[str, list[Any]] = {}
    for c in configs:
        col = c.kwargs.get("column")
        groups.setdefault(col if isinstance(col, str) else "_nocolumn", []).append(c)
    return [c for group in groups.values() for c in group]


def _reported_first(r: Any) -> bool:
    """GX lists the expectations whose metrics failed, or whose metric graph could not be
    built, before all others (Validator.graph_validate)."""
    info = r.exception_info or {}
    if "raised_exception" not in info:
        return bool(info)  # {metric id: exception}: a metric failed
    trace = info.get("exception_traceback") or ""
    return bool(info.get("raised_exception")) and "_generate_metric_dependency_subgraphs" in trace


def _summarise(result: dict[str, Any], max_examples: int,
               columns: list[str] | None = None, path: str = "") -> list[dict[str, Any]]:
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
        if columns is not None and isinstance(row["column"], str) \
                and row["column"] not in columns:
            # GX says "computed nothing" or "list index out of range" for an absent column
            row["observed"] = f"column {row['column']!r} is missing from {path or 'the data'}"
        else:
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
    images = cfg.data.image_size is not None
    if images:  # one row per image: what the suite checks (mlci.data.imageset.COLUMNS)
        from mlci.data.imageset import read_metadata

        frames = {k: read_metadata(cfg, k) for k in paths}
    else:
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
            "hash": dataset_hash(cfg, name),
            "rows": len(frames[name]),
            "columns": len(frames[name].columns),
            "success": bool(res["success"]),
            "statistics": res["statistics"],
            "results": _summarise(res, cfg.validation.max_examples,
                                  [str(c) for c in frames[name].columns],
                                  getattr(cfg.data, name)),
        }
    # images are the same image when their bytes are: compared by content hash alone
    _check_leakage(datasets["golden"], {k: f[["sha256"]] for k, f in frames.items()}
                   if images else frames, cfg.validation.max_golden_overlap)
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


def _check_leakage(golden: dict[str, Any], frames: dict[str, pd.DataFrame],
                   allowed: float) -> None:
    """Golden rows identical to training rows: one more check of the golden data."""
    from mlci.data import leakage

    row = leakage.check(frames["train"], frames["golden"], allowed)
    golden["results"].append(row)
    golden["leakage"] = {"rows": row["unexpected_count"], "share": row["observed_value"],
                         "allowed": allowed}
    stats = golden["statistics"]
    stats["evaluated_expectations"] = stats.get("evaluated_expectations", 0) + 1
    if row["success"]:
        stats["successful_expectations"] = stats.get("successful_expectations", 0) + 1
    else:
        stats["unsuccessful_expectations"] = stats.get("unsuccessful_expectations", 0) + 1
        golden["success"] = False
    total = stats["evaluated_expectations"]
    stats["success_percent"] = 100.0 * stats.get("successful_expectations", 0) / total


def _swap_dir(new: Path, dest: Path) -> None:
    old = dest.with_name(dest.name + f".old.{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def failed_expectations(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, r) for name, d in report["datasets"].items() for r in d["results"]
            if not r["success"]]
