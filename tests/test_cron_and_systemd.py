"""deploy/cron: the systemd service and timer pass `systemd-analyze verify` and are sandboxed,
the env file sets only known settings and reads the same in sh and systemd, and the crontab
line runs a sync that mails one line only when it fails."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, USER
from tests.helpers.data import seed_campaigns
from tests.helpers.deploy import (
    DEPLOY,
    cron_field_ok,
    days_without_exactly_one,
    env_file,
    exit_code_actions,
    install_at,
    read_crontab,
    require,
    the,
    unit_root,
    unit_settings,
)

CRON = DEPLOY / "cron"
SERVICE = CRON / "thulium-etl.service"
TIMER = CRON / "thulium-etl.timer"
ENV_FILE = CRON / "thulium-etl.env"
SECOND_SYSTEM = CRON / "thulium-etl-globex.env"  # another Thulium system, same database
CRONTAB = CRON / "thulium-etl.crontab"
SECRETS = {"THULIUM_PASSWORD", "DATABASE_URL", "THULIUM_PASSWORD_FILE", "DATABASE_URL_FILE"}

service = unit_settings(SERVICE)["Service"]


def exec_start() -> str:
    """The program of the service's ExecStart= (an absolute path)."""
    (line,) = service["ExecStart"]
    return line.split()[0]


def console_script() -> Path:
    """The ``thulium-etl`` program of the environment under test."""
    script = Path(sys.executable).parent / "thulium-etl"
    assert script.exists(), f"{script} is missing: pip install -e ."
    return script


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("systemd-analyze"), f"--root={root}", *args], capture_output=True, text=True
    )


def test_the_service_and_the_timer_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # a root of their own: the host's units, ours, and the real thulium-etl where ExecStart=
    # expects it; verify then checks everything it checks on a real host
    root = unit_root(tmp_path, [SERVICE, TIMER])
    install_at(root, exec_start(), console_script())

    done = analyze(root, "verify", SERVICE.name, TIMER.name)

    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # unknown keys and bad values are only warnings


def test_verify_in_that_root_still_fails_when_the_program_is_missing(tmp_path: Path) -> None:
    root = unit_root(tmp_path, [SERVICE, TIMER])

    done = analyze(root, "verify", SERVICE.name, TIMER.name)

    assert done.returncode != 0
    assert f"Command {exec_start()} is not executable" in done.stderr


def test_the_service_runs_sandboxed_as_a_transient_unprivileged_user(tmp_path: Path) -> None:
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
    }
    for key, value in expected.items():
        assert value in service.get(key, []), (key, service.get(key))
    root = unit_root(tmp_path, [SERVICE])
    install_at(root, exec_start(), console_script())
    # systemd's own score: exposure at most 2.0 of 10 ("OK")
    done = analyze(root, "security", "--offline=yes", "--threshold=20", SERVICE.name)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_the_service_reads_the_secrets_as_credentials_through_the_file_variables() -> None:
    assert service["EnvironmentFile"] == ["/etc/thulium-etl/thulium-etl.env"]
    credentials = dict(c.split(":", 1) for c in service["LoadCredential"])
    assert set(credentials) == {"thulium-password", "database-url"}
    (environment,) = service["Environment"]
    assert set(environment.split()) == {
        "THULIUM_PASSWORD_FILE=%d/thulium-password",
        "DATABASE_URL_FILE=%d/database-url",
    }


def test_the_service_retries_exactly_what_the_kubernetes_job_retries(
    manifests: list[dict[str, Any]],
) -> None:
    job = the(manifests, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
    never_retried = {c for c, a in exit_code_actions(job, "sync").items() if a == "FailJob"}
    assert service["Restart"] == ["on-failure"]
    (prevent,) = service["RestartPreventExitStatus"]
    assert {int(c) for c in prevent.split()} == never_retried
    assert service["SuccessExitStatus"] == ["143"]  # a stop asked for is no failure


def test_the_timer_runs_nightly_and_catches_up_a_missed_night() -> None:
    timer = unit_settings(TIMER)["Timer"]
    assert timer["Persistent"] == ["true"]
    (calendar,) = timer["OnCalendar"]
    done = subprocess.run(
        [require("systemd-analyze"), "calendar", "--iterations=2", calendar],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Normalized form: *-*-* 03:30:00 Europe/Warsaw" in done.stdout


def test_the_timer_runs_once_every_night_clock_changes_included() -> None:
    (calendar,) = unit_settings(TIMER)["Timer"]["OnCalendar"]
    *_, clock, zone = calendar.split()
    at = dt.time.fromisoformat(clock)
    assert days_without_exactly_one(at, zone, years=range(2026, 2036)) == []
    # and systemd agrees: four nights in a row across the spring and the autumn change
    for before in ("2027-03-26 12:00 UTC", "2027-10-29 12:00 UTC"):
        done = subprocess.run(
            [
                require("systemd-analyze"),
                "calendar",
                "--iterations=4",
                "--base-time",
                before,
                calendar,
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        days = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d)", done.stdout)
        first = dt.date.fromisoformat(days[0])
        assert days == [str(first + dt.timedelta(days=n)) for n in range(4)], done.stdout


@pytest.mark.parametrize("path", [ENV_FILE, SECOND_SYSTEM], ids=lambda path: path.name)
def test_the_env_file_sets_only_known_settings_and_no_secrets(
    known_variables: set[str], path: Path
) -> None:
    values = env_file(path)
    assert set(values) <= known_variables, set(values) - known_variables
    assert not SECRETS & set(values)  # the service and the crontab point at the secret files
    assert values["THULIUM_LOG_FORMAT"] == "json"


def test_the_second_systems_env_file_writes_to_a_schema_of_its_own() -> None:
    first, second = env_file(ENV_FILE), env_file(SECOND_SYSTEM)

    assert first.get("THULIUM_DB_SCHEMA", "public") != second["THULIUM_DB_SCHEMA"]
    assert first["THULIUM_BASE_URL"] != second["THULIUM_BASE_URL"]


@pytest.mark.parametrize("path", [ENV_FILE, SECOND_SYSTEM], ids=lambda path: path.name)
def test_the_env_file_reads_the_same_in_sh_as_in_systemd(path: Path) -> None:
    # systemd's EnvironmentFile= takes KEY=value literally (env_file checks each line is that)
    done = subprocess.run(
        ["sh", "-c", f'set -a; . "{path}"; set +a; env'],
        env={},
        capture_output=True,
        text=True,
        check=True,
    )
    from_sh = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    for key, value in env_file(path).items():
        assert from_sh[key] == value


def test_the_crontab_runs_a_nightly_sync_as_the_service_account(known_variables: set[str]) -> None:
    crontab = read_crontab(CRONTAB)
    (entry,) = crontab.entries
    for value, low, high in [
        (entry.minute, 0, 59),
        (entry.hour, 0, 23),
        (entry.day, 1, 31),
        (entry.month, 1, 12),
        (entry.weekday, 0, 7),
    ]:
        assert cron_field_ok(value, low, high), value
    assert entry.day == entry.month == entry.weekday == "*"  # every night
    assert entry.user not in ("root", "0")
    assert "%" not in entry.command  # cron turns % into a newline
    assert f"{exec_start()} sync" in entry.command  # the same program as the service
    assert ". /etc/thulium-etl/thulium-etl.env" in entry.command
    subprocess.run(["sh", "-n", "-c", entry.command], check=True)
    settings = set(crontab.variables) - {"SHELL", "PATH", "MAILTO"}
    assert settings == {"THULIUM_PASSWORD_FILE", "DATABASE_URL_FILE"} <= known_variables


def test_the_crontab_command_syncs_quietly_and_prints_one_line_when_the_sync_fails(
    api: StandIn, db_url: URL, migrated: Engine, tmp_path: Path
) -> None:
    # the crontab's command and variables with their absolute paths moved under tmp_path
    crontab = read_crontab(CRONTAB)
    (entry,) = crontab.entries
    moved = {
        exec_start(): str(console_script()),
        "/etc/thulium-etl": str(tmp_path / "etc"),
        "/var/log/thulium-etl": str(tmp_path / "log"),
    }

    def move(value: str) -> str:
        for old, new in moved.items():
            value = value.replace(old, new)
        return value

    (tmp_path / "etc").mkdir()
    (tmp_path / "log").mkdir()
    ids = ["00001", "00002"]
    seed_campaigns(api, ids)
    settings = ENV_FILE.read_text()
    for key, value in {
        "THULIUM_BASE_URL": api.url,
        "THULIUM_USER": USER,
        "THULIUM_CAMPAIGNS": ",".join(ids),
    }.items():
        settings = "\n".join(
            f"{key}={value}" if line.startswith(f"{key}=") else line
            for line in settings.splitlines()
        )
    (tmp_path / "etc" / "thulium-etl.env").write_text(settings + "\n")
    env = {name: move(value) for name, value in crontab.variables.items()}
    Path(env["THULIUM_PASSWORD_FILE"]).write_text(PASSWORD + "\n")
    Path(env["DATABASE_URL_FILE"]).write_text(
        db_url.set(password=DB_PASSWORD).render_as_string(hide_password=False) + "\n"
    )
    command = [env["SHELL"], "-c", move(entry.command)]

    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    Path(env["THULIUM_PASSWORD_FILE"]).write_text("a-wrong-password\n")  # 401: exit 1
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")  # cron mails nothing
    assert failed.stdout.startswith("thulium-etl sync failed: exit code 1 ")
    assert len(failed.stdout.splitlines()) == 1
    log = (tmp_path / "log" / "sync.log").read_text()
    assert '"outcome"' in log and PASSWORD not in log
    with migrated.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM sync_runs ORDER BY run_id")).scalars()
        assert list(outcomes) == ["succeeded", "failed"]
