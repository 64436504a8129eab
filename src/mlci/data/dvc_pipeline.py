"""`dvc.yaml` for the code-trigger stages, so `dvc repro` skips what did not change.

Outputs stay out of the DVC cache (`cache: false`): they are small records that the user
commits where wanted (e.g. `metrics.json`, for `dvc metrics diff <base> --md`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from mlci.config import Config


def render(cfg: Config, out: str = ".mlci") -> str:
    config = os.path.relpath(cfg.path, cfg.root)
    d = cfg.data
    entrypoint_file = []
    if cfg.model.entrypoint and cfg.model.entrypoint.split(":")[0].endswith(".py"):
        entrypoint_file = [cfg.model.entrypoint.split(":")[0]]
    stages = {
        "validate": {
            "cmd": f"mlci validate -c {config} --out {out}",
            "deps": [d.train, d.golden, d.expectations],
            "outs": [{f"{out}/validation.json": {"cache": False}}],
        },
        "train": {
            "cmd": f"mlci train -c {config} --out {out}",
            "deps": [d.train, f"{out}/validation.json", *entrypoint_file],
            "params": [{config: ["model"]}],
            "outs": [{f"{out}/run.json": {"cache": False}}],
        },
        "evaluate": {
            "cmd": f"mlci evaluate -c {config} --out {out}",
            "deps": [d.golden, f"{out}/run.json"],
            "params": [{config: ["gate"]}],
            "metrics": [{f"{out}/metrics.json": {"cache": False}}],
            "plots": [{f"{out}/plots/confusion_matrix.png": {"cache": False}}],
        },
    }
    header = "# Written by `mlci init --dvc-pipeline`: dvc repro runs only the changed stages.\n"
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False)
