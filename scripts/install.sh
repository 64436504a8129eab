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
#   bash scripts/install.sh --manifest       print the digest of the installed venv (see below)
#
# A venv is reused only when its manifest still matches the one recorded at install time: the
# list of its files with their sizes and modification times, and the content of every `.pth`
# file, `sitecustomize`/`usercustomize` module and `bin/` script (the places that run code at
# interpreter start). A `.pth` planted by a pull request's code in an earlier step, or a cache
# entry altered after it was saved, no longer matches and the venv is rebuilt from scratch.
# The seal this job checks against is kept outside the venv ($RUNNER_TEMP/mlci-seal/, keyed
# by the venv and the job), so rewriting the copy inside the venv (which travels with the
# cache and is used only by the first install of a job) changes nothing; MLCI_ACTION_MANIFEST
# (the setup action's `manifest` output, which no later step can change) pins it outright.
# The venv is left read-only. This guards one job; the boundary that holds against code with
# root on the runner is a separate job (the reusable workflows post the report from one that
# runs no user code).
#
# Environment:
#   MLCI_ACTION_VENV       venv location (default: $RUNNER_TEMP/mlci-venv)
#   MLCI_ACTION_PYTHON     interpreter that creates the venv (default: first python3 >= 3.10)
#   MLCI_ACTION_EXTRAS     space-separated extra packages the action needs (e.g. "dvc scipy"),
#                          installed with the pinned versions of scripts/constraints.txt
#   MLCI_ACTION_MANIFEST   the manifest the venv must have (e.g. the setup action's output)
#   MLCI_ACTION_SEAL_DIR   where this job's seal is kept (default: $RUNNER_TEMP/mlci-seal)
#   MLCI_ACTION_REQUIREMENTS  the project's own dependencies: a requirements file, or
#                          pyproject.toml / pyproject.toml[extra,...] (its [project] dependencies
#                          and those extras), relative to the working directory. Installed
#                          before the seal is written; their digest is part of the build id
#                          (and so of the cache key). Unset in a later step: the venv is reused
#                          with what it holds.
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

# -- the project's requirements (docs/adopting.md) --
req_spec="${MLCI_ACTION_REQUIREMENTS:-}"

requirements_id() {
  [ -n "$req_spec" ] || return 0
  local file="${req_spec%%\[*}"
  if [ ! -f "$file" ]; then
    echo "install.sh: error: requirements: $file: file not found" >&2
    return 2
  fi
  echo "+req-$({ printf '%s\n' "$req_spec"; cat "$file"; } | sha256sum | cut -c1-12)"
}

install_requirements() {
  [ -n "$req_spec" ] || return 0
  local list
  list="$(mktemp)"
  "$venv/bin/python" "$root/scripts/requirements.py" "$req_spec" > "$list" || { rm -f "$list"; exit 2; }
  echo "installing the project's requirements ($req_spec) into the mlci venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$root/scripts/constraints.txt" -r "$list" >&2 || { rm -f "$list"; exit 2; }
  rm -f "$list"
}

venv="${MLCI_ACTION_VENV:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlci-venv}"
stamp="$venv/.mlci-build"
cached="$venv/.mlci-manifest"  # recorded at install; travels with the cache
seal_dir="${MLCI_ACTION_SEAL_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlci-seal}"
job_key="$(printf '%s|%s|%s|%s' "$venv" "${GITHUB_RUN_ID:-}" "${GITHUB_RUN_ATTEMPT:-}" \
  "${GITHUB_JOB:-}" | sha256sum | cut -c1-16)"
sealed="$seal_dir/$job_key"    # this job's seal, outside the venv

manifest() {
  (
    cd "$venv"
    find . -path ./.mlci-manifest -prune -o -path ./.mlci-build -prune -o \
      -type f -printf '%p %s %Ts\n' -o -type l -printf '%p -> %l\n' | LC_ALL=C sort
    find . \( -name '*.pth' -o -name 'sitecustomize.py' -o -name 'usercustomize.py' \
      -o -path './bin/*' \) -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  ) | sha256sum | cut -c1-64
}

case "${1:-}" in
  --version) rid="$(requirements_id)"; echo "$(build_id)$rid"; exit 0 ;;
  --find-python) find_python || true; exit 0 ;;
  --venv) echo "$venv"; exit 0 ;;
  --manifest) [ -f "$stamp" ] && manifest; exit 0 ;;
  "") ;;
  *) echo "install.sh: error: unknown argument: $1" >&2; exit 2 ;;
esac

want="$(build_id)$(requirements_id)"
read -r -a extras <<< "${MLCI_ACTION_EXTRAS:-}"

missing_extras() {
  local pkg
  for pkg in "${extras[@]}"; do
    "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)" "$pkg" \
      || echo "$pkg"
  done
}

# seal: record the manifest in the venv (for the cache) and outside it (for this job), and
# leave the venv read-only
seal() {
  local m
  m="$(manifest)"
  chmod u+w "$venv"
  rm -f "$cached"
  echo "$m" > "$cached"
  mkdir -p "$seal_dir"
  chmod 700 "$seal_dir"
  rm -f "$sealed"
  echo "$m" > "$sealed"
  chmod a-w "$sealed"
  chmod -R a-w "$venv"
}

writable() { [ -d "$venv" ] && chmod -R u+w "$venv"; return 0; }

install_extras() {
  local missing
  mapfile -t missing < <(missing_extras)
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing ${missing[*]} into the mlci venv" >&2
  writable
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$root/scripts/constraints.txt" "${missing[@]}" >&2
  seal
}

# a step that names no requirements reuses a venv built with some (the setup step's)
if [ -z "$req_spec" ] && [ -f "$stamp" ] && [[ "$(cat "$stamp")" == "$want+req-"* ]]; then
  want="$(cat "$stamp")"
fi
# what the venv must match: a pinned manifest, else this job's seal, else (the first
# install of the job, e.g. just restored from the cache) the one recorded at install time
expected="${MLCI_ACTION_MANIFEST:-}"
if [ -z "$expected" ] && [ -f "$sealed" ]; then
  expected="$(cat "$sealed")"
elif [ -z "$expected" ] && [ -f "$cached" ]; then
  expected="$(cat "$cached")"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -n "$expected" ]; then
  if [ "$(manifest)" = "$expected" ] \
      && "$venv/bin/python" -c 'import mlci.cli' >/dev/null 2>&1; then
    [ -f "$sealed" ] || seal
    install_extras
    echo "mlci $want already installed in $venv" >&2
    echo "$venv/bin/python"
    exit 0
  fi
  echo "::warning title=mlci setup::the venv at $venv changed since it was installed; rebuilding it" >&2
fi

py="$(find_python)" || {
  echo "install.sh: error: no Python >= 3.10 found (use the setup action or actions/setup-python)" >&2
  exit 2
}

start=$SECONDS
writable
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
install_extras
install_requirements
# the empty tracking store every new store copies, built now so that no later step writes
# into the sealed venv
"$venv/bin/python" -c 'from mlci.registry.tracking import ensure_template; ensure_template()' >&2
seal
echo "installed mlci $want into $venv in $((SECONDS - start))s" >&2
echo "$venv/bin/python"
