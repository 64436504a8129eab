"""Training runs: what `mlci train` writes to MLflow, through one small facade."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    from mlflow import MlflowClient



@dataclass
class TrainingRun:
    run_id: str

    def params(self, values: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(values)

    def metrics(self, values: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics(values)

    def artifact(self, path: str, folder: str = "mlci") -> None:
        import mlflow

        mlflow.log_artifact(path, artifact_path=folder)

    def tag(self, key: str, value: str) -> None:
        import mlflow

        mlflow.set_tag(key, value)

    def dataset(self, df: pd.DataFrame, source: str, target: str, digest: str) -> str:
        """Log the training input; its digest is the full-content data hash (MLflow's own
        samples rows). The schema comes from a sample: MLflow infers it row by row in Python
        (30 s on a million rows)."""
        import mlflow
        from mlflow.data.pandas_dataset import from_pandas

        ds = from_pandas(df, source=source, name="train", targets=target, digest=digest)
        if len(df) > 10_000:
            sample = from_pandas(df.head(1000), source=source, name="train", targets=target,
                                 digest=digest)
            ds.__dict__["schema"] = sample.schema  # fills the cached_property
        mlflow.log_input(ds, context="training")
        return str(ds.digest)


@contextlib.contextmanager
def training_run(exp_id: str, tags: dict[str, str]) -> Iterator[TrainingRun]:
    """An MLflow run, FINISHED on success. MLflow prints "View run … at" to stdout when a run
    against a server ends: stdout is kept for mlci's own (JSON) output."""
    import mlflow

    with contextlib.redirect_stdout(sys.stderr), \
            mlflow.start_run(experiment_id=exp_id, tags=tags) as run:
        yield TrainingRun(run.info.run_id)


def register(client: MlflowClient, name: str, info: Any, run_id: str,
             tags: dict[str, str]) -> str:
    """Create the registered model if needed and a version of the run's logged model."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    # a tracking server requires the logged model's id with a models:/m-... source
    mv = client.create_model_version(name, source=info.model_uri, run_id=run_id, tags=tags,
                                     model_id=info.model_id)
    return str(mv.version)


def trained_on(client: MlflowClient, name: str, since_ms: int, train_hash: str
               ) -> list[tuple[str, str]]:
    """(version, run id) of the versions created since `since_ms` whose run trained on the
    file with `train_hash` (what a killed data update leaves behind)."""
    out = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        if int(mv.creation_timestamp or 0) < since_ms or not mv.run_id:
            continue
        if client.get_run(mv.run_id).data.tags.get("mlci.data.train.hash") == train_hash:
            out.append((str(mv.version), mv.run_id))
    return out


def unregister(client: MlflowClient, name: str, made: list[tuple[str, str]], *,
               previous_candidate: str | None, model_was_new: bool) -> None:
    """Undo registrations: each (version, run), and `candidate` back where it was."""
    from mlflow.exceptions import MlflowException

    from mlci.registry.aliases import set_alias

    for version, run_id in made:
        try:
            client.delete_model_version(name, version)
        except MlflowException:
            pass
        client.delete_run(run_id)
    if previous_candidate:
        set_alias(client, name, "candidate", previous_candidate)
    elif model_was_new and not client.search_model_versions(f"name = '{name}'",
                                                            max_results=1):
        # only an empty model this update created; never one holding other versions
        client.delete_registered_model(name)


def adopt(client: MlflowClient, name: str, version: str, run_id: str, *, model_digest: str,
          validation_success: bool, validation_file: Path) -> None:
    """Record on a foreign version's run what mlci's own training records: the digest of the
    model's files and the validation verdict (params: MLflow never lets them change)."""
    from mlci.io import sha256_file
    from mlci.registry.trust import MODEL_DIGEST

    success = "true" if validation_success else "false"
    values = {MODEL_DIGEST: model_digest, "mlci.validation.success": success}
    if validation_file.is_file():
        values["mlci.validation.digest"] = "sha256:" + sha256_file(validation_file)
        client.log_artifact(run_id, str(validation_file), artifact_path="mlci")
    existing = client.get_run(run_id).data.params
    clash = [k for k, v in values.items() if k in existing and existing[k] != v]
    if clash:
        from mlci.errors import MlciError

        raise MlciError(f"{name}/{version}: its run already records {clash[0]} with another "
                        "value; not adopting it")
    for k, v in values.items():
        if k not in existing:
            client.log_param(run_id, k, v)
    client.set_model_version_tag(name, version, "mlci.validation.success", success)
