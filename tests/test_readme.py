"""The README is what a newcomer reads first: short, the two commands first, a table of the
actions that links to each one's README, and no link in it or in docs/ that leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted([README, ROOT / "SECURITY.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md")])
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "bash scripts/demo.sh", "bash scripts/test.sh"]
    assert text.index("## Two commands") < text.index("## Quick start")


def test_the_actions_table_links_every_action_readme() -> None:
    text = README.read_text(encoding="utf-8")
    region = text.split("<!-- actions:start -->", 1)[1].split("<!-- actions:end -->", 1)[0]
    rows = [line for line in region.splitlines() if line.startswith("| [`")]
    folders = sorted(p.parent.name for p in ROOT.glob("*/action.yml"))
    assert sorted(re.search(r"\]\((\S+)/README\.md\)", r).group(1) for r in rows
                  if "/README.md)" in r) == folders
    assert len(rows) == len(folders) + 1  # and the root action


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: {target} leads nowhere"
        if frag and dest.suffix == ".md":
            assert frag in anchors(dest), f"{page.relative_to(ROOT)}: no #{frag} in {path}"
