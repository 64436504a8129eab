"""Read CSV or Parquet with one clear error per kind of bad input (exit 2).

The rows stay raw: strings, dates and missing values are the preprocessing's business
(`mlci.data.preprocess`), so the registered model scores the rows production sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import MlciError

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config, CsvOptions


def read_table(path: Path, label: str | None = None,
               csv: CsvOptions | None = None) -> pd.DataFrame:
    import pandas as pd

    name = label or str(path)
    sep, header, encoding, names = ",", True, "utf-8", None
    if csv is not None:
        sep, header, encoding, names = csv.sep, csv.header, csv.encoding, csv.columns
    if not path.is_file():
        raise MlciError(f"{name}: file not found")
    if path.stat().st_size == 0:
        raise MlciError(f"{name}: file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv", ""):
            if suffix == ".tsv" and sep == ",":
                sep = "\t"
            df = pd.read_csv(path, sep=sep, header=0 if header else None, names=names,
                             encoding=encoding, encoding_errors="strict")
        else:
            raise MlciError(f"{name}: unsupported format {suffix!r} (use CSV or Parquet)")
    except UnicodeDecodeError as exc:
        label = "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        raise MlciError(f"{name}: not valid {label} (byte offset {exc.start}); "
                        "set data.csv.encoding") from None
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
    if len(df.columns) == 1 and sep == "," and any(ch in str(df.columns[0]) for ch in ";\t|"):
        raise MlciError(f"{name}: one column {str(df.columns[0])[:60]!r}: the separator is "
                        "not ','; set data.csv.sep")
    return df


def read_input(cfg: Config, which: str) -> pd.DataFrame:
    """`data.train` or `data.golden` with the config's CSV options."""
    rel = getattr(cfg.data, which)
    return read_table(cfg.resolve(rel), rel, cfg.data.csv)


def feature_columns(df: pd.DataFrame, cfg: Config) -> list[str]:
    drop = set(cfg.data.drop)
    if cfg.data.features:
        return [c for c in cfg.data.features if c not in drop]
    return [c for c in df.columns if c != cfg.data.target and c not in drop]


def split_xy(df: pd.DataFrame, cfg: Config, label: str) -> tuple[pd.DataFrame, pd.Series]:
    """Raw feature columns and the target; a missing column or label is one clear error."""
    target = cfg.data.target
    if target not in df.columns:
        raise MlciError(f"{label}: target column {target!r} is absent")
    features = feature_columns(df, cfg)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise MlciError(f"{label}: feature column {missing[0]!r} is absent")
    if target in features:
        raise MlciError(f"{label}: data.features lists the target {target!r}")
    x = df[features]
    y = df[target]
    n = int(y.isna().sum())
    if n:
        raise MlciError(f"{label}: target {target!r} has {n} missing value(s)")
    return x, y


def load_xy(cfg: Config, which: str) -> tuple[pd.DataFrame, pd.Series]:
    return split_xy(read_input(cfg, which), cfg, getattr(cfg.data, which))
