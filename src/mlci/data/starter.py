"""`mlci init --profile`: a starter project from one data file.

Without `--golden`, a new mlci.yaml gets a held-out golden set: a seeded split, stratified
by class for a classifier, written beside the data. The suite is profiled from the training
part only, so the first run validates the golden rows as new data. The model and gate follow
the target: a classifier gated on accuracy above the majority-class share, or a regressor
gated on r2 above 0 (better than predicting the mean) and on mae against the champion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError

if TYPE_CHECKING:
    import pandas as pd

MIN_ROWS = 20

CLASSIFIER = """\
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: 200, random_state: 0}}
gate:
  # floor: the majority-class share of the training data (a model must beat always guessing
  # the most frequent class); raise it to the accuracy you need
  min: {{accuracy: {floor}}}
  max_regression: {{accuracy: 0.02}}
"""
# a binary target whose rarer class is below this share is gated on that class's F1 (the
# template's first line ends the data section: config_text writes it right after data.csv)
IMBALANCED = 0.35
IMBALANCED_CLASSIFIER = """\
  positive_label: {label}
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: 200, random_state: 0, class_weight: balanced}}
gate:
  # {share} of the rows are {label}: accuracy would pass a model that never predicts it, so
  # the gate is on the F1 of {label}. Floor: the F1 of always predicting {label} (2p/(1+p));
  # raise it to what you need
  min: {{f1: {floor}}}
  max_regression: {{f1: 0.02}}
"""
SKEWED_CLASSIFIER = """\
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: 200, random_state: 0, class_weight: balanced}}
gate:
  # one class holds half the rows or more: balanced accuracy (mean recall of the {k}
  # classes) instead of accuracy. Floor: 1/{k}, what guessing scores; raise it
  min: {{balanced_accuracy: {floor}}}
  max_regression: {{balanced_accuracy: 0.02}}
"""
REGRESSOR = """\
task: regression
model:
  estimator: sklearn.ensemble.RandomForestRegressor
  params: {{n_estimators: 200, random_state: 0}}
gate:
  # floor: r2 above 0 means better than predicting the mean; raise it to what you need.
  # max_regression.mae: 5 % of the target's standard deviation
  min: {{r2: 0.0}}
  max_regression: {{r2: 0.02, mae: {mae}}}
"""


@dataclass
class InitRequest:
    config_path: Path
    data: Path
    target: str
    suite: Path
    name: str | None = None
    golden: str | None = None
    golden_share: float = 0.2
    seed: int = 0
    sep: str = ","
    force: bool = False
    task: str | None = None  # None: inferred from the target


def _rel(p: Path, base: Path) -> str:
    return Path(os.path.relpath(p.resolve(), base.resolve())).as_posix()


def split(df: pd.DataFrame, target: str, task: str, share: float,
          seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and golden rows; identical rows stay on one side (a golden row that is also a
    training row is a leak), so the split is drawn over distinct rows."""
    from sklearn.model_selection import train_test_split

    from mlci.data.leakage import split_keys

    keys = split_keys(df)
    distinct = df[~keys.duplicated()]
    y = distinct[target]
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        if counts.min() >= 2 and len(counts) <= share * len(distinct):
            stratify = y
    _, golden = train_test_split(distinct, test_size=share, random_state=seed,
                                 stratify=stratify)
    held_out = keys.isin(set(keys[golden.index].tolist()))
    return df[~held_out].sort_index(), df[held_out].sort_index()


def _write_table(df: pd.DataFrame, path: Path, sep: str) -> None:
    import io

    from mlci.io import atomic_write_bytes, atomic_write_text

    if path.suffix.lower() in (".parquet", ".pq"):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_text(path, df.to_csv(index=False, sep=sep))


def model_section(df: pd.DataFrame, target: str, task: str) -> str:
    """The model and a gate that fits the target: see the templates' comments."""
    import json

    if task == "regression":
        std = float(df[target].std()) or 1.0
        return REGRESSOR.format(mae=float(f"{0.05 * std:.3g}"))
    shares = df[target].value_counts(normalize=True)
    if len(shares) == 2 and shares.iloc[-1] < IMBALANCED:
        p = float(shares.iloc[-1])
        label = shares.index[-1]
        label = label.item() if hasattr(label, "item") else label
        return IMBALANCED_CLASSIFIER.format(
            label=json.dumps(label), share=f"{p:.0%}", floor=int(2 * p / (1 + p) * 100) / 100)
    if len(shares) > 2 and shares.iloc[0] >= 0.5:
        return SKEWED_CLASSIFIER.format(k=len(shares), floor=int(100 / len(shares)) / 100)
    return CLASSIFIER.format(floor=int(float(shares.iloc[0]) * 100) / 100)


def _existing(config_path: Path) -> dict[str, Any]:
    """What an existing mlci.yaml says (read loosely: re-init must work on a broken one)."""
    import yaml

    if not config_path.is_file():
        return {}
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _data_of(config: dict[str, Any]) -> dict[str, Any]:
    data = config.get("data")
    return data if isinstance(data, dict) else {}


def _split_files(config_path: Path, old: dict[str, Any]) -> list[Path]:
    """The old config's train and golden files when they are a split `init` wrote."""
    data = _data_of(old)
    files = [config_path.parent / str(data.get(k)) for k in ("train", "golden")
             if isinstance(data.get(k), str)]
    if len(files) == 2 and files[0].stem.endswith("-train") and \
            files[1].stem.endswith("-golden") and \
            files[0].stem[:-6] == files[1].stem[:-7]:
        return files
    return []


def initialise(req: InitRequest) -> list[str]:
    """Write the suite (and, for a new config or a re-init with --force, mlci.yaml and the
    split); return what was done. Everything is checked before anything is written.

    With an existing mlci.yaml: profiling its own training file refreshes the suite only;
    profiling other data needs --force and starts over from that data, consistently: a new
    split, a suite of its columns, mlci.yaml rewritten (its `name` kept) and the old split
    files removed."""
    from mlci.config import CsvOptions
    from mlci.data.load import read_table
    from mlci.data.profile import profile_suite
    from mlci.io import atomic_write_json, atomic_write_text
    from mlci.modelspec import infer_task

    df = read_table(req.data, str(req.data), CsvOptions(sep=req.sep))
    if req.target not in df.columns:
        raise MlciError(f"{req.data}: target column {req.target!r} is absent "
                        f"(columns: {', '.join(map(str, df.columns[:20]))})")
    if df[req.target].isna().any():
        raise MlciError(f"{req.data}: target {req.target!r} has "
                        f"{int(df[req.target].isna().sum())} missing value(s)")
    if req.suite.exists() and not req.force:
        raise MlciError(f"{req.suite}: exists; pass --force to overwrite")
    inferred, reason = infer_task(df[req.target])
    task = req.task or inferred
    if task == "regression" and not _numbers(df[req.target]):
        raise MlciError(f"--task regression: target {req.target!r} holds labels "
                        f"({df[req.target].dtype}), not numbers")
    root = req.config_path.parent
    old = _existing(req.config_path)
    old_train = _data_of(old).get("train")
    refresh = isinstance(old_train, str) and \
        (root / old_train).resolve() == req.data.resolve()
    new_config = not req.config_path.exists() or (req.force and not refresh)
    done: list[str] = [f"task: {task} (--task)" if req.task else
                       f"task: {task}: {reason} (override with --task)"]
    train_df, train_path, golden_path = df, req.data, req.golden
    golden_df = None
    if new_config and req.golden is None:
        if len(df) < MIN_ROWS:
            raise MlciError(f"{req.data}: {len(df)} rows are too few to hold out a golden set; "
                            "pass --golden FILE")
        stem, suffix = req.data.stem, req.data.suffix or ".csv"
        train_path = req.data.with_name(f"{stem}-train{suffix}")
        gpath = req.data.with_name(f"{stem}-golden{suffix}")
        for p in (train_path, gpath):
            if p.exists() and not req.force:
                raise MlciError(f"{p}: exists; pass --force to overwrite, or --golden FILE")
        train_df, golden_df = split(df, req.target, task, req.golden_share, req.seed)
        golden_path = _rel(gpath, root)
    name = req.name or str(old.get("name") or "") or Path.cwd().name or "model"
    suite = profile_suite(train_df, req.target, name=name, task=task)
    # nothing is written before this line: every check above has passed
    if golden_df is not None:
        _write_table(train_df, train_path, req.sep)
        _write_table(golden_df, gpath, req.sep)
        done.append(f"wrote {train_path} ({len(train_df)} rows) and {gpath} "
                    f"({len(golden_df)} rows, held out with seed {req.seed})")
    atomic_write_json(req.suite, suite)
    done.append(f"wrote {req.suite} ({len(suite['expectations'])} expectations)")
    if new_config:
        atomic_write_text(req.config_path, config_text(
            name=name, train=_rel(train_path, root), golden=golden_path or _rel(req.data, root),
            target=req.target, suite=_rel(req.suite, root), sep=req.sep,
            model=model_section(train_df, req.target, task)))
        done.append(f"wrote {req.config_path} ({task})")
        kept = {train_path.resolve(), req.data.resolve()} | (
            {(root / golden_path).resolve()} if golden_path else set())
        for stale in _split_files(req.config_path, old):
            if stale.resolve() not in kept and stale.is_file():
                stale.unlink()
                done.append(f"removed {stale} (the previous split)")
    elif old:
        done.append(f"kept {req.config_path} (its training file is the profiled data)")
    return done


def _numbers(y: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)


def config_text(**v: Any) -> str:
    import json

    def q(s: str) -> str:
        return json.dumps(s)  # a JSON string is a YAML string: any column name stays intact

    csv = f"  csv: {{sep: {q(v['sep'])}}}\n" if v["sep"] != "," else ""
    return (f"name: {q(v['name'])}\ndata:\n  train: {q(v['train'])}\n"
            f"  golden: {q(v['golden'])}\n  target: {q(v['target'])}\n"
            f"  expectations: {q(v['suite'])}\n{csv}{v['model']}")

