"""The rollout state: one JSON file the canary controller writes and the gateway follows.

The controller is the only writer; every write is atomic (temp file + rename), so the gateway
(which polls the file) and a restarted controller always read a whole state. The gateway routes
by `champion`, `challenger`, `weight` and `shadow`; the controller keeps its progress (`step`,
`step_started`, `history`) in the same record, which is what makes a rollout resumable.
`RolloutStore` owns the files of one rollout: the state, the controller lock and abort
requests.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.io import atomic_write_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEMA = "mlci.canary/1"
RUNNING, PROMOTED, ROLLED_BACK = "running", "promoted", "rolled-back"


@dataclass
class CanaryState:
    id: str
    model: str
    champion: str
    challenger: str | None
    steps: list[float]
    step: int = 0
    weight: float = 0.0
    shadow: bool = False
    status: str = RUNNING
    params: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    step_started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    generation: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    decision: str | None = None
    reason: str | None = None
    last_analysis: dict[str, Any] | None = None
    backend: dict[str, Any] = field(default_factory=dict)  # e.g. a metrics baseline
    pending_audit: dict[str, Any] | None = None  # written before it is recorded (see canary)
    promoting: dict[str, Any] | None = None  # a champion move under way (see canary.promote)
    schema: str = SCHEMA

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CanaryState:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a canary state (schema {d.get('schema')!r})")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def state_path(out_dir: Path) -> Path:
    return Path(out_dir) / "canary" / "state.json"


def read_state(path: Path) -> CanaryState | None:
    """The state, or None when there is none. A damaged file raises ValueError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return CanaryState.from_dict(json.loads(text))


def write_state(path: Path, st: CanaryState) -> None:
    st.updated = time.time()
    st.generation += 1
    # atomic, and with the mode a plain open() gives (mkstemp's 0600 hid the rollout from a
    # gateway running as another user of the group); the state holds no secret
    atomic_write_bytes(path, json.dumps(st.to_dict(), indent=2, sort_keys=True).encode())


class RolloutStore:
    """One model's rollout under `<out>/canary/`: the state, the controller lock, and abort
    requests (how `mlci canary abort` reaches a controller that holds the lock)."""

    def __init__(self, out_dir: Path, model: str) -> None:
        self.path = state_path(out_dir)
        self.model = model
        self.lock_path = self.path.parent / "controller.lock"
        self.abort_path = self.path.parent / "abort.json"

    def read(self) -> CanaryState | None:
        from mlci.errors import MlciError

        try:
            st = read_state(self.path)
        except ValueError as exc:
            raise MlciError(f"{self.path}: damaged rollout state ({exc})") from None
        if st is not None and st.model != self.model:
            raise MlciError(f"{self.path} holds a rollout of {st.model!r}, not {self.model!r}")
        return st

    def write(self, st: CanaryState) -> None:
        write_state(self.path, st)

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Hold the controller lock if it is free; yields whether it is held."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "w")  # noqa: SIM115
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            fh.close()

    def request_abort(self, canary_id: str, reason: str) -> None:
        from mlci.io import atomic_write_json

        atomic_write_json(self.abort_path, {"canary_id": canary_id, "reason": reason,
                                            "time": time.time()})

    def abort_request(self, canary_id: str) -> str | None:
        """The reason of a pending abort of this rollout, or None."""
        try:
            d = json.loads(self.abort_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return str(d.get("reason") or "aborted by hand") if d.get("canary_id") == canary_id \
            else None

    def clear_abort(self) -> None:
        self.abort_path.unlink(missing_ok=True)
