"""TLS is always verified; THULIUM_CA_BUNDLE trusts a private CA. Never `curl -k`."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn
from tests.helpers.cli import PASSWORD, USER, make_env, run_cli
from tests.helpers.data import as_api, canonical, seed_campaigns, stored_statuses

IDS = ["00001", "00002"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the CA bundle is the certificate itself."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_api(certificate: tuple[Path, Path]) -> Iterator[StandIn]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with StandIn(user=USER, password=PASSWORD, tls=context) as server:
        yield server


def test_an_untrusted_certificate_fails_every_campaign_and_stores_nothing(
    https_api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(https_api, IDS)
    env = make_env(https_api, db_url, IDS)
    assert https_api.url.startswith("https://")

    result = run_cli("sync", env=env)

    assert result.code == 1
    assert https_api.total_requests == 0  # no request was ever sent over the unverified link
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar() == 0
        errors = conn.execute(
            text("SELECT attempts, error FROM sync_run_campaigns ORDER BY campaign_id")
        ).all()
    assert [attempts for attempts, _ in errors] == [1, 1]  # not retried: it will not heal
    assert all(
        "TLS error" in error and "CERTIFICATE_VERIFY_FAILED" in error for _, error in errors
    ), errors


def test_the_ca_bundle_makes_a_private_certificate_trusted(
    https_api: StandIn, db_url: URL, migrated: Engine, certificate: tuple[Path, Path]
) -> None:
    served = seed_campaigns(https_api, IDS)
    env = make_env(https_api, db_url, IDS, THULIUM_CA_BUNDLE=str(certificate[0]))

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id in IDS:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
