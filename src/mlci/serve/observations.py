"""What the canary judges, read from the prediction log: per-request errors, latencies and
routing keys, and per-instance predictions with their labels, for one rollout.

Requests without a routing key (not sticky) each form their own cluster, keyed by request id.
One routing key contributes at most `max_key_share` of a variant's requests (its first ones,
in time order; its later requests and their labels are left out): a client that found the
keys reaching the challenger cannot make its own traffic the evidence. Requests without a key
are routed at random, so they cannot be aimed. Each answered request also carries its number
of rows, so latency is judged per request-size class (see `mlci.stats.judge`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlci.serve.predlog import connect, same
from mlci.stats.judge import Observations

VARIANTS = ("champion", "challenger")
MAX_KEY_SHARE = 0.05


def _key_quota(rows: list[tuple[Any, ...]], variant: str, share: float) -> dict[str, int]:
    """Requests each routing key may contribute: `share` of the variant's (at least one)."""
    mine = [r[3] for r in rows if r[1] == variant]
    return dict.fromkeys({k for k in mine if k}, max(1, int(share * len(mine))))


def rollout_observations(path: Path, canary_id: str, *,
                         max_key_share: float = MAX_KEY_SHARE) -> dict[str, Any]:
    """{"variants": {variant: Observations}, "shadow": {...}} of one rollout, in time order."""
    rows: list[tuple[Any, ...]] = []
    if Path(path).exists():
        con = connect(path, readonly=True)
        try:
            rows = con.execute(
                "SELECT p.request_id, p.variant, p.version, p.route_key, p.latency_ms, "
                "p.error, p.outputs, f.label, p.shadow_outputs, p.shadow_error, p.ts, p.n "
                "FROM predictions p LEFT JOIN feedback f ON f.request_id = p.request_id "
                "WHERE p.canary_id = ? ORDER BY p.ts", (canary_id,)).fetchall()
        finally:
            con.close()
    acc: dict[str, dict[str, list[Any]]] = {
        v: {"err": [], "rkey": [], "lat": [], "lkey": [], "rows": [], "pred": [], "label": [],
            "ykey": [], "rts": [], "lts": [], "yts": []}
        for v in VARIANTS}
    quota = {v: _key_quota(rows, v, max_key_share) for v in VARIANTS}
    versions: dict[str, str | None] = dict.fromkeys(VARIANTS)
    shadow = {"compared": 0, "disagreements": 0, "errors": 0}
    for rid, variant, version, rkey, lat, err, outputs, label, s_out, s_err, ts, n in rows:
        a = acc.get(variant)
        if a is None:
            continue
        versions[variant] = version
        if rkey:
            q = quota[variant]
            if q[rkey] <= 0:
                continue  # this key has had its share of the evidence
            q[rkey] -= 1
        key = rkey or f"request:{rid}"
        a["err"].append(1.0 if err else 0.0)
        a["rkey"].append(key)
        a["rts"].append(float(ts))
        if err:
            continue
        a["lat"].append(float(lat))
        a["lkey"].append(key)
        a["lts"].append(float(ts))
        a["rows"].append(n or 1)
        preds = json.loads(outputs) if outputs else []
        if label is not None:
            labels = json.loads(label)
            labels = labels if isinstance(labels, list) else [labels]
            for p, y in zip(preds, labels, strict=False):
                a["pred"].append(p)
                a["label"].append(y)
                a["ykey"].append(key)
                a["yts"].append(float(ts))  # the stratum is the request's step
        if s_err:
            shadow["errors"] += 1
        elif s_out:
            for p, q in zip(preds, json.loads(s_out), strict=False):
                shadow["compared"] += 1
                shadow["disagreements"] += not same(p, q)
    out = {v: Observations(version=versions[v], errors=np.asarray(a["err"], dtype=float),
                           request_keys=np.asarray(a["rkey"], dtype=object),
                           latency_ms=np.asarray(a["lat"], dtype=float),
                           latency_keys=np.asarray(a["lkey"], dtype=object),
                           latency_rows=np.asarray(a["rows"], dtype=float),
                           predictions=a["pred"], labels=a["label"],
                           label_keys=np.asarray(a["ykey"], dtype=object),
                           request_ts=np.asarray(a["rts"], dtype=float),
                           latency_ts=np.asarray(a["lts"], dtype=float),
                           label_ts=np.asarray(a["yts"], dtype=float))
           for v, a in acc.items()}
    return {"variants": out, "shadow": shadow}


def from_variant_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Observations from aggregate counters (a metrics endpoint): errors and labelled
    correctness as counts; no per-request latencies, so latency is not judged."""
    out = {}
    for v in VARIANTS:
        s = stats["variants"][v]
        errors = np.r_[np.ones(s.errors), np.zeros(s.requests - s.errors)]
        out[v] = Observations(version=s.version, errors=errors, has_latencies=False,
                              p99_ms=s.p99(),
                              predictions=[1] * s.correct + [0] * (s.labelled - s.correct),
                              labels=[1] * s.labelled)
    return {"variants": out, "shadow": stats["shadow"]}


def traffic_before(path: Path, model: str, since: float, until: float) -> dict[str, Any] | None:
    """The model's traffic in the prediction log between `since` and `until` (before a
    rollout): request rate, label share and median label delay, error rate, label error
    share, and the answered requests' latencies (for a latency threshold fixed in advance).
    None without a log or without rows."""
    if not Path(path).exists():
        return None
    con = connect(path, readonly=True)
    try:
        rows = con.execute(
            "SELECT p.ts, p.latency_ms, p.error, p.outputs, f.label, f.ts FROM predictions p "
            "LEFT JOIN feedback f ON f.request_id = p.request_id "
            "WHERE p.ts >= ? AND p.ts < ? AND (p.model = ? OR p.model IS NULL) "
            "AND p.variant = 'champion' ORDER BY p.ts", (since, until, model)).fetchall()
    finally:
        con.close()
    if not rows:
        return None
    ts = np.asarray([r[0] for r in rows], dtype=float)
    errors = np.asarray([1.0 if r[2] else 0.0 for r in rows])
    lat = np.asarray([float(r[1]) for r in rows if not r[2] and r[1] is not None])
    labelled = [r for r in rows if r[4] is not None and not r[2]]
    wrong = 0
    for r in labelled:
        preds, labels = json.loads(r[3]) if r[3] else [], json.loads(r[4])
        labels = labels if isinstance(labels, list) else [labels]
        wrong += any(not same(p, y) for p, y in zip(preds, labels, strict=False))
    span = max(float(ts[-1] - ts[0]), 1.0)
    return {"requests": len(rows), "seconds": span, "rate": len(rows) / span,
            "label_share": len(labelled) / len(rows),
            "label_delay": float(np.median([r[5] - r[0] for r in labelled])) if labelled
            else 0.0,
            "error_rate": float(errors.mean()),
            "label_error": wrong / len(labelled) if labelled else None,
            "latency_ms": lat}
