"""`mlci init`: a starter expectation suite (and mlci.yaml) from reference data."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import config_option
from mlci.errors import MlciError

CONFIG_TEMPLATE = """\
name: {name}
data:
  train: {train}
  golden: {golden}
  target: {target}
  expectations: {suite}
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: 200, random_state: 0}}
gate:
  min: {{accuracy: 0.90}}
  max_regression: {{accuracy: 0.01}}
"""


@click.command("init")
@config_option
@click.option("--profile", "profile_path", default=None, envvar="MLCI_PROFILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Reference data (CSV/Parquet) to profile into an expectation suite.")
@click.option("--target", default=None, help="Label column.")
@click.option("--suite", "suite_path", default="expectations/train.json", show_default=True,
              envvar="MLCI_SUITE", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the suite.")
@click.option("--name", default=None, envvar="MLCI_NAME",
              help="Model name for a new mlci.yaml (default: the folder's name).")
@click.option("--golden", default=None, envvar="MLCI_GOLDEN",
              help="Golden data path for a new mlci.yaml.")
@click.option("--force", is_flag=True, envvar="MLCI_FORCE",
              help="Overwrite an existing suite or dvc.yaml (env MLCI_FORCE).")
@click.option("--dvc-pipeline", is_flag=True, envvar="MLCI_DVC_PIPELINE",
              help="Write dvc.yaml with validate/train/evaluate stages for `dvc repro`.")
def command(config_path: Path, profile_path: Path | None, target: str | None, suite_path: Path,
            name: str | None, golden: str | None, force: bool, dvc_pipeline: bool) -> None:
    """Profile reference data into a Great Expectations suite; write mlci.yaml if absent.

    With --dvc-pipeline, also write dvc.yaml so `dvc repro` reruns only changed stages.
    """
    if profile_path is None and not dvc_pipeline:
        raise MlciError("give --profile DATA --target COLUMN, or --dvc-pipeline")
    if profile_path is not None:
        if not target:
            raise MlciError("--profile needs --target COLUMN")
        _profile(config_path, profile_path, target, suite_path, name, golden, force)
    if dvc_pipeline:
        _dvc_pipeline(config_path, force)


def _dvc_pipeline(config_path: Path, force: bool) -> None:
    from mlci.config import load_config
    from mlci.data.dvc_pipeline import render
    from mlci.io import atomic_write_text

    cfg = load_config(config_path)
    dest = cfg.root / "dvc.yaml"
    if dest.exists() and not force:
        raise MlciError(f"{dest}: exists; pass --force to overwrite")
    atomic_write_text(dest, render(cfg))
    click.echo(f"wrote {dest} (run: dvc repro; compare: dvc metrics diff main --md)")


def _profile(config_path: Path, profile_path: Path, target: str, suite_path: Path,
             name: str | None, golden: str | None, force: bool) -> None:
    from mlci.data.load import read_table
    from mlci.data.profile import profile_suite
    from mlci.io import atomic_write_json, atomic_write_text

    df = read_table(profile_path)
    if target not in df.columns:
        raise MlciError(f"{profile_path}: target column {target!r} is absent")
    if suite_path.exists() and not force:
        raise MlciError(f"{suite_path}: exists; pass --force to overwrite")
    model_name = name or Path.cwd().name or "model"
    suite = profile_suite(df, target, name=model_name)
    atomic_write_json(suite_path, suite)
    click.echo(f"wrote {suite_path} ({len(suite['expectations'])} expectations)")
    if not config_path.exists():
        text = CONFIG_TEMPLATE.format(name=model_name, train=profile_path,
                                      golden=golden or profile_path, target=target,
                                      suite=suite_path)
        atomic_write_text(config_path, text)
        click.echo(f"wrote {config_path}")
