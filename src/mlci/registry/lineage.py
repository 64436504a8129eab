"""Where a registered model version came from, read back from the registry and the audit trail.

Answers: which commit and repo, which data (with DVC or sha256 hashes), did validation pass
(digest and link), what the evaluation measured and which gate checks it passed, which CI run
and trigger produced it, who approved it, which version it replaced, and whether it is a
rollback. `to_markdown` gives the block the PR report embeds.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError
from mlci.registry import audit
from mlci.registry.aliases import TAG, current, get_version, require_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

SCHEMA = "mlci.lineage/1"
_REF = re.compile(r"^(?P<name>[^@/:]+)(?:@(?P<alias>[^@/:]+)|/(?P<version>[^@/:]+))$")


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    m = _REF.match(ref.strip())
    if not m:
        raise MlciError(f"{ref!r}: give NAME@ALIAS (e.g. iris@champion) or NAME/VERSION "
                        "(e.g. iris/3)")
    return m["name"], m["alias"], m["version"]


def resolve(client: MlflowClient, ref: str) -> tuple[str, str, str | None]:
    """(name, version, alias) for a reference; one-line errors for every bad input."""
    name, alias, version = parse_ref(ref)
    require_model(client, name)
    if alias is not None:
        v = current(client, name, alias)
        if v is None:
            known = sorted(client.get_registered_model(name).aliases or {})
            close = [a for a in known if a.lower() == alias.lower()]
            hint = (f"; aliases are case-sensitive, did you mean {close[0]!r}?" if close
                    else f" (aliases: {', '.join(known) or 'none'})")
            raise MlciError(f"{name} has no alias {alias!r}{hint}")
        return name, v, alias
    mv = get_version(client, name, version or "")
    return name, str(mv.version), None


def artifact_json(client: MlflowClient, run_id: str, path: str) -> dict[str, Any] | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - missing artifact: the field stays empty
        return None


def _commit_url(repo: str | None, commit: str | None) -> str | None:
    if not repo or not commit or commit == "unknown":
        return None
    from mlci.gha import env

    server = (env.github("SERVER_URL") or "https://github.com").rstrip("/")
    m = re.match(r"^(?:https://github\.com/|git@github\.com:)?([\w.-]+/[\w.-]+?)(?:\.git)?$",
                 repo)
    return f"{server}/{m[1]}/commit/{commit}" if m else None


def lineage(client: MlflowClient, ref: str, audit_exp: str | None = None,
            tracking_uri: str | None = None) -> dict[str, Any]:
    name, v, alias = resolve(client, ref)
    mv = client.get_model_version(name, v)
    t = mv.tags or {}

    def tag(k: str) -> str | None:
        return t.get(TAG + k) or None

    aliases_now = {a: str(x) for a, x in (client.get_registered_model(name).aliases or {})
                   .items()}
    run = None
    metrics: dict[str, float] = {}
    artifact_uri = None
    ui = None
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            metrics = {k[len("golden_"):]: val for k, val in run.data.metrics.items()
                       if k.startswith("golden_")}
            artifact_uri = run.info.artifact_uri
            if tracking_uri and tracking_uri.startswith(("http://", "https://")):
                ui = (f"{tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}"
                      f"/runs/{run.info.run_id}")
        except Exception:  # noqa: BLE001 - run deleted: lineage from the version's tags
            run = None
    evaluation = (artifact_json(client, mv.run_id, "mlci/evaluation.json")
                  if run and mv.run_id else None)

    evs = [e for e in audit.events(client, audit_exp) if e.to_version == v]
    moves = [e for e in evs if e.action in ("promote", "force", "rollback", "canary")]
    champ_moves = [e for e in moves if e.alias == "champion"]
    last = (champ_moves or moves)[-1] if moves else None
    approval = None
    if last is not None:
        approval = {"action": last.action, "alias": last.alias, "approver": last.approver,
                    "actor": last.actor, "time": last.time, "reason": last.reason,
                    "ci_run_url": last.ci_run_url, "event_id": last.event_id}
    commit, repo = tag("git.commit"), tag("git.repo")
    return {
        "schema": SCHEMA,
        "model": {"name": name, "version": v, "ref": ref, "uri": f"models:/{name}/{v}",
                  "run_id": mv.run_id, "source": mv.source,
                  "aliases": sorted(a for a, x in aliases_now.items() if x == v),
                  "resolved_alias": alias, "mlflow_run_url": ui},
        "git": {"commit": commit, "branch": tag("git.branch"), "repo": repo,
                "dirty": tag("git.dirty"), "commit_url": _commit_url(repo, commit)},
        "data": {k: {"path": tag(f"data.{k}.path"), "hash": tag(f"data.{k}.hash")}
                 for k in ("train", "golden")},
        "dataset_digest": tag("dataset.digest"),
        "config_digest": tag("config.digest"),
        "validation": {"success": tag("validation.success"), "digest": tag("validation.digest"),
                       "link": f"{artifact_uri}/mlci/validation.json" if artifact_uri else None},
        "evaluation": {
            "gate_passed": tag("gate.passed"), "digest": tag("evaluation.digest"),
            "baseline": tag("evaluation.baseline"),
            "champion_version": tag("evaluation.champion_version"),
            "golden_hash": tag("golden.hash"),
            "metrics": metrics or (evaluation or {}).get("metrics") or {},
            "checks": [{"check": c.get("check"), "passed": c.get("passed")}
                       for c in (evaluation or {}).get("checks", [])],
            "link": f"{artifact_uri}/mlci/evaluation.json" if artifact_uri else None,
        },
        "ci": {"run_url": tag("ci.run_url"), "trigger": tag("trigger"), "actor": tag("actor"),
               "reason": tag("trigger.reason")},
        "approval": approval,
        "replaced": last.from_version if last is not None else None,
        "rollback_of": last.rollback_of if last is not None else None,
        "events": [e.to_dict() for e in evs],
    }


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _cell(v: str) -> str:
    """Free text (a reason, a path) must not break the table."""
    return " ".join(v.replace("|", "\\|").split())


def to_markdown(d: dict[str, Any]) -> str:
    m, g, val, ev, ci = d["model"], d["git"], d["validation"], d["evaluation"], d["ci"]
    commit = _fmt(g["commit"])
    if g.get("commit_url"):
        commit = f"[`{g['commit'][:12]}`]({g['commit_url']})"
    aliases = ", ".join(f"`{a}`" for a in m["aliases"]) or "none"
    rows = [
        ("model", f"`{m['name']}` version {m['version']} (aliases: {aliases})"),
        ("commit", f"{commit} on `{_fmt(g['branch'])}` of {_fmt(g['repo'])}"
                   + (" (dirty tree)" if g.get("dirty") == "true" else "")),
    ]
    for k, x in d["data"].items():
        rows.append((f"data: {k}", f"`{_fmt(x['path'])}` `{_fmt(x['hash'])}`"))
    rows.append(("validation", f"{_fmt(val['success'])} (`{_fmt(val['digest'])}`)"))
    mets = ", ".join(f"{k} {_fmt(x)}" for k, x in sorted(ev["metrics"].items()))
    rows.append(("evaluation", f"gate passed: {_fmt(ev['gate_passed'])}; {mets or 'no metrics'}"
                 f" (`{_fmt(ev['digest'])}`)"))
    rows.append(("compared with", _fmt(ev["baseline"])))
    if ev["checks"]:
        marks = {True: "✅", False: "❌", None: "➖"}
        rows.append(("gate checks", "; ".join(f"{marks.get(c['passed'], '➖')} {c['check']}"
                                              for c in ev["checks"])))
    run = ci["run_url"]
    rows.append(("CI run", (f"[{run}]({run})" if run else "local")
                 + f", trigger `{_fmt(ci['trigger'])}`, by {_fmt(ci['actor'])}"
                 + (f" — {_fmt(ci['reason'])}" if ci.get("reason") else "")))
    a = d["approval"]
    if a:
        rows.append(("approved", f"{a['action']} to `{a['alias']}` by {_fmt(a['approver'])} "
                                 f"at {a['time'][:19]}Z" + (f": {a['reason']}" if a["reason"]
                                                            else "")))
    else:
        rows.append(("approved", "not promoted"))
    rows.append(("replaced", _fmt(d["replaced"])))
    if d["rollback_of"]:
        rows.append(("rollback of", f"version {d['rollback_of']}"))
    lines = [f"### Lineage of {m['name']} v{m['version']}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def to_text(d: dict[str, Any]) -> str:
    md = to_markdown(d).splitlines()
    out = [md[0].lstrip("# ")]
    for line in md[4:]:
        parts = [p.strip() for p in line.strip("|").split(" | ", 1)]
        if len(parts) == 2:
            out.append(f"  {parts[0]:<14} {parts[1].replace(chr(92) + '|', '|')}")
    return "\n".join(out) + "\n"
