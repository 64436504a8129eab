"""Build Great Expectations' Data Docs, without altair's per-chart schema table.

GX draws a chart for each KL-divergence expectation with altair. altair 5-6 rebuilds, on every
`SchemaBase.from_dict` call, a table from the hash of each of its ~570 schema classes to the
class (one `json.dumps` each); a chart makes several such calls, and that table was nearly half
of a Data Docs build (Iris, a new process: 0.66 s, 0.36 s without it, medians of 5). The table
depends only on the classes, so it is built once per class here; the lookup it feeds and the
charts it gives are altair's own.
Upstream: vega/altair#3547 ("the breadth-first search now occurs only once").
"""

from __future__ import annotations

from typing import Any


def build(ctx: Any, site: str) -> None:
    _altair_from_dict_once()
    ctx.build_data_docs(site_names=[site])


def _altair_from_dict_once() -> None:
    try:
        from altair.utils import schemapi
    except ImportError:  # GX draws no chart without altair
        return
    base = schemapi.SchemaBase
    converter_type = getattr(schemapi, "_FromDict", None)
    if hasattr(base.from_dict, "_altair") or converter_type is None:
        return  # already in place, or an altair whose internals differ: left as it is
    converters: dict[type, Any] = {}

    def from_dict(cls: type, dct: dict[str, Any], validate: bool = True) -> Any:
        if validate:
            cls.validate(dct)  # type: ignore[attr-defined]
        converter = converters.get(cls)
        if converter is None:
            converter = converters[cls] = converter_type(
                cls._default_wrapper_classes())  # type: ignore[attr-defined]
        return converter.from_dict(dct, cls)

    from_dict._altair = base.__dict__["from_dict"]  # type: ignore[attr-defined]  # the original
    base.from_dict = classmethod(from_dict)  # type: ignore[method-assign, assignment]
