"""`mlci init`: a starter expectation suite (and mlci.yaml) from reference data."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import config_option
from mlci.errors import MlciError


@click.command("init")
@config_option
@click.option("--profile", "profile_path", default=None, envvar="MLCI_PROFILE",
              type=click.Path(path_type=Path),
              help="Reference data (CSV/Parquet, or a folder of images with one sub-folder "
                   "per class) to profile into an expectation suite.")
@click.option("--target", default=None, envvar="MLCI_TARGET",
              help="Label column, written as data.target (env MLCI_TARGET); an image "
                   "folder's labels are its sub-folder names.")
@click.option("--image-size", default=None, envvar="MLCI_IMAGE_SIZE",
              help="Image folder: HEIGHTxWIDTH (or one side) the model takes (default: the "
                   "most common size) (env MLCI_IMAGE_SIZE).")
@click.option("--channels", default=None, type=click.Choice(["1", "3"]),
              envvar="MLCI_CHANNELS",
              help="Image folder: 1 grayscale or 3 RGB (default: from the images) "
                   "(env MLCI_CHANNELS).")
@click.option("--suite", "suite_path", default="expectations/train.json", show_default=True,
              envvar="MLCI_SUITE", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the suite.")
@click.option("--name", default=None, envvar="MLCI_NAME",
              help="Model name for a new mlci.yaml (default: the folder's name).")
@click.option("--golden", default=None, envvar="MLCI_GOLDEN",
              help="Golden data path for a new mlci.yaml.")
@click.option("--golden-share", default=0.2, show_default=True, type=click.FloatRange(0.05, 0.5),
              envvar="MLCI_GOLDEN_SHARE",
              help="Without --golden: share of the rows held out as the golden set "
                   "(env MLCI_GOLDEN_SHARE).")
@click.option("--seed", default=0, show_default=True, type=int, envvar="MLCI_SEED",
              help="Seed of the stratified train/golden split (env MLCI_SEED).")
@click.option("--sep", default=",", show_default=True, envvar="MLCI_SEP",
              help="CSV field separator (env MLCI_SEP).")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              envvar="MLCI_TASK",
              help="The task, when the target's values do not say it (default: inferred "
                   "from the target; the reason is printed) (env MLCI_TASK).")
@click.option("--force", is_flag=True, envvar="MLCI_FORCE",
              help="Overwrite an existing suite or split files, start over from other data, or "
                   "rewrite mlci's stages in dvc.yaml (env MLCI_FORCE).")
@click.option("--dvc-pipeline", is_flag=True, envvar="MLCI_DVC_PIPELINE",
              help="Write dvc.yaml with validate/train/evaluate stages for `dvc repro`, or add "
                   "them to the project's dvc.yaml, leaving its stages untouched.")
def command(config_path: Path, profile_path: Path | None, target: str | None, suite_path: Path,
            name: str | None, golden: str | None, golden_share: float, seed: int, sep: str,
            task: str | None, force: bool, dvc_pipeline: bool, image_size: str | None,
            channels: str | None) -> None:
    """Profile reference data into a Great Expectations suite; write mlci.yaml if absent.

    Without --golden, a new mlci.yaml gets a seeded (stratified for a classifier) split of the
    data: the golden set is held out, never the training file. A regression target gets a
    regressor and an r2/mae gate. With --dvc-pipeline, also write dvc.yaml so `dvc repro`
    reruns only changed stages.
    """
    if profile_path is None and not dvc_pipeline:
        raise MlciError("give --profile DATA --target COLUMN, or --dvc-pipeline")
    if dvc_pipeline:  # checked before the suite and mlci.yaml are written
        from mlci.data.dvc_pipeline import plan

        plan(config_path.parent / "dvc.yaml", force)
    if profile_path is not None and profile_path.is_dir():
        from mlci.data.image_starter import initialise_images
        from mlci.data.starter import InitRequest

        req = InitRequest(config_path=config_path, data=profile_path, target="label",
                          suite=suite_path, name=name, golden=golden,
                          golden_share=golden_share, seed=seed, force=force)
        for line in initialise_images(req, image_size, int(channels) if channels else None):
            click.echo(line)
    elif profile_path is not None:
        if not target:
            raise MlciError("--profile needs --target COLUMN")
        from mlci.data.starter import InitRequest, initialise

        req = InitRequest(config_path=config_path, data=profile_path, target=target,
                          suite=suite_path, name=name, golden=golden,
                          golden_share=golden_share, seed=seed, sep=sep, force=force,
                          task=task)
        for line in initialise(req):
            click.echo(line)
    if dvc_pipeline:
        _dvc_pipeline(config_path, force)


def _dvc_pipeline(config_path: Path, force: bool) -> None:
    from mlci.config import load_config
    from mlci.data.dvc_pipeline import merge
    from mlci.io import atomic_write_text

    cfg = load_config(config_path)
    dest = cfg.root / "dvc.yaml"
    existed = dest.exists()
    text, names = merge(dest, cfg, force)
    atomic_write_text(dest, text)
    what = f"added stages {', '.join(names)} to" if existed else "wrote"
    click.echo(f"{what} {dest} (run: dvc repro; compare: dvc metrics diff main --md)")
