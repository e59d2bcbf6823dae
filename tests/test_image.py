"""The image: a builder stage makes the wheel, a slim stage installs only that wheel and runs
it as user 10001. No Docker engine here, so the last test does the Dockerfile's steps itself:
the wheel into a fresh virtual environment, then `migrate` and `sync` as that user."""

from __future__ import annotations

import json
import os
import subprocess
from fnmatch import fnmatch
from pathlib import Path

from sqlalchemy import Engine, text

from etl import __version__
from etl.migrate import head_revision
from standin import StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, make_env
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses
from tests.helpers.deploy import ROOT, dockerfile_env, dockerfile_stages
from tests.helpers.wheels import (
    as_user,
    install_into_venv,
    over_tcp,
    python_for,
    readable_directory,
    write_secret,
)

BUILDER, FINAL = dockerfile_stages(ROOT / "Dockerfile")
VERSION = __version__
IDS = ["00001", "00002", "0000A"]


def test_a_builder_stage_builds_the_wheel_and_the_final_stage_installs_only_that() -> None:
    assert BUILDER.name == "builder"
    assert "pip wheel" in BUILDER.last("RUN") and "--no-deps" in BUILDER.last("RUN")
    assert FINAL.base == "python:3.11-slim"
    assert FINAL.all("COPY") == []  # no source tree: the wheel comes from the builder
    (install,) = [run for run in FINAL.all("RUN") if "pip install" in run]
    assert "from=builder" in install and "/dist/*.whl" in install
    for run in FINAL.all("RUN"):
        assert not any(tool in run for tool in ("apt-get", "gcc", "build-essential", "pytest"))


def test_the_image_runs_as_the_numeric_non_root_user_10001() -> None:
    assert FINAL.last("USER") == "10001:10001"
    (adduser,) = [run for run in FINAL.all("RUN") if "useradd" in run]
    assert "--uid 10001" in adduser and "--gid 10001" in adduser


def test_the_image_logs_json_writes_no_bytecode_and_runs_sync_by_default() -> None:
    env = dockerfile_env(FINAL)
    assert env["THULIUM_LOG_FORMAT"] == "json"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert json.loads(FINAL.last("ENTRYPOINT")) == ["thulium-etl"]
    assert json.loads(FINAL.last("CMD")) == ["sync"]


def test_the_image_is_labelled_with_its_version_the_package_version_by_default() -> None:
    assert f"VERSION={VERSION}" in FINAL.all("ARG")
    (label,) = FINAL.all("LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in label


def test_the_build_context_holds_the_package_and_not_the_tests_or_the_stand_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:  # Docker's rule: the last pattern matching the path or a parent
        parts = path.split("/")
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.lstrip("!").rstrip("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(fnmatch(prefix, glob) for prefix in prefixes):
                keep = negated
        return keep

    for path in ("pyproject.toml", "README.md", "etl/cli.py", "migrations/env.py"):
        assert sent(path), path
    for path in (
        "tests/conftest.py",
        "standin/server.py",
        "benchmarks/__main__.py",
        "deploy/kubernetes/kustomization.yaml",
        ".venv/bin/python",
        ".git/HEAD",
        "etl/__pycache__/cli.cpython-311.pyc",
    ):
        assert not sent(path), path


def test_the_wheel_installed_as_the_image_does_migrates_and_syncs_as_user_10001(
    wheel: Path, api: StandIn, empty_database: Engine
) -> None:
    uid, gid = (int(n) for n in FINAL.last("USER").split(":"))
    user = as_user(uid, gid)
    served = seed_campaigns(api, IDS)
    entrypoint = json.loads(FINAL.last("ENTRYPOINT"))

    with (
        readable_directory(prefix="thulium-etl-image-") as image,
        over_tcp(empty_database.url) as tcp_url,
    ):
        venv = image / "venv"
        install_into_venv(wheel, venv, python_for(user))
        site = next(venv.glob("lib/python3*/site-packages"))
        assert (site / "etl" / "cli.py").exists()
        assert not (site / "standin").exists()
        assert not (site / "tests").exists()
        (record,) = site.glob("thulium_etl-*.dist-info/RECORD")
        assert [
            f for f in record.read_text().splitlines() if f.startswith(("standin", "tests"))
        ] == []

        secrets = image / "secrets"
        secrets.mkdir(mode=0o755)
        url = tcp_url.set(password=DB_PASSWORD).render_as_string(hide_password=False)
        env = make_env(api, empty_database.url, IDS)
        del env["THULIUM_PASSWORD"], env["DATABASE_URL"]
        env |= {
            "THULIUM_PASSWORD_FILE": str(write_secret(secrets, "password", PASSWORD, uid, gid)),
            "DATABASE_URL_FILE": str(write_secret(secrets, "database-url", url, uid, gid)),
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": "/nonexistent",  # the image's user has no home
            **dockerfile_env(FINAL),
        }
        elsewhere = image / "elsewhere"  # an unrelated directory the user cannot write to
        elsewhere.mkdir(mode=0o755)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*user, *entrypoint, *args],
                cwd=elsewhere,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        whoami = subprocess.run([*user, "id", "-u"], capture_output=True, text=True, check=True)
        assert int(whoami.stdout) == (uid if os.geteuid() == 0 else os.geteuid())
        assert int(whoami.stdout) != 0
        standin = subprocess.run(
            [*user, str(venv / "bin" / "python"), "-c", "import standin"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )
        assert "No module named 'standin'" in standin.stderr

        migrated = run("migrate")
        synced = run(*json.loads(FINAL.last("CMD")))

    assert migrated.returncode == 0, migrated.stderr
    assert synced.returncode == 0, synced.stderr
    for done in (migrated, synced):
        assert PASSWORD not in done.stdout + done.stderr
        assert all(json.loads(line) for line in done.stderr.splitlines() if line.strip())
    with empty_database.connect() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        runs = conn.execute(text("SELECT outcome, campaigns_ok, version FROM sync_runs")).all()
    assert revision == head_revision()
    assert [tuple(r) for r in runs] == [("succeeded", len(IDS), VERSION)]
    for campaign_id in IDS:
        assert as_api(stored_statuses(empty_database, campaign_id)) == canonical(
            served[campaign_id]
        )
