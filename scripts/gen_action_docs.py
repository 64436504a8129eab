"""Generate the action docs from the action.yml files.

Writes `<action>/README.md` (usage, inputs, outputs) for every action folder, docs/actions.md
(every action's inputs and outputs on one page, the root action's only home), and the short
table between `<!-- actions:start -->` and `<!-- actions:end -->` in README.md (one row per
action, linking to its README).

    python scripts/gen_action_docs.py           # rewrite the docs
    python scripts/gen_action_docs.py --check   # exit 1 when a doc differs from the action.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OWNER = "org/mlci-actions"
ORDER = ["setup", "validate", "train", "evaluate", "report", "promote", "rollback",
         "data-update", "canary", "monitor"]
START, END = "<!-- actions:start -->", "<!-- actions:end -->"

USAGE = {
    "": "- uses: org/mlci-actions@v1\n  with:\n    github-token: ${{ secrets.GITHUB_TOKEN }}",
    "setup": "- id: setup\n  uses: org/mlci-actions/setup@v1\n- run: mlci --version",
    "validate": "- uses: org/mlci-actions/validate@v1",
    "train": "- id: train\n  uses: org/mlci-actions/train@v1",
    "evaluate": "- id: evaluate\n  uses: org/mlci-actions/evaluate@v1",
    "report": "- if: ${{ !cancelled() }}\n  uses: org/mlci-actions/report@v1\n  with:\n"
              "    github-token: ${{ secrets.GITHUB_TOKEN }}",
    "promote": "- uses: org/mlci-actions/promote@v1\n  with:\n    to: staging\n"
               "    tracking-uri: ${{ secrets.MLFLOW_TRACKING_URI }}",
    "rollback": "- uses: org/mlci-actions/rollback@v1\n  with:\n    reason: error rate doubled\n"
                "    tracking-uri: ${{ secrets.MLFLOW_TRACKING_URI }}",
    "data-update": "- id: data\n  uses: org/mlci-actions/data-update@v1\n  with:\n"
                   "    source: ${{ inputs.source }}\n    mode: append",
    "canary": "- id: canary\n  uses: org/mlci-actions/canary@v1\n  with:\n"
              "    version: ${{ inputs.version }}\n"
              "    tracking-uri: ${{ secrets.MLFLOW_TRACKING_URI }}\n"
              "    gateway: http://127.0.0.1:8000",
    "monitor": "- id: monitor\n  uses: org/mlci-actions/monitor@v1\n  with:\n"
               "    window: serving/predictions.db\n    export: fresh/window.csv\n"
               "    dispatch: 'true'\n"
               "    tracking-uri: ${{ secrets.MLFLOW_TRACKING_URI }}",
}

NOTES = {
    "": "Runs `mlci run` (validate → train → evaluate → report) in one process, each stage a "
        "group of the log, and gives the outputs the stage actions give (validate's `report` "
        "is `validation-report`); a stage that stops on an error still gets the report of "
        "what ran. Posts the report like the `report` action, then fails the step when a "
        "check failed. Add `setup` before it to cache the install.",
    "setup": "Optional: every other action installs `mlci` on first use through the same "
             "script. `setup` adds the cache and, on runners without Python 3.10+, "
             "`actions/setup-python`. After it, `run: mlci ...` works in any later step: a "
             "link to the venv's `mlci` (and nothing else from the venv, so its `python` "
             "does not shadow yours) is added to PATH through `GITHUB_PATH`.",
    "report": "With `poster: cml`, images referenced by the report are uploaded to CML's "
              "**public** image host only when `publish-images: 'true'`; by default they are "
              "not uploaded. With no pull request (a push) the report goes to the job summary "
              "only, unless `target: commit`. A fork's read-only token also falls back to the "
              "job summary, with a warning.",
    "data-update": "The data trigger's step: fetch, schema and duplicate checks, the "
                   "expectation suite, drift against the current training data, `dvc add`, "
                   "train, evaluate, `dvc push`; any failure puts the data, the DVC cache and "
                   "the registry back as they were. Missing DVC-tracked train/golden files are "
                   "pulled first. The reusable `.github/workflows/data.yml` adds the pull "
                   "request (or `auto-promote`); see docs/data-trigger.md.",
    "canary": "Each step is judged with anytime-valid tests on error rate, latency and "
              "labelled-feedback quality (`mlci canary run`). Runs next to the traffic: "
              "on a runner that reaches the `mlci serve` gateway and its "
              "prediction log (`backend: local`), or with `backend: kserve`, which renders a KServe"
              " `InferenceService` with `canaryTrafficPercent` per step, applies it with `kubectl` "
              "when `apply: 'true'` and judges from `metrics-url`. The job fails (exit 1) when the "
              "version is rolled back. The state is kept under `out`, so re-running with an empty "
              "`version` resumes an interrupted rollout. `gateway` and `metrics-url` need the "
              "`serve` extra in the venv. Statistics and audit trail: docs/canary.md.",
    "monitor": "Compares a window of production data with the champion's training reference "
               "(`mlci monitor`); on an alert it exports the labelled window and dispatches "
               "retraining, or (watch) rolls a bad new champion back. Runs where the window "
               "is: on a runner that reads the gateway's prediction log, "
               "or on a CSV/Parquet batch. The reference statistics come from the registry "
               "(stored with the model at training time), so `tracking-uri` must reach the "
               "registry the champion is in. With `dispatch: 'true'` an alert sends "
               "`repository_dispatch` `mlci-retrain` whose payload's `source` is `source-url` "
               "(or the exported file), which the data trigger (`data.yml`) retrains on. The "
               "reusable `.github/workflows/monitor.yml` runs it on a schedule; see "
               "docs/closed-loop.md.",
}


def load(folder: str) -> dict:
    return yaml.safe_load((ROOT / folder / "action.yml").read_text(encoding="utf-8"))


def cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def tables(meta: dict, level: str) -> list[str]:
    lines = [f"{level} Inputs", "", "| name | default | description |", "|---|---|---|"]
    for name, spec in (meta.get("inputs") or {}).items():
        default = spec.get("default", "")
        shown = f"`{default}`" if default != "" else ("*required*" if spec.get("required")
                                                      else "")
        lines.append(f"| `{name}` | {cell(shown)} | {cell(spec['description'])} |")
    lines += ["", f"{level} Outputs", "", "| name | description |", "|---|---|"]
    for name, spec in (meta.get("outputs") or {}).items():
        lines.append(f"| `{name}` | {cell(spec['description'])} |")
    return lines


def uses(folder: str) -> str:
    return f"{OWNER}/{folder}@v1" if folder else f"{OWNER}@v1"


def action_readme(folder: str) -> str:
    meta = load(folder)
    lines = [f"# `{uses(folder)}`", "", "<!-- generated by scripts/gen_action_docs.py -->", "",
             cell(meta["description"]), ""]
    if folder in NOTES:
        lines += [NOTES[folder], ""]
    lines += ["## Usage", "", "```yaml", USAGE[folder], "```", ""]
    lines += tables(meta, "##")
    return "\n".join(lines) + "\n"


# what each action's row in the README's table names (the outputs a newcomer reaches for)
KEY_OUTPUTS = {"": ["verdict", "comment-url"], "setup": ["python"],
               "validate": ["passed", "report"], "train": ["run-id", "model-uri"],
               "evaluate": ["verdict", "metrics"], "report": ["report-path", "comment-url"],
               "promote": ["version", "alias"], "rollback": ["version"],
               "data-update": ["status", "model-version"], "canary": ["decision"],
               "monitor": ["drift", "dispatched"]}


def link(folder: str, base: str) -> str:
    return f"{base}{folder}/README.md" if folder else f"{base}docs/actions.md#{anchor('')}"


def anchor(folder: str) -> str:
    """GitHub's heading anchor of `### `org/mlci-actions/<folder>@v1``."""
    return uses(folder).replace("/", "").replace("@", "").replace(".", "").lower()


def readme_region() -> str:
    lines = [START, "", "## Actions", "",
             "| action | what it does | key outputs |", "|---|---|---|"]
    for folder in ["", *ORDER]:
        meta = load(folder)
        outs = [o for o in KEY_OUTPUTS[folder] if o in (meta.get("outputs") or {})]
        lines.append(f"| [`{uses(folder)}`]({link(folder, '')}) | {cell(meta['description'])} "
                     f"| {', '.join(f'`{o}`' for o in outs)} |")
    lines += ["", "Every input and output: each action's README, or all of them on one page in "
              "[docs/actions.md](docs/actions.md) (generated from the `action.yml` files by "
              "`scripts/gen_action_docs.py`).", "", END]
    return "\n".join(lines)


def reference() -> str:
    lines = ["# Actions: inputs and outputs", "",
             "<!-- generated by scripts/gen_action_docs.py -->", "",
             "Every action of this repository, generated from its `action.yml`. Each action's "
             "folder holds the same tables with a usage example.", ""]
    for folder in ["", *ORDER]:
        meta = load(folder)
        lines += [f"## `{uses(folder)}`", "", cell(meta["description"]), ""]
        if not folder:
            lines += [NOTES[""], "", "```yaml", USAGE[""], "```", ""]
        else:
            lines += [f"Usage and notes: [{folder}/README.md](../{folder}/README.md).", ""]
        lines += tables(meta, "###")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def expected() -> dict[Path, str]:
    files = {ROOT / f / "README.md": action_readme(f) for f in ORDER}
    files[ROOT / "docs" / "actions.md"] = reference()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    files[ROOT / "README.md"] = head + readme_region() + tail
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail when a doc is out of date")
    args = ap.parse_args(argv)
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python scripts/gen_action_docs.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    for p in stale:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
