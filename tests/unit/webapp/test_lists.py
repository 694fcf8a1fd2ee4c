from __future__ import annotations

import pytest

from pixsearch.webui.lists import ListRejected, check_name, pasted_list, upload_format


@pytest.mark.parametrize("name", ["holiday", "  web-2026.11_a  ", "9", "a" * 100])
def test_key_safe_names_are_accepted_stripped(name: str):
    assert check_name(name) == name.strip()


@pytest.mark.parametrize(
    "name", ["", "   ", "../etc", "a/b", ".hidden", "-x", "with space", "é", "a" * 101]
)
def test_names_that_could_escape_or_confuse_the_key_layout_are_refused(name: str):
    with pytest.raises(ListRejected, match="a list name is 1 to 100"):
        check_name(name)


def test_pasted_urls_become_one_per_line_without_blanks():
    text = "  http://a.example/1.jpg \r\n\n\thttp://a.example/2.png\n   \n"
    assert pasted_list(text) == b"http://a.example/1.jpg\nhttp://a.example/2.png\n"


@pytest.mark.parametrize("text", ["", " \n\t\n"])
def test_nothing_pasted_is_refused(text: str):
    with pytest.raises(ListRejected, match="paste at least one image URL"):
        pasted_list(text)


@pytest.mark.parametrize(("filename", "fmt"), [("urls.txt", "txt"), ("My List.CSV", "csv")])
def test_upload_format_comes_from_the_extension(filename: str, fmt: str):
    assert upload_format(filename) == fmt


@pytest.mark.parametrize("filename", ["urls", "urls.jsonl", "photo.jpg", "urls.txt.gz"])
def test_other_uploads_are_refused_naming_the_file(filename: str):
    with pytest.raises(ListRejected, match=r"is not a \.txt or \.csv file") as error:
        upload_format(filename)
    assert repr(filename) in str(error.value)
