"""`mlci init --profile <folder>`: a starter project from an image folder.

The folder has one sub-folder per class. Without `--golden`, a seeded split stratified by
class holds out a golden set as two tables of paths beside the folder (`<folder>-train.csv`,
`<folder>-golden.csv`): no image is copied, identical images (same content hash) stay on one
side. The suite is profiled from the training part's per-image metadata. The model is a
scikit-learn classifier on flattened pixels, gated on accuracy above the majority-class share.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError

if TYPE_CHECKING:
    import pandas as pd

    from mlci.data.starter import InitRequest

MIN_IMAGES = 20
IMAGE_MODEL = """\
model:
  # pixels, flattened and scaled to 0..1 inside the logged model (it takes the uint8 tensor)
  estimator: sklearn.linear_model.LogisticRegression
  params: {{C: 0.1, max_iter: 1000}}
gate:
  # floor: the majority-class share of the training images (a model must beat always
  # guessing the most frequent class); raise it to the accuracy you need
  min: {{accuracy: {floor}}}
  max_regression: {{accuracy: 0.02}}
"""


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`32` or `32x48` (height x width)."""
    if not text:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        raise MlciError(f"--image-size {text!r}: give HEIGHTxWIDTH or one side, e.g. 32x32") \
            from None
    if len(sides) not in (1, 2) or any(not 0 < s <= 8192 for s in sides):
        raise MlciError(f"--image-size {text!r}: give HEIGHTxWIDTH or one side, 1..8192")
    return (sides[0], sides[-1])


def _common_size(meta: pd.DataFrame) -> tuple[int, int]:
    ok = meta[meta["decodable"].astype(bool)]
    sizes = Counter(zip(ok["height"].astype(int), ok["width"].astype(int), strict=True))
    if not sizes:
        raise MlciError("no image decodes: nothing to profile")
    return sizes.most_common(1)[0][0]


def split_images(meta: pd.DataFrame, share: float, seed: int) -> tuple[Any, Any]:
    """Train and golden rows of the metadata, stratified by class, identical images together."""
    from sklearn.model_selection import train_test_split

    distinct = meta.drop_duplicates("sha256")
    counts = distinct["label"].value_counts()
    stratify = distinct["label"] if counts.min() >= 2 else None
    _, golden = train_test_split(distinct, test_size=share, random_state=seed,
                                 stratify=stratify)
    held = meta["sha256"].isin(set(golden["sha256"]))
    return meta[~held], meta[held]


def initialise_images(req: InitRequest, image_size: str | None, channels: int | None) -> list[str]:
    """Write the suite, and for a new config mlci.yaml and the split tables; everything is
    checked before anything is written."""
    from mlci.data import imageset
    from mlci.data.profile import profile_image_suite
    from mlci.data.starter import _existing, _rel
    from mlci.io import atomic_write_json, atomic_write_text

    folder = req.data
    meta = imageset.metadata(imageset.listing(folder, str(folder)), folder)
    if len(meta) < MIN_IMAGES and req.golden is None:
        raise MlciError(f"{folder}: {len(meta)} images are too few to hold out a golden set; "
                        "pass --golden FOLDER")
    if meta["label"].nunique() < 2:
        raise MlciError(f"{folder}: one class sub-folder; a classifier needs two or more")
    if req.suite.exists() and not req.force:
        raise MlciError(f"{req.suite}: exists; pass --force to overwrite")
    size = parse_size(image_size) or _common_size(meta)
    ok = meta[meta["decodable"].astype(bool)]
    chans = channels or (1 if set(ok["mode"]) <= {"L", "1", "I", "I;16", "F"} else 3)
    root = req.config_path.parent
    new_config = not req.config_path.exists() or req.force
    train_meta, train_rel, golden_rel = meta, _rel(folder, root), req.golden
    tables: list[tuple[Path, Any]] = []
    if new_config and req.golden is None:
        train_meta, golden_meta = split_images(meta, req.golden_share, req.seed)
        for part, which in ((train_meta, "train"), (golden_meta, "golden")):
            p = folder.with_name(f"{folder.name}-{which}.csv")
            if p.exists() and not req.force:
                raise MlciError(f"{p}: exists; pass --force to overwrite, or --golden FOLDER")
            tables.append((p, part))
        train_rel, golden_rel = _rel(tables[0][0], root), _rel(tables[1][0], root)
    name = req.name or str(_existing(req.config_path).get("name") or "") or \
        Path.cwd().name or "model"
    suite = profile_image_suite(train_meta, name=name)
    done = [f"task: classification: {meta['label'].nunique()} class sub-folders in {folder}",
            f"images: {len(meta)}, resized to {size[0]}x{size[1]}, {chans} channel(s)"
            f"{'' if image_size else ' (the most common size; set --image-size)'}"]
    # nothing is written before this line
    for p, part in tables:
        rel_to_table = [Path(os.path.relpath(folder / r, p.parent)).as_posix()
                        for r in part["path"]]
        import pandas as pd

        atomic_write_text(p, pd.DataFrame({"path": rel_to_table, "label": part["label"]})
                          .to_csv(index=False))
    if tables:
        done.append(f"wrote {tables[0][0]} ({len(tables[0][1])} images) and {tables[1][0]} "
                    f"({len(tables[1][1])} images, held out with seed {req.seed})")
    atomic_write_json(req.suite, suite)
    done.append(f"wrote {req.suite} ({len(suite['expectations'])} expectations)")
    if new_config:
        floor = int(float(train_meta["label"].value_counts(normalize=True).iloc[0]) * 100) / 100
        q = json.dumps
        text = (f"name: {q(name)}\ndata:\n  train: {q(train_rel)}\n"
                f"  golden: {q(golden_rel)}\n  target: label\n"
                f"  image_size: [{size[0]}, {size[1]}]\n  channels: {chans}\n"
                f"  expectations: {q(_rel(req.suite, root))}\n"
                + IMAGE_MODEL.format(floor=floor))
        atomic_write_text(req.config_path, text)
        done.append(f"wrote {req.config_path} (image classification)")
    return done
