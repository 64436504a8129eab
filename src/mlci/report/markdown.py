"""Build `report.md` from validation.json, run.json and evaluation.json.

The first line is the verdict. It reads well where images are not hosted: the metric changes
and the per-class scores are Mermaid charts, which GitHub draws in the comment itself, and the
confusion matrix is also a text table. mlci's own URLs (the CI run, its artifacts, the commit)
are links when they have the shape GitHub gives them. It stays under GitHub's 65,536-character
comment limit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlci.config import LOWER_IS_BETTER
from mlci.io import read_json
from mlci.report.escape import code, link, mermaid_label, text

ICON = {"pass": "✅", "fail": "❌"}


def _load(out_dir: Path, name: str) -> dict[str, Any] | None:
    p = out_dir / name
    return read_json(p) if p.is_file() else None


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _signed(v: float | None) -> str:
    return "–" if v is None else f"{v:+.4f}"


def verdict_of(validation, run, evaluation) -> tuple[str, str]:
    advisory = validation is not None and validation.get("blocking") is False and \
        evaluation is not None  # validation.block_training: false, and the model was gated
    n = 0 if validation is None else sum(
        1 for d in validation["datasets"].values() for r in d["results"] if not r["success"])
    if n and not advisory:
        return "fail", f"data validation failed ({n} expectation(s))"
    if evaluation is None:
        return "fail", "no evaluation (training did not complete)" if run is None else \
            "model was not evaluated"
    if evaluation["verdict"] != "pass":
        return "fail", "gate failed: " + "; ".join(evaluation["failed"])
    caveat = "".join(f" ⚠ {c['metric']} is worse than its allowance by the point estimate "
                     f"(passed under regression_rule: {c.get('rule')})"
                     for c in evaluation.get("checks", []) if c.get("point_breaks"))
    if n:
        return "pass", (f"gate passed (data validation failed {n} expectation(s), not blocking)"
                        + caveat)
    return "pass", "gate passed" + caveat


def current_records(out_dir: Path, validation, run, evaluation):
    """Drop records left by an earlier pipeline run so the report never mixes runs."""
    from mlci.io import sha256_file

    if run is not None and validation is not None:
        recorded = run.get("tags", {}).get("mlci.validation.digest")
        if recorded and recorded != "sha256:" + sha256_file(out_dir / "validation.json"):
            run = None
    if evaluation is not None and (run is None or evaluation["model"]["run_id"] != run["run_id"]):
        evaluation = None
    return run, evaluation


def _update_is_current(update: dict[str, Any], run: dict[str, Any] | None) -> bool:
    if update.get("status") == "running":
        return False
    if update.get("run_id"):
        return run is not None and run["run_id"] == update["run_id"]
    return update.get("status") in ("refused", "error")  # stopped before training


def build(out_dir: Path, name: str, *, max_chars: int = 60_000, title: str | None = None,
          list_limit: int = 50, extra: list[str] | None = None) -> str:
    validation = _load(out_dir, "validation.json")
    run = _load(out_dir, "run.json")
    evaluation = _load(out_dir, "evaluation.json")
    run, evaluation = current_records(out_dir, validation, run, evaluation)
    update = _load(out_dir, "data_update.json")
    if update and not _update_is_current(update, run):
        update = None
    if update and update.get("status") in ("refused", "error"):
        if "run_id" not in update:  # stopped before training: older records are not about it
            run = evaluation = None
        if "validation" not in update:
            validation = None
    while True:
        text = _render(name, validation, run, evaluation, title, list_limit, update, extra)
        if len(text) <= max_chars or list_limit <= 3:
            break
        list_limit //= 2
    if len(text) > max_chars:
        note = "\n\n_…report truncated to fit the comment size limit._\n"
        text = text[: max_chars - len(note)] + note
    return text


def _render(name, validation, run, evaluation, title, limit, update=None, extra=None) -> str:
    verdict, why = verdict_of(validation, run, evaluation)
    if update and update.get("status") in ("refused", "error"):
        verdict, why = "fail", "data update refused: " + str(update.get("error", ""))
    version = run.get("model_version") if run else None
    head = title or f"mlci: {name}" + (f" v{version}" if version else "")
    out = [f"## {ICON[verdict]} {text(head)}: {text(why, 300)}", ""]
    if evaluation:
        out.append(f"Baseline: {text(evaluation['baseline']['label'])}. Golden set: "
                   f"{code(evaluation['golden']['path'])} "
                   f"({text(evaluation['golden']['rows'])} rows).")
        out.append("")
    if update:
        out += _update_section(update, limit)
    out += _validation_section(validation, limit, _urls(run))
    if evaluation:
        out += _metrics_section(evaluation)
        out += _gate_section(evaluation, limit)
        out += _per_class_section(evaluation, limit)
        out += _confusion_section(evaluation)
        out += _misclassified_section(evaluation)
        out += _regression_plots_section(evaluation)
        out += _params_section(evaluation, limit)
    out += _preprocessing_section(run)
    out += extra or []
    out += _lineage_section(run, validation)
    return "\n".join(out).rstrip() + "\n"


def _update_section(u, limit) -> list[str]:
    out = ["### Data update", "",
           f"Source {code(u['source'])}, mode {code(u['mode'])}: **{text(u['status'])}**"
           + (f" — {text(u['error'])}" if u.get("error") else "") + ".", ""]
    for w in u.get("warnings") or []:
        out += [f"⚠️ {text(w)}", ""]
    if u.get("run_id") and u["status"] != "updated":
        out += ["The model trained on this data was not kept: its registered version and run "
                "were removed, and the training data was restored.", ""]
    diff = u.get("data_diff")
    if diff:
        out += [f"Rows: {diff['rows_before']} → {diff['rows_after']} "
                f"(+{diff['rows_added']} / −{diff['rows_removed']}).", ""]
        for key, label in (("columns_added", "Columns added"),
                           ("columns_removed", "Columns removed")):
            if diff[key]:
                out += [f"{label}: {', '.join(map(text, diff[key]))}.", ""]
        if diff["dtype_changes"]:
            out += ["Type changes: " + ", ".join(f"{text(k)} {text(a)}→{text(b)}" for k, (a, b) in
                                                  diff["dtype_changes"].items()) + ".", ""]
    drift = u.get("drift")
    if drift:
        by_col = {c["column"]: c for c in drift["columns"]}
        out += ["| column | drift | method | statistic | threshold | before → after |",
                "|---|---|---|---:|---:|---|"]
        for c in (diff or {}).get("columns", [])[:limit]:
            d = by_col.get(c["column"], {})
            stat = _drift_stat(d)
            flag = {True: "⚠️ drifted", False: "ok", None: "n/a"}[d.get("drifted")]
            if "mean" in c:
                change = f"mean {_fmt(c['mean'][0])} → {_fmt(c['mean'][1])}"
            else:
                change = ", ".join(f"{text(k)} {_fmt(a, 2)}→{_fmt(b, 2)}"
                                   for k, (a, b) in list(c["shares"].items())[:4])
            out.append(f"| {text(c['column'])} | {flag} | {text(d.get('method', '–'))} | "
                       f"{stat} | {text(_fmt(d.get('threshold')))} | {change} |")
        out += ["", f"Drifted columns: {len(drift['drifted_columns'])} "
                f"({drift['share_drifted']:.0%}).", ""]
    return out


def _drift_stat(d: dict[str, Any]) -> str:
    st, m = d.get("statistics") or {}, d.get("method")
    key = {"ks": "ks_pvalue", "chi2": "chi2_pvalue", "wasserstein": "wasserstein",
           "jensenshannon": "jensenshannon", "psi": "psi"}.get(m or "")
    return _fmt(st.get(key)) if key else "–"


def _validation_section(v, limit, urls: dict[str, str] | None = None) -> list[str]:
    urls = urls or {}
    out = ["### Data validation", ""]
    if v is None:
        return out + ["_Not run._", ""]
    out.append("| data | rows | expectations | passed | result |")
    out.append("|---|---:|---:|---:|---|")
    for name, d in v["datasets"].items():
        s = d["statistics"]
        out.append(f"| {text(name)} {code(d['path'])} | {text(d['rows'])} | "
                   f"{text(s['evaluated_expectations'])} | {text(s['successful_expectations'])} | "
                   f"{'✅' if d['success'] else '❌'} |")
    failed = [(n, r) for n, d in v["datasets"].items() for r in d["results"] if not r["success"]]
    if failed:
        out += ["", "Failed expectations:", "", "| data | expectation | column | unexpected | "
                "examples / observed |", "|---|---|---|---:|---|"]
        for n, r in failed[:limit]:
            ex = r.get("observed") or r.get("error") or (
                ", ".join(map(str, r["examples"][:5])) if r["examples"]
                else _fmt(r.get("observed_value")))
            out.append(f"| {text(n)} | {code(r['expectation'])} | {text(r['column'] or '')} | "
                       f"{text(_fmt(r.get('unexpected_count')))} | {text(ex, 200)} |")
        if len(failed) > limit:
            out.append(f"| … | {len(failed) - limit} more not shown | | | |")
    if v.get("data_docs"):
        where = (f"in the {link('run’s artifacts', urls['artifacts'])}" if "artifacts" in urls
                 else "under the output folder")
        out += ["", f"Data Docs (every expectation, with charts): {code(v['data_docs'])} {where}."]
    out.append("")
    return out


def _direction(metric: str, delta: float | None) -> str:
    """" (better)" or " (worse)" for a candidate-minus-champion delta of this metric."""
    if delta is None or delta == 0:
        return "" if delta is None else " (same)"
    better = (delta < 0) if metric in LOWER_IS_BETTER else (delta > 0)
    return " (better)" if better else " (worse)"


def _metrics_section(e) -> list[str]:
    out = ["### Metrics on the golden set", ""]
    comp = e.get("comparison")
    pct = int(round(e.get("confidence", 0.95) * 100))
    if comp:
        out += [f"| metric | candidate | champion | delta | {pct}% CI of delta |",
                "|---|---:|---:|---:|---|"]
        for k, v in e["metrics"].items():
            c = comp.get(k) or {}
            ci = c.get("ci")
            ci_s = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "–"
            out.append(f"| {text(k)} | {text(_fmt(v))} | {text(_fmt(c.get('champion')))} | "
                       f"{_signed(c.get('delta'))}{_direction(k, c.get('delta'))} | {ci_s} |")
    else:
        out += ["| metric | candidate |", "|---|---:|"]
        out += [f"| {text(k)} | {text(_fmt(v))} |" for k, v in e["metrics"].items()]
    for n in e.get("notes", []):
        out += ["", f"_Note: {text(n)}_"]
    out.append("")
    return out + _change_chart(e) + _per_class_chart(e)


def _chart(title: str, labels: list[Any], values: list[float], axis: str, lo: float,
           hi: float) -> list[str]:
    """A Mermaid bar chart (xychart-beta), which GitHub renders in comments and summaries."""
    return ["```mermaid", "xychart-beta", f'    title "{title}"',
            "    x-axis [" + ", ".join(mermaid_label(x) for x in labels) + "]",
            f'    y-axis "{axis}" {lo:.4g} --> {hi:.4g}',
            "    bar [" + ", ".join(f"{v:.4f}" for v in values) + "]", "```", ""]


def _change_chart(e) -> list[str]:
    """Each metric's change against the champion, signed so that above 0 is better."""
    comp = e.get("comparison") or {}
    points = [(k, -d if k in LOWER_IS_BETTER else d) for k in e["metrics"]
              if (d := (comp.get(k) or {}).get("delta")) is not None]
    if not points:
        return []
    lo, hi = min(0.0, *(v for _, v in points)), max(0.0, *(v for _, v in points))
    pad = max(hi - lo, 1e-3) * 0.1
    return _chart("Change against the champion (above 0 is better)", [k for k, _ in points],
                  [v for _, v in points], "change", lo - pad if lo < 0 else 0.0, hi + pad)


def _per_class_chart(e) -> list[str]:
    rows = (e.get("per_class") or [])[:30]
    if not rows:
        return []
    return _chart("F1 per class", [r["class"] for r in rows], [r["f1"] for r in rows], "F1",
                  0.0, 1.0)


def _gate_section(e, limit) -> list[str]:
    out = ["### Gate", "", "| check | result | evidence |", "|---|---|---|"]
    for c in e["checks"][:limit]:
        mark = {True: "✅ pass", False: "❌ fail", None: "➖ n/a"}[c["passed"]]
        if c["kind"] in ("floor", "ceiling"):
            ev = f"value {_fmt(c['value'])}"
        else:
            ev = c.get("reason") or (f"worse by {_fmt(c['worse_by'])}"
                                     + (f", shown worse by {_fmt(c['shown_worse_by'])} "
                                        f"({c.get('rule')})" if "shown_worse_by" in c else "")
                                     + f" (candidate {_fmt(c['candidate'])}, "
                                     f"champion {_fmt(c['champion'])}, "
                                     + ("lower" if c["metric"] in LOWER_IS_BETTER else "higher")
                                     + " is better)" + _gate_power(c))
            if c.get("point_breaks"):
                mark += " ⚠"
                ev = (f"⚠ the point estimate breaks the allowance {_fmt(c['allowed'])}; passed "
                      f"only because regression_rule: {c.get('rule')} asks the interval to "
                      "show it. " + ev)
        out.append(f"| {text(c['check'])} | {mark} | {text(ev)} |")
    if not e["checks"]:
        out.append("| (no checks configured) | ➖ | |")
    out.append("")
    return out


def _gate_power(c: dict[str, Any]) -> str:
    """The smallest drop this golden set detects, and a warning when it is too small."""
    if c.get("detectable") is None:
        return ""
    note = (f"; detects a true drop of {_fmt(c['detectable'])} with "
            f"{c.get('power', 0.8):.0%} power")
    if c.get("underpowered"):
        note += (f". ⚠ golden set too small: a drop of twice the allowance "
                 f"({_fmt(2 * c['allowed'])}) is caught less than {c.get('power', 0.8):.0%} "
                 "of the time; add golden rows")
    return note


def _per_class_section(e, limit) -> list[str]:
    rows = e.get("per_class")
    if not rows:
        return []
    # open when a positive class is set: on imbalanced data this table is the verdict's why
    tag = "<details open>" if e.get("positive_label") is not None else "<details>"
    out = [f"{tag}<summary>Per-class metrics</summary>", "",
           "| class | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
    positive = e.get("positive_label")
    for r in rows[:limit]:
        mark = " (positive)" if positive is not None and r["class"] == positive else ""
        out.append(f"| {text(r['class'])}{mark} | {r['precision']:.4f} | {r['recall']:.4f} | "
                   f"{r['f1']:.4f} | {r['support']} |")
    if len(rows) > limit:
        out.append(f"| … {len(rows) - limit} more classes not shown | | | | |")
    return out + ["", "</details>", ""]


def _confusion_section(e) -> list[str]:
    cm, classes = e.get("confusion_matrix"), e.get("classes")
    if not cm or not classes or len(classes) > 30:
        return []
    out = ["### Confusion matrix", ""]
    if e.get("plots", {}).get("confusion_matrix"):
        out += [f"![confusion matrix]({e['plots']['confusion_matrix']})", ""]
    out.append("| true \\ predicted | " + " | ".join(text(c) for c in classes) + " |")
    out.append("|---|" + "---:|" * len(classes))
    for c, row in zip(classes, cm, strict=False):
        out.append(f"| **{text(c)}** | " + " | ".join(text(v) for v in row) + " |")
    return out + [""]


def _misclassified_section(e) -> list[str]:
    """The golden images the model got wrong: the grid (an artifact) and a text list (the
    paths and classes come from the data: escaped as untrusted text)."""
    mis = e.get("misclassified")
    if not mis or not mis.get("count"):
        return []
    out = [f"<details><summary>Misclassified golden images: {mis['count']} of {mis['of']}"
           "</summary>", ""]
    if (e.get("plots") or {}).get("misclassified"):
        out += [f"![misclassified golden images]({e['plots']['misclassified']})", ""]
    out += ["| image | true | predicted |", "|---|---|---|"]
    for r in mis.get("examples", []):
        out.append(f"| {text(r['path'])} | {text(r['true'])} | {text(r['predicted'])} |")
    if mis["count"] > len(mis.get("examples", [])):
        out.append(f"| … {mis['count'] - len(mis['examples'])} more | | |")
    return out + ["", "</details>", ""]


def _regression_plots_section(e) -> list[str]:
    plots = e.get("plots") or {}
    shown = [(k, plots[k]) for k in ("predicted_vs_actual", "residuals") if plots.get(k)]
    if not shown:
        return []
    out = ["### Predictions against the truth", ""]
    for key, rel in shown:
        out += [f"![{key.replace('_', ' ')}]({rel})", ""]
    return out


def _params_section(e, limit) -> list[str]:
    p = e.get("params") or {}
    cand, champ = p.get("candidate") or {}, p.get("champion")
    if not cand and not champ:
        return []
    changed = p.get("changed") or []
    if champ is None:
        keys, head = sorted(cand), "Hyperparameters (no champion to compare)"
    else:
        keys = changed
        head = (f"Hyperparameters: {len(changed)} changed against the champion" if changed
                else "Hyperparameters: same as the champion")
    out = [f"<details><summary>{head}</summary>", ""]
    if keys:
        out += ["| parameter | candidate | champion |", "|---|---|---|"]
        for k in keys[:limit]:
            c = "–" if k not in cand else code(cand[k])
            b = "–" if champ is None or k not in champ else code(champ[k])
            out.append(f"| {text(k)} | {c} | {b} |")
        if len(keys) > limit:
            out.append(f"| … {len(keys) - limit} more | | |")
    return out + ["", "</details>", ""]


def _preprocessing_section(run) -> list[str]:
    notes = ((run or {}).get("preprocessing") or {}).get("notes") or []
    if not notes:
        return []
    return ["### Preprocessing", ""] + [f"- {text(n)}" for n in notes] + [""]


_RUN_URL = re.compile(r"^(https://[A-Za-z0-9.-]+(?::\d+)?)/([\w.-]+/[\w.-]+)/actions/runs/\d+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _urls(run) -> dict[str, str]:
    """mlci's own URLs from the run's tags (`run`, `artifacts`, `commit`), only when the run URL
    has the shape GitHub gives it; the commit link is built on the run's own repository."""
    tags = (run or {}).get("tags", {})
    m = _RUN_URL.match(str(tags.get("mlci.ci.run_url", "")))
    if not m:
        return {}
    urls = {"run": m.group(0), "artifacts": m.group(0) + "#artifacts"}
    if _COMMIT.match(str(tags.get("mlci.git.commit", ""))):
        urls["commit"] = f"{m.group(1)}/{m.group(2)}/commit/{tags['mlci.git.commit']}"
    return urls


def _lineage_section(run, validation) -> list[str]:
    out = ["### Lineage", ""]
    if run is None:
        return out + ["_No model was trained._", ""]
    t, urls = run.get("tags", {}), _urls(run)
    sha = t.get("mlci.git.commit", "?")
    commit = link(sha[:12], urls["commit"]) if "commit" in urls else code(sha)
    rows = [
        ("model", f"{code(run['model_uri'])} (run {code(run['run_id'])})"),
        ("commit", f"{commit} on {code(t.get('mlci.git.branch', '?'))}"
                   + (" (dirty tree)" if t.get("mlci.git.dirty") == "true" else "")),
        ("repository", text(t.get("mlci.git.repo", "?"))),
        ("trigger", text(t.get("mlci.trigger", "?"))),
        ("CI run", link("run " + urls["run"].rsplit("/", 1)[1], urls["run"]) if urls
                   else text(t.get("mlci.ci.run_url", "local"))),
    ]
    if urls:
        rows.append(("artifacts", link("report, plots and Data Docs", urls["artifacts"])))
    rows += [
        ("train data", f"{code(t.get('mlci.data.train.path'))} "
                       f"{code(t.get('mlci.data.train.hash'))}"),
        ("golden data", f"{code(t.get('mlci.data.golden.path'))} "
                        f"{code(t.get('mlci.data.golden.hash'))}"),
        ("validation", f"{text(t.get('mlci.validation.success', '?'))} "
                       f"{code(t.get('mlci.validation.digest', '–'))}"),
    ]
    out += ["| record | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return out + [""]


def write_step_summary(text: str) -> bool:
    from mlci.gha import env

    path = env.github("STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return True
