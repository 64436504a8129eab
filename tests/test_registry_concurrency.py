"""Several real processes promoting at once, against a real `mlflow server` on 127.0.0.1 and
against the embedded SQLite store.

The racers are forked processes released together by a barrier, each calling the same
`gate.promote` the CLI calls; a thread in the test process polls the alias throughout.
Whatever the interleaving, the outcome must be one a serial order could give:
- every racer ends moved or refused (no crash, no unexplained failure), one event each;
- the champion moves form one chain (each move starts where the previous one ended), exactly
  one move starts from the champion every racer saw, versions only increase along it;
- no alias ever points at a version that failed its gate, not even briefly;
- the champion ends on the newest version that passed (older ones are refused once it moved);
- the registry lock is released.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_project, run_mlci
from test_registry import NAME, add_version, client_for, packed  # noqa: F401 - fixture

from mlci.registry import aliases, gate, store

PASSING = ["2", "3", "5", "7"]
FAILING = ["4", "6"]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real tracking server with a SQLite backend and proxied artifacts."""
    import requests

    from mlci.registry import tracking

    d = tmp_path_factory.mktemp("server")
    backend = f"sqlite:///{d / 'backend.db'}"
    tracking.init_store(backend)  # create the schema once, before the workers start
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    log = open(d / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--backend-store-uri", backend, "--artifacts-destination", (d / "art").as_uri()],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # no background job runner: it starts eight extra processes the tests do not use
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(d / 'server.log').read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything left in its group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def _client(uri: str):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _racer(root: str, uri: str | None, version: str, barrier, results) -> None:
    for k in [k for k in os.environ if k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))]:
        del os.environ[k]
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["GITHUB_ACTOR"] = f"racer-{version}"
    os.chdir(root)
    import mlflow.sklearn  # noqa: F401 - imports done before the start line

    import mlci.evaluate  # noqa: F401
    from mlci.config import load_config

    cfg = load_config(Path(root) / "mlci.yaml")
    barrier.wait()
    try:
        r = gate.promote(cfg, Path(root) / ".mlci", "champion", version,
                         rescore=mlci.evaluate.rescore)
        results.put((version, "moved" if r["changed"] else "noop",
                     f"from {r['from_version']}; " + "; ".join(r["notes"])))
    except gate.Refused as exc:
        results.put((version, "refused", exc.message))
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put((version, "error", f"{type(exc).__name__}: {exc}"))


def race(root: Path, uri: str | None, client) -> tuple[dict[str, tuple], set[str]]:
    versions = sorted(PASSING + FAILING, key=int)
    # Fresh processes, not forks of this one (no SQLite connection may cross a fork), made
    # by a fork server that imported the heavy modules once.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["mlflow.sklearn", "sklearn.ensemble", "mlci.registry.gate",
                                "mlci.evaluate", "mlci.config", "mlci.registry.tracking"])
    barrier, results = ctx.Barrier(len(versions)), ctx.Queue()
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            v = aliases.current(client, NAME, "champion")
            if v:
                seen.add(v)
            time.sleep(0.01)

    procs = [ctx.Process(target=_racer, args=(str(root), uri, v, barrier, results))
             for v in versions]
    for p in procs:
        p.start()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for p in procs:
        p.join(timeout=240)
    stop.set()
    poller.join()
    seen.add(aliases.current(client, NAME, "champion") or "")
    out = {}
    for _ in procs:
        v, kind, detail = results.get(timeout=10)
        out[v] = (kind, detail)
    return out, seen


def check_outcome(root: Path, client, outcome: dict[str, tuple], seen: set[str]) -> None:
    from mlci.registry import audit

    assert sorted(outcome, key=int) == sorted(PASSING + FAILING, key=int), outcome
    assert all(kind in ("moved", "refused") for kind, _ in outcome.values()), outcome
    for v in FAILING:
        assert outcome[v][0] == "refused" and "evaluation gate passed" in outcome[v][1]
    assert not seen & set(FAILING), seen
    assert aliases.current(client, NAME, "champion") == max(PASSING, key=int)

    exp = client.get_experiment_by_name(audit.experiment_name(NAME))
    evs = [e for e in audit.events(client, exp.experiment_id, "champion")]
    assert evs[0].to_version == "1"  # the setup promotion
    evs = evs[1:]
    assert len(evs) == len(outcome)  # one event per racer, no more, no less
    moves = [e for e in evs if e.action == "promote"]
    refusals = [e for e in evs if e.action == "refuse"]
    assert {e.to_version for e in moves} == {v for v, (k, _) in outcome.items() if k == "moved"}
    assert {e.to_version for e in refusals} == {v for v, (k, _) in outcome.items()
                                                if k == "refused"}
    assert [e.from_version for e in moves] == ["1"] + [e.to_version for e in moves[:-1]]
    assert sum(e.from_version == "1" for e in moves) == 1  # exactly one wins the first race
    assert [int(e.to_version) for e in moves] == sorted(int(e.to_version) for e in moves)
    assert not {e.to_version for e in moves} & set(FAILING)
    assert seen <= {"1"} | set(PASSING)
    left = client.search_registered_models(filter_string=f"name = 'mlci-lock.{NAME}'")
    assert list(left) == []


def _setup_versions(root: Path, client) -> None:
    for v in sorted(PASSING + FAILING, key=int):
        got = add_version(root, passed=v in PASSING, evaluated_against="1", client=client)
        assert got == v


@pytest.mark.e2e
@pytest.mark.server
def test_racing_promotions_on_a_tracking_server(tmp_path: Path, mlflow_server: str) -> None:
    root = make_project(tmp_path / "iris")
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    r = run_mlci("run", cwd=root, env=env)
    assert r.code == 0, r.err
    r = run_mlci("promote", "--to", "champion", "--json", cwd=root, env=env)
    assert r.code == 0, r.err
    client = _client(mlflow_server)
    _setup_versions(root, client)

    outcome, seen = race(root, mlflow_server, client)
    print("server race:", json.dumps(outcome, indent=1), "alias values seen:", sorted(seen))
    check_outcome(root, client, outcome, seen)

    # the installed command, three processes promoting the same new version at once:
    # exactly one moves the alias, the others find it done
    v8 = add_version(root, evaluated_against="7", client=client)
    exe = Path(sys.executable).with_name("mlci")
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))} | env
    procs = [subprocess.Popen([str(exe), "promote", "--to", "champion", "--version", v8,
                               "--json"], cwd=root, env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(code == 0 and out.strip() for code, out, _ in outs), outs
    changed = [json.loads(out)["changed"] for _, out, _ in outs]
    assert changed.count(True) == 1, outs
    from mlci.registry import audit

    exp = client.get_experiment_by_name(audit.experiment_name(NAME))
    assert [e.to_version for e in audit.events(client, exp.experiment_id, "champion")
            if e.action == "promote"].count(v8) == 1
    assert aliases.current(client, NAME, "champion") == v8


def test_racing_promotions_on_the_embedded_store(tmp_path: Path, packed: Path) -> None:  # noqa: F811
    root = make_project(tmp_path / "iris")
    store.unpack_store(packed, root / ".mlci")
    client = client_for(root)
    r = run_mlci("promote", "--to", "champion", cwd=root)
    assert r.code == 0, r.err
    _setup_versions(root, client)
    outcome, seen = race(root, None, client)
    print("sqlite race:", json.dumps(outcome, indent=1), "alias values seen:", sorted(seen))
    check_outcome(root, client, outcome, seen)
