"""Dead letters in the pipeline view: list them on request, send them back with one click."""

from __future__ import annotations

import streamlit as st
from botocore.exceptions import BotoCoreError, ClientError

from pixsearch import dlq
from pixsearch.config import get_settings

SHOW = "show_dead_letters"
REDRIVE = "redrive_dead_letters"
STORE_ERRORS = (BotoCoreError, ClientError)


def render_dead_letters(count: int) -> None:
    """A warning with the dead letters behind a button (listing them counts as a receive)."""
    st.warning(
        f"{count} message(s) in dead-letter queues: records that failed on every delivery. "
        "Fix the cause, then send them back."
    )
    settings = get_settings()
    show, redrive = st.columns(2)
    if show.button("Show dead letters", key=SHOW):
        try:
            letters = dlq.list_dead_letters(settings)
        except STORE_ERRORS as error:
            st.error(f"Cannot read the dead-letter queues: {error}")
            return
        st.dataframe(
            [
                {
                    "stage": letter.stage,
                    "object key(s)": ", ".join(letter.object_keys) or letter.body_excerpt,
                    "receives": letter.receive_count,
                    "first failure": letter.first_failure or "unknown (see the function's logs)",
                }
                for letter in letters
            ],
            hide_index=True,
            width="stretch",
        )
    if redrive.button("Send them back to their queues", key=REDRIVE):
        try:
            st.success(dlq.render_redrive(dlq.redrive(settings)))
        except STORE_ERRORS as error:
            st.error(f"Cannot move the dead letters back: {error}")
