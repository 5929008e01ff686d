"""Settings: read from the environment once, validated, then passed down explicitly.

One typed model (pydantic, like the API's requests): each field is the ``TRACE_*`` variable of
its name, with its type, default and range. Nothing else in the project reads ``os.environ``.
Every default lives here with its unit, and every setting is documented in ``.env.example`` (a
test keeps the two in step).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from redis.connection import parse_url as parse_redis_url

from pipeline.errors import ConfigError

#: Where the warehouse is: the embedded SQLite file (relative to the working directory).
DEFAULT_SOURCE_URL = "sqlite:///var/demo-warehouse.db"
#: The checkpoint store (Redis, database 0).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The broker's Redis database when ``TRACE_BROKER_URL`` is unset (never the store's database:
#: the broker's maintenance runs ``KEYS`` over its whole database).
DEFAULT_BROKER_DB = 1
#: Rows per ``fetchmany`` call, and the Oracle cursor's ``arraysize``/``prefetchrows`` (rows).
DEFAULT_FETCH_ROWS = 5000
#: Ids per ``IN (...)`` list (ids). Oracle refuses more than 1000.
DEFAULT_IN_LIST_SIZE = 1000
MAX_IN_LIST_SIZE = 1000
#: Lineage levels followed from a seed (levels).
DEFAULT_LINEAGE_MAX_DEPTH = 20
#: Oracle round-trip timeout (milliseconds); a hung query becomes a retryable error.
DEFAULT_ORACLE_CALL_TIMEOUT_MS = 60_000
#: Oracle connection pool size per process (connections).
DEFAULT_ORACLE_POOL_MIN = 1
DEFAULT_ORACLE_POOL_MAX = 4
#: Literal characters a wildcard seed (``GA2310*``) needs before its first wildcard (characters).
DEFAULT_RESOLVE_MIN_PREFIX = 2
#: Lots whose maintenance jobs are matched inside the SQL; above this the jobs table is scanned
#: once and matched in Python (lots).
DEFAULT_JOBS_PROBE_MAX = 100
#: Lots matched per pass over the maintenance jobs table when there are more than
#: ``DEFAULT_JOBS_PROBE_MAX`` (lots): the pass holds this many ids in a set (~100 bytes each).
DEFAULT_JOBS_SCAN_LOTS = 50_000
#: Page cache of the scratch database a lineage or aggregation run keeps its working set in
#: (MiB per running stage): what a worker holds of a trace's graph and per-lot state.
DEFAULT_SCRATCH_CACHE_MB = 4
#: Items a Pareto chart keeps before folding the rest into "其他" (items).
DEFAULT_PARETO_TOP_N = 10
#: Longest date range a mid-section-defect seed query may span: end - start at most (days).
DEFAULT_MSD_MAX_DAYS = 730
#: The mid-section-defect page's warehouse-derived option lists (loss reasons, container
#: attribute combinations) are refreshed by a worker once older than this (seconds: the old
#: system's 24 h); Redis keeps them twice as long, so a stale list answers while it is refreshed.
DEFAULT_MSD_OPTIONS_TTL_SECONDS = 86_400

# ---- the staged engine -------------------------------------------------------------------------
#: How long every key of a job lives; refreshed when the job ends (seconds).
DEFAULT_JOB_TTL_SECONDS = 3600
#: CID batches (of ``in_list_size`` lots) one events message fetches at least (batches).
DEFAULT_EVENTS_GROUP_BATCHES = 4
#: About how many messages one domain's events are split into when that makes them longer than
#: ``events_group_batches`` (messages; fixed per job: ``pipeline.engine.flow.fix_group_size``).
#: Each message costs its worker ~50 ms idle on average (its consumer sleeps up to
#: ``dramatiq_worker_timeout``, 100 ms, between looks while it runs one): at 114K CIDs the
#: trace's ~200 messages of 4 batches kept the two workers ~85 % busy, 8 per domain ~90 %
#: (end to end 29.5 against 31.7 s, medians of three alternating runs, 2026-12-07).
DEFAULT_EVENTS_MESSAGES_PER_DOMAIN = 8
#: Date ranges a mid-section-defect detection window is read in (ranges; each its own
#: seed-resolve message, so the workers read them at once; 1: the window in one query). Set it
#: to the worker processes: at 114K lots two ranges took the stage from 6.7 to ~3.5 s.
DEFAULT_DETECTION_RANGES = 2
#: Dramatiq retries of a message after an error its worker reports (retries; a message starts at
#: most 1 + this many times, then fails with the error's own code), and their backoff (ms).
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_MIN_BACKOFF_MS = 1000
DEFAULT_RETRY_MAX_BACKOFF_MS = 10_000
#: A message running longer than this is interrupted and retried (seconds): an events message,
#: a few batches (seconds when healthy).
DEFAULT_MESSAGE_TIME_LIMIT_SECONDS = 300
#: The same for a message whose work grows with the trace: a date range of seed-resolve's
#: detection window, the lineage walk, the analysis (seconds). At 1M CIDs they took 134, 118
#: and over 300 s on a slow day (``ops/bench``, 2026-12-07), where 300 s cut the analysis off at
#: every try: the limit is there to end a hung message, not a large one.
DEFAULT_STAGE_TIME_LIMIT_SECONDS = 3600
#: Times a batch's worker may die running it (starts that never reported back) before the batch
#: fails for good with BATCH_ATTEMPTS_EXCEEDED (attempts); reported errors count only as retries.
DEFAULT_BATCH_MAX_ATTEMPTS = 3
#: A running message renews its job's lease this often (seconds) ...
DEFAULT_HEARTBEAT_SECONDS = 5
#: ... and a lease not renewed for this long belongs to a dead worker (seconds): four heartbeats,
#: so three in a row must be missed (a live process renews within milliseconds of each tick; a
#: false stall only runs the message twice, skipping committed batches, but counts a start).
DEFAULT_STALL_SECONDS = 20
#: How often each worker process looks for stale leases (seconds). A dead worker's message is
#: sent again within stall + interval seconds of its death (25 s by default), once a worker
#: process is up (README "Dead workers").
DEFAULT_REAPER_INTERVAL_SECONDS = 5
#: Jobs with more lots than this run on the large-job queue (lots).
DEFAULT_LARGE_JOB_CIDS = 20_000
#: Most lots one trace may reach, per profile (lots). The old system refused non-MSD traces over
#: 50,000 because it held every row in memory; workers here hold one batch, so the limit is set by
#: Redis memory and time instead: ~11 rows x ~180 bytes per lot and domain, so 250,000 lots of a
#: five-domain query_tool trace is ~2.5 GB of chunks at most, 500,000 lots of a two-domain
#: mid-section-defect analysis about the same.
DEFAULT_MAX_CIDS = {
    "query_tool": 250_000,
    "query_tool_reverse": 250_000,
    "mid_section_defect": 500_000,
}
#: Rows kept per domain of one job; the rest is cut and ``quality_meta`` says so (rows).
DEFAULT_MAX_ROWS_PER_DOMAIN = 2_000_000
#: Events requests over this many lots answer 202 at once (the old system's threshold).
DEFAULT_ASYNC_CID_THRESHOLD = 20_000
#: Lineage requests over this many seed lots answer 202 at once (the old system's 5,000).
DEFAULT_LINEAGE_ASYNC_SEEDS = 5_000
#: How long a request under the thresholds waits for its job before answering 202 instead:
#: under a proxy's usual 60 s read timeout, so the client never gets the proxy's 504.
DEFAULT_SYNC_WAIT_SECONDS = 50
#: Job GETs (status, result, stream, the event log) per client per window, all jobs together
#: (requests). The dashboard polls a stage's job every 3 s: ~21 a window of 60 s with its
#: result, so 300 lets 10 traces followed at once from one address through with ~40% to spare
#: (the old system's 60, shared by every job, stopped the third).
DEFAULT_RATE_LIMIT_REQUESTS = 300
#: The fixed window of both job limits and of the submission limit (seconds).
DEFAULT_RATE_LIMIT_WINDOW_SECONDS = 60
#: Requests per client to one job per window (requests): one a second, 3x the dashboard's
#: polling, so a loop on one job is stopped long before the client's whole allowance.
DEFAULT_RATE_LIMIT_PER_JOB_REQUESTS = 60
#: Submissions (seed-resolve, lineage, events, jobs) per client per window: a dashboard trace
#: submits three (one per stage), so ten traces started at once from one address need 30, and a
#: retried or refreshed one more; an equal request joins its running job and costs no work.
DEFAULT_SUBMIT_RATE_LIMIT_REQUESTS = 60
#: Largest request body: an inline MSD lineage map of a 100K-lot trace is tens of MB.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: Seconds a finished job's result answers an equal request (the old system's cache: 300 s);
#: queued and started jobs are always joined.
DEFAULT_RESULT_REUSE_SECONDS = 300
#: Entries kept in the job event stream (trace:events); the oldest go first.
DEFAULT_EVENT_LOG_MAX = 100_000
#: Seconds a Redis command may take before it counts as Redis being away (no request hangs).
DEFAULT_REDIS_TIMEOUT_SECONDS = 10
#: Least level of the log lines workers and the API write.
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Retry-After of a 503 (Redis or the broker away).
DEFAULT_RETRY_AFTER_SECONDS = 30

SourceKind = Literal["sqlite", "oracle"]


@dataclass(frozen=True)
class SourceLocation:
    """Where the warehouse lives, parsed from ``TRACE_SOURCE_URL``.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (SQLAlchemy's convention),
    or ``oracle://user@host:port/service`` (the password comes from ``TRACE_ORACLE_PASSWORD``).
    """

    kind: SourceKind
    path: str | None = None
    user: str | None = None
    dsn: str | None = None

    @classmethod
    def parse(cls, url: str) -> SourceLocation:
        """Parse a source URL; raise ``ConfigError`` naming what is wrong."""
        if url.startswith("sqlite:///"):
            path = unquote(url[len("sqlite:///") :])
            if not path:
                raise ConfigError("TRACE_SOURCE_URL: sqlite URL has no file path")
            return cls(kind="sqlite", path=path)
        parts = urlsplit(url)
        if parts.scheme == "oracle":
            if parts.password:
                raise ConfigError(
                    "TRACE_SOURCE_URL must not contain a password; set TRACE_ORACLE_PASSWORD"
                )
            service = parts.path.lstrip("/")
            if not parts.username or not parts.hostname or not service:
                raise ConfigError(
                    "TRACE_SOURCE_URL: expected oracle://user@host:port/service, got " + repr(url)
                )
            port = parts.port or 1521
            return cls(
                kind="oracle",
                user=unquote(parts.username),
                dsn=f"{parts.hostname}:{port}/{service}",
            )
        raise ConfigError(
            "TRACE_SOURCE_URL must start with sqlite:/// or oracle://, got " + repr(url)
        )


def _env_name(field_name: str) -> str:
    return f"TRACE_{field_name.upper()}"


#: Settings that must be at least 1 (a zero would stop the service from doing anything).
_Positive = Annotated[int, Field(ge=1)]
#: Settings that may be 0 (0: wait not at all, keep nothing, never retry).
_NonNegative = Annotated[int, Field(ge=0)]


class Settings(BaseModel):
    """Every setting of the service, each read from the ``TRACE_*`` variable of its name
    (``Settings.from_env()``, once per process) or given by name (tests, tools). Invalid values
    raise ``ConfigError`` naming the variable; the defaults and their units are the
    ``DEFAULT_*`` constants above and ``.env.example``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=_env_name,
        validate_by_name=True,
        validate_by_alias=True,
    )

    source_url: str = DEFAULT_SOURCE_URL
    oracle_password: str | None = Field(None, repr=False)
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = ""  # "": the store's server, database DEFAULT_BROKER_DB
    fetch_rows: _Positive = DEFAULT_FETCH_ROWS
    in_list_size: Annotated[int, Field(ge=1, le=MAX_IN_LIST_SIZE)] = DEFAULT_IN_LIST_SIZE
    lineage_max_depth: _Positive = DEFAULT_LINEAGE_MAX_DEPTH
    oracle_call_timeout_ms: _Positive = DEFAULT_ORACLE_CALL_TIMEOUT_MS
    oracle_pool_min: int = DEFAULT_ORACLE_POOL_MIN  # 0..oracle_pool_max (checked below)
    oracle_pool_max: _Positive = DEFAULT_ORACLE_POOL_MAX
    # at least 1: 0 would let a bare '*' resolve every lot in the warehouse
    resolve_min_prefix: _Positive = DEFAULT_RESOLVE_MIN_PREFIX
    jobs_probe_max: int = DEFAULT_JOBS_PROBE_MAX  # 0..in_list_size (checked below)
    jobs_scan_lots: _Positive = DEFAULT_JOBS_SCAN_LOTS
    scratch_cache_mb: _Positive = DEFAULT_SCRATCH_CACHE_MB
    pareto_top_n: _Positive = DEFAULT_PARETO_TOP_N
    msd_max_days: _Positive = DEFAULT_MSD_MAX_DAYS
    msd_options_ttl_seconds: _Positive = DEFAULT_MSD_OPTIONS_TTL_SECONDS
    job_ttl_seconds: _Positive = DEFAULT_JOB_TTL_SECONDS
    events_group_batches: _Positive = DEFAULT_EVENTS_GROUP_BATCHES
    events_messages_per_domain: _Positive = DEFAULT_EVENTS_MESSAGES_PER_DOMAIN
    detection_ranges: _Positive = DEFAULT_DETECTION_RANGES
    max_retries: _NonNegative = DEFAULT_MAX_RETRIES
    retry_min_backoff_ms: _Positive = DEFAULT_RETRY_MIN_BACKOFF_MS
    retry_max_backoff_ms: int = DEFAULT_RETRY_MAX_BACKOFF_MS  # >= retry_min_backoff_ms
    message_time_limit_seconds: _Positive = DEFAULT_MESSAGE_TIME_LIMIT_SECONDS
    stage_time_limit_seconds: _Positive = DEFAULT_STAGE_TIME_LIMIT_SECONDS
    batch_max_attempts: _Positive = DEFAULT_BATCH_MAX_ATTEMPTS
    heartbeat_seconds: _Positive = DEFAULT_HEARTBEAT_SECONDS
    stall_seconds: int = DEFAULT_STALL_SECONDS  # >= 2 x heartbeat_seconds
    reaper_interval_seconds: _Positive = DEFAULT_REAPER_INTERVAL_SECONDS
    large_job_cids: int = DEFAULT_LARGE_JOB_CIDS
    max_cids_query_tool: _Positive = DEFAULT_MAX_CIDS["query_tool"]
    max_cids_query_tool_reverse: _Positive = DEFAULT_MAX_CIDS["query_tool_reverse"]
    max_cids_mid_section_defect: _Positive = DEFAULT_MAX_CIDS["mid_section_defect"]
    max_rows_per_domain: _Positive = DEFAULT_MAX_ROWS_PER_DOMAIN
    async_cid_threshold: _Positive = DEFAULT_ASYNC_CID_THRESHOLD
    lineage_async_seeds: _Positive = DEFAULT_LINEAGE_ASYNC_SEEDS
    sync_wait_seconds: _NonNegative = DEFAULT_SYNC_WAIT_SECONDS
    rate_limit_requests: _Positive = DEFAULT_RATE_LIMIT_REQUESTS
    rate_limit_window_seconds: _Positive = DEFAULT_RATE_LIMIT_WINDOW_SECONDS
    submit_rate_limit_requests: _Positive = DEFAULT_SUBMIT_RATE_LIMIT_REQUESTS
    rate_limit_per_job_requests: _Positive = DEFAULT_RATE_LIMIT_PER_JOB_REQUESTS
    trusted_proxies: str = ""  # comma list of addresses
    max_body_bytes: _Positive = DEFAULT_MAX_BODY_BYTES
    api_token: str = Field("", repr=False)  # "": no token needed
    retry_after_seconds: _Positive = DEFAULT_RETRY_AFTER_SECONDS
    event_log_max: _Positive = DEFAULT_EVENT_LOG_MAX
    result_reuse_seconds: _NonNegative = DEFAULT_RESULT_REUSE_SECONDS
    redis_timeout_seconds: _Positive = DEFAULT_REDIS_TIMEOUT_SECONDS
    log_level: str = DEFAULT_LOG_LEVEL

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _config_error(error) from None

    @model_validator(mode="before")
    @classmethod
    def _broker_beside_the_store(cls, data: Any) -> Any:
        """No ``TRACE_BROKER_URL``: the store's Redis server, database ``DEFAULT_BROKER_DB``."""
        if not isinstance(data, dict):
            return data
        given = {k: v for k, v in data.items() if k not in ("broker_url", "TRACE_BROKER_URL")}
        broker = data.get("broker_url") or data.get("TRACE_BROKER_URL")
        if not broker:
            store = given.get("redis_url") or given.get("TRACE_REDIS_URL") or DEFAULT_REDIS_URL
            broker = default_broker_url(str(store))
        return {**given, "broker_url": broker}

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        _check_separate_databases(self.redis_url, self.broker_url)
        if not 0 <= self.jobs_probe_max <= self.in_list_size:
            raise ConfigError(
                "TRACE_JOBS_PROBE_MAX must be 0..TRACE_IN_LIST_SIZE (one bind per lot)"
            )
        if self.retry_max_backoff_ms < self.retry_min_backoff_ms:
            raise ConfigError("TRACE_RETRY_MAX_BACKOFF_MS must be >= TRACE_RETRY_MIN_BACKOFF_MS")
        if self.stall_seconds < 2 * self.heartbeat_seconds:
            # One late heartbeat must not make a live worker's job look dead.
            raise ConfigError("TRACE_STALL_SECONDS must be at least 2 x TRACE_HEARTBEAT_SECONDS")
        if self.oracle_pool_min < 0 or self.oracle_pool_min > self.oracle_pool_max:
            raise ConfigError("TRACE_ORACLE_POOL_MIN must be 0..TRACE_ORACLE_POOL_MAX")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"TRACE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        SourceLocation.parse(self.source_url)  # fail at startup, not at first query
        return self

    @property
    def proxies(self) -> frozenset[str]:
        """``TRACE_TRUSTED_PROXIES`` as a set of addresses."""
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    def max_cids(self, profile: str) -> int:
        """The most lots one trace of ``profile`` may reach (``TRACE_MAX_CIDS_<PROFILE>``)."""
        return int(getattr(self, f"max_cids_{profile}"))

    @property
    def resume_bound_seconds(self) -> int:
        """Seconds within which the reaper sends again the work of a dead worker, or resumes a
        job gone quiet (``TRACE_STALL_SECONDS`` + ``TRACE_REAPER_INTERVAL_SECONDS``, README "Dead
        workers"): an active job quiet for longer is stalled (``pipeline.engine.overview``)."""
        return self.stall_seconds + self.reaper_interval_seconds

    @property
    def source(self) -> SourceLocation:
        """The parsed ``TRACE_SOURCE_URL``."""
        return SourceLocation.parse(self.source_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``TRACE_*`` setting once; unset or empty variables take their default.
        Raises ``ConfigError`` naming the first variable that is wrong."""
        env = os.environ if environ is None else environ
        values = {}
        for name in env_names():
            raw = env.get(name, "").strip()
            if raw:
                values[name] = raw
        return cls(**values)


def env_names() -> dict[str, str]:
    """Environment variable -> settings field, for every setting."""
    return {_env_name(name): name for name in Settings.model_fields}


def _config_error(error: ValidationError) -> ConfigError:
    """The first problem of ``error`` as a ``ConfigError`` naming its variable."""
    problem = error.errors(include_url=False)[0]
    name = str(problem["loc"][0]) if problem["loc"] else "settings"
    env = name if name.startswith("TRACE_") else _env_name(name)
    field = Settings.model_fields.get(env_names().get(env, ""))
    bounds = {type(m).__name__: m for m in (field.metadata if field else [])}
    given = problem.get("input")
    if problem["type"] in ("int_parsing", "int_type", "int_from_float"):
        return ConfigError(f"{env} must be an integer, got {given!r}")
    if "Ge" in bounds and "Le" in bounds:
        low, high = bounds["Ge"].ge, bounds["Le"].le
        return ConfigError(f"{env} must be {low}..{high}, got {given!r}")
    if problem["type"] == "greater_than_equal":
        low = (problem.get("ctx") or {}).get("ge")
        if low == 0:
            return ConfigError(f"{env} must not be negative, got {given!r}")
        return ConfigError(f"{env} must be at least {low}, got {given!r}")
    if problem["type"] == "extra_forbidden":
        return ConfigError(f"unknown setting {env}")
    return ConfigError(f"{env}: {problem['msg']}")


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def default_broker_url(redis_url: str) -> str:
    """The store's Redis server, database ``DEFAULT_BROKER_DB``."""
    if _redis_db(redis_url) == DEFAULT_BROKER_DB:
        raise ConfigError(
            f"TRACE_REDIS_URL uses database {DEFAULT_BROKER_DB}, the broker's default; "
            "set TRACE_BROKER_URL to a different database"
        )
    return _with_redis_db(redis_url, DEFAULT_BROKER_DB)


def _check_separate_databases(redis_url: str, broker_url: str) -> None:
    if not broker_url.startswith(REDIS_SCHEMES):
        return  # e.g. amqp://: the broker cannot touch the store
    if _redis_target(redis_url) == _redis_target(broker_url):
        raise ConfigError(
            "TRACE_BROKER_URL and TRACE_REDIS_URL name the same Redis database; the broker's "
            "maintenance scans its whole database, so give it its own (e.g. /1)"
        )


def _redis_target(url: str) -> tuple[str, int, int]:
    """``(server, port, db)`` as redis-py reads ``url`` (a ``?db=`` query wins over the path);
    the loopback names count as one server, so two spellings of one database compare equal."""
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError(f"not a Redis URL: {url!r}")
    parts = urlsplit(url)
    db_texts = [v for k, v in parse_qsl(parts.query) if k == "db"]
    if parts.scheme != "unix":
        db_texts.append(parts.path.strip("/") or "0")
    if not all(text.isdigit() for text in db_texts):  # redis-py would quietly use database 0
        raise ConfigError(f"Redis URL has a bad database number: {url!r}")
    try:
        parsed = parse_redis_url(url)
    except ValueError as error:
        raise ConfigError(f"bad Redis URL {url!r}: {error}") from None
    if "path" in parsed:  # unix socket
        return (str(parsed["path"]), 0, int(parsed.get("db", 0)))
    host = str(parsed.get("host", "localhost")).lower()
    if host in _LOOPBACK:
        host = "loopback"
    return (host, int(parsed.get("port", 6379)), int(parsed.get("db", 0)))


def _redis_db(url: str) -> int:
    return _redis_target(url)[2]


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
    if parts.scheme == "unix":  # urlunsplit would drop the empty host: unix:/path
        return f"unix://{parts.path}?{urlencode([*query, ('db', str(db))])}"
    return urlunsplit(parts._replace(path=f"/{db}", query=urlencode(query)))
