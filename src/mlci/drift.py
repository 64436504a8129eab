"""Two-sample drift statistics per column, shared by data updates and monitoring.

Numeric columns: Kolmogorov–Smirnov test, Wasserstein distance normalised by the reference
standard deviation, and PSI on reference-quantile bins. Categorical columns: chi-square test of
the 2×K contingency table (reference vs current counts — a two-sample test, not a
goodness-of-fit test against fixed shares), Jensen–Shannon distance, and PSI.

Which statistic decides ("auto"): small samples use the tests (p-value < alpha); large samples,
where any test rejects trivial shifts, use the distances (Wasserstein / JS above a threshold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

LARGE_SAMPLE = 1000  # per side; above it, "auto" decides on distances


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


def _psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float = 1e-4) -> float:
    r = np.clip(ref_share, eps, None)
    c = np.clip(cur_share, eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _two_sample_cdf_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance from sorted samples, sharing one merge.

    The same formulas as scipy's `ks_2samp` and `wasserstein_distance`, but each array is
    sorted once (and the merge of two sorted runs is linear with a stable sort).
    """
    both = np.sort(np.concatenate([ref, cur]), kind="stable")
    cdf_r = np.searchsorted(ref, both, side="right") / len(ref)
    cdf_c = np.searchsorted(cur, both, side="right") / len(cur)
    d = float(np.max(np.abs(cdf_r - cdf_c)))
    w = float(np.sum(np.abs(cdf_r[:-1] - cdf_c[:-1]) * np.diff(both)))
    return d, w


def numeric_stats(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> dict[str, float | None]:
    from scipy import stats

    ref, cur = np.sort(ref), np.sort(cur)
    n, m = len(ref), len(cur)
    d, wd = _two_sample_cdf_stats(ref, cur)
    en = n * m / (n + m)
    if en > 10_000:  # the limiting distribution; scipy's kstwo agrees to ~1e-3 here, 50x slower
        p = float(stats.kstwobign.sf(d * np.sqrt(en)))
    elif min(n, m) > 10_000:  # scipy's asymptotic branch, same formula
        p = float(stats.kstwo.sf(d, np.round(en)))
    else:
        p = float(stats.ks_2samp(ref, cur).pvalue)
    sd = float(np.std(ref))
    edges = np.unique(ref[np.minimum((np.linspace(0, 1, bins + 1) * (n - 1)).round().astype(int),
                                     n - 1)])
    if len(edges) > 2:
        inner = edges[1:-1]
        r = np.diff(np.searchsorted(ref, inner, side="right"), prepend=0, append=n)
        c = np.diff(np.searchsorted(cur, inner, side="right"), prepend=0, append=m)
        psi = _psi(r / n, c / m)
    else:
        psi = None
    return {
        "ks_statistic": d,
        "ks_pvalue": p,
        "wasserstein": wd / sd if sd > 0 else (0.0 if wd == 0 else float("inf")),
        "psi": psi,
        "mean_reference": float(np.mean(ref)),
        "mean_current": float(np.mean(cur)),
        "std_reference": sd,
        "std_current": float(np.std(cur)),
    }


def categorical_stats(ref: pd.Series, cur: pd.Series) -> dict[str, float | None]:
    import pandas as pd

    counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0).to_numpy()
    return _categorical_from_counts(counts[:, 0], counts[:, 1])


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
    if method in ("ks", "chi2"):
        p = st["ks_pvalue" if method == "ks" else "chi2_pvalue"]
        return method, bool(p is not None and p < cfg.alpha), cfg.alpha
    if method == "wasserstein":
        return method, bool(st["wasserstein"] > cfg.wasserstein_threshold), \
            cfg.wasserstein_threshold
    if method == "jensenshannon":
        return method, bool(st["jensenshannon"] > cfg.jensenshannon_threshold), \
            cfg.jensenshannon_threshold
    if method == "psi":
        v = st.get("psi")
        return method, bool(v is not None and v > cfg.psi_threshold), cfg.psi_threshold
    raise ValueError(f"unknown drift method {method!r}")


def is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and \
        not (pd.api.types.is_integer_dtype(s) and s.nunique() <= 10)


def column_drift(name: str, ref: pd.Series, cur: pd.Series, cfg: DriftConfig) -> ColumnDrift:
    opts = cfg.per_column.get(name, {})
    method = opts.get("method", cfg.method)
    ref, cur = ref.dropna(), cur.dropna()
    kind = "numeric" if is_numeric(ref) and is_numeric(cur) else "categorical"
    n = min(len(ref), len(cur))
    if n < cfg.min_samples:
        return ColumnDrift(name, kind, method, None, len(ref), len(cur), {},
                           float("nan"), reason=f"not enough data ({n} < {cfg.min_samples})")
    if kind == "numeric":
        st = numeric_stats(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
    else:
        st = categorical_stats(ref.astype(str), cur.astype(str))
    local = DriftConfig(**{**asdict(cfg), **{k: v for k, v in opts.items() if k != "method"}})
    used, drifted, threshold = _decide(kind, st, n, local, method)
    return ColumnDrift(name, kind, used, drifted, len(ref), len(cur), st, threshold)


def compare(reference: pd.DataFrame, current: pd.DataFrame, cfg: DriftConfig | None = None,
            columns: list[str] | None = None) -> dict[str, Any]:
    """Per-column drift plus the dataset verdict (share of drifted columns)."""
    cfg = cfg or DriftConfig()
    cols = columns or [c for c in reference.columns if c in current.columns]
    return _summary([column_drift(c, reference[c], current[c], cfg) for c in cols], cfg)


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


# ------------------------------------------------------- against a stored reference profile


def _ref_cdf(q: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The reference CDF from its quantiles, right limit F(x) or left limit F(x-).

    A run of equal quantiles is an atom (a repeated value): the right limit is the share
    up to the run's end, the left limit the share before its start; between quantiles the
    CDF is interpolated.
    """
    from mlci.reference import GRID

    last = len(q) - 1
    if side == "right":
        j = np.searchsorted(q, x, side="right") - 1      # last quantile <= x
    else:
        j = np.searchsorted(q, x, side="left") - 1       # last quantile < x
    k = j + 1
    jc, kc = np.clip(j, 0, last), np.clip(k, 0, last)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(q[kc] > q[jc], (x - q[jc]) / (q[kc] - q[jc]), 0.0)
    f = GRID[jc] + (GRID[kc] - GRID[jc]) * np.clip(frac, 0.0, 1.0)
    return np.where(j < 0, 0.0, np.where(k > last, 1.0, f))


def _ks_from_quantiles(q: np.ndarray, cur: np.ndarray, n_ref: int) -> tuple[float, float]:
    """Two-sample KS with the reference given by its quantile function (scipy's asymptotic
    p-value: kstwo with the effective sample size). Both CDFs are compared at every jump
    point of either, from the right and from the left, so repeated values are exact."""
    from scipy import stats

    cur = np.sort(cur)
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


def numeric_stats_profile(ref: dict[str, Any], cur: np.ndarray) -> dict[str, float | None]:
    from mlci.reference import GRID, slice_means

    q = np.asarray(ref["quantiles"])
    d, p = _ks_from_quantiles(q, cur, ref["n"])
    if ref.get("slice_means"):
        rs = np.asarray(ref["slice_means"])
        wd = float(np.mean(np.abs(rs - slice_means(np.sort(cur), len(rs)))))
    else:
        trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 1.x has only trapz
        wd = float(trapezoid(np.abs(q - np.quantile(cur, GRID)), GRID))
    sd = ref["std"]
    edges = np.asarray(ref["psi_edges"])
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return {
        "ks_statistic": d, "ks_pvalue": p,
        "wasserstein": wd / sd if sd > 0 else (0.0 if wd == 0 else float("inf")),
        "psi": _psi(np.asarray(ref["psi_shares"]), c / c.sum()) if len(edges) else None,
        "mean_reference": ref["mean"], "mean_current": float(np.mean(cur)),
        "std_reference": sd, "std_current": float(np.std(cur)),
    }


def categorical_stats_profile(ref: dict[str, Any], cur: pd.Series) -> dict[str, float | None]:
    import pandas as pd

    ref_s = pd.Series(ref["counts"], dtype=float)
    cur_counts = cur.astype(str).value_counts()
    counts = pd.concat([ref_s, cur_counts], axis=1).fillna(0).to_numpy()
    return _categorical_from_counts(counts[:, 0], counts[:, 1])


def _categorical_from_counts(r: np.ndarray, c: np.ndarray) -> dict[str, float | None]:
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

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


def column_drift_profile(name: str, ref: dict[str, Any], cur: pd.Series,
                         cfg: DriftConfig) -> ColumnDrift:
    opts = cfg.per_column.get(name, {})
    method = opts.get("method", cfg.method)
    cur = cur.dropna()
    kind = ref["kind"]
    n = min(ref["n"], len(cur))
    if n < cfg.min_samples:
        return ColumnDrift(name, kind, method, None, ref["n"], len(cur), {}, float("nan"),
                           reason=f"not enough data ({len(cur)} < {cfg.min_samples})")
    if kind == "numeric":
        st = numeric_stats_profile(ref, cur.to_numpy(dtype=float))
    else:
        st = categorical_stats_profile(ref, cur)
    local = DriftConfig(**{**asdict(cfg), **{k: v for k, v in opts.items() if k != "method"}})
    used, drifted, threshold = _decide(kind, st, n, local, method)
    return ColumnDrift(name, kind, used, drifted, ref["n"], len(cur), st, threshold)


def compare_profile(profile: dict[str, Any], current: pd.DataFrame,
                    cfg: DriftConfig | None = None,
                    predictions: pd.Series | None = None) -> dict[str, Any]:
    """Drift of a production window against a stored reference profile."""
    cfg = cfg or DriftConfig()
    cols = [c for c in profile["features"] if c in current.columns]
    results = [column_drift_profile(c, profile["columns"][c], current[c], cfg) for c in cols]
    out = _summary(results, cfg)
    out["missing_columns"] = [c for c in profile["features"] if c not in current.columns]
    out["prediction"] = None
    if predictions is not None and "prediction" in profile:
        out["prediction"] = asdict(column_drift_profile(
            "prediction", profile["prediction"], predictions.astype(str), cfg))
    return out
