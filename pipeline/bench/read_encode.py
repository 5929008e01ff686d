"""The stream's limit: how fast stored chunks become the stream's NDJSON ``records`` lines when
nothing else is done (no HTTP, no framework), measured in a process set up as the API's are.

The API runs with glibc's allocator (``PYTHONMALLOC=malloc``, at most ``heap.API_MALLOC_ARENAS``
arenas: what keeps its memory flat, ``http_api/heap.py``), which turns the millions of small
objects of the encoding (a tuple, strings and a dict per row) ~30 % slower than pymalloc does. So
the bare read + encode runs in a child process with the API's allocator environment
(``pipeline.tools.stack.API_ALLOCATOR_ENV``): the stream / read+encode ratio then measures what
HTTP, gunicorn and the stream's own bookkeeping add, not the allocator both pay.

``python -m pipeline.bench.read_encode REDIS_URL JOB_ID REPEATS DOMAIN...`` prints
``{"rows": N, "seconds": [s, ...]}`` (one wall time per repeat).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

import orjson
import redis

from http_api import heap
from http_api.stream import records_line
from pipeline.engine import parts
from pipeline.engine.store import CheckpointStore
from pipeline.tools.stack import API_ALLOCATOR_ENV

#: Seconds a child's whole measurement may take (40M rows at ~100K rows/s, three times).
CHILD_TIMEOUT_SECONDS = 3 * 3600


def read_encode(store: CheckpointStore, job_id: str, domains: Sequence[str]) -> tuple[int, float]:
    """Rows and wall seconds to turn every committed chunk of the domains' parts (manifest
    order) into the stream's ``records`` lines: one GET + checksum + decompress + msgpack
    unpack per chunk (``read_chunk``) and the stream's own ``records_line``. The bytes are
    dropped; no HTTP. ``ChunkLost`` when a chunk is gone."""
    rows = 0
    started = time.perf_counter()
    for domain in domains:
        part = parts.events(domain)
        columns = store.columns(job_id, part)
        number = 0
        for entry in store.manifest(job_id, part).values():
            for ref in entry.chunks:
                chunk = store.read_chunk(part, entry.batch, ref)
                records_line(domain, number, columns, chunk)
                rows += len(chunk)
                number += 1
    return rows, time.perf_counter() - started


def read_encode_like_api(
    redis_url: str, job_id: str, domains: Sequence[str], *, repeats: int = 3
) -> tuple[int, list[float]]:
    """``read_encode`` of the stored job (the store at ``redis_url``, database included) in a
    child process with the API's allocator, ``repeats`` times: the rows and each repeat's
    seconds. Raises ``subprocess.CalledProcessError`` (its stderr kept) when the child fails,
    ``subprocess.TimeoutExpired`` after ``CHILD_TIMEOUT_SECONDS``."""
    argv = [sys.executable, "-m", __name__, redis_url, job_id, str(max(1, repeats)), *domains]
    done = subprocess.run(
        argv,
        env={**os.environ, **API_ALLOCATOR_ENV},
        capture_output=True,
        check=True,
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    answer = orjson.loads(done.stdout)
    return int(answer["rows"]), [float(s) for s in answer["seconds"]]


def main(argv: Sequence[str]) -> int:
    redis_url, job_id, repeats, *domains = argv
    heap.limit_arenas()  # as ops/gunicorn.conf.py does before the API's workers start
    store = CheckpointStore(redis.Redis.from_url(redis_url), ttl_seconds=3600)
    rows, seconds = 0, []
    for _ in range(int(repeats)):
        rows, spent = read_encode(store, job_id, domains)
        seconds.append(spent)
    sys.stdout.buffer.write(orjson.dumps({"rows": rows, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
