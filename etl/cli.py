"""The ``thulium-etl`` command: argument parsing, logging setup and exit codes.

No business logic lives here: each command reads its settings, calls one function and maps
the outcome (or the :class:`~etl.errors.EtlError` raised) to an exit code.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from etl import __version__, config, history, logs, migrate, shards
from etl.client import ThuliumClient
from etl.database import database_errors, describe, make_engine
from etl.errors import (
    EXIT_CAMPAIGN_FAILED,
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_INTERNAL,
    EXIT_OK,
    CampaignError,
    ConfigError,
    DatabaseError,
    EtlError,
    OutputError,
)
from etl.records import parse_statuses
from etl.schema import REVISION
from etl.stop import Stop
from etl.sync import run_sync

logger = logging.getLogger("thulium-etl")

EXIT_CODES = """\
exit codes:
  0   success (every campaign synced / every check passed)
  1   at least one campaign failed or was skipped; the others were saved
  2   configuration or usage error; nothing was contacted
  3   the database is unreachable, refuses writes, or its schema is not at this
      version's revision
  70  internal error (a bug in thulium-etl: please report it with the log)
  74  the output could not be written (a full disk, a closed pipe)
  75  another sync holds the lock; this run did nothing (try again later)
  143 stopped by SIGTERM/SIGINT; finished campaigns are saved, the run is 'interrupted'
"""

ENVIRONMENT = """\
environment (a flag overrides its variable):
  DATABASE_URL / DATABASE_URL_FILE        postgresql://user:password@host:5432/db
  THULIUM_BASE_URL                        API root, e.g. https://acme.thulium.com/api
  THULIUM_USER, THULIUM_PASSWORD / THULIUM_PASSWORD_FILE   the API user
  THULIUM_CAMPAIGNS                       campaign ids, e.g. 00001,00002
  THULIUM_TIMEOUT (30), THULIUM_CONNECT_TIMEOUT (5)         seconds per read, per connect
  THULIUM_REQUEST_DEADLINE (120)          seconds for a whole request, however slow
  THULIUM_MAX_BODY_BYTES (50000000)       largest answer accepted, once decoded
  THULIUM_CA_BUNDLE                       CA bundle file; TLS is always verified
  THULIUM_CONCURRENCY (8)                 parallel requests
  THULIUM_MAX_RPS                         client-side rate limit, requests/second (off)
  THULIUM_SHARD (I/N), or JOB_COMPLETION_INDEX + THULIUM_SHARDS   sync one shard
  THULIUM_RETRY_ATTEMPTS (5), THULIUM_RETRY_WAIT (1), THULIUM_RETRY_MAX_WAIT (60),
  THULIUM_RETRY_BUDGET (600)              retries: attempts, first wait, cap, total per run
  THULIUM_BATCH_ROWS (20000)              rows written per transaction, at most
  THULIUM_DB_RETRY_ATTEMPTS (4), THULIUM_DB_RETRY_WAIT (1)  riding out a lost connection
  THULIUM_DB_LOCK_TIMEOUT (60), THULIUM_DB_STATEMENT_TIMEOUT (600)  seconds a statement may
                                          wait for a lock, or run
  THULIUM_LOG_FORMAT (text on a terminal, else json), THULIUM_LOG_LEVEL (INFO)
"""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Stop]:
    """A stop request that SIGTERM/SIGINT set while the block runs; handlers restored after."""
    stop = Stop()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            logger.warning("received %s: stopping (a write in progress is rolled back)",
                           signal.Signals(signum).name)
        stop.request()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _emit(text: str) -> None:
    """Print to stdout; a full disk or a closed pipe becomes OutputError (exit code 74)."""
    try:
        print(text, flush=True)
    except OSError as exc:
        # Nothing more can reach stdout: point it at /dev/null so the interpreter's final
        # flush does not fail again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if exc.errno == errno.EPIPE:
            raise OutputError("the reader of the output went away", quiet=True) from None
        raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None


def _campaigns(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    if args.campaign:
        return config.parse_campaign_ids(",".join(args.campaign), source="--campaign")
    return config.campaign_ids(env)


def _with_flags(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    """The environment with the command-line flags applied over their variables."""
    flags = {
        "THULIUM_CONCURRENCY": getattr(args, "concurrency", None),
        "THULIUM_TIMEOUT": getattr(args, "timeout", None),
        "THULIUM_SHARD": getattr(args, "shard", None),
    }
    return {**env, **{k: str(v) for k, v in flags.items() if v is not None}}


def _database(env: Mapping[str, str], *, pool_size: int = 2) -> tuple[Engine, URL]:
    settings = config.database_settings(env)
    url = settings.url
    for secret in (url.password, url.query.get("password")):
        logs.add_secret(secret if isinstance(secret, str) else None)
    engine = make_engine(
        url,
        pool_size=pool_size,
        lock_timeout=settings.lock_timeout,
        statement_timeout=settings.statement_timeout,
    )
    return engine, url


def _api(env: Mapping[str, str]) -> config.ApiSettings:
    api = config.api_settings(env)
    logs.add_secret(api.password)
    # The Basic token (UTF-8, as the client sends it), as an echoed header would show it.
    credentials = f"{api.user}:{api.password}".encode()
    logs.add_secret(base64.b64encode(credentials).decode("ascii"))
    return api


def cmd_migrate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    engine, url = _database(env)
    try:
        with database_errors(url, doing="migrating"):
            before, after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        logger.info("schema of %s is already at revision %s: nothing to do", describe(url), after)
    else:
        logger.info("schema of %s upgraded from %s to %s", describe(url), before or "empty", after)
    return EXIT_OK


def cmd_sync(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    env = _with_flags(args, env)
    api = _api(env)
    shard = config.shard(env)
    ids = shards.select(_campaigns(args, env), shard)
    write = config.write_settings(env)
    engine, url = _database(env)
    try:
        with _stop_on_signals() as stop:
            result = run_sync(
                engine, url, api, ids, stop=stop, options=write, shard=shard
            )
    finally:
        engine.dispose()
    t = result.totals
    log = logger.info if result.exit_code == EXIT_OK else logger.error
    log(
        "run %d %s: %d of %d campaigns synced, %d failed, %d skipped; rows %d inserted, "
        "%d updated, %d deleted; %.2fs writing%s",
        result.run_id, result.outcome, t.campaigns_ok, t.campaigns_total, t.campaigns_failed,
        t.campaigns_skipped, t.rows_inserted, t.rows_updated, t.rows_deleted,
        result.write_seconds, f" — {result.error}" if result.error else "",
        extra={"run_id": result.run_id, "outcome": result.outcome,
               "write_seconds": round(result.write_seconds, 3), **vars(t)},
    )
    return result.exit_code


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    api = _api(env)
    ids = _campaigns(args, env)
    engine, url = _database(env)
    code = EXIT_OK

    def line(ok: bool, what: str, detail: str) -> None:
        _emit(f"{'PASS' if ok else 'FAIL'}  {what}: {logs.clean(detail)}")

    try:
        with database_errors(url, doing="checking"), engine.connect() as conn:
            migrate.require_current(conn)
        line(True, "database", f"{describe(url)} reachable, schema at {REVISION}")
    except DatabaseError as exc:
        line(False, "database", str(exc))
        code = EXIT_DATABASE
    finally:
        engine.dispose()
    with ThuliumClient(api) as client:
        for campaign_id in ids[:1] if args.quick else ids:
            try:
                fetched = client.fetch_statuses(campaign_id)
                snapshot = parse_statuses(fetched.body, campaign_id=campaign_id)
                line(True, f"campaign {campaign_id}", f"{len(snapshot.statuses)} statuses")
            except CampaignError as exc:
                line(False, f"campaign {campaign_id}", exc.detail)
                code = code or EXIT_CAMPAIGN_FAILED
    return code


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in out)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[no-any-return]
    return str(value)


def cmd_runs(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    engine, url = _database(env)
    try:
        with database_errors(url, doing="reading run history"), engine.connect() as conn:
            migrate.require_current(conn)
            if args.run is not None:
                rows = history.run_campaigns(conn, args.run)
                columns = ["campaign_id", "outcome", "rows_inserted", "rows_updated",
                           "rows_deleted", "attempts", "duration_seconds", "http_status",
                           "request_id", "error"]
            else:
                rows = history.recent_runs(conn, limit=args.limit)
                columns = ["run_id", "started_at", "finished_at", "shard", "outcome",
                           "campaigns_total", "campaigns_ok", "campaigns_failed",
                           "campaigns_skipped", "rows_inserted", "rows_updated", "rows_deleted",
                           "error"]
    finally:
        engine.dispose()
    if args.run is not None and not rows:
        raise ConfigError(f"--run {args.run}: no such run (or it recorded no campaigns)")
    if args.json:
        _emit(json.dumps([_jsonable(row) for row in rows], ensure_ascii=False, indent=2))
    else:
        _emit(_table(rows, columns) if rows else "no runs recorded yet")
    return EXIT_OK


def _number_text(value: str) -> str:
    """An argparse type: a number, kept as written (its range is checked with its variable)."""
    try:
        float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number") from None
    return value


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(value: str) -> int:
        try:
            number = int(value) if value.strip().isascii() else None
        except ValueError:
            number = None
        if number is None:
            raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a whole number")
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value[:40]!r} must be between {low} and {high}")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="thulium-etl",
        description="Copy Thulium outbound campaign statuses into PostgreSQL.",
        epilog=ENVIRONMENT + "\n" + EXIT_CODES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"thulium-etl {__version__}")
    parser.add_argument("--log-format", choices=["text", "json"],
                        help="log line format (default: THULIUM_LOG_FORMAT, else text on a "
                        "terminal and json otherwise)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "migrate", help="upgrade the database schema to the latest revision (idempotent)",
        description="Upgrade the schema to the head revision. Safe to run on every deploy: "
        "a schema already at head is left alone. Needs DATABASE_URL only.",
        epilog=EXIT_CODES, formatter_class=formatter,
    )
    p.set_defaults(handler=cmd_migrate)

    p = commands.add_parser(
        "sync", help="sync the configured campaigns (or only --campaign ones)",
        description="Fetch every configured campaign's statuses and upsert them. Each campaign "
        "is written atomically; one campaign's failure never stops the others. Refuses to run "
        "if the schema is not at head (exit 3) or another sync holds the lock (exit 75).",
        epilog=ENVIRONMENT + "\n" + EXIT_CODES, formatter_class=formatter,
    )
    p.add_argument("--campaign", action="append", metavar="ID",
                   help="sync only this campaign id (repeatable; commas allowed); "
                   "default: THULIUM_CAMPAIGNS")
    p.add_argument("--concurrency", type=_whole(1, 256),
                   help="parallel requests (THULIUM_CONCURRENCY)")
    p.add_argument("--timeout", type=_number_text,
                   help="read timeout in seconds (THULIUM_TIMEOUT)")
    p.add_argument("--shard", metavar="I/N",
                   help="sync only shard I (0-based) of N, a stable hash-based subset, so N "
                   "pods split the campaigns (THULIUM_SHARD; in a Kubernetes Indexed Job, "
                   "JOB_COMPLETION_INDEX with THULIUM_SHARDS=N)")
    p.set_defaults(handler=cmd_sync)

    p = commands.add_parser(
        "check", help="check config, database and API credentials without writing anything",
        description="Validate the configuration, connect to the database, check the schema is "
        "at head, and call the API once per configured campaign (only the first with "
        "--quick). Prints a PASS/FAIL line for each. Writes nothing.",
        epilog=EXIT_CODES, formatter_class=formatter,
    )
    p.add_argument("--campaign", action="append", metavar="ID", help="check only this campaign")
    p.add_argument("--quick", action="store_true", help="call the API for the first campaign only")
    p.set_defaults(handler=cmd_check)

    p = commands.add_parser(
        "runs", help="show recent sync runs, or one run's campaigns",
        description="Show the run history recorded in sync_runs (newest first), or with "
        "--run ID the outcome of each campaign of that run.",
        epilog=EXIT_CODES, formatter_class=formatter,
    )
    p.add_argument("--limit", type=_whole(1, 10_000), default=10,
                   help="how many runs (default 10, at most 10000)")
    p.add_argument("--run", type=_whole(1, 2**63 - 1), metavar="ID",
                   help="show this run's campaigns")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_runs)
    return parser


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run one command and return its exit code (the console script exits with it)."""
    env = os.environ if environ is None else environ
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_CONFIG
    log_format = args.log_format or (env.get("THULIUM_LOG_FORMAT") or "").strip().lower() or None
    level_name = (env.get("THULIUM_LOG_LEVEL") or "INFO").strip().upper()
    level = logging.getLevelNamesMapping().get(level_name)
    if log_format not in (None, "text", "json") or level is None:
        logs.configure(fmt="text", level=logging.INFO)
        problem = (f"THULIUM_LOG_LEVEL={level_name!r} must be DEBUG, INFO, WARNING or ERROR"
                   if level is None else f"THULIUM_LOG_FORMAT={log_format!r} must be text or json")
        logger.error("configuration error: %s", problem)
        return EXIT_CONFIG
    logs.configure(fmt=log_format, level=level)
    try:
        code: int = args.handler(args, env)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return exc.exit_code
    except OutputError as exc:
        (logger.debug if exc.quiet else logger.error)("%s", exc)
        return exc.exit_code
    except EtlError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except Exception as exc:  # a bug: one log event (its traceback inside), not a crash
        logger.error("internal error (a bug in thulium-etl; please report it with this log): "
                     "%s: %s", type(exc).__name__, exc, exc_info=True)
        return EXIT_INTERNAL
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
