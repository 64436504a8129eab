"""Glue of the data-update action: fetch the DVC-tracked data a fresh checkout lacks, run
`mlci data update --json`, and write the step outputs.

It reuses `scripts/action.py` (inputs as `MLCI_*` variables, the CLI started from the venv's
interpreter, outputs through `$GITHUB_OUTPUT`). Exit status is mlci's own: 0 updated, 1 refused,
2 input error.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import action  # noqa: E402


def pull_missing_data() -> int:
    """A checkout holds the `.dvc` files, not the data: `dvc pull` the train and golden sets."""
    from mlci.config import load_config
    from mlci.data import dvc
    from mlci.errors import MlciError

    try:
        cfg = load_config(Path(action.env("CONFIG", "mlci.yaml")))
        wanted = [cfg.resolve(cfg.data.train), cfg.resolve(cfg.data.golden)]
        targets = [str(p.with_name(p.name + ".dvc")) for p in wanted
                   if not p.exists() and p.with_name(p.name + ".dvc").is_file()]
        if targets:
            print(f"dvc pull {' '.join(targets)}", file=sys.stderr)
            dvc.run(["pull", *targets], cwd=cfg.root)
    except MlciError as exc:
        print(f"mlci: error: {exc.format_message()}", file=sys.stderr)
        return 2
    return 0


def main() -> int:
    if not Path(action.env("CONFIG", "mlci.yaml")).is_file():
        print(f"mlci: error: config not found: {action.env('CONFIG', 'mlci.yaml')} "
              f"(in {Path.cwd()}); set the `config` or `working-directory` input",
              file=sys.stderr)
        action.set_outputs({"status": "error", "model-version": "", "drifted-columns": [],
                            "report-path": ""})
        return 2
    code = pull_missing_data()
    data = None
    if code == 0:
        push = "--push" if action.truthy("PUSH", "true") else "--no-push"
        code, data = action.mlci("data", "update", "--json", push)
    data = data or {}
    report = data.get("report") or ""
    action.set_outputs({
        "status": data.get("status") or "error",
        "model-version": str(data.get("model_version") or ""),
        "drifted-columns": data.get("drifted_columns") or [],
        "report-path": str(Path(report).resolve()) if report else "",
    })
    return code


if __name__ == "__main__":
    sys.exit(main())
