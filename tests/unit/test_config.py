"""Settings: read once from the environment, validated, with documented defaults."""

from __future__ import annotations

import pytest

from pipeline.config import Settings, SourceLocation
from pipeline.errors import ConfigError


def test_defaults_put_the_broker_on_database_1_of_the_store_server() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.broker_url == "redis://127.0.0.1:6379/1"
    assert settings.source.kind == "sqlite"


def test_the_broker_follows_the_store_server_when_only_the_store_is_set() -> None:
    settings = Settings.from_env({"TRACE_REDIS_URL": "redis://cache.local:6380/4"})
    assert settings.broker_url == "redis://cache.local:6380/1"


@pytest.mark.parametrize(
    ("store", "broker"),
    [
        ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"),
        ("redis://127.0.0.1:6379/0", "redis://localhost:6379/0"),  # two names, one server
        ("redis://127.0.0.1/0", "redis://127.0.0.1:6379"),  # default port, default db
        ("redis://127.0.0.1:6379/0?db=2", "redis://127.0.0.1:6379/2"),  # ?db= wins, as in redis-py
        ("unix:///tmp/redis.sock?db=4", "unix:///tmp/redis.sock?db=4"),
    ],
)
def test_the_broker_may_not_share_the_store_database(store: str, broker: str) -> None:
    with pytest.raises(ConfigError, match="same Redis database"):
        Settings.from_env({"TRACE_REDIS_URL": store, "TRACE_BROKER_URL": broker})


def test_the_default_broker_reads_the_store_database_as_redis_py_does() -> None:
    with pytest.raises(ConfigError, match="TRACE_BROKER_URL"):
        Settings.from_env({"TRACE_REDIS_URL": "redis://127.0.0.1:6379?db=1"})
    settings = Settings.from_env({"TRACE_REDIS_URL": "redis://127.0.0.1:6379/5?db=3"})
    assert settings.broker_url == "redis://127.0.0.1:6379/1"
    unix = Settings.from_env({"TRACE_REDIS_URL": "unix:///tmp/redis.sock?db=3"})
    assert unix.broker_url == "unix:///tmp/redis.sock?db=1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:6379/zero"])
def test_a_bad_redis_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="Redis URL"):
        Settings.from_env({"TRACE_REDIS_URL": url})


def test_a_store_on_database_1_needs_an_explicit_broker() -> None:
    with pytest.raises(ConfigError, match="TRACE_BROKER_URL"):
        Settings.from_env({"TRACE_REDIS_URL": "redis://127.0.0.1:6379/1"})
    settings = Settings.from_env(
        {
            "TRACE_REDIS_URL": "redis://127.0.0.1:6379/1",
            "TRACE_BROKER_URL": "redis://127.0.0.1:6379/2",
        }
    )
    assert settings.broker_url.endswith("/2")


def test_rabbitmq_broker_is_accepted() -> None:
    settings = Settings.from_env({"TRACE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"})
    assert settings.broker_url.startswith("amqp://")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/demo.db", "var/demo.db"),
        ("sqlite:////tmp/abs.db", "/tmp/abs.db"),
        ("sqlite:///dir%20with%20space/x.db", "dir with space/x.db"),
    ],
)
def test_sqlite_urls_follow_the_sqlalchemy_convention(url: str, path: str) -> None:
    assert SourceLocation.parse(url) == SourceLocation(kind="sqlite", path=path)


def test_oracle_url_gives_user_and_dsn_and_defaults_the_port() -> None:
    location = SourceLocation.parse("oracle://mes_reader@db.fab.local/DWHPRD")
    assert (location.kind, location.user, location.dsn) == (
        "oracle",
        "mes_reader",
        "db.fab.local:1521/DWHPRD",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u:secret@host:1521/svc", "TRACE_ORACLE_PASSWORD"),
        ("oracle://host:1521/svc", "expected oracle://user@host:port/service"),
        ("postgres://x/y", "must start with sqlite:/// or oracle://"),
        ("sqlite:///", "no file path"),
    ],
)
def test_bad_source_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"TRACE_SOURCE_URL": url})


def test_integers_are_parsed_and_checked() -> None:
    assert Settings.from_env({"TRACE_FETCH_ROWS": "2500"}).fetch_rows == 2500
    with pytest.raises(ConfigError, match="TRACE_FETCH_ROWS must be an integer"):
        Settings.from_env({"TRACE_FETCH_ROWS": "lots"})
    with pytest.raises(ConfigError, match=r"TRACE_IN_LIST_SIZE must be 1\.\.1000"):
        Settings.from_env({"TRACE_IN_LIST_SIZE": "1001"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRACE_RESOLVE_MIN_PREFIX": "0"}, "TRACE_RESOLVE_MIN_PREFIX must be at least 1"),
        ({"TRACE_JOBS_PROBE_MAX": "-1"}, "TRACE_JOBS_PROBE_MAX must be 0..TRACE_IN_LIST_SIZE"),
        (
            {"TRACE_JOBS_PROBE_MAX": "600", "TRACE_IN_LIST_SIZE": "500"},
            "TRACE_JOBS_PROBE_MAX must be 0..TRACE_IN_LIST_SIZE",
        ),
        ({"TRACE_ORACLE_POOL_MIN": "5"}, "TRACE_ORACLE_POOL_MIN must be 0..TRACE_ORACLE_POOL_MAX"),
    ],
)
def test_settings_out_of_range_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_empty_variables_take_the_default() -> None:
    assert Settings.from_env({"TRACE_SOURCE_URL": "  ", "TRACE_FETCH_ROWS": ""}) == Settings()


def test_the_password_is_never_shown_in_the_settings_repr() -> None:
    settings = Settings.from_env({"TRACE_ORACLE_PASSWORD": "hunter2"})
    assert settings.oracle_password == "hunter2"
    assert "hunter2" not in repr(settings)
