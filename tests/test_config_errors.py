"""A configuration error exits 2 with one line naming the problem, before anything is contacted.

Every case runs the real CLI against a live stand-in and a migrated database, then checks the
stand-in received no request and the database holds no run, campaign or status row. The
``127.0.0.1:1`` cases prove the API settings are validated before any database connection is
even attempted (an attempt would end in exit 3, not 2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, USER, Result, make_env, run_cli, spawn_cli
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses
from tests.helpers.databases import DATA_TABLES

IDS = ["00001", "00002"]
UNREACHABLE_DB = f"postgresql://etl:{DB_PASSWORD}@127.0.0.1:1/thulium"


@pytest.fixture(scope="module")
def shared_api() -> Iterator[StandIn]:
    with StandIn(user=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture
def api(shared_api: StandIn) -> StandIn:
    """One stand-in for the module (most cases must never reach it); counts start at zero."""
    shared_api.reset_counts()
    return shared_api


def rows_written(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in DATA_TABLES
        }


def assert_nothing_contacted(result: Result, api: StandIn, engine: Engine) -> None:
    assert api.total_requests == 0, result.err
    assert rows_written(engine) == dict.fromkeys(DATA_TABLES, 0)


def one_error_event(result: Result) -> dict[str, Any]:
    """The run's only stderr line, parsed: a JSON event at level error, and nothing else."""
    assert result.code == 2, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    event: dict[str, Any] = json.loads(lines[0])
    assert event["level"] == "error"
    assert "\n" not in event["message"]
    return event


def env_without(api: StandIn, db_url: URL, name: str) -> dict[str, str]:
    env = make_env(api, db_url, IDS)
    del env[name]
    return env


# -- missing variables ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["THULIUM_BASE_URL", "THULIUM_USER", "THULIUM_PASSWORD", "THULIUM_CAMPAIGNS", "DATABASE_URL"],
)
@pytest.mark.parametrize("command", ["sync", "check"])
def test_a_missing_variable_is_named_and_nothing_is_contacted(
    api: StandIn, db_url: URL, migrated: Engine, name: str, command: str
) -> None:
    result = run_cli(command, env=env_without(api, db_url, name))

    event = one_error_event(result)
    assert name in event["message"]
    assert "not set" in event["message"]
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("name", ["THULIUM_BASE_URL", "THULIUM_USER", "THULIUM_CAMPAIGNS"])
def test_a_blank_variable_counts_as_missing(
    api: StandIn, db_url: URL, migrated: Engine, name: str
) -> None:
    env = make_env(api, db_url, IDS, **{name: "  "})

    result = run_cli("sync", env=env)

    event = one_error_event(result)
    assert name in event["message"] and "not set" in event["message"]
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("command", ["migrate", "runs"])
def test_database_commands_need_only_database_url(
    api: StandIn, db_url: URL, migrated: Engine, command: str
) -> None:
    env = {"DATABASE_URL": make_env(api, db_url, IDS)["DATABASE_URL"], "THULIUM_LOG_FORMAT": "json"}
    assert run_cli(command, env=env).code == 0

    result = run_cli(command, env={"THULIUM_LOG_FORMAT": "json"})

    assert "DATABASE_URL" in one_error_event(result)["message"]


@pytest.mark.parametrize(
    "name", ["THULIUM_BASE_URL", "THULIUM_USER", "THULIUM_PASSWORD", "THULIUM_CAMPAIGNS"]
)
def test_api_settings_are_checked_before_the_database_is_tried(
    api: StandIn, db_url: URL, name: str
) -> None:
    env = env_without(api, db_url, name)
    env["DATABASE_URL"] = UNREACHABLE_DB  # a connection attempt would give exit 3

    result = run_cli("sync", env=env)

    assert name in one_error_event(result)["message"]
    assert api.total_requests == 0


# -- campaign ids -------------------------------------------------------------------------

BAD_IDS = ["0001", "000001", "00-01", "0000ł", "0000\u0661", "00001;00002"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_campaign_id_in_the_environment_is_named(
    api: StandIn, db_url: URL, migrated: Engine, bad: str
) -> None:
    env = make_env(api, db_url, ["00003", bad])

    result = run_cli("sync", env=env)

    message = one_error_event(result)["message"]
    assert "THULIUM_CAMPAIGNS" in message
    assert repr(bad) in message
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("command", ["sync", "check"])
def test_a_malformed_campaign_id_given_with_the_flag_is_named(
    api: StandIn, db_url: URL, migrated: Engine, bad: str, command: str
) -> None:
    env = make_env(api, db_url, IDS)

    result = run_cli(command, "--campaign", "00003", "--campaign", bad, env=env)

    message = one_error_event(result)["message"]
    assert "--campaign" in message
    assert repr(bad) in message
    assert_nothing_contacted(result, api, migrated)


def test_a_blank_campaign_flag_is_a_usage_error(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    result = run_cli("sync", "--campaign", " ", env=make_env(api, db_url, IDS))

    message = one_error_event(result)["message"]
    assert "--campaign" in message and "no campaign ids" in message
    assert_nothing_contacted(result, api, migrated)


def test_commas_spaces_and_newlines_all_separate_campaign_ids(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = seed_campaigns(api, ["00001", "00002", "00003"], n=3)
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="00001, 00002\n00003\n")

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id, statuses in served.items():
        assert api.requests_for(campaign_id) == 1
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(statuses)
    assert api.total_requests == 3
    assert rows_written(migrated)["campaigns"] == 3


def test_the_campaign_flag_accepts_commas_and_repeats_and_overrides_the_variable(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = seed_campaigns(api, ["00001", "00002", "00003", "00009"], n=2)
    env = make_env(api, db_url, ["00009"])

    result = run_cli("sync", "--campaign", "00001,00002", "--campaign", "00003", env=env)

    assert result.code == 0, result.err
    assert api.requests_for("00009") == 0
    for campaign_id in ("00001", "00002", "00003"):
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
    assert stored_statuses(migrated, "00009") == {}


# -- the password file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\r\n", "is empty"),
        (b"\xff\xfe-not-utf8", "cannot read"),
        ("directory", "cannot read"),
    ],
    ids=["missing", "empty", "newline-only", "crlf-only", "not-utf8", "a-directory"],
)
def test_an_unusable_password_file_is_named(
    api: StandIn,
    db_url: URL,
    migrated: Engine,
    tmp_path: Path,
    content: bytes | str | None,
    reason: str,
) -> None:
    secret = tmp_path / "password"
    if content == "directory":
        secret.mkdir()
    elif isinstance(content, bytes):
        secret.write_bytes(content)
    env = env_without(api, db_url, "THULIUM_PASSWORD")
    env["THULIUM_PASSWORD_FILE"] = str(secret)

    result = run_cli("sync", env=env)

    message = one_error_event(result)["message"]
    assert "THULIUM_PASSWORD_FILE" in message
    assert reason in message
    assert_nothing_contacted(result, api, migrated)


def test_password_and_password_file_together_are_refused(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    env = make_env(api, db_url, IDS, THULIUM_PASSWORD_FILE=str(secret))

    # A process of its own: no earlier test's registered secrets can mask a leak here.
    proc = spawn_cli("sync", env=env)
    out, err = proc.communicate(timeout=60)
    result = Result(proc.returncode, out, err)

    message = one_error_event(result)["message"]
    assert "THULIUM_PASSWORD" in message and "THULIUM_PASSWORD_FILE" in message
    assert PASSWORD not in result.err
    assert_nothing_contacted(result, api, migrated)


def test_database_url_and_its_file_together_are_refused(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    env = make_env(api, db_url, IDS)
    url_file = tmp_path / "database-url"
    url_file.write_text(env["DATABASE_URL"])
    env["DATABASE_URL_FILE"] = str(url_file)

    result = run_cli("sync", env=env)

    assert "DATABASE_URL_FILE" in one_error_event(result)["message"]
    assert DB_PASSWORD not in result.err
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_the_password_is_read_from_its_file_without_the_line_ending(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path, ending: str
) -> None:
    served = seed_campaigns(api, IDS, n=2)
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + ending, encoding="utf-8", newline="")
    env = env_without(api, db_url, "THULIUM_PASSWORD")
    env["THULIUM_PASSWORD_FILE"] = str(secret)

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id in IDS:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
    assert PASSWORD not in result.err + result.out


SPACED_PASSWORD = "  Pa55 with spaces\t "


@pytest.mark.parametrize("line_end", ["", "\n", "\r\n"], ids=["none", "LF", "CRLF"])
@pytest.mark.parametrize("given_as", ["variable", "file"])
def test_a_password_is_taken_exactly_surrounding_spaces_included_from_variable_or_file(
    db_url: URL, migrated: Engine, tmp_path: Path, given_as: str, line_end: str
) -> None:
    """Only a trailing line ending is dropped, the same from either (an env file with CRLF
    lines gives a variable one)."""
    with StandIn(user=USER, password=SPACED_PASSWORD) as api:  # it takes only this exact one
        served = seed_campaigns(api, IDS, n=2)
        env = env_without(api, db_url, "THULIUM_PASSWORD")
        if given_as == "file":
            (tmp_path / "password").write_bytes((SPACED_PASSWORD + line_end).encode())
            env["THULIUM_PASSWORD_FILE"] = str(tmp_path / "password")
        else:
            env["THULIUM_PASSWORD"] = SPACED_PASSWORD + line_end

        result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id in IDS:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])


def test_other_settings_ignore_surrounding_whitespace_from_variable_or_file(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    served = seed_campaigns(api, IDS, n=2)
    env = make_env(api, db_url, IDS)
    (tmp_path / "url").write_text(f"  {env.pop('DATABASE_URL')}\t\n")
    env |= {
        "DATABASE_URL_FILE": str(tmp_path / "url"),
        "THULIUM_USER": f" {USER} ",
        "THULIUM_CAMPAIGNS": f"  {','.join(IDS)}\n",
    }

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id in IDS:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])


# -- malformed values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "acme.thulium.com/api",
        "ftp://acme.thulium.com/api",
        "https:///api",
        "https://acme.thulium.com:99999/api",
        "https://acme.thulium.com:abc/api",
        "https://acme.thulium.com:0/api",
        "https://acme.thulium.com/api?x=1",
        "https://acme.thulium.com/api?",
        "https://acme.thulium.com/api#",
        "https://acme.thulium.com/api/outbounds/00001/statuses?",
        "https://acme.thulium.com/api/outbounds/00001/statuses#",
        "https://acme.thulium.com/api/../outbounds/00001/statuses",
        "https://acme.thulium.com/api/%2e%2e/x",
        "https://acme.thulium.com/a pi",
        "https://acme.thulium.com/api\\x",
    ],
)
def test_a_malformed_base_url_is_named(
    api: StandIn, db_url: URL, migrated: Engine, value: str
) -> None:
    result = run_cli("sync", env=make_env(api, db_url, IDS, THULIUM_BASE_URL=value))

    assert "THULIUM_BASE_URL" in one_error_event(result)["message"]
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("password", ["hunter2-in-url", "ab/hunter2-in-url", "ab?hunter2-in-url"])
def test_credentials_in_the_base_url_are_refused_without_echoing_them(
    api: StandIn, db_url: URL, migrated: Engine, password: str
) -> None:
    host_and_path = api.url.split("://", 1)[1]
    value = f"http://{USER}:{password}@{host_and_path}"

    result = run_cli("sync", env=make_env(api, db_url, IDS, THULIUM_BASE_URL=value))

    message = one_error_event(result)["message"]
    assert "THULIUM_BASE_URL" in message and "credentials" in message
    assert "hunter2-in-url" not in result.err
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize(
    "value",
    [
        "http://pusher:{pw}@127.0.0.1:9091",
        "https://pusher:{pw}@pushgateway.example:9091/",
        "http://:{pw}@127.0.0.1:9091",
        "ftp://pusher:{pw}@127.0.0.1:9091",
        "http://pusher:{pw}@127.0.0.1:abc",
        "http://pusher:{pw}@[::1:9091",
        "https://pusher:ab/{pw}@pushgateway.example",
        "https://pusher:1234/{pw}@pushgateway.example",
        "https://pusher:ab?{pw}@pushgateway.example",
        "https://pusher:ab#{pw}@pushgateway.example",
    ],
    ids=[
        "plain",
        "https",
        "no-user",
        "not-http",
        "port-not-a-number",
        "broken-ipv6",
        "slash-in-password",
        "a-port-then-slash-in-password",
        "question-mark-in-password",
        "hash-in-password",
    ],
)
def test_credentials_in_the_pushgateway_url_are_refused_without_echoing_them(
    api: StandIn, db_url: URL, migrated: Engine, value: str
) -> None:
    password = f"gnu-{uuid.uuid4().hex}"  # never registered as a secret by an earlier test
    env = make_env(api, db_url, IDS, THULIUM_PUSHGATEWAY_URL=value.format(pw=password))

    result = run_cli("sync", env=env)

    message = one_error_event(result)["message"]
    assert "THULIUM_PUSHGATEWAY_URL" in message
    if "@[" not in value:  # a URL that cannot be parsed is refused as such
        assert "THULIUM_PUSHGATEWAY_USER" in message and "THULIUM_PUSHGATEWAY_PASSWORD" in message
    assert password not in result.err
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("given", ["THULIUM_PUSHGATEWAY_USER", "THULIUM_PUSHGATEWAY_PASSWORD"])
def test_a_pushgateway_user_without_a_password_or_the_reverse_is_refused(
    api: StandIn, db_url: URL, migrated: Engine, given: str
) -> None:
    env = make_env(
        api, db_url, IDS, THULIUM_PUSHGATEWAY_URL="http://127.0.0.1:1", **{given: "gnu-Pa55-only"}
    )

    result = run_cli("sync", env=env)

    message = one_error_event(result)["message"]
    assert "THULIUM_PUSHGATEWAY_USER" in message and "THULIUM_PUSHGATEWAY_PASSWORD" in message
    assert "gnu-Pa55-only" not in result.err
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize(
    "value",
    [
        "not a url",
        "mysql://etl:{pw}@127.0.0.1/thulium",
        "sqlite:///thulium.db",
        "postgresql://etl:{pw}@127.0.0.1:abc/thulium",
        "postgresql://etl:{pw}@127.0.0.1:99999/thulium",
    ],
    ids=["not-a-url", "mysql", "sqlite", "port-not-a-number", "port-out-of-range"],
)
@pytest.mark.parametrize("command", ["migrate", "sync", "check", "runs"])
def test_a_malformed_database_url_is_named_without_its_password(
    api: StandIn, db_url: URL, migrated: Engine, value: str, command: str
) -> None:
    password = f"tapir-{uuid.uuid4().hex}"  # never registered as a secret by an earlier test
    env = make_env(api, db_url, IDS, DATABASE_URL=value.format(pw=password))

    result = run_cli(command, env=env)

    assert "DATABASE_URL" in one_error_event(result)["message"]
    assert password not in result.err + result.out
    assert api.total_requests == 0


# Each a password (or user name) with a character that must be percent-encoded: SQLAlchemy
# would read part of it as the host, the database or a connection option, and print it.
AMBIGUOUS_DATABASE_URLS = {
    "at-in-password": "postgresql://etl:{a}@{b}@127.0.0.1:1/thulium",
    "at-and-slash-in-password": "postgresql://etl:{a}@{b}/x@127.0.0.1:1/thulium",
    "at-and-colon-in-password": "postgresql://etl:{a}@{b}:x@127.0.0.1:1/thulium",
    "slash-in-password": "postgresql://etl:{a}/{b}@127.0.0.1:1/thulium",
    "question-mark-in-password": "postgresql://etl:{a}?{b}@127.0.0.1:1/thulium",
    "hash-in-password": "postgresql://etl:{a}#{b}@127.0.0.1:1/thulium",
    "bracket-in-password": "postgresql://etl:{a}[{b}@127.0.0.1:1/thulium",
    "slash-in-user-name": "postgresql://{a}/{b}:pw@127.0.0.1:1/thulium",
    "at-in-query-password": "postgresql://127.0.0.1:1/thulium?password={a}@{b}",
    "ampersand-in-query-password": "postgresql://127.0.0.1:1/thulium?password={a}&{b}=x",
}


@pytest.mark.parametrize("given_as", ["variable", "file"])
@pytest.mark.parametrize(
    "template", AMBIGUOUS_DATABASE_URLS.values(), ids=AMBIGUOUS_DATABASE_URLS.keys()
)
def test_a_database_url_whose_password_is_not_percent_encoded_is_refused_unprinted(
    api: StandIn, db_url: URL, tmp_path: Path, template: str, given_as: str
) -> None:
    first, second = (f"{animal}{uuid.uuid4().hex[:12]}" for animal in ("tapir", "okapi"))
    env = make_env(api, db_url, IDS)
    value = template.format(a=first, b=second)
    if given_as == "file":
        del env["DATABASE_URL"]
        (tmp_path / "url").write_text(value + "\n")
        env["DATABASE_URL_FILE"] = str(tmp_path / "url")
    else:
        env["DATABASE_URL"] = value

    # A process of its own: no secret an earlier test registered can hide a leak.
    proc = spawn_cli("sync", env=env)
    out, err = proc.communicate(timeout=60)

    message = one_error_event(Result(proc.returncode, out, err))["message"]
    assert "DATABASE_URL" in message and "percent-encode" in message and "%40" in message
    for part in (first, second):
        assert part not in out + err
    assert api.total_requests == 0  # and exit 2, not 3: the database was not tried


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THULIUM_TIMEOUT", "abc"),
        ("THULIUM_TIMEOUT", "-1"),
        ("THULIUM_TIMEOUT", "0"),
        ("THULIUM_TIMEOUT", "nan"),
        ("THULIUM_CONNECT_TIMEOUT", "inf"),
        ("THULIUM_CONCURRENCY", "0"),
        ("THULIUM_CONCURRENCY", "two"),
        ("THULIUM_RETRY_ATTEMPTS", "0"),
        ("THULIUM_RETRY_WAIT", "-0.5"),
        ("THULIUM_BATCH_ROWS", "1.5"),
        ("THULIUM_CA_BUNDLE", "/nonexistent/ca-bundle.pem"),
        ("THULIUM_CA_BUNDLE", "/"),
        # absurd values: each would crash or stall the job if it got through
        ("THULIUM_CONCURRENCY", "100000000000000000000"),
        ("THULIUM_TIMEOUT", "1e300"),
        ("THULIUM_CONNECT_TIMEOUT", "1e300"),
        ("THULIUM_REQUEST_DEADLINE", "1e300"),
        ("THULIUM_RETRY_ATTEMPTS", "1000000000"),
        ("THULIUM_RETRY_MAX_WAIT", "1e300"),
        ("THULIUM_RETRY_BUDGET", "1e300"),
        ("THULIUM_BATCH_ROWS", "1000000000000"),
        ("THULIUM_MAX_BODY_BYTES", "1000000000000000"),
        ("THULIUM_MAX_BODY_BYTES", "10"),
        ("THULIUM_MAX_RPS", "1e300"),
        ("THULIUM_DB_RETRY_ATTEMPTS", "1000000000"),
        ("THULIUM_DB_LOCK_TIMEOUT", "1e300"),
        ("THULIUM_DB_LOCK_TIMEOUT", "0"),
        ("THULIUM_DB_STATEMENT_TIMEOUT", "-1"),
        ("THULIUM_SHARD", "0/1000000"),
        ("THULIUM_SHARD", "0/" + "9" * 5000),
    ],
)
def test_a_malformed_setting_is_named(
    api: StandIn, db_url: URL, migrated: Engine, name: str, value: str
) -> None:
    result = run_cli("sync", env=make_env(api, db_url, IDS, **{name: value}))

    message = one_error_event(result)["message"]
    assert name in message
    assert value[:40] in message
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize(
    ("flag", "value"), [("--concurrency", "100000000000000000000"), ("--timeout", "1e300")]
)
def test_an_absurd_flag_value_is_a_configuration_error(
    api: StandIn, db_url: URL, migrated: Engine, flag: str, value: str
) -> None:
    result = run_cli("sync", flag, value, env=make_env(api, db_url, IDS))

    assert result.code == 2
    assert value in result.err and "Traceback" not in result.err
    assert_nothing_contacted(result, api, migrated)


def test_an_unknown_database_url_option_is_named(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = make_env(api, db_url, IDS)
    env["DATABASE_URL"] += "?sslmode=prefer&foo=bar"

    result = run_cli("sync", env=env)

    message = one_error_event(result)["message"]
    assert "DATABASE_URL" in message and "foo" in message and "sslmode" in message
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize("name", ["THULIUM_PASSWORD", "THULIUM_USER"])
def test_credentials_that_are_not_utf8_are_named_without_their_value(
    api: StandIn, db_url: URL, migrated: Engine, name: str
) -> None:
    # What os.environ holds for a value with bytes that are not UTF-8 (surrogateescape).
    value = "tajne-\udcff\udcfe-haslo"

    result = run_cli("sync", env=make_env(api, db_url, IDS, **{name: value}))

    message = one_error_event(result)["message"]
    assert name in message and "UTF-8" in message
    assert "tajne" not in result.err and "haslo" not in result.err
    assert_nothing_contacted(result, api, migrated)


def test_a_negative_timeout_flag_is_a_configuration_error(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    result = run_cli("sync", "--timeout", "-1", env=make_env(api, db_url, IDS))

    message = one_error_event(result)["message"]
    assert "TIMEOUT" in message and "-1" in message
    assert_nothing_contacted(result, api, migrated)


@pytest.mark.parametrize(
    ("variable", "value"), [("THULIUM_LOG_FORMAT", "xml"), ("THULIUM_LOG_LEVEL", "verbose")]
)
def test_an_unknown_log_setting_is_one_plain_text_line(
    api: StandIn, db_url: URL, migrated: Engine, variable: str, value: str
) -> None:
    result = run_cli("sync", env=make_env(api, db_url, IDS, **{variable: value}))

    assert result.code == 2
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert not lines[0].lstrip().startswith("{")
    assert " ERROR " in lines[0]
    assert variable in lines[0]
    assert (value.upper() if variable.endswith("LEVEL") else value) in lines[0]
    assert_nothing_contacted(result, api, migrated)


def test_a_text_format_configuration_error_is_one_line(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = env_without(api, db_url, "THULIUM_USER")
    env["THULIUM_LOG_FORMAT"] = "text"

    result = run_cli("sync", env=env)

    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert " ERROR " in lines[0] and "THULIUM_USER" in lines[0]
    assert_nothing_contacted(result, api, migrated)


# -- bytes that are not UTF-8 --------------------------------------------------------------

NOT_UTF8: dict[str, tuple[list[str | bytes], dict[str, bytes], str]] = {
    "role-argument": (["grant-read", b"bi\xe9"], {}, "ROLE"),
    "database-url": (
        ["runs"],
        {"DATABASE_URL": b"postgresql://etl@127.0.0.1:1/thu\xfflium"},
        "DATABASE_URL",
    ),
    "database-url-file-name": (
        ["runs"],
        {"DATABASE_URL_FILE": b"/run/db-\xff"},
        "DATABASE_URL_FILE",
    ),
    "base-url": (["check"], {"THULIUM_BASE_URL": b"http://127.0.0.1/\xff"}, "THULIUM_BASE_URL"),
    "campaigns": (["sync"], {"THULIUM_CAMPAIGNS": b"00001,0000\xff"}, "THULIUM_CAMPAIGNS"),
    "number": (["sync"], {"THULIUM_TIMEOUT": b"3\xff"}, "THULIUM_TIMEOUT"),
    "log-format": (["runs"], {"THULIUM_LOG_FORMAT": b"js\xffon"}, "THULIUM_LOG_FORMAT"),
    "campaign-flag": (["sync", "--campaign", b"0000\xff"], {}, "--campaign"),
    "shard-flag": (["sync", "--shard", b"0/\xff2"], {}, "--shard"),
    "log-format-flag": (["--log-format", b"t\xffext", "runs"], {}, "--log-format"),
}


@pytest.mark.parametrize(("argv", "variables", "named"), NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_an_argument_or_variable_that_is_not_utf8_is_a_configuration_error(
    api: StandIn, db_url: URL, argv: list[str | bytes], variables: dict[str, bytes], named: str
) -> None:
    env: dict[str, str | bytes] = {**make_env(api, db_url, IDS), **variables}
    if "DATABASE_URL_FILE" in variables:
        del env["DATABASE_URL"]
    elif "DATABASE_URL" not in variables:
        env["DATABASE_URL"] = UNREACHABLE_DB  # a connection attempt would give exit 3

    proc = spawn_cli(*argv, env=env)  # real bytes, as a shell passes them
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert named in lines[0] and "not valid UTF-8" in lines[0]
    assert "Traceback" not in err
    assert api.total_requests == 0


# -- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([], "COMMAND"),
        (["bogus"], "bogus"),
        (["sync", "--bogus"], "--bogus"),
        (["--log-format", "xml", "sync"], "xml"),
        (["sync", "--concurrency", "0"], "--concurrency"),
        (["sync", "--timeout", "soon"], "--timeout"),
        (["runs", "--limit", "0"], "--limit"),
        (["runs", "--limit", "1000000000"], "--limit"),
        (["runs", "--run", "latest"], "--run"),
        (["runs", "--run", "0"], "--run"),
        (["runs", "--run", str(10**30)], "--run"),
    ],
)
def test_a_usage_error_exits_2_naming_the_argument(
    api: StandIn, db_url: URL, migrated: Engine, argv: list[str], named: str
) -> None:
    result = run_cli(*argv, env=make_env(api, db_url, IDS))

    assert result.code == 2
    errors = [line for line in result.err.splitlines() if "error:" in line]
    assert len(errors) == 1, result.err
    assert named in errors[0]
    assert_nothing_contacted(result, api, migrated)
