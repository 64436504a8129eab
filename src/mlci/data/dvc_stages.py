"""What an existing DVC pipeline says, read from `dvc.yaml` and `dvc.lock` without running DVC.

mlci meets a project's pipeline in three places: a file it reads may be a stage's output
(pulled by path, never `dvc add`-ed, never overwritten by a data update), and `mlci init
--dvc-pipeline` adds its stages to a `dvc.yaml` that already has others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlci.errors import MlciError

OUT_KEYS = ("outs", "metrics", "plots")


@dataclass
class Stage:
    name: str
    file: Path                       # the dvc.yaml or dvc.lock it was read from
    outs: list[Path] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    cmd: str = ""


def _paths(entries: Any) -> list[str]:
    """`outs:` entries: plain strings, {path: options} mappings, or lock-file {path: ...}."""
    out = []
    for e in entries or []:
        if isinstance(e, str):
            out.append(e)
        elif isinstance(e, dict):
            if "path" in e and isinstance(e["path"], str):
                out.append(e["path"])
            else:
                out += [k for k in e if isinstance(k, str)]
    return out


def read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MlciError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise MlciError(f"{path}: expected a mapping with a `stages:` mapping")
    return data


def stages(folder: Path) -> list[Stage]:
    """The stages of `folder`'s dvc.yaml and dvc.lock (a lock lists what ran: its outputs)."""
    found: dict[str, Stage] = {}
    for name in ("dvc.yaml", "dvc.lock"):
        f = folder / name
        if not f.is_file():
            continue
        for sname, body in read(f).get("stages", {}).items():
            if not isinstance(body, dict):
                continue
            wdir = folder / str(body.get("wdir", "."))
            st = found.setdefault(str(sname), Stage(str(sname), f))
            for key in OUT_KEYS:
                for p in _paths(body.get(key)):
                    q = (wdir / p).resolve()
                    if q not in st.outs:
                        st.outs.append(q)
            st.deps += [d for d in _paths(body.get("deps")) if d not in st.deps]
            if isinstance(body.get("cmd"), str):
                st.cmd = body["cmd"]
    return list(found.values())


def producer(path: Path, start: Path) -> Stage | None:
    """The stage whose output `path` is (itself, or a folder holding it), searching the
    pipelines from `path`'s folder up to the DVC repository root."""
    from mlci.data.dvc import repo_root

    target = path.resolve()
    top = repo_root(start) or start.resolve()
    for folder in [target.parent, *target.parent.parents]:
        for st in stages(folder):
            if any(target == o or o in target.parents for o in st.outs):
                return st
        if folder == top:
            break
    return None
