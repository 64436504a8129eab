"""The shapes image example end to end: generated RGB JPEGs, `mlci init --profile` on the
folder, validation, training, evaluation and the gate, then a canary under `mlci serve` on
labelled JPEG traffic: the worse version rolled back, the good one promoted.

The pipeline uses the scikit-learn estimator path (pixels flattened and scaled inside the
logged model, which takes the (N, 32, 32, 3) uint8 tensor); the CNN path has its own test
(tests/test_shapes_cnn.py). The canary step needs the gateway to decode JPEG into the model's
tensor (issue 24, item 3).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO, run_mlci
from test_serve_support import FAST, FEEDBACK_TOKEN, Gateway, _client, canary

from mlci.registry import aliases
from mlci.serve.loadgen import LoadResult, read_images, run_load

SHAPES = REPO / "examples" / "shapes"
GOOD, WORSE = "2", "3"

# only the canary holds the machine alone (its latency is judged); training shares it
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _ok(r) -> str:
    assert r.code == 0, r.out + r.err
    return r.out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    shutil.copytree(SHAPES, root, ignore=shutil.ignore_patterns(".mlci", "data"))
    sys.path.insert(0, str(root))
    try:
        import make_data
    finally:
        sys.path.remove(str(root))
    make_data.main(root / "data" / "images", per_class=100, seed=0)
    make_data.main(root / "traffic", per_class=40, seed=1)  # unseen images, same distribution
    return root


@pytest.fixture(scope="module")
def trained(shapes: Path) -> Path:
    root = shapes
    out = _ok(run_mlci("init", "--profile", "data/images", "--name", "shapes", cwd=root))
    assert "resized to 32x32, 3 channel(s)" in out
    assert "wrote data/images-train.csv (320 images)" in out
    _ok(run_mlci("validate", "--no-docs", cwd=root))
    for args in (["train"], ["evaluate"], ["promote", "--to", "champion", "--version", "1"],
                 ["train"], ["evaluate"],
                 ["train", "-c", "mlci.worse.yaml"], ["evaluate", "-c", "mlci.worse.yaml"]):
        _ok(run_mlci(*args, cwd=root))
    return root


def test_init_profile_writes_an_image_suite_and_config(trained: Path) -> None:
    cfg = (trained / "mlci.yaml").read_text()
    assert "image_size: [32, 32]" in cfg and "channels: 3" in cfg
    suite = json.loads((trained / "expectations" / "train.json").read_text())
    kinds = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    for want in (("expect_column_values_to_be_in_set", "decodable"),
                 ("expect_column_values_to_be_in_set", "format"),
                 ("expect_column_values_to_be_between", "width"),
                 ("expect_column_values_to_be_in_set", "channels"),
                 ("expect_column_kl_divergence_to_be_less_than", "label"),
                 ("expect_column_values_to_be_unique", "sha256")):
        assert want in kinds, want
    validation = json.loads((trained / ".mlci" / "validation.json").read_text())
    assert validation["success"] and validation["datasets"]["golden"]["leakage"]["rows"] == 0


def test_versions_are_tensor_models_scored_on_golden_jpegs(trained: Path) -> None:
    import mlflow

    from mlci.registry import models

    uri = f"sqlite:///{(trained / '.mlci' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)

    ev = json.loads((trained / ".mlci" / "evaluation.json").read_text())  # the worse one
    assert ev["model"]["version"] == WORSE
    c = _client(trained)
    accuracy = {}
    for v in ("1", GOOD, WORSE):
        mv = c.get_model_version("shapes", v)
        accuracy[v] = c.get_run(mv.run_id).data.metrics["golden_accuracy"]
        m = models.load_version(c, "shapes", v)
        assert m.schema.is_tensor_spec()
        spec = m.schema.inputs[0]
        assert str(spec.type) == "uint8" and tuple(spec.shape) == (-1, 32, 32, 3)
    assert accuracy["1"] >= 0.9 and accuracy[GOOD] >= 0.9
    assert accuracy[WORSE] <= accuracy[GOOD] - 0.2, accuracy
    # the contract the gateway serves: traffic JPEGs decoded by mlci.images into the declared
    # tensor and fed to the loaded model as one (N, 32, 32, 3) uint8 batch
    import base64

    import numpy as np

    from mlci.images import decode, spec_of_shape

    rows, labels = read_images(str(trained / "traffic"))
    on_traffic = {}
    for v in (GOOD, WORSE):
        m = models.load_version(c, "shapes", v)
        spec = spec_of_shape(m.schema.inputs[0].shape)
        assert spec is not None
        batch = np.stack([decode(base64.b64decode(r), spec) for r in rows])
        on_traffic[v] = float(np.mean(m.estimator.predict(batch) == np.asarray(labels)))
    assert on_traffic[GOOD] >= 0.9 and on_traffic[WORSE] <= on_traffic[GOOD] - 0.2, on_traffic
    # the gate's re-evaluation (mlci promote) scores both tensor models on the golden images
    from mlci.config import load_config
    from mlci.evaluate import rescore

    again = rescore(load_config(trained / "mlci.yaml"), c, "shapes", WORSE, GOOD)
    assert again["metrics"]["accuracy"] == accuracy[WORSE]
    assert again["champion_metrics"]["accuracy"] == accuracy[GOOD]
    # the worse version's report lists its misclassified golden images and draws them
    assert ev["misclassified"]["count"] > 0 and ev["plots"]["misclassified"]
    assert (trained / ".mlci" / ev["plots"]["misclassified"]).stat().st_size > 1000
    _ok(run_mlci("report", "-c", "mlci.worse.yaml", cwd=trained))
    report = (trained / ".mlci" / "report.md").read_text()
    first = ev["misclassified"]["examples"][0]
    assert f"Misclassified golden images: {ev['misclassified']['count']} of 80" in report
    assert f"| {first['path']} | {first['true']} | {first['predicted']} |" in report
    assert "![misclassified golden images](plots/misclassified.png)" in report


class JpegLoad:
    """Labelled JPEG traffic (base64 in `{"images": [...]}`) with feedback, until stopped."""

    def __init__(self, url: str, folder: Path, seed: int) -> None:
        rows, labels = read_images(str(folder))
        assert all(r.startswith("/9j/") for r in rows)  # JPEG's magic bytes in base64
        self.stop = threading.Event()
        self.result: LoadResult | None = None
        self._t = threading.Thread(target=self._run, args=(url, rows, labels, seed),
                                   daemon=True)

    def _run(self, url, rows, labels, seed) -> None:
        self.result = run_load(url, rows, labels, requests=60_000, seconds=300, concurrency=4,
                               keys=300, stop=self.stop, seed=seed, images=True,
                               feedback_token=FEEDBACK_TOKEN)

    def __enter__(self) -> JpegLoad:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._t.join(60)


@pytest.mark.exclusive
def test_canary_rolls_back_the_worse_and_promotes_the_good_on_jpeg_traffic(
        trained: Path) -> None:
    import base64

    import httpx

    root = trained
    gw = Gateway(root).start()
    try:
        # one labelled JPEG first: what the gateway says to it is the failure, if any
        jpeg = next((root / "traffic" / "circle").iterdir()).read_bytes()
        probe = httpx.post(gw.url + "/predict", timeout=10,
                           json={"images": [base64.b64encode(jpeg).decode()]})
        assert probe.status_code == 200, f"{probe.status_code} {probe.text[:300]}"
        assert probe.json()["predictions"] == ["circle"]
        with JpegLoad(gw.url, root / "traffic", seed=1) as load:
            r = canary(root, "run", "--version", WORSE, "--gateway", gw.url, "--json", *FAST)
        res = json.loads(r.out.strip().splitlines()[-1])
        assert load.result is not None and load.result.ok, "no JPEG request was answered"
        assert r.code == 1 and res["decision"] == "rolled-back", r.out + r.err
        acc = {c["check"]: c["verdict"] for c in res["checks"]}
        assert acc["accuracy (non-inferiority)"] == "fail"
        assert aliases.current(_client(root), "shapes", "champion") == "1"

        with JpegLoad(gw.url, root / "traffic", seed=2) as load:
            r = canary(root, "run", "--version", GOOD, "--gateway", gw.url, "--json", *FAST)
        res = json.loads(r.out.strip().splitlines()[-1])
        assert r.code == 0 and res["decision"] == "promoted", r.out + r.err
        assert aliases.current(_client(root), "shapes", "champion") == GOOD
        assert load.result is not None and all(s.status == 200 for s in load.result.sent)
    finally:
        gw.stop()
