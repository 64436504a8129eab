"""Image data sets: a folder with one sub-folder per class, or a table of paths and labels.

The folder layout is torchvision's `ImageFolder` and Keras' `image_dataset_from_directory`:
`train/cat/001.jpg` is an image of class `cat`. A table (CSV or Parquet) has a column of
file paths (`data.image_column`, relative to the table's folder) and the label column.

Every image is decoded through `mlci.images` (one resize policy for training, evaluation and
serving) into the (N, H, W, C) uint8 array a model takes. Validation sees one row per file:
`metadata()` (format, size, mode, bytes, whether it decodes, the sha256 of its content).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlci.config import Config
    from mlci.images import ImageSpec

PATH = "path"   # the metadata table's file column (relative to the data set's folder)
COLUMNS = (PATH, "label", "format", "width", "height", "channels", "mode", "bytes",
           "decodable", "sha256")
_CHANNELS = {"1": 1, "L": 1, "P": 3, "RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4, "YCbCr": 3,
             "I": 1, "I;16": 1, "F": 1}


def is_images(cfg: Config) -> bool:
    return cfg.data.image_size is not None


def listing(path: Path, label: str, target: str = "label",
            column: str = PATH, csv: Any = None) -> pd.DataFrame:
    """Files and labels of a data set: columns `path` (as given, relative to `root_of`) and
    `target`. A folder lists every non-hidden file of each sub-folder (a stray non-image is
    listed too, so validation reports it); a table gives its own rows."""
    import pandas as pd

    if path.is_dir():
        rows = [(f.relative_to(path).as_posix(), sub.name)
                for sub in sorted(p for p in path.iterdir() if p.is_dir()
                                  and not p.name.startswith("."))
                for f in sorted(sub.rglob("*"))
                if f.is_file() and not any(part.startswith(".")
                                           for part in f.relative_to(path).parts)]
        if not rows:
            raise MlciError(f"{label}: no images in class sub-folders (expected "
                            f"{label}/<class>/<image>)")
        return pd.DataFrame(rows, columns=[PATH, target])
    from mlci.data.load import read_table

    df = read_table(path, label, csv)
    for col in (column, target):
        if col not in df.columns:
            raise MlciError(f"{label}: column {col!r} is absent (an image table needs "
                            f"data.image_column {column!r} and data.target {target!r})")
    if df[column].isna().any() or df[target].isna().any():
        raise MlciError(f"{label}: missing paths or labels in {column!r}/{target!r}")
    out = pd.DataFrame({PATH: df[column].astype(str), target: df[target]})
    return out.reset_index(drop=True)


def root_of(path: Path) -> Path:
    """The folder the listed paths are relative to."""
    return path if path.is_dir() else path.parent


def read_listing(cfg: Config, which: str) -> tuple[pd.DataFrame, Path]:
    rel = getattr(cfg.data, which)
    path = cfg.resolve(rel)
    if not path.exists():
        raise MlciError(f"{rel}: not found")
    return listing(path, rel, cfg.data.target, cfg.data.image_column, cfg.data.csv), \
        root_of(path)


def file_of(root: Path, rel: str) -> Path:
    """A listed file, refused when the table points outside its folder."""
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()):
        raise MlciError(f"{rel}: image path outside the data set's folder {root}")
    return p


def describe(raw: bytes) -> dict[str, Any]:
    """Format, size, mode and whether the bytes decode (fully), with their content hash."""
    from mlci.images import ImageError, open_checked

    row: dict[str, Any] = {"format": None, "width": None, "height": None, "channels": None,
                           "mode": None, "bytes": len(raw), "decodable": False,
                           "sha256": hashlib.sha256(raw).hexdigest()}
    try:
        img = open_checked(raw)
        row.update(format=img.format, width=img.size[0], height=img.size[1], mode=img.mode,
                   channels=_CHANNELS.get(img.mode, len(img.getbands())))
        img.load()  # the pixels too: a truncated file has a good header
        row["decodable"] = True
    except (ImageError, OSError, ValueError, SyntaxError):
        pass
    return row


def metadata(frame: pd.DataFrame, root: Path, target: str = "label") -> pd.DataFrame:
    """One row per image: what validation checks (see COLUMNS)."""
    import pandas as pd

    rows = []
    for rel, y in zip(frame[PATH].tolist(), frame[target].tolist(), strict=True):
        p = file_of(root, rel)
        try:
            raw = p.read_bytes()
        except OSError:
            raw = b""
        rows.append({PATH: rel, "label": y, **describe(raw)})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("width", "height", "channels"):
        df[col] = df[col].astype("Int64")
    return df


def read_metadata(cfg: Config, which: str) -> pd.DataFrame:
    frame, root = read_listing(cfg, which)
    return metadata(frame, root, cfg.data.target)


def load_arrays(frame: pd.DataFrame, root: Path, spec: ImageSpec, label: str,
                target: str = "label") -> np.ndarray:
    """The listed images as one (N, H, W, C) uint8 array; an image that does not decode is
    one error naming it."""
    import numpy as np

    from mlci.images import ImageError, read

    out = np.empty((len(frame), *spec.shape), dtype=np.uint8)
    for i, rel in enumerate(frame[PATH].tolist()):
        try:
            out[i] = read(file_of(root, rel), spec)
        except (ImageError, OSError) as exc:
            raise MlciError(f"{label}: {rel}: {exc}") from None
    return out


def load_xy(cfg: Config, which: str) -> tuple[np.ndarray, pd.Series, list[str]]:
    """Images (N, H, W, C) uint8, their labels and their paths, for `data.train`/`golden`."""
    spec = cfg.data.image_spec
    if spec is None:
        raise MlciError(f"{cfg.path}: data.image_size is not set")
    frame, root = read_listing(cfg, which)
    label = getattr(cfg.data, which)
    x = load_arrays(frame, root, spec, label, cfg.data.target)
    return x, frame[cfg.data.target].rename(cfg.data.target), frame[PATH].tolist()


def content_hash(cfg: Config, which: str) -> dict[str, str]:
    """The data set's hash: a folder's is DVC's directory hash (see hashing.data_hash); a
    table's covers the table and the content of every file it lists, so an image changed
    behind an unchanged table still changes it."""
    from mlci.data.hashing import data_hash

    path = cfg.resolve(getattr(cfg.data, which))
    if path.is_dir():
        return data_hash(path)
    frame, root = read_listing(cfg, which)
    h = hashlib.sha256(data_hash(path)["value"].encode())
    for rel in frame[PATH].tolist():
        p = file_of(root, rel)
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"absent")
    return {"algo": "sha256-images", "value": h.hexdigest()}


def image_folders(cfg: Config, which: str) -> list[str]:
    """The folders (relative to the config's) that hold a table's images, for DVC's stage
    dependencies: a changed image then reruns the stages as a changed table does."""
    import os

    path = cfg.resolve(getattr(cfg.data, which))
    if path.is_dir() or not path.is_file():
        return []
    frame, root = read_listing(cfg, which)
    tops = sorted({Path(rel).parts[0] for rel in frame[PATH].tolist()
                   if len(Path(rel).parts) > 1})
    return [Path(os.path.relpath(file_of(root, t), cfg.root)).as_posix() for t in tops]
