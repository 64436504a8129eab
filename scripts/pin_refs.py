"""Pin the reusable workflows' own actions to a commit, for a release.

On the default branch the reusable workflows call this repository's actions at the moving
release tag (`org/mlci-actions/setup@v1`): a commit cannot name its own SHA. A release makes the
references immutable in two commits:

    A  the code to release (actions, scripts, src)
    B  `python scripts/pin_refs.py --repo <owner>/<name> --sha <A> --version vX.Y.Z`, which rewrites
       every `org/mlci-actions/<action>@v1` in .github/workflows/*.yml (and examples/) to
       `<owner>/<name>/<action>@<A> # vX.Y.Z`

and tags B as vX.Y.Z (the `v1` tag then moves to B). A caller that pins the workflow by B's SHA
(`uses: <owner>/<name>/.github/workflows/code.yml@<B>`) runs actions at A, which B cannot
change: every reference is resolvable from the caller's pinned ref. `--check` exits 1 when a
file still holds an unpinned reference of this repository.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "org/mlci-actions"
REF = re.compile(r"(uses:\s*)" + re.escape(PLACEHOLDER) + r"((?:/[\w./-]+)?)@v1\b[^\n]*")
SHA = re.compile(r"^[0-9a-f]{40}$")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def files(root: Path) -> list[Path]:
    return sorted([*(root / ".github" / "workflows").glob("*.yml"),
                   *(root / "examples" / "workflows").glob("*.yml")])


def pin(text: str, repo: str, sha: str, version: str) -> str:
    return REF.sub(lambda m: f"{m.group(1)}{repo}{m.group(2)}@{sha} # {version}", text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", help="owner/name the release is published under")
    ap.add_argument("--sha", help="full commit SHA of the release's code (commit A)")
    ap.add_argument("--version", help="release tag, vX.Y.Z (kept as the pin's comment)")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout to rewrite")
    ap.add_argument("--check", action="store_true", help="exit 1 when a reference is unpinned")
    args = ap.parse_args(argv)
    if args.check:
        left = [f"{p.relative_to(args.root)}: {m.group(0).strip()}" for p in files(args.root)
                for m in REF.finditer(p.read_text(encoding="utf-8"))]
        print("\n".join(left) or "every reference is pinned", file=sys.stderr if left else
              sys.stdout)
        return 1 if left else 0
    bad = [name for name, value, rx in (("--repo", args.repo, REPO), ("--sha", args.sha, SHA),
                                         ("--version", args.version, VERSION))
           if not value or not rx.match(value)]
    if bad:
        print(f"pin_refs.py: error: give a valid {', '.join(bad)} (owner/name, a 40-hex SHA, "
              "vX.Y.Z)", file=sys.stderr)
        return 2
    for p in files(args.root):
        text = p.read_text(encoding="utf-8")
        new = pin(text, args.repo, args.sha, args.version)
        if new != text:
            p.write_text(new, encoding="utf-8")
            print(f"pinned {p.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
