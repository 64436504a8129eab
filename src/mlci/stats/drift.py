"""Drift of a current sample against a reference profile (`mlci.stats.reference`): the one
drift engine behind `mlci data update` and `mlci monitor`.

Numeric columns: Kolmogorov–Smirnov test, Wasserstein distance normalised by the reference
standard deviation, and PSI on the reference's bins. Categorical columns: chi-square test of
the 2×K contingency table (reference vs current counts — a two-sample test, not a
goodness-of-fit test against fixed shares), Jensen–Shannon distance, and PSI.

A raw reference frame is first summarised by `reference.build`, exactly as training does, so
both triggers reach the same verdict on the same data. A reference of at most
`reference.EXACT_MAX` values is kept whole and compared exactly (scipy's two-sample KS, exact
Wasserstein); larger ones through their quantile function.

Which statistic decides ("auto"): small samples use the tests (p-value < alpha); large samples,
where any test rejects trivial shifts, use the distances (Wasserstein / JS above a threshold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.stats import reference

if TYPE_CHECKING:
    import pandas as pd

LARGE_SAMPLE = 1000  # per side; above it, "auto" decides on distances
PVALUE_METHODS = {"ks": "ks_pvalue", "chi2": "chi2_pvalue"}
DISTANCE_METHODS = {"wasserstein": "wasserstein", "jensenshannon": "jensenshannon",
                    "psi": "psi"}


@dataclass
class DriftConfig:
    alpha: float = 0.05
    wasserstein_threshold: float = 0.1
    jensenshannon_threshold: float = 0.1
    psi_threshold: float = 0.2
    min_samples: int = 30
    share_threshold: float = 0.5  # dataset drift when this share of columns drifted
    method: str = "auto"          # auto | ks | wasserstein | chi2 | jensenshannon | psi
    per_column: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ColumnDrift:
    column: str
    kind: str                # numeric | categorical
    method: str              # the statistic that decided
    drifted: bool | None     # None: not enough data
    n_reference: int
    n_current: int
    statistics: dict[str, float | None]
    threshold: float
    reason: str = ""


def deciding_value(method: str, statistics: dict[str, Any]) -> tuple[str, float | None]:
    """What decided a column: ("p-value", p) for a test, ("distance", d) for a distance."""
    if method in PVALUE_METHODS:
        return "p-value", statistics.get(PVALUE_METHODS[method])
    return ("PSI" if method == "psi" else "distance"), statistics.get(DISTANCE_METHODS.get(
        method, ""))


def _psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = 1e-4) -> float:
    r = np.clip(ref_share, eps, None)
    c = np.clip(cur_share, eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _exact_cdf_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, its p-value and the Wasserstein-1 distance of two sorted samples."""
    from scipy import stats

    both = np.sort(np.concatenate([ref, cur]), kind="stable")
    cdf_r = np.searchsorted(ref, both, side="right") / len(ref)
    cdf_c = np.searchsorted(cur, both, side="right") / len(cur)
    d = float(np.max(np.abs(cdf_r - cdf_c)))
    w = float(np.sum(np.abs(cdf_r[:-1] - cdf_c[:-1]) * np.diff(both)))
    n, m = len(ref), len(cur)
    en = n * m / (n + m)
    if en > 10_000:  # the limiting distribution; scipy's kstwo agrees to ~1e-3 here, 50x slower
        p = float(stats.kstwobign.sf(d * np.sqrt(en)))
    elif min(n, m) > 10_000:  # scipy's asymptotic branch, same formula
        p = float(stats.kstwo.sf(d, np.round(en)))
    else:
        p = float(stats.ks_2samp(ref, cur).pvalue)
    return d, p, w


def _ref_cdf(q: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The reference CDF from its quantiles, right limit F(x) or left limit F(x-).

    A run of equal quantiles is an atom (a repeated value): the right limit is the share
    up to the run's end, the left limit the share before its start; between quantiles the
    CDF is interpolated.
    """
    grid = reference.GRID
    last = len(q) - 1
    j = np.searchsorted(q, x, side="right" if side == "right" else "left") - 1
    k = j + 1
    jc, kc = np.clip(j, 0, last), np.clip(k, 0, last)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(q[kc] > q[jc], (x - q[jc]) / (q[kc] - q[jc]), 0.0)
    f = grid[jc] + (grid[kc] - grid[jc]) * np.clip(frac, 0.0, 1.0)
    return np.where(j < 0, 0.0, np.where(k > last, 1.0, f))


def _ks_from_quantiles(q: np.ndarray, cur: np.ndarray, n_ref: int) -> tuple[float, float]:
    """Two-sample KS with the reference given by its quantile function (scipy's asymptotic
    p-value: kstwo with the effective sample size). Both CDFs are compared at every jump
    point of either, from the right and from the left, so repeated values are exact."""
    from scipy import stats

    m = len(cur)
    pts = np.unique(np.concatenate([cur, q]))
    g_r = np.searchsorted(cur, pts, side="right") / m
    g_l = np.searchsorted(cur, pts, side="left") / m
    d = float(max(np.max(np.abs(_ref_cdf(q, pts, "right") - g_r)),
                  np.max(np.abs(_ref_cdf(q, pts, "left") - g_l))))
    en = n_ref * m / (n_ref + m)
    if en > 10_000:
        return d, float(stats.kstwobign.sf(d * np.sqrt(en)))
    return d, float(stats.kstwo.sf(d, np.round(en)))


def numeric_stats(ref: dict[str, Any], cur: np.ndarray) -> dict[str, float | None]:
    cur = np.sort(cur)
    if ref.get("values") is not None:
        d, p, wd = _exact_cdf_stats(np.asarray(ref["values"], dtype=float), cur)
    else:
        q = np.asarray(ref["quantiles"])
        d, p = _ks_from_quantiles(q, cur, ref["n"])
        rs = np.asarray(ref["slice_means"])
        wd = float(np.mean(np.abs(rs - reference.slice_means(cur, len(rs)))))
    sd = ref["std"]
    edges = np.asarray(ref["psi_edges"])
    return {
        "ks_statistic": d, "ks_pvalue": p,
        "wasserstein": wd / sd if sd > 0 else (0.0 if wd == 0 else float("inf")),
        "psi": _psi(np.asarray(ref["psi_shares"]), reference.bin_shares(edges, cur))
        if len(edges) else None,
        "mean_reference": ref["mean"], "mean_current": float(np.mean(cur)),
        "std_reference": sd, "std_current": float(np.std(cur)),
    }


def categorical_stats(ref: dict[str, Any], cur: pd.Series) -> dict[str, float | None]:
    import pandas as pd
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    counts = pd.concat([pd.Series(ref["counts"], dtype=float), cur.astype(str).value_counts()],
                       axis=1).fillna(0).to_numpy()
    r, c = counts[:, 0], counts[:, 1]
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p = 0.0, 1.0
    else:
        res = stats.chi2_contingency(table, correction=False)
        chi2, p = float(res.statistic), float(res.pvalue)
    rs, cs = r / r.sum(), c / c.sum()
    return {"chi2_statistic": chi2, "chi2_pvalue": p,
            "jensenshannon": float(jensenshannon(rs, cs, base=2)), "psi": _psi(rs, cs),
            "categories_new": int(((r == 0) & (c > 0)).sum())}


def _decide(kind: str, st: dict[str, float | None], n: int, cfg: DriftConfig,
            method: str) -> tuple[str, bool, float]:
    # a test named for one kind of column means its counterpart for the other kind
    if kind == "numeric":
        method = {"chi2": "ks", "jensenshannon": "wasserstein"}.get(method, method)
    else:
        method = {"ks": "chi2", "wasserstein": "jensenshannon"}.get(method, method)
    if method == "auto":
        if kind == "numeric":
            method = "wasserstein" if n > LARGE_SAMPLE else "ks"
        else:
            method = "jensenshannon" if n > LARGE_SAMPLE else "chi2"
    if method in PVALUE_METHODS:
        p = st[PVALUE_METHODS[method]]
        return method, bool(p is not None and p < cfg.alpha), cfg.alpha
    if method in DISTANCE_METHODS:
        threshold = {"wasserstein": cfg.wasserstein_threshold, "psi": cfg.psi_threshold,
                     "jensenshannon": cfg.jensenshannon_threshold}[method]
        v = st.get(DISTANCE_METHODS[method])
        return method, bool(v is not None and v > threshold), threshold
    raise ValueError(f"unknown drift method {method!r}")


def column_drift(name: str, ref: dict[str, Any], cur: pd.Series,
                 cfg: DriftConfig) -> ColumnDrift:
    opts = cfg.per_column.get(name, {})
    method = opts.get("method", cfg.method)
    cur = cur.dropna()
    kind = ref["kind"]
    n = min(ref["n"], len(cur))
    if n < cfg.min_samples:
        return ColumnDrift(name, kind, method, None, ref["n"], len(cur), {}, float("nan"),
                           reason=f"not enough data ({n} < {cfg.min_samples})")
    if kind == "numeric":
        try:
            values = cur.to_numpy(dtype=float)
        except (TypeError, ValueError):
            return ColumnDrift(name, kind, method, True, ref["n"], len(cur), {}, float("nan"),
                               reason="the reference is numeric, these values are not")
        st = numeric_stats(ref, values)
    else:
        st = categorical_stats(ref, cur)
    local = DriftConfig(**{**asdict(cfg), **{k: v for k, v in opts.items() if k != "method"}})
    used, drifted, threshold = _decide(kind, st, n, local, method)
    return ColumnDrift(name, kind, used, drifted, ref["n"], len(cur), st, threshold)


def _summary(results: list[ColumnDrift], cfg: DriftConfig) -> dict[str, Any]:
    """Per-column results plus the dataset verdict (share of drifted columns)."""
    judged = [r for r in results if r.drifted is not None]
    drifted = [r.column for r in judged if r.drifted]
    share = len(drifted) / len(judged) if judged else 0.0
    return {
        "columns": [asdict(r) for r in results],
        "drifted_columns": drifted,
        "share_drifted": share,
        "dataset_drift": bool(judged) and share >= cfg.share_threshold,
        "enough_data": bool(judged),
        "any_drift": bool(drifted),
    }


def compare_profile(profile: dict[str, Any], current: pd.DataFrame,
                    cfg: DriftConfig | None = None,
                    predictions: pd.Series | None = None) -> dict[str, Any]:
    """Drift of a current sample against a stored reference profile."""
    cfg = cfg or DriftConfig()
    cols = [c for c in profile["features"] if c in current.columns]
    out = _summary([column_drift(c, profile["columns"][c], current[c], cfg) for c in cols], cfg)
    out["missing_columns"] = [c for c in profile["features"] if c not in current.columns]
    out["prediction"] = None
    if predictions is not None and "prediction" in profile:
        out["prediction"] = asdict(column_drift(
            "prediction", profile["prediction"], predictions.astype(str), cfg))
    return out


def compare(reference_frame: pd.DataFrame, current: pd.DataFrame,
            cfg: DriftConfig | None = None, columns: list[str] | None = None) -> dict[str, Any]:
    """Drift of a current frame against a raw reference frame: the reference is profiled
    exactly as at training time, then compared like a stored profile (one engine)."""
    cols = columns or [c for c in reference_frame.columns if c in current.columns]
    return compare_profile(reference.build(reference_frame[cols]), current[cols], cfg)
