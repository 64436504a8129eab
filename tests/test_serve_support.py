"""Shared helpers for the serve, canary and kserve tests (no tests here).

`trained_archive()` trains the digits example once per test session through the normal
pipeline into a real MLflow SQLite store and packs it:

    version 1  mlci.yaml          good model, evaluated, promoted to champion
    version 2  mlci.yaml          the same good model retrained (the good challenger)
    version 3  mlci.worse.yaml    same estimator, over-regularised: about half the accuracy
    version 4  mlci.broken.yaml   trained on 32 of the 64 pixels: raises on full images

`project(dest)` gives a fresh copy of the example with that store unpacked into `.mlci/`, and
`Gateway` runs `mlci serve` on 127.0.0.1 on a free port in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from conftest import REPO, run_mlci

from mlci import registry
from mlci.serve.loadgen import LoadResult, read_csv, run_load

DIGITS = REPO / "examples" / "digits"
NAME = "digits"
GOOD, WORSE, BROKEN = "2", "3", "4"
MLCI = str(Path(sys.executable).with_name("mlci"))

_cache: dict[str, Path] = {}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}
    env.update(extra)
    return env


def trained_archive() -> Path:
    """Train the four versions once per session; return the packed store."""
    if "archive" in _cache:
        return _cache["archive"]
    root = Path(tempfile.mkdtemp(prefix="mlci-digits-")) / "digits"
    shutil.copytree(DIGITS, root, ignore=shutil.ignore_patterns(".mlci"))
    # the real CLI commands, in one process (each new process would pay MLflow's and
    # Great Expectations' import time again)
    script = (
        "import sys\n"
        "from mlci.cli import cli\n"
        "steps = [['validate', '--no-docs'], ['train'], ['evaluate'],\n"
        "         ['promote', '--to', 'champion', '--version', '1'], ['train'],\n"
        "         ['train', '-c', 'mlci.worse.yaml'], ['train', '-c', 'mlci.broken.yaml']]\n"
        "for a in steps:\n"
        "    rv = cli.main(args=a, prog_name='mlci', standalone_mode=False)\n"
        "    assert rv in (None, 0), (a, rv)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], cwd=root, env=clean_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    archive = root.parent / "store.tar.gz"
    registry.pack_store(root / ".mlci", archive)
    _cache["archive"] = archive
    return archive


def project(dest: Path) -> Path:
    shutil.copytree(DIGITS, dest, ignore=shutil.ignore_patterns(".mlci"))
    registry.unpack_store(trained_archive(), dest / ".mlci")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """`mlci serve` in a subprocess on 127.0.0.1."""

    def __init__(self, root: Path, port: int | None = None, *args: str) -> None:
        self.root, self.port, self.args = root, port or free_port(), args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> Gateway:
        log = open(self.root / f"serve-{self.port}.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [MLCI, "serve", "--port", str(self.port), "--poll",
             "0.1", *self.args], cwd=self.root, env=clean_env(), stdout=log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: "
                                     f"{(self.root / f'serve-{self.port}.log').read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("gateway not ready in time")

    def readyz(self) -> dict:
        return httpx.get(self.url + "/readyz", timeout=5).json()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Load:
    """Background traffic with feedback until stopped (bounded by count and time)."""

    def __init__(self, url: str, *, requests: int = 20_000, seconds: float = 120.0,
                 concurrency: int = 4, keys: int = 300, seed: int = 0) -> None:
        rows, labels = read_csv(str(DIGITS / "data" / "golden.csv"), "digit")
        self.stop_event = threading.Event()
        self.result: LoadResult | None = None
        self._t = threading.Thread(target=self._run, args=(url, rows, labels, requests,
                                                           seconds, concurrency, keys, seed),
                                   daemon=True)

    def _run(self, url, rows, labels, requests, seconds, concurrency, keys, seed) -> None:
        self.result = run_load(url, rows, labels, requests=requests, seconds=seconds,
                               concurrency=concurrency, keys=keys, stop=self.stop_event,
                               seed=seed)

    def __enter__(self) -> Load:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._t.join(60)


def canary(root: Path, *args: str, timeout: int = 180):
    return run_mlci("canary", *args, cwd=root, timeout=timeout)


# allowances wide enough for a test's traffic: the sequential bounds need about
# 7 / allowance labels (or requests) on the challenger to pass
FAST = ("--steps", "10,50,100", "--bake", "1", "--min-samples", "60", "--min-requests", "20",
        "--margin", "0.1", "--poll", "0.3", "--deadline", "40", "--max-latency-ratio", "3",
        "--latency-slack-ms", "10", "--max-error-increase", "0.05")


def state(root: Path) -> dict:
    return json.loads((root / ".mlci" / "canary" / "state.json").read_text())


def _client(root: Path):
    """A client on this project's store, chosen explicitly: `mlflow.set_tracking_uri` (which
    the in-process CLI calls) also sets MLFLOW_TRACKING_URI in this process's environment."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def audit_events(root: Path) -> list:
    from mlci import audit

    c = _client(root)
    exp = c.get_experiment_by_name(audit.experiment_name(NAME))
    return audit.events(c, exp.experiment_id if exp else None)


def alias(root: Path, name: str) -> str | None:
    return registry.current(_client(root), NAME, name)
