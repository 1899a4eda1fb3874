"""`/docs` works offline (issue #19): the page names no other host, and every script,
stylesheet and icon it references is answered by this server; `/favicon.ico` answers too."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_the_docs_page_references_no_other_host_and_its_assets_answer(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert not re.search(r"(https?:)?//[a-z0-9.-]+", page.text, re.IGNORECASE), page.text
    links = _Links()
    links.feed(page.text)
    assert set(links.urls) == {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/favicon.ico",
    }
    for url in links.urls:
        answer = api.client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url
    assert "SwaggerUIBundle" in api.client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "'/openapi.json'" in page.text
    assert api.client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_the_favicon_answers_at_the_root_and_from_the_console(api: Api) -> None:
    icon = api.client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    assert api.client.get("/console/static/favicon.svg").content == icon.content
    login = api.client.get("/console/login")
    assert '<link rel="icon" href="/console/static/favicon.svg"' in login.text
    # Not an API route: the OpenAPI document does not list it, nor the docs page.
    assert not {"/favicon.ico", "/docs"} & set(api.client.get("/openapi.json").json()["paths"])
