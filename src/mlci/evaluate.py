"""Evaluation on the golden set, comparison with the champion, and the gate's evidence.

The baseline ("champion") is, in order: the registry's `champion` alias, else the committed
evaluation record of the base branch (`--baseline git:<ref>`), else none (floors decide alone).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.config import LOWER_IS_BETTER
from mlci.data.hashing import dataset_hash
from mlci.data.load import read_input, split_xy
from mlci.errors import MlciError
from mlci.errors import first_line as _first_line
from mlci.io import atomic_write_json, atomic_write_text, dumps_json, sha256_text
from mlci.records import EvaluationRecord, RunRecord

if TYPE_CHECKING:
    from mlci.config import Config
    from mlci.stats.metrics import Predictions

SCHEMA = "mlci.evaluation/1"
BASELINE_SCHEMA = "mlci.baseline/1"
TAG = "mlci."


def load_run(out_dir: Path) -> RunRecord:
    path = out_dir / "run.json"
    if not path.is_file():
        raise MlciError(f"{path}: no training record; run `mlci train` first")
    return RunRecord.load(path)


def registry_champion(client, name: str) -> str | None:
    """The champion version, or None when there is none; any other registry error stops
    the evaluation (a denied read must not drop the regression check)."""
    from mlci.registry.aliases import current

    return current(client, name, "champion")


_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}(?:[~^][0-9]{0,3})*")


def check_ref(ref: str) -> str:
    """A branch, tag or commit name: never a git option, range, reflog or path spec."""
    if (not _REF.fullmatch(ref) or ".." in ref or "//" in ref or ref.endswith(("/", ".lock"))
            or "/." in ref):
        raise MlciError(f"--baseline git:{ref[:80]!r}: not a git ref (a branch, tag or commit)")
    return ref


def _git_show(root: Path, ref: str, rel: str) -> str | None:
    check_ref(ref)
    git = ["git", "-c", "core.quotePath=false"]
    try:
        top = subprocess.run([*git, "rev-parse", "--show-toplevel"], cwd=root,
                             capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        path = os.path.relpath((root / rel).resolve(), top)
        # resolve the ref on its own first: what reaches `git show` is a hex commit id
        sha = subprocess.run([*git, "rev-parse", "--verify", "--quiet", "--end-of-options",
                              f"{ref}^{{commit}}"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        out = subprocess.run([*git, "show", "--end-of-options", f"{sha}:{path}"], cwd=root,
                             capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def resolve_baseline(
    cfg: Config, out_dir: Path, spec: str, client, candidate_version: str | None,
    golden_hash: str,
) -> dict[str, Any]:
    """Return {"kind", "label", and either "model" (to score) or "record" (committed file)}."""
    import json

    kinds = spec.split(":", 1)
    kind = kinds[0]
    if kind not in ("auto", "registry", "git", "file", "none"):
        raise MlciError(f"--baseline {spec!r}: use auto, registry, git:<ref>, file:<path> or none")
    if kind in ("auto", "registry"):
        v = registry_champion(client, cfg.name)
        if v is not None and v != str(candidate_version):
            return {"kind": "registry", "label": f"registry champion {cfg.name}/{v}",
                    "version": v, "model_uri": f"models:/{cfg.name}/{v}"}
        if kind == "registry":
            return {"kind": "none", "label": "none (no champion in the registry)"}
        from mlci.gha import env

        base = env.github("BASE_REF")
        if base:
            spec, kind = f"git:origin/{base}", "git"
            kinds = spec.split(":", 1)
        else:
            return {"kind": "none", "label": "none (no champion yet)"}
    if kind == "none":
        return {"kind": "none", "label": "none (disabled)"}
    arg = kinds[1] if len(kinds) > 1 else ""
    if not arg:
        raise MlciError(f"--baseline {spec!r}: missing the ref or path after ':'")
    if kind == "git":
        text = _git_show(cfg.root, arg, cfg.evaluation.baseline_file)
        where = f"{cfg.evaluation.baseline_file} at {arg}"
        if text is None:
            return {"kind": "none", "label": f"none ({where} not found)"}
    else:
        p = Path(arg)
        if not p.is_file():
            raise MlciError(f"--baseline {spec!r}: file not found")
        text, where = p.read_text(encoding="utf-8"), str(p)
    try:
        record = json.loads(text)
        if record.get("schema") != BASELINE_SCHEMA:
            raise ValueError("not an mlci baseline record")
    except ValueError as exc:
        raise MlciError(f"baseline {where}: {exc}") from None
    same_rows = record.get("golden_hash") == golden_hash
    return {"kind": kind, "label": f"committed record {where}", "record": record,
            "same_rows": same_rows, "version": record.get("model_version")}


def _check(name: str, passed: bool | None, **evidence: Any) -> dict[str, Any]:
    return {"check": name, "passed": passed, **evidence}


def gate_checks(cfg: Config, metrics: Mapping[str, float | None],
                comparison: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    checks = []
    for metric, floor in cfg.gate.min.items():
        v = metrics.get(metric)
        checks.append(_check(f"{metric} >= {floor}", v is not None and v >= floor,
                             kind="floor", metric=metric, threshold=floor, value=v,
                             **({"reason": "metric not computed for this model"} if v is None
                                else {})))
    for metric, ceiling in cfg.gate.max.items():
        v = metrics.get(metric)
        checks.append(_check(f"{metric} <= {ceiling}", v is not None and v <= ceiling,
                             kind="ceiling", metric=metric, threshold=ceiling, value=v))
    if comparison is not None:
        for metric, allowed in cfg.gate.max_regression.items():
            c = comparison.get(metric)
            if c is None or c["candidate"] is None or c["champion"] is None:
                checks.append(_check(f"{metric} regression <= {allowed}", None, kind="regression",
                                     metric=metric, allowed=allowed,
                                     reason="not comparable with the baseline"))
                continue
            worse_by = c["worse_by"]
            shown, rule = shown_worse_by(metric, c, cfg.gate.regression_rule)
            passed = shown <= allowed + 1e-12
            checks.append(_check(
                f"{metric} not worse than champion by > {allowed}", passed,
                kind="regression", metric=metric, allowed=allowed, worse_by=worse_by,
                shown_worse_by=shown, rule=rule,
                candidate=c["candidate"], champion=c["champion"], ci=c.get("ci"),
                **regression_power(c.get("ci"), allowed, rule, cfg.gate.confidence),
                point_breaks=bool(passed and worse_by > allowed + 1e-12),
            ))
    return checks


POWER = 0.8  # the power at which the gate states the smallest drop it detects


def regression_power(ci: list[float] | None, allowed: float, rule: str,
                     confidence: float) -> dict[str, Any]:
    """The smallest true drop the gate fails with probability `POWER`, and whether the golden
    set is too small to catch a drop of twice the allowance that often.

    The delta's standard error comes from its bootstrap interval (width / 2z). The bound rule
    fails when estimate - z se > allowance, so it detects allowance + (z + z_power) se; the
    point rule fails when estimate > allowance: allowance + z_power se."""
    if not ci or rule.startswith("point (no"):
        return {"detectable": None, "underpowered": None}
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    se = (ci[1] - ci[0]) / (2 * z)
    detectable = allowed + (float(norm.ppf(POWER)) + (z if rule == "bound" else 0.0)) * se
    return {"detectable": detectable, "power": POWER,
            "underpowered": bool(allowed > 0 and detectable > 2 * allowed)}


def shown_worse_by(metric: str, c: dict[str, Any], rule: str) -> tuple[float, str]:
    """How much worse than the champion the candidate is *shown* to be, and the rule used.

    `bound`: the end of the bootstrap interval of the delta most favourable to the candidate
    (so the gate fails only when the whole interval is worse than the allowance; a candidate
    exactly at the allowance fails with probability at most (1 - confidence) / 2); `point`:
    the point estimate. Without an interval the bound rule falls back to the point.
    """
    ci = c.get("ci")
    if rule == "point" or not ci:
        return c["worse_by"], "point" if rule == "point" else "point (no interval)"
    return (ci[0] if metric in LOWER_IS_BETTER else -ci[1]) + 0.0, "bound"  # no "-0.0000"


def _compare(cand: Mapping[str, float | None], champ: Mapping[str, float | None],
             cis: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, v in cand.items():
        b = champ.get(k)
        if v is None or b is None:
            out[k] = {"candidate": v, "champion": b, "delta": None, "worse_by": None, "ci": None}
            continue
        delta = v - b
        worse_by = delta if k in LOWER_IS_BETTER else -delta
        ci = cis.get(k)
        out[k] = {"candidate": v, "champion": b, "delta": delta, "worse_by": worse_by,
                  "ci": list(ci) if ci else None}
    return out


def rescore(cfg: Config, client, name: str, version: str, champion: str) -> dict[str, Any]:
    """The gate's re-evaluation: candidate and champion scored on today's golden set, each
    through its own signature, and the gate's checks run on the comparison."""
    from mlci.registry import models
    from mlci.stats import metrics as M

    df, y, _ = golden_set(cfg)
    h = dataset_hash(cfg, "golden")
    loaded = {v: models.load_version(client, name, v, role=role)
              for v, role in ((version, "candidate"), (champion, "champion"))}
    cand = score(cfg, loaded[version], df, y)
    champ = score(cfg, loaded[champion], df, y, cand.classes)
    cm, bm = M.metrics_of(cfg.task, cand), M.metrics_of(cfg.task, champ)
    cis = M.paired_bootstrap(cfg.task, cand, champ, cfg.gate.bootstrap, cfg.gate.confidence,
                             seed=cfg.model.seed)
    comparison = _compare(cm, bm, cis)
    checks = gate_checks(cfg, cm, comparison)
    return {"champion_version": champion, "golden_hash": f"{h['algo']}:{h['value']}",
            "metrics": cm, "champion_metrics": bm, "checks": checks}


def golden_set(cfg: Config) -> tuple[Any, Any, list[str] | None]:
    """The golden rows (image data: the (N, H, W, C) uint8 images), their labels, and the
    images' paths (None for a table)."""
    if cfg.data.image_size is not None:
        from mlci.data import imageset

        return imageset.load_xy(cfg, "golden")
    golden = read_input(cfg, "golden")
    _, y = split_xy(golden, cfg, cfg.data.golden)
    return golden, y, None


def score(cfg: Config, model, golden, y, classes: list[Any] | None = None) -> Predictions:
    """Predictions of one loaded model on the golden rows, fed the columns it was trained on
    (a champion from before a feature change still gets its own); images go in as the
    tensor they are."""
    from mlci.stats import metrics as M

    if hasattr(golden, "columns"):
        x = model.frame(golden.drop(columns=[cfg.data.target], errors="ignore"),
                        cfg.data.golden)
    else:
        x = golden
    try:
        pr = M.predict(cfg.task, model.estimator, x, y, classes)
    except Exception as exc:
        raise MlciError(f"{model.uri} cannot score {cfg.data.golden}: {_first_line(exc)}") \
            from None
    return with_positive(cfg, pr)


def with_positive(cfg: Config, pr: Predictions) -> Predictions:
    """Mark the positive class (data.positive_label, or inferred for two classes), so the
    positive-class metrics are computed."""
    from mlci.stats import metrics as M

    if cfg.task != "classification" or not pr.classes:
        return pr
    try:
        pr.positive = M.positive_index(pr.classes, pr.y_true, cfg.data.positive_label)
    except ValueError as exc:
        raise MlciError(f"{cfg.path}: data.{exc}") from None
    return pr


def write_plots(cfg: Config, run: RunRecord, cand: Predictions,
                out_dir: Path, images: Any = None) -> dict[str, str]:
    from mlci.report import plots as P

    label = (f"v{run.model_version}" if run.model_version else f"run {run.run_id[:8]}")
    title = f"{cfg.name} {label} on golden"
    if cfg.task == "classification":
        files = {"confusion_matrix": (P.confusion_matrix, "plots/confusion_matrix.png")}
    else:
        files = {"predicted_vs_actual": (P.predicted_vs_actual, "plots/predicted_vs_actual.png"),
                 "residuals": (P.residuals, "plots/residuals.png")}
    for draw, rel in files.values():
        draw(cand, out_dir / rel, title)
    out = {k: rel for k, (_, rel) in files.items()}
    if images is not None and cfg.task == "classification":
        rel = "plots/misclassified.png"
        if P.misclassified_grid(cand, images, out_dir / rel, f"{title}: misclassified"):
            out["misclassified"] = rel
    return out


MISCLASSIFIED_LISTED = 20


def misclassified(cand: Predictions, paths: list[str] | None) -> dict[str, Any] | None:
    """The golden images the model got wrong: how many, and the first few (path, true and
    predicted class), in the golden set's order."""
    if paths is None or not cand.classes:
        return None
    from mlci.stats import metrics as M

    wrong = [i for i in range(len(paths)) if cand.y_pred[i] != cand.y_true[i]]
    shown = [{"path": paths[i], "true": M._jsonable(cand.classes[cand.y_true[i]])
              if cand.y_true[i] >= 0 else None,
              "predicted": M._jsonable(cand.classes[cand.y_pred[i]])}
             for i in wrong[:MISCLASSIFIED_LISTED]]
    return {"count": len(wrong), "of": len(paths), "examples": shown}


def _champion_params(client, base: dict[str, Any]) -> dict[str, str] | None:
    if base.get("kind") == "registry":
        try:
            mv = client.get_model_version(base["model_uri"].split("/")[1], base["version"])
            return {k: v for k, v in client.get_run(mv.run_id).data.params.items()
                    if not k.startswith(TAG)}  # mlci's own evidence is not a hyperparameter
        except Exception:  # noqa: BLE001 - a pruned run: no params to compare
            return None
    rec = base.get("record")
    return rec.get("params") if rec else None


def params_diff(candidate: dict[str, str] | None,
                champion: dict[str, str] | None) -> dict[str, Any]:
    """Hyperparameters of both models and the names whose values differ."""
    cand, champ = candidate or {}, champion
    changed = [] if champ is None else sorted(
        k for k in set(cand) | set(champ) if cand.get(k) != champ.get(k))
    return {"candidate": cand, "champion": champ, "changed": changed}


def evaluate(cfg: Config, out_dir: Path, *, baseline: str = "auto") -> dict[str, Any]:
    import numpy as np

    from mlci.registry import tracking
    from mlci.stats import metrics as M

    t0 = time.perf_counter()
    from mlci.registry import models

    run = load_run(out_dir)
    golden, y, paths = golden_set(cfg)
    golden_hash = dataset_hash(cfg, "golden")
    golden_hash_s = f"{golden_hash['algo']}:{golden_hash['value']}"
    client = tracking.client(cfg, out_dir)
    t_load = time.perf_counter()
    model = models.load(run.artifact_uri)  # this job's own: no registry trust applies
    cand = score(cfg, model, golden, y)
    cand_metrics = M.metrics_of(cfg.task, cand)

    base = resolve_baseline(cfg, out_dir, baseline, client, run.model_version, golden_hash_s)
    comparison = None
    champ_pr = None
    notes: list[str] = []
    if "model_uri" in base:
        # loading a model runs its code: the trust check comes first, and a refusal stops
        # the evaluation (a champion that cannot be trusted is no baseline)
        champ_model = models.load_version(client, cfg.name, base["version"], role="champion")
        try:
            champ_pr = score(cfg, champ_model, golden, y, cand.classes)
        except MlciError as exc:  # e.g. its columns are gone: the floors decide alone
            notes.append(f"champion could not score the golden set: {exc.format_message()}")
            base = {"kind": "none", "label": f"none ({base['label']} failed to score)"}
    elif "record" in base:
        rec = base["record"]
        if base["same_rows"]:
            y_true = cand.y_true if cfg.task == "classification" else np.asarray(y, dtype=float)
            champ_pr = M.from_json(rec["predictions"], y_true)
            champ_pr.positive = cand.positive
            if cfg.task == "classification" and rec["predictions"].get("classes") != cand.classes:
                notes.append("baseline classes differ; compared on metrics only")
                champ_pr = None
        else:
            notes.append("golden set changed since the baseline record: no confidence intervals")
        if champ_pr is None:
            comparison = _compare(cand_metrics, rec.get("metrics", {}), {})
    if champ_pr is not None:
        champ_metrics = M.metrics_of(cfg.task, champ_pr)
        cis = M.paired_bootstrap(cfg.task, cand, champ_pr, cfg.gate.bootstrap,
                                 cfg.gate.confidence, seed=cfg.model.seed)
        comparison = _compare(cand_metrics, champ_metrics, cis)
    t_metrics = time.perf_counter()

    checks = gate_checks(cfg, cand_metrics, comparison)
    failed = [c for c in checks if c["passed"] is False]
    passed = not failed
    plots = write_plots(cfg, run, cand, out_dir, golden if paths is not None else None)
    result = {
        "schema": SCHEMA,
        "verdict": "pass" if passed else "fail",
        "model": {"name": cfg.name, "version": run.model_version, "run_id": run.run_id,
                  "uri": run.model_uri},
        "task": cfg.task,
        "golden": {"path": cfg.data.golden, "hash": golden_hash_s, "rows": int(len(y))},
        "metrics": cand_metrics,
        "baseline": {k: v for k, v in base.items() if k not in ("record",)},
        "comparison": comparison,
        "confidence": cfg.gate.confidence,
        "bootstrap": cfg.gate.bootstrap,
        "checks": checks,
        "failed": [c["check"] for c in failed],
        "notes": notes,
        "per_class": M.per_class(cand) if cfg.task == "classification" else None,
        "positive_label": (M._jsonable(cand.classes[cand.positive])
                           if cand.classes and cand.positive is not None else None),
        "confusion_matrix": M.confusion(cand).tolist() if cfg.task == "classification" else None,
        "classes": [M._jsonable(c) for c in cand.classes] if cand.classes else None,
        "plots": plots,
        "misclassified": misclassified(cand, paths) if cfg.task == "classification" else None,
        "params": params_diff(run.params, _champion_params(client, base)),
    }
    baseline_record = {
        "schema": BASELINE_SCHEMA, "model_name": cfg.name,
        "model_version": run.model_version, "golden_hash": golden_hash_s,
        "metrics": cand_metrics,
        "params": run.params,
        "predictions": {**cand.to_json(),
                        "classes": [M._jsonable(c) for c in cand.classes] if cand.classes
                        else None},
    }
    EvaluationRecord.of(result, "evaluation.json")  # the shape every reader relies on
    text = dumps_json(result)
    digest = "sha256:" + sha256_text(text)
    _record_in_registry(client, cfg.name, run, result, text, digest)
    atomic_write_json(out_dir / "baseline.json", baseline_record)
    atomic_write_json(out_dir / "metrics.json", {k: v for k, v in cand_metrics.items()})
    result["seconds"] = {"load": round(t_load - t0, 3), "metrics": round(t_metrics - t_load, 3),
                         "total": round(time.perf_counter() - t0, 3)}
    atomic_write_text(out_dir / "evaluation.json", text)
    return result


def _record_in_registry(client, name: str, run: RunRecord, result: dict[str, Any],
                        text: str, digest: str) -> None:
    """The promotion gate reads this evidence back from the registry, not from local files."""
    import tempfile

    run_id, version = run.run_id, run.model_version
    for k, v in result["metrics"].items():
        if v is not None:
            client.log_metric(run_id, f"golden_{k}", v)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "evaluation.json"
        p.write_text(text, encoding="utf-8")
        client.log_artifact(run_id, str(p), artifact_path="mlci")
    from mlci.registry.trust import record, sign_evidence

    if version:  # where this version came from, for whoever loads it as a champion later
        record(client, run_id)
    # params are immutable: the gate checks the artifact against this, not against tags
    client.log_param(run_id, "mlci.evaluation.digest." + digest.split(":", 1)[1][:16], digest)
    sign_evidence(client, run_id, digest)
    tags = {
        TAG + "gate.passed": "true" if result["verdict"] == "pass" else "false",
        TAG + "evaluation.digest": digest,
        TAG + "evaluation.baseline": result["baseline"].get("label", ""),
        TAG + "evaluation.champion_version": str(result["baseline"].get("version") or ""),
        TAG + "golden.hash": result["golden"]["hash"],
    }
    for k, v in tags.items():
        client.set_tag(run_id, k, v)  # also on the run: an unregistered (PR) model has no version
        if version:
            client.set_model_version_tag(name, version, k, v)
    if version:  # what the MLflow UI shows on the version's page
        client.update_model_version(name, version, description=describe(result))


def describe(result: dict[str, Any]) -> str:
    """The version's description: verdict, key metrics against the baseline, the run."""
    from mlci.context import ci_run_url

    lines = [f"mlci gate: **{result['verdict']}** on {result['golden']['path']} "
             f"({result['golden']['rows']} rows), baseline: {result['baseline'].get('label')}"]
    comp = result.get("comparison") or {}
    for k, v in list(result["metrics"].items())[:4]:
        if v is None:
            continue
        c = comp.get(k) or {}
        vs = f" (champion {c['champion']:.4g}, {c['delta']:+.4g})" if c.get("champion") \
            is not None else ""
        lines.append(f"- {k}: {v:.4g}{vs}")
    failed = result.get("failed") or []
    if failed:
        lines.append("- failed: " + "; ".join(failed))
    url = ci_run_url()
    if url:
        lines.append(f"- CI run and report: {url}")
    return "\n".join(lines)
