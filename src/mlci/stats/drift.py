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

Which statistic decides ("auto", the default): every column's test p-value enters one family,
and Holm's step-down procedure at level `alpha / windows` decides which columns are shown
drifted; on large samples (> `LARGE_SAMPLE` per side), where a test rejects trivial shifts, a
column must *also* move by more than its distance threshold (Wasserstein / JS). So whatever
the number of columns, a window of same-distribution data flags any column with probability at
most `alpha / windows`, and by the union bound any `windows` consecutive windows dispatch
retraining on noise with probability at most `alpha` (alpha spent evenly over a horizon: the
average run length between false alarms is at least `windows / alpha` windows). `ks` / `chi2`
decide on the tests alone (same control); `wasserstein` / `jensenshannon` / `psi` decide on
the distance alone and carry no error-rate guarantee.

Categorical columns with many levels are compared on about `MAX_LEVELS` bins chosen from the
levels' pooled counts (`level_bins`: frequent levels alone, rare ones pooled, each bin expected
at least `MIN_EXPECTED` times): a 1,000-level column would otherwise fill the chi-square table with
near-empty cells (anti-conservative) and bias the JS distance upwards on noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.stats import reference

if TYPE_CHECKING:
    import pandas as pd

LARGE_SAMPLE = 1000  # per side; above it, "auto" also asks the distance to exceed its threshold
MAX_LEVELS = 20      # about this many categorical bins at most
MIN_EXPECTED = 10    # every bin is expected at least this often in the smaller sample
OTHER = "(other)"
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
    share_threshold: float = 0.0  # dataset drift when more than this share of columns drifted
    method: str = "auto"          # auto | ks | wasserstein | chi2 | jensenshannon | psi
    per_column: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: int | None = None    # alpha is spent over this many windows (None: one comparison)

    @property
    def window_level(self) -> float:
        """The family-wise level of one comparison: alpha spent evenly over `windows`."""
        return self.alpha / max(1, self.windows or 1)


@dataclass
class ColumnDrift:
    column: str
    kind: str                # numeric | categorical
    method: str              # the statistic that decided
    drifted: bool | None     # None: not enough data
    n_reference: int
    n_current: int
    statistics: dict[str, float | None]
    threshold: float         # p-value methods: the Holm level this column was judged at
    reason: str = ""
    p_value: float | None = None       # the column's test p-value (KS or chi-square)
    distance_over: bool | None = None  # auto, large samples: distance above its threshold


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


def _merged(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two sorted samples merged in O(n + m), without sorting again: the merged values and
    the running counts of each sample's values up to every position. At the last of a run
    of equal values the running counts are the right-continuous empirical CDFs (times n, m);
    elsewhere the next value is equal, so what sums over `diff(both)` is unaffected."""
    n, m = len(ref), len(cur)
    at = np.searchsorted(cur, ref, side="right") + np.arange(n)  # ref after equal cur values
    from_ref = np.zeros(n + m, dtype=bool)
    from_ref[at] = True
    both = np.empty(n + m)
    both[at] = ref
    both[~from_ref] = cur
    seen_ref = np.cumsum(from_ref)
    return both, seen_ref, np.arange(1, n + m + 1) - seen_ref


def _exact_cdf_stats(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, its p-value and the Wasserstein-1 distance of two sorted samples (the
    p-value is scipy's `ks_2samp`, computed here without sorting or searching a million
    values again when either sample is over 10,000, where scipy uses this formula)."""
    from scipy import stats

    both, seen_r, seen_c = _merged(ref, cur)
    n, m = len(ref), len(cur)
    cdf_r, cdf_c = seen_r / n, seen_c / m
    last = np.append(both[1:] != both[:-1], True)  # the last of each run of equal values
    d = float(np.max(np.abs(cdf_r[last] - cdf_c[last])))
    w = float(np.sum(np.abs(cdf_r[:-1] - cdf_c[:-1]) * np.diff(both)))
    en = n * m / (n + m)
    if en > 10_000:  # the limiting distribution; scipy's kstwo agrees to ~1e-3 here, 50x slower
        p = float(stats.kstwobign.sf(d * np.sqrt(en)))
    elif max(n, m) > 10_000:  # scipy's asymptotic branch, same formula
        p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))
    else:
        p = float(stats.ks_2samp(ref, cur).pvalue)
    return d, p, w


def _jump_points(cur: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct value of a sorted sample `cur` and of the short sorted `q`, in order
    (`np.unique` of both), with the count of `cur` values at most and below each: what
    `searchsorted(cur, ...)` gives, read off the runs of `cur` instead of searched."""
    starts = np.flatnonzero(np.append(True, cur[1:] != cur[:-1]))  # first of each run
    ends = np.append(starts[1:], len(cur))
    cu, qu = cur[starts], np.unique(q)
    pos = np.searchsorted(cu, qu)
    new = (pos == len(cu)) | (cu[np.minimum(pos, len(cu) - 1)] != qu)
    at, qn = pos[new], qu[new]
    below = np.searchsorted(cur, qn)  # not values of cur: as many at most as below
    return np.insert(cu, at, qn), np.insert(ends, at, below), np.insert(starts, at, below)


def _ref_cdf(q: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """The reference CDF from its quantiles, right limit F(x) or left limit F(x-).

    A run of equal quantiles is an atom (a repeated value): the right limit is the share
    up to the run's end, the left limit the share before its start; between quantiles the
    CDF is interpolated. The interval each x falls in is found once; what the interpolation
    needs is tabled per interval (a thousand), not gathered again per value.
    """
    grid = reference.GRID
    last = len(q) - 1
    i = np.arange(-1, last + 1)  # interval t lies after quantile t - 1
    jc, kc = np.clip(i, 0, last), np.clip(i + 1, 0, last)
    lo, width = q[jc], q[kc] - q[jc]
    base, rise = grid[jc], grid[kc] - grid[jc]
    base[0], rise[0], base[-1], rise[-1] = 0.0, 0.0, 1.0, 0.0  # below all, above all
    t = np.searchsorted(q, x, side="right" if side == "right" else "left")
    w = width[t]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(w > 0, (x - lo[t]) / w, 0.0)
    return base[t] + rise[t] * np.clip(frac, 0.0, 1.0)


def _ks_from_quantiles(q: np.ndarray, cur: np.ndarray, n_ref: int) -> tuple[float, float]:
    """Two-sample KS with the reference given by its quantile function (scipy's asymptotic
    p-value: kstwo with the effective sample size). Both CDFs are compared at every jump
    point of either, from the right and from the left, so repeated values are exact."""
    from scipy import stats

    m = len(cur)
    pts, at_most, below = _jump_points(cur, q)
    g_r, g_l = at_most / m, below / m
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
        "psi": _psi(np.asarray(ref["psi_shares"]), reference.sorted_bin_shares(edges, cur))
        if len(edges) else None,
        "mean_reference": ref["mean"], "mean_current": float(np.mean(cur)),
        "std_reference": sd, "std_current": float(np.std(cur)),
    }


def categorical_stats(ref: dict[str, Any], cur: pd.Series) -> dict[str, float | None]:
    import pandas as pd
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    ref_counts = pd.Series(ref["counts"], dtype=float)
    cur_counts = cur.astype(str).value_counts()
    new = int((~cur_counts.index.isin(ref_counts.index)).sum())
    pooled = ref_counts.add(cur_counts.astype(float), fill_value=0.0)
    bins = level_bins(pooled, int(min(ref_counts.sum(), cur_counts.sum())))
    if len(set(bins.values())) < len(pooled):
        ref_counts, cur_counts = _binned(ref_counts, bins), _binned(cur_counts, bins)
    counts = pd.concat([ref_counts, cur_counts], axis=1).fillna(0).to_numpy()
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
            "categories_new": new, "levels_compared": int(len(r))}


def level_bins(pooled: pd.Series, n_small: int) -> dict[str, str]:
    """Which bin each level is compared in, from the levels' pooled (reference + current)
    counts. Levels in order of pooled frequency; a level expected at least `target` times in
    the smaller sample keeps its own bin, the rest are pooled in that order into bins expected
    at least `target` times, with `target` the larger of `MIN_EXPECTED` and 1/`MAX_LEVELS` of
    that sample (so at most about `MAX_LEVELS` bins). Under no drift the split of each
    level's pooled count between the samples does not depend on the pooled counts, so bins
    chosen from them keep the two-sample test calibrated; bins ranked on the reference's own
    counts would not (its noisy top levels would look like drift)."""
    total = float(pooled.sum())
    if total <= 0:
        return {}
    order = pooled.sort_index().sort_values(ascending=False, kind="stable")
    expected = order.to_numpy() / total * n_small
    target = max(MIN_EXPECTED, expected.sum() / MAX_LEVELS)
    own = expected >= target
    rest = np.cumsum(np.where(own, 0.0, expected))
    group = np.where(own, np.arange(len(order)), len(order) + np.floor(
        (rest - np.where(own, 0.0, expected)) / target))
    labels = np.unique(group, return_inverse=True)[1]
    sums = np.bincount(labels, weights=expected)
    if len(sums) > 1 and sums[-1] < target:  # a short last bin joins the one before
        labels[labels == len(sums) - 1] = len(sums) - 2
    names = [str(k) for k in order.index]
    members: dict[int, list[str]] = {}
    for name, lab in zip(names, labels, strict=True):
        members.setdefault(int(lab), []).append(name)
    return {n: (m[0] if len(m) == 1 else f"{OTHER} {lab + 1}: {len(m)} levels")
            for lab, m in members.items() for n in m}


def _binned(counts: pd.Series, bins: dict[str, str]) -> pd.Series:
    return counts.groupby([bins[str(k)] for k in counts.index], sort=False).sum()


def resolve_method(kind: str, method: str) -> str:
    """The method as it applies to a column of this kind (a test named for one kind of column
    means its counterpart for the other)."""
    if kind == "numeric":
        return {"chi2": "ks", "jensenshannon": "wasserstein"}.get(method, method)
    return {"ks": "chi2", "wasserstein": "jensenshannon"}.get(method, method)


def _distance(kind: str, st: dict[str, float | None], n: int, cfg: DriftConfig,
              method: str) -> tuple[str, float | None, bool | None, float]:
    """(method used, test p-value or None, distance above its threshold or None, threshold).

    A p-value means the column is judged by the family-wise test (auto and ks/chi2)."""
    if method not in ("auto", *PVALUE_METHODS, *DISTANCE_METHODS):
        raise ValueError(f"unknown drift method {method!r}")
    test = "ks" if kind == "numeric" else "chi2"
    p = st.get(PVALUE_METHODS[test])
    if method in PVALUE_METHODS:
        return method, p, None, float("nan")
    auto = method == "auto"
    if auto:
        if n <= LARGE_SAMPLE:
            return test, p, None, float("nan")
        method = "wasserstein" if kind == "numeric" else "jensenshannon"
    threshold = {"wasserstein": cfg.wasserstein_threshold, "psi": cfg.psi_threshold,
                 "jensenshannon": cfg.jensenshannon_threshold}[method]
    v = st.get(DISTANCE_METHODS[method])
    # "auto" needs the test as well; a distance chosen by name decides alone
    return method, p if auto else None, bool(v is not None and v > threshold), threshold


def holm(pvalues: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down over the last axis: (rejected, the level each p-value was compared
    with). Family-wise error at most `level` under any dependence between the columns.
    Vectorised over leading axes (the benchmark judges thousands of windows at once)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    steps = level / (m - np.arange(m))
    ok = np.cumprod(ranked <= steps, axis=-1).astype(bool)
    rejected = np.empty_like(ok)
    levels = np.empty(p.shape, dtype=float)
    np.put_along_axis(rejected, order, ok, axis=-1)
    np.put_along_axis(levels, order, np.broadcast_to(steps, p.shape), axis=-1)
    return rejected, levels


def column_drift(name: str, ref: dict[str, Any], cur: pd.Series,
                 cfg: DriftConfig) -> ColumnDrift:
    """One column's statistics; `drifted` is final for distance-only methods and provisional
    (the test alone, unadjusted) for tested columns until `familywise` judges them together."""
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
    used, p, over, threshold = _distance(kind, st, n, local, resolve_method(kind, method))
    if p is None and over is None:  # a test without a p-value: no evidence
        p = 1.0
    drifted = bool(over) if p is None else bool(p < local.window_level and over is not False)
    return ColumnDrift(name, kind, used, drifted, ref["n"], len(cur), st, threshold,
                       p_value=p, distance_over=over)


def familywise(results: list[ColumnDrift], cfg: DriftConfig) -> list[ColumnDrift]:
    """Judge every tested column together: Holm at the window's level over their p-values;
    a large-sample "auto" column must also exceed its distance threshold."""
    tested = [r for r in results if r.drifted is not None and r.p_value is not None]
    if not tested:
        return results
    rejected, levels = holm(np.array([r.p_value for r in tested]), cfg.window_level)
    for r, rej, lvl in zip(tested, rejected, levels, strict=True):
        r.drifted = bool(rej) and r.distance_over is not False
        if r.method in PVALUE_METHODS:
            r.threshold = float(lvl)
        elif not rej and r.distance_over:
            r.reason = (f"distance above {r.threshold:g} but the test does not show drift "
                        f"(p {r.p_value:.3g} >= {lvl:.3g})")
    return results


def _summary(results: list[ColumnDrift], cfg: DriftConfig) -> dict[str, Any]:
    """Per-column results plus the dataset verdict (any column shown drifted, family-wise)."""
    judged = [r for r in results if r.drifted is not None]
    drifted = [r.column for r in judged if r.drifted]
    share = len(drifted) / len(judged) if judged else 0.0
    return {
        "columns": [asdict(r) for r in results],
        "drifted_columns": drifted,
        "share_drifted": share,
        "dataset_drift": bool(drifted) and share > cfg.share_threshold - 1e-12,
        "enough_data": bool(judged),
        "any_drift": bool(drifted),
        "level": cfg.window_level, "alpha": cfg.alpha, "windows": cfg.windows or 1,
    }


PARALLEL_VALUES = 1_000_000  # from this many values in all, columns are judged on threads


def _columns(profile: dict[str, Any], current: pd.DataFrame, cols: list[str],
             cfg: DriftConfig) -> list[ColumnDrift]:
    """Every column's drift, in column order. On large windows the columns run on a thread
    per core: numpy sorts and searches without holding the interpreter lock."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    def one(c: str) -> ColumnDrift:
        return column_drift(c, profile["columns"][c], current[c], cfg)

    workers = min(len(cols), os.cpu_count() or 1)
    if workers < 2 or len(current) * len(cols) < PARALLEL_VALUES:
        return [one(c) for c in cols]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, cols))


def compare_profile(profile: dict[str, Any], current: pd.DataFrame,
                    cfg: DriftConfig | None = None,
                    predictions: pd.Series | None = None) -> dict[str, Any]:
    """Drift of a current sample against a stored reference profile."""
    cfg = cfg or DriftConfig()
    cols = [c for c in profile["features"] if c in current.columns]
    out = _summary(familywise(_columns(profile, current, cols, cfg), cfg), cfg)
    out["missing_columns"] = [c for c in profile["features"] if c not in current.columns]
    out["prediction"] = None
    if predictions is not None and "prediction" in profile:
        out["prediction"] = asdict(familywise([column_drift(
            "prediction", profile["prediction"], predictions.astype(str), cfg)], cfg)[0])
    return out


def compare(reference_frame: pd.DataFrame, current: pd.DataFrame,
            cfg: DriftConfig | None = None, columns: list[str] | None = None) -> dict[str, Any]:
    """Drift of a current frame against a raw reference frame: the reference is profiled
    exactly as at training time, then compared like a stored profile (one engine)."""
    cols = columns or [c for c in reference_frame.columns if c in current.columns]
    return compare_profile(reference.build(reference_frame[cols]), current[cols], cfg)
