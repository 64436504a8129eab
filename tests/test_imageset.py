"""Image data sets in the pipeline: folders and tables of paths, the per-image metadata that
validation checks, DVC's directory hash, the config, and a model that takes the uint8 tensor
and loads without mlci (small generated images; real Great Expectations, MLflow and DVC)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_mlci
from PIL import Image

from mlci.config import load_config
from mlci.data import imageset
from mlci.data.hashing import data_hash, md5_dir

CONFIG = """\
name: tiny
data:
  train: {train}
  golden: {golden}
  image_size: [8, 8]
  channels: 3
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{C: 1.0, max_iter: 500}}
gate:
  min: {{accuracy: 0.6}}
  bootstrap: 50
"""


def _jpeg(colour: tuple[int, int, int], rng: np.random.Generator, fmt: str = "JPEG",
          size: int = 8) -> bytes:
    a = np.clip(np.array(colour) + rng.integers(-20, 20, size=(size, size, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8), "RGB").save(buf, format=fmt)
    return buf.getvalue()


def _folder(dest: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (dest / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (dest / name / f"{seed}-{i}.jpg").write_bytes(_jpeg(colour, rng))
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _folder(tmp_path / "data" / "train", 12, 0)
    _folder(tmp_path / "data" / "golden", 6, 1)
    (tmp_path / "mlci.yaml").write_text(CONFIG.format(train="data/train",
                                                      golden="data/golden"))
    return tmp_path


def test_folder_and_table_load_the_same_tensor(project: Path) -> None:
    cfg = load_config(project / "mlci.yaml", resolve=False)
    x, y, paths = imageset.load_xy(cfg, "train")
    assert x.shape == (24, 8, 8, 3) and x.dtype == np.uint8
    assert sorted(set(y)) == ["blue", "red"] and paths[0] == "blue/0-0.jpg"
    table = project / "data" / "train.csv"
    table.write_text("file,label\n" + "".join(f"train/{p},{c}\n" for p, c in zip(paths, y,
                                                                                  strict=True)))
    (project / "t.yaml").write_text(CONFIG.format(train="data/train.csv", golden="data/golden")
                                    .replace("channels: 3", "channels: 3\n  image_column: file"))
    x2, y2, _ = imageset.load_xy(load_config(project / "t.yaml", resolve=False), "train")
    assert np.array_equal(x, x2) and list(y) == list(y2)


def test_metadata_flags_what_validation_checks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok.png").write_bytes(_jpeg((1, 2, 3), rng, "PNG"))
    (tmp_path / "a" / "cut.jpg").write_bytes(_jpeg((1, 2, 3), rng)[:200])
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    meta = imageset.metadata(imageset.listing(tmp_path, "d"), tmp_path)
    rows = {r["path"]: r for r in meta.to_dict("records")}
    assert rows["a/ok.png"]["decodable"] and rows["a/ok.png"]["format"] == "PNG"
    assert rows["a/ok.png"]["width"] == 8 and rows["a/ok.png"]["channels"] == 3
    assert not rows["a/cut.jpg"]["decodable"] and rows["a/cut.jpg"]["bytes"] == 200
    assert not rows["a/notes.txt"]["decodable"] and pd.isna(rows["a/notes.txt"]["format"])


def test_table_path_outside_its_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("path,label\n../../etc/passwd,x\n")
    from mlci.errors import MlciError

    with pytest.raises(MlciError, match="outside the data set's folder"):
        imageset.metadata(imageset.listing(tmp_path / "t.csv", "t.csv"), tmp_path)


def test_folder_hash_is_dvcs_directory_hash(project: Path) -> None:
    folder = project / "data" / "train"
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "init", "-q"], cwd=project, check=True)
    subprocess.run([dvc, "add", "-q", "data/train"], cwd=project, check=True,
                   capture_output=True)
    import yaml

    recorded = yaml.safe_load((project / "data" / "train.dvc").read_text())["outs"][0]["md5"]
    assert md5_dir(folder) == recorded
    assert data_hash(folder) == {"algo": "dvc-md5", "value": recorded}
    (folder / "red" / "0-0.jpg").write_bytes(b"changed")
    assert data_hash(folder)["algo"] == "md5"


def test_config_needs_image_size_for_a_folder(project: Path) -> None:
    (project / "bad.yaml").write_text(CONFIG.format(train="data/train", golden="data/golden")
                                      .replace("  image_size: [8, 8]\n", "")
                                      .replace("channels: 3", "target: label"))
    r = run_mlci("validate", "-c", "bad.yaml", cwd=project)
    assert r.code == 2 and "is a folder: image data needs data.image_size" in r.err
    (project / "bad.yaml").write_text(CONFIG.format(train="data/train", golden="data/golden")
                                      .replace("channels: 3", "channels: 4"))
    r = run_mlci("validate", "-c", "bad.yaml", cwd=project)
    assert r.code == 2 and "data.channels" in r.err and "Traceback" not in r.err


def test_pipeline_on_images_validation_leakage_and_tensor_model(project: Path) -> None:
    out = run_mlci("init", "--profile", "data/train", "--golden", "data/golden",
                   "--force", cwd=project)
    assert out.code == 0, out.err
    assert run_mlci("validate", "--no-docs", cwd=project).code == 0
    # a golden image that is also a training image (same bytes) is a leak
    shutil.copy(project / "data" / "train" / "red" / "0-0.jpg",
                project / "data" / "golden" / "red" / "copy.jpg")
    (project / "data" / "golden" / "blue" / "broken.jpg").write_bytes(b"\xff\xd8broken")
    r = run_mlci("validate", "--no-docs", cwd=project)
    assert r.code == 1
    golden = json.loads((project / ".mlci" / "validation.json").read_text())["datasets"][
        "golden"]
    failed = {(x["expectation"], x["column"]) for x in golden["results"] if not x["success"]}
    assert ("mlci_golden_rows_not_in_train", None) in failed
    assert ("expect_column_values_to_be_in_set", "decodable") in failed
    (project / "data" / "golden" / "red" / "copy.jpg").unlink()
    (project / "data" / "golden" / "blue" / "broken.jpg").unlink()
    assert run_mlci("validate", "--no-docs", cwd=project).code == 0
    assert run_mlci("train", cwd=project).code == 0
    r = run_mlci("evaluate", cwd=project)
    assert r.code == 0, r.err
    ev = json.loads((project / ".mlci" / "evaluation.json").read_text())
    assert ev["metrics"]["accuracy"] == 1.0 and ev["per_class"] and ev["confusion_matrix"]
    # the logged model unpickles and scores the uint8 tensor with mlci not importable
    run = json.loads((project / ".mlci" / "run.json").read_text())
    script = (
        "import sys; sys.modules['mlci'] = None\n"
        "import mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri('sqlite:///{project / '.mlci' / 'mlflow.db'}')\n"
        f"m = mlflow.pyfunc.load_model({run['artifact_uri']!r})\n"
        "x = np.full((2, 8, 8, 3), 30, np.uint8); x[0, ..., 0] = 220\n"
        "print(list(m.predict(x)))\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, cwd=project)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "['red', 'blue']"


def _kl(counts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """KL(observed shares || profiled shares) per row of class counts: what GX's
    expect_column_kl_divergence_to_be_less_than computes for a categorical partition
    (checked against its observed_value: 6/20/20/20 images against 1/4 each gives 0.0829)."""
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p / shares), 0.0).sum(axis=1)


def test_class_share_check_error_rates_both_ways() -> None:
    """The profiled class-share bound (KL < CLASS_KL, docs/pipeline.md#image-data), simulated
    on 4 equal classes: a set drawn at random with the profiled shares fails it (a false
    alarm), a set where one class lost two thirds of its images passes it (a miss)."""
    from mlci.data.profile import CLASS_KL

    rng = np.random.default_rng(0)
    same = np.full(4, 0.25)
    lost = np.array([0.25 / 3, 0.25, 0.25, 0.25])
    lost /= lost.sum()
    rates = {}
    for n in (40, 80, 160, 320):
        alarm = float((_kl(rng.multinomial(n, same, size=100_000), same) > CLASS_KL).mean())
        miss = float((_kl(rng.multinomial(n, lost, size=100_000), same) <= CLASS_KL).mean())
        rates[n] = (alarm, miss)
    assert 0.24 < rates[40][0] < 0.32 and 0.03 < rates[80][0] < 0.07, rates
    assert rates[160][0] < 0.005 and rates[320][0] < 0.001, rates
    assert all(miss < 0.18 for _, miss in rates.values()) and rates[320][1] < 0.08, rates
    # a stratified golden set (init's split) has the profiled shares: no alarm at all
    assert _kl(np.array([[20, 20, 20, 20]]), same)[0] == 0.0


def test_dvc_stages_depend_on_the_images_a_table_lists(project: Path) -> None:
    from mlci.data.dvc_pipeline import stages

    cfg = load_config(project / "mlci.yaml", resolve=False)
    assert stages(cfg)["train"]["deps"][0] == "data/train"  # a folder is its own dependency
    (project / "data" / "train.csv").write_text("path,label\ntrain/red/0-0.jpg,red\n"
                                                "train/blue/0-0.jpg,blue\n")
    (project / "t.yaml").write_text(CONFIG.format(train="data/train.csv",
                                                  golden="data/golden"))
    st = stages(load_config(project / "t.yaml", resolve=False))
    assert st["train"]["deps"][:2] == ["data/train.csv", "data/train"]
    assert st["validate"]["deps"][:3] == ["data/train.csv", "data/golden", "data/train"]
