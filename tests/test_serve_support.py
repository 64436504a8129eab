"""Shared helpers for the serve, canary and kserve tests (no tests here).

`trained_archive()` trains the digits example once per test session through the normal
pipeline into a real MLflow SQLite store and packs it:

    version 1  mlci.yaml          good model, evaluated, promoted to champion
    version 2  mlci.yaml          the same good model retrained (the good challenger)
    version 3  mlci.worse.yaml    same estimator, over-regularised: about half the accuracy
    version 4  mlci.broken.yaml   trained on 32 of the 64 pixels: raises on full images

Every version is evaluated (each with its own config's gate, which 3 and 4 pass on purpose):
a canary starts only on a version with passing gate evidence.

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
import threading
import time
from pathlib import Path

import httpx
from conftest import REPO, built_once, run_mlci

from mlci.registry import aliases, store
from mlci.serve.loadgen import LoadResult, read_csv, run_load

DIGITS = REPO / "examples" / "digits"
NAME = "digits"
GOOD, WORSE, BROKEN = "2", "3", "4"
MLCI = str(Path(sys.executable).with_name("mlci"))
FEEDBACK_TOKEN = "test-feedback-token-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}
    env.update(extra)
    return env


def trained_archive() -> Path:
    """Train the four versions once per test run (shared by the xdist workers); return the
    packed store."""
    return built_once("digits-store", _train_digits) / "store.tar.gz"


def _train_digits(folder: Path) -> None:
    root = folder / "digits"
    shutil.copytree(DIGITS, root, ignore=shutil.ignore_patterns(".mlci"))
    # the real CLI commands, in one process (each new process would pay MLflow's and
    # Great Expectations' import time again)
    script = (
        "import sys\n"
        "from mlci.cli import cli\n"
        "steps = [['validate', '--no-docs'], ['train'], ['evaluate'],\n"
        "         ['promote', '--to', 'champion', '--version', '1'], ['train'], ['evaluate'],\n"
        "         ['train', '-c', 'mlci.worse.yaml'], ['evaluate', '-c', 'mlci.worse.yaml'],\n"
        "         ['train', '-c', 'mlci.broken.yaml'], ['evaluate', '-c', 'mlci.broken.yaml']]\n"
        "for a in steps:\n"
        "    rv = cli.main(args=a, prog_name='mlci', standalone_mode=False)\n"
        "    assert rv in (None, 0), (a, rv)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], cwd=root, env=clean_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    store.pack_store(root / ".mlci", folder / "store.tar.gz")


def project(dest: Path) -> Path:
    shutil.copytree(DIGITS, dest, ignore=shutil.ignore_patterns(".mlci"))
    store.unpack_store(trained_archive(), dest / ".mlci")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """`mlci serve` in a subprocess on 127.0.0.1."""

    def __init__(self, root: Path, port: int | None = None, *args: str,
                 env: dict[str, str] | None = None, preexec_fn=None) -> None:
        self.root, self.port, self.args = root, port or free_port(), args
        self.env = {"MLCI_FEEDBACK_TOKEN": FEEDBACK_TOKEN, **(env or {})}
        self.preexec_fn = preexec_fn
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> Gateway:
        log = open(self.root / f"serve-{self.port}.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [MLCI, "serve", "--port", str(self.port), "--poll",
             "0.1", *self.args], cwd=self.root, env=clean_env(**self.env), stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn)
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

    def __init__(self, url: str, *, requests: int = 60_000, seconds: float = 300.0,
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
                               seed=seed, feedback_token=FEEDBACK_TOKEN)

    def __enter__(self) -> Load:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._t.join(60)


# /healthz under attack: the median and the worst of fresh-connection probes. Before the
# hardening, the same attacks blocked it for 4 to 12.8 s; the budgets leave room for a
# 2-core machine shared with other jobs.
HEALTHZ_MEDIAN, HEALTHZ_WORST = 0.1, 1.0


def healthz_seconds(port: int, timeout: float = 10.0) -> float | None:
    """Seconds for a new connection to get /healthz's 200, over a raw socket (no client
    library cost in the figure); None when refused, reset or not a 200."""
    t0 = time.perf_counter()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return time.perf_counter() - t0 if data.startswith(b"HTTP/1.1 200") else None


def healthz_while(port: int, seconds: float) -> list[float | None]:
    out: list[float | None] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(healthz_seconds(port))
        time.sleep(0.05)
    return out


ATTACK = """
import json, socket, sys, threading, time
port, path, body_file, threads, seconds, chunked, auth = sys.argv[1:8]
body = open(body_file, "rb").read()
codes, lock = [], threading.Lock()
deadline = time.monotonic() + float(seconds)
head = f"POST {path} HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
if auth:
    head += f"Authorization: Bearer {auth}\\r\\n"
def send(s):
    if chunked == "1":  # no Content-Length: the size shows only while reading
        s.sendall((head + "Transfer-Encoding: chunked\\r\\n\\r\\n").encode())
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            s.sendall(b"%x\\r\\n" % len(part) + part + b"\\r\\n")
        s.sendall(b"0\\r\\n\\r\\n")
    else:  # the whole body unless the gateway answers first (as a 413 does)
        s.sendall((head + f"Content-Length: {len(body)}\\r\\n\\r\\n").encode())
        s.sendall(body[:65536])
        s.settimeout(0.05)
        try:
            first = s.recv(4096)
            if first:
                return first
        except TimeoutError:
            pass
        s.settimeout(60)
        s.sendall(body[65536:])
    return b""
def run():
    while time.monotonic() < deadline:
        data = b""
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=60) as s:
                try:
                    data = send(s)
                except OSError:
                    pass  # closed while sending: its answer may still be readable
                while b"\\r\\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            pass
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
        with lock:
            codes.append(status)
ts = [threading.Thread(target=run) for _ in range(int(threads))]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(codes))
"""


def attack(port: int, path: str, body: bytes, *, threads: int, seconds: float,
           chunked: bool = False, token: str = "", scratch: Path) -> subprocess.Popen:
    """`threads` callers POSTing `body` to `path` in a loop for `seconds`, each on a new
    connection, from another process (the measuring process stays idle);
    `statuses(p)` gives the HTTP statuses (0: no answer)."""
    f = scratch / f"attack-{time.monotonic_ns()}.body"
    f.write_bytes(body)
    return subprocess.Popen([sys.executable, "-c", ATTACK, str(port), path, str(f),
                             str(threads), str(seconds), "1" if chunked else "0", token],
                            stdout=subprocess.PIPE, text=True)


def statuses(p: subprocess.Popen) -> list[int]:
    out, _ = p.communicate(timeout=120)
    return json.loads(out)


def canary(root: Path, *args: str, timeout: int = 180):
    return run_mlci("canary", *args, cwd=root, timeout=timeout)


# allowances wide enough for a test's traffic: the sequential bounds need about
# 7 / allowance labels (or requests) on the challenger to pass
# --preflight warn: the plan is printed, but a loaded machine answering fewer requests than
# planned does not stop the test (tests/test_canary_stats.py checks the refusal itself); a
# step undecided at its 60 s deadline moves on, and the load lasts longer than the rollout.
FAST = ("--steps", "10,50,100", "--bake", "1", "--min-samples", "60", "--min-requests", "20",
        "--margin", "0.1", "--poll", "0.3", "--deadline", "60", "--max-latency-ratio", "3",
        "--latency-slack-ms", "10", "--max-error-increase", "0.05", "--preflight", "warn")


def state(root: Path) -> dict:
    return json.loads((root / ".mlci" / "canary" / "state.json").read_text())


def _client(root: Path):
    """A client on this project's store, chosen explicitly: `mlflow.set_tracking_uri` (which
    the in-process CLI calls) also sets MLFLOW_TRACKING_URI in this process's environment."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def audit_events(root: Path) -> list:
    from mlci.registry import audit

    c = _client(root)
    exp = c.get_experiment_by_name(audit.experiment_name(NAME))
    return audit.events(c, exp.experiment_id if exp else None)


def alias(root: Path, name: str) -> str | None:
    return aliases.current(_client(root), NAME, name)
