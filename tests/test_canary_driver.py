"""The canary driver with an injected clock: a whole rollout in well under a second of wall
time (traffic is written to the real prediction log while the clock "sleeps"), `abort` while a
run holds the lock and waits, and `run` re-reading the state it drives."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_serve_support import GOOD, alias, clean_env, project

from mlci.cli import cli
from mlci.config import load_config
from mlci.errors import MlciError
from mlci.flows.canary import Clock, Controller, Params
from mlci.serve.predlog import PredictionLog

PARAMS = dict(steps=[10, 50, 100], bake=30.0, min_samples=100, min_requests=30, margin=0.1,
              poll=5.0, deadline=600.0)


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # the in-process MLflow client exports its store's URI; each test has its own store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return project(tmp_path / "digits")


class _LogClock:
    """Stands for the `time` module in the prediction log: rows carry the injected clock's
    time, as a gateway's would carry the wall clock the controller reads."""

    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t


class Traffic:
    """A clock whose sleep moves time forward and logs requests of both variants (the
    challenger as good as the champion) to the real prediction log, as a gateway would,
    spread over the time slept."""

    def __init__(self, root: Path, ctl: Controller, per_sleep: int = 200) -> None:
        self.t = 1_000_000.0
        self.log = PredictionLog(root / ".mlci" / "predictions.db")
        self.ctl, self.per_sleep, self.ids = ctl, per_sleep, itertools.count()
        self.on_sleep = None
        self.sleeps = 0
        self.rng = random.Random(0)

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        import mlci.serve.predlog as predlog

        self.t += s
        self.sleeps += 1
        st = self.ctl.state()
        if st is not None and st.running:
            clock, real = _LogClock(), predlog.time
            predlog.time = clock  # type: ignore[assignment]
            try:
                self._requests(st, s, clock)
            finally:
                predlog.time = real
        if self.on_sleep is not None:
            self.on_sleep(self)

    def _requests(self, st, s: float, clock: _LogClock) -> None:
        for i in range(self.per_sleep):
            clock.t = self.t - s + s * (i + 1) / self.per_sleep
            rid = f"r{next(self.ids)}"
            variant = "challenger" if (i % 100) < st.weight else "champion"
            wrong = i % 20 == 0
            self.log.log(request_id=rid, model="digits", variant=variant,
                         version=st.challenger if variant == "challenger" else st.champion,
                         canary_id=st.id, route_key=None, inputs=[[0.0]], outputs=[1],
                         probabilities=None, latency_ms=self.rng.lognormvariate(1.6, 0.3),
                         error=None, n=1)
            self.log.feedback(rid, [2 if wrong else 1])


def _controller(root: Path) -> tuple[Controller, Traffic]:
    ctl = Controller(load_config(root / "mlci.yaml"), root / ".mlci", "digits",
                     echo=lambda s: None)
    traffic = Traffic(root, ctl)
    ctl.clock = Clock(now=traffic.now, sleep=traffic.sleep)
    return ctl, traffic


def test_a_whole_rollout_runs_on_the_injected_clock(root: Path) -> None:
    ctl, traffic = _controller(root)
    t0 = time.monotonic()
    st = ctl.run(GOOD, Params(**PARAMS))
    assert st.decision == "promoted", st.reason
    assert alias(root, "champion") == GOOD
    # the last judged step (50 %) promotes: the 100 % step has no champion to compare with
    assert [h["weight"] for h in st.history] == [10, 50]
    assert all(h["verdict"] == "pass" for h in st.history)
    assert traffic.sleeps >= 2 * 6  # two bakes of 30 s in 5 s polls, none of them real
    assert traffic.t - 1_000_000.0 >= 60
    assert time.monotonic() - t0 < 60  # registry work only; no real bake or poll sleeps


def test_abort_works_while_a_run_holds_the_lock_and_waits(root: Path) -> None:
    ctl, traffic = _controller(root)
    traffic.per_sleep = 0  # no traffic: the run waits for data until the deadline
    result: dict[str, object] = {}

    def abort_once(tr: Traffic) -> None:
        if tr.sleeps == 3:
            def call() -> None:
                r = CliRunner().invoke(cli, ["canary", "abort", "-c", str(root / "mlci.yaml"),
                                             "--out", str(root / ".mlci"), "--reason",
                                             "stop it"],
                                       env={**clean_env(), "MLFLOW_TRACKING_URI": None,
                                            "MLFLOW_REGISTRY_URI": None})
                result["code"], result["out"] = r.exit_code, r.output
            th = threading.Thread(target=call)
            th.start()
            result["thread"] = th
            time.sleep(1.0)  # the abort command finds the lock held and files its request

    traffic.on_sleep = abort_once
    st = ctl.run(GOOD, Params(**PARAMS))
    result["thread"].join(30)
    assert st.decision == "rolled-back" and st.reason == "stop it"
    assert result["code"] == 0, result["out"]
    assert alias(root, "challenger") is None and alias(root, "champion") == "1"
    assert not (root / ".mlci" / "canary" / "abort.json").exists()


def test_run_re_reads_the_state_under_its_lock(root: Path) -> None:
    ctl, _ = _controller(root)
    st = ctl.start(GOOD, Params(**PARAMS))
    other = Controller(load_config(root / "mlci.yaml"), root / ".mlci", "digits",
                       echo=lambda s: None)
    real_exclusive = ctl.exclusive
    calls = itertools.count()

    def exclusive_after_abort():
        # between run()'s two locks, another command ends the rollout
        if next(calls) == 1:
            other.abort("ended elsewhere")
        return real_exclusive()

    ctl.exclusive = exclusive_after_abort  # type: ignore[method-assign]
    with pytest.raises(MlciError, match="stopped before it could be driven"):
        ctl.run(None, None)
    assert ctl.state().id == st.id and ctl.state().decision == "rolled-back"
