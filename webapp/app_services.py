"""The web app's long-lived objects, one per server process (``st.cache_resource``)."""

from __future__ import annotations

import os

import streamlit as st

from pixsearch.config import get_settings
from pixsearch.storage import ObjectStore
from pixsearch.webui.api_client import SearchApi
from pixsearch.webui.progress import ProgressReader

API_URL_VARIABLE = "PIXSEARCH_API_URL"


def api_url() -> str:
    """``PIXSEARCH_API_URL``, else the local API address from the settings."""
    settings = get_settings()
    return os.environ.get(API_URL_VARIABLE) or f"http://{settings.api_host}:{settings.api_port}"


def search_api() -> SearchApi:
    return _search_api(api_url())


def progress_reader() -> ProgressReader:
    settings = get_settings()
    return _progress_reader(settings.bucket, settings.region, settings.model_tag)


@st.cache_resource(show_spinner=False)
def _search_api(url: str) -> SearchApi:
    return SearchApi.from_settings(url, get_settings())


@st.cache_resource(show_spinner=False)
def _progress_reader(bucket: str, region: str, model_tag: str) -> ProgressReader:
    return ProgressReader(ObjectStore(bucket, region=region), model_tag)
