"""``http_api.heap``: a trim follows only a request that read a big body, once."""

from __future__ import annotations

import threading

import pytest

from http_api import heap


def test_a_trim_follows_a_big_body_once_and_only_in_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heap.after_request()  # what earlier tests' bodies left noted in this thread
    trims: list[str] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(threading.current_thread().name))
    # Given a small body, then nothing: no trim
    heap.note_body(heap.TRIM_AFTER_BODY_BYTES - 1)
    heap.after_request()
    heap.after_request()
    assert trims == []

    # When a request reads a big body in another thread
    def serve() -> None:
        heap.note_body(heap.TRIM_AFTER_BODY_BYTES)
        heap.after_request()
        heap.after_request()  # the next request of that thread read nothing

    thread = threading.Thread(target=serve, name="request")
    thread.start()
    thread.join()
    heap.after_request()
    # Then that thread trims once, after its request
    assert trims == ["request"]


def test_trimming_and_the_arena_cap_work_on_glibc_and_do_nothing_elsewhere() -> None:
    assert heap.trim() is (heap._TRIM is not None)
