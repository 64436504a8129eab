"""Data Docs with altair's schema table built once and KL charts built from one spec per shape
(mlci.data.data_docs): the same charts and the same pages as altair alone gives."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from conftest import run_mlci

from mlci.data import data_docs

schemapi = pytest.importorskip("altair.utils.schemapi")


def _altairs_own():
    data_docs._altair_from_dict_once()
    return schemapi.SchemaBase.from_dict._altair  # what altair defines, before the shim


def test_the_shim_is_in_place_once() -> None:
    data_docs._altair_from_dict_once()
    first = schemapi.SchemaBase.__dict__["from_dict"]
    data_docs._altair_from_dict_once()
    assert schemapi.SchemaBase.__dict__["from_dict"] is first
    assert schemapi.SchemaBase.from_dict._altair is not first  # the original is kept aside


def test_charts_from_dicts_are_altairs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import altair as alt
    import pandas as pd

    df = pd.DataFrame({"bin_min": [0.0, 1.0], "bin_max": [1.0, 2.0], "fraction": [0.4, 0.6]})
    bars = alt.Chart(df).mark_bar().encode(x="bin_min:O", y="fraction:Q",
                                           tooltip=["bin_min", "fraction"])
    layered = alt.layer(bars, bars.mark_rule(color="red").encode(y="mean(fraction):Q"))
    specs = [bars.to_dict(), layered.to_dict(), bars.properties(width=300).to_dict()]

    def rebuilt() -> list:
        return [(alt.LayerChart if "layer" in s else alt.Chart).from_dict(s) for s in specs]

    shimmed = rebuilt()
    monkeypatch.setattr(schemapi.SchemaBase, "from_dict", _altairs_own())
    own = rebuilt()
    for a, b in zip(shimmed, own, strict=True):
        assert type(a) is type(b)
        assert a.to_dict() == b.to_dict()
        assert [type(x).__name__ for x in vars(a).get("_kwds", {}).values()] == \
            [type(x).__name__ for x in vars(b).get("_kwds", {}).values()]
    monkeypatch.undo()
    with pytest.raises(Exception, match="was expected"):  # validation still runs
        alt.Chart.from_dict({"mark": 12, "data": {"values": []}})


VOLATILE = re.compile(r"\d{8}T\d{6}(\.\d+)?Z|_run_time_sort': [\d.]+|"
                      r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?|[0-9a-f]{32}|"
                      r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pages(root: Path) -> dict[str, str]:
    return {VOLATILE.sub("", str(p.relative_to(root))):
            VOLATILE.sub("", p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.html"))}


def _dead_links(root: Path) -> list[str]:
    """Links between the site's pages (href and the index's row links) to no page. (Not the
    favicon: GX's result pages point one folder short of it, as they always have.)"""
    dead, links = [], re.compile(r"""(?:href=|_table_row_link_path['"]: )['"]([^'"#]+\.html)""")
    for page in root.rglob("*.html"):
        for link in links.findall(page.read_text(encoding="utf-8")):
            if "://" not in link and not (page.parent / link).is_file():
                dead.append(f"{page.relative_to(root)} -> {link}")
    return dead


def test_the_site_has_no_suite_pages_and_every_link_goes_to_a_page(
        iris: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlci.data import docs_site

    r = run_mlci("validate", cwd=iris)
    assert r.code == 0, r.err
    site = iris / ".mlci" / "data-docs"
    assert not list(site.glob("expectations/**/*.html"))  # the result pages show the suite
    index = (site / "index.html").read_text(encoding="utf-8")
    results = [str(p.relative_to(site)) for p in site.glob("validations/**/*.html")]
    assert len(results) == 2 and all(p in index for p in results)
    assert not _dead_links(site)
    # the index from results read without their expectations' results is GX's own index
    monkeypatch.setattr(docs_site._ResultHeads, "get_validation_result",
                        lambda self, *a, **k: self._ctx.get_validation_result(*a, **k))
    assert run_mlci("validate", cwd=iris).code == 0
    assert _pages(site)["index.html"] == VOLATILE.sub("", index)


def test_data_docs_pages_are_what_altair_alone_renders(iris: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_mlci("validate", cwd=iris)
    assert r.code == 0, r.err
    shimmed = _pages(iris / ".mlci" / "data-docs")
    monkeypatch.setattr(schemapi.SchemaBase, "from_dict", _altairs_own())
    monkeypatch.setattr(data_docs, "_altair_from_dict_once", lambda: None)
    monkeypatch.setattr(data_docs, "charts_from_one_spec", contextlib.nullcontext)
    monkeypatch.setattr(data_docs, "_second_core", lambda: False)  # all pages in one process
    r = run_mlci("validate", cwd=iris)
    assert r.code == 0, r.err
    own = _pages(iris / ".mlci" / "data-docs")
    assert shimmed.keys() == own.keys() and len(own) >= 3
    assert any("vega" in text for text in own.values())  # the KL-divergence charts are there
    for page in own:
        assert shimmed[page] == own[page], page


def _kl_frames() -> list:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    frames = []
    for n in (1, 2, 10, 10, 61):
        edges = np.sort(rng.normal(size=n + 1)).round(3)
        w = rng.random(n)
        frames.append(pd.DataFrame({"bin_min": [round(v, 1) for v in edges[:-1]],
                                    "bin_max": [round(v, 1) for v in edges[1:]],
                                    "fraction": (w / w.sum()).tolist()}))
    odd = frames[2].copy()
    odd.loc[0, "fraction"] = float("nan")
    odd.loc[1, "bin_max"] = float("inf")
    frames.append(odd)
    frames.append(pd.DataFrame({"values": ["a", "b"], "fraction": [0.5, 0.5]}))  # to altair
    return frames


def test_charts_from_one_spec_are_altairs_own() -> None:
    import altair as alt

    charts = data_docs._Charts(alt, alt.vegalite.v6.api._dataset_name)

    def draw(module, df, width):
        x = "values:N" if "values" in df else "bin_min:O"
        enc = {"x": x, "y": "fraction:Q", "tooltip": list(df.columns)}
        if "bin_max" in df:
            enc["x2"] = "bin_max:O"
        return (module.Chart(df).mark_bar().encode(**enc)
                .properties(width=width, height=400, autosize="fit").to_dict())

    for width in (250, 300):
        for df in _kl_frames():
            ours = draw(charts, df, width)
            own = draw(alt, df, width)
            assert json.dumps(ours) == json.dumps(own)  # the same keys in the same order
    assert len(charts._specs) == 2  # altair built one spec per width; text went to altair


def test_the_kl_renderer_draws_with_the_stand_in_only_while_docs_build() -> None:
    import altair as alt
    from great_expectations.expectations.core import (
        expect_column_kl_divergence_to_be_less_than as kl,
    )

    with data_docs.charts_from_one_spec():
        assert isinstance(kl.alt, data_docs._Charts)
    assert kl.alt is alt


def test_pages_built_by_a_forked_child_are_those_built_in_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import numpy as np
    import pandas as pd

    from mlci.data.profile import profile_suite
    from mlci.data.validate import run_suite

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform: pages are built in one process")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"x{i}": rng.normal(size=200).round(3) for i in range(4)}
                      | {"y": rng.integers(0, 2, 200)})
    suite = profile_suite(df.iloc[:150], "y", name="s")
    frames = {"train": df.iloc[:150], "golden": df.iloc[150:].assign(x0=lambda d: d.x0 + 3)}
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    pages = {}
    for apart in (True, False):
        monkeypatch.setattr(data_docs, "_second_core", lambda apart=apart: apart)
        run_suite(frames, suite, tmp_path / str(apart), Path("s.json"))
        pages[apart] = _pages(tmp_path / str(apart))
    assert forks == [1]  # the train pages were built by a child
    assert pages[True] == pages[False] and len(pages[True]) == 3  # index, 2 results
    assert not _dead_links(tmp_path / "True")
    assert any("Failed" in text for text in pages[True].values())  # golden's shifted x0


def test_a_child_that_fails_leaves_its_pages_to_the_parent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    built = []
    monkeypatch.setattr(data_docs, "build",
                        lambda ctx, site, keys=None, index=True: built.append((keys, index)))
    pid = os.fork()
    if pid == 0:
        os._exit(3)  # a child that failed
    data_docs.finish(None, "mlci", ["last"], [(pid, ["first"])])
    assert built == [(["last"], False), (["first"], False), ([data_docs.NO_PAGE], True)]


def test_a_child_that_hangs_is_stopped_and_its_pages_built_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    pid = os.fork()
    if pid == 0:  # a child stuck (a lock held by another thread at the fork)
        time.sleep(60)
        os._exit(0)
    t0 = time.monotonic()
    assert not data_docs._ended_well(pid, deadline=0.2)
    assert time.monotonic() - t0 < 10  # killed at the deadline, not waited for its minute
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)
