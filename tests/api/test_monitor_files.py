"""``GET /monitor`` and its files (``http_api.static_files``): served from the package with
their media types and cache headers, open without the token (unlike the API they call), and
self-contained: nothing the page loads comes from another host.

The page in a real browser against a real stack: ``tests/browser/test_monitor_page.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import falcon.testing

from http_api.guards import OPEN_PATHS
from http_api.static_files import FOLDER, MEDIA_TYPES, PAGE_PATHS, url_path
from tests.api.conftest import AppFactory

TOKEN = "monitor-test-token"
STATIC = Path(__file__).resolve().parents[2] / "http_api" / FOLDER
#: The only absolute URL the files may hold: the SVG namespace (a name, never fetched).
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_every_file_is_served_with_its_type_and_revalidated_by_etag(
    client: falcon.testing.TestClient,
) -> None:
    for name, media_type in MEDIA_TYPES.items():
        first = client.simulate_get(url_path(name))
        assert first.status_code == 200, name
        assert first.headers["content-type"] == media_type
        assert first.headers["cache-control"] == "no-cache"
        assert first.headers["x-content-type-options"] == "nosniff"
        assert first.content == (STATIC / name).read_bytes()
        etag = first.headers["etag"]
        again = client.simulate_get(url_path(name), headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", name
        assert again.headers["etag"] == etag
        other = client.simulate_get(url_path(name), headers={"If-None-Match": '"other"'})
        assert other.status_code == 200


def test_the_page_loads_nothing_from_another_host(client: falcon.testing.TestClient) -> None:
    page = client.simulate_get("/monitor")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "http" not in policy
    for path in sorted(STATIC.iterdir()):
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {SVG_NAMESPACE}, (path.name, urls)
    # every file the page or a module refers to is one the app serves
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    referred = set(re.findall(r'(?:href|src)="(/monitor/[^"]+)"', html))
    for module in STATIC.glob("*.js"):
        for name in re.findall(r'from "\./([\w.-]+)"', module.read_text(encoding="utf-8")):
            referred.add(url_path(name))
    assert referred and referred <= PAGE_PATHS
    assert {p.name for p in STATIC.iterdir()} == set(MEDIA_TYPES)


def test_the_page_is_open_but_the_api_it_calls_needs_the_token(make_app: AppFactory) -> None:
    client, _ = make_app(TRACE_API_TOKEN=TOKEN)
    assert PAGE_PATHS <= OPEN_PATHS
    for path in PAGE_PATHS:
        assert client.simulate_get(path).status_code == 200, path
    assert client.simulate_get("/monitor/").status_code == 200  # the trailing slash is stripped
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    # only the listed files are open: any other path is the API's (token first, then 404)
    assert client.simulate_get("/monitor/secret.txt").status_code == 401
    assert client.simulate_get("/monitor/secret.txt", headers=bearer).status_code == 404
    assert client.simulate_get("/api/trace/job-events").status_code == 401
    assert client.simulate_get("/api/trace/job-events", headers=bearer).status_code == 200
