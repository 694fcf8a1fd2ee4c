"""The Ingest tab: a pasted or uploaded URL list goes to ``urls/`` and its progress is shown."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.runtime.emulator import free_port
from pixsearch.storage import ObjectStore, client
from tests.fixtures.images import ImageServer


def submit(app: AppTest) -> AppTest:
    return next(b for b in app.button if b.label == "Ingest").click().run()


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_pasted_urls_are_ingested_and_their_progress_and_failures_shown(
    image_server: ImageServer, app: AppTest, api_url: str, store: ObjectStore, pipeline: Dispatcher
):
    good = image_server.add_images(3)
    missing = image_server.url("nowhere.jpg")
    text = image_server.add_bytes("notes.txt", b"just text", "text/plain")
    app.run()
    app.text_input(key="list_name").input("holiday")
    pasted = [*good, "", missing, text, "ftp://files.example/x.jpg"]
    app.text_area(key="pasted_urls").input("\n".join(pasted) + "\n")
    submit(app)
    assert not app.exception
    assert [s.value for s in app.tabs[1].success] == [
        f"Uploaded 5 URL(s) to s3://{store.bucket}/urls/holiday.txt; "
        "the pipeline picks it up from there. "
        "1 row(s) without a usable URL are recorded as failed."
    ]
    assert store.get("urls/holiday.txt").decode().split() == [u for u in pasted if u]
    assert app.text_input(key="list_name").value != "holiday"  # ready for the next list

    pipeline.drain()
    app.run()
    assert not app.exception
    assert app.selectbox(key="watched_list").value == "holiday.txt"
    assert metrics(app) == {
        "URLs done": "6 / 6",
        "Downloaded": "3",
        "Embedded": "3 / 3",
        "Indexed": "3 / 3",
    }
    failures = app.dataframe[-1].value
    assert sorted(zip(failures["reason"], failures["count"], strict=True)) == [
        ("bad_url", 1),
        ("http_404", 1),
        ("not_image", 1),
    ]
    queues = app.dataframe[0].value
    assert list(queues["stage"]) == ["download", "embed", "index"]
    assert list(queues["dead letters"]) == [0, 0, 0]
    done = [s.value for s in app.tabs[1].success]
    assert "'holiday.txt' is done: 3 image(s) searchable, 3 URL(s) failed." in done


def test_uploaded_csv_list_is_stored_under_its_format(
    image_server: ImageServer,
    tiny_model: ClipModel,
    app: AppTest,
    store: ObjectStore,
    pipeline: Dispatcher,
):
    urls = image_server.add_images(2, prefix="csv")
    data = (
        "url,caption\n" + "".join(f"{url},picture {i}\n" for i, url in enumerate(urls))
    ).encode()
    app.run()
    app.text_input(key="list_name").input("from-file")
    app.file_uploader(key="url_file").upload("urls.csv", data, "text/csv")
    submit(app)
    assert not app.exception
    assert store.get("urls/from-file.csv") == data
    pipeline.drain()
    app.run()
    assert metrics(app)["Indexed"] == "2 / 2"


def test_bad_name_and_reused_name_are_refused_with_a_reason(app: AppTest, store: ObjectStore):
    app.run()
    app.text_input(key="list_name").input("../etc")
    app.text_area(key="pasted_urls").input("http://example.com/a.jpg")
    submit(app)
    [error] = app.tabs[1].error
    assert error.value.startswith("Not ingested: a list name is 1 to 100")
    assert store.count("urls/") == 0

    app.text_input(key="list_name").input("once")
    submit(app)
    app.text_input(key="list_name").input("once")
    app.text_area(key="pasted_urls").input("http://example.com/b.jpg")
    submit(app)
    assert [e.value for e in app.tabs[1].error] == [
        "Not ingested: a list named 'once' exists already (urls/once.txt); pick a new name"
    ]
    assert store.get("urls/once.txt") == b"http://example.com/a.jpg\n"


def test_nothing_pasted_asks_for_urls(app: AppTest, store: ObjectStore):
    app.run()
    submit(app)
    assert [e.value for e in app.tabs[1].error] == [
        "Not ingested: paste at least one image URL, one per line"
    ]


def test_a_list_the_download_stage_could_not_read_is_refused_with_its_reason(
    app: AppTest, store: ObjectStore
):
    app.run()
    app.text_input(key="list_name").input("columns")
    app.file_uploader(key="url_file").upload("urls.csv", b"link,caption\nhttp://a/b.jpg,x\n")
    submit(app)
    [error] = app.tabs[1].error
    assert error.value.startswith("Not ingested: 'urls/columns.csv': no 'url' column")
    assert "PIXSEARCH_DOWNLOAD_URL_COLUMN" in error.value
    assert store.count("urls/") == 0


def test_a_list_without_any_usable_url_is_refused(app: AppTest, store: ObjectStore):
    app.run()
    app.text_area(key="pasted_urls").input("not a url\nftp://files.example/a.jpg")
    submit(app)
    assert [e.value for e in app.tabs[1].error] == [
        "Not ingested: the list has no usable http(s) URL"
    ]
    assert store.count("urls/") == 0


def test_object_store_down_is_a_message_not_a_traceback(
    app: AppTest, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("PIXSEARCH_API_URL", f"http://127.0.0.1:{free_port()}")
    client.cache_clear()
    try:
        app.run()
    finally:
        client.cache_clear()
    assert not app.exception
    [error] = app.tabs[1].error
    assert error.value.startswith("Cannot read the pipeline state from the object store:")
