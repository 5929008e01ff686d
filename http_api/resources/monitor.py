"""``GET /monitor`` and its files (``http_api.static_files``): the operators' job monitor page.

Open without the token (``http_api.guards.OPEN_PATHS``): the page itself holds no data, it asks
for the token when the API answers 401 and sends it with every call. One resource class per
file, each with its own operation (the OpenAPI document lists them as open ``ops`` paths).
"""

from __future__ import annotations

import falcon

from http_api.operation import Answer, Operation, operation
from http_api.resources.base import Resource
from http_api.static_files import MEDIA_TYPES, StaticFile, static_file, url_path


def _serve(file: StaticFile, req: falcon.Request, resp: falcon.Response) -> None:
    resp.set_headers(file.headers)
    if file.matches(req.get_header("If-None-Match")):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = file.media_type
    resp.data = file.data


def _operation_id(name: str) -> str:
    """``index.html`` -> ``getMonitorPage``; ``monitor.css`` -> ``getMonitorCss``, ..."""
    if name == "index.html":
        return "getMonitorPage"
    stem, _, ext = name.partition(".")
    suffix = ext.capitalize() if stem == "monitor" else stem.capitalize() + ext.capitalize()
    return "getMonitor" + suffix


def file_resource(name: str) -> type[Resource]:
    """A resource serving the page's file ``name``."""
    media = MEDIA_TYPES[name].partition(";")[0]
    what = "The job monitor page." if name == "index.html" else f"The monitor page's {name}."
    unchanged = "Unchanged since the version the request's If-None-Match names."
    spec = Operation(
        _operation_id(name),
        what,
        {
            200: Answer(what, media=media, enveloped=False),
            304: Answer(unchanged, media=media, enveloped=False),
        },
        description="Static, shipped in the package; `Cache-Control: no-cache` with an ETag.",
        open_access=True,
    )

    class FileResource(Resource):
        @operation(spec)
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            _serve(static_file(name), req, resp)

    FileResource.__name__ = FileResource.__qualname__ = spec.id[3:] + "Resource"
    return FileResource


#: The page's routes: path -> resource class (``http_api.routes``).
MONITOR_ROUTES: dict[str, type[Resource]] = {url_path(n): file_resource(n) for n in MEDIA_TYPES}
