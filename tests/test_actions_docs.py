"""The action READMEs, docs/actions.md and the README's table of actions are generated from the
action.yml files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_action_docs_match_the_action_files() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_action_docs.py"), "--check"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_every_input_and_output_is_in_the_reference() -> None:
    import yaml

    region = (ROOT / "docs" / "actions.md").read_text(encoding="utf-8")
    for path in [ROOT / "action.yml", *ROOT.glob("*/action.yml")]:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name in [*meta.get("inputs", {}), *meta.get("outputs", {})]:
            assert f"| `{name}` |" in region, f"{path.parent.name}: {name}"
