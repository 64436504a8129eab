"""`mlci adopt`: bring a version registered outside mlci under the gate's rule.

A version logged by another tool has no evidence: no validation, no evaluation record, no
origin, no digest of its files. The gate refuses to promote it and every stage refuses to load
it as a champion. Adopting it is an explicit, audited decision by whoever runs the command
(trusted: it refuses in a pull request): the data is validated, the version's files are
digested as they are now, it is evaluated on the golden set (against the champion, if there
is one) exactly as `mlci evaluate` does, and its origin is recorded (signed with
MLCI_TRUST_KEY when set). From then on it is a version like any other: `mlci promote` decides
on that evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.config import Config


def adopt(cfg: Config, out_dir: Path, version: str, *, reason: str | None = None,
          baseline: str = "auto") -> dict[str, Any]:
    from mlci.data.validate import validate
    from mlci.evaluate import evaluate
    from mlci.io import atomic_write_json
    from mlci.records import RunRecord
    from mlci.registry import gate, models, runs, tracking
    from mlci.registry.aliases import get_version, require_model
    from mlci.registry.trust import MODEL_DIGEST, refuse_untrusted_write

    refuse_untrusted_write(f"adopt a version of {cfg.name}")
    client = tracking.client(cfg, out_dir)
    require_model(client, cfg.name)
    mv = get_version(client, cfg.name, version)
    v = str(mv.version)
    if not mv.run_id:
        raise MlciError(f"{cfg.name}/{v} has no run: MLflow records evidence on runs, "
                        "register the model from a run")
    params = client.get_run(mv.run_id).data.params
    if MODEL_DIGEST in params:
        raise MlciError(f"{cfg.name}/{v} is already under mlci (its run records "
                        f"{MODEL_DIGEST}); promote it with `mlci promote`")
    uri = f"models:/{cfg.name}/{v}"
    digest = models.artifact_digest(uri)
    report = validate(cfg, out_dir, docs=False)
    runs.adopt(client, cfg.name, v, mv.run_id, model_digest=digest,
               validation_success=bool(report["success"]),
               validation_file=out_dir / "validation.json")
    # evaluated as if this job had trained it: the same record, checks and evidence
    atomic_write_json(out_dir / "run.json", RunRecord.of({
        "schema": RunRecord.SCHEMA, "run_id": mv.run_id, "model_name": cfg.name,
        "model_version": v, "model_uri": uri, "artifact_uri": uri,
        "tracking_uri": tracking.tracking_uri(cfg, out_dir), "task": cfg.task,
        "params": {k: val for k, val in params.items() if not k.startswith("mlci.")}},
        "run.json").dump())
    result = evaluate(cfg, out_dir, baseline=baseline)
    from mlci.registry import audit

    exp_id = audit.experiment_id(client, cfg.name, out_dir, tracking.tracking_uri(cfg, out_dir))
    ev = gate._event("adopt", cfg.name, "adopted", None, v, reason=reason,
                     evidence_digest=digest,
                     message=f"adopted: validation {'passed' if report['success'] else 'failed'}"
                             f", gate {result['verdict']} on {cfg.data.golden}")
    audit.record(client, exp_id, ev)
    return {"version": v, "verdict": result["verdict"], "validation": report["success"],
            "model_digest": digest, "event_id": ev.event_id, "checks": result["checks"]}
