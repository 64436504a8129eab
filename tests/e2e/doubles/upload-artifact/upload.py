"""upload-artifact double: copy the matched files under the least common ancestor of the paths
to $MLCI_E2E_ARTIFACTS/<name>/ (the layout the real action gives the artifact), log the upload
to $MLCI_E2E_LOG, refuse a name used twice in the run, and honour if-no-files-found and
include-hidden-files like actions/upload-artifact v4."""

import glob
import os
import shutil
import sys
from pathlib import Path

name = os.environ["DOUBLE_NAME"]
patterns = [p.strip() for p in os.environ["DOUBLE_PATH"].splitlines() if p.strip()]
hidden = os.environ.get("DOUBLE_HIDDEN") == "true"
workspace = Path(os.environ.get("GITHUB_WORKSPACE", ".")).resolve()

found: list[Path] = []
roots: list[Path] = []
for pattern in patterns:
    for match in sorted(glob.glob(pattern, recursive=True)):
        p = Path(match).resolve()
        roots.append(p if p.is_dir() else p.parent)
        found += [f for f in sorted(p.rglob("*")) if f.is_file()] if p.is_dir() else [p]


def visible(f: Path) -> bool:
    try:
        parts = f.relative_to(workspace).parts
    except ValueError:
        parts = f.parts
    return hidden or not any(x.startswith(".") for x in parts)


files = [f for f in found if visible(f)]
if not files:
    how = os.environ.get("DOUBLE_IF_NO_FILES", "warn")
    message = f"No files were found with the provided path: {' '.join(patterns)}"
    if how == "error":
        print(f"::error::{message}", file=sys.stderr)
        sys.exit(1)
    if how == "warn":
        print(f"::warning::{message}. No artifacts will be uploaded.")
    sys.exit(0)
root = Path(os.path.commonpath([str(r) for r in roots]))
store = Path(os.environ["MLCI_E2E_ARTIFACTS"]) / name
if store.exists():
    print(f"::error::an artifact named {name} already exists in this run", file=sys.stderr)
    sys.exit(1)
for f in files:
    dest = store / f.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(f, dest)
if os.environ.get("MLCI_E2E_LOG"):
    with open(os.environ["MLCI_E2E_LOG"], "a", encoding="utf-8") as log:
        log.write(f"upload-artifact name={name} files={len(files)} "
                  f"retention={os.environ.get('DOUBLE_RETENTION')}\n")
with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
    out.write(f"artifact-id={abs(hash(name)) % 10**6}\n")
