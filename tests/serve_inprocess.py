"""The real gateway application in process, on real scikit-learn models fitted here (no
registry, no MLflow): for attacks that are about the application's logic (what it refuses,
counts, routes and logs). Attacks on connections run against a real `mlci serve` instead
(test_serve_security.py, test_serve_hostile_e2e.py). No tests here."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

from mlci.serve.app import Gateway, Loaded
from mlci.serve.guard import Limits
from mlci.serve.inputs import spec_of
from mlci.serve.routing import Routing

COLS = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]
TOKEN = "in-process-feedback-token-0123"


@functools.cache
def digits() -> tuple[Any, Any]:
    """sklearn's bundled digits (no download) as a DataFrame with the example's columns."""
    import pandas as pd
    from sklearn.datasets import load_digits

    d = load_digits()
    return pd.DataFrame(d.data, columns=COLS), d.target


@functools.cache
def fitted(kind: str) -> Any:
    """`plain`: logistic regression (refuses NaN); `imputing`: the same behind a mean
    imputer (takes missing values); `half`: plain on the first 32 pixels only."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y = digits()
    lr = LogisticRegression(max_iter=300)
    model = make_pipeline(SimpleImputer(), lr) if kind == "imputing" else lr
    if kind == "half":  # trained on 32 of the 64 pixels: cannot take the served requests
        x = x[COLS[:32]]
    with warnings.catch_warnings():  # unscaled pixels: lbfgs stops at max_iter, fine here
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x[:600], y[:600])


def loaded(version: str, kind: str) -> Loaded:
    from sklearn.pipeline import Pipeline

    model = fitted(kind)
    m = Loaded(version, model, [int(c) for c in model.classes_], spec_of(model),
               isinstance(model, Pipeline))
    m.spec.missing_ok = m.scores_missing()
    return m


def gateway(tmp: Path, routing: Routing, models: dict[str, str], **kw: Any) -> Gateway:
    """A Gateway routing as `routing` between `models` (version -> kind)."""
    kw.setdefault("limits", Limits())
    gw = Gateway("digits", log_path=tmp / "predictions.db", state_file=tmp / "state.json",
                 poll=3600, feedback_token=TOKEN, secret=b"s" * 32, **kw)
    gw.active = (routing, {v: loaded(v, k) for v, k in models.items()})
    return gw


def client(gw: Gateway, host: str = "127.0.0.1") -> Any:
    """A test client on the real ASGI stack (guard included), without the lifespan: the
    routing stays what the test set."""
    import warnings

    with warnings.catch_warnings():  # starlette 1.x asks for httpx2 (not installed here)
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(gw.app(), client=(host, 50000), raise_server_exceptions=False)


def sample(gw: Gateway, name: str, **labels: str) -> float:
    return gw.metrics.registry.get_sample_value(name, labels) or 0.0
