"""Data Docs with altair's schema table built once (mlci.data.data_docs): the same charts and
the same pages as altair's own `from_dict` gives."""

from __future__ import annotations

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


def test_data_docs_pages_are_what_altair_alone_renders(iris: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_mlci("validate", cwd=iris)
    assert r.code == 0, r.err
    shimmed = _pages(iris / ".mlci" / "data-docs")
    monkeypatch.setattr(schemapi.SchemaBase, "from_dict", _altairs_own())
    monkeypatch.setattr(data_docs, "_altair_from_dict_once", lambda: None)
    r = run_mlci("validate", cwd=iris)
    assert r.code == 0, r.err
    own = _pages(iris / ".mlci" / "data-docs")
    assert shimmed.keys() == own.keys() and len(own) >= 3
    assert any("vega" in text for text in own.values())  # the KL-divergence charts are there
    for page in own:
        assert shimmed[page] == own[page], page
