"""Neither the API password nor the database password ever reaches output or the database.

Each CLI run is its own process (``spawn_cli``), so the redaction seen is the one that
command sets up for itself, not secrets another test registered in this process. After each
scenario every captured stream and the text of every row of every table are searched for
the passwords and for the Basic auth token (base64 of ``user:password``).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl import logs
from etl.records import snippet
from standin import Fault, StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, USER, Result, make_env, run_cli, spawn_cli
from tests.helpers.data import seed_campaigns

WRONG_PASSWORD = "wr0ng-Pa55-ibis"
UNREACHABLE_DB = f"postgresql://etl:{DB_PASSWORD}@127.0.0.1:1/thulium"


def basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


TOKEN = basic_token(USER, PASSWORD)
SECRETS = (PASSWORD, DB_PASSWORD, TOKEN)


def run(*argv: str, env: dict[str, str]) -> Result:
    proc = spawn_cli(*argv, env=env)
    out, err = proc.communicate(timeout=120)
    return Result(proc.returncode, out, err)


def stored_text(engine: Engine) -> str:
    """Every row of every table in the database, as Postgres renders the row."""
    with engine.connect() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            .scalars()
            .all()
        )
        rows = [
            row
            for table in tables
            for row in conn.execute(text(f'SELECT t::text FROM "{table}" AS t')).scalars()
        ]
    return "\n".join(rows)


def assert_no_secret(
    results: Iterable[Result], engine: Engine | None, secrets: Iterable[str] = SECRETS
) -> None:
    texts = {
        f"{n}.{stream}": getattr(r, stream)
        for n, r in enumerate(results)
        for stream in ("out", "err")
    }
    if engine is not None:
        texts["database"] = stored_text(engine)
    for secret in secrets:
        leaks = [where for where, value in texts.items() if secret in value]
        assert not leaks, f"{secret!r} found in {leaks}"


def campaign_errors(engine: Engine, run_id: int) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT campaign_id, error FROM sync_run_campaigns WHERE run_id = :r"),
            {"r": run_id},
        ).all()
    return {row.campaign_id: row.error for row in rows}


def last_run(engine: Engine) -> tuple[int, str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT run_id, outcome, error FROM sync_runs ORDER BY run_id DESC LIMIT 1")
        ).one()
    return row.run_id, row.outcome, row.error


def last_errors(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT campaign_id, last_error FROM campaigns")).all()
    return {row.campaign_id: row.last_error for row in rows}


# Bodies a proxy, a login page or a misbehaving API could send back: each one echoes the
# credentials in a different form, early enough to land in the error message's snippet.
ECHOES: dict[str, tuple[int, str, str]] = {
    "00003": (
        502,
        "text/html",
        f"<html><pre>GET /api/outbounds/00003/statuses\nAuthorization: Basic {TOKEN}</pre></html>",
    ),
    "00004": (502, "text/html", f"<html><p>login failed for password={PASSWORD}</p></html>"),
    "00005": (
        500,
        "application/json",
        json.dumps(
            {
                "request_id": "r-00005",
                "errors": [{"message": f"backend login {USER}:{PASSWORD} rejected", "code": 500}],
            }
        ),
    ),
    "00006": (200, "text/html", f"<html>Authorization: Basic {TOKEN} password {PASSWORD}</html>"),
    "00007": (
        400,
        "application/json",
        json.dumps({"echo": {"headers": {"Authorization": f"Basic {TOKEN}"}}}),
    ),
    "00008": (502, "text/plain", f"upstream http://{USER}:{PASSWORD}@10.0.0.7:8080/api failed"),
}


def serve_faults(api: StandIn) -> None:
    seed_campaigns(api, ["00001"], n=3)
    api.set_permanent_fault("00002", Fault.status(500))
    for campaign_id, (status, content_type, body) in ECHOES.items():
        api.set_body(campaign_id, body, status=status, content_type=content_type)


ALL = ["00001", "00002", *ECHOES]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_api_faults_and_echoed_credentials_leak_nowhere(
    api: StandIn, db_url: URL, migrated: Engine, log_format: str
) -> None:
    serve_faults(api)
    env = make_env(api, db_url, ALL, THULIUM_LOG_FORMAT=log_format)

    result = run("sync", env=env)

    assert result.code == 1, result.err
    run_id, outcome, run_error = last_run(migrated)
    assert outcome == "partial"
    errors = campaign_errors(migrated, run_id)
    assert errors["00001"] is None
    assert all(errors[c] for c in ALL[1:]), errors
    for campaign_id in ECHOES:  # the echo reached the message, and was masked there
        assert "***" in (errors[campaign_id] or ""), (campaign_id, errors[campaign_id])
        assert "***" in (last_errors(migrated)[campaign_id] or "")
    assert run_error is not None and "***" in run_error
    assert "***" in result.err
    assert_no_secret([result], migrated)


def test_history_and_check_commands_print_no_secret(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve_faults(api)
    env = make_env(api, db_url, ALL)
    synced = run("sync", env=env)
    run_id, _, _ = last_run(migrated)

    # What `runs` prints comes from the database, scanned below; `check` fetches and prints
    # error details itself, so it runs as a process of its own like the sync.
    results = [
        synced,
        run_cli("runs", env=env),
        run_cli("runs", "--json", env=env),
        run_cli("runs", "--run", str(run_id), env=env),
        run_cli("runs", "--run", str(run_id), "--json", env=env),
        run("check", env=env),
        run_cli("--log-format", "text", "check", env=env),
    ]

    assert [r.code for r in results] == [1, 0, 0, 0, 0, 1, 1], [r.err for r in results]
    shown = json.loads(results[4].out)
    assert {row["campaign_id"] for row in shown} == set(ALL)
    assert "***" in results[3].out  # the stored, masked errors are what is shown
    assert sum(line.startswith("FAIL") for line in results[5].out.splitlines()) == len(ALL) - 1
    assert "***" in results[5].out
    assert_no_secret(results, migrated)


def test_a_bare_basic_token_echoed_by_a_proxy_is_masked(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """A proxy page printing ``$http_authorization`` shows ``Basic <token>`` with no header name."""
    api.set_body(
        "00011",
        f"<html><pre>credentials: Basic {TOKEN}</pre></html>",
        status=502,
        content_type="text/html",
    )
    api.set_body(
        "00012", f"<html><pre>token={TOKEN}</pre></html>", status=200, content_type="text/html"
    )
    env = make_env(api, db_url, ["00011", "00012"])

    results = [run("sync", env=env), run("check", env=env)]

    assert [r.code for r in results] == [1, 1]
    errors = campaign_errors(migrated, last_run(migrated)[0])
    assert set(errors) == {"00011", "00012"} and all(errors.values())
    assert_no_secret(results, migrated)


def test_a_wrong_password_leaks_nowhere(api: StandIn, db_url: URL, migrated: Engine) -> None:
    seed_campaigns(api, ["00021", "00022"])
    env = make_env(api, db_url, ["00021", "00022"], THULIUM_PASSWORD=WRONG_PASSWORD)

    results = [run("sync", env=env), run("--log-format", "text", "check", env=env)]

    assert [r.code for r in results] == [1, 1]
    run_id, outcome, run_error = last_run(migrated)
    assert outcome == "failed" and run_error is not None and "401" in run_error
    assert any(e and "401" in e for e in campaign_errors(migrated, run_id).values())
    assert "FAIL" in results[1].out and "401" in results[1].out
    assert_no_secret(
        results,
        migrated,
        secrets=(*SECRETS, WRONG_PASSWORD, basic_token(USER, WRONG_PASSWORD)),
    )


@pytest.mark.parametrize(
    ("password", "page"),
    [
        ("s3cr3t-Pa55-heron-" + "q" * 20, "<p>" + "x" * 100 + " pass {pw}</p>"),  # at the cut
        ("correct  horse\tbattery-staple", "<p>bad password: {pw}</p>"),  # spaces squeezed
    ],
    ids=["straddling-the-cut", "with-whitespace"],
)
def test_a_password_an_error_page_echoes_is_masked_wherever_it_falls(
    api: StandIn, db_url: URL, migrated: Engine, password: str, page: str
) -> None:
    seed_campaigns(api, ["00041"])
    api.password = password
    api.add_faults(
        "00041",
        Fault.status(403, body=page.format(pw=password), content_type="text/html"),
    )

    result = run("sync", env=make_env(api, db_url, ["00041"], THULIUM_PASSWORD=password))

    assert result.code == 1, result.err
    assert "***" in (campaign_errors(migrated, last_run(migrated)[0])["00041"] or "")
    squeezed = " ".join(password.split())
    assert_no_secret([result], migrated, secrets=(password, squeezed, password[:10]))


def test_a_one_letter_password_does_not_mangle_the_logs(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, ["00031"])
    api.password = "p"
    env = make_env(api, db_url, ["00031"], THULIUM_PASSWORD="p")

    result = run("sync", env=env)

    assert result.code == 0, result.err
    messages = [event["message"] for event in result.events()]
    assert any(m.startswith("campaign 00031 synced: 5 inserted, 0 updated") for m in messages)
    assert "***" not in result.err


@pytest.mark.parametrize("command", ["migrate", "sync", "check", "runs"])
def test_an_unreachable_database_is_reported_without_its_password(
    api: StandIn, db_url: URL, command: str
) -> None:
    seed_campaigns(api, ["00031"])
    env = make_env(api, db_url, ["00031"], DATABASE_URL=UNREACHABLE_DB)

    result = run(command, env=env)

    assert result.code == 3, result.err
    assert "127.0.0.1:1/thulium" in result.err + result.out
    assert "unreachable" in result.err + result.out
    assert_no_secret([result], None)


DB_QUERY_PASSWORD = "query-Pa55-quokka"


@pytest.mark.parametrize("command", ["migrate", "sync", "check", "runs"])
def test_a_password_in_the_database_url_query_is_a_secret_too(
    api: StandIn, db_url: URL, command: str
) -> None:
    seed_campaigns(api, ["00032"])
    unreachable = f"postgresql://etl@127.0.0.1:1/thulium?password={DB_QUERY_PASSWORD}"
    env = make_env(api, db_url, ["00032"], DATABASE_URL=unreachable)

    result = run(command, env=env)

    assert result.code == 3, result.err
    assert_no_secret([result], None, secrets=(DB_QUERY_PASSWORD,))


def test_a_sync_with_the_password_in_the_url_query_stores_and_prints_none_of_it(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, ["00033"])
    url = db_url.set(password=None).update_query_dict({"password": DB_QUERY_PASSWORD})
    api.set_body("00034", f"proxy saw password={DB_QUERY_PASSWORD}", status=502)
    env = make_env(api, url, ["00033", "00034"])
    env["DATABASE_URL"] = url.render_as_string(hide_password=False)

    results = [run("sync", env=env), run("runs", "--json", env=env)]

    assert [r.code for r in results] == [1, 0], results[0].err
    assert_no_secret(results, migrated, secrets=(DB_QUERY_PASSWORD,))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["sync", "--help"],
        ["check", "--help"],
        ["runs", "--help"],
        ["migrate", "--help"],
        ["--version"],
    ],
)
def test_help_prints_no_secret(api: StandIn, db_url: URL, argv: list[str]) -> None:
    result = run_cli(*argv, env=make_env(api, db_url, ["00001"]))

    assert result.code == 0
    assert result.out
    assert_no_secret([result], None)


# -- etl.logs.redact ----------------------------------------------------------------------


def _fresh(prefix: str) -> str:
    """A password no earlier test can have registered."""
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://etl:{pw}@db.internal:5432/thulium",
        "postgresql+psycopg://etl:{pw}@db.internal/thulium?sslmode=require",
        "connection to https://api-user:{pw}@acme.thulium.com/api failed",
        "two: postgres://a:{pw}@h1/x and http://b:{pw}@h2/y",
        "Traceback:\n  url='postgresql://etl:{pw}@db:5432/x'\nOperationalError",
    ],
)
def test_redact_masks_url_passwords(template: str) -> None:
    password = _fresh("urlpw")
    original = template.format(pw=password)

    masked = logs.redact(original)

    assert password not in masked
    assert masked == template.format(pw="***")


def test_redact_masks_a_percent_encoded_url_password() -> None:
    masked = logs.redact("postgresql://etl:p%40ss%2Fw0rd@db/x")

    assert masked == "postgresql://etl:***@db/x"


@pytest.mark.parametrize(
    "template",
    [
        "Authorization: Basic {tok}",
        "authorization: basic {tok}",
        "AUTHORIZATION:Bearer {tok}",
        "Proxy-Authorization: Basic {tok}",
        '{{"Authorization": "Basic {tok}"}}',
        "{{'Authorization': 'Basic {tok}', 'Accept': 'application/json'}}",
        "headers Authorization=Bearer {tok}, other=1",
    ],
)
def test_redact_masks_authorization_values(template: str) -> None:
    token = basic_token("someone", _fresh("hdrpw"))
    token_with_padding = token + "=="  # tokens may end in '=', '+' and '/' are in the alphabet
    original = template.format(tok=token_with_padding + "+/x")

    masked = logs.redact(original)

    assert token not in masked
    assert masked == template.format(tok="***")


def test_redact_masks_a_registered_secret_anywhere() -> None:
    secret = _fresh("registered")
    logs.add_secret(secret)

    masked = logs.redact(f"login {secret} failed; again:{secret}\n{secret}")

    assert secret not in masked
    assert masked == "login *** failed; again:***\n***"


def test_a_secret_with_surrounding_spaces_is_masked_with_or_without_them() -> None:
    core = _fresh("spaced")
    logs.add_secret(f"  {core}\t ")

    masked = logs.redact(f"user:{core} failed; given '  {core}\t '")

    assert core not in masked
    assert masked == "user:*** failed; given '***'"


def test_a_short_secret_is_masked_where_it_stands_as_a_word_not_inside_words() -> None:
    secret = "ǂ" + uuid.uuid4().hex[:3]  # shorter than logs.SHORT_SECRET; in no other test
    logs.add_secret(secret)

    masked = logs.redact(f"login {secret} failed; user:{secret}; x{secret}y; {secret}")

    assert masked == f"login *** failed; user:***; x{secret}y; ***"


@pytest.mark.parametrize(
    ("shape", "template", "expected"),
    [
        ("-ǂ{}", "x_{secret} done", "x_*** done"),  # starts with punctuation
        ("ǂ{}!", "key {secret}c", "key ***c"),  # ends with punctuation
    ],
)
def test_a_short_secret_with_punctuation_is_masked_next_to_a_word(
    shape: str, template: str, expected: str
) -> None:
    secret = shape.format(uuid.uuid4().hex[:2])
    logs.add_secret(secret)

    assert logs.redact(template.format(secret=secret)) == expected


@pytest.mark.parametrize("space", [b" ", b"\n"])
def test_a_secret_behind_kilobytes_of_whitespace_is_masked_in_an_error_snippet(
    space: bytes,
) -> None:
    secret = _fresh("behind-the-blanks")
    logs.add_secret(secret)

    shown = snippet(space * 4200 + secret.encode() + b" tail")

    assert secret[:10] not in shown and "***" in shown


def test_redact_leaves_innocent_text_alone_and_is_idempotent() -> None:
    innocent = "campaign 00001 failed: HTTP 502 Bad Gateway from http://acme.thulium.com:8443/api"
    secretive = f"postgresql://etl:{_fresh('idem')}@db/x Authorization: Basic abc="

    assert logs.redact(innocent) == innocent
    assert logs.redact(logs.redact(secretive)) == logs.redact(secretive)


@pytest.mark.parametrize(
    "template",
    [
        "host=db password={pw} user=etl",
        "postgresql://etl@db/thulium?sslmode=require&password={pw}",
        "PASSWORD = {pw}",
    ],
)
def test_redact_masks_password_parameters(template: str) -> None:
    password = _fresh("param")

    masked = logs.redact(template.format(pw=password))

    assert masked == template.format(pw="***")


HOSTILE = {
    "one-long-word": "a" * 5_000_000,
    "scheme-then-no-at": "postgresql://" + "a" * 5_000_000,
    "user-colon-then-no-at": "http://user:" + "p" * 5_000_000,
    "schemes-over-and-over": "a://b:c" * 700_000,
    "authorization-then-spaces": ("Authorization:" + " " * 100) * 40_000,
    "password-parameters": "password=" * 500_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_redaction_takes_time_linear_in_the_text(text: str) -> None:
    """5 MB of hostile error text: linear patterns take milliseconds, quadratic ones hours.

    A generous bound, not a benchmark: it tells linear from quadratic, whatever the machine.
    """
    started = time.perf_counter()
    logs.clean(text)
    assert time.perf_counter() - started < 1.0
