"""Untrusted strings in the report stay text when GitHub renders it (cmark-gfm, the renderer
GitHub uses, through the `cmarkgfm` bindings; raw HTML passed through so injected HTML shows).

A data value containing `\\r<!--` used to open an HTML comment that hid the Validation,
Metrics, Gate and Lineage sections; links and images from data values rendered.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mlci.report import markdown

cmarkgfm = pytest.importorskip("cmarkgfm")

HOSTILE = [
    "\r<!--", "-->\n<!--", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "[click](https://evil.example/a)", "![pixel](https://evil.example/p.png)",
    "https://evil.example/auto", "www.evil.example", "mail@evil.example",
    "a|b|c", "`code` ``x``", "**bold** _em_", "&lt;b&gt;", "\n### Fake section\n",
    "<details open>", "</details>", "\\", "x\u2028y", "| --- |", "<https://evil.example/x>",
]
SECTIONS = ["Data update", "Data validation", "Metrics on the golden set", "Gate",
            "Confusion matrix", "Lineage"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.h3: list[str] = []
        self._in_h3 = False
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_h3 = tag == "h3"
        if self._in_h3:
            self.h3.append("")

    def handle_endtag(self, tag):
        if tag == "h3":
            self._in_h3 = False

    def handle_data(self, data):
        if self._in_h3:
            self.h3[-1] += data

    def handle_comment(self, data):
        self.comments.append(data)


def _records(out: Path, bad: str) -> None:
    run_id = "r" * 32
    validation = {"success": False, "datasets": {"train": {
        "path": f"data/{bad}.csv", "rows": 3, "success": False,
        "statistics": {"evaluated_expectations": 1, "successful_expectations": 0},
        "results": [{"success": False, "expectation": f"expect_{bad}", "column": bad,
                     "unexpected_count": 1, "examples": [bad, bad], "observed_value": bad}]}}}
    run = {"run_id": run_id, "model_version": "1", "model_uri": f"models:/{bad}/1",
           "tags": {"mlci.git.commit": bad, "mlci.git.branch": bad, "mlci.git.repo": bad,
                    "mlci.trigger": bad, "mlci.ci.run_url": bad, "mlci.data.train.path": bad,
                    "mlci.data.train.hash": bad, "mlci.validation.success": bad}}
    evaluation = {
        "verdict": "fail", "failed": [bad], "model": {"run_id": run_id},
        "baseline": {"label": bad}, "golden": {"path": bad, "rows": 3},
        "metrics": {"accuracy": 0.5}, "confidence": 0.95,
        "comparison": {"accuracy": {"champion": 0.6, "delta": -0.1, "ci": [-0.2, 0.0]}},
        "notes": [bad],
        "checks": [{"check": bad, "passed": False, "kind": "regression", "reason": bad}],
        "per_class": [{"class": bad, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}],
        "confusion_matrix": [[1, 0], [0, 1]], "classes": [bad, bad + "2"],
        "plots": {"confusion_matrix": "plots/confusion_matrix.png"},
    }
    update = {"status": "refused", "run_id": run_id, "validation": {"success": False}, "source": f"https://h/{bad}",
              "mode": "append", "error": bad,
              "data_diff": {"rows_before": 1, "rows_after": 2, "rows_added": 1,
                            "rows_removed": 0, "columns_added": [bad], "columns_removed": [bad],
                            "dtype_changes": {bad: [bad, bad]},
                            "columns": [{"column": bad, "shares": {bad: [0.5, 0.5]}}]},
              "drift": {"columns": [{"column": bad, "drifted": True, "method": bad}],
                        "drifted_columns": [bad], "share_drifted": 1.0}}
    for name, rec in (("validation.json", validation), ("run.json", run),
                      ("evaluation.json", evaluation), ("data_update.json", update)):
        (out / name).write_text(json.dumps(rec))


@pytest.mark.parametrize("bad", HOSTILE)
def test_every_section_survives_a_hostile_value(tmp_path: Path, bad: str) -> None:
    _records(tmp_path, bad)
    md = markdown.build(tmp_path, bad, title=bad)
    html = cmarkgfm.github_flavored_markdown_to_html(
        md, options=cmarkgfm.cmark.Options.CMARK_OPT_UNSAFE)
    p = _Tags()
    p.feed(html)
    assert [h for h in p.h3 if h in SECTIONS] == SECTIONS, html
    assert len(p.h3) == len(SECTIONS), f"a value became a heading: {p.h3}"
    assert p.comments == [], "a value opened an HTML comment"
    allowed = {"h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "strong",
               "em", "details", "summary", "img", "br", "pre"}
    assert {t for t, _ in p.tags} <= allowed, {t for t, _ in p.tags} - allowed
    imgs = [a.get("src") for t, a in p.tags if t == "img"]
    assert imgs == ["plots/confusion_matrix.png"], imgs
    assert not [a for t, a in p.tags if t == "a"], "a value became a link"
    assert [t for t, _ in p.tags].count("details") == 1
    # emphasis only where the report puts it: the one note, and bold class labels
    assert [t for t, _ in p.tags].count("em") == 1
    assert [t for t, _ in p.tags].count("strong") == 3  # status and the two class labels
    # the two charts stay whole Mermaid blocks: a hostile class label cannot end the label,
    # the chart or the fence
    charts = re.findall(r'<pre lang="mermaid"><code>(.*?)</code></pre>', html, flags=re.S)
    assert [t for t, _ in p.tags].count("pre") == len(charts) == 2, html
    for chart in charts:
        lines = chart.strip().splitlines()
        assert lines[0] == "xychart-beta" and len(lines) == 5, chart
        labels = re.fullmatch(r"    x-axis \[(.*)\]", lines[2]).group(1)
        safe = r"&quot;[\w .+\-/()]+&quot;"
        assert all(re.fullmatch(safe, x) for x in labels.split(", ")), labels
    # each table row keeps its cell count
    for table in re.findall(r"<table>.*?</table>", html, flags=re.S):
        widths = {len(re.findall(r"<t[hd][ >]", row))
                  for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, table


def _render(tmp_path: Path, tags: dict[str, str], data_docs: str | None = None) -> str:
    _records(tmp_path, "x")
    run = json.loads((tmp_path / "run.json").read_text())
    run["tags"].update(tags)
    (tmp_path / "run.json").write_text(json.dumps(run))
    v = json.loads((tmp_path / "validation.json").read_text())
    v["data_docs"] = data_docs
    (tmp_path / "validation.json").write_text(json.dumps(v))
    return cmarkgfm.github_flavored_markdown_to_html(markdown.build(tmp_path, "iris"))


def _hrefs(html: str) -> list[str]:
    p = _Tags()
    p.feed(html)
    return [a["href"] for t, a in p.tags if t == "a"]


def test_mlcis_own_urls_are_links(tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    html = _render(tmp_path, {"mlci.ci.run_url": "https://github.com/acme/models/actions/runs/42",
                              "mlci.git.commit": sha}, data_docs="data-docs/index.html")
    run = "https://github.com/acme/models/actions/runs/42"
    assert _hrefs(html) == [run + "#artifacts", f"https://github.com/acme/models/commit/{sha}",
                            run, run + "#artifacts"]
    assert ">run 42</a>" in html and ">0123456789ab</a>" in html
    assert "<th>record</th><th>value</th>" in html.replace("\n", "")  # the lineage header


@pytest.mark.parametrize("url", [
    "https://github.com/o/r/actions/runs/1)[x](https://evil.example",
    "javascript:alert(1)//github.com/o/r/actions/runs/1",
    "https://github.com/o/r/actions/runs/1#x\n### Fake",
    "http://github.com/o/r/actions/runs/1",
])
def test_a_url_of_another_shape_stays_text(tmp_path: Path, url: str) -> None:
    html = _render(tmp_path, {"mlci.ci.run_url": url, "mlci.git.commit": "a" * 40})
    assert _hrefs(html) == [] and "<h3>Fake" not in html
