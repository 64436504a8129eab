"""Where runs and the registry live, and safe first use of an embedded SQLite store.

Default: `sqlite:///<out>/mlflow.db`. `MLCI_TRACKING_URI`, `MLFLOW_TRACKING_URI` or
`tracking_uri:` override it.
Several processes creating a fresh SQLite store at once corrupt it (the schema migrations
race), so the first use is serialised with a file lock and done once. Running MLflow's
schema migrations costs about 1.8 s of CPU per new store, so they run once per MLflow
version into a template database, and a new store is a copy of it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from mlci.errors import MlciError, redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlci.config import Config


def tracking_uri(cfg: Config | None, out_dir: Path) -> str:
    env = os.environ.get("MLCI_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg is not None and cfg.tracking_uri:
        return cfg.tracking_uri
    return f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"


def registry_uri(uri: str) -> str:
    return os.environ.get("MLFLOW_REGISTRY_URI") or uri


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def init_store(uri: str) -> None:
    """Create the SQLite schema once, under a lock, before any parallel use."""
    db = _sqlite_path(uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    marker = db.with_name(db.name + ".ready")
    if marker.exists():
        return
    import fcntl

    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        artifacts = (db.parent / "artifacts").resolve().as_uri()
        if db.exists():  # a store made elsewhere: let MLflow check and upgrade it
            _migrate(uri, artifacts)
        else:
            _copy_template(db, artifacts)
        marker.write_text("1\n")


def _migrate(uri: str, artifacts: str) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(uri, artifacts)


def _template_dir() -> Path:
    """Beside the installed packages (cached with the venv in CI), else the user's cache."""
    share = Path(sys.prefix) / "share" / "mlci"
    try:
        share.mkdir(parents=True, exist_ok=True)
        if os.access(share, os.W_OK):
            return share
    except OSError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlci"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def ensure_template() -> Path:
    """The migrated empty store of this MLflow version, built once. The actions' install
    builds it before sealing the venv, so no later step writes into the venv."""
    from mlflow.version import VERSION

    template = _template_dir() / f"mlflow-{VERSION}.db"
    if not template.exists():
        built = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        _migrate(f"sqlite:///{built}", (template.parent / "template-artifacts").as_uri())
        os.replace(built, template)  # concurrent builders each install a whole file
    return template


def _copy_template(db: Path, artifacts: str) -> None:
    """A new store as a copy of the migrated template; only the Default experiment's
    artifact location and times differ from a store MLflow creates itself."""
    template = ensure_template()
    part = db.with_name(db.name + ".part")
    shutil.copyfile(template, part)
    now = int(time.time() * 1000)
    with closing(sqlite3.connect(part)) as con, con:
        con.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                    "last_update_time = ? WHERE experiment_id = 0", (f"{artifacts}/0", now, now))
    os.replace(part, db)


def quiet_mlflow() -> None:
    """MLflow logs store migrations and a pickle advisory at INFO/WARNING on every run."""
    import logging

    # progress bars on artifact downloads would interleave with mlci's own output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not (os.environ.get("MLCI_DEBUG") or os.environ.get("MLCI_VERBOSE")):  # -v shows them
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)


def client(cfg: Config | None, out_dir: Path) -> MlflowClient:
    """A client for the configured store; the store is created on first use."""
    import mlflow
    from mlflow import MlflowClient

    quiet_mlflow()

    uri = tracking_uri(cfg, out_dir)
    init_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry_uri(uri))
    c = MlflowClient(tracking_uri=uri, registry_uri=registry_uri(uri))
    if not _sqlite_path(uri):
        _check_reachable(c, uri)
    return c


def env_client() -> MlflowClient:
    """A client of the store the environment names (MLFLOW_TRACKING_URI; the gateway)."""
    from mlflow import MlflowClient

    return MlflowClient()


def _check_reachable(c: MlflowClient, uri: str, attempts: int = 3) -> None:
    """Fail fast with one line when a tracking server is down (bounded retries)."""
    import requests

    if not uri.startswith(("http://", "https://")):
        return
    last = ""
    for i in range(attempts):
        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=5)
            if r.status_code < 500:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.5 * (2**i))
    raise MlciError(f"tracking server {redact(uri)} unreachable after {attempts} attempts "
                    f"({last})")


def experiment_id(c: MlflowClient, name: str, out_dir: Path, uri: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if _sqlite_path(uri):
        location = (out_dir / "artifacts").resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # created by a concurrent process in between
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
