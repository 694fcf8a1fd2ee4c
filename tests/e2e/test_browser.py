"""A user in a real browser: ingest a URL list, search by text and by image, see the images.

``pixsearch up`` runs the whole stack (moto, the stage runtime, the search API
and the web app) as a child process; headless Chromium drives the web app.
Every result thumbnail must have loaded (``complete`` with a non-zero natural
width), fetched by the browser itself from the object store's presigned URLs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.browser import StackProcess
from tests.fixtures.images import ImageServer, make_image

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

IMAGES = 10
DEFAULT_K = 8
RESULT_IMAGES = '[data-testid="stImage"] img'
ALL_LOADED = """([selector, count]) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length >= count && images.every(i => i.complete && i.naturalWidth > 0);
}"""


def loaded_sizes(page, selector: str) -> list[int]:
    return page.eval_on_selector_all(selector, "images => images.map(i => i.naturalWidth)")


def test_ingest_then_text_and_image_search_render_real_images(
    image_server: ImageServer, local_stack: StackProcess, browser_page, tmp_path: Path
):
    page = browser_page
    urls = image_server.add_images(IMAGES)
    page.goto(local_stack.webapp_url)
    page.get_by_text("API reachable").wait_for()

    page.get_by_role("tab", name="Ingest & pipeline").click()
    page.get_by_role("textbox", name="List name").fill("browser")
    page.get_by_role("textbox", name="Image URLs, one per line").fill("\n".join(urls))
    page.get_by_role("button", name="Ingest").click()
    page.get_by_text(f"Uploaded {IMAGES} URL(s)").wait_for()
    done = page.get_by_text(f"'browser.txt' is done: {IMAGES} image(s) searchable")
    done.wait_for(timeout=180_000)
    page.screenshot(path=str(tmp_path / "ingest.png"), full_page=True)

    page.get_by_role("tab", name="Search").click()
    page.get_by_role("textbox", name="Search by text").fill("a white circle")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text(f"{DEFAULT_K} results for “a white circle”").wait_for()
    page.wait_for_function(ALL_LOADED, arg=[RESULT_IMAGES, DEFAULT_K])
    widths = loaded_sizes(page, RESULT_IMAGES)
    assert len(widths) == DEFAULT_K
    assert all(width > 0 for width in widths)
    page.screenshot(path=str(tmp_path / "text-search.png"), full_page=True)

    page.get_by_role("button", name="More like this").first.click()
    page.get_by_text("results for images like the chosen result").wait_for()
    page.wait_for_function(ALL_LOADED, arg=[RESULT_IMAGES, DEFAULT_K + 1])
    assert len(loaded_sizes(page, RESULT_IMAGES)) == DEFAULT_K + 1  # the chosen one first

    query = tmp_path / "query.png"
    query.write_bytes(make_image((90, 200, 90), size=(48, 48), fmt="PNG", shape="circle"))
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="upload an image")
    uploader.locator('input[type="file"]').set_input_files(str(query))
    page.get_by_text("results for images like query.png").wait_for()
    page.wait_for_function(ALL_LOADED, arg=[RESULT_IMAGES, DEFAULT_K + 1])
    widths = loaded_sizes(page, RESULT_IMAGES)
    assert len(widths) == DEFAULT_K + 1  # the query image and its results
    assert all(width > 0 for width in widths)
    screenshot = tmp_path / "webapp.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
