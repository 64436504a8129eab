"""Where the report goes: one small interface, three posters (github, cml, summary).

Each poster turns (body, title, target) into a `Posted` or raises `CannotWrite` when the token
may not write there (a fork's pull request); `deliver` then puts the report in the job summary
with a warning, whichever poster was chosen. Images the poster cannot publish are replaced by a
line pointing at the run's artifact, so the comment never shows a broken image.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlci.gha import cml, env, github, outputs

ARTIFACT = "mlci-report"  # the workflow artifact that holds report.md, plots/ and data-docs/


class CannotWrite(Exception):
    """The token may not write the comment; the report belongs in the job summary."""


class PostError(Exception):
    """The comment service failed after its retries."""


@dataclass(frozen=True)
class Target:
    kind: str  # "pr" | "commit" | "summary"
    pr: int | None = None
    sha: str | None = None


@dataclass
class Posted:
    target: str
    action: str  # "created" | "updated" | "summary" | "none"
    url: str = ""


class Poster(Protocol):
    publishes_images: bool

    def post(self, body: Path, text: str, title: str, target: Target) -> Posted: ...


@dataclass
class GitHubPoster:
    """The built-in poster: one sticky comment through the REST API."""

    client: github.GitHub
    author: str = ""  # the token's login; looked up when empty
    publishes_images: bool = False

    def post(self, body: Path, text: str, title: str, target: Target) -> Posted:
        try:
            author = self.author or self.client.login()
            done = github.post_sticky(self.client, text, title, author=author, pr=target.pr,
                                      sha=target.sha)
        except github.ReadOnlyToken as exc:
            raise CannotWrite(str(exc)) from None
        except github.GitHubError as exc:
            raise PostError(str(exc)) from None
        return Posted(target.kind, done.action, done.url)


@dataclass
class CmlPoster:
    """`cml comment update` (CML uploads images itself when `publish` is set)."""

    token: str
    publish: bool = False

    @property
    def publishes_images(self) -> bool:
        return self.publish

    def post(self, body: Path, text: str, title: str, target: Target) -> Posted:
        try:
            url = cml.post(body, pr=target.pr, sha=target.sha, title=title,
                           publish=self.publish, token=self.token)
        except cml.CmlReadOnly as exc:
            raise CannotWrite(str(exc)) from None
        except cml.CmlError as exc:
            raise PostError(str(exc)) from None
        return Posted(target.kind, "updated", url)


@dataclass
class SummaryPoster:
    publishes_images: bool = False

    def post(self, body: Path, text: str, title: str, target: Target) -> Posted:
        return to_summary(text)


def to_summary(text: str) -> Posted:
    return Posted("summary", "summary" if outputs.append_summary(text) else "none")


_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([^)\s]+)\)")


def unpublished_images(text: str, run_url: str) -> str:
    """Replace every image with a relative (unhosted) address by a line that names it and links
    the run's artifact; images already on http(s) stay."""
    def swap(m: re.Match[str]) -> str:
        alt, src = m.group(1) or "plot", m.group(2)
        if src.startswith(("https://", "http://")):
            return m.group(0)
        where = (f"in the run's [`{ARTIFACT}` artifact]({run_url}#artifacts)" if run_url
                 else f"in the `{ARTIFACT}` artifact")
        return f"_{alt}: `{src}` {where}_"

    return _IMAGE.sub(swap, text)


def deliver(poster: Poster, body: Path, title: str, target: Target, *,
            warn: Callable[[str, str], None] = outputs.warning) -> Posted:
    """Post, falling back to the job summary when the token cannot write."""
    text = body.read_text(encoding="utf-8")
    if not poster.publishes_images:
        text = unpublished_images(text, env.run_url())
    if target.kind == "summary":
        return to_summary(text)
    sent = body
    if text != body.read_text(encoding="utf-8"):
        sent = body.with_name(f"{body.stem}.comment.md")  # what cml reads; report.md stays whole
        sent.write_text(text, encoding="utf-8")
    try:
        return poster.post(sent, text, title, target)
    except CannotWrite as exc:
        warn("mlci comment", f"the token cannot comment ({exc}); the report is in the job "
                             "summary")
        return to_summary(text)
    finally:
        if sent != body:
            sent.unlink(missing_ok=True)
