"""``make demo``: the real job, end to end, against the stand-in and an embedded Postgres.

Starts the Thulium stand-in on loopback with a few sample campaigns (one with a transient
fault, one with a status code Thulium never documented), uses ``DATABASE_URL`` if set or
else an embedded Postgres kept in ``.demo/`` (so a second ``make demo`` shows a re-sync that
changes nothing), runs ``thulium-etl migrate`` and ``thulium-etl sync`` as a user would, and
prints a few rows of each table.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from standin.embedded import embedded_postgres
from standin.server import Fault, StandIn, sample_statuses

CAMPAIGNS = ("00001", "00002", "00003")
USER, PASSWORD = "demo", "demo-password"


@contextlib.contextmanager
def _database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    data = Path(os.environ.get("THULIUM_DEMO_DIR", ".demo")).resolve() / "pgdata"
    print(f"starting the embedded Postgres in {data} …", flush=True)
    with embedded_postgres(data) as url:
        yield url.render_as_string(hide_password=False)


def _serve(api: StandIn) -> None:
    for seed, campaign_id in enumerate(CAMPAIGNS):
        api.set_statuses(campaign_id, sample_statuses(campaign_id, 6, seed=seed))
    statuses = sample_statuses("00003", 6, seed=2)
    statuses.append(
        {
            "status_id": "99",
            "system_status": "CALLBACK_AI",
            "dictionary_status_id": None,
            "name": "Oddzwoni asystent",
        }
    )
    api.set_statuses("00003", statuses)
    api.add_faults("00002", Fault.status(503))  # retried once, then synced


def _run(*args: str, env: dict[str, str]) -> int:
    print(f"\n$ thulium-etl {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "etl", *args], env=env)


def _show(url: str) -> None:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    queries = {
        "system_statuses": "SELECT code, documented, description_en FROM system_statuses "
        "ORDER BY documented, code LIMIT 4",
        "campaigns": "SELECT campaign_id, last_synced_at, last_attempt_outcome FROM campaigns "
        "ORDER BY campaign_id",
        "statuses": "SELECT campaign_id, status_id, system_status, dictionary_status_id, name, "
        "deleted_at FROM statuses ORDER BY campaign_id, status_id LIMIT 8",
    }
    try:
        with engine.connect() as conn:
            for table, sql in queries.items():
                result = conn.execute(text(sql))
                print(f"\n{table}:")
                print("  " + " | ".join(result.keys()))
                for row in result:
                    print("  " + " | ".join("" if v is None else str(v) for v in row))
    finally:
        engine.dispose()


def main() -> int:
    with _database() as url, StandIn(user=USER, password=PASSWORD) as api:
        _serve(api)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "THULIUM_BASE_URL": api.url,
            "THULIUM_USER": USER,
            "THULIUM_PASSWORD": PASSWORD,
            "THULIUM_CAMPAIGNS": ",".join(CAMPAIGNS),
            "THULIUM_RETRY_WAIT": "0.2",
            "THULIUM_LOG_FORMAT": os.environ.get("THULIUM_LOG_FORMAT", "text"),
        }
        print(f"Thulium stand-in serving {len(CAMPAIGNS)} campaigns at {api.url}")
        if _run("migrate", env=env) != 0:
            return 1
        code = _run("sync", env=env)
        _run("runs", "--limit", "3", env=env)
        _show(url)
        return code


if __name__ == "__main__":
    sys.exit(main())
