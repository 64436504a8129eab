"""The Data Docs site mlci builds: validation-result pages and the index, no suite pages.

A validation-result page shows every expectation of its suite with its result, so GX's
expectation-suite pages repeated them (without the results) and cost a third of a wide
site's build. GX links to a suite's page from each result page's header and from the index's
"Expectation Suite" column; here the header names the suite without a link and the index
links the suite to the result page that shows it. Imported by name from the site config
(mlci.data.validate), so only when Data Docs are built.
"""

from __future__ import annotations

import json
from typing import Any

from great_expectations.render.renderer.page_renderer import ValidationResultsPageRenderer
from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder

MODULE = __name__

SITE_SECTIONS: dict[str, Any] = {
    "expectations": "0",  # GX's own word for a section it does not build
    "validations": {"renderer": {"module_name": MODULE, "class_name": "ResultPageRenderer"}},
}
INDEX = {"module_name": MODULE, "class_name": "IndexBuilder"}


class ResultPageRenderer(ValidationResultsPageRenderer):
    @classmethod
    def _render_validation_header(cls, validation_results: Any) -> Any:
        header = super()._render_validation_header(validation_results)
        # the suite's name, not a link to the suite page this site does not build
        header.subheader.string_template["styling"]["params"].pop("expectation_suite_name")
        return header


class IndexBuilder(DefaultSiteIndexBuilder):
    def build(self, *args: Any, **kwargs: Any) -> Any:
        own = self.data_context
        self.data_context = _ResultHeads(own)  # type: ignore[assignment]  # its stand-in
        try:
            return super().build(*args, **kwargs)
        finally:
            self.data_context = own

    def add_resource_info_to_index_links_dict(self, index_links_dict: Any,
                                              expectation_suite_name: Any, section_name: Any,
                                              *args: Any, **kwargs: Any) -> Any:
        out = super().add_resource_info_to_index_links_dict(
            index_links_dict, expectation_suite_name, section_name, *args, **kwargs)
        link = out[f"{section_name}_links"][-1]
        if link.get("expectation_suite_filepath"):  # a result: its page shows the suite
            link["expectation_suite_filepath"] = link["filepath"]
        return out


class _ResultHeads:
    """The data context as the index builder sees it: a validation result without the results
    of its expectations. The index shows whether it passed and its meta only; reading the
    3,800 results of a wide suite back into GX's objects was half a second per dataset."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def get_validation_result(self, expectation_suite_name: str, run_id: Any = None,
                              batch_identifier: Any = None,
                              validation_results_store_name: str | None = None,
                              **kwargs: Any) -> Any:
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        store = self._ctx.stores[validation_results_store_name
                                 or self._ctx.validation_results_store_name]
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=expectation_suite_name),
            run_id=run_id, batch_identifier=batch_identifier)
        try:
            text = store._store_backend.get(store.key_to_tuple(key))
            head = json.loads(text) if isinstance(text, str) else None
        except Exception:  # noqa: BLE001  # no such key, or a backend that differs: GX's way
            head = None
        if not isinstance(head, dict) or run_id is None or kwargs:
            return self._ctx.get_validation_result(
                expectation_suite_name, run_id=run_id, batch_identifier=batch_identifier,
                validation_results_store_name=validation_results_store_name, **kwargs)
        head["results"] = []
        return store.deserialize(head)
