"""The ``thulium-etl`` command: arguments, logging setup and exit codes.

No business logic lives here: each command loads its settings in one call (flags and the
environment section of ``--help`` come from :mod:`etl.config`'s declarations), calls one
function, and maps the outcome, or the :class:`~etl.errors.EtlError` raised, to an exit
code. A command imports only what it needs: ``runs`` never loads the HTTP stack, ``sync``
never loads Alembic.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from etl import __version__, config, exits, logs
from etl.errors import ConfigError, EtlError, OutputError
from etl.exits import ExitCode
from etl.outcomes import RunOutcome
from etl.stop import DEADLINE as STOP_DEADLINE
from etl.stop import Stop

logger = logging.getLogger("thulium-etl")

#: A run's outcome as the process's exit code: the one place this mapping lives.
EXIT_BY_OUTCOME = {
    RunOutcome.SUCCEEDED: ExitCode.OK,
    RunOutcome.PARTIAL: ExitCode.CAMPAIGN_FAILED,
    RunOutcome.FAILED: ExitCode.CAMPAIGN_FAILED,
    RunOutcome.INTERRUPTED: ExitCode.TERMINATED,
}
EXIT_TERMINATED = ExitCode.TERMINATED  # what the last resort after a stop exits with


# -- shared by the commands -------------------------------------------------------------------


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _stop_on_signals(*, announce: bool = False) -> Iterator[Stop]:
    """A stop request that SIGTERM/SIGINT set while the block runs; handlers restored after.

    Python's handler does nothing: the interpreter writes each signal's number to a wakeup
    pipe (``signal.set_wakeup_fd``), and a thread of its own reads it, logs and requests the
    stop. A handler that logged or set an event could wait for a lock the main thread holds
    at that moment (a log line being redacted), and never return. With ``announce`` the first
    signal is logged (a sync has a run to wind down); otherwise the error the command ends
    with is its one line. If the process has not ended :data:`etl.stop.DEADLINE` seconds
    after the first signal, whatever it waits on, it ends with exit code 143.
    """
    stop = Stop(at_deadline=_end_now)
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    watcher = threading.Thread(
        target=_watch_signals, args=(read, stop, announce), name="signals", daemon=True
    )
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _ignore) for sig in _SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The signal is handled by :func:`_watch_signals`, from the wakeup pipe."""


def _watch_signals(read: int, stop: Stop, announce: bool) -> None:
    while chunk := os.read(read, 64):
        for signum in chunk:
            if announce and not stop.is_set():
                logger.warning(
                    "received %s: stopping (a write in progress is rolled back)",
                    signal.Signals(signum).name,
                )
            stop.request()


def _end_now() -> None:
    """The last resort after a stop: something waits past every bound (a database that
    stopped answering mid-connection, say). What the run committed is kept; the server
    rolls back the rest, and the next run closes this one."""
    logs.emergency(
        f"still running {STOP_DEADLINE:g}s after the stop: exiting now; the next run closes "
        "this run if it could not record its outcome"
    )
    os._exit(EXIT_TERMINATED)


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


def _keep_secrets(settings: object) -> None:
    """Register every secret among a command's settings for redaction, before any use."""
    database = getattr(settings, "database", None)
    if isinstance(database, config.DatabaseSettings):
        for secret in (database.url.password, database.url.query.get("password")):
            logs.add_secret(secret if isinstance(secret, str) else None)
    api = getattr(settings, "api", None)
    if isinstance(api, config.ApiSettings):
        _keep_basic_auth(api.user, api.password)
    metrics = getattr(settings, "metrics", None)
    if isinstance(metrics, config.MetricsSettings) and metrics.pushgateway_auth:
        _keep_basic_auth(*metrics.pushgateway_auth)


def _keep_basic_auth(user: str, password: str) -> None:
    """Register a password and its Basic token (UTF-8, as it is sent), as an echoed header
    would show it."""
    logs.add_secret(password)
    logs.add_secret(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))


@contextlib.contextmanager
def _engine(database: config.DatabaseSettings) -> Iterator[Any]:
    from etl.database import make_engine

    engine = make_engine(database)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def _connected(
    database: config.DatabaseSettings, *, doing: str, stop: Stop, begin: bool = False
) -> Iterator[Any]:
    """A connection (in one transaction if ``begin``) for a command's database work: its
    waits are bounded and a stop ends it (exit 143); a failure is exit 3."""
    from etl.database import bounded, database_errors

    with (
        _engine(database) as engine,
        database_errors(engine, doing=doing),
        engine.connect() as conn,
        bounded(conn, stop, doing=doing),
        conn.begin() if begin else contextlib.nullcontext(),
    ):
        yield conn


# -- the commands ---------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace, settings: config.DatabaseCommand) -> int:
    from etl import migrate
    from etl.database import database_errors, describe

    with (
        _stop_on_signals() as stop,
        _engine(settings.database) as engine,
        database_errors(engine, doing="migrating"),
    ):
        before, after = migrate.upgrade(engine, schema=settings.database.schema, stop=stop)
    where = f"schema {settings.database.schema} of {describe(settings.database.url)}"
    if before == after:
        logger.info("%s is already at revision %s: nothing to do", where, after)
    else:
        logger.info("%s upgraded from %s to %s", where, before or "empty", after)
    return ExitCode.OK


def cmd_sync(args: argparse.Namespace, settings: config.SyncCommand) -> int:
    from etl.sync import run_sync

    with _engine(settings.database) as engine, _stop_on_signals(announce=True) as stop:
        result = run_sync(engine, settings, stop=stop)
    code = EXIT_BY_OUTCOME[result.outcome]
    t = result.totals
    log = logger.info if code == ExitCode.OK else logger.error
    log(
        "run %d %s: %d of %d campaigns synced, %d failed, %d skipped; rows %d inserted, "
        "%d updated, %d deleted; %.2fs writing%s",
        result.run_id,
        result.outcome,
        t.campaigns_ok,
        t.campaigns_total,
        t.campaigns_failed,
        t.campaigns_skipped,
        t.rows_inserted,
        t.rows_updated,
        t.rows_deleted,
        result.write_seconds,
        f" — {result.error}" if result.error else "",
        extra={
            "run_id": result.run_id,
            "outcome": str(result.outcome),
            "write_seconds": round(result.write_seconds, 3),
            **vars(t),
        },
    )
    return code


def cmd_check(args: argparse.Namespace, settings: config.CheckCommand) -> int:
    from etl.check import check_campaigns, check_database

    with _stop_on_signals() as stop:
        with _engine(settings.database) as engine:
            database = check_database(engine, schema=settings.database.schema, stop=stop)
        _emit_verdict(database)
        code = database.exit_code
        for verdict in check_campaigns(settings, quick=settings.quick, stop=stop):
            _emit_verdict(verdict)
            code = code or verdict.exit_code
        if stop.is_set():
            return ExitCode.TERMINATED
    return code


def _emit_verdict(verdict: Any) -> None:
    _emit(f"{'PASS' if verdict.ok else 'FAIL'}  {verdict.what}: {logs.visible(verdict.detail)}")


_RUN_COLUMNS = [
    "run_id",
    "started_at",
    "finished_at",
    "shard",
    "outcome",
    "campaigns_total",
    "campaigns_ok",
    "campaigns_failed",
    "campaigns_skipped",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "error",
]
_CAMPAIGN_COLUMNS = [
    "campaign_id",
    "outcome",
    "rows_inserted",
    "rows_updated",
    "rows_deleted",
    "attempts",
    "duration_seconds",
    "http_status",
    "request_id",
    "error",
]


def cmd_runs(args: argparse.Namespace, settings: config.RunsCommand) -> int:
    from etl import history, migrate

    with (
        _stop_on_signals() as stop,
        _connected(settings.database, doing="reading run history", stop=stop) as conn,
    ):
        migrate.require_current(conn, schema=settings.database.schema)
        if settings.run is not None:
            rows, columns = history.run_campaigns(conn, settings.run), _CAMPAIGN_COLUMNS
        else:
            rows, columns = history.recent_runs(conn, limit=settings.limit), _RUN_COLUMNS
    if settings.run is not None and not rows:
        raise ConfigError(f"--run {settings.run}: no such run (or it recorded no campaigns)")
    if settings.json:
        rows_json = json.dumps([_jsonable(row) for row in rows], ensure_ascii=False, indent=2)
        _emit(logs.visible_json(rows_json))
    else:
        _emit(_table(rows, columns) if rows else "no runs recorded yet")
    return ExitCode.OK


def cmd_grant_read(args: argparse.Namespace, settings: config.GrantReadCommand) -> int:
    from etl import grants, migrate
    from etl.database import describe

    role = settings.role
    doing = f"granting read access to role {role}"
    with (
        _stop_on_signals() as stop,
        _connected(settings.database, doing=doing, stop=stop, begin=True) as conn,
    ):
        migrate.require_current(conn, schema=settings.database.schema)
        grant = grants.grant_read(conn, role)
        stop.check("committing the grants")
    logger.info(
        "role %s may read the %d tables and views of schema %s of %s (SELECT only)",
        role,
        len(grant.readable),
        grant.schema,
        describe(settings.database.url),
    )
    for warning in grant.warnings():
        logger.warning("%s", warning)
    return ExitCode.OK


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
    return logs.visible(value) if isinstance(value, str) else str(value)


# -- the parser ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A subcommand: what it reads, what runs it, and how ``--help`` describes it."""

    settings: type
    handler: Callable[[argparse.Namespace, Any], int]
    summary: str
    description: str


COMMANDS: dict[str, Command] = {
    "migrate": Command(
        config.DatabaseCommand,
        cmd_migrate,
        "upgrade the database schema to the latest revision (idempotent)",
        "Upgrade the schema to the head revision. Safe to run on every deploy: a schema "
        "already at head is left alone; two at once run one after the other.",
    ),
    "sync": Command(
        config.SyncCommand,
        cmd_sync,
        "sync the configured campaigns (or only --campaign ones)",
        "Fetch every configured campaign's statuses and upsert them. Each campaign is written "
        "atomically; one campaign's failure never stops the others. Refuses to run if the "
        "schema is not at this version's revision (exit 3) or another sync holds the lock "
        "(exit 75).",
    ),
    "check": Command(
        config.CheckCommand,
        cmd_check,
        "check config, database and API credentials without writing anything",
        "Validate the configuration, connect to the database, check the schema is at head, "
        "and fetch every configured campaign (only the first with --quick) through the same "
        "pipeline as sync. Prints a PASS/FAIL line for each. Writes nothing.",
    ),
    "runs": Command(
        config.RunsCommand,
        cmd_runs,
        "show recent sync runs, or one run's campaigns",
        "Show the run history recorded in sync_runs (newest first), or with --run ID the "
        "outcome of each campaign of that run.",
    ),
    "grant-read": Command(
        config.GrantReadCommand,
        cmd_grant_read,
        "let a role (a BI tool's) read the reporting views and tables, and nothing else",
        "Grant an existing PostgreSQL role USAGE on the schema and SELECT on every reporting "
        "view and table (not alembic_version), and revoke any other privilege it has on them "
        "and CREATE on the schema, in one transaction: running it again changes nothing. Run "
        "it as the user that runs migrate, and again after a migrate that adds views. Warns "
        "about what a grant cannot take away (superuser; privileges granted to PUBLIC or to a "
        "role it is a member of). Exits 2 if ROLE does not exist, 3 if the schema is not at "
        "this version's revision.",
    ),
}


def _add_flags(parser: argparse.ArgumentParser, settings: type) -> None:
    """A flag (or positional argument) for every setting of ``settings`` that has one, kept
    as text for its parser, under the setting's name."""
    for item, declaration in config.declared(settings):
        if not declaration.flag:
            continue
        help = config.flag_help(item, declaration)
        if declaration.positional:
            parser.add_argument(declaration.flag, metavar=declaration.flag, help=help)
        elif declaration.switch:
            parser.add_argument(
                declaration.flag,
                dest=declaration.name,
                action="store_const",
                const=config.Switch.ON,
                help=help,
            )
        else:
            parser.add_argument(
                declaration.flag,
                dest=declaration.name,
                action="append" if declaration.repeatable else "store",
                metavar=declaration.argument(),
                help=help,
            )


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    every = [config.LogSettings, *{c.settings: None for c in COMMANDS.values()}]
    parser = argparse.ArgumentParser(
        prog="thulium-etl",
        description="Copy Thulium outbound campaign statuses into PostgreSQL.",
        epilog=config.help_section(every) + "\n\n" + exits.help_section(),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"thulium-etl {__version__}")
    _add_flags(parser, config.LogSettings)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.summary,
            description=command.description,
            epilog=config.help_section([config.LogSettings, command.settings])
            + "\n\n"
            + exits.help_section(),
            formatter_class=formatter,
        )
        _add_flags(sub, command.settings)
        sub.set_defaults(command_spec=command)
    return parser


def _flags(args: argparse.Namespace, *groups: type) -> dict[str, str]:
    """Every setting of ``groups`` given on the command line, by its name, as the text it
    was given."""
    given: dict[str, str] = {}
    for group in groups:
        for _, declaration in config.declared(group):
            value = getattr(args, declaration.name, None)
            if value is not None:
                given[declaration.name] = ",".join(value) if isinstance(value, list) else value
    return given


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run one command and return its exit code (the console script exits with it)."""
    env = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.CONFIG
    command: Command = args.command_spec
    flags = _flags(args, config.LogSettings, command.settings)
    try:
        log = config.load(config.LogSettings, env, flags)
    except ConfigError as exc:
        logs.configure(fmt="text", level=logging.INFO)
        logger.error("configuration error: %s", exc)
        return ExitCode.CONFIG
    logs.configure(fmt=log.format, level=logging.getLevelNamesMapping()[log.level])
    try:
        settings: object = config.load(command.settings, env, flags)
        _keep_secrets(settings)
        return command.handler(args, settings)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return exc.exit_code
    except OutputError as exc:
        (logger.debug if exc.quiet else logger.error)("%s", exc)
        return exc.exit_code
    except EtlError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling of it was in place
        logger.error("stopped by SIGINT before %s began its work", args.command)
        return ExitCode.TERMINATED
    except Exception as exc:  # a bug: one log event (its traceback inside), not a crash
        logger.error(
            "internal error (a bug in thulium-etl; please report it with this log): %s: %s",
            type(exc).__name__,
            exc,
            exc_info=True,
        )
        return ExitCode.INTERNAL


def run() -> None:
    """Console-script entry point."""
    logs.escape_unencodable(sys.stdout, sys.stderr)
    code = main()
    # Everything is written, flushed and closed by now: exit without the collector walking
    # the whole heap once more on the way out (~0.08 s of every run).
    gc.freeze()
    sys.exit(code)
