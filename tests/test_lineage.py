"""Lineage references, links and the markdown block (the end-to-end answers are checked in
tests/test_registry.py on a trained model)."""

from __future__ import annotations

import pytest

from mlci.errors import MlciError
from mlci.registry.lineage import _commit_url, parse_ref, to_markdown, to_text


@pytest.mark.parametrize("ref,want", [
    ("iris@champion", ("iris", "champion", None)),
    ("iris/3", ("iris", None, "3")),
    ("my.model-2@staging", ("my.model-2", "staging", None)),
])
def test_parse_ref(ref: str, want: tuple) -> None:
    assert parse_ref(ref) == want


@pytest.mark.parametrize("ref", ["iris", "iris@", "iris/", "iris@a@b", "a/b/c", "", "x:1"])
def test_bad_refs_are_one_clear_error(ref: str) -> None:
    with pytest.raises(MlciError, match="NAME@ALIAS"):
        parse_ref(ref)


def test_commit_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)
    sha = "a" * 40
    assert _commit_url("org/repo", sha) == f"https://github.com/org/repo/commit/{sha}"
    assert _commit_url("https://github.com/org/repo.git", sha) == \
        f"https://github.com/org/repo/commit/{sha}"
    assert _commit_url("git@github.com:org/repo.git", sha) == \
        f"https://github.com/org/repo/commit/{sha}"
    assert _commit_url("/srv/git/repo", sha) is None
    assert _commit_url("org/repo", "unknown") is None


def _record(**over) -> dict:
    d = {
        "model": {"name": "iris", "version": "4", "aliases": ["champion"]},
        "git": {"commit": "b" * 40, "branch": "main", "repo": "org/repo", "dirty": "false",
                "commit_url": "https://github.com/org/repo/commit/" + "b" * 40},
        "data": {"train": {"path": "data/train.csv", "hash": "dvc-md5:123"},
                 "golden": {"path": "data/golden.csv", "hash": "sha256:456"}},
        "validation": {"success": "true", "digest": "sha256:v"},
        "evaluation": {"gate_passed": "true", "digest": "sha256:e", "baseline": "none",
                       "metrics": {"accuracy": 0.96667},
                       "checks": [{"check": "accuracy >= 0.9", "passed": True}]},
        "ci": {"run_url": "https://github.com/org/repo/actions/runs/9", "trigger": "push",
               "actor": "dev"},
        "approval": {"action": "rollback", "alias": "champion", "approver": "alice",
                     "time": "2026-01-02T03:04:05.000000+00:00", "reason": "p99 | latency"},
        "replaced": "5", "rollback_of": "5",
    }
    d.update(over)
    return d


def test_markdown_block_answers_the_questions() -> None:
    md = to_markdown(_record())
    assert md.startswith("### Lineage of iris v4\n")
    for piece in ("[`bbbbbbbbbbbb`](https://github.com/org/repo/commit/", "`dvc-md5:123`",
                  "validation | true", "accuracy 0.9667", "✅ accuracy >= 0.9",
                  "actions/runs/9", "rollback to `champion` by alice", "p99 \\| latency",
                  "| replaced | 5 |", "| rollback of | version 5 |"):
        assert piece in md, piece
    text = to_text(_record(approval=None, rollback_of=None, replaced=None))
    assert "not promoted" in text and "rollback of" not in text
