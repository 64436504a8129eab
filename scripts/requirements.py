"""Print the pip arguments for a project's requirements (used by scripts/install.sh).

    python scripts/requirements.py requirements.txt            -> -r /abs/requirements.txt
    python scripts/requirements.py pyproject.toml              -> its [project] dependencies
    python scripts/requirements.py 'pyproject.toml[train,gpu]' -> ... and those extras'

One requirement per line, for `pip install -r`. The project itself is not installed (its
package is imported from the checkout: the repository root and `src/` are on sys.path). Runs
on the venv's interpreter, Python 3.10 or newer, with nothing but the standard library and pip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as fh:
        return tomllib.load(fh)


def requirements(spec: str) -> list[str]:
    m = re.fullmatch(r"(?P<file>[^\[\]]+?)(?:\[(?P<extras>[A-Za-z0-9_.,\s-]*)\])?", spec.strip())
    if not m:
        raise ValueError(f"{spec!r}: use a requirements file or pyproject.toml[extra,...]")
    path = Path(m["file"])
    if not path.is_file():
        raise ValueError(f"{m['file']}: file not found")
    extras = [e.strip() for e in (m["extras"] or "").split(",") if e.strip()]
    if path.name != "pyproject.toml":
        if extras:
            raise ValueError(f"{spec!r}: extras [..] apply to pyproject.toml only")
        return [f"-r {path.resolve()}"]
    project = _toml(path).get("project") or {}
    out = list(project.get("dependencies") or [])
    optional = project.get("optional-dependencies") or {}
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"{path}: no optional-dependencies extra {extra!r} "
                             f"(has: {', '.join(sorted(optional)) or 'none'})")
        out += optional[extra]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("requirements.py: error: give one requirements spec", file=sys.stderr)
        return 2
    try:
        lines = requirements(argv[0])
    except (ValueError, OSError) as exc:
        print(f"install.sh: error: requirements: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a malformed pyproject.toml is one line
        print(f"install.sh: error: requirements: {argv[0]}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
