"""The `mlci` command line: a click group whose subcommands are imported only when used.

`mlci --help` must stay fast, so nothing here imports MLflow, Great Expectations,
scikit-learn or pandas; each command lives in `mlci.commands.<name>` and is loaded on demand.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

import click

from mlci import __version__
from mlci.errors import EXIT_INTERNAL, EXIT_VERDICT, MlciError, VerdictFailed, redact

# name -> (module, one-line help shown by `mlci --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("mlci.commands.init", "Write a starter config and expectation suite from data."),
    "validate": ("mlci.commands.validate", "Validate training and golden data (GX suite)."),
    "train": ("mlci.commands.train", "Train, log to MLflow, register the candidate."),
    "evaluate": ("mlci.commands.evaluate", "Evaluate on the golden set against the champion."),
    "report": ("mlci.commands.report", "Write the markdown report for a pull request."),
    "run": ("mlci.commands.run", "Run validate, train, evaluate and report in one process."),
    "comment": ("mlci.commands.comment", "Post or update the report as a sticky PR comment."),
    "promote": ("mlci.commands.promote", "Move a registry alias on recorded evidence."),
    "rollback": ("mlci.commands.rollback", "Move champion back to a previous good version."),
    "adopt": ("mlci.commands.adopt", "Bring a version registered outside mlci under the gate."),
    "export": ("mlci.commands.export", "Copy a version's model to a server's storage URI."),
    "history": ("mlci.commands.history", "Print the audit trail of alias moves for a model."),
    "lineage": ("mlci.commands.lineage", "Where a registered model came from."),
    "store": ("mlci.commands.store", "Carry the embedded registry between CI runs."),
    "data": ("mlci.commands.data", "Versioned data: DVC setup and validate-first data updates."),
    "serve": ("mlci.commands.serve", "Serve champion and challenger behind a routing gateway."),
    "canary": ("mlci.commands.canary", "Roll a challenger out in steps; promote or roll back."),
    "monitor": ("mlci.commands.monitor", "Detect drift and decay; trigger retraining."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (mod, _) in COMMANDS.items() if _module_exists(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _module_exists(COMMANDS[cmd_name][0]):
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


COMPLETION = """\b
Shell completion (commands, options, choices):
  bash  eval "$(_MLCI_COMPLETE=bash_source mlci)"   in ~/.bashrc
  zsh   eval "$(_MLCI_COMPLETE=zsh_source mlci)"    in ~/.zshrc
  fish  _MLCI_COMPLETE=fish_source mlci > ~/.config/fish/completions/mlci.fish"""


@click.group(cls=LazyGroup, epilog=COMPLETION)
@click.version_option(__version__, prog_name="mlci")
@click.option("-q", "--quiet", is_flag=True, envvar="MLCI_QUIET",
              help="No progress lines: only results, warnings and errors (env MLCI_QUIET).")
@click.option("-v", "--verbose", count=True, envvar="MLCI_VERBOSE",
              help="-v: log what MLflow, Great Expectations and DVC report (INFO); -vv: debug "
                   "logs and a traceback on an internal error (env MLCI_VERBOSE).")
def cli(quiet: bool, verbose: int) -> None:
    """CI/CD for machine-learning repositories.

    Exit codes: 0 passed, 1 a verdict failed, 2 usage/config/input error, 3 internal error.
    With --json, an error (exit 2 or 3) is a JSON object on stdout as well:
    {"error": {"exit_code": 2, "kind": "usage", "message": "..."}}.
    """
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
    # read where they apply (mlci.progress, registry.tracking.quiet_mlflow), also in subprocesses
    if quiet:
        os.environ["MLCI_PROGRESS"] = "off"
    if verbose:
        os.environ["MLCI_VERBOSE"] = str(verbose)
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if verbose > 1:
        os.environ["MLCI_DEBUG"] = "1"


def _json_mode(argv: list[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    env = os.environ.get("MLCI_JSON", "").strip().lower() in ("1", "true", "yes", "on")
    return "--json" in args or env


def _json_error(exit_code: int, kind: str, message: str) -> None:
    """Under --json a caller parses stdout: an error is an object there, not nothing."""
    click.echo(json.dumps({"error": {"exit_code": exit_code, "kind": kind,
                                     "message": message}}))


def main(argv: list[str] | None = None) -> None:
    """Entry point: map exceptions to exit codes; never print a traceback unless MLCI_DEBUG=1."""
    as_json = _json_mode(argv)
    try:
        rv = cli.main(args=argv, prog_name="mlci", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mlci: aborted", err=True)
        sys.exit(EXIT_INTERNAL)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()  # mlci's own errors in one line; click's usage errors keep their hint
        if as_json:
            _json_error(exc.exit_code, "input" if isinstance(exc, MlciError) else "usage",
                        exc.format_message())
        sys.exit(exc.exit_code)
    except VerdictFailed as exc:
        click.echo(f"mlci: {redact(exc.message)}", err=True)
        sys.exit(EXIT_VERDICT)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, distinct exit code
        if os.environ.get("MLCI_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"internal error: {type(exc).__name__}: {redact(first)}"
        click.echo(f"mlci: {message} (set MLCI_DEBUG=1 for details)", err=True)
        if as_json:
            _json_error(EXIT_INTERNAL, "internal", message)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
