#!/usr/bin/env bash
# Install `mlci` from this checkout into a venv under $RUNNER_TEMP, once per job.
#
# Every action runs this first; it is a no-op when the venv already holds this exact build
# (same version and same sources), so only the first action of a job pays for the install.
# It prints the venv's interpreter on stdout; progress goes to stderr.
#
#   bash scripts/install.sh                  install (or reuse) and print the venv's python
#   bash scripts/install.sh --version        print the build id used as the cache key
#   bash scripts/install.sh --find-python    print a Python >= 3.10 on PATH, or nothing
#   bash scripts/install.sh --venv           print where the venv goes (the path to cache)
#
# Environment:
#   MLCI_ACTION_VENV       venv location (default: $RUNNER_TEMP/mlci-venv)
#   MLCI_ACTION_PYTHON     interpreter that creates the venv (default: first python3 >= 3.10)
#   MLCI_ACTION_SEED_VENV  for tests and local runs only: an existing venv whose packages satisfy
#                          the dependencies; mlci itself is still built and installed from this
#                          checkout, the dependencies are linked instead of downloaded.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

find_python() {
  local cand
  for cand in "${MLCI_ACTION_PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10 python; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        >/dev/null 2>&1; then
      command -v "$cand"
      return 0
    fi
  done
  return 1
}

build_id() {
  local version digest
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n1)"
  digest="$(
    cd "$root"
    { cat pyproject.toml scripts/constraints.txt
      find src -type f -name '*.py' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-12
  )"
  echo "${version}-${digest}"
}

venv="${MLCI_ACTION_VENV:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlci-venv}"

case "${1:-}" in
  --version) build_id; exit 0 ;;
  --find-python) find_python || true; exit 0 ;;
  --venv) echo "$venv"; exit 0 ;;
  "") ;;
  *) echo "install.sh: error: unknown argument: $1" >&2; exit 2 ;;
esac

want="$(build_id)"
stamp="$venv/.mlci-build"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import mlci.cli' >/dev/null 2>&1; then
  echo "mlci $want already installed in $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

py="$(find_python)" || {
  echo "install.sh: error: no Python >= 3.10 found (use the setup action or actions/setup-python)" >&2
  exit 2
}

start=$SECONDS
rm -rf "$venv"
"$py" -m venv "$venv"
if [ -n "${MLCI_ACTION_SEED_VENV:-}" ]; then
  seed_site="$("$MLCI_ACTION_SEED_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  own_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$seed_site" > "$own_site/_mlci_seed.pth"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$root" >&2
else
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$root/scripts/constraints.txt" "$root" >&2
fi
echo "$want" > "$stamp"
echo "installed mlci $want into $venv in $((SECONDS - start))s" >&2
echo "$venv/bin/python"
