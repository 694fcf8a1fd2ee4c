"""The Search tab and the health sidebar against a running search API (Streamlit AppTest)."""

from __future__ import annotations

import pytest
import requests
from streamlit.testing.v1 import AppTest

from pixsearch.runtime.emulator import free_port
from tests.fixtures.model import StoredImage


def search_text(app: AppTest, text: str, k: int = 8) -> AppTest:
    app.slider(key="k").set_value(k)
    app.text_input(key="query_text").input(text)
    return app.button[_index_of(app, "Search")].click().run()


def _index_of(app: AppTest, label: str) -> int:
    return next(i for i, button in enumerate(app.button) if button.label == label)


def result_images(app: AppTest) -> list[str]:
    """URLs of the result thumbnails (the query image, when shown, has a caption)."""
    return [image.value[0] for image in app.get("image") if not image.captions[0]]


def test_text_search_shows_k_thumbnails_with_scores_and_source_links(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    app.run()
    search_text(app, "a white circle", k=5)
    assert not app.exception
    urls = result_images(app)
    assert len(urls) == 5
    for url in urls:
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        assert response.content in {image.data for image in indexed_images}
    sources = {button.proto.url for button in app.get("link_button")}
    assert len(sources) == 5
    assert sources <= {image.source_url for image in indexed_images}
    captions = [caption.value for caption in app.caption]
    scores = [float(text.split()[1]) for text in captions if text.startswith("score")]
    assert len(scores) == 5
    assert scores == sorted(scores, reverse=True)


def test_more_like_this_searches_with_the_result_image(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    app.run()
    search_text(app, "stripes", k=3)
    first = result_images(app)[0]
    app.button(key="more_like_0").click().run()
    assert not app.exception
    query_image = [image.value[0] for image in app.get("image") if image.captions[0]]
    assert query_image == [first]
    urls = result_images(app)
    assert len(urls) == 3
    assert requests.get(urls[0], timeout=10).content == requests.get(first, timeout=10).content
    assert any("results for images like the chosen result" in c.value for c in app.caption)


def test_uploaded_image_finds_itself_first(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    app.run()
    wanted = indexed_images[3]
    app.file_uploader(key="query_image").upload("mine.png", wanted.data, "image/png").run()
    assert not app.exception
    urls = result_images(app)
    assert len(urls) == 8
    assert requests.get(urls[0], timeout=10).content == wanted.data


def test_sidebar_reports_the_served_index(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    requests.post(f"{api_url}/search", json={"query_text": "warm up"}, timeout=60)
    app.run()
    sidebar = "\n".join(element.value for element in app.sidebar.markdown)
    assert "pixsearch-tiny" in sidebar
    assert "**Vectors:** 8" in sidebar
    assert "**Index version:** " in sidebar
    assert [alert.value for alert in app.sidebar.success][0].startswith("API reachable")


def test_rejected_query_shows_the_api_message(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    app.run()
    search_text(app, "x" * 1001)
    assert not app.exception
    errors = [error.value for error in app.error]
    assert errors == [
        "The search API rejected the query: query_text is 1001 characters; the limit is 1000"
    ]


def test_empty_index_is_explained(app: AppTest, api_url: str):
    app.run()
    search_text(app, "anything")
    assert not app.exception
    assert not app.error
    [info] = app.tabs[0].info
    assert info.value.startswith("Nothing to search yet:")
    assert "Ingest" in info.value


def test_api_down_is_a_message_not_a_traceback(
    app: AppTest, monkeypatch: pytest.MonkeyPatch, settings
):
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PIXSEARCH_API_URL", down)
    app.run()
    search_text(app, "anything")
    assert not app.exception
    messages = [error.value for error in app.error]
    assert any(m.startswith("The search API is not reachable") and down in m for m in messages)
    assert any(m.startswith("API unreachable") for m in (e.value for e in app.sidebar.error))


def test_an_upload_that_is_no_image_shows_why_the_api_refused_it(
    app: AppTest, api_url: str, indexed_images: list[StoredImage]
):
    app.run()
    app.file_uploader(key="query_image").upload("fake.png", b"not an image at all", "image/png")
    app.run()
    assert not app.exception
    [error] = app.tabs[0].error
    assert error.value.startswith("The search API rejected the query: ")
    assert "is not usable (" in error.value  # the API's own reason, passed through
    assert result_images(app) == []
