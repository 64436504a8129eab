"""`mlci canary`: start, step, status, promote, abort and run a canary rollout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlci.commands._options import Duration, common, json_option
from mlci.errors import MlciError
from mlci.progress import step as progress_step


def shared(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--model", default=None, envvar="MLCI_MODEL",
                     help="Registered model name (default: `name:` in the config) "
                          "(env MLCI_MODEL).")(f)
    f = click.option("--prediction-log", "log_path", default=None,
                     envvar="MLCI_PREDICTION_LOG",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="The gateway's SQLite prediction log (default <out>/predictions.db) "
                          "(env MLCI_PREDICTION_LOG).")(f)
    f = click.option("--gateway", default=None, envvar="MLCI_GATEWAY",
                     help="Gateway URL; each change waits until the gateway applied it "
                          "(env MLCI_GATEWAY).")(f)
    f = click.option("--backend", type=click.Choice(["local", "kserve"]), default="local",
                     show_default=True, envvar="MLCI_BACKEND",
                     help="local: the `mlci serve` gateway follows the state; kserve: also "
                          "render a KServe InferenceService per step (env MLCI_BACKEND).")(f)
    f = click.option("--kserve-storage-uri", default=None, envvar="MLCI_KSERVE_STORAGE_URI",
                     help="kserve: storage URI template of a version, with {version} "
                          "(env MLCI_KSERVE_STORAGE_URI).")(f)
    f = click.option("--kserve-patch", default=None, envvar="MLCI_KSERVE_PATCH",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="kserve: YAML/JSON patch applied to every InferenceService before it "
                          "is validated: a mapping is a JSON merge patch (its spec.predictor "
                          "also patches the canary's predictor), a list a JSON patch; e.g. "
                          "serviceAccountName, model resources (env MLCI_KSERVE_PATCH).")(f)
    f = click.option("--kserve-namespace", default=None, envvar="MLCI_KSERVE_NAMESPACE",
                     help="kserve: namespace of the InferenceService "
                          "(env MLCI_KSERVE_NAMESPACE).")(f)
    f = click.option("--kserve-mode", type=click.Choice(["knative", "standard"]),
                     default="knative", show_default=True, envvar="MLCI_KSERVE_MODE",
                     help="kserve: deployment mode of the InferenceService; knative splits "
                          "with canaryTrafficPercent, standard with spec.canary (KServe "
                          ">= 0.20) (env MLCI_KSERVE_MODE).")(f)
    f = click.option("--metrics-url", default=None, envvar="MLCI_METRICS_URL",
                     help="kserve: judge from this Prometheus text endpoint (the gateway's "
                          "/metrics or a federation URL) instead of the prediction log "
                          "(env MLCI_METRICS_URL).")(f)
    f = click.option("--apply", "kubectl_apply", is_flag=True, envvar="MLCI_APPLY",
                     help="kserve: `kubectl apply` each rendered manifest (env MLCI_APPLY).")(f)
    return json_option(common(f))


def params_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--steps", default="5,25,50,100", show_default=True, envvar="MLCI_STEPS",
                     help="Challenger traffic percentages, increasing, ending at 100 "
                          "(env MLCI_STEPS)."),
        click.option("--bake", default="60s", show_default=True, type=Duration(),
                     envvar="MLCI_BAKE", help="Time at each step before judging, e.g. 60, "
                                              "90s, 2m (env MLCI_BAKE)."),
        click.option("--min-samples", default=200, show_default=True,
                     type=click.IntRange(1), envvar="MLCI_MIN_SAMPLES",
                     help="Labelled instances per variant before the accuracy test "
                          "(env MLCI_MIN_SAMPLES)."),
        click.option("--min-requests", default=50, show_default=True, type=click.IntRange(1),
                     envvar="MLCI_MIN_REQUESTS",
                     help="Requests per variant before error rate and latency are judged "
                          "(env MLCI_MIN_REQUESTS)."),
        click.option("--margin", default=0.02, show_default=True,
                     type=click.FloatRange(0, 1, max_open=True), envvar="MLCI_MARGIN",
                     help="Non-inferiority margin on accuracy (env MLCI_MARGIN)."),
        click.option("--alpha", default=0.05, show_default=True,
                     type=click.FloatRange(0, 0.5, min_open=True, max_open=True),
                     envvar="MLCI_ALPHA", help="Significance level of the test "
                                               "(env MLCI_ALPHA)."),
        click.option("--max-error-increase", default=0.01, show_default=True,
                     type=click.FloatRange(0, 1), envvar="MLCI_MAX_ERROR_INCREASE",
                     help="Allowed error-rate excess over the champion "
                          "(env MLCI_MAX_ERROR_INCREASE)."),
        click.option("--max-latency-ratio", default=1.5, show_default=True,
                     type=click.FloatRange(1), envvar="MLCI_MAX_LATENCY_RATIO",
                     help="Allowed challenger p99 as a multiple of the champion's "
                          "(env MLCI_MAX_LATENCY_RATIO)."),
        click.option("--latency-slack-ms", default=2.0, show_default=True,
                     type=click.FloatRange(0), envvar="MLCI_LATENCY_SLACK_MS",
                     help="Milliseconds added to the p99 limit (env MLCI_LATENCY_SLACK_MS)."),
        click.option("--max-disagreement", default=None, type=click.FloatRange(0, 1),
                     envvar="MLCI_MAX_DISAGREEMENT",
                     help="Ceiling on shadow disagreement; unset: reported only "
                          "(env MLCI_MAX_DISAGREEMENT)."),
        click.option("--deadline", default="30m", show_default=True,
                     type=Duration(), envvar="MLCI_DEADLINE",
                     help="How long an inconclusive step waits after its bake before rolling "
                          "back (env MLCI_DEADLINE)."),
        click.option("--poll", default="5s", show_default=True,
                     type=Duration(minimum=0.01), envvar="MLCI_POLL",
                     help="Time between looks while waiting (env MLCI_POLL)."),
        click.option("--design", type=click.Choice(["group-sequential", "sequential", "fixed"]),
                     default="group-sequential", show_default=True, envvar="MLCI_DESIGN",
                     help="group-sequential: alpha spent over the sample the deadlines allow, "
                          "stratified by step; sequential: confidence sequences, valid at "
                          "every look; fixed: one test per check at --min-requests / "
                          "--min-samples (env MLCI_DESIGN)."),
        click.option("--traffic", "rate", default=None, type=click.FloatRange(0, min_open=True),
                     envvar="MLCI_TRAFFIC",
                     help="Expected requests/s for the plan (default: the champion's in the "
                          "prediction log's last hour) (env MLCI_TRAFFIC)."),
        click.option("--label-share", default=None, type=click.FloatRange(0, 1),
                     envvar="MLCI_LABEL_SHARE",
                     help="Share of requests that get a label (default: the log's) "
                          "(env MLCI_LABEL_SHARE)."),
        click.option("--label-delay", default=None, type=Duration(),
                     envvar="MLCI_LABEL_DELAY",
                     help="Time from a request to its label, e.g. 10m (default: the log's "
                          "median) (env MLCI_LABEL_DELAY)."),
        click.option("--min-power", default=0.8, show_default=True,
                     type=click.FloatRange(0, 1, max_open=True), envvar="MLCI_MIN_POWER",
                     help="Pre-flight: the least chance of promoting an identical challenger "
                          "by the deadlines (env MLCI_MIN_POWER)."),
        click.option("--preflight", type=click.Choice(["refuse", "warn"]), default="refuse",
                     show_default=True, envvar="MLCI_PREFLIGHT",
                     help="A plan below --min-power: refuse to start (exit 2) or warn "
                          "(env MLCI_PREFLIGHT)."),
        click.option("--latency-threshold-ms", default=None, type=click.FloatRange(0),
                     envvar="MLCI_LATENCY_THRESHOLD_MS",
                     help="The champion's latency quantile t, fixed before the rollout "
                          "(default: from its traffic in the log's last hour, else its "
                          "requests during the first bake) (env MLCI_LATENCY_THRESHOLD_MS)."),
        click.option("--quality-metric", type=click.Choice(["auto", "accuracy", "mae", "mse"]),
                     default="auto", show_default=True, envvar="MLCI_QUALITY_METRIC",
                     help="Quality loss on labelled feedback; auto: accuracy for class labels, "
                          "MAE for numbers; for mae/mse --margin is relative "
                          "(env MLCI_QUALITY_METRIC)."),
        click.option("--latency-quantile", default=0.95, show_default=True,
                     type=click.FloatRange(0.5, 1, max_open=True),
                     envvar="MLCI_LATENCY_QUANTILE",
                     help="Latency quantile judged (0.95: p95) for non-inferiority against "
                          "--max-latency-ratio x champion's + --latency-slack-ms "
                          "(env MLCI_LATENCY_QUANTILE)."),
        click.option("--shadow", is_flag=True, envvar="MLCI_SHADOW",
                     help="The challenger also scores champion traffic; logged, not "
                          "returned (env MLCI_SHADOW)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _params(kw: dict[str, Any]):
    from mlci.flows.canary import Params, parse_steps

    return Params(steps=parse_steps(kw["steps"]), bake=kw["bake"],
                  min_samples=kw["min_samples"], min_requests=kw["min_requests"],
                  margin=kw["margin"], alpha=kw["alpha"],
                  max_error_increase=kw["max_error_increase"],
                  max_latency_ratio=kw["max_latency_ratio"],
                  latency_slack_ms=kw["latency_slack_ms"],
                  max_disagreement=kw["max_disagreement"], deadline=kw["deadline"],
                  poll=kw["poll"], design=kw["design"], quality_metric=kw["quality_metric"],
                  latency_quantile=kw["latency_quantile"], rate=kw["rate"],
                  label_share=kw["label_share"], label_delay=kw["label_delay"],
                  min_power=kw["min_power"], preflight=kw["preflight"],
                  latency_threshold_ms=kw["latency_threshold_ms"])


def _controller(kw: dict[str, Any]):
    from mlci.config import load_config
    from mlci.flows.canary import Controller

    config_path: Path = kw["config_path"]
    cfg = None
    if kw.get("model"):
        if config_path.is_file():
            cfg = load_config(config_path)
        name = kw["model"]
    else:
        cfg = load_config(config_path)
        name = cfg.name
    echo = (lambda s: click.echo(s, err=True)) if kw.get("as_json") else click.echo
    ctl = Controller(cfg, kw["out_dir"], name, log_path=kw.get("log_path"),
                     gateway=kw.get("gateway"), echo=echo)
    if kw.get("backend") == "kserve":
        from mlci.serve.kserve import KServeBackend

        ctl.backend = KServeBackend(ctl, storage_uri=kw.get("kserve_storage_uri"),
                                    namespace=kw.get("kserve_namespace"),
                                    mode=kw.get("kserve_mode") or "knative",
                                    apply=bool(kw.get("kubectl_apply")),
                                    metrics_url=kw.get("metrics_url"),
                                    patch=kw.get("kserve_patch"))
    elif kw.get("kserve_storage_uri") or kw.get("kubectl_apply") or kw.get("metrics_url") \
            or kw.get("kserve_patch"):
        raise MlciError("--kserve-storage-uri, --kserve-patch, --metrics-url and --apply need "
                        "--backend kserve")
    return ctl


def _result(st) -> dict[str, Any]:
    a = st.last_analysis or (st.history[-1]["analysis"] if st.history else None) or {}
    return {"canary_id": st.id, "model": st.model, "status": st.status,
            "decision": st.decision, "reason": st.reason, "challenger": st.challenger,
            "champion": st.champion, "step": st.step + 1, "steps": st.steps,
            "weight": st.weight, "verdict": a.get("verdict"), "summary": a.get("summary"),
            "checks": a.get("checks", []), "variants": a.get("variants"),
            "basis": st.history[-1].get("basis") if st.history and not st.running else None,
            "plan": (st.params or {}).get("plan")}


def _print(st, as_json: bool) -> None:
    r = _result(st)
    if as_json:
        click.echo(json.dumps(r, default=str))
        return
    click.echo(f"canary {st.id}: {st.model}/{st.challenger} vs champion {st.champion}: "
               f"{st.status}, step {st.step + 1}/{len(st.steps)} at {st.weight:g}%")
    if r["summary"]:
        click.echo(f"  {r['summary']}")
    for c in r["checks"]:
        click.echo(f"  [{c['verdict']}] {c['check']}: {c['detail']}")
    if st.reason and not st.running:
        click.echo(f"  {st.decision}: {st.reason}")


def _exit(st) -> int:
    return 1 if st.status == "rolled-back" else 0


@click.group("canary")
def command() -> None:
    """Roll a challenger out step by step behind `mlci serve`; promote or roll back.

    Exit codes: 0 promoted or still running, 1 rolled back, 2 bad input.
    """


@command.command("start")
@shared
@params_options
@click.option("--version", required=True, envvar="MLCI_VERSION",
              help="Model version to roll out (env MLCI_VERSION).")
@click.option("--force", is_flag=True, envvar="MLCI_FORCE",
              help="Start even though VERSION's gate evidence fails (needs --reason; audited; "
                   "env MLCI_FORCE).")
@click.option("--reason", default=None, envvar="MLCI_REASON",
              help="Why; recorded in the audit trail (env MLCI_REASON).")
def start(**kw: Any) -> int:
    """Set `@challenger` to VERSION and route the first step's share to it.

    VERSION needs passing gate evidence (validation, its evaluation record) as `mlci promote`
    does; exit 1 when refused."""
    ctl = _controller(kw)
    st = ctl.start(kw["version"], _params(kw), kw["shadow"], force=kw["force"],
                   reason=kw["reason"])
    ctl.wait_applied(st)
    _print(st, kw["as_json"])
    return 0


@command.command("step")
@shared
def step(**kw: Any) -> int:
    """Judge the current step once: advance, roll back, or keep waiting."""
    ctl = _controller(kw)
    with ctl.exclusive():
        ctl.recover(ctl.state())
        st = ctl.step(ctl.active(), wait=False)
    _print(st, kw["as_json"])
    return _exit(st)


@command.command("status")
@shared
def status(**kw: Any) -> int:
    """Show the rollout and a fresh analysis of the prediction log (changes nothing)."""
    ctl = _controller(kw)
    st = ctl.state()
    if st is None:
        raise MlciError(f"no canary has run from {ctl.path.parent}")
    if st.running:
        st.last_analysis = ctl.analyse(st)
    _print(st, kw["as_json"])
    return 0


@command.command("promote")
@shared
@click.option("--reason", default=None, envvar="MLCI_REASON",
              help="Why promote before the last step; recorded (env MLCI_REASON).")
@click.option("--force", is_flag=True, envvar="MLCI_FORCE",
              help="Promote although the analysis or the gate evidence does not pass "
                   "(needs --reason; audited as a force; env MLCI_FORCE).")
def promote(**kw: Any) -> int:
    """Promote the challenger now (champion moves to it) when its gate evidence holds and
    the analysis passes; exit 1 when refused."""
    ctl = _controller(kw)
    with ctl.exclusive():
        ctl.recover(ctl.state())
        st = ctl.promote(ctl.active(), None, reason=kw["reason"], force=kw["force"])
    _print(st, kw["as_json"])
    return 0


@command.command("abort")
@shared
@click.option("--reason", default="aborted by hand", show_default=True, envvar="MLCI_REASON",
              help="Why; recorded in the audit trail (env MLCI_REASON).")
def abort(**kw: Any) -> int:
    """Roll back now: challenger weight 0, `@challenger` removed, audited (a running
    `mlci canary run` is asked to, and does on its next look)."""
    ctl = _controller(kw)
    st = ctl.abort(kw["reason"])
    _print(st, kw["as_json"])
    return 0


@command.command("plan")
@shared
@params_options
def plan(**kw: Any) -> int:
    """The pre-flight check alone: each check's maximum sample by the deadlines, the chance
    of promoting an identical challenger and the expected time to the decision (exit 2 when
    it is below --min-power)."""
    ctl = _controller(kw)
    ctl.echo = lambda s: None  # the plan below says it all
    p = ctl.plan(_params({**kw, "preflight": "warn"}))
    pf = p.plan
    if pf is None:
        raise MlciError("no traffic to plan from: give --traffic (requests/s), or run the "
                        "gateway on the champion first")
    if kw["as_json"]:
        click.echo(json.dumps(pf, default=str))
    else:
        prof = pf["profile"]
        click.echo(f"traffic: {prof['rate']:.3g} requests/s ({prof['source']}), "
                   f"{prof['label_share']:.0%} labelled after {prof['label_delay']:.0f}s")
        for name, c in pf["checks"].items():
            when = c["expected_seconds"]
            click.echo(f"  {name}: power {c['power']:.1%}, maximum effective sample "
                       f"{c['n_max']:.0f}, expected shown after "
                       + (f"{when / 60:.1f} min" if when is not None else "never"))
        total = pf["expected_seconds_to_promotion"]
        click.echo(f"identical challenger promoted: {pf['power']:.1%}; expected after "
                   + (f"{total / 60:.1f} min" if total is not None else "—")
                   + f" (at most {pf['max_seconds'] / 60:.0f} min)")
        if not pf["ok"]:
            click.echo(f"refused: {pf['advice']}")
    if not pf["ok"]:
        raise MlciError(f"pre-flight: power {pf['power']:.0%} < --min-power; {pf['advice']}")
    return 0


@command.command("run")
@shared
@params_options
@click.option("--version", default=None, envvar="MLCI_VERSION",
              help="Version to roll out; omit to resume the running canary "
                   "(env MLCI_VERSION).")
def run(**kw: Any) -> int:
    """Start (or resume) a rollout and drive it to promotion (exit 0) or rollback (exit 1)."""
    ctl = _controller(kw)
    params = _params(kw) if kw["version"] is not None else None
    st = progress_step("canary", ctl.run, kw["version"], params, kw["shadow"])
    _print(st, kw["as_json"])
    return _exit(st)
