"""Read CSV or Parquet with one clear error per kind of bad input (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import MlciError

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config


def read_table(path: Path, label: str | None = None) -> pd.DataFrame:
    import pandas as pd

    name = label or str(path)
    if not path.is_file():
        raise MlciError(f"{name}: file not found")
    if path.stat().st_size == 0:
        raise MlciError(f"{name}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv", ""):
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(path, sep=sep, encoding="utf-8", encoding_errors="strict")
        else:
            raise MlciError(f"{name}: unsupported format {suffix!r} (use CSV or Parquet)")
    except UnicodeDecodeError as exc:
        raise MlciError(f"{name}: not valid UTF-8 (byte offset {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise MlciError(f"{name}: file is empty") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise MlciError(f"{name}: cannot parse: {first}") from None
    except (OSError, ValueError) as exc:
        raise MlciError(f"{name}: cannot read: {str(exc).splitlines()[0]}") from None
    if len(df.columns) == 0:
        raise MlciError(f"{name}: no columns")
    if len(df) == 0:
        raise MlciError(f"{name}: header only, no rows")
    return df


def split_xy(df: pd.DataFrame, cfg: Config, label: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target, with the errors a model would otherwise raise as tracebacks."""
    import pandas as pd

    target = cfg.data.target
    if target not in df.columns:
        raise MlciError(f"{label}: target column {target!r} is absent")
    features = cfg.data.features or [c for c in df.columns if c != target]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise MlciError(f"{label}: feature column {missing[0]!r} is absent")
    x = df[features]
    y = df[target]
    for col in features:
        if not (pd.api.types.is_numeric_dtype(x[col]) or pd.api.types.is_bool_dtype(x[col])):
            raise MlciError(
                f"{label}: column {col!r} has type {x[col].dtype}, expected numbers"
            )
        n = int(x[col].isna().sum())
        if n:
            raise MlciError(f"{label}: column {col!r} has {n} missing value(s)")
    n = int(y.isna().sum())
    if n:
        raise MlciError(f"{label}: target {target!r} has {n} missing value(s)")
    return x, y


def load_xy(cfg: Config, which: str) -> tuple[pd.DataFrame, pd.Series]:
    rel = getattr(cfg.data, which)
    df = read_table(cfg.resolve(rel), rel)
    return split_xy(df, cfg, rel)
