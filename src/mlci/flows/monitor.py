"""Production monitoring: drift against the training reference, decay on labelled feedback,
and what to do about it (dispatch retraining, retrain locally, roll a bad champion back).

The window is the gateway's prediction log (SQLite, with labels joined from feedback) or a
CSV/Parquet batch (labels in the target column when known). The reference is the
`mlci/reference.json` stored with the model at training time.
"""

from __future__ import annotations

import base64
import io
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError, first_line
from mlci.registry.lineage import artifact_json
from mlci.stats.drift import deciding_value

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config

SCHEMA = "mlci.monitor/1"
WINDOWS = 100  # drift's alpha is spent over this many monitor windows unless configured


@dataclass
class Window:
    features: pd.DataFrame
    labels: pd.Series | None        # true labels where known (NaN elsewhere)
    predictions: pd.Series | None
    versions: pd.Series | None      # model version per row (prediction log)
    source: str
    since: float | None = None
    keys: pd.Series | None = None   # routing key per row (prediction log), for clustering


# ------------------------------------------------------------------ the window


def _is_predlog(path: Path) -> bool:
    if path.suffix.lower() not in (".db", ".sqlite", ".sqlite3"):
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            con.execute("select 1 from predictions limit 1")
        return True
    except sqlite3.Error:
        return False


def read_predlog(path: Path, features: list[str], since: float | None = None,
                 variant: str | None = None) -> Window:
    """The gateway's answered predictions, one row per instance (read in vectorised chunks)."""
    from mlci.serve.predlog_read import read_columns

    c = read_columns(path, features, since, variant)
    return Window(c.features, c.labels, c.predictions, c.versions, str(path), since, c.keys)


def read_window(source: Path, cfg: Config, features: list[str], since: float | None = None,
                variant: str | None = None) -> Window:
    from mlci.data.load import read_table

    if not source.exists():
        raise MlciError(f"--window {source}: not found")
    if _is_predlog(source):
        return read_predlog(source, features, since, variant)
    df = read_table(source, str(source))
    target = cfg.data.target
    labels = df[target] if target in df.columns else None
    preds = df["prediction"] if "prediction" in df.columns else None
    return Window(df[[c for c in features if c in df.columns]], labels, preds, None,
                  str(source))


# ------------------------------------------------------------------ references


def resolve_model(client, name: str, ref: str) -> Any:
    from mlci.registry.aliases import version_by_ref

    return version_by_ref(client, name, ref)


def baseline_of(client, mv, cfg: Config) -> dict[str, Any]:
    """The model's recorded golden-set value of the decay metric and its row count."""
    metric = decay_metric(cfg)
    run = client.get_run(mv.run_id)
    value = run.data.metrics.get(f"golden_{metric}")
    ev = artifact_json(client, mv.run_id, "mlci/evaluation.json") or {}
    n = (ev.get("golden") or {}).get("rows")
    return {"version": str(mv.version), "metric": metric, "value": value, "n": n}


# ------------------------------------------------------------------ decay


def decay_metric(cfg: Config) -> str:
    m = cfg.monitor.decay_metric
    return m if m != "auto" else ("mae" if cfg.task == "regression" else "accuracy")


def decay(window: Window, baseline: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """Live quality on labelled rows against the baseline: decayed when shown worse than it
    by more than `decay_margin` (absolute for accuracy, relative for MAE); see
    `mlci.stats.decay` for the test and its error rate."""
    import numpy as np

    from mlci.stats.decay import decay_test

    m = cfg.monitor
    metric = baseline.get("metric", "accuracy")
    if window.labels is None:
        return {"status": f"not measured: no labels (no {cfg.data.target!r} column in the "
                          "window)", "decayed": None}
    if window.predictions is None:  # labelled rows, yet nothing to compare them with
        n = int(window.labels.notna().sum())
        return {"status": f"not measured: {n} labelled rows but no 'prediction' column (the "
                          "model's output for each row; the gateway's log has it)",
                "decayed": None, "n": n}
    mask = window.labels.notna() & window.predictions.notna()
    n = int(mask.sum())
    if baseline.get("value") is None or not baseline.get("n"):
        return {"status": "no baseline", "decayed": None, "n": n}
    if n < m.min_labels:
        return {"status": f"not enough labels ({n} < {m.min_labels})", "decayed": None, "n": n}
    y, p = window.labels[mask], window.predictions[mask]
    keys = window.keys[mask].to_numpy(dtype=object) if window.keys is not None else None
    binary = metric == "accuracy"
    if binary:
        losses = (y.astype(str).to_numpy() != p.astype(str).to_numpy()).astype(float)
        base = 1.0 - float(baseline["value"])
    else:
        try:
            losses = np.abs(p.astype(float).to_numpy() - y.astype(float).to_numpy())
        except (TypeError, ValueError):
            return {"status": "labels or predictions are not numeric", "decayed": None, "n": n}
        base = float(baseline["value"])
    t = decay_test(losses, keys, baseline=base, baseline_n=int(baseline["n"]),
                   margin=m.decay_margin, alpha=m.alpha, binary=binary)
    live = float(losses.mean())
    sign = -1.0 if binary else 1.0  # report accuracy, not its loss
    return {
        "status": "decayed" if t["decayed"] else "ok" if t["shown_fine"] else "inconclusive",
        "decayed": t["decayed"], "metric": metric, "n": n,
        "live": 1 - live if binary else live, "baseline": baseline["value"],
        "baseline_n": int(baseline["n"]), "baseline_version": baseline["version"],
        "difference": sign * (live - base),
        "higher_is_better": binary,
        "bound": sign * (t["lower"] + (m.decay_margin if binary else
                                       m.decay_margin * base)),
        "confidence": 1 - m.alpha, "margin": m.decay_margin, "relative_margin": not binary,
        "design": t["design"], "clustered": t["clustered"],
        "p_value": t["p_value"],
    }


# ------------------------------------------------------------------ report


def _plot_png(name: str, ref: dict[str, Any], cur: pd.Series) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5, 3), dpi=90)
    if ref["kind"] == "numeric":
        q = np.asarray(ref["quantiles"])
        v = cur.dropna().to_numpy(dtype=float)
        bins = np.linspace(min(q[0], v.min()), max(q[-1], v.max()), 30)
        ax.hist(q, bins=list(bins), density=True, alpha=0.5, label="reference")
        ax.hist(v, bins=list(bins), density=True, alpha=0.5, label="current")
    else:
        import pandas as pd

        r = pd.Series(ref["counts"], dtype=float)
        c = cur.astype(str).value_counts()
        cats = list(dict.fromkeys([*r.index, *c.index]))[:20]
        xs = np.arange(len(cats))
        ax.bar(xs - 0.2, [r.get(k, 0) / r.sum() for k in cats], 0.4, label="reference")
        ax.bar(xs + 0.2, [c.get(k, 0) / max(1, c.sum()) for k in cats], 0.4, label="current")
        ax.set_xticks(xs, cats, rotation=45, ha="right")
    ax.set_title(name)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def decay_sentence(dec: dict[str, Any]) -> str:
    better = "higher" if dec["higher_is_better"] else "lower"
    allowance = (f"x{1 + dec['margin']:g} of the baseline" if dec["relative_margin"]
                 else f"{dec['margin']:g} below the baseline")
    side = "upper" if dec["higher_is_better"] else "lower"
    return (f"live {dec['metric']} {dec['live']:.4f} on {dec['n']} labels vs baseline "
            f"{dec['baseline']:.4f} (v{dec['baseline_version']}, {dec['baseline_n']} golden "
            f"rows): difference {dec['difference']:+.4f} ({better} is better), "
            f"{dec['confidence']:.0%} {side} bound {dec['bound']:+.4f} ({dec['design']}), "
            f"allowance {allowance}, p-value {dec['p_value']:.4g}")


def headline(d: dict[str, Any], dec: dict[str, Any], reasons: list[str]) -> str:
    """What was found, whether or not it triggers an action (so it agrees with the table)."""
    parts = []
    if d["drifted_columns"]:
        n_judged = sum(c["drifted"] is not None for c in d["columns"])
        parts.append(f"drift in {', '.join(d['drifted_columns'])} "
                     f"({len(d['drifted_columns'])} of {n_judged} columns"
                     + ("; dataset drift)" if d["dataset_drift"] else
                        "; below the dataset-drift share)"))
    elif d["enough_data"]:
        parts.append("no drift")
    else:
        parts.append("not enough data for drift")
    parts.append({"decayed": "decay", "ok": "no decay"}.get(dec.get("status", ""),
                                                           f"decay {dec.get('status')}"))
    text = "; ".join(parts)
    return text + (" → alert" if reasons else "")


def to_markdown(r: dict[str, Any]) -> str:
    d, dec = r["drift"], r["decay"]
    icon = "❌" if r["alert"] else "✅"
    out = [f"## {icon} mlci monitor: {r['model']} v{r['version']}: {r['summary']}", "",
           f"Window: `{r['window']['source']}`, {r['window']['rows']} rows "
           f"({r['window']['labelled']} labelled).", "",
           "| column | kind | drift | method | decided on | value | drifted when |",
           "|---|---|---|---|---|---:|---|"]
    for c in d["columns"]:
        flag = {True: "⚠️ drifted", False: "ok", None: "not enough data"}[c["drifted"]]
        measure, v = deciding_value(c["method"], c["statistics"] or {})
        rule = (f"< {c['threshold']:.4g}" if measure == "p-value" else
                f"> {c['threshold']:.4g}") if c["drifted"] is not None else "–"
        out.append(f"| {c['column']} | {c['kind']} | {flag} | {c['method']} | {measure} | "
                   f"{'–' if v is None else f'{v:.4g}'} | {rule} |")
    out += ["", f"Drifted columns: {len(d['drifted_columns'])} ({d['share_drifted']:.0%}); "
            f"dataset drift: {'yes' if d['dataset_drift'] else 'no'}."]
    if "level" in d:
        out.append(f"Columns are judged together (Holm) at family-wise level {d['level']:.2g}: "
                   f"alpha {d['alpha']:g} spent over {d['windows']} windows, so same-"
                   f"distribution data triggers at most {d['alpha']:.0%} of runs of "
                   f"{d['windows']} windows.")
    if d.get("prediction"):
        p = d["prediction"]
        out.append(f"Prediction drift: {'yes' if p['drifted'] else 'no'} ({p['method']}).")
    out += ["", "### Performance on labelled feedback", ""]
    if dec.get("live") is not None:
        out.append(decay_sentence(dec) + f" → **{dec['status']}**.")
    else:
        out.append(f"_{dec['status']}_")
    for a in r.get("actions", []):
        out += ["", f"Action: {a}"]
    return "\n".join(out) + "\n"


def to_html(r: dict[str, Any], plots: dict[str, str]) -> str:
    import html

    md = html.escape(to_markdown(r))
    imgs = "".join(f"<h3>{html.escape(k)}</h3><img alt='{html.escape(k)}' "
                   f"src='data:image/png;base64,{v}'/>" for k, v in plots.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mlci monitor</title>"
            "</head><body><pre>" + md + "</pre>" + imgs + "</body></html>\n")


# ------------------------------------------------------------------ the command's work


def monitor(cfg: Config, out_dir: Path, window_path: Path, *, model_ref: str = "champion",
            since: float | None = None, variant: str | None = None) -> dict[str, Any]:
    from mlci.io import atomic_write_json, atomic_write_text
    from mlci.registry import tracking
    from mlci.stats.drift import DriftConfig, compare_profile

    t0 = time.perf_counter()
    client = tracking.client(cfg, out_dir)
    mv = resolve_model(client, cfg.name, model_ref)
    profile = artifact_json(client, mv.run_id, "mlci/reference.json")
    if profile is None:
        raise MlciError(f"{cfg.name}/{mv.version} has no reference statistics "
                        "(mlci/reference.json); retrain it with this mlci version")
    window = read_window(window_path, cfg, profile["features"], since, variant)
    settings = cfg.monitor.drift.model_dump()
    settings["windows"] = settings["windows"] or WINDOWS
    d = compare_profile(profile, window.features, DriftConfig(**settings),
                        window.predictions.dropna() if window.predictions is not None else None)
    dec = decay(window, baseline_of(client, mv, cfg), cfg)
    reasons = []
    if d["dataset_drift"] and "dataset_drift" in cfg.monitor.retrain_on:
        reasons.append(f"dataset drift in {', '.join(d['drifted_columns'])} "
                       f"({d['share_drifted']:.0%} of columns)")
    elif d["any_drift"] and "drift" in cfg.monitor.retrain_on:
        reasons.append("drift in " + ", ".join(d["drifted_columns"]))
    if dec.get("decayed") and "decay" in cfg.monitor.retrain_on:
        reasons.append(f"{dec['metric']} went to {dec['live']:.4g} from {dec['baseline']:.4g}")
    labelled = int(window.labels.notna().sum()) if window.labels is not None else 0
    result = {
        "schema": SCHEMA, "model": cfg.name, "version": str(mv.version),
        "window": {"source": window.source, "rows": int(len(window.features)),
                   "labelled": labelled, "since": since},
        "drift": d, "decay": dec, "alert": bool(reasons),
        "reasons": reasons,
        "summary": headline(d, dec, reasons),
        "actions": [],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    plots = {c: _plot_png(c, profile["columns"][c], window.features[c])
             for c in d["drifted_columns"]}
    atomic_write_json(out_dir / "monitor.json", result)
    atomic_write_text(out_dir / "monitor.md", to_markdown(result))
    atomic_write_text(out_dir / "monitor.html", to_html(result, plots))
    result["_window"] = window
    return result


def export_window(window: Window, cfg: Config, dest: Path) -> int:
    """Labelled rows of the window as training data (features + target), for a data update.
    Text cells came from anonymous /predict callers and the file is opened by people too:
    cells that would start a spreadsheet formula are escaped."""
    from mlci.io import atomic_write_bytes
    from mlci.report.escape import csv_cell

    if window.labels is None:
        raise MlciError("the window has no labels: nothing to retrain on")
    mask = window.labels.notna()
    df = window.features[mask.to_numpy()].copy()
    df[cfg.data.target] = window.labels[mask].to_numpy()
    for col in df.select_dtypes(exclude=["number", "bool"]).columns:
        df[col] = df[col].map(csv_cell)
    buf = io.BytesIO()
    df.to_csv(buf, index=False)
    atomic_write_bytes(dest, buf.getvalue())
    return int(len(df))


def previous_champion(client, cfg: Config, out_dir: Path, current: str) -> str | None:
    """The champion before `current`, from the audit trail."""
    from mlci.registry import audit, tracking
    from mlci.registry.aliases import ROLLBACK_ALIAS
    from mlci.registry.gate import champion_stack

    uri = tracking.tracking_uri(cfg, out_dir)
    exp_id = audit.experiment_id(client, cfg.name, out_dir, uri)
    stack = champion_stack(audit.events(client, exp_id, ROLLBACK_ALIAS))
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def _wrong(labels: Any, predictions: Any) -> Any:
    """0/1 errors; numbers compare as numbers (a label 1 read from CSV equals a prediction
    1.0), anything else as text."""
    import numpy as np
    import pandas as pd

    y, p = pd.Series(np.asarray(labels)), pd.Series(np.asarray(predictions))
    yn, pn = pd.to_numeric(y, errors="coerce"), pd.to_numeric(p, errors="coerce")
    if yn.notna().all() and pn.notna().all():
        return (yn.to_numpy(dtype=float) != pn.to_numpy(dtype=float)).astype(float)
    return (y.astype(str).to_numpy() != p.astype(str).to_numpy()).astype(float)


def _losses(labels: Any, predictions: Any, binary: bool) -> Any:
    import numpy as np

    if binary:
        return _wrong(labels, predictions)
    return np.abs(np.asarray(predictions, dtype=float) - np.asarray(labels, dtype=float))


def replayer(client: Any, cfg: Config, version: str) -> tuple[Any | None, str]:
    """A function giving the old champion's answers for feature rows, or None and why. The
    old champion loads through the registry's trust check like every other model."""
    import numpy as np

    from mlci.registry import models

    try:
        model = models.load_version(client, cfg.name, version, role="previous champion")
    except Exception as exc:  # noqa: BLE001 - any load failure means: use the live baseline
        return None, f"v{version} could not be loaded ({first_line(exc)[:160]})"

    def replay(x: pd.DataFrame) -> Any:
        return np.asarray(model.estimator.predict(model.frame(x, "window")))
    return replay, ""


def watch_decision(window: Window, cfg: Config, version: str, prev: str,
                   replay: Any | None, why_not: str = "") -> dict[str, Any]:
    """The watch's evidence: the new champion's losses on the rows it answered, against the
    old champion's on the same rows (replayed: paired) or, when it cannot be replayed, on its
    own answered rows in the log (the live baseline). See `mlci.stats.decay.watch_test`."""
    from mlci.stats.decay import watch_test

    m = cfg.monitor
    metric = decay_metric(cfg)
    binary = metric == "accuracy"
    if window.labels is None or window.predictions is None:
        return {"status": "no labels", "decayed": None}
    labelled = window.labels.notna() & window.predictions.notna()
    mine = labelled & (window.versions == version) if window.versions is not None else labelled
    n = int(mine.sum())
    if n < m.min_labels:
        return {"status": f"not enough labels ({n} < {m.min_labels})", "decayed": None, "n": n}
    y = window.labels[mine]
    try:
        new = _losses(y, window.predictions[mine], binary)
        old, paired = None, False
        if replay is not None:
            try:
                old, paired = _losses(y, replay(window.features[mine.to_numpy()]), binary), True
            except (MlciError, ValueError, TypeError, KeyError) as exc:
                why_not = f"v{prev} could not answer the window ({type(exc).__name__})"
        if old is None and window.versions is not None:
            theirs = labelled & (window.versions == prev)
            if int(theirs.sum()) >= m.min_labels:
                old = _losses(window.labels[theirs], window.predictions[theirs], binary)
    except (TypeError, ValueError):
        return {"status": "labels or predictions are not numeric", "decayed": None, "n": n}
    if old is None:
        return {"status": f"no live baseline for v{prev}: {why_not or 'not replayed'} and "
                          f"fewer than {m.min_labels} of its labelled rows in the window",
                "decayed": None, "n": n}
    keys = (window.keys[mine].to_numpy(dtype=object)
            if window.keys is not None and paired else None)
    t = watch_test(new, old, keys, paired=paired, margin=m.decay_margin, alpha=m.alpha,
                   binary=binary)
    sign = -1.0 if binary else 1.0  # report accuracy, not its loss
    return {
        "status": "decayed" if t["decayed"] else "ok" if t["shown_fine"] else "inconclusive",
        "decayed": t["decayed"], "metric": metric, "n": n, "n_baseline": t["n_old"],
        "comparison": t["comparison"], "baseline_version": prev,
        "live": 1 - t["live_new"] if binary else t["live_new"],
        "baseline": 1 - t["live_old"] if binary else t["live_old"],
        "difference": sign * (t["live_new"] - t["live_old"]), "higher_is_better": binary,
        "estimate": t["estimate"], "lower": t["lower"], "upper": t["upper"],
        "confidence": 1 - m.alpha, "margin": m.decay_margin, "relative_margin": not binary,
        "design": t["design"], "clustered": t["clustered"],
    }


def watch_sentence(dec: dict[str, Any]) -> str:
    rows = ("on the same rows (replayed)" if dec["comparison"] == "paired" else
            f"on its own {dec['n_baseline']} labelled rows before the promotion")
    allowance = (f"x{1 + dec['margin']:g} of the old MAE" if dec["relative_margin"]
                 else f"{dec['margin']:g} below the old accuracy")
    return (f"live {dec['metric']} {dec['live']:.4f} on {dec['n']} labels vs "
            f"v{dec['baseline_version']} {dec['baseline']:.4f} {rows}: difference "
            f"{dec['difference']:+.4f}; excess over the allowance ({allowance}) "
            f"{dec['estimate']:+.4f}, {dec['confidence']:.0%} bounds "
            f"[{dec['lower']:+.4f}, {dec['upper']:+.4f}] (confidence sequence)")


def watch(cfg: Config, out_dir: Path, window_path: Path, *, since: float | None = None
          ) -> dict[str, Any]:
    """After a promotion: is the new champion shown worse than the previous one on live traffic
    by more than the allowance? If so, roll back (alias; the gateway follows it)."""
    from mlci.io import atomic_write_json, atomic_write_text
    from mlci.registry import gate, tracking

    client = tracking.client(cfg, out_dir)
    mv = resolve_model(client, cfg.name, "champion")
    prev = previous_champion(client, cfg, out_dir, str(mv.version))
    if prev is None:
        raise MlciError(f"{cfg.name}@champion v{mv.version} has no previous champion to "
                        "compare with")
    profile = artifact_json(client, mv.run_id, "mlci/reference.json") or {}
    features = profile.get("features") or []
    window = read_window(window_path, cfg, features, since)
    replay, why_not = replayer(client, cfg, prev)
    dec = watch_decision(window, cfg, str(mv.version), prev, replay, why_not)
    result: dict[str, Any] = {
        "schema": SCHEMA, "mode": "watch", "model": cfg.name, "version": str(mv.version),
        "previous_champion": prev, "decay": dec, "alert": bool(dec.get("decayed")),
        "actions": [],
    }
    if dec.get("decayed"):
        reason = (f"automatic rollback: v{mv.version} is shown worse than v{prev} on live "
                  f"traffic by more than the allowance: " + watch_sentence(dec))
        rb = gate.rollback(cfg, out_dir, cfg.name, None, reason)
        result["rollback"] = rb
        result["actions"].append(f"rolled {cfg.name}@champion back from v{mv.version} to "
                                 f"v{rb['version']}")
        result["summary"] = reason
    else:
        result["summary"] = f"champion v{mv.version}: {dec['status']}" + (
            f" ({watch_sentence(dec)})" if "estimate" in dec else "")
    atomic_write_json(out_dir / "watch.json", result)
    atomic_write_text(out_dir / "watch.md", f"## mlci watch: {result['summary']}\n")
    return result
