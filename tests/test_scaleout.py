"""The team setup, for real: `mlflow server` on a PostgreSQL database with its artifacts in an
S3-compatible object store, and a DVC remote on the same store.

One session of servers, all on 127.0.0.1 and all started here: a PostgreSQL cluster made by
`initdb` in a temporary folder and run by `pg_ctl` as an unprivileged user (the Debian package
`postgresql`; .ci/run installs it), moto's S3 server (`moto_server`, PyPI `moto[server]`), and
`mlflow server --backend-store-uri postgresql://… --artifacts-destination s3://…`. Through
them: the pipeline, the registry gate and its audit trail, lineage, a canary promotion and a
monitor run, registry promotions racing on PostgreSQL, and `dvc push`/`pull` on an S3 remote.
Every check reads back where the data really went (SQL on the database, objects in the
bucket), not only what mlci says.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_project, run_mlci

pytestmark = [pytest.mark.e2e, pytest.mark.server, pytest.mark.timeout(900)]

BUCKET = "mlci-team"
MODEL = "iris-team"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}
TIMES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _wait(ok, what: str, proc: subprocess.Popen | None, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


@dataclass
class Team:
    tracking_uri: str
    db_uri: str
    s3_url: str
    env: dict[str, str]

    def sql(self, query: str) -> list[tuple]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.db_uri)) as conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()

    def aliases(self, model: str = "iris") -> dict[str, int]:
        return dict(self.sql("select alias, version from registered_model_aliases "
                             f"where name = '{model}'"))

    def keys(self, prefix: str) -> list[str]:
        return bucket_keys(self.s3_url, prefix)


def bucket_keys(s3_url: str, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of our own: initdb in a temporary folder, pg_ctl on 127.0.0.1."""
    bindir = _pg_bin()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
                    "apt-get install postgresql (.ci/run does)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is in scripts/requirements-test.txt")
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mlci-pg-"))
    user: str | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root: hand the folder to a plain user
        user = "postgres" if _has_user("postgres") else "nobody"
        os.chown(root, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    data, log, port = root / "data", root / "server.log", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([str(bindir / args[0]), *args[1:]], check=True, capture_output=True,
                       user=user, timeout=120)

    pg("initdb", "-D", str(data), "-U", "mlci", "--auth=trust", "-E", "UTF8", "--no-sync")
    pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
       f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
       "-c max_connections=60", "start")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlci", "mlflow")
        TIMES["postgres start (initdb + pg_ctl start)"] = time.monotonic() - t0
        yield f"postgresql://mlci@127.0.0.1:{port}/mlflow"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """moto's S3-compatible server on 127.0.0.1, with one bucket."""
    import boto3
    import requests

    t0 = time.monotonic()
    exe = Path(sys.executable).with_name("moto_server")
    port, log = _free_port(), tmp_path_factory.mktemp("s3") / "moto.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **AWS})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/moto-api/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        _wait(up, "moto_server", proc, log)
        boto3.client("s3", endpoint_url=url, aws_access_key_id="testing",
                     aws_secret_access_key="testing", region_name="us-east-1"
                     ).create_bucket(Bucket=BUCKET)
        TIMES["moto_server start"] = time.monotonic() - t0
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def team(postgres: str, s3: str, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow server` on the PostgreSQL database, artifacts proxied to the S3 bucket."""
    import requests
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    t0 = time.monotonic()
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: name the driver installed
    backend = postgres.replace("postgresql://", "postgresql+psycopg2://", 1)
    SqlAlchemyStore(backend, f"s3://{BUCKET}/mlflow")  # the schema once, before the workers
    TIMES["mlflow schema on PostgreSQL"] = time.monotonic() - t0
    port, log = _free_port(), tmp_path_factory.mktemp("mlflow") / "server.log"
    env = {**os.environ, **AWS, "MLFLOW_S3_ENDPOINT_URL": s3,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "2", "--backend-store-uri", backend,
             "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        _wait(up, "mlflow server", proc, log, timeout=120)
        TIMES["mlflow server start"] = time.monotonic() - t0
        yield Team(url, postgres, s3, {"MLFLOW_TRACKING_URI": url, **AWS,
                                        "MLFLOW_S3_ENDPOINT_URL": s3})
    finally:
        _stop(proc)
        print("\nscale-out timings:", json.dumps({k: round(v, 1) for k, v in TIMES.items()}),
              file=sys.stderr)


def _timed(label: str, *args: str, cwd: Path, env: dict[str, str]):
    t0 = time.monotonic()
    r = run_mlci(*args, cwd=cwd, env=env)
    TIMES[label] = TIMES.get(label, 0.0) + time.monotonic() - t0
    assert r.code == 0, f"mlci {' '.join(args)}: {r.err}"
    return r


def test_pipeline_registry_lineage_canary_and_monitor_on_the_team_stack(team: Team,
                                                                        tmp_path: Path) -> None:
    root = make_project(tmp_path / "iris")
    cfg = root / "mlci.yaml"  # its own model: the race below needs a fresh `iris`
    cfg.write_text(cfg.read_text().replace("name: iris\n", f"name: {MODEL}\n", 1))
    env = team.env
    _timed("mlci run", "run", cwd=root, env=env)
    _timed("mlci promote", "promote", "--to", "champion", "--json", cwd=root, env=env)
    run = json.loads((root / ".mlci" / "run.json").read_text())
    run_id = run["run_id"]

    # the run, the version and the aliases are rows in PostgreSQL, not a local file
    assert not (root / ".mlci" / "mlflow.db").exists()
    assert team.sql(f"select status from runs where run_uuid = '{run_id}'") == [("FINISHED",)]
    assert team.aliases(MODEL) == {"candidate": 1, "champion": 1}
    # the model's files are objects in the bucket
    keys = team.keys("mlflow/")
    assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
    assert any(k.endswith("model.pkl") or k.endswith(".skops") for k in keys), keys[:20]

    r = _timed("mlci lineage", "lineage", f"{MODEL}@champion", "--json", cwd=root, env=env)
    lineage = json.loads(r.out)
    assert json.dumps(lineage).count(run_id) >= 1
    r = _timed("mlci history", "history", MODEL, "--json", cwd=root, env=env)
    events = json.loads(r.out)
    events = events["events"] if isinstance(events, dict) else events
    assert any(e.get("to_version") in ("1", 1) and e.get("alias") == "champion"
               for e in events), events

    # a second version rolled out by the canary and promoted: aliases move on PostgreSQL
    _timed("mlci train", "train", cwd=root, env=env)
    _timed("mlci evaluate", "evaluate", cwd=root, env=env)  # a canary needs gate evidence
    _timed("mlci canary", "canary", "start", "--version", "2", "--steps", "50,100", "--json",
           cwd=root, env=env)
    assert team.aliases(MODEL) == {"candidate": 2, "challenger": 2, "champion": 1}
    # no traffic reached it here: promoting before the analysis passes is an audited force
    _timed("mlci canary", "canary", "promote", "--force", "--reason", "team stack test",
           "--json", cwd=root, env=env)
    assert team.aliases(MODEL) == {"candidate": 2, "champion": 2}
    r = _timed("mlci history", "history", MODEL, "--json", cwd=root, env=env)
    assert "promoted" in r.out and "team stack test" in r.out

    # monitor reads the champion's training reference back from the bucket
    r = run_mlci("monitor", "--window", "data/golden.csv", "--json", cwd=root, env=env)
    assert r.code in (0, 1), r.err  # a verdict either way, never an error
    result = json.loads(r.out)
    assert str(result["version"]) == "2" and result["alert"] is (r.code == 1)


def test_racing_promotions_on_postgresql(team: Team, tmp_path: Path) -> None:
    from test_registry_concurrency import _client, _setup_versions, check_outcome, race

    root = make_project(tmp_path / "iris")
    env = team.env
    _timed("mlci run", "run", cwd=root, env=env)
    _timed("mlci promote", "promote", "--to", "champion", "--json", cwd=root, env=env)
    client = _client(team.tracking_uri)
    _setup_versions(root, client)
    t0 = time.monotonic()
    outcome, seen = race(root, team.tracking_uri, client)
    TIMES["race of 6 promotions"] = time.monotonic() - t0
    check_outcome(root, client, outcome, seen)
    assert team.aliases()["champion"] == 7


def test_dvc_remote_on_the_same_object_store(s3: str, tmp_path: Path) -> None:
    pytest.importorskip("dvc_s3", reason="dvc-s3 is in scripts/requirements-test.txt")
    root = make_project(tmp_path / "iris")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, **AWS}

    def dvc(*args: str) -> str:
        p = subprocess.run([str(Path(sys.executable).with_name("dvc")), *args], cwd=root,
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"dvc {' '.join(args)}: {p.stderr}"
        return p.stdout

    t0 = time.monotonic()
    r = run_mlci("data", "init", "--remote", f"s3://{BUCKET}/dvc", "--no-push", cwd=root,
                 env=AWS)
    assert r.code == 0, r.err
    dvc("remote", "modify", "storage", "endpointurl", s3)
    dvc("push", "-q")
    keys = bucket_keys(s3, "dvc/")
    data = [root / "data" / "train.csv", root / "data" / "golden.csv"]
    before = [p.read_bytes() for p in data]
    for p in data:
        p.unlink()
    shutil.rmtree(root / ".dvc" / "cache")
    dvc("pull", "-q")
    assert [p.read_bytes() for p in data] == before
    TIMES["dvc init/push/pull"] = time.monotonic() - t0
    # the hashes mlci records are the ones DVC filed the objects under in the bucket
    from mlci.data.hashing import data_hash

    hashes = [data_hash(p) for p in data]
    assert {h["algo"] for h in hashes} == {"dvc-md5"}
    assert sorted(keys) == sorted(f"dvc/files/md5/{h['value'][:2]}/{h['value'][2:]}"
                                  for h in hashes)
