"""Decay: is a model's live loss worse than its recorded baseline by more than an allowance?

The baseline is a fixed record (the golden-set metric of a model version and its row count);
the live losses keep arriving. With `theta = live - scale * baseline - margin` (absolute margin
for accuracy, relative `scale = 1 + margin` for MAE), the model has *decayed* when the lower
bound of theta is above 0.

- `monitor` (design "fixed"): each window is one test, a one-sided z-test at level alpha.
- design "sequential", for a check repeated on a growing log: the live mean gets a confidence
  sequence at alpha/2 (valid at every run, see `mlci.stats.sequential`) and the fixed
  baseline a z bound at alpha/2; by Bonferroni at most alpha however often it runs.

A baseline accuracy's variance is binomial; a baseline MAE's is unknown from the record, so
the live losses' variance stands in for it (the same model on comparable data).

The post-promotion watch does not use a golden-set baseline: live data is rarely as easy as the
golden set, and a gap that hits both models alike would roll back a champion as good as the
old one. `watch_test` compares the new champion with the old one on live traffic instead:

- paired (the default): the old champion replayed on the very rows the new one answered,
  theta = mean(loss_new - scale * loss_old) - margin; whatever makes live data harder
  cancels row by row;
- live baseline: the old champion's own answered rows in the prediction log (before the
  promotion), theta = mean_new - scale * mean_old - margin (two samples).

Both use the confidence sequence at alpha (`mlci.stats.sequential`), so a champion as good
as the old one is rolled back with probability at most alpha however often the watch runs;
the simulation is `bench/drift.py` (watch cells) and tests/test_monitor.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlci.stats.sequential import FIXED, SEQUENTIAL, Arm, contrast_var, halfwidth


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


def paired_bounds(n: np.ndarray, total: np.ndarray, sumsq: np.ndarray, *, margin: float,
                  alpha: float, rho: float, var: np.ndarray | None = None,
                  binary: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, lower, upper) of theta = mean(d) - margin from the sums of the paired
    differences d; a confidence sequence at alpha on each side. Numpy arrays broadcast, so
    the benchmark judges thousands of watches at once with this code. `var`: a variance of
    the mean to use instead of the iid one (cluster-robust, from `Arm`)."""
    arm = Arm(np.asarray(n), np.asarray(total, dtype=float), np.asarray(sumsq, dtype=float))
    v = arm.iid_var() if var is None else var
    if binary:  # identical answers have no variance; one discordant pair's worth keeps
        v = np.maximum(v, 1.0 / np.maximum(arm.n, 1) ** 2)  # the bound honest at small n
    h = halfwidth(v, alpha, design=SEQUENTIAL, rho=rho)
    est = arm.mean - margin
    return est, est - h, est + h


def watch_rho(margin: float, binary: bool, old_mean: float) -> float:
    """The confidence sequence's tuning: detect soonest an excess of twice the allowance."""
    return 2 * margin * (1.0 if binary else max(old_mean, 1e-9)) or 0.02


def watch_test(new: np.ndarray, old: np.ndarray, keys: np.ndarray | None, *, paired: bool,
               margin: float, alpha: float, binary: bool) -> dict[str, Any]:
    """Is the new champion worse than the old one on live traffic by more than the allowance?

    `new`, `old`: per-row losses (0/1 errors or absolute errors); paired: the same rows (old
    replayed), else two samples. `margin`: absolute for errors, relative for MAE. `keys`:
    routing keys of the new champion's rows (cluster-robust variance; paired only)."""
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    scale, m_abs = (1.0, margin) if binary else (1.0 + margin, 0.0)
    rho = watch_rho(margin, binary, float(old.mean()) if len(old) else 0.0)
    if paired:
        d = new - scale * old
        arm = Arm.of(d, keys)
        var = arm.cluster_var() if keys is not None else None
        est, lower, upper = paired_bounds(arm.n, arm.total, arm.sumsq, margin=m_abs,
                                          alpha=alpha, rho=rho, var=var, binary=binary)
    else:
        a1, a0 = Arm.of(new), Arm.of(old)
        v = contrast_var(a1, a0, scale=scale, margin=m_abs, binary=binary)
        h = halfwidth(v, alpha, design=SEQUENTIAL, rho=rho)
        est = a1.mean - scale * a0.mean - m_abs
        lower, upper = est - h, est + h
    return {"estimate": float(est), "lower": float(lower), "upper": float(upper),
            "decayed": bool(lower > 0), "shown_fine": bool(upper < 0),
            "comparison": "paired" if paired else "live baseline", "design": SEQUENTIAL,
            "n": int(len(new)), "n_old": int(len(old)), "clustered": keys is not None,
            "live_new": float(new.mean()), "live_old": float(old.mean())}
