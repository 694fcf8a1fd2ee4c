"""The Ingest tab: hand a URL list to the pipeline, then watch it move through the stages."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st
from app_services import progress_reader
from botocore.exceptions import BotoCoreError, ClientError
from dead_letters_view import render_dead_letters
from streamlit.runtime.uploaded_file_manager import UploadedFile

from pixsearch import status
from pixsearch.config import get_settings
from pixsearch.storage import ObjectStore
from pixsearch.webui.lists import (
    UPLOAD_FORMATS,
    ListRejected,
    pasted_list,
    upload_format,
    upload_list,
)
from pixsearch.webui.progress import ListProgress

WATCHED = "watched_list"
LIST_NAME = "list_name"
PASTED = "pasted_urls"
LIST_FILE = "url_file"
INGEST_MESSAGE = "ingest_message"
REFRESH_S = 2.0
STORE_ERRORS = (BotoCoreError, ClientError)


def render_ingest() -> None:
    st.subheader("Add images")
    st.session_state.setdefault(LIST_NAME, _default_name())
    with st.form("ingest"):
        st.text_input("List name", key=LIST_NAME, help="Names the list and its URL map")
        st.text_area("Image URLs, one per line", key=PASTED, height=120)
        st.file_uploader("…or a .txt / .csv URL list", type=list(UPLOAD_FORMATS), key=LIST_FILE)
        st.form_submit_button("Ingest", type="primary", on_click=_ingest)
    message = st.session_state.pop(INGEST_MESSAGE, None)
    if message is not None:
        kind, text = message
        (st.success if kind == "success" else st.error)(text)

    st.subheader("Pipeline")
    _render_pipeline()


def _ingest() -> None:
    """Upload the form's list (a submit callback, so it may reset the form's fields)."""
    settings = get_settings()
    uploaded: UploadedFile | None = st.session_state.get(LIST_FILE)
    try:
        if uploaded is not None:
            fmt, data = upload_format(uploaded.name), uploaded.getvalue()
        else:
            fmt, data = "txt", pasted_list(st.session_state.get(PASTED, ""))
        store = ObjectStore.from_settings(settings)
        stored = upload_list(store, settings, st.session_state.get(LIST_NAME, ""), data, fmt)
    except ListRejected as error:
        st.session_state[INGEST_MESSAGE] = ("error", f"Not ingested: {error}")
        return
    except STORE_ERRORS as error:
        st.session_state[INGEST_MESSAGE] = ("error", f"Cannot write to the object store: {error}")
        return
    st.session_state[WATCHED] = stored.name
    st.session_state[LIST_NAME] = _default_name()
    st.session_state[PASTED] = ""
    st.session_state[INGEST_MESSAGE] = (
        "success",
        f"Uploaded {stored.urls} URL(s) to s3://{settings.bucket}/{stored.key}; "
        "the pipeline picks it up from there."
        + (
            f" {stored.bad_rows} row(s) without a usable URL are recorded as failed."
            if stored.bad_rows
            else ""
        ),
    )


@st.fragment(run_every=REFRESH_S)
def _render_pipeline() -> None:
    settings = get_settings()
    reader = progress_reader()
    try:
        names = reader.list_names()
        stages = status.queue_depths(settings)
        index = reader.index_state()
    except STORE_ERRORS as error:
        st.error(f"Cannot read the pipeline state from the object store: {error}")
        return
    _render_queues(stages, index.version, index.vector_count)
    if not names:
        st.info("No URL list yet: paste some image URLs above to start.")
        return
    if st.session_state.get(WATCHED) not in names:
        st.session_state[WATCHED] = names[-1]
    name = st.selectbox("URL list", names, key=WATCHED)
    try:
        progress = reader.list_progress(name)
    except STORE_ERRORS as error:
        st.error(f"Cannot read the progress of {name!r}: {error}")
        return
    _render_list(progress)


def _render_queues(stages: dict[str, dict[str, int]], version: int, vectors: int) -> None:
    rows = [
        {
            "stage": name,
            "queued": depth["queued"],
            "in flight": depth["in_flight"],
            "dead letters": depth["dead_letters"],
        }
        for name, depth in stages.items()
    ]
    dead = sum(row["dead letters"] for row in rows)
    st.caption(f"Index version {version} · {vectors} vectors · updated {_now()}")
    st.dataframe(rows, hide_index=True, width="stretch")
    if dead:
        render_dead_letters(dead)


def _render_list(progress: ListProgress) -> None:
    if not progress.started:
        st.info(f"Waiting for the download stage to pick up {progress.name!r}…")
        return
    total = progress.total or 0
    columns = st.columns(4)
    columns[0].metric("URLs done", f"{progress.processed} / {total}")
    columns[1].metric(
        "Downloaded", progress.downloaded, help=f"{progress.duplicates} were already stored"
    )
    columns[2].metric("Embedded", f"{progress.embedded} / {progress.images}")
    columns[3].metric("Indexed", f"{progress.indexed} / {progress.images}")
    st.progress(_fraction(progress.processed, total), text="download")
    st.progress(_fraction(progress.embedded, progress.images), text="embed")
    st.progress(_fraction(progress.indexed, progress.images), text="index")
    if progress.complete:
        st.success(
            f"{progress.name!r} is done: {progress.indexed} image(s) searchable, "
            f"{progress.failed} URL(s) failed."
        )
    if progress.failures:
        st.markdown(f"**{progress.failed} failed URL(s), by reason**")
        st.dataframe(
            [
                {
                    "reason": group.reason,
                    "count": group.count,
                    "example": group.example_url,
                    "detail": group.example_message or "",
                }
                for group in progress.failures
            ],
            hide_index=True,
            width="stretch",
        )


def _fraction(done: int, total: int) -> float:
    return min(1.0, done / total) if total else 0.0


def _default_name() -> str:
    return datetime.now(UTC).strftime("web-%Y%m%d-%H%M%S")


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S UTC")
