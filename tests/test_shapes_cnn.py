"""The shapes example's CNN path: Keras 3 on JAX trains it through `model.entrypoint`, mlci
logs the returned ONNX graph with MLflow's onnx flavour (uint8 tensor in, scaling inside), and
evaluation scores it through onnxruntime. Needs examples/shapes/requirements-cnn.txt (CPU
wheels; measured in CHANGELOG.md): where Keras, JAX or onnxruntime is not installed this
module is skipped, and says so."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_mlci

os.environ.setdefault("KERAS_BACKEND", "jax")  # as train_cnn.py sets it (Keras' default: TF)
# one compute thread, as BLAS is pinned for the suite: XLA's pool fights the other worker
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
for module in ("keras", "jax", "onnx", "onnxruntime"):
    pytest.importorskip(module, reason=f"{module} not installed "
                                       "(pip install -r examples/shapes/requirements-cnn.txt)")

pytestmark = [pytest.mark.timeout(600)]


def test_cnn_trains_logs_onnx_and_is_scored_on_the_uint8_tensor(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    shutil.copytree(REPO / "examples" / "shapes", root,
                    ignore=shutil.ignore_patterns(".mlci", "data"))
    sys.path.insert(0, str(root))
    try:
        import make_data
    finally:
        sys.path.remove(str(root))
    make_data.main(root / "data" / "images", per_class=100, seed=0)
    assert run_mlci("init", "--profile", "data/images", "--name", "shapes", cwd=root).code == 0
    assert run_mlci("validate", "--no-docs", cwd=root).code == 0
    # the worse CNN (mlci.cnn-worse.yaml) trains the same way with fewer epochs; the suite
    # rolls a worse version back in tests/test_shapes_e2e.py, so one CNN is trained here
    r = run_mlci("train", "-c", "mlci.cnn.yaml", cwd=root)
    assert r.code == 0, r.err
    r = run_mlci("evaluate", "-c", "mlci.cnn.yaml", cwd=root)
    assert r.code == 0, r.err
    ev = json.loads((root / ".mlci" / "evaluation.json").read_text())
    assert ev["metrics"]["accuracy"] >= 0.9, ev["metrics"]
    # the logged model is ONNX with a uint8 tensor signature, served by onnxruntime alone
    import mlflow

    uri = f"sqlite:///{(root / '.mlci' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    from mlci.registry import models

    m = models.load("models:/shapes/1")
    assert m.pyfunc and m.schema.is_tensor_spec()
    spec = m.schema.inputs[0]
    assert str(spec.type) == "uint8" and tuple(spec.shape) == (-1, 32, 32, 3)
    info = mlflow.models.get_model_info("models:/shapes/1")
    assert "onnx" in info.flavors
