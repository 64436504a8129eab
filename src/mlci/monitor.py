"""Production monitoring: drift against the training reference, decay on labelled feedback,
and what to do about it (dispatch retraining, retrain locally, roll a bad champion back).

The window is the gateway's prediction log (SQLite, with labels joined from feedback) or a
CSV/Parquet batch (labels in the target column when known). The reference is the
`mlci/reference.json` stored with the model at training time.
"""

from __future__ import annotations

import base64
import io
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError
from mlci.lineage import artifact_json

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config

SCHEMA = "mlci.monitor/1"


@dataclass
class Window:
    features: pd.DataFrame
    labels: pd.Series | None        # true labels where known (NaN elsewhere)
    predictions: pd.Series | None
    versions: pd.Series | None      # model version per row (prediction log)
    source: str
    since: float | None = None


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
    from mlci.serve.predlog_read import read_columns

    c = read_columns(path, features, since, variant)
    return Window(c.features, c.labels, c.predictions, c.versions, str(path), since)


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
    from mlflow.exceptions import MlflowException

    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        raise MlciError(f"model {name}@{ref} not found in the registry") from None


def baseline_of(client, mv) -> dict[str, Any]:
    """The model's recorded golden-set accuracy and how many rows it rests on."""
    run = client.get_run(mv.run_id)
    acc = run.data.metrics.get("golden_accuracy")
    ev = artifact_json(client, mv.run_id, "mlci/evaluation.json") or {}
    n = (ev.get("golden") or {}).get("rows")
    return {"version": str(mv.version), "accuracy": acc, "n": n}


# ------------------------------------------------------------------ decay


def decay(window: Window, baseline: dict[str, Any], cfg: Config,
          version: str | None = None) -> dict[str, Any]:
    """Live accuracy on labelled rows against the baseline: a one-sided test of a drop
    larger than `decay_margin` (the canary's non-inferiority test, read the other way)."""
    from mlci.canary import non_inferiority

    m = cfg.monitor
    if window.labels is None or window.predictions is None:
        return {"status": "no labels", "decayed": None}
    mask = window.labels.notna() & window.predictions.notna()
    if version is not None and window.versions is not None:
        mask &= window.versions == str(version)
    y, p = window.labels[mask].astype(str), window.predictions[mask].astype(str)
    n = int(len(y))
    if baseline.get("accuracy") is None or not baseline.get("n"):
        return {"status": "no baseline", "decayed": None, "n": n}
    if n < m.min_labels:
        return {"status": f"not enough labels ({n} < {m.min_labels})", "decayed": None, "n": n}
    k = int((y == p).sum())
    n0 = int(baseline["n"])
    k0 = int(round(baseline["accuracy"] * n0))
    t = non_inferiority(k, n, k0, n0, m.decay_margin, m.alpha)
    from mlci.canary import norm_ppf

    half = norm_ppf(1 - m.alpha / 2) * t.se
    return {
        "status": "decayed" if t.verdict == "fail" else "ok" if t.verdict == "pass"
        else "inconclusive",
        "decayed": t.verdict == "fail",
        "n": n, "accuracy": k / n, "baseline_accuracy": baseline["accuracy"],
        "baseline_n": n0, "baseline_version": baseline["version"],
        "difference": t.diff,
        "ci": [t.diff_adjusted - half, t.diff_adjusted + half],
        "confidence": 1 - m.alpha,
        "margin": m.decay_margin,
        "p_value": t.p_inferior,
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
        ax.hist(q, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(v, bins=bins, density=True, alpha=0.5, label="current")
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


def to_markdown(r: dict[str, Any]) -> str:
    d, dec = r["drift"], r["decay"]
    icon = "❌" if r["alert"] else "✅"
    out = [f"## {icon} mlci monitor: {r['model']} v{r['version']}: {r['summary']}", "",
           f"Window: `{r['window']['source']}`, {r['window']['rows']} rows "
           f"({r['window']['labelled']} labelled).", "",
           "| column | kind | drift | method | statistic | threshold |",
           "|---|---|---|---|---:|---:|"]
    for c in d["columns"]:
        flag = {True: "⚠️ drifted", False: "ok", None: "not enough data"}[c["drifted"]]
        key = {"ks": "ks_pvalue", "chi2": "chi2_pvalue", "wasserstein": "wasserstein",
               "jensenshannon": "jensenshannon", "psi": "psi"}.get(c["method"], "")
        v = (c["statistics"] or {}).get(key)
        out.append(f"| {c['column']} | {c['kind']} | {flag} | {c['method']} | "
                   f"{'–' if v is None else f'{v:.4f}'} | {c['threshold']:.4f} |")
    out += ["", f"Drifted columns: {len(d['drifted_columns'])} ({d['share_drifted']:.0%}); "
            f"dataset drift: {'yes' if d['dataset_drift'] else 'no'}."]
    if d.get("prediction"):
        p = d["prediction"]
        out.append(f"Prediction drift: {'yes' if p['drifted'] else 'no'} ({p['method']}).")
    out += ["", "### Performance on labelled feedback", ""]
    if dec.get("accuracy") is not None:
        lo, hi = dec["ci"]
        out.append(f"Live accuracy {dec['accuracy']:.4f} on {dec['n']} labels vs baseline "
                   f"{dec['baseline_accuracy']:.4f} (v{dec['baseline_version']}, "
                   f"{dec['baseline_n']} golden rows): difference {dec['difference']:+.4f}, "
                   f"{dec['confidence']:.0%} CI [{lo:+.4f}, {hi:+.4f}], margin "
                   f"{dec['margin']}, p = {dec['p_value']:.4g} → **{dec['status']}**.")
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
    from mlci import tracking
    from mlci.drift import DriftConfig, compare_profile
    from mlci.io import atomic_write_json, atomic_write_text

    t0 = time.perf_counter()
    client = tracking.client(cfg, out_dir)
    mv = resolve_model(client, cfg.name, model_ref)
    profile = artifact_json(client, mv.run_id, "mlci/reference.json")
    if profile is None:
        raise MlciError(f"{cfg.name}/{mv.version} has no reference statistics "
                        "(mlci/reference.json); retrain it with this mlci version")
    window = read_window(window_path, cfg, profile["features"], since, variant)
    d = compare_profile(profile, window.features, DriftConfig(**cfg.monitor.drift.model_dump()),
                        window.predictions.dropna() if window.predictions is not None else None)
    dec = decay(window, baseline_of(client, mv), cfg)
    reasons = []
    if d["dataset_drift"] and "dataset_drift" in cfg.monitor.retrain_on:
        reasons.append(f"dataset drift ({d['share_drifted']:.0%} of columns)")
    elif d["any_drift"] and "drift" in cfg.monitor.retrain_on:
        reasons.append("drift in " + ", ".join(d["drifted_columns"]))
    if dec.get("decayed") and "decay" in cfg.monitor.retrain_on:
        reasons.append(f"accuracy fell to {dec['accuracy']:.3f} from "
                       f"{dec['baseline_accuracy']:.3f}")
    labelled = int(window.labels.notna().sum()) if window.labels is not None else 0
    result = {
        "schema": SCHEMA, "model": cfg.name, "version": str(mv.version),
        "window": {"source": window.source, "rows": int(len(window.features)),
                   "labelled": labelled, "since": since},
        "drift": d, "decay": dec, "alert": bool(reasons),
        "reasons": reasons,
        "summary": "; ".join(reasons) if reasons else (
            "not enough data" if not d["enough_data"] else "no drift, no decay"),
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
    """Labelled rows of the window as training data (features + target), for a data update."""
    from mlci.io import atomic_write_bytes

    if window.labels is None:
        raise MlciError("the window has no labels: nothing to retrain on")
    mask = window.labels.notna()
    df = window.features[mask.to_numpy()].copy()
    df[cfg.data.target] = window.labels[mask].to_numpy()
    buf = io.BytesIO()
    df.to_csv(buf, index=False)
    atomic_write_bytes(dest, buf.getvalue())
    return int(len(df))


def dispatch(event_type: str, payload: dict[str, Any]) -> str:
    """`repository_dispatch` through the GitHub REST API (GITHUB_TOKEN, GITHUB_REPOSITORY)."""
    from mlci.report.github import GitHub, GitHubError

    token = os.environ.get("MLCI_GITHUB_TOKEN") or os.environ.get("GITHUB_TOKEN")
    repo = os.environ.get("MLCI_REPO") or os.environ.get("GITHUB_REPOSITORY")
    if not token or not repo:
        raise MlciError("--dispatch needs GITHUB_TOKEN and GITHUB_REPOSITORY")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    gh = GitHub(api_url=api, repo=repo, token=token)
    body = {"event_type": event_type,
            "client_payload": {k: v for k, v in payload.items() if v is not None}}
    try:
        gh.request("POST", f"/repos/{repo}/dispatches", body)
    except GitHubError as exc:
        raise MlciError(f"repository_dispatch to {repo} failed: {exc}") from None
    return f"dispatched {event_type} to {repo}"


def previous_champion(client, cfg: Config, out_dir: Path, current: str) -> str | None:
    """The champion before `current`, from the audit trail."""
    from mlci import audit, tracking
    from mlci.registry import ROLLBACK_ALIAS, champion_stack

    uri = tracking.tracking_uri(cfg, out_dir)
    exp_id = audit.experiment_id(client, cfg.name, out_dir, uri)
    stack = champion_stack(audit.events(client, exp_id, ROLLBACK_ALIAS))
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def watch(cfg: Config, out_dir: Path, window_path: Path, *, since: float | None = None
          ) -> dict[str, Any]:
    """After a promotion: is the new champion's live accuracy significantly below the previous
    champion's recorded baseline? If so, roll back (alias; the gateway follows it)."""
    from mlci import registry, tracking
    from mlci.io import atomic_write_json, atomic_write_text

    client = tracking.client(cfg, out_dir)
    mv = resolve_model(client, cfg.name, "champion")
    prev = previous_champion(client, cfg, out_dir, str(mv.version))
    if prev is None:
        raise MlciError(f"{cfg.name}@champion v{mv.version} has no previous champion to "
                        "compare with")
    base = baseline_of(client, client.get_model_version(cfg.name, prev))
    profile = artifact_json(client, mv.run_id, "mlci/reference.json") or {}
    features = profile.get("features") or []
    window = read_window(window_path, cfg, features, since)
    dec = decay(window, base, cfg, version=str(mv.version))
    result = {
        "schema": SCHEMA, "mode": "watch", "model": cfg.name, "version": str(mv.version),
        "previous_champion": prev, "decay": dec, "alert": bool(dec.get("decayed")),
        "actions": [],
    }
    if dec.get("decayed"):
        reason = (f"automatic rollback: live accuracy {dec['accuracy']:.3f} of v{mv.version} "
                  f"on {dec['n']} labels is below v{prev}'s {dec['baseline_accuracy']:.3f} "
                  f"by more than {dec['margin']} (p = {dec['p_value']:.3g})")
        rb = registry.rollback(cfg, out_dir, cfg.name, None, reason)
        result["rollback"] = rb
        result["actions"].append(f"rolled {cfg.name}@champion back from v{mv.version} to "
                                 f"v{rb['version']}")
        result["summary"] = reason
    else:
        result["summary"] = f"champion v{mv.version}: {dec['status']}"
    atomic_write_json(out_dir / "watch.json", result)
    atomic_write_text(out_dir / "watch.md", f"## mlci watch: {result['summary']}\n")
    return result
