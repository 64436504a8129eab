"""`mlci comment`: post report.md as one sticky comment on the pull request (or commit).

Posters: `github` (built in, REST API), `cml` (`cml comment update`, needs `cml` on PATH),
`summary` (job summary only). The pull request comes from the event file GitHub writes
(`GITHUB_EVENT_PATH`); with no pull request the report goes to the job summary only, unless
`--post-to commit`. A token that may not write (a fork's pull request) is not an error, with
either poster: the report goes to the job summary and a warning is printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from mlci.commands._options import Duration, json_option, out_option
from mlci.errors import EXIT_INTERNAL, MlciError


class PostFailed(MlciError):
    """The comment service failed after retries: exit 3, one line."""

    exit_code = EXIT_INTERNAL


def default_title() -> str:
    from mlci.gha import env

    workflow = env.github("WORKFLOW")
    return f"mlci report · {workflow}" if workflow else "mlci report"


@click.command("comment")
@out_option
@json_option
@click.option("--body", "body_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="MLCI_BODY", help="Markdown to post (default <out>/report.md; env MLCI_BODY).")
@click.option("--poster", type=click.Choice(["github", "cml", "summary"]), default="github",
              show_default=True, envvar="MLCI_POSTER",
              help="github: REST API; cml: `cml comment update`; summary: job summary only.")
@click.option("--post-to", "target", type=click.Choice(["auto", "pr", "commit", "summary"]),
              default="auto", show_default=True, envvar="MLCI_POST_TO",
              help="auto: the event's pull request, else the job summary (env MLCI_POST_TO).")
@click.option("--pr", "pr_number", type=click.IntRange(min=1), envvar="MLCI_PR",
              help="Pull request number (default: from GITHUB_EVENT_PATH; env MLCI_PR).")
@click.option("--sha", envvar=["MLCI_SHA", "GITHUB_SHA"],
              help="Commit for --post-to commit (default GITHUB_SHA).")
@click.option("--repo", envvar=["MLCI_REPO", "GITHUB_REPOSITORY"],
              help="owner/name (env MLCI_REPO, default GITHUB_REPOSITORY).")
@click.option("--api-url", envvar=["MLCI_API_URL", "GITHUB_API_URL"],
              default="https://api.github.com", show_default=True,
              help="REST API root (default GITHUB_API_URL).")
@click.option("--title", envvar="MLCI_TITLE",
              help="Names the sticky comment (marker / CML watermark); default names the workflow.")
@click.option("--author", envvar="MLCI_AUTHOR",
              help="github only: login whose comment is updated (default: the token's own, "
                   "github-actions[bot] for GITHUB_TOKEN).")
@click.option("--max-wait", type=Duration(), default="10m", show_default=True,
              envvar=["MLCI_MAX_WAIT", "MLCI_COMMENT_MAX_WAIT"],
              help="Longest GitHub rate-limit wait worth sitting out, e.g. 90, 1m "
                   "(env MLCI_MAX_WAIT).")
@click.option("--publish-images", is_flag=True, envvar="MLCI_PUBLISH_IMAGES",
              help="cml only: upload local images to CML's public host (default: --no-publish).")
def command(out_dir: Path, as_json: bool, body_path: Path | None, poster: str, target: str,
            pr_number: int | None, sha: str | None, repo: str | None, api_url: str,
            title: str | None, author: str | None, max_wait: float, publish_images: bool
            ) -> int:
    """Post or update the report as one sticky comment. The token comes from the environment
    (MLCI_GITHUB_TOKEN, else GITHUB_TOKEN) and is never printed."""
    from mlci.gha import env, posters

    body_path = body_path or out_dir / "report.md"
    if not body_path.is_file():
        raise MlciError(f"no report at {body_path}: run `mlci report` first")
    title = (title or "").strip() or default_title()
    pr = pr_number or env.event_pr(env.event())
    kind = _where(target, poster, pr, sha)
    where = posters.Target(kind, pr=pr if kind == "pr" else None,
                           sha=sha if kind == "commit" else None)
    chosen = _poster(poster, where, repo, api_url, author, publish_images, max_wait)
    try:
        posted = posters.deliver(chosen, body_path, title, where)
    except posters.PostError as exc:
        raise PostFailed(str(exc)) from None
    if where.kind == "summary" and target == "auto" and poster != "summary":
        click.echo("no pull request in this event: the report is in the job summary", err=True)
    result: dict[str, Any] = {"poster": poster, "target": posted.target, "url": posted.url,
                              "action": posted.action}
    return _done(result, as_json)


def _poster(name: str, where: Any, repo: str | None, api_url: str, author: str | None,
            publish: bool, max_wait: float) -> Any:
    from mlci.gha import env, github, posters

    if name == "summary" or where.kind == "summary":
        return posters.SummaryPoster()
    token = env.token()
    if name == "cml":
        return posters.CmlPoster(token=token, publish=publish)
    if not repo:
        raise MlciError("no repository: set GITHUB_REPOSITORY or --repo owner/name")
    if not token:
        raise MlciError("no token: set GITHUB_TOKEN (or MLCI_GITHUB_TOKEN)")
    client = github.GitHub(api_url=api_url, repo=repo, token=token, max_wait=max_wait)
    return posters.GitHubPoster(client, author=(author or "").strip())


def _where(target: str, poster: str, pr: int | None, sha: str | None) -> str:
    if poster == "summary" or target == "summary":
        return "summary"
    if target == "commit":
        if not sha:
            raise MlciError("--post-to commit needs a commit: set GITHUB_SHA or --sha")
        return "commit"
    if target == "pr" and pr is None:
        raise MlciError("--post-to pr needs a pull request: none in the event, pass --pr N")
    return "pr" if pr is not None else "summary"


def _done(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        click.echo(json.dumps(result))
    elif result["url"]:
        click.echo(f"{result['action']} {result['url']}")
    else:
        click.echo(f"report: {result['action']} ({result['target']})")
    return 0
