"""A small image classifier and its images, for the gateway's image tests (no tests here).

The model is what issue 24 calls an image model: its MLflow signature declares one tensor
`(-1, 16, 16, 3)` uint8, and it does its own scaling (a scikit-learn Pipeline that flattens
the batch and standardises it before a logistic regression). The classes are the dominant
colour of the picture ("red", "green", "blue"), which survives JPEG and resizing.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np

SIDE = 16
CLASSES = ["blue", "green", "red"]
_CHANNEL = {"red": 0, "green": 1, "blue": 2}


def pictures(n: int, seed: int = 0, size: tuple[int, int] = (SIDE, SIDE)) -> tuple[Any, list]:
    """`n` noisy RGB pictures (n, h, w, 3) uint8 and their colour labels."""
    rng = np.random.default_rng(seed)
    h, w = size
    labels = [CLASSES[i % 3] for i in range(n)]
    x = rng.integers(0, 90, (n, h, w, 3))
    for i, y in enumerate(labels):
        x[i, :, :, _CHANNEL[y]] += 150
    return x.clip(0, 255).astype(np.uint8), labels


def encoded(arr: Any, fmt: str) -> bytes:
    """One (h, w, 3) picture as PNG, JPEG or WebP bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt != "PNG" else {}))
    return buf.getvalue()


@functools.cache
def fitted() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = pictures(150)
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, SIDE * SIDE * 3)})
    return Pipeline([("flatten", flatten), ("scale", StandardScaler()),
                     ("model", LogisticRegression(max_iter=500))]).fit(x, y)


def signature() -> Any:
    """The model's MLflow signature: a (-1, 16, 16, 3) uint8 tensor in."""
    from mlflow.models import infer_signature

    x, _ = pictures(3)
    return infer_signature(x, np.array(fitted().predict(x)))


def register(root: Any, name: str = "colours") -> None:
    """Log the model to `<root>/.mlci/mlflow.db` (SQLite) and make version 1 its champion."""
    import mlflow
    import mlflow.sklearn

    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    (root / ".mlci").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(fitted(), name="model", signature=signature(),
                                 registered_model_name=name,
                                 serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn"])
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        name, "champion", "1")
