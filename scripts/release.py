"""The release steps of .github/workflows/release.yml that are more than one command.

    python scripts/release.py notes 1.2.3
        print the CHANGELOG.md section `## [1.2.3]` (exit 2 when there is none or it is empty)
    python scripts/release.py pin --repo acme/mlci-actions --sha <A> --version 1.2.3 [--remote URL]
        the two-commit release of docs/pinning.md, in a checkout of A: pin this repository's
        own references to A (scripts/pin_refs.py), name the repository and the tag in the
        package's PyPI page and URLs (PUBLISHED), commit that as B, check it, tag B `v1.2.3`
        and move `v1` to it. With --remote it pushes both tags (never overwriting a release
        tag), then clones the pushed tag afresh and runs its own `pin_refs.py --check`.
        Without --remote it stops after the local check (the build job's dry run).
    python scripts/release.py github-release --repo acme/mlci-actions --version 1.2.3
        create the GitHub Release of tag v1.2.3 with the CHANGELOG section as its notes
        (REST API at $GITHUB_API_URL, token in $MLCI_GITHUB_TOKEN).

Exit codes: 0 done, 1 a check failed (a reference left unpinned, the API refused), 2 bad input
(an argument, a missing CHANGELOG section, a dirty checkout, a release tag that exists).
Standard library only: the release jobs run it with the runner's own python3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pin_refs  # noqa: E402  (the sibling script, importable once its folder is on the path)

ROOT = Path(__file__).resolve().parents[1]
# what PyPI shows: the project URLs and the description page, whose links must be absolute and
# name the real repository at the released tag
PUBLISHED = ("pyproject.toml", "docs/pypi.md")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


class ReleaseError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def notes(changelog: str, version: str) -> str:
    """The body of `## [version]` (Keep a Changelog), up to the next `## ` heading."""
    m = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## |\Z)", changelog,
                  re.M | re.S)
    body = m.group(1).strip() if m else ""
    if not body:
        raise ReleaseError(f"CHANGELOG.md has no '## [{version}]' section with notes: rename "
                           "[Unreleased] to the version (and date it) before releasing")
    return body + "\n"


def git(root: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise ReleaseError(f"git {args[0]} failed: {p.stderr.strip().splitlines()[-1:]}", 1)
    return p.stdout.strip()


def unpinned(root: Path) -> list[str]:
    return [f"{p.relative_to(root)}: {m.group(0).strip()}" for p in pin_refs.files(root)
            for m in pin_refs.REF.finditer(p.read_text(encoding="utf-8"))]


def publish(text: str, repo: str, version: str) -> str:
    """`org/mlci-actions` becomes the repository; links at the moving `v1` the release tag."""
    text = re.sub(r"((?:github\.com|githubusercontent\.com)/)" + re.escape(pin_refs.PLACEHOLDER)
                  + r"/((?:blob/|tree/)?)v1(?=[/)\s])", rf"\g<1>{repo}/\g<2>v{version}", text)
    return text.replace(pin_refs.PLACEHOLDER, repo)


def commit_pins(root: Path, repo: str, sha: str, version: str) -> str:
    """Commit B on top of A (HEAD): every own reference pinned to A. Returns B's SHA."""
    if git(root, "rev-parse", "HEAD") != sha:
        raise ReleaseError(f"the checkout is not at {sha}: pin the commit being released")
    if git(root, "status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError("the checkout has uncommitted changes")
    for p in pin_refs.files(root):
        text = p.read_text(encoding="utf-8")
        p.write_text(pin_refs.pin(text, repo, sha, f"v{version}"), encoding="utf-8")
    pages = [root / name for name in PUBLISHED if (root / name).is_file()]
    for p in pages:
        p.write_text(publish(p.read_text(encoding="utf-8"), repo, version), encoding="utf-8")
    left = unpinned(root)
    if left:
        raise ReleaseError("still unpinned after the rewrite: " + "; ".join(left), 1)
    git(root, "add", "--", *[str(p.relative_to(root)) for p in [*pin_refs.files(root), *pages]])
    git(root, "-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}", "commit", "-q",
        "--allow-empty", "-m", f"Release v{version}: pin own actions to {sha[:12]}",
        "-m", f"Every {pin_refs.PLACEHOLDER}/...@v1 reference now names {repo}@{sha}.")
    return git(root, "rev-parse", "HEAD")


def tag_and_push(root: Path, version: str, remote: str) -> None:
    tag, major = f"v{version}", f"v{version.split('.')[0]}"
    if git(root, "ls-remote", "--tags", remote, f"refs/tags/{tag}"):
        raise ReleaseError(f"{tag} already exists on the remote: a release tag is never moved")
    git(root, "-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}", "tag", "-a", tag,
        "-m", f"mlci {version}")
    git(root, "push", "-q", remote, f"refs/tags/{tag}")
    # the major tag follows the newest release (lightweight, moved with force)
    git(root, "push", "-q", "--force", remote, f"HEAD:refs/tags/{major}")


def check_tag(remote: str, version: str) -> None:
    """Clone the tag as a user would get it and run that tag's own `pin_refs.py --check`."""
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", f"v{version}",
                            remote, tmp], capture_output=True, text=True)
        if p.returncode != 0:
            raise ReleaseError(f"cannot clone tag v{version}: {p.stderr.strip()}", 1)
        p = subprocess.run([sys.executable, str(Path(tmp) / "scripts" / "pin_refs.py"),
                            "--check", "--root", tmp], capture_output=True, text=True)
        if p.returncode != 0:
            raise ReleaseError(f"tag v{version} is not fully pinned: {p.stderr.strip()}", 1)


def github_release(api: str, token: str, repo: str, version: str, body: str) -> str:
    data = json.dumps({"tag_name": f"v{version}", "name": f"v{version}", "body": body,
                       "draft": False, "prerelease": False, "make_latest": "true"}).encode()
    req = urllib.request.Request(f"{api.rstrip('/')}/repos/{repo}/releases", data=data,
                                 method="POST", headers={
                                     "Authorization": f"Bearer {token}",
                                     "Accept": "application/vnd.github+json",
                                     "X-GitHub-Api-Version": "2022-11-28",
                                     "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (https API URL)
            return str(json.load(r).get("html_url", ""))
    except urllib.error.HTTPError as e:
        message = json.loads(e.read() or b"{}").get("message", e.reason)
        raise ReleaseError(f"GitHub refused the release ({e.code}): {message}", 1) from None


def _version(value: str) -> str:
    value = value.removeprefix("v")
    if not VERSION.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not X.Y.Z")
    return value


def _repo(value: str) -> str:
    if not pin_refs.REPO.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not owner/name")
    return value


def _sha(value: str) -> str:
    if not pin_refs.SHA.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a 40-hex commit SHA")
    return value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    n = sub.add_parser("notes", help="print the CHANGELOG section of a version")
    n.add_argument("version", type=_version)
    n.add_argument("--root", type=Path, default=ROOT)
    p = sub.add_parser("pin", help="commit the pinned references, tag and check the tag")
    p.add_argument("--repo", type=_repo, required=True)
    p.add_argument("--sha", type=_sha, required=True, help="commit A, checked out")
    p.add_argument("--version", type=_version, required=True)
    p.add_argument("--remote", help="push the tags there; without it: a dry run")
    p.add_argument("--root", type=Path, default=ROOT)
    g = sub.add_parser("github-release", help="create the GitHub Release of the tag")
    g.add_argument("--repo", type=_repo, required=True)
    g.add_argument("--version", type=_version, required=True)
    g.add_argument("--root", type=Path, default=ROOT)
    return ap


def run(args: argparse.Namespace) -> str:
    changelog = (args.root / "CHANGELOG.md").read_text(encoding="utf-8")
    if args.command == "notes":
        return notes(changelog, args.version)
    if args.command == "pin":
        notes(changelog, args.version)  # no release without its notes
        b = commit_pins(args.root, args.repo, args.sha, args.version)
        if args.remote:
            tag_and_push(args.root, args.version, args.remote)
            check_tag(args.remote, args.version)
            return f"tagged {b} as v{args.version} (pinned to {args.sha}), checked the tag\n"
        return f"dry run: {b} pins every reference to {args.sha}; nothing pushed\n"
    token = os.environ.get("MLCI_GITHUB_TOKEN", "")
    if not token:
        raise ReleaseError("MLCI_GITHUB_TOKEN is not set")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    url = github_release(api, token, args.repo, args.version, notes(changelog, args.version))
    return f"released v{args.version}: {url}\n"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sys.stdout.write(run(args))
    except ReleaseError as e:
        print(f"release.py: error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
