"""The Search tab: text or image query in, a grid of result thumbnails out.

Every query goes to the search API; the outcome (results or the API's error)
is kept in the session so that reruns caused by other widgets do not query again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import streamlit as st

from pixsearch.search.responses import SearchResponse, SearchResult
from pixsearch.webui.api_client import ApiError, SearchApi
from pixsearch.webui.formatting import format_score

K_MAX = 50
DEFAULT_K = 8
COLUMNS = 4
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp"]
OUTCOME = "search_outcome"
MORE_LIKE = "more_like_this"
SEARCHED_UPLOAD = "searched_upload_id"


@dataclass(frozen=True)
class Query:
    """One of: ``text``, ``image_key`` (more like this) or ``upload`` (image bytes)."""

    k: int
    text: str | None = None
    image_key: str | None = None
    image_url: str | None = None  # to show the query image of "more like this"
    upload: bytes | None = None
    filename: str = "query"
    where: dict[str, Any] = field(default_factory=dict)
    mode: str = "clip"

    def send(self, api: SearchApi) -> SearchResponse:
        if self.upload is not None:
            return api.search_upload(self.upload, self.filename, self.k, where=self.where)
        if self.image_key is not None:
            return api.search_image_key(self.image_key, self.k, self.where)
        return api.search_text(self.text or "", self.k, where=self.where, mode=self.mode)

    def describe(self) -> str:
        if self.upload is not None:
            return f"images like {self.filename}"
        if self.image_key is not None:
            return "images like the chosen result"
        return f"“{self.text}”"


@dataclass(frozen=True)
class Outcome:
    query: Query
    response: SearchResponse | None = None
    error: ApiError | None = None


def render_search(api: SearchApi) -> None:
    k = st.slider("Number of results (k)", 1, K_MAX, DEFAULT_K, key="k")
    where, mode = _filters()
    with st.form("text_search", border=False):
        text_column, button_column = st.columns([6, 1], vertical_alignment="bottom")
        text = text_column.text_input(
            "Search by text", placeholder="e.g. a white circle on red", key="query_text"
        )
        submitted = button_column.form_submit_button("Search", type="primary", width="stretch")
    if submitted:
        if text.strip():
            _run(api, Query(k, text=text.strip(), where=where, mode=mode))
        else:
            st.warning("Type a few words to search for.")

    upload = st.file_uploader(
        "…or upload an image to find similar ones", type=UPLOAD_TYPES, key="query_image"
    )
    if upload is not None and upload.file_id != st.session_state.get(SEARCHED_UPLOAD):
        st.session_state[SEARCHED_UPLOAD] = upload.file_id
        _run(api, Query(k, upload=upload.getvalue(), filename=upload.name, where=where))

    more_like = st.session_state.pop(MORE_LIKE, None)
    if more_like is not None:
        image_key, image_url = more_like
        _run(api, Query(k, image_key=image_key, image_url=image_url, where=where))

    outcome: Outcome | None = st.session_state.get(OUTCOME)
    if outcome is not None:
        _render_outcome(outcome)


def _filters() -> tuple[dict[str, Any], str]:
    """The filter object and ranking mode chosen in the "Filters" expander."""
    with st.expander("Filters and caption search"):
        hybrid = st.toggle(
            "Also match captions (hybrid ranking)",
            key="hybrid",
            help="Text queries also rank images whose URL list gave them a matching caption",
        )
        first, second = st.columns(2)
        list_name = first.text_input("From URL list", key="filter_list")
        domain = second.text_input("From domain", key="filter_domain")
        min_width = first.number_input("Min width (px)", min_value=0, step=64, key="min_width")
        min_height = second.number_input("Min height (px)", min_value=0, step=64, key="min_height")
        after = first.date_input("Fetched on or after", value=None, key="fetched_after")
        before = second.date_input("Fetched before", value=None, key="fetched_before")
    where: dict[str, Any] = {
        "list": list_name.strip() or None,
        "source_domain": domain.strip() or None,
        "min_width": int(min_width) or None,
        "min_height": int(min_height) or None,
        "fetched_after": _midnight(after),
        "fetched_before": _midnight(before),
    }
    return {name: value for name, value in where.items() if value}, "hybrid" if hybrid else "clip"


def _midnight(day: date | None) -> str | None:
    return f"{day.isoformat()}T00:00:00Z" if day else None


def show_api_error(error: ApiError) -> None:
    """The API's message, framed by what the user can do about it; never a traceback."""
    if error.unreachable:
        st.error(f"The search API is not reachable: {error.message}", icon=":material/cloud_off:")
    elif error.index_not_ready:
        st.info(
            f"Nothing to search yet: {error.message}. Ingest a URL list in the "
            "“Ingest & pipeline” tab; its images become searchable once indexed.",
            icon=":material/hourglass_empty:",
        )
    elif error.code == "model_unavailable":
        st.error(f"The search API cannot load its model: {error.message}")
    else:
        st.error(f"The search API rejected the query: {error.message}", icon=":material/block:")


def _run(api: SearchApi, query: Query) -> None:
    with st.spinner("Searching…"):
        try:
            response = query.send(api)
        except ApiError as error:
            st.session_state[OUTCOME] = Outcome(query, error=error)
            return
    st.session_state[OUTCOME] = Outcome(query, response=response)


def _render_outcome(outcome: Outcome) -> None:
    query = outcome.query
    if outcome.error is not None:
        show_api_error(outcome.error)
        return
    response = outcome.response
    if response is None:
        return
    if query.upload is not None:
        st.image(query.upload, caption="your image", width=160)
    elif query.image_url is not None:
        st.image(query.image_url, caption="more like this", width=160)
    if not response.results:
        st.info(f"No images matched {query.describe()}. Try other words or a larger k.")
        return
    st.caption(
        f"{len(response.results)} results for {query.describe()} · index version "
        f"{response.index_version} · {response.took_ms:.0f} ms"
    )
    for start in range(0, len(response.results), COLUMNS):
        row = response.results[start : start + COLUMNS]
        for offset, (column, result) in enumerate(zip(st.columns(COLUMNS), row, strict=False)):
            with column:
                _render_result(start + offset, result)


def _render_result(position: int, result: SearchResult) -> None:
    st.image(result.image_url, width="stretch", link=result.source_url, alt=result.key)
    size = f" · {result.width}×{result.height}" if result.width and result.height else ""
    origin = f" · {result.list_name}" if result.list_name else ""
    st.caption(format_score(result.score) + size + origin)
    if result.caption:
        st.caption(f"“{result.caption}”")
    if result.source_url:
        st.link_button("Source", result.source_url, icon=":material/open_in_new:")
    st.button(
        "More like this",
        key=f"more_like_{position}",
        on_click=_more_like,
        args=(result.key, result.image_url),
    )


def _more_like(image_key: str, image_url: str) -> None:
    st.session_state[MORE_LIKE] = (image_key, image_url)
