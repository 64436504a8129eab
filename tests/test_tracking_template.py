"""A new SQLite store copied from the migrated template is the store MLflow would create
itself (same schema, revision and rows), and MLflow tracks and registers in it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mlci.registry import tracking


def _normal(statement: str) -> str:
    """A CREATE TABLE with its columns and constraints sorted: MLflow's SQLite migrations
    rebuild tables with constraints in an order that varies from one migration to the next."""
    if not statement.startswith("CREATE TABLE"):
        return statement
    import re

    def members(m: re.Match[str]) -> str:  # CHECK (x IN ('b', 'a')): the values as a set
        return "IN (" + ", ".join(sorted(v.strip() for v in m.group(1).split(","))) + ")"

    statement = re.sub(r"IN \(([^()]*)\)", members, statement)
    head, _, body = statement.partition("(")
    parts = re.split(r",\s*\n", body.rstrip(");"))
    return head + "(" + ",".join(sorted(p.strip() for p in parts))


def dump(db: Path) -> list[str]:
    """Schema and rows, the Default experiment's times blanked (they are creation times)."""
    with closing(sqlite3.connect(db)) as con:
        con.execute("UPDATE experiments SET creation_time = 0, last_update_time = 0 "
                    "WHERE experiment_id = 0")
        # index creation order varies between migrations too
        return sorted(_normal(s) for s in con.iterdump())


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "templates"
    where.mkdir()
    monkeypatch.setattr(tracking, "_template_dir", lambda: where)
    return where


def test_copied_store_equals_a_migrated_one(tmp_path: Path, templates: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    first, second, own = (tmp_path / d for d in ("first", "second", "own"))
    tracking.init_store(f"sqlite:///{first}/mlflow.db")       # builds the template
    assert len(list(templates.glob("mlflow-*.db"))) == 1
    tracking.init_store(f"sqlite:///{second}/mlflow.db")      # copies it
    own.mkdir()
    SqlAlchemyStore(f"sqlite:///{own}/mlflow.db", (second / "artifacts").resolve().as_uri())
    assert dump(second / "mlflow.db") == dump(own / "mlflow.db")
    assert (second / "mlflow.db.ready").exists()
    assert not list(second.glob("*.part"))


def test_mlflow_tracks_and_registers_in_a_copied_store(tmp_path: Path, templates: Path) -> None:
    from mlflow import MlflowClient

    tracking.init_store(f"sqlite:///{tmp_path}/a/mlflow.db")
    uri = f"sqlite:///{tmp_path}/b/mlflow.db"
    tracking.init_store(uri)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert c.get_experiment("0").artifact_location == (
        (tmp_path / "b/artifacts").resolve().as_uri() + "/0")
    exp = c.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    run = c.create_run(exp)
    c.log_metric(run.info.run_id, "accuracy", 0.9)
    c.create_registered_model("m")
    mv = c.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    c.set_registered_model_alias("m", "champion", mv.version)
    assert c.get_model_version_by_alias("m", "champion").run_id == run.info.run_id
    assert c.get_run(run.info.run_id).data.metrics == {"accuracy": 0.9}


def test_an_existing_store_is_left_to_mlflow(tmp_path: Path, templates: Path) -> None:
    db = tmp_path / "s/mlflow.db"
    tracking.init_store(f"sqlite:///{db}")
    (tmp_path / "s/mlflow.db.ready").unlink()  # e.g. a store pulled from elsewhere
    before = dump(db)
    tracking.init_store(f"sqlite:///{db}")
    assert dump(db) == before
