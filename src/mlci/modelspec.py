"""Resolve the model section of `mlci.yaml` at load time, before any stage runs.

- `model.params` values written `${section.key}` (or the whole mapping as `${section}`) are
  read from `model.params_file` (DVC's `params.yaml` convention), so hyperparameters live in
  one place that `dvc params diff` also sees;
- `model.estimator` is imported and instantiated with the params (a typo or a rejected
  parameter is a config error now, not after validation ran);
- `model.entrypoint` is checked without running the file: its source must define the function
  at the top level (the file is imported only when training);
- the task comes from `task:`, else the estimator (`is_regressor` / `is_classifier`), else the
  target column; a gate metric the task does not compute is a config error.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError, first_line

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config, Task

REF = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")
ENTRYPOINT_CONTRACT = (
    "define `def build(x, y, params=None, seed=0)` at the top level, returning a fitted model; "
    "keep script code under `if __name__ == \"__main__\":` so importing the file runs nothing"
)
# A numeric target is a regression target when it has fractions or this many distinct values
CONTINUOUS_MIN_DISTINCT = 20


# -- params.yaml ---------------------------------------------------------------------------

def _lookup(params: dict[str, Any], dotted: str, where: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise MlciError(f"{where}: key {dotted!r} not found")
        node = node[part]
    return node


def _substitute(value: Any, params: dict[str, Any] | None, where: str, load) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, params, where, load) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, where, load) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    params = load()
    whole = REF.fullmatch(value.strip())
    if whole:  # keep the type of the referenced value (int, float, list...)
        return _lookup(params, whole.group(1), where)
    return REF.sub(lambda m: str(_lookup(params, m.group(1), where)), value)


def resolve_params(cfg: Config) -> tuple[dict[str, Any], dict[str, str]]:
    """The params with references replaced, and {param: "params.yaml:key"} for each one."""
    import yaml

    path = cfg.resolve(cfg.model.params_file)
    where = f"{cfg.path}: model.params ({cfg.model.params_file})"
    cache: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        if "v" not in cache:
            if not path.is_file():
                raise MlciError(f"{where}: file not found")
            try:
                cache["v"] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise MlciError(f"{where}: not valid YAML: {first_line(exc)}") from None
            if not isinstance(cache["v"], dict):
                raise MlciError(f"{where}: expected a mapping at the top level")
        return cache["v"]

    raw = cfg.model.params
    refs: dict[str, str] = {}
    if isinstance(raw, str):
        m = REF.fullmatch(raw.strip())
        if not m:
            raise MlciError(f"{cfg.path}: model.params: a mapping, or ${{section}} of "
                            f"{cfg.model.params_file}")
        section = _lookup(load(), m.group(1), where)
        if not isinstance(section, dict):
            raise MlciError(f"{where}: {m.group(1)!r} is not a mapping")
        refs = {k: f"{cfg.model.params_file}:{m.group(1)}.{k}" for k in section}
        return dict(section), refs
    out = {}
    for k, v in raw.items():
        out[k] = _substitute(v, None, f"{where} {k}", load)
        if isinstance(v, str) and REF.search(v):
            refs[k] = f"{cfg.model.params_file}:{','.join(REF.findall(v))}"
    return out, refs


# -- the project's own code -----------------------------------------------------------------

def project_paths(root: Path) -> list[Path]:
    """Where the project's own modules live: the config's folder and the repository root
    (what `python -m` puts first), each with its `src/` layout folder when it has one."""
    here = root.resolve()
    repo = next((f for f in (here, *here.parents) if (f / ".git").exists()), None)
    out: list[Path] = []
    for base in (here, repo):
        if base is None:
            continue
        for folder in (base, base / "src"):
            if folder.is_dir() and folder not in out:
                out.append(folder)
    return out


def import_project(root: Path) -> None:
    """Make the project's own package importable in this process, as `python -m` would:
    the entrypoint imports it, and every stage that loads the model unpickles classes from
    it (evaluate, promote's re-evaluation, the gateway, the monitor)."""
    for folder in reversed(project_paths(root)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


# -- estimator and entrypoint ----------------------------------------------------------------

def import_object(spec: str, root: Path, what: str) -> Any:
    """`module.Class`, `module:attr` or `file.py:attr` (relative to the config's folder)."""
    if ":" in spec:
        mod_name, attr = spec.rsplit(":", 1)
    else:
        mod_name, _, attr = spec.rpartition(".")
    try:
        if mod_name.endswith(".py"):
            module = _exec_file(root, mod_name, spec, what)
        else:
            sys.path.insert(0, str(root.resolve()))
            try:
                module = importlib.import_module(mod_name)
            finally:
                sys.path.remove(str(root.resolve()))
    except MlciError:
        raise
    except Exception as exc:  # ImportError, errors at import time
        raise MlciError(f"{what} {spec!r} does not import: {type(exc).__name__}: "
                        f"{first_line(exc)}") from None
    if not hasattr(module, attr):
        hint = f" ({ENTRYPOINT_CONTRACT})" if what == "model.entrypoint" else ""
        raise MlciError(f"{what} {spec!r}: {mod_name} defines no {attr!r}{hint}")
    return getattr(module, attr)


def _exec_file(root: Path, rel: str, spec: str, what: str):
    path = (root / rel).resolve()
    if not path.is_file():
        raise MlciError(f"{what} {spec!r}: file {rel} not found")
    sys.path.insert(0, str(path.parent))
    try:
        mspec = importlib.util.spec_from_file_location(f"mlci_user_{path.stem}", path)
        module = importlib.util.module_from_spec(mspec)  # type: ignore[arg-type]
        mspec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(path.parent))
    return module


def check_entrypoint(cfg: Config) -> None:
    """The file exists and defines the function at its top level; nothing is executed."""
    spec = cfg.model.entrypoint or ""
    mod_name, attr = spec.rsplit(":", 1)
    where = f"{cfg.path}: model.entrypoint {spec!r}"
    if mod_name.endswith(".py"):
        path = cfg.resolve(mod_name)
        if not path.is_file():
            raise MlciError(f"{where}: file {mod_name} not found")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            raise MlciError(f"{where}: {mod_name} does not parse: {first_line(exc)}") from None
        if not any(_defines(node, attr) for node in tree.body):
            raise MlciError(f"{where}: {mod_name} defines no function {attr!r} "
                            f"({ENTRYPOINT_CONTRACT})")
        return
    sys.path.insert(0, str(cfg.root.resolve()))
    try:
        found = importlib.util.find_spec(mod_name)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path.remove(str(cfg.root.resolve()))
    if found is None:
        raise MlciError(f"{where}: module {mod_name} not found")


def _defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == name for t in targets)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    return False


def estimator_task(cfg: Config, params: dict[str, Any]) -> Task | None:
    """Instantiate the estimator (checks class and params) and say what it predicts."""
    from sklearn.base import is_classifier, is_regressor

    cls = import_object(cfg.model.estimator or "", cfg.root, "model.estimator")
    if not callable(cls):
        raise MlciError(f"{cfg.path}: model.estimator {cfg.model.estimator!r} is not a class")
    try:
        est = cls(**params)
    except Exception as exc:  # noqa: BLE001 - any constructor error is the params' fault
        raise MlciError(f"{cfg.path}: model.params: {cfg.model.estimator} rejected them: "
                        f"{first_line(exc)}") from None
    if not hasattr(est, "fit") or not hasattr(est, "predict"):
        raise MlciError(f"{cfg.path}: model.estimator {cfg.model.estimator!r} has no "
                        "fit() and predict()")
    if is_regressor(est):
        return "regression"
    if is_classifier(est):
        return "classification"
    return None


# -- task ---------------------------------------------------------------------------------

def target_task(y: pd.Series) -> Task:
    return infer_task(y)[0]


def infer_task(y: pd.Series) -> tuple[Task, str]:
    """The task a target asks for, and why (docs/adopting.md states the rule):

    1. labels (text, booleans, categories) -> classification;
    2. fractions, or at least max(20, 5 % of the rows) distinct numbers -> regression;
    3. integers that look like class codes (two values, 0..K-1 or 1..K) -> classification;
    4. other integers without gaps, e.g. a 3..9 quality score -> regression (an ordered scale);
    5. other integers (gaps: 10, 20, 40) -> classification (codes of classes).
    """
    import numpy as np
    import pandas as pd

    v = y.dropna()
    if pd.api.types.is_bool_dtype(v) or not pd.api.types.is_numeric_dtype(v):
        return "classification", f"the target holds labels ({v.dtype})"
    arr = v.to_numpy(dtype=float)
    if bool(np.any(np.abs(arr - np.round(arr)) > 1e-9)):
        return "regression", "the target has fractional values"
    values = sorted({int(a) for a in arr})
    d = len(values)
    if d >= max(CONTINUOUS_MIN_DISTINCT, 0.05 * len(v)):
        return "regression", f"the target has {d} distinct numbers in {len(v)} rows"
    span = f"{values[0]}..{values[-1]}" if values else "none"
    if d <= 2 or values in (list(range(d)), list(range(1, d + 1))):
        return "classification", f"the target's {d} integers {span} look like class codes"
    if values == list(range(values[0], values[-1] + 1)):
        return "regression", (f"the target's {d} integers {span} form an ordered scale "
                              "(not class codes 0..K-1 or 1..K)")
    return "classification", f"the target's {d} integers {span} have gaps, like class codes"


def read_target(cfg: Config) -> pd.Series | None:
    import pandas as pd

    path = cfg.resolve(cfg.data.train)
    if not path.is_file():
        return None
    target = cfg.data.target
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path, columns=[target])
        else:
            o = cfg.data.csv
            sep = "\t" if path.suffix.lower() == ".tsv" and o.sep == "," else o.sep
            df = pd.read_csv(path, sep=sep, header=0 if o.header else None, names=o.columns,
                             encoding=o.encoding, usecols=[target])
    except Exception:  # noqa: BLE001 - unreadable data is reported by the stage that reads it
        return None
    return df[target]


def resolve(cfg: Config, with_data: bool = True) -> None:
    """Fill `cfg.model.params` and `cfg.task`; raise MlciError (exit 2) on anything wrong."""
    from mlci.config import CLASSIFICATION_METRICS, REGRESSION_METRICS

    params, refs = resolve_params(cfg)
    cfg.model.params = params
    cfg.model._params_refs = refs
    declared = cfg.declared_task
    if cfg.model.estimator:
        kind = estimator_task(cfg, params)
        if declared and kind and declared != kind:
            raise MlciError(f"{cfg.path}: task: {declared}, but {cfg.model.estimator} is a "
                            f"{'regressor' if kind == 'regression' else 'classifier'}")
    else:
        check_entrypoint(cfg)
        kind = None
    task = declared or kind
    y = read_target(cfg) if with_data else None
    if y is not None:
        from_target = target_task(y)
        if task is None:
            task = from_target
        elif task == "classification" and from_target == "regression" and \
                y.nunique() > max(100, 0.5 * len(y)):
            raise MlciError(f"{cfg.path}: data.target {cfg.data.target!r} has {y.nunique()} "
                            "distinct numbers, a regression target, but the model is a "
                            "classifier (use a regressor or task: regression)")
    cfg.task = task or "classification"
    known = REGRESSION_METRICS if cfg.task == "regression" else CLASSIFICATION_METRICS
    for section in ("min", "max", "max_regression"):
        for metric in getattr(cfg.gate, section):
            if metric not in known:
                raise MlciError(f"{cfg.path}: gate.{section}.{metric}: a {cfg.task} model is "
                                f"not scored by {metric} (use {', '.join(known)})")
    if cfg.task == "classification" and y is not None:
        _check_positive(cfg, y)
    if cfg.task == "regression" and y is not None and target_task(y) == "classification" \
            and not _numeric(y):
        raise MlciError(f"{cfg.path}: data.target {cfg.data.target!r} holds labels "
                        f"({y.dtype}), but the model is a regressor")


def _numeric(y: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)


def _check_positive(cfg: Config, y: pd.Series) -> None:
    """data.positive_label names a class; a positive-class gate metric needs one to exist."""
    from mlci.config import POSITIVE_METRICS

    labels = y.dropna().unique().tolist()
    want = cfg.data.positive_label
    if want is not None and not any(v == want or str(v) == str(want) for v in labels):
        shown = ", ".join(map(str, sorted(labels, key=str)[:10]))
        raise MlciError(f"{cfg.path}: data.positive_label {want!r} is not a value of "
                        f"{cfg.data.target!r} ({shown})")
    used = sorted(m for section in (cfg.gate.min, cfg.gate.max, cfg.gate.max_regression)
                  for m in section if m in POSITIVE_METRICS)
    if used and want is None and len(labels) > 2:
        raise MlciError(f"{cfg.path}: gate: {used[0]} is about one class; with "
                        f"{len(labels)} classes set data.positive_label")
