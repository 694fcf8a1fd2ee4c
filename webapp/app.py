"""pixsearch web app: search by text or image, ingest URL lists, watch the pipeline.

Run with ``streamlit run webapp/app.py`` (``pixsearch up`` does it). Searches go
to the search API at ``PIXSEARCH_API_URL``; ingest and progress use the object
store through the library, configured by the usual ``PIXSEARCH_*`` / ``AWS_*``
environment.
"""

from __future__ import annotations

import streamlit as st
from app_services import search_api
from health_sidebar import render_health
from ingest_view import render_ingest
from search_view import render_search

st.set_page_config(page_title="pixsearch", page_icon=":mag:", layout="wide")

api = search_api()
with st.sidebar:
    render_health(api)

st.title("pixsearch")
search_tab, ingest_tab = st.tabs(["Search", "Ingest & pipeline"])
with search_tab:
    render_search(api)
with ingest_tab:
    render_ingest()
