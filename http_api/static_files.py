"""The operators' monitor page (``GET /monitor``): its files, shipped in this package under
``http_api/static/monitor/`` (plain HTML, CSS and JavaScript: no build step, nothing fetched from
another host, so it works on a plant network without internet).

Each file is read once, with its media type and an ``ETag`` (a digest of its bytes). They are
served with ``Cache-Control: no-cache``: a browser keeps them but asks each time whether they
changed, and gets a 304 without a body when not, so a deploy is seen at the next load.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

#: The page's folder inside the package.
FOLDER = "static/monitor"
#: The page's URL; its other files are ``/monitor/<name>``.
PAGE_PATH = "/monitor"
PAGE_FILE = "index.html"
#: The files of the page and their media types (what is not listed here is not served).
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "monitor.css": "text/css; charset=utf-8",
    "monitor.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "model.js": "text/javascript; charset=utf-8",
}
#: What the page may load: only this origin (no CDN, no inline script or style).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    name: str
    media_type: str
    data: bytes

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:20] + '"'

    @property
    def headers(self) -> dict[str, str]:
        """The headers of its 200 (and, but for the type, of its 304)."""
        headers = {
            "Cache-Control": "no-cache",
            "ETag": self.etag,
            "X-Content-Type-Options": "nosniff",
        }
        if self.name == PAGE_FILE:
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            headers["Referrer-Policy"] = "no-referrer"
        return headers

    def matches(self, if_none_match: str | None) -> bool:
        """Whether a request's ``If-None-Match`` names this version (a 304 then)."""
        if not if_none_match:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


@functools.cache
def static_file(name: str) -> StaticFile:
    """The page's file ``name`` (one of ``MEDIA_TYPES``), read once from the package."""
    data = resources.files("http_api").joinpath(f"{FOLDER}/{name}").read_bytes()
    return StaticFile(name, MEDIA_TYPES[name], data)


def url_path(name: str) -> str:
    """Where the file ``name`` is served."""
    return PAGE_PATH if name == PAGE_FILE else f"{PAGE_PATH}/{name}"


#: Every path of the page: open without the token (the page asks for it when the API answers
#: 401, and sends it with the API calls it makes).
PAGE_PATHS = frozenset(url_path(name) for name in MEDIA_TYPES)
