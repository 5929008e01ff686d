"""``GET /healthz``: the process is up (no dependency is checked: that is readiness)."""

from __future__ import annotations

import falcon


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"success": True, "data": {"status": "ok"}}
