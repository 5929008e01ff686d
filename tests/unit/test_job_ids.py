"""Job ids carry their creation time, so a job missing before its TTL is told apart as lost."""

from __future__ import annotations

import re

from pipeline.engine.job_ids import CLOCK_SKEW_SECONDS, created_at, lost, new_job_id

NOW = 1_796_000_000.0  # 2026-11-30


def test_an_id_is_32_lowercase_hex_starting_with_its_creation_second() -> None:
    job_id = new_job_id(NOW)
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert created_at(job_id) == int(NOW)
    assert new_job_id(NOW) != job_id  # 96 random bits after the time


def test_a_missing_job_younger_than_the_ttl_is_lost_older_or_unparsable_is_not() -> None:
    ttl = 3600
    assert lost(new_job_id(NOW - 5), ttl, NOW)
    assert lost(new_job_id(NOW - ttl + 1), ttl, NOW)
    assert not lost(new_job_id(NOW - ttl), ttl, NOW)  # could have expired: not found
    assert lost(new_job_id(NOW + CLOCK_SKEW_SECONDS), ttl, NOW)  # another host's clock, ahead
    assert not lost(new_job_id(NOW + CLOCK_SKEW_SECONDS + 1), ttl, NOW)
    for other in ("f" * 32, "nope", "A" * 32, new_job_id(NOW)[:31], new_job_id(NOW) + "0"):
        assert not lost(other, ttl, NOW), other
