"""gunicorn settings of the HTTP API: ``gunicorn -c ops/gunicorn.conf.py [--bind HOST:PORT]``.

Works from any working directory (it changes to the repo root, where ``http_api`` and
``pipeline`` live and where a relative ``TRACE_SOURCE_URL`` such as the default
``sqlite:///var/demo-warehouse.db`` is resolved). The app reads its ``TRACE_*`` settings from
the environment (``.env.example``); gunicorn's own knobs are not ``TRACE_*`` settings:

* ``GUNICORN_WORKERS`` (processes, default 2) and ``GUNICORN_THREADS`` (threads per process,
  default 16: each open NDJSON stream holds one thread for as long as it lasts);
* ``PYTHONMALLOC=malloc`` in its environment (the systemd unit and ``pipeline/tools/stack.py``
  set it; a start without it is logged as a warning): see ``http_api/heap.py``;
* anything else through gunicorn's ``GUNICORN_CMD_ARGS`` (e.g. ``"--timeout 300"``) or on the
  command line; both win over this file, so ``--bind`` replaces the default address.

gunicorn >= 25.1 also opens a control socket, ``$XDG_RUNTIME_DIR/gunicorn.ctl`` (else
``~/.gunicorn/gunicorn.ctl``): give each instance on one host its own (``--control-socket``).
"""

import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
chdir = ROOT  # gunicorn changes here (and puts it on sys.path) before loading the app

from http_api import heap  # noqa: E402 (needs ROOT on sys.path)

wsgi_app = "http_api.app:get_app()"

# Memory (http_api/heap.py, README "Memory of the API"): 2 malloc arenas per process instead of
# one per request thread, set here in the master so every worker forks with it.
heap.limit_arenas()


def on_starting(server):  # gunicorn's hook, in the master
    if os.environ.get("PYTHONMALLOC") != "malloc":
        server.log.warning(
            "PYTHONMALLOC is not 'malloc': big request bodies leave pymalloc arenas behind "
            "(worker RSS grows; http_api/heap.py)"
        )


bind = ["127.0.0.1:8000"]

# Threads, not sync workers: a sync worker is killed when one response outlasts `timeout`,
# and a stream of a big job lasts minutes. gthread serves each request in a thread; ours
# (http_api/server.py) answers the requests gunicorn refuses itself in the JSON envelope, never
# in gunicorn's HTML.
worker_class = "http_api.server.JsonErrorsThreadWorker"
# What gunicorn reads of a request before the app (bytes; headers): past these it answers 414
# or 431 itself (as JSON). 8190 bytes is gunicorn's largest request line; ids belong in bodies.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
workers = int(os.environ.get("GUNICORN_WORKERS") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 16)

# With gthread, `timeout` is the worker's heartbeat to the master (sent by its main loop while
# request threads run), not a bound on a request: a stream may take as long as it needs. A worker
# whose main loop is stuck this long (a deadlock, the GIL held for minutes) is killed.
timeout = 120
# On a restart or stop (SIGHUP/SIGTERM) open responses get this long to finish before their
# worker is killed; a cut stream's client resumes with `?from=domain:batch`.
graceful_timeout = 90
# Seconds an idle keep-alive connection stays open (a proxy in front may keep its own longer).
keepalive = 5

accesslog = "-"  # stdout
errorlog = "-"  # stderr
# Access lines as logfmt, like the app's own lines (pipeline.logs): path without the query
# string, which may hold a token or long id lists; ms = time to the last byte of the response.
access_log_format = (
    'access=1 remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s ms=%(M)s'
)
