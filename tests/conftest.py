"""Shared fixtures: a throw-away copy of the Iris example with its own `.mlci/` store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Pinned before numpy/scikit-learn load, also when pytest is started without scripts/test.sh.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris"


@dataclass
class Result:
    code: int
    out: str
    err: str


def _clean_env(env: dict[str, str] | None) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}
    full.update(env or {})
    return full


def run_mlci(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: int = 300, process: bool = False) -> Result:
    """Run `mlci` as a user would, with GITHUB_/MLCI_/MLFLOW_ variables cleared.

    In process by default (click's CliRunner isolation around `mlci.cli.main`, so exit codes
    map exactly as in the real entry point); `process=True` or MLCI_TEST_PROCESS=1 starts the
    installed console script instead, for the smoke tests that check what a real process
    prints (logging handlers bound to the real stderr, interpreter start-up, signals).
    """
    full_env = _clean_env(env)
    if process or os.environ.get("MLCI_TEST_PROCESS") == "1":
        exe = Path(sys.executable).with_name("mlci")
        p = subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True,
                           text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)
    return _in_process(lambda: _mlci_main(list(args)), cwd, full_env)


def run_glue(action: str, *, cwd: Path, env: dict[str, str] | None = None,
             process: bool = False, timeout: int = 300) -> Result:
    """Run the composite actions' glue, `python -m mlci.gha <action>`, as a step would.

    In process by default: the glue's own code runs here, and the `mlci` command it starts as
    a child (`mlci.gha.__main__.mlci`) runs in process too, with the environment the glue
    hands it and its stdout and stderr passed on as a child's would be. `process=True` (or
    MLCI_TEST_PROCESS=1) runs the real interpreter and child, for the smoke tests.
    """
    full_env = _clean_env(env)
    if process or os.environ.get("MLCI_TEST_PROCESS") == "1":
        p = subprocess.run([sys.executable, "-m", "mlci.gha", action], cwd=cwd, env=full_env,
                           capture_output=True, text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)
    from unittest import mock

    from mlci.gha import __main__ as glue

    def child(args: list[str]) -> tuple[int, dict]:
        r = _in_process(lambda: _mlci_main(args), Path.cwd(), glue.child_env())
        sys.stderr.write(r.err)
        if r.out.strip():
            print(r.out.strip(), flush=True)
        return r.code, glue.json_result(r.out)

    with mock.patch.object(glue, "mlci", child):
        return _in_process(lambda: glue.main([action]), cwd, full_env)


def _mlci_main(args: list[str]) -> int:
    from mlci.cli import main

    main(args)
    return 0


def _in_process(call, cwd: Path, env: dict[str, str]) -> Result:
    """`call()` (an exit status, or SystemExit) in `cwd` with exactly the variables in `env`,
    stdout and stderr captured, MLflow's process-wide state reset afterwards."""
    from click.testing import CliRunner

    # CliRunner.isolation sets the given variables and restores os.environ afterwards;
    # variables absent from `env` are removed for the call (None means unset).
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    code = 0
    with CliRunner().isolation(env=overrides) as (out, err, _):
        os.chdir(cwd)
        try:
            code = call()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()  # what print() left in the capture's text buffers
            sys.stderr.flush()
            os.chdir(old_cwd)
            import mlflow

            while mlflow.active_run() is not None:  # a failed command must not leak a run
                mlflow.end_run("FAILED")
            _forget_mlflow_stores()
            _forget_mlflow_uris()
        stdout, stderr = out.getvalue(), err.getvalue()
    os.environ.clear()  # what the command set for itself (e.g. MLflow switches) goes too
    os.environ.update(old_env)
    return Result(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def _forget_mlflow_stores() -> None:
    """A process runs one command; in process, MLflow's per-URI engine cache would outlive it
    and keep a deleted or replaced `mlflow.db` open (tests reset `.mlci/` between calls)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (TrackingStore, RegistryStore):
        with store._engine_map_lock:
            for engine in store._engine_map.values():
                engine.dispose()
            store._engine_map.clear()


def _forget_mlflow_uris() -> None:
    """MLflow keeps the tracking and registry URIs a command (or test) set as module globals;
    a later test in the same process would otherwise talk to a store that is gone."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None


@pytest.fixture(autouse=True)
def _mlflow_uris_per_test():
    yield
    if "mlflow" in sys.modules:
        _forget_mlflow_uris()
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            os.environ.pop(var, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order pytest-xdist hands out whole files in (`--dist loadfile --no-loadscope-reorder`
    in scripts/test.sh): files of deployment tests (`e2e`) first, in collection order, then the
    in-process ones, most tests first. xdist's own order, most tests first for all, left the
    one-test act and closed-loop files, the longest, for the end: one worker ran them while the
    other had nothing left. Longest first, and the many short files fill the gaps at the end."""
    per_file: dict[Path, int] = {}
    deployment: set[Path] = set()
    for item in items:
        per_file[item.path] = per_file.get(item.path, 0) + 1
        if item.get_closest_marker("e2e") is not None:
            deployment.add(item.path)
    items.sort(key=lambda item: (0, 0) if item.path in deployment
               else (1, -per_file[item.path]))  # stable: the order within a file is kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Under pytest-xdist, a test marked `exclusive` (its assertions time the machine: canary
    latency, slow-client limits, lock leases) runs alone. Every other test, with the fixtures
    its set-up and teardown start or stop, holds a shared lock; an exclusive one holds it
    exclusively, and a turnstile keeps a stream of shared holders from starving it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return (yield)
    import fcntl
    import tempfile

    base = Path(tempfile.gettempdir()) / f"mlci-tests-{run}"
    exclusive = item.get_closest_marker("exclusive") is not None
    with open(f"{base}.turnstile", "a") as turn, open(f"{base}.lock", "a") as lock:
        fcntl.flock(turn, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(turn, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turn, fcntl.LOCK_UN)


def bench_module(name: str):
    """A module of bench/ by file name: the simulations the error-rate tests share with the
    benchmarks that print the same rates."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def built_once(name: str, build) -> Path:
    """A folder `build(folder)` fills once per test run: under pytest-xdist the first worker
    to ask builds it (the others wait on a file lock, then reuse it); treat it as read-only."""
    import fcntl
    import tempfile

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    folder = Path(tempfile.gettempdir()) / f"mlci-tests-{run}-{name}"
    with open(f"{folder}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".built"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def make_project(dest: Path, git: bool = True) -> Path:
    shutil.copytree(IRIS, dest, ignore=shutil.ignore_patterns(".mlci"))
    if git:
        for cmd in (["git", "init", "-q", "-b", "main"],
                    ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A"],
                    ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit",
                     "-qm", "init"]):
            subprocess.run(cmd, cwd=dest, check=True)
    return dest


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    """A git repo holding a copy of examples/iris (config, data, suite)."""
    return make_project(tmp_path / "iris")


@pytest.fixture(scope="session")
def trained_iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iris after one full `mlci run` (shared, read-only for tests that only inspect)."""
    from mlci.registry import store

    def build(folder: Path) -> None:
        root = make_project(folder / "iris")
        r = run_mlci("run", cwd=root)
        assert r.code == 0, r.err
        store.pack_store(root / ".mlci", folder / "store.tar.gz")

    built = built_once("iris-run", build)
    root = tmp_path_factory.mktemp("trained") / "iris"
    shutil.copytree(built / "iris", root, symlinks=True,
                    ignore=lambda d, names: ["mlflow.db", "artifacts"] if d.endswith(".mlci")
                    else [])
    # the store as a CI run carries it: its recorded paths rewritten to this copy
    store.unpack_store(built / "store.tar.gz", root / ".mlci")
    return root
