"""The page's "API" link, ``/docs``, is Swagger UI served by this server: nothing from a CDN.

(The browser check that it renders with every outside request blocked is in test_browser.py.)
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx
import pytest

from tests.serve.support import EchoEngine, start


@pytest.fixture(scope="module")
def server():
    with start(EchoEngine()) as server:
        yield server


def test_docs_load_only_from_this_server(server):
    page = httpx.get(server.url + "/docs", timeout=10)
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assets += re.findall(r"""url: ?["']([^"']+)["']""", page.text)  # the OpenAPI document
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert not re.match(r"(https?:)?//", asset), f"{asset} is not served here"
        fetched = httpx.get(urljoin(server.url + "/docs", asset), timeout=10)
        assert fetched.status_code == 200 and fetched.content, asset


def test_the_page_links_to_the_docs(server):
    assert 'href="/docs"' in httpx.get(server.url + "/", timeout=10).text
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    assert "/v1/audio/transcriptions" in schema["paths"]
