"""The settings, in groups by what reads them, and the settings of each command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl.config.declaration import group, setting
from etl.config.parsers import (
    CampaignIds,
    CampaignSelection,
    ExistingFile,
    Number,
    OneOf,
    RoleName,
    SchemaName,
    ShardSpec,
    Switch,
    Text,
    Whole,
    WritablePath,
)
from etl.config.urls import BaseUrl, DatabaseUrl, HttpUrl
from etl.errors import ConfigError
from etl.shards import MAX_SHARDS, Shard

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_SECONDS_ANY_WAIT = Number(0, 3_600)


@group
class LogSettings:
    """How the job logs (read before anything else, so every error is logged as asked)."""

    format: str | None = setting(
        "THULIUM_LOG_FORMAT",
        "log line format",
        parse=OneOf(("text", "json")),
        default=None,
        flag="--log-format",
        shown_default="text on a terminal, else json",
    )
    level: str = setting(
        "THULIUM_LOG_LEVEL",
        "the least severe events logged",
        parse=OneOf(("DEBUG", "INFO", "WARNING", "ERROR")),
        default="INFO",
    )


@group
class DatabaseSettings:
    """The target database, and how long any statement may wait or run."""

    url: URL = setting(
        "DATABASE_URL",
        "the PostgreSQL URL, e.g. postgresql://user:password@host:5432/db; postgres:// and "
        "postgresql+psycopg:// mean psycopg 3 too. libpq options go in the query string "
        "(?sslmode=require); a ?password= is a secret like the URL's password. A user name or "
        "password must be percent-encoded (@ as %40, / as %2F, ? as %3F, # as %23): a URL "
        "that would split them is refused",
        parse=DatabaseUrl(),
        file=True,
    )
    lock_timeout: float = setting(
        "THULIUM_DB_LOCK_TIMEOUT",
        "seconds any statement of the job may wait for a lock another session holds",
        parse=Number(0.001, 86_400),
        default=60.0,
    )
    statement_timeout: float = setting(
        "THULIUM_DB_STATEMENT_TIMEOUT",
        "seconds any statement of the job may run",
        parse=Number(0.001, 86_400),
        default=600.0,
    )
    schema: str = setting(
        "THULIUM_DB_SCHEMA",
        "the PostgreSQL schema that holds every table, view and function of the job, and its "
        "alembic_version: one per Thulium system when several share a database (migrate "
        "creates it). Its run lock, run history, grant-read and metrics (a schema label) are "
        "its own",
        parse=SchemaName(),
        default="public",
    )


@group
class ApiSettings:
    """Everything the Thulium client needs to make one request."""

    base_url: str = setting(
        "THULIUM_BASE_URL",
        "the API root, e.g. https://acme.thulium.com/api; the job appends "
        "/outbounds/<id>/statuses. A plain http(s)://host[:port]/path: no credentials, no ? "
        "or # (not even an empty one), no . or .. segments or encoded characters",
        parse=BaseUrl(),
    )
    user: str = setting("THULIUM_USER", "the Thulium API user", parse=Text())
    password: str = setting(
        "THULIUM_PASSWORD",
        "the API user's password, taken exactly as given, surrounding spaces included (but for "
        "a trailing line ending); sent as UTF-8 (RFC 7617): Polish letters and € work",
        parse=Text(),
        file=True,
        secret=True,
    )
    timeout: float = setting(
        "THULIUM_TIMEOUT",
        "read timeout: the longest wait for any single read, seconds",
        parse=Number(0.001, 3_600),
        default=30.0,
        flag="--timeout",
        metavar="SECONDS",
    )
    connect_timeout: float = setting(
        "THULIUM_CONNECT_TIMEOUT",
        "connect timeout, seconds",
        parse=Number(0.001, 600),
        default=5.0,
    )
    request_deadline: float = setting(
        "THULIUM_REQUEST_DEADLINE",
        "seconds for a whole request, however slowly its answer trickles in; a request past "
        "it fails and is retried",
        parse=Number(0.001, 86_400),
        default=120.0,
    )
    max_body_bytes: int = setting(
        "THULIUM_MAX_BODY_BYTES",
        "the largest answer accepted, counted after decompression; a larger one fails its campaign",
        parse=Whole(1_000, 2_000_000_000),
        default=50_000_000,
    )
    ca_bundle: str | None = setting(
        "THULIUM_CA_BUNDLE",
        "a CA bundle file for a private CA; TLS is always verified",
        parse=ExistingFile(),
        default=None,
        shown_default="the system's CAs",
    )


@group
class RetryPolicy:
    """How hard the client tries before it gives a campaign up."""

    attempts: int = setting(
        "THULIUM_RETRY_ATTEMPTS",
        "attempts per campaign, the first one included",
        parse=Whole(1, 100),
        default=5,
    )
    initial_wait: float = setting(
        "THULIUM_RETRY_WAIT",
        "first retry wait, seconds; doubles each attempt, plus jitter",
        parse=_SECONDS_ANY_WAIT,
        default=1.0,
    )
    max_wait: float = setting(
        "THULIUM_RETRY_MAX_WAIT",
        "the longest single wait, Retry-After included, seconds",
        parse=Number(0, 86_400),
        default=60.0,
    )
    budget: float = setting(
        "THULIUM_RETRY_BUDGET",
        "seconds after a run's start after which failures are no longer retried, and after "
        "which 3 campaigns in a row (or THULIUM_CONCURRENCY, if more) failing with no answer, "
        "a 5xx or a 429 for two THULIUM_TIMEOUTs end the fetching (the rest are recorded "
        "skipped): bounds a run when the API is down or hangs",
        parse=Number(0, 604_800),
        default=600.0,
    )


@group
class FetchSettings:
    """How many requests are in flight, and how fast they may start."""

    concurrency: int = setting(
        "THULIUM_CONCURRENCY",
        "requests in flight at once (one keep-alive connection each)",
        parse=Whole(1, 256),
        default=8,
        flag="--concurrency",
        metavar="N",
    )
    max_rps: float = setting(
        "THULIUM_MAX_RPS",
        "client-side rate limit over all workers, requests per second (0: none)",
        parse=Number(0, 100_000),
        default=0.0,
        shown_default="off",
    )


@group
class CampaignSettings:
    """Which campaigns a command works on."""

    selection: CampaignSelection = setting(
        "THULIUM_CAMPAIGNS",
        "campaign ids separated by commas and/or whitespace, e.g. 00001,00002; each exactly "
        "five characters of 0-9, A-Z, a-z. The word active adds every campaign Thulium lists "
        "as active (GET /outbounds/stats), found anew at each run; ids listed beside it are "
        "synced too, active or not; if the active list cannot be had, the run syncs nothing "
        "(exit 69; 1 if the credentials are refused)",
        parse=CampaignIds(),
        flag="--campaign",
        metavar="IDS",
        repeatable=True,
    )


@group
class ShardSettings:
    """Which shard of the campaigns this run syncs, when several pods split them."""

    spec: Shard | None = setting(
        "THULIUM_SHARD",
        "sync only shard I (0-based) of N, a stable hash-based subset",
        parse=ShardSpec(),
        default=None,
        flag="--shard",
        metavar="I/N",
        shown_default="all campaigns",
    )
    count: int | None = setting(
        "THULIUM_SHARDS",
        "N for a Kubernetes Indexed Job, whose JOB_COMPLETION_INDEX is the shard index",
        parse=Whole(1, MAX_SHARDS),
        default=None,
    )
    completion_index: int | None = setting(
        "JOB_COMPLETION_INDEX",
        "set by Kubernetes in an Indexed Job: the shard index",
        parse=Whole(0, MAX_SHARDS - 1),
        default=None,
    )

    def validate(self) -> None:
        if self.spec is None and self.completion_index is not None:
            if self.count is None:
                raise ConfigError(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but THULIUM_SHARDS "
                    "is not: set it to the Job's completions"
                )
            if self.completion_index >= self.count:
                raise ConfigError(
                    f"JOB_COMPLETION_INDEX={self.completion_index} is not below "
                    f"THULIUM_SHARDS={self.count}"
                )

    @property
    def shard(self) -> Shard | None:
        if self.spec is not None:
            return self.spec
        if self.completion_index is not None and self.count is not None:
            return Shard(self.completion_index, self.count)
        return None


@group
class WriteSettings:
    """How much one write transaction carries, and how a write rides out a lost database."""

    batch_rows: int = setting(
        "THULIUM_BATCH_ROWS",
        "rows written per transaction at most (whole campaigns)",
        parse=Whole(1, 10_000_000),
        default=20_000,
    )
    retry_attempts: int = setting(
        "THULIUM_DB_RETRY_ATTEMPTS",
        "attempts per write when the connection is lost (a restart, a failover) or a "
        "statement times out",
        parse=Whole(1, 100),
        default=4,
    )
    retry_wait: float = setting(
        "THULIUM_DB_RETRY_WAIT",
        "first wait before a database retry, seconds; doubles, plus jitter",
        parse=_SECONDS_ANY_WAIT,
        default=1.0,
    )


@group
class MetricsSettings:
    """Where a sync reports its metrics for Prometheus (neither by default)."""

    file: str | None = setting(
        "THULIUM_METRICS_FILE",
        "write the run's metrics here at its end, in the node_exporter textfile format "
        "(atomically: a *.prom file in the textfile collector's directory)",
        parse=WritablePath(),
        default=None,
        shown_default="off",
    )
    pushgateway_url: str | None = setting(
        "THULIUM_PUSHGATEWAY_URL",
        "push the run's metrics to this Prometheus Pushgateway at its end, grouped by job "
        "(thulium-etl) and shard. No credentials in it: see THULIUM_PUSHGATEWAY_USER",
        parse=HttpUrl(),
        default=None,
        shown_default="off",
    )
    pushgateway_user: str | None = setting(
        "THULIUM_PUSHGATEWAY_USER",
        "the user for HTTP Basic auth to the Pushgateway; set with "
        "THULIUM_PUSHGATEWAY_PASSWORD, or neither",
        parse=Text(),
        default=None,
        shown_default="none",
    )
    pushgateway_password: str | None = setting(
        "THULIUM_PUSHGATEWAY_PASSWORD",
        "the Pushgateway user's password, sent as UTF-8 (RFC 7617)",
        parse=Text(),
        default=None,
        file=True,
        secret=True,
        shown_default="none",
    )

    def validate(self) -> None:
        if (self.pushgateway_user is None) != (self.pushgateway_password is None):
            raise ConfigError(
                "THULIUM_PUSHGATEWAY_USER and THULIUM_PUSHGATEWAY_PASSWORD (or its _FILE) go "
                "together: set both, or neither"
            )

    @property
    def pushgateway_auth(self) -> tuple[str, str] | None:
        """The Pushgateway's user and password, if set."""
        if self.pushgateway_user is None or self.pushgateway_password is None:
            return None
        return self.pushgateway_user, self.pushgateway_password


# -- what each command reads -----------------------------------------------------------------


@group
class DatabaseCommand:
    """``migrate``: the database only."""

    database: DatabaseSettings


@group
class RunsCommand:
    """``runs``: which runs to show, how, and the database (its own options read first, as
    argparse would check them)."""

    limit: int = setting(
        env=None,
        help="how many runs",
        flag="--limit",
        parse=Whole(1, 10_000),
        default=10,
        metavar="N",
    )
    run: int | None = setting(
        env=None,
        help="show this run's campaigns instead",
        flag="--run",
        parse=Whole(1, 2**63 - 1),
        default=None,
        metavar="ID",
        shown_default="the recent runs",
    )
    json: bool = setting(
        env=None, help="print JSON instead of a table", flag="--json", parse=Switch(), default=False
    )
    database: DatabaseSettings


@group
class GrantReadCommand:
    """``grant-read ROLE``: the role to grant read access to, and the database."""

    role: str = setting(
        env=None,
        help="an existing role, e.g. metabase (CREATE ROLE … LOGIN)",
        flag="ROLE",
        parse=RoleName(),
    )
    database: DatabaseSettings


@group
class CheckCommand:
    quick: bool = setting(
        env=None,
        help="fetch the first campaign only",
        flag="--quick",
        parse=Switch(),
        default=False,
    )
    database: DatabaseSettings
    api: ApiSettings
    retry: RetryPolicy
    fetch: FetchSettings
    campaigns: CampaignSettings


@group
class SyncCommand:
    database: DatabaseSettings
    api: ApiSettings
    retry: RetryPolicy
    fetch: FetchSettings
    campaigns: CampaignSettings
    shards: ShardSettings
    write: WriteSettings
    metrics: MetricsSettings
