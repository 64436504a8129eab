"""Decay: is a model's live loss worse than its recorded baseline by more than an allowance?

The baseline is a fixed record (the golden-set metric of a model version and its row count);
the live losses keep arriving. With `theta = live - scale * baseline - margin` (absolute margin
for accuracy, relative `scale = 1 + margin` for MAE), the model has *decayed* when the lower
bound of theta is above 0.

- `monitor` (design "fixed"): each window is one test, a one-sided z-test at level alpha.
- the post-promotion watch (design "sequential"): the same watch runs again and again on a
  growing log, so the live mean gets a confidence sequence at alpha/2 (valid at every run,
  see `mlci.stats.sequential`) and the fixed baseline a z bound at alpha/2; by Bonferroni a
  fine champion is rolled back with probability at most alpha, however many times it is
  watched.

A baseline accuracy's variance is binomial; a baseline MAE's is unknown from the record, so
the live losses' variance stands in for it (the same model on comparable data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlci.stats.sequential import FIXED, SEQUENTIAL, Arm, halfwidth


def decay_test(losses: np.ndarray, keys: np.ndarray | None, *, baseline: float,
               baseline_n: int, margin: float, alpha: float, binary: bool,
               design: str = FIXED) -> dict[str, Any]:
    """`losses`: the live per-instance losses (0/1 errors or absolute errors)."""
    live = Arm.of(losses, keys)
    n = int(live.n)
    scale, m_abs = (1.0, margin) if binary else (1.0 + margin, 0.0)
    if binary:
        p1 = (float(live.total) + 0.5) / (n + 1)
        v1 = p1 * (1 - p1) / n
        if keys is not None:
            v1 *= max(1.0, float(live.cluster_var()) / max(float(live.iid_var()), 1e-300))
        p0 = (baseline * baseline_n + 0.5) / (baseline_n + 1)
        v0 = p0 * (1 - p0) / baseline_n
    else:
        v1 = float(live.cluster_var() if keys is not None else live.iid_var())
        v0 = float(np.var(losses, ddof=1)) / baseline_n if n > 1 else 0.0
    est = float(live.mean) - scale * baseline - m_abs
    if design == SEQUENTIAL:
        rho = 2 * margin * (1.0 if binary else max(baseline, 1e-9)) or 0.02
        h1 = float(halfwidth(v1, alpha / 2, design=SEQUENTIAL, rho=rho))
        h0 = float(halfwidth(v0, alpha / 2, design=FIXED))
        lower = est - h1 - scale * h0
        upper = est + h1 + scale * h0
    else:
        h = float(halfwidth(v1 + scale * scale * v0, alpha, design=FIXED))
        lower, upper = est - h, est + h
    from scipy.stats import norm

    se = float(np.sqrt(v1 + scale * scale * v0))
    return {"estimate": est, "lower": lower, "upper": upper, "design": design,
            "decayed": bool(lower > 0), "shown_fine": bool(upper < 0),
            "p_value": float(norm.sf(est / se)) if se > 0 else float(est <= 0),
            "n": n, "clustered": keys is not None}
