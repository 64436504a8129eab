"""The CLI surface: fast, lazy help; exit codes; one-line errors."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, run_mlci

HEAVY = ("mlflow", "great_expectations", "sklearn", "pandas")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from mlci.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in out.stdout
    loaded = out.stdout.strip().splitlines()[-1]
    assert loaded == "LOADED=", f"--help imported {loaded}"


def test_help_lists_every_core_command() -> None:
    r = run_mlci("--help", cwd=REPO)
    assert r.code == 0
    for name in ("init", "validate", "train", "evaluate", "report", "run"):
        assert f"  {name} " in r.out


def test_unknown_command_is_usage_error() -> None:
    r = run_mlci("frobnicate", cwd=REPO)
    assert r.code == 2
    assert "Traceback" not in r.err


def test_subcommand_help_does_not_import_mlflow() -> None:
    code = (
        "import sys\n"
        "from mlci.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('mlflow' in sys.modules, 'great_expectations' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_option_from_environment(tmp_path) -> None:
    r = run_mlci("validate", cwd=tmp_path, env={"MLCI_CONFIG": "nowhere.yaml"})
    assert r.code == 2
    assert r.err.strip() == "mlci: error: nowhere.yaml: config file not found"
