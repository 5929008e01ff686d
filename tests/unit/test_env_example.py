"""`.env.example` documents every setting the code reads, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import Settings, env_names

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = {"TRACE_ORACLE_TEST_DSN"}  # read by the test suite, not by Settings


def _documented() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return dict(re.findall(r"^#?\s*(TRACE_[A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))


def test_every_setting_is_documented_and_nothing_else() -> None:
    assert set(_documented()) - TEST_ONLY == set(env_names())


def test_documented_defaults_are_the_code_defaults() -> None:
    # The effective defaults: an empty TRACE_BROKER_URL means the store's server, database 1,
    # and .env.example spells that out.
    effective = Settings()
    for env, value in _documented().items():
        if env in TEST_ONLY or not value:
            continue
        assert value == str(getattr(effective, env_names()[env])), env


def test_the_process_knobs_are_documented_with_their_defaults() -> None:
    # Every WORKER_*/GUNICORN_* variable ops/worker and the gunicorn config read, and the
    # defaults they fall back to
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^#?\s*((?:WORKER|GUNICORN)_[A-Z_]+)=(.*)$", text, re.MULTILINE))
    worker = (ROOT / "ops" / "worker").read_text(encoding="utf-8")
    gunicorn = (ROOT / "ops" / "gunicorn.conf.py").read_text(encoding="utf-8")
    read = dict(re.findall(r"\$\{(WORKER_[A-Z_]+):-([^}]*)\}", worker))
    read.update(re.findall(r'environ\.get\("(GUNICORN_[A-Z_]+)"\) or (\d+)', gunicorn))
    assert set(read) == set(documented)
    for name, default in read.items():
        if documented[name]:  # commented examples show a value, not the default
            assert documented[name] == default, name
