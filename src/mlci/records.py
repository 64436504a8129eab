"""The stage records that cross a file or a registry boundary, as typed models.

`run.json` (train) and `evaluation.json` (evaluate, also logged on the run for the gate) are
read by later stages, other processes and the registry gate. Each carries a `schema` with a
major version; a reader refuses a record of another kind or major version with one line,
instead of failing on a missing key somewhere later. Fields not named here are kept
(`extra="allow"`): the record on disk is the whole record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlci.errors import MlciError


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    SCHEMA: ClassVar[str]
    kind: str = Field(alias="schema")

    @classmethod
    def of(cls, data: Any, where: str) -> Any:
        """Validate `data` as this record (one-line error naming `where` otherwise)."""
        family = cls.SCHEMA.rpartition("/")[0]
        got = data.get("schema") if isinstance(data, dict) else None
        if not isinstance(got, str) or got.rpartition("/")[0] != family:
            raise MlciError(f"{where}: not an {family} record (schema {got!r})")
        if got.rpartition("/")[2] != cls.SCHEMA.rpartition("/")[2]:
            raise MlciError(f"{where}: {got} is a version this mlci does not read "
                            f"({cls.SCHEMA}); re-run the stage that wrote it")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e["loc"])
            raise MlciError(f"{where}: {loc}: {e['msg']}") from None

    @classmethod
    def load(cls, path: Path) -> Any:
        import json

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise MlciError(f"{path}: cannot read ({exc.strerror})") from None
        except ValueError:
            raise MlciError(f"{path}: not JSON") from None
        return cls.of(data, str(path))

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class RunRecord(Record):
    """What `mlci train` trained and registered (`<out>/run.json`)."""

    SCHEMA: ClassVar[str] = "mlci.run/1"
    run_id: str
    model_name: str
    model_version: str | None
    model_uri: str
    artifact_uri: str
    tracking_uri: str | None = None
    task: str | None = None
    features: list[str] = []
    params: dict[str, Any] = {}
    tags: dict[str, str] = {}


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str | None
    run_id: str
    uri: str


class EvaluationRecord(Record):
    """The gate's evidence (`<out>/evaluation.json`, and `mlci/evaluation.json` on the run)."""

    SCHEMA: ClassVar[str] = "mlci.evaluation/1"
    verdict: Literal["pass", "fail"]
    model: ModelRef
    task: str
    golden: dict[str, Any]
    metrics: dict[str, float | None]
    baseline: dict[str, Any] = {}
    comparison: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = []
    failed: list[str] = []

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"
