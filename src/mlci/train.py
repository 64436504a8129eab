"""Training: build or call the user's model, fit with fixed seeds, log and register in MLflow.

The model version is created last, with its lineage tags, and then gets the `candidate`
alias: any failure before that leaves the registry as it was.
"""

from __future__ import annotations

import inspect
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci import context, modelspec
from mlci.data.hashing import dataset_hash
from mlci.data.load import load_xy, read_input, split_xy
from mlci.errors import MlciError, VerdictFailed
from mlci.errors import first_line as _first_line
from mlci.io import atomic_write_json, read_json, sha256_file
from mlci.records import RunRecord

if TYPE_CHECKING:
    from mlci.config import Config
    from mlci.data.preprocess import Plan

SCHEMA = "mlci.run/1"
TAG = "mlci."  # prefix of every lineage tag on runs and model versions


def check_validation(cfg: Config, out_dir: Path, skip: bool) -> dict[str, Any] | None:
    path = out_dir / "validation.json"
    if skip:
        return read_json(path) if path.is_file() else None
    if not path.is_file():
        raise MlciError(f"{path}: no validation record; run `mlci validate` first "
                        "or pass --skip-validation")
    report = read_json(path)
    current = dataset_hash(cfg, "train")["value"]
    recorded = report.get("datasets", {}).get("train", {}).get("hash", {}).get("value")
    if recorded != current:
        raise MlciError(f"{path}: records other training data than {cfg.data.train}; "
                        "run `mlci validate` again")
    if not report.get("success") and cfg.validation.block_training:
        raise VerdictFailed("refusing to train: data validation failed (see validation.json)")
    return report


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)


def _call_entrypoint(cfg: Config, x, y) -> Any:
    from mlci.data.preprocess import build_transformer, plan_for

    fn = modelspec.import_object(cfg.model.entrypoint or "", cfg.root, "model.entrypoint")
    offered: dict[str, Any] = {"params": dict(cfg.model.resolved_params), "seed": cfg.model.seed}
    kwargs: dict[str, Any] = {}
    try:
        sig = inspect.signature(fn)
        kwargs = {k: v for k, v in offered.items() if k in sig.parameters}
        if "preprocessor" in sig.parameters and cfg.data.image_size is None:
            # the default ColumnTransformer, unfitted
            kwargs["preprocessor"] = build_transformer(plan_for(cfg, x))
    except (TypeError, ValueError):
        pass
    try:
        est = fn(x, y, **kwargs)
    except Exception as exc:
        raise MlciError(f"entrypoint {cfg.model.entrypoint} raised {type(exc).__name__}: "
                        f"{_first_line(exc)}") from None
    from mlci.registry.models import is_onnx

    if not hasattr(est, "predict") and not is_onnx(est):
        raise MlciError(f"entrypoint {cfg.model.entrypoint} returned {type(est).__name__}, "
                        "not a fitted estimator with predict() (or an ONNX graph)")
    return est


def build_and_fit(cfg: Config, x, y) -> tuple[Any, Any, Plan | None]:
    """The fitted model, the raw columns it scores, and the preprocessing plan (if any).

    An entrypoint gets the raw DataFrame (image data: the (N, H, W, C) uint8 array) and owns
    its preprocessing; a built-in estimator is wrapped in the default preprocessing unless
    `preprocess: none` (image data: in a first step that flattens and scales the pixels)."""
    seed_everything(cfg.model.seed)
    if cfg.model.entrypoint:
        return _call_entrypoint(cfg, x, y), x, None
    cls = modelspec.import_object(cfg.model.estimator or "", cfg.root, "model.estimator")
    params = dict(cfg.model.resolved_params)
    try:
        if "random_state" in inspect.signature(cls).parameters and "random_state" not in params:
            params["random_state"] = cfg.model.seed
    except (TypeError, ValueError):
        pass
    try:
        est = cls(**params)
    except Exception as exc:
        raise MlciError(f"model.params: {cfg.model.estimator} rejected them: "
                        f"{_first_line(exc)}") from None
    plan = None
    if cfg.data.image_size is not None:  # pixels: flattened and scaled inside the model
        from mlci.data.preprocess import with_pixels

        est = with_pixels(est)
    elif cfg.preprocess == "auto":
        from mlci.data.preprocess import plan_for, with_preprocessing

        plan = plan_for(cfg, x)
        if not plan.features:
            raise MlciError(f"{cfg.data.train}: no usable feature column "
                            f"({'; '.join(plan.notes) or 'all dropped'})")
        x = x[plan.features]
        est = with_preprocessing(est, plan)
    try:
        est.fit(x, y)
    except Exception as exc:
        est = _refit_on_codes(cfg, est, x, y, exc)
    return est, x, plan


def _refit_on_codes(cfg: Config, est: Any, x, y, exc: Exception) -> Any:
    """A classifier that refused the labels as they are (strings, or integers that are not
    0..K-1) is fitted on codes and decodes its predictions itself; any other failure, or a
    second one, is the user's to see."""
    import numpy as np

    from mlci.data.preprocess import encode_labels

    labels = np.unique(np.asarray(y))
    coded = labels.dtype.kind in "iu" and labels.tolist() == list(range(len(labels)))
    if cfg.task == "classification" and not coded:
        wrapped = encode_labels(est)
        try:
            return wrapped.fit(x, y)
        except Exception:  # noqa: BLE001 - report the first failure, the one on the labels
            pass
    hint = " (preprocess: none passes the columns as they are)" \
        if cfg.preprocess == "none" else ""
    raise MlciError(f"fitting {cfg.model.estimator} failed: {type(exc).__name__}: "
                    f"{_first_line(exc)}{hint}") from None


def _flat_params(est: Any, configured: dict[str, Any]) -> dict[str, str]:
    """The final estimator's scalar hyperparameters (a Pipeline's last step), then the
    configured ones on top: what the report's params diff compares."""
    params: dict[str, Any] = {}
    steps = getattr(est, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        est = steps[-1][1]
    from mlci.data.preprocess import EncodedLabels

    if isinstance(est, EncodedLabels):
        est = est.estimator
    if hasattr(est, "get_params"):
        try:
            params = {k: v for k, v in est.get_params(deep=False).items()
                      if isinstance(v, (int, float, str, bool, type(None)))}
        except Exception:  # noqa: BLE001 - custom estimators may not support it
            params = {}
    params.update(configured)
    return {k: str(v)[:500] for k, v in params.items()}


def _pip_requirements(est: Any = None) -> list[str]:
    """Explicit requirements: scikit-learn's stack and the distribution of every module the
    model's pickle refers to (xgboost, lightgbm, imbalanced-learn...), read from the pickle
    itself in milliseconds (MLflow's inference costs seconds in a subprocess)."""
    from importlib.metadata import version

    reqs = []
    dists = ["scikit-learn", "numpy", "pandas", "cloudpickle"]
    if est is not None:
        dists += [d for d in pickled_distributions(est) if d not in dists]
    for dist in dists:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except Exception:  # noqa: BLE001
            pass
    return reqs


def pickled_distributions(obj: Any) -> list[str]:
    """The installed distributions whose modules unpickling `obj` imports: what a model
    logged with it needs wherever it is served (the project's own package and mlci, which
    travels by value, are not distributions on an index and are left out)."""
    import pickletools
    import sys
    from importlib.metadata import packages_distributions

    import cloudpickle

    from mlci.data import preprocess

    cloudpickle.register_pickle_by_value(preprocess)  # as it is logged
    try:
        data = cloudpickle.dumps(obj)
    except Exception:  # noqa: BLE001 - an object that does not pickle fails when logged
        return []
    finally:
        cloudpickle.unregister_pickle_by_value(preprocess)
    modules: set[str] = set()
    pushed: list[Any] = [None, None]   # the last two values pushed (STACK_GLOBAL's operands)
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            modules.add(arg.split(" ", 1)[0].split(".", 1)[0])
        elif op.name == "STACK_GLOBAL" and isinstance(pushed[-2], str):
            modules.add(pushed[-2].split(".", 1)[0])
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg or 0)] = pushed[-1]
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg or 0)))
        elif op.name.endswith("UNICODE") or op.name.endswith("STRING"):
            pushed.append(arg)
        elif op.stack_after and op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            pushed.append(None)
        del pushed[:-2]
    owners = packages_distributions()
    dists: list[str] = []
    for module in sorted(modules - set(sys.stdlib_module_names) - {"mlci"}):
        for dist in owners.get(module, []):
            if dist not in dists:
                dists.append(dist)
    return dists


def lineage_tags(cfg: Config, validation: dict[str, Any] | None, out_dir: Path) -> dict[str, str]:
    tags = {TAG + k: v for k, v in context.git_info(cfg.root).items()}
    tags[TAG + "trigger"] = context.trigger()
    reason = context.trigger_reason()
    if reason:
        tags[TAG + "trigger.reason"] = reason
    tags[TAG + "actor"] = context.actor()
    url = context.ci_run_url()
    if url:
        tags[TAG + "ci.run_url"] = url
    for key in ("train", "golden"):
        h = dataset_hash(cfg, key)
        tags[f"{TAG}data.{key}.path"] = getattr(cfg.data, key)
        tags[f"{TAG}data.{key}.hash"] = f"{h['algo']}:{h['value']}"
    vpath = out_dir / "validation.json"
    if validation is not None and vpath.is_file():
        tags[TAG + "validation.digest"] = "sha256:" + sha256_file(vpath)
        tags[TAG + "validation.success"] = str(bool(validation.get("success"))).lower()
    else:
        tags[TAG + "validation.success"] = "skipped"
    tags[TAG + "config.digest"] = "sha256:" + sha256_file(cfg.path)
    return tags


def mlflow_tags(cfg: Config, tags: dict[str, str]) -> dict[str, str]:
    """MLflow's own source tags (its UI and searches read these, not mlci.*) and a run name
    that says what the run is: `<name>-<short sha>[-dirty]-<trigger>`."""
    import os

    from mlci.data.dvc import git_root

    commit, repo = tags[TAG + "git.commit"], tags[TAG + "git.repo"]
    dirty = "-dirty" if tags.get(TAG + "git.dirty") == "true" else ""
    root = git_root(cfg.path.parent) or cfg.path.parent
    out = {"mlflow.runName": f"{cfg.name}-{commit[:7] if commit != 'unknown' else 'nogit'}"
                             f"{dirty}-{tags[TAG + 'trigger']}",
           "mlflow.source.name": Path(os.path.relpath(cfg.path, root)).as_posix(),
           "mlflow.source.type": "JOB" if os.environ.get("CI") else "LOCAL"}
    if commit != "unknown":
        out["mlflow.source.git.commit"] = commit
    if tags[TAG + "git.branch"] != "unknown":
        out["mlflow.source.git.branch"] = tags[TAG + "git.branch"]
    if repo != "unknown":
        from mlci.gha import env

        server = env.github("SERVER_URL")
        out["mlflow.source.git.repoURL"] = f"{server}/{repo}" if server and \
            env.github("REPOSITORY") == repo else repo
    return out


def train(cfg: Config, out_dir: Path, *, skip_validation: bool = False,
          register: bool = True) -> dict[str, Any]:
    import pandas as pd

    t0 = time.perf_counter()
    validation = check_validation(cfg, out_dir, skip_validation)
    images = cfg.data.image_size is not None
    x: Any
    if images:
        from mlci.data import imageset

        x, y, paths = imageset.load_xy(cfg, "train")
        df = pd.DataFrame({imageset.PATH: paths, cfg.data.target: y})
        imageset.load_xy(cfg, "golden")  # fail now if golden is unusable
    else:
        df = read_input(cfg, "train")
        x, y = split_xy(df, cfg, cfg.data.train)
        gx, _ = load_xy(cfg, "golden")  # fail now, before anything is logged, if golden
        absent = [c for c in x.columns if c not in gx.columns]  # is unusable
        if absent:
            raise MlciError(f"{cfg.data.golden}: lacks feature column {absent[0]!r} that "
                            f"{cfg.data.train} has")
    t_fit = time.perf_counter()
    est, x, plan = build_and_fit(cfg, x, y)
    from mlci.registry import models

    scorer = models.scorer(est)
    fit_seconds = time.perf_counter() - t_fit

    from mlci.stats.metrics import point_metrics

    try:
        train_metrics = point_metrics(cfg.task, y, scorer, x)
    except Exception as exc:  # noqa: BLE001 - e.g. a regressor scored as a classifier
        raise MlciError(f"the fitted model cannot be scored as a {cfg.task} model: "
                        f"{_first_line(exc)} (set task: in mlci.yaml)") from None
    tags = lineage_tags(cfg, validation, out_dir)

    from mlci.registry import runs, tracking
    from mlci.registry.trust import MODEL_DIGEST

    client = tracking.client(cfg, out_dir)
    uri = tracking.tracking_uri(cfg, out_dir)
    exp_id = tracking.experiment_id(client, cfg.name, out_dir, uri)
    t_log = time.perf_counter()
    with runs.training_run(exp_id, {**tags, **mlflow_tags(cfg, tags)}) as run:
        run_id = run.run_id
        params = _flat_params(est, cfg.model.resolved_params)
        run.params(params)
        # the gate reads validation evidence from params, which MLflow never lets anyone edit
        run.params({k: v for k, v in tags.items()
                    if k in (TAG + "validation.success", TAG + "validation.digest")})
        run.metrics({f"train_{k}": v for k, v in train_metrics.items() if v is not None})
        dataset_digest = run.dataset(df, str(cfg.data.train), cfg.data.target,
                                     tags[f"{TAG}data.train.hash"].split(":", 1)[1][:32])
        if validation is not None:
            run.artifact(str(out_dir / "validation.json"))
        # reference statistics for monitoring, so it never needs the raw training data
        from mlci.stats import reference

        if not images:  # (drift of images is not monitored: no pixel statistics kept)
            ref = reference.build(x, scorer.predict(x))
            atomic_write_json(out_dir / "reference.json", ref)
            run.artifact(str(out_dir / "reference.json"))
        features = ["image"] if images else [str(c) for c in x.columns]
        preprocessing = {"mode": ("images" if images else cfg.preprocess)
                         if cfg.model.estimator else "entrypoint",
                         "features": features,
                         **({"image": dict(zip(("height", "width", "channels"),
                                               cfg.data.image_spec.shape, strict=True))}
                            if cfg.data.image_spec else {}),
                         **(plan.to_json() if plan else {})}
        atomic_write_json(out_dir / "preprocessing.json", preprocessing)
        run.artifact(str(out_dir / "preprocessing.json"))
        info = _log_model(est, x)
        # what every later load checks before unpickling (registry.trust.check_model)
        run.params({MODEL_DIGEST: models.artifact_digest(info.model_uri)})
        run.tag(TAG + "dataset.digest", dataset_digest)
    version_tags = dict(tags)
    version_tags[TAG + "dataset.digest"] = dataset_digest
    if register:
        mv_version = _register(client, cfg, info, run_id, version_tags)
        model_uri = f"models:/{cfg.name}/{mv_version}"
    else:  # a pull request against a shared registry: read the champion, write no version
        mv_version, model_uri = None, info.model_uri
    record = {
        "schema": SCHEMA,
        "run_id": run_id,
        "experiment_id": exp_id,
        "tracking_uri": uri,
        "model_name": cfg.name,
        "model_version": mv_version,
        "model_uri": model_uri,
        "artifact_uri": info.model_uri,
        "task": cfg.task,
        "features": features,
        "preprocessing": preprocessing,
        "params": params,
        "params_refs": cfg.model.params_refs,
        "train_metrics": train_metrics,
        "tags": version_tags,
        "seconds": {"fit": round(fit_seconds, 3), "log": round(time.perf_counter() - t_log, 3),
                    "total": round(time.perf_counter() - t0, 3)},
    }
    RunRecord.of(record, "run.json")  # the shape evaluate, the gate and the report read
    atomic_write_json(out_dir / "run.json", record)
    return record


def _log_model(est: Any, x):
    """Log the whole fitted pipeline; the preprocessing module travels inside the pickle so
    the model loads wherever scikit-learn does, mlci installed or not. An entrypoint may
    return any `mlflow.pyfunc.PythonModel` instead: it is logged (and later evaluated)
    through the pyfunc flavour."""
    from mlci.data import preprocess
    from mlci.registry import models

    return models.log(est, x, _pip_requirements(est), pickle_by_value=(preprocess,))


def _register(client, cfg: Config, info, run_id: str, version_tags: dict[str, str]) -> str:
    """Register only after the run finished cleanly: a failed run leaves no version behind."""
    from mlci.registry import runs
    from mlci.registry.aliases import set_candidate

    version = runs.register(client, cfg.name, info, run_id, version_tags)
    set_candidate(client, cfg.name, version)
    return version
