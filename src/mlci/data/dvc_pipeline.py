"""`dvc.yaml` for the code-trigger stages, so `dvc repro` skips what did not change.

Outputs stay out of the DVC cache (`cache: false`): they are small records that the user
commits where wanted (e.g. `metrics.json`, for `dvc metrics diff <base> --md`).

A project that already has a `dvc.yaml` keeps it: mlci's stages are inserted as text at the
end of its `stages:` block (comments, order and every other stage stay byte for byte), named
`mlci_<stage>` where the project already uses the name, and the result is checked to parse
to the old stages plus mlci's before it is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlci.errors import MlciError

if TYPE_CHECKING:
    from mlci.config import Config


OURS = ("validate", "train", "evaluate")
HEADER = "# Written by `mlci init --dvc-pipeline`: dvc repro runs only the changed stages.\n"


def _is_ours(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("cmd", "")).startswith("mlci ")


def plan(path: Path, force: bool) -> dict[str, str]:
    """mlci's stage -> the name it gets in `path`; raises before anything is written when
    the file cannot take them (mlci's stages already there without --force, or no block
    `stages:` mapping to insert into)."""
    if not path.exists():
        return {s: s for s in OURS}
    from mlci.data.dvc_stages import read

    existing = read(path).get("stages") or {}
    names: dict[str, str] = {}
    for s in OURS:
        name = s if s not in existing or _is_ours(existing[s]) else f"mlci_{s}"
        if name in existing and not _is_ours(existing[name]):
            raise MlciError(f"{path}: stages {s!r} and {name!r} are both the project's; "
                            "rename one to add mlci's")
        if name in existing and not force:
            raise MlciError(f"{path}: already has mlci's stage {name!r}; pass --force to "
                            "rewrite mlci's stages (the others are never touched)")
        names[s] = name
    _block(path.read_text(encoding="utf-8").splitlines(keepends=True), path)
    return names


def _block(lines: list[str], path: Path) -> tuple[int, int, int]:
    """(first line of the stages block, the line after it, the indent of its keys)."""
    top = [i for i, line in enumerate(lines) if re.match(r"stages:\s*(#.*)?$", line)]
    if not top:
        raise MlciError(f"{path}: no block `stages:` mapping to add mlci's stages to; add them "
                        "by hand (dvc stage add) or remove the file")
    start = top[0] + 1
    end = next((i for i in range(start, len(lines)) if lines[i][:1] not in (" ", "\t", "\n",
                                                                              "#", "")),
               len(lines))
    keys = [line for line in lines[start:end] if line.strip() and
            not line.lstrip().startswith("#")]
    indent = len(keys[0]) - len(keys[0].lstrip(" ")) if keys else 2
    return start, end, indent


def merge(path: Path, cfg: Config, force: bool, out: str = ".mlci") -> tuple[str, list[str]]:
    """The new text of `path` and mlci's stage names in it."""
    names = plan(path, force)
    ours = stages(cfg, out)
    if not path.exists():
        return HEADER + yaml.safe_dump({"stages": ours}, sort_keys=False), list(names.values())
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start, end, indent = _block(lines, path)
    pad = " " * indent
    # drop mlci's old stages (only with --force, see plan), then insert the new ones
    key = re.compile(rf"{pad}(?P<name>[^\s#:][^:]*):")
    kept, skipping = [], False
    for line in lines[start:end]:
        m = key.match(line)
        if m and not line.startswith(pad + " "):
            skipping = m["name"].strip().strip("'\"") in names.values()
        if not skipping:
            kept.append(line)
    body = yaml.safe_dump({names[s]: ours[s] for s in OURS}, sort_keys=False)
    new = [pad + line if line.strip() else line for line in body.splitlines(keepends=True)]
    result = "".join(lines[:start] + kept + new + lines[end:])
    before = yaml.safe_load(text) or {}
    after = yaml.safe_load(result) or {}
    want = {k: v for k, v in (before.get("stages") or {}).items() if k not in names.values()}
    if {k: v for k, v in after["stages"].items() if k not in names.values()} != want or \
            {k: v for k, v in after.items() if k != "stages"} != \
            {k: v for k, v in before.items() if k != "stages"}:
        raise MlciError(f"{path}: could not add mlci's stages without changing the others "
                        "(unusual layout); add them by hand with dvc stage add")
    return result, list(names.values())


def stages(cfg: Config, out: str = ".mlci") -> dict[str, Any]:
    config = os.path.relpath(cfg.path, cfg.root)
    d = cfg.data
    entrypoint_file = []
    if cfg.model.entrypoint and cfg.model.entrypoint.split(":")[0].endswith(".py"):
        entrypoint_file = [cfg.model.entrypoint.split(":")[0]]
    images: dict[str, list[str]] = {"train": [], "golden": []}
    if d.image_size is not None:  # a table's images are dependencies too
        from mlci.data.imageset import image_folders

        images = {k: image_folders(cfg, k) for k in images}
    both = list(dict.fromkeys(images["train"] + images["golden"]))
    stages = {
        "validate": {
            "cmd": f"mlci validate -c {config} --out {out}",
            "deps": [d.train, d.golden, *both, d.expectations],
            "outs": [{f"{out}/validation.json": {"cache": False}}],
        },
        "train": {
            "cmd": f"mlci train -c {config} --out {out}",
            "deps": [d.train, *images["train"], f"{out}/validation.json", *entrypoint_file],
            "params": [{config: ["model"]}],
            "outs": [{f"{out}/run.json": {"cache": False}}],
        },
        "evaluate": {
            "cmd": f"mlci evaluate -c {config} --out {out}",
            "deps": [d.golden, *images["golden"], f"{out}/run.json"],
            "params": [{config: ["gate"]}],
            "metrics": [{f"{out}/metrics.json": {"cache": False}}],
            "plots": [{f"{out}/plots/confusion_matrix.png": {"cache": False}}],
        },
    }
    return stages
