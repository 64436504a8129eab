"""`mlci serve`: the routing gateway for champion and challenger (needs the `serve` extra)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from mlci.commands._options import Duration, common, docs_url
from mlci.errors import MlciError

MIN_TOKEN = 16


def _model_name(config_path: Path, model: str | None) -> tuple[object | None, str]:
    from mlci.config import load_config

    if model:
        if config_path.is_file():
            return load_config(config_path), model
        from mlci.modelspec import import_project

        import_project(Path.cwd())  # the repository the gateway runs in: its own package
        return None, model
    return (cfg := load_config(config_path)), cfg.name


@click.command("serve", epilog=(f"Endpoints, limits, tokens and the prediction log: "
                                f"{docs_url('serving.md')}" if docs_url("serving.md") else None))
@common
@click.option("--model", default=None, envvar="MLCI_MODEL",
              help="Registered model name (default: `name:` in the config) (env MLCI_MODEL).")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MLCI_HOST",
              help="Address to listen on (env MLCI_HOST).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              envvar="MLCI_PORT", help="Port to listen on (env MLCI_PORT).")
@click.option("--prediction-log", "log_path", default=None, envvar="MLCI_PREDICTION_LOG",
              type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite prediction log (default <out>/predictions.db) "
                   "(env MLCI_PREDICTION_LOG).")
@click.option("--key-header", default="X-Mlci-Key", show_default=True,
              envvar="MLCI_KEY_HEADER",
              help="Header whose value keeps a caller on one variant (env MLCI_KEY_HEADER).")
@click.option("--poll", default="0.25s", show_default=True, type=Duration(minimum=0.01),
              envvar="MLCI_POLL", help="Time between reads of the rollout state "
                                       "(env MLCI_POLL).")
@click.option("--image-max", default=None, type=click.FloatRange(min=0, min_open=True),
              envvar="MLCI_IMAGE_MAX",
              help="Only for a model of flat square pixels that declares no image tensor "
                   "(e.g. the digits example: 16): images are made grayscale, resized to its "
                   "square and scaled to 0..this value. Image models that declare a "
                   "(-1, H, W, C) uint8 tensor need no option (env MLCI_IMAGE_MAX).")
@click.option("--feedback-token", default=None, envvar="MLCI_FEEDBACK_TOKEN",
              help="Bearer token /feedback requires; without one /feedback is refused. "
                   "From the environment only (MLCI_FEEDBACK_TOKEN) or "
                   "--feedback-token-file: on the command line it would be visible in the "
                   "process list, so it is refused there.")
@click.option("--feedback-token-file", default=None, envvar="MLCI_FEEDBACK_TOKEN_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the /feedback bearer token (env MLCI_FEEDBACK_TOKEN_FILE).")
@click.option("--predict-token", default=None, envvar="MLCI_PREDICT_TOKEN",
              help="Bearer token /predict and /v2 inference require (default: open). From "
                   "the environment only (MLCI_PREDICT_TOKEN) or --predict-token-file.")
@click.option("--predict-token-file", default=None, envvar="MLCI_PREDICT_TOKEN_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the /predict bearer token (env MLCI_PREDICT_TOKEN_FILE).")
@click.option("--max-body", default=1 << 20, show_default=True, type=click.IntRange(1024),
              envvar="MLCI_MAX_BODY", help="Largest request body in bytes (env MLCI_MAX_BODY).")
@click.option("--max-image-pixels", default=1 << 20, show_default=True,
              type=click.IntRange(64), envvar="MLCI_MAX_IMAGE_PIXELS",
              help="Pixels (width x height, read from the image headers before decoding) "
                   "allowed per request (env MLCI_MAX_IMAGE_PIXELS).")
@click.option("--max-concurrent", default=32, show_default=True, type=click.IntRange(1),
              envvar="MLCI_MAX_CONCURRENT",
              help="Model requests in flight; more are answered 503 (env MLCI_MAX_CONCURRENT).")
@click.option("--max-connections", default=512, show_default=True, type=click.IntRange(16),
              envvar="MLCI_MAX_CONNECTIONS",
              help="Open connections, lowered to fit the file-descriptor limit; "
                   "beyond it the "
                   "connection waiting longest for its headers is closed "
                   "(env MLCI_MAX_CONNECTIONS).")
@click.option("--max-client-concurrent", default=None, type=click.IntRange(1),
              envvar="MLCI_MAX_CLIENT_CONCURRENT",
              help="Model requests in flight from one client address; more are answered 503 "
                   "(default: 3/4 of --max-concurrent) (env MLCI_MAX_CLIENT_CONCURRENT).")
@click.option("--max-client-connections", default=64, show_default=True,
              type=click.IntRange(1), envvar="MLCI_MAX_CLIENT_CONNECTIONS",
              help="Open connections from one client address; beyond it that client's "
                   "connection trickling longest is closed (env MLCI_MAX_CLIENT_CONNECTIONS).")
@click.option("--min-body-rate", default=1024, show_default=True, type=click.IntRange(0),
              envvar="MLCI_MIN_BODY_RATE",
              help="Bytes per second a request body must average after its first second, "
                   "on every path; slower connections are closed (env MLCI_MIN_BODY_RATE).")
@click.option("--header-timeout", default=5.0, show_default=True,
              type=click.FloatRange(0.1, 600), envvar="MLCI_HEADER_TIMEOUT",
              help="Seconds a request may take to send its headers (env MLCI_HEADER_TIMEOUT).")
@click.option("--body-timeout", default=10.0, show_default=True,
              type=click.FloatRange(0.1, 600), envvar="MLCI_BODY_TIMEOUT",
              help="Seconds a request may take to send its body, on every path (model "
                   "endpoints answer 408, others are closed) (env MLCI_BODY_TIMEOUT).")
@click.option("--log-lock-timeout", default=2.0, show_default=True,
              type=click.FloatRange(0.01, 60), envvar="MLCI_LOG_LOCK_TIMEOUT",
              help="Seconds to wait for the prediction log's lock before answering 503 "
                   "(env MLCI_LOG_LOCK_TIMEOUT).")
@click.option("--prediction-log-max-mb", "log_max_mb", default=None,
              type=click.FloatRange(min=0.01), envvar="MLCI_PREDICTION_LOG_MAX_MB",
              help="Cap of the prediction log's size; when reached, requests get 503 as on a "
                   "full disk (env MLCI_PREDICTION_LOG_MAX_MB).")
@click.option("--prediction-log-retain-mb", "retain_mb", default=1000.0, show_default=True,
              type=click.FloatRange(min=0), envvar="MLCI_PREDICTION_LOG_RETAIN_MB",
              help="Size the prediction log keeps: beyond it the oldest rows are deleted "
                   "(the running rollout's last); at most 90% of --prediction-log-max-mb; "
                   "0 keeps everything (env MLCI_PREDICTION_LOG_RETAIN_MB).")
@click.option("--prediction-log-retain-days", "retain_days", default=0.0, show_default=True,
              type=click.FloatRange(min=0), envvar="MLCI_PREDICTION_LOG_RETAIN_DAYS",
              help="Age beyond which rows are deleted from the prediction log; 0 keeps "
                   "them (env MLCI_PREDICTION_LOG_RETAIN_DAYS).")
@click.option("--prediction-log-client-share", "client_share", default=0.05,
              show_default=True, type=click.FloatRange(0.0001, 1),
              envvar="MLCI_PREDICTION_LOG_CLIENT_SHARE",
              help="Fraction of the log's size one client address may add per minute; "
                   "beyond it /predict answers 429; 1 turns it off "
                   "(env MLCI_PREDICTION_LOG_CLIENT_SHARE).")
@click.option("--log-failure", type=click.Choice(["open", "closed"]), default="open",
              show_default=True, envvar="MLCI_LOG_FAILURE",
              help="When the prediction log cannot take a write: 'open' answers anyway "
                   "(counted; /readyz shows it), 'closed' answers 503 (env MLCI_LOG_FAILURE).")
@click.option("--hide-variant", is_flag=True, envvar="MLCI_HIDE_VARIANT",
              help="Answers do not name the variant or version that served them, so a client "
                   "cannot aim traffic at the challenger (env MLCI_HIDE_VARIANT).")
@click.option("--route-secret-file", default=None, envvar="MLCI_ROUTE_SECRET_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Secret keying the routing-key hashes, created if absent (default "
                   "<out>/serve/route-secret; share it between replicas) "
                   "(env MLCI_ROUTE_SECRET_FILE).")
def command(config_path: Path, out_dir: Path, model: str | None, host: str, port: int,
            log_path: Path | None, key_header: str, poll: float, image_max: float | None,
            feedback_token: str | None, feedback_token_file: Path | None,
            predict_token: str | None, predict_token_file: Path | None, max_body: int,
            max_image_pixels: int, max_concurrent: int, max_connections: int,
            max_client_concurrent: int | None, max_client_connections: int,
            min_body_rate: int, header_timeout: float, body_timeout: float, log_lock_timeout: float,
            log_max_mb: float | None, retain_mb: float, retain_days: float,
            client_share: float, log_failure: str, hide_variant: bool,
            route_secret_file: Path | None) -> int:
    """Serve `models:/NAME@champion` and, during a canary, `@challenger`.

    Routing follows `<out>/canary/state.json` (written by `mlci canary`) at runtime.
    Endpoints: POST /predict, POST /feedback, GET /metrics, /healthz, /readyz, and the
    Open Inference Protocol under /v2.
    """
    feedback_token = _token("feedback", feedback_token, feedback_token_file)
    predict_token = _token("predict", predict_token, predict_token_file)
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MlciError(f"`mlci serve` needs the serve extra: pip install 'mlci[serve]' "
                        f"({exc.name} is missing)") from None
    from mlci.registry import tracking
    from mlci.registry.aliases import require_model
    from mlci.serve.app import Gateway
    from mlci.serve.guard import Limits
    from mlci.serve.routing import deployment_secret
    from mlci.serve.state import state_path

    cfg, name = _model_name(config_path, model)
    client = tracking.client(cfg, out_dir)  # type: ignore[arg-type]
    require_model(client, name)
    secret_file = route_secret_file or out_dir / "serve" / "route-secret"
    try:
        secret = deployment_secret(secret_file)
    except (OSError, ValueError) as exc:
        raise MlciError(f"{secret_file}: not a usable route secret ({exc})") from None
    limits = Limits(max_body=max_body, body_timeout=body_timeout, header_timeout=header_timeout,
                    max_connections=max_connections, max_concurrent=max_concurrent,
                    max_image_pixels=max_image_pixels,
                    max_client_concurrent=max_client_concurrent,
                    max_client_connections=max_client_connections,
                    min_body_rate=min_body_rate).fitted()
    gw = Gateway(name, log_path=log_path or out_dir / "predictions.db",
                 state_file=state_path(out_dir), key_header=key_header, poll=poll,
                 image_max=image_max, limits=limits, feedback_token=feedback_token,
                 predict_token=predict_token, secret=secret, log_lock_timeout=log_lock_timeout,
                 log_max_bytes=int(log_max_mb * 1e6) if log_max_mb else None,
                 retention=_retention(retain_mb, retain_days, log_max_mb),
                 log_failure=log_failure, client_share=client_share,
                 hide_variant=hide_variant)
    try:
        r = gw.desired()
    except ValueError as exc:
        raise MlciError(f"{state_path(out_dir)}: {exc}") from None
    if r is None:
        raise MlciError(f"{name} has no 'champion' alias; promote a version first")
    try:
        gw.apply(r)
    except Exception as exc:  # noqa: BLE001 - a model that cannot load is one line
        raise MlciError(f"cannot load {name}/{r.champion}: {exc}".splitlines()[0]) from None
    _serve(gw, host, port, r)
    return 0


def _token(name: str, value: str | None, file: Path | None) -> str | None:
    """A bearer token from the environment or a file, never from the command line (any
    local user could read it from the process list)."""
    flag = f"--{name}-token"
    src = click.get_current_context().get_parameter_source(f"{name}_token")
    if value is not None and src is ParameterSource.COMMANDLINE:
        raise click.BadParameter(
            f"a token on the command line is visible in the process list; set "
            f"MLCI_{name.upper()}_TOKEN or use {flag}-file", param_hint=flag)
    if file is not None:
        if value is not None:
            raise click.BadParameter(f"give {flag} or {flag}-file, not both",
                                     param_hint=f"{flag}-file")
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {file}: {exc}",
                                     param_hint=f"{flag}-file") from None
    if value is not None and len(value) < MIN_TOKEN:
        raise click.BadParameter(f"at least {MIN_TOKEN} characters", param_hint=flag)
    return value


def _retention(retain_mb: float, retain_days: float, max_mb: float | None):
    from mlci.serve.predlog import Retention

    size = retain_mb * 1e6 if retain_mb else None
    if size and max_mb:  # retention frees room before the hard cap refuses writes
        size = min(size, 0.9 * max_mb * 1e6)
    return Retention(max_bytes=int(size) if size else None,
                     max_age=retain_days * 86400 if retain_days else None)


def _serve(gw, host: str, port: int, r) -> None:
    import socket

    import uvicorn

    # bind here, so a busy port or a bad address is one line and exit 2
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted connections (with
        # proto 0 it does not, and keep-alive responses wait ~40 ms for delayed ACKs)
        sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        raise MlciError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    extra = f", challenger {r.challenger} at {r.weight:g}%" if r.challenger else ""
    fb = "" if gw.feedback_token else " (/feedback disabled: no MLCI_FEEDBACK_TOKEN)"
    click.echo(f"serving {gw.name}: champion {r.champion}{extra} on "
               f"http://{host}:{sock.getsockname()[1]}{fb}", err=True)
    from mlci.serve.guard import guarded_h11

    protocol = guarded_h11(gw.limits, lambda reason: gw.metrics.dropped.labels(reason).inc())
    config = uvicorn.Config(gw.app(), log_level="warning", access_log=False, lifespan="on",
                            http=protocol, timeout_keep_alive=5, backlog=gw.limits.backlog)
    uvicorn.Server(config).run(sockets=[sock])
