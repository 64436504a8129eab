"""Stage records are typed: a reader refuses a record of another kind, another major version
or a wrong shape with one line naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlci.errors import MlciError
from mlci.records import EvaluationRecord, RunRecord

RUN = {"schema": "mlci.run/1", "run_id": "abc", "model_name": "iris", "model_version": "3",
       "model_uri": "models:/iris/3", "artifact_uri": "models:/m-1", "extra": {"kept": True}}


def test_a_run_record_round_trips_with_its_extra_fields(tmp_path: Path) -> None:
    p = tmp_path / "run.json"
    p.write_text(json.dumps(RUN))
    rec = RunRecord.load(p)
    assert rec.model_version == "3" and rec.params == {}
    assert rec.dump()["extra"] == {"kept": True} and rec.dump()["schema"] == "mlci.run/1"


@pytest.mark.parametrize("data,msg", [
    ({**RUN, "schema": "mlci.evaluation/1"}, "not an mlci.run record"),
    ({**RUN, "schema": "mlci.run/2"}, "a version this mlci does not read"),
    ({k: v for k, v in RUN.items() if k != "run_id"}, "run_id: Field required"),
    ([1, 2], "not an mlci.run record"),
])
def test_a_wrong_record_is_one_line(tmp_path: Path, data, msg: str) -> None:
    p = tmp_path / "run.json"
    p.write_text(json.dumps(data))
    with pytest.raises(MlciError, match=msg) as e:
        RunRecord.load(p)
    assert str(p) in e.value.format_message() and "\n" not in e.value.format_message()


def test_an_evaluation_record_knows_its_verdict() -> None:
    ev = EvaluationRecord.of({"schema": "mlci.evaluation/1", "verdict": "fail", "task": "x",
                              "model": {"name": "iris", "version": "2", "run_id": "r",
                                        "uri": "u"}, "golden": {}, "metrics": {}}, "e")
    assert not ev.passed and ev.model.run_id == "r"
    with pytest.raises(MlciError, match="verdict"):
        EvaluationRecord.of({"schema": "mlci.evaluation/1", "verdict": "maybe", "task": "x",
                             "model": {"name": "i", "version": None, "run_id": "r",
                                       "uri": "u"}, "golden": {}, "metrics": {}}, "e")
