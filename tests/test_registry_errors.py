"""Only RESOURCE_DOES_NOT_EXIST (or MLflow's "alias … not found") means absent.

Before: a PERMISSION_DENIED from the registry read as "no champion yet" in `evaluate`, so the
regression check vanished and the verdict passed; in `data update` it read as "model is new",
and a later refusal deleted the registered model with every version, champion included.
"""

from __future__ import annotations

import http.server
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_mlci
from e2e.loopback import serving


class _DeniesRegistryReads(http.server.BaseHTTPRequestHandler):
    """Test double for an MLflow registry server whose access rules deny this client reading
    aliases: GET registered-models/alias answers 403 PERMISSION_DENIED (MLflow's REST error
    body); every other request is accepted with `{}`."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        if not self.path.startswith("/api/2.0/mlflow/registered-models/alias"):
            self._json(200, {})
            return
        self._json(403, {"error_code": "PERMISSION_DENIED",
                         "message": "Permission denied for this resource"})

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(200, {})

    do_PATCH = do_DELETE = do_POST  # noqa: N815

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def denied_registry() -> Iterator[str]:
    with serving(_DeniesRegistryReads) as url:
        yield url


@pytest.fixture
def project(trained_iris: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "iris"
    shutil.copytree(trained_iris, dest, symlinks=True)
    return dest


def test_evaluate_stops_when_the_champion_cannot_be_read(project: Path,
                                                         denied_registry: str) -> None:
    before = (project / ".mlci/evaluation.json").read_bytes()
    r = run_mlci("evaluate", cwd=project, env={"MLFLOW_REGISTRY_URI": denied_registry})
    assert r.code in (2, 3), (r.code, r.out, r.err)
    assert "PERMISSION_DENIED" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert (project / ".mlci/evaluation.json").read_bytes() == before
    assert not [p for p in _DeniesRegistryReads.seen if "set-tag" in p], \
        f"wrote evidence: {_DeniesRegistryReads.seen}"


def test_data_update_reads_an_unreadable_registry_as_an_error(project: Path,
                                                              denied_registry: str,
                                                              monkeypatch) -> None:
    from mlci.config import load_config
    from mlci.errors import MlciError
    from mlci.flows.data_update import _registry_state

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", denied_registry)
    cfg = load_config(project / "mlci.yaml")
    with pytest.raises(MlciError, match="PERMISSION_DENIED"):
        _registry_state(cfg, project / ".mlci")


def test_undo_never_deletes_a_model_that_has_other_versions(project: Path) -> None:
    """Even told the model was new (what a misread registry said), the undo removes only the
    version it registered."""
    from mlci.config import load_config
    from mlci.flows.data_update import _undo_registration
    from mlci.registry import tracking

    cfg = load_config(project / "mlci.yaml")
    out = project / ".mlci"
    c = tracking.client(cfg, out)
    c.set_registered_model_alias("iris", "champion", "1")
    mv1 = c.get_model_version("iris", "1")
    run = c.create_run(c.get_run(mv1.run_id).info.experiment_id)
    mv2 = c.create_model_version("iris", mv1.source, run_id=run.info.run_id)
    _undo_registration(cfg, out, {"name": "iris", "version": mv2.version,
                                  "run_id": run.info.run_id,
                                  "previous_candidate": None, "model_was_new": True})
    assert c.get_registered_model("iris").name == "iris"
    assert str(c.get_model_version_by_alias("iris", "champion").version) == "1"
