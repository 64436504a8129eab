"""`mlci data`: DVC set-up and validate-first data updates (the data trigger)."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.commands._options import BASELINES, Duration, common, json_option
from mlci.progress import step


@click.group("data")
def command() -> None:
    """Versioned data: DVC set-up and validate-first updates."""


@command.command("init")
@common
@click.option("--remote", envvar="MLCI_REMOTE", default=None,
              help="DVC remote URL or folder to make the default (local folder, s3://, gs://...).")
@click.option("--remote-name", envvar="MLCI_REMOTE_NAME", default="storage", show_default=True,
              help="Name of that remote.")
@click.option("--push/--no-push", default=True, envvar="MLCI_PUSH",
              help="Push the tracked data to the remote (env MLCI_PUSH).")
@click.option("--set-default", is_flag=True, envvar="MLCI_SET_DEFAULT",
              help="Make --remote the default even when the repository has a default remote "
                   "(env MLCI_SET_DEFAULT).")
def init_cmd(config_path: Path, out_dir: Path, remote: str | None, remote_name: str,
             push: bool, set_default: bool) -> int:
    """`dvc init` if needed, track the train and golden data, add the remote (the default
    one only when there is none yet, or with --set-default). Files that a stage of the
    project's DVC pipeline produces are already tracked by it and left alone."""
    from mlci.config import load_config
    from mlci.data import dvc
    from mlci.data.dvc_stages import producer

    cfg = load_config(config_path)
    files = [cfg.resolve(cfg.data.train), cfg.resolve(cfg.data.golden)]
    # every check before the first write
    stage_of = {f: producer(f, cfg.root) for f in files}
    default = dvc.check_remote(cfg.root, remote, remote_name, set_default)
    done = dvc.init(cfg.root, remote, remote_name, default=default)
    for f, st in stage_of.items():
        if st is not None:
            done.append(f"{f.relative_to(cfg.root)}: output of DVC stage {st.name!r} "
                        f"({st.file.name}), already tracked by the pipeline")
    files = [f for f in files if stage_of[f] is None]
    if files:
        dvc.add(files, cwd=cfg.root)
        done.append("tracked " + ", ".join(str(f.relative_to(cfg.root)) for f in files))
    if files and push and dvc.has_remote(cfg.root):
        dvc.push(files, cwd=cfg.root)
        done.append("pushed to the default remote")
    ignore = cfg.root / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    if ".mlci/" not in lines:
        ignore.write_text("\n".join([*lines, ".mlci/"]) + "\n")
        done.append("ignored .mlci/ in .gitignore")
    for line in done:
        click.echo(line)
    return 0


@command.command("update")
@common
@json_option
@click.option("--source", required=True, envvar="MLCI_SOURCE",
              help="New data: a path, an http(s) URL, or any fsspec/DVC-supported URL.")
@click.option("--mode", type=click.Choice(["append", "replace"]), default=None,
              envvar="MLCI_MODE", help="Append to or replace the training data (config default).")
@click.option("--push/--no-push", default=None, envvar="MLCI_PUSH",
              help="dvc push after success (config default; env MLCI_PUSH).")
@click.option("--baseline", default="auto", show_default=True, envvar="MLCI_BASELINE",
              shell_complete=BASELINES,
              help="Champion baseline for the evaluation: auto | registry | git:<ref> | "
                   "file:<path> | none.")
def update_cmd(config_path: Path, out_dir: Path, as_json: bool, source: str, mode: str | None,
               push: bool | None, baseline: str) -> int:
    """Validate new data, then retrain, evaluate and register; all or nothing."""
    import json

    from mlci.errors import MlciError, VerdictFailed
    from mlci.flows.code import load, write_report
    from mlci.flows.data_update import update

    cfg = load(config_path)
    code, error = 0, None
    try:
        rec = step("data update", update, cfg, out_dir, source, mode=mode, push=push,
                   baseline=baseline)
    except VerdictFailed as exc:
        code, error = 1, exc.message
        rec = None
    except MlciError:
        raise  # input error: one line, exit 2, nothing changed
    path, first = write_report(cfg.name, out_dir, cfg.report.max_chars, cfg.report.title)
    warnings = (rec or {}).get("warnings") or []
    for w in warnings:
        click.echo(f"mlci: warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps({"status": rec["status"] if rec else "refused",
                               "model_version": (rec or {}).get("model_version"),
                               "drifted_columns": (rec or {}).get("drift", {}).get(
                                   "drifted_columns", []),
                               "report": path, "exit_code": code, "warnings": warnings}))
    else:
        if rec:
            for s in rec["steps"]:
                click.echo(f"{s['step']:<10} {s['seconds']:>8.2f} s {s['peak_rss_mib']:>9.1f} MiB")
            version = rec.get("model_version")
            click.echo(f"updated {cfg.data.train}; registered {cfg.name} v{version}")
        click.echo(f"{first}\nwrote {path}")
    if error:
        click.echo(f"mlci: {error}", err=True)
    return code


@command.command("pr")
@click.option("--out", "out_dir", default=".mlci", show_default=True, envvar="MLCI_OUT",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the files mlci writes (env MLCI_OUT).")
@json_option
@click.option("--branch", required=True, envvar="MLCI_BRANCH",
              help="Branch holding the data update (already pushed; env MLCI_BRANCH).")
@click.option("--base", required=True, envvar="MLCI_BASE",
              help="Branch the pull request merges into (env MLCI_BASE).")
@click.option("--title", default="mlci: data update", show_default=True, envvar="MLCI_TITLE",
              help="Pull request title (env MLCI_TITLE).")
@click.option("--body", "body_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="MLCI_BODY", help="Markdown body (default <out>/report.md; env MLCI_BODY).")
@click.option("--repo", envvar=["MLCI_REPO", "GITHUB_REPOSITORY"],
              help="owner/name (default GITHUB_REPOSITORY).")
@click.option("--api-url", envvar=["MLCI_API_URL", "GITHUB_API_URL"],
              default="https://api.github.com", show_default=True,
              help="REST API root (default GITHUB_API_URL).")
@click.option("--max-wait", type=Duration(), default="60s", show_default=True,
              envvar=["MLCI_MAX_WAIT", "MLCI_COMMENT_MAX_WAIT"],
              help="Longest wait for a GitHub rate limit before giving up, e.g. 60, 1m "
                   "(env MLCI_MAX_WAIT).")
def pr_cmd(out_dir: Path, as_json: bool, branch: str, base: str, title: str,
           body_path: Path | None, repo: str | None, api_url: str, max_wait: float) -> int:
    """Open the pull request of a data-update branch, or update its body (one per branch).
    The token comes from the environment (MLCI_GITHUB_TOKEN, else GITHUB_TOKEN), never printed."""
    import json

    from mlci.commands.comment import PostFailed
    from mlci.errors import MlciError
    from mlci.gha import github, pulls

    body_path = body_path or out_dir / "report.md"
    if not body_path.is_file():
        raise MlciError(f"no report at {body_path}: run `mlci data update` first")
    if repo is None or not repo.strip() or "/" not in repo:
        raise MlciError("no repository: set GITHUB_REPOSITORY or --repo owner/name")
    from mlci.gha import env

    token = env.token()
    if not token:
        raise MlciError("no token: set GITHUB_TOKEN (or MLCI_GITHUB_TOKEN)")
    gh = github.GitHub(api_url=api_url, repo=repo.strip(), token=token,
                       max_wait=max_wait)
    try:
        pr = pulls.open_or_update(gh, branch=branch.strip(), base=base.strip(),
                                  title=title, body=body_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise MlciError(str(exc)) from None
    except github.ReadOnlyToken as exc:
        raise MlciError(f"the token cannot open pull requests ({exc}): give the job "
                        "`pull-requests: write` and allow Actions to create pull requests "
                        "in the repository settings") from None
    except github.GitHubError as exc:
        raise PostFailed(str(exc)) from None
    result = {"url": pr.url, "number": pr.number, "action": pr.action, "branch": branch,
              "base": base}
    click.echo(json.dumps(result) if as_json else f"{pr.action} pull request {pr.url}")
    return 0
