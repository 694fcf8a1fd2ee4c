"""The sidebar: is the search API reachable, and what index is it serving."""

from __future__ import annotations

import streamlit as st

from pixsearch.webui.api_client import ApiError, SearchApi
from pixsearch.webui.formatting import format_age

REFRESH_S = 5.0


@st.fragment(run_every=REFRESH_S)
def render_health(api: SearchApi) -> None:
    """Re-checked every few seconds, so the sidebar follows the index as it grows."""
    st.header("Search API")
    try:
        health = api.health()
    except ApiError as error:
        st.error(f"API unreachable: {error.message}")
        st.caption(api.base_url)
        return
    if health.status == "ok":
        st.success("API reachable: ok", icon=":material/check_circle:")
    else:
        st.warning(f"API reachable, {health.status}: {health.reason or 'no reason given'}")
    st.caption(api.base_url)
    st.markdown(
        "\n".join(
            [
                f"- **Model:** `{health.model}`" + ("" if health.model_loaded else " (loading)"),
                f"- **Index version:** {_or_none(health.index_version)}",
                f"- **Vectors:** {_or_none(health.vector_count)}",
                f"- **Segments:** {_or_none(health.segment_count)}",
                f"- **Last update:** {format_age(health.index_age_s)}",
            ]
        )
    )


def _or_none(value: object) -> str:
    return "none" if value is None else str(value)
