"""One meaning per flag and environment variable across every command.

Walks the real click tree (every command module, lazily registered) and checks:
- every option can come from the environment, as MLCI_<LONG_FLAG> (extra names only after it);
- one flag has one type and one environment variable in every command that has it;
- one environment variable belongs to one flag;
- durations are parsed the same way everywhere.
"""

from __future__ import annotations

from collections import defaultdict

import click
import pytest

from mlci.cli import COMMANDS, cli
from mlci.commands._options import Duration
from mlci.durations import parse_duration

# Flags whose variable is a standard one of GitHub Actions' or MLflow's, read after MLCI_'s.
STANDARD_FALLBACKS = {"MLCI_SHA": "GITHUB_SHA", "MLCI_REPO": "GITHUB_REPOSITORY",
                      "MLCI_API_URL": "GITHUB_API_URL"}
# Options that are deliberately not settable from the environment, with the reason.
NO_ENV = {"--help": "click's own"}


def _walk(cmd: click.Command, path: str):
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            yield from _walk(sub, f"{path} {name}")


def _options() -> list[tuple[str, str, click.Option]]:
    rows = []
    for path, cmd in _walk(cli, "mlci"):
        if cmd is cli:  # the root group has only click's own --help and --version
            continue
        for p in cmd.params:
            if isinstance(p, click.Option):
                long = max((o for o in p.opts if o.startswith("--")), key=len)
                rows.append((path, long, p))
    return rows


def _envvars(p: click.Option) -> list[str]:
    if p.envvar is None:
        return []
    return [p.envvar] if isinstance(p.envvar, str) else list(p.envvar)


def test_every_command_is_walked() -> None:
    walked = {path.split()[1] for path, _ in _walk(cli, "mlci") if len(path.split()) > 1}
    assert walked == set(COMMANDS)


def test_every_option_reads_its_own_variable() -> None:
    wrong = []
    for path, long, p in _options():
        if long in NO_ENV or p.hidden:
            continue
        envs = _envvars(p)
        want = "MLCI_" + long[2:].replace("-", "_").upper()
        if p.is_flag and p.secondary_opts:  # --push/--no-push: named after the positive form
            want = "MLCI_" + p.opts[0][2:].replace("-", "_").upper()
        if not envs or envs[0] != want:
            wrong.append(f"{path} {long}: env {envs or 'none'}, expected {want} first")
    assert not wrong, "\n".join(wrong)


def test_one_flag_one_type_and_variable() -> None:
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for _path, long, p in _options():
        if long == "--help":
            continue
        kind = type(p.type).__name__ if not p.is_flag else "flag"
        seen[long].add((kind, _envvars(p)[0] if _envvars(p) else ""))
    clashes = {k: v for k, v in seen.items() if len(v) > 1}
    assert not clashes, clashes


def test_one_variable_one_flag() -> None:
    owner: dict[str, set[str]] = defaultdict(set)
    for _path, long, p in _options():
        for env in _envvars(p):
            if env not in STANDARD_FALLBACKS.values():
                owner[env].add(long)
    shared = {k: v for k, v in owner.items() if len(v) > 1}
    assert not shared, shared


def test_time_options_are_durations() -> None:
    """Every option about time takes `30s`/`1m` alike (MLCI_COMMENT_MAX_WAIT=1m crashed)."""
    timed = ("--bake", "--deadline", "--poll", "--since", "--max-wait")
    for path, long, p in _options():
        if long in timed:
            assert isinstance(p.type, Duration), f"{path} {long} is {p.type!r}"


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("1.5", 1.5), ("30s", 30.0), ("1m", 60.0), ("1m30s", 90.0), ("2h", 7200.0),
    ("250ms", 0.25), (" 1M ", 60.0), (5, 5.0), ("1d", 86400.0), ("1h30m", 5400.0),
    ("1.5h", 5400.0), ("0", 0.0),
])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "1x", "-1s", "-5", "1m-", "1m30", "nan", "inf",
                                  "1 x", "s1", "soon"])
def test_parse_duration_refuses(text) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_duration_error_is_a_usage_error(tmp_path) -> None:
    from conftest import run_mlci

    r = run_mlci("comment", "--max-wait", "soon", cwd=tmp_path)
    assert r.code == 2
    assert "'soon' is not a duration" in r.err
    assert "Traceback" not in r.err
