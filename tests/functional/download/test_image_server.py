"""The shared image server fixture serves real, decodable, distinct images."""

from __future__ import annotations

import io
import urllib.request

from PIL import Image

from pixsearch.config import Settings, get_settings
from tests.fixtures.images import ImageServer, make_image


def test_serves_distinct_decodable_images(image_server: ImageServer) -> None:
    urls = image_server.add_images(3, fmt="PNG")
    bodies = [urllib.request.urlopen(url, timeout=5).read() for url in urls]
    assert len(set(bodies)) == 3
    for body in bodies:
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "PNG"
            image.load()
    assert image_server.hits["/img/0.png"] == 1


def test_allows_only_its_own_address(image_server: ImageServer) -> None:
    assert get_settings().download_allow == f"127.0.0.1:{image_server.port}"


def test_settings_carry_the_allow_list_whatever_the_order(
    settings: Settings, image_server: ImageServer
) -> None:
    assert settings.download_allow == image_server.allow_entry


def test_make_image_formats_and_shapes_differ() -> None:
    plain = make_image((10, 20, 30))
    circle = make_image((10, 20, 30), shape="circle")
    webp = make_image((10, 20, 30), size=(20, 10), fmt="WEBP")
    assert plain != circle
    with Image.open(io.BytesIO(webp)) as image:
        assert (image.format, image.size) == ("WEBP", (20, 10))
