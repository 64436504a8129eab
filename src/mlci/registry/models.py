"""The flavour table: how every stage logs, loads and feeds an MLflow model.

Train, evaluate, the gate's re-evaluation, the gateway and the monitor all load a model here,
so a model one stage accepts, every stage accepts:

- **flavours**: the scikit-learn object when the model has that flavour (its classes and
  `predict_proba` are needed for probabilities), else MLflow's generic `python_function`
  interface, through which every other flavour loads (xgboost, lightgbm, onnx, a custom
  `PythonModel`, ...);
- **inputs**: a frame is fed through the model's own signature: the columns it was trained on,
  in order, cast to the signature's types (JSON and CSV give floats where a column was
  integer, and pyfunc's schema enforcement refuses those). So a champion trained on another
  feature set is still scored on the golden rows;
- **trust**: a registered version is loaded only after `registry.trust.check_model` accepted
  it (its origin, and the digest of the files about to be unpickled; see SECURITY.md).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.errors import MlciError, first_line

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

GENERIC = "python_function"  # every flavour but sklearn loads through pyfunc
_INTEGER = {"integer": "int32", "long": "int64"}
_FLOAT = {"float": "float32", "double": "float64"}


@dataclass
class Model:
    """A loaded model and what it takes."""

    uri: str
    flavour: str                              # the flavour it was loaded through
    native: Any                               # the estimator, or the pyfunc model
    inputs: list[tuple[str, str]] | None      # (column, MLflow type) from the signature
    schema: Any = None                        # the MLflow input schema, for the gateway

    @property
    def pyfunc(self) -> bool:
        return self.flavour == GENERIC

    @property
    def features(self) -> list[str] | None:
        if self.inputs:
            return [c for c, _ in self.inputs]
        names = getattr(self.native, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    @property
    def estimator(self) -> Any:
        """Something with `predict` (and `predict_proba`/`classes_` where the model has them)
        that takes `frame(...)`'s output."""
        return self.native if not self.pyfunc else PyfuncScorer(self.native)

    def frame(self, x: pd.DataFrame, label: str) -> pd.DataFrame:
        """The columns this model takes, in its order, cast to its signature's types."""
        names = self.features
        if names is None:
            return x
        absent = [n for n in names if n not in x.columns]
        if absent:
            raise MlciError(f"{label}: lacks column {absent[0]!r} that {self.uri} was trained "
                            "on")
        return cast(x[names], dict(self.inputs or []))


def cast(x: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """Columns cast to their signature types where the values allow it (an integer column
    with a gap stays float: the model then says what it makes of it)."""
    import numpy as np

    out = x
    for col, t in types.items():
        if col not in x.columns:
            continue
        s = x[col]
        try:
            if t in _INTEGER and s.dtype.kind != "i":
                v = s.to_numpy(dtype=float, na_value=np.nan)
                if not np.isnan(v).any() and np.all(v == np.round(v)):
                    out = out if out is not x else x.copy()
                    out[col] = v.astype(_INTEGER[t])
            elif t in _FLOAT and s.dtype.kind in "iub":
                out = out if out is not x else x.copy()
                out[col] = s.to_numpy(dtype=_FLOAT[t])
        except (TypeError, ValueError):
            continue
    return out


class PyfuncScorer:
    """A pyfunc model (or a `PythonModel` object) seen as an estimator: `predict(x)` gives one
    value per row."""

    def __init__(self, model: Any, *, python_model: bool = False) -> None:
        self.model, self.python_model = model, python_model

    def predict(self, x):  # noqa: ANN001
        import numpy as np

        out = self.model.predict(None, x) if self.python_model else self.model.predict(x)
        if isinstance(out, dict):  # a tensor model's named outputs (the onnx flavour's)
            out = out.get("label", next(iter(out.values()), None))
        if hasattr(out, "iloc") and getattr(out, "ndim", 1) == 2:
            out = out.iloc[:, 0]
        out = np.asarray(out)
        return out.reshape(len(out), -1)[:, 0] if out.ndim > 1 else out


def is_python_model(est: Any) -> bool:
    import mlflow.pyfunc

    return isinstance(est, mlflow.pyfunc.PythonModel)


def is_onnx(est: Any) -> bool:
    return type(est).__name__ == "ModelProto" and type(est).__module__.startswith("onnx")


class OnnxScorer:
    """An ONNX graph (an entrypoint may return one) scored in process by onnxruntime: its
    `label` output (else its first)."""

    def __init__(self, proto: Any) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                                    providers=["CPUExecutionProvider"])
        names = [o.name for o in self.session.get_outputs()]
        self.output = "label" if "label" in names else names[0]

    def predict(self, x):  # noqa: ANN001
        feed = {self.session.get_inputs()[0].name: x}
        return self.session.run([self.output], feed)[0]


def scorer(est: Any) -> Any:
    """What scores a freshly fitted object: the estimator, or its `PythonModel` or ONNX
    graph as one."""
    if is_onnx(est):
        return OnnxScorer(est)
    return PyfuncScorer(est, python_model=True) if is_python_model(est) else est


# ---------------------------------------------------------------- logging


def log(est: Any, x: Any, pip_requirements: list[str], pickle_by_value: tuple = ()):
    """Log a fitted estimator (sklearn flavour), `PythonModel` (pyfunc) or ONNX graph (onnx)
    as `model`, with a signature from the training columns' own types, or for an array (the
    images of an image model) a tensor signature of its shape and dtype; returns MLflow's
    ModelInfo."""
    import cloudpickle
    from mlflow.models import infer_signature

    sample = x.head(1000) if hasattr(x, "head") else x[:1000]
    example = sample[:2] if not hasattr(x, "head") else x.head(5)
    signature = infer_signature(sample, scorer(est).predict(example))
    if not hasattr(x, "head"):  # any number of images: the batch dimension is -1
        from mlflow.types.schema import Schema, TensorSpec

        signature.inputs = Schema([TensorSpec(sample.dtype, (-1, *sample.shape[1:]))])
    if is_onnx(est):
        import mlflow.onnx

        return mlflow.onnx.log_model(est, name="model", signature=signature,
                                     input_example=example, pip_requirements=onnx_requirements())
    if is_python_model(est):
        import mlflow.pyfunc

        return mlflow.pyfunc.log_model(name="model", python_model=est, signature=signature,
                                       input_example=example,
                                       pip_requirements=pip_requirements)
    import mlflow.sklearn

    for module in pickle_by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return mlflow.sklearn.log_model(
            est, name="model", signature=signature, input_example=example,
            pip_requirements=pip_requirements, serialization_format="cloudpickle")
    finally:
        for module in pickle_by_value:
            cloudpickle.unregister_pickle_by_value(module)


def onnx_requirements() -> list[str]:
    """What serving an ONNX model needs (the `onnx` extra), at the installed versions."""
    from importlib.metadata import version

    return [f"{d}=={version(d)}" for d in ("onnx", "onnxruntime", "numpy")]


# ---------------------------------------------------------------- digests and loading


_NOT_HASHED = {"registered_model_meta"}  # written by MLflow on download: name and version


def files_digest(folder: Path) -> str:
    """One sha256 over every file of a model folder (relative path and content)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() not in _NOT_HASHED:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0")
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


def download(uri: str, dst: Path) -> Path:
    import mlflow.artifacts

    try:
        return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(dst)))
    except Exception as exc:  # noqa: BLE001 - any failure to fetch is one line
        raise MlciError(f"cannot download {uri}: {first_line(exc)}") from None


def load_local(folder: Path, uri: str) -> Model:
    """Load a downloaded model folder through the flavour table."""
    from mlflow.models import Model as MlflowModel

    try:
        meta = MlflowModel.load(str(folder))
        schema = meta.get_input_schema()
        if "sklearn" in meta.flavors:
            import mlflow.sklearn

            native, flavour = mlflow.sklearn.load_model(str(folder)), "sklearn"
        elif GENERIC in meta.flavors:
            import mlflow.pyfunc

            native, flavour = mlflow.pyfunc.load_model(str(folder)), GENERIC
        else:
            raise MlciError(f"{uri}: has neither the sklearn nor the python_function flavour "
                            f"(has {', '.join(sorted(meta.flavors))})")
    except MlciError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken or foreign model is one line
        raise MlciError(f"cannot load {uri}: {first_line(exc)}") from None
    inputs = None
    if schema is not None and not schema.is_tensor_spec():
        named = [c for c in schema.inputs if getattr(c, "name", None)]
        if named and len(named) == len(schema.inputs):
            inputs = [(str(c.name), str(getattr(c.type, "name", c.type))) for c in named]
    return Model(uri, flavour, native, inputs, schema)


def _kept(make) -> Model:
    """A model loaded from a folder that lives as long as the model: a pyfunc model may read
    its artifacts or code from there after loading."""
    import shutil
    import weakref

    tmp = tempfile.mkdtemp(prefix="mlci-model-")
    try:
        model = make(Path(tmp))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:  # the loaded object itself: callers may keep it and drop the wrapper
        weakref.finalize(model.native, shutil.rmtree, tmp, True)
    except TypeError:  # an object that takes no weak reference
        weakref.finalize(model, shutil.rmtree, tmp, True)
    return model


def load(uri: str) -> Model:
    """A model by URI (a run's own, just logged): no registry trust check applies."""
    return _kept(lambda tmp: load_local(download(uri, tmp), uri))


def load_version(client: MlflowClient, name: str, version: str, *,
                 role: str = "model") -> Model:
    """A registered version, after the trust check of its origin and files."""
    from mlci.registry.trust import check_model

    mv = client.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"

    def checked(tmp: Path) -> Model:
        local = download(uri, tmp)
        check_model(client, mv, files_digest(local), role=role)
        return load_local(local, uri)

    return _kept(checked)


def artifact_digest(uri: str) -> str:
    with tempfile.TemporaryDirectory(prefix="mlci-model-") as tmp:
        return files_digest(download(uri, Path(tmp)))


EXPORT_RECORD = "mlci-export.json"


def export(client: MlflowClient, name: str, version: str, dest: str) -> dict[str, Any]:
    """Copy a registered version's model folder to `dest` (a path or an fsspec URL such as a
    KServe `storageUri`), after the same trust check as a load: a swapped pickle is never
    shipped. A destination that already holds this version's files is left as it is; one
    holding other files is refused (a version's files never change)."""
    import json

    from mlci.registry.trust import check_model

    mv = client.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"
    record = {"model": name, "version": str(mv.version), "run_id": mv.run_id}
    with tempfile.TemporaryDirectory(prefix="mlci-export-") as tmp:
        local = download(uri, Path(tmp))
        digest = files_digest(local)
        check_model(client, mv, digest, role="exported model")
        record["digest"] = digest
        there = _read_export(dest)
        if there is not None:
            if there.get("digest") == digest:
                return {**record, "dest": dest, "copied": False}
            raise MlciError(f"{dest}: holds other model files ({there.get('model')}/"
                            f"{there.get('version')}); not overwriting them")
        (local / "registered_model_meta").unlink(missing_ok=True)
        (local / EXPORT_RECORD).write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        _put(local, dest)
    return {**record, "dest": dest, "copied": True}


def _read_export(dest: str) -> dict[str, Any] | None:
    import json

    import fsspec

    fs, path = fsspec.core.url_to_fs(dest)
    target = f"{path.rstrip('/')}/{EXPORT_RECORD}"
    if not fs.exists(target):
        if fs.exists(path) and fs.ls(path):
            return {"model": "?", "version": "?", "digest": None}  # someone else's files
        return None
    with fs.open(target, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def _put(local: Path, dest: str) -> None:
    """Upload a folder; the record goes last, so a half-copied folder has none."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(dest)
    path = path.rstrip("/")
    fs.makedirs(path, exist_ok=True)
    for p in sorted(local.rglob("*"), key=lambda q: q.name == EXPORT_RECORD):
        if p.is_file():
            target = f"{path}/{p.relative_to(local).as_posix()}"
            fs.makedirs(target.rpartition("/")[0], exist_ok=True)
            fs.put_file(str(p), target)
