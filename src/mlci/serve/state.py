"""The rollout state: one JSON file the canary controller writes and the gateway follows.

The controller is the only writer; every write is atomic (temp file + rename), so the gateway
(which polls the file) and a restarted controller always read a whole state. The gateway routes
by `champion`, `challenger`, `weight` and `shadow`; the controller keeps its progress (`step`,
`step_started`, `history`) in the same record, which is what makes a rollout resumable.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(st.to_dict(), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
