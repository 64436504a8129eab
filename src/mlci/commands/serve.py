"""`mlci serve`: the routing gateway for champion and challenger (needs the `serve` extra)."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import Duration, common
from mlci.errors import MlciError


def _model_name(config_path: Path, model: str | None) -> tuple[object | None, str]:
    from mlci.config import load_config

    if model:
        cfg = load_config(config_path) if config_path.is_file() else None
        return cfg, model
    return (cfg := load_config(config_path)), cfg.name


@click.command("serve")
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
@click.option("--image-max", default=16.0, show_default=True, type=click.FloatRange(min=0),
              envvar="MLCI_IMAGE_MAX",
              help="Pixel value a white PNG pixel maps to (digits: 16) (env MLCI_IMAGE_MAX).")
def command(config_path: Path, out_dir: Path, model: str | None, host: str, port: int,
            log_path: Path | None, key_header: str, poll: float, image_max: float) -> int:
    """Serve `models:/NAME@champion` and, during a canary, `@challenger`.

    Routing follows `<out>/canary/state.json` (written by `mlci canary`) at runtime.
    Endpoints: POST /predict, POST /feedback, GET /metrics, /healthz, /readyz.
    """
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MlciError(f"`mlci serve` needs the serve extra: pip install 'mlci[serve]' "
                        f"({exc.name} is missing)") from None
    from mlci import tracking
    from mlci.registry.aliases import require_model
    from mlci.serve.app import Gateway
    from mlci.serve.state import state_path

    cfg, name = _model_name(config_path, model)
    client = tracking.client(cfg, out_dir)  # type: ignore[arg-type]
    require_model(client, name)
    gw = Gateway(name, log_path=log_path or out_dir / "predictions.db",
                 state_file=state_path(out_dir), key_header=key_header, poll=poll,
                 image_max=image_max)
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
    click.echo(f"serving {gw.name}: champion {r.champion}{extra} on "
               f"http://{host}:{sock.getsockname()[1]}", err=True)
    config = uvicorn.Config(gw.app(), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
