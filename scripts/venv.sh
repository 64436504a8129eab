# Sourced by demo.sh and test.sh: create the project venv once and install into it.
# Usage: . scripts/venv.sh ['.[extras]' [more pip arguments]]   (sets VENV)
VENV="${MLCI_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -qq -c scripts/constraints.txt -e "${1:-.}" "${@:2}"
