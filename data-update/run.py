"""Glue of the data-update action: add the extras the data trigger needs (DVC, SciPy for the
drift statistics) to the venv, fetch the DVC-tracked data a fresh checkout lacks, run
`mlci data update --json`, and write the step outputs.

It reuses `scripts/action.py` (inputs as `MLCI_*` variables, the CLI started from the venv's
interpreter, outputs through `$GITHUB_OUTPUT`). Exit status is mlci's own: 0 updated, 1 refused,
2 input error.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import action  # noqa: E402

EXTRAS = {"dvc": "dvc", "scipy": "scipy"}  # module -> package (versions from constraints.txt)


def install_extras() -> int:
    """pip install the extras missing from the venv; a cached venv already holds them."""
    missing = [pkg for mod, pkg in EXTRAS.items() if importlib.util.find_spec(mod) is None]
    if not missing:
        return 0
    print(f"installing {' '.join(missing)} into the mlci venv", file=sys.stderr)
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-c",
                        str(ROOT / "scripts" / "constraints.txt"), *missing],
                       stdout=sys.stderr)
    if p.returncode != 0:
        print(f"mlci: error: could not install {' '.join(missing)}", file=sys.stderr)
        return 2
    return 0


def pull_missing_data() -> int:
    """A checkout holds the `.dvc` files, not the data: `dvc pull` the train and golden sets.

    The config is read as plain YAML here: its loader insists that the data files exist."""
    import yaml

    from mlci.data import dvc
    from mlci.errors import MlciError

    config = Path(action.env("CONFIG", "mlci.yaml"))
    try:
        data = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return 0  # `mlci data update` reports a broken config in its own words
    wanted = [config.parent / str(data[k]) for k in ("train", "golden")
              if isinstance(data, dict) and data.get(k)]
    targets = [str(p.with_name(p.name + ".dvc")) for p in wanted
               if not p.exists() and p.with_name(p.name + ".dvc").is_file()]
    if not targets:
        return 0
    print(f"dvc pull {' '.join(targets)}", file=sys.stderr)
    try:
        dvc.run(["pull", *targets], cwd=config.parent.resolve())
    except MlciError as exc:
        print(f"mlci: error: {exc.format_message()}", file=sys.stderr)
        return 2
    return 0


def refuse_input(message: str) -> int:
    print(f"mlci: error: {message}", file=sys.stderr)
    action.set_outputs({"status": "error", "model-version": "", "drifted-columns": [],
                        "report-path": ""})
    return 2


def main() -> int:
    if not Path(action.env("CONFIG", "mlci.yaml")).is_file():
        return refuse_input(f"config not found: {action.env('CONFIG', 'mlci.yaml')} "
                            f"(in {Path.cwd()}); set the `config` or `working-directory` input")
    if not action.env("SOURCE"):
        return refuse_input("no source: set the `source` input (a workflow_dispatch input, the "
                            "repository_dispatch payload's `source`, or a repository variable)")
    code = install_extras() or pull_missing_data()
    data = None
    if code == 0:
        push = "--push" if action.truthy("PUSH", "true") else "--no-push"
        code, data = action.mlci("data", "update", "--json", push)
    data = data or {}
    report = data.get("report") or ""
    # a refusal's JSON carries no drift; the record mlci wrote keeps it (data_update.json)
    drifted = data.get("drifted_columns") or []
    if code == 1 and not drifted:
        drifted = (action.read("data_update.json").get("drift") or {}).get("drifted_columns") or []
    action.set_outputs({
        "status": data.get("status") or "error",
        "model-version": str(data.get("model_version") or ""),
        "drifted-columns": drifted,
        "report-path": str(Path(report).resolve()) if report else "",
    })
    return code


if __name__ == "__main__":
    sys.exit(main())
