"""``THULIUM_CAMPAIGNS=active``: the campaigns to sync come from ``GET /outbounds/stats``.

Discovery has the retries, validation and messages of a campaign's statuses; when it fails
the run syncs nothing, is recorded failed and exits 69. Campaigns that stop being active
keep their statuses and show as inactive since a time; what each discovery saw is kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import STATS, Fault, StandIn, sample_statuses
from tests.helpers.cli import make_env, run_cli, spawn_cli, terminate
from tests.helpers.data import as_api, canonical, last_run, stored_statuses
from tests.helpers.snapshots import wait_until

ACTIVE = ["00001", "00002", "00003"]


def serve(api: StandIn, ids: list[str], *, percent: float | int = 12.5) -> dict[str, Any]:
    served = {}
    for seed, campaign_id in enumerate(ids):
        served[campaign_id] = sample_statuses(campaign_id, 3 + seed, seed=seed)
        api.set_statuses(campaign_id, served[campaign_id])
    api.set_stats(
        [
            {"id": c, "records_count": 100 * (n + 1), "completion_percent": percent}
            for n, c in enumerate(ids)
        ]
    )
    return served


def campaigns(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM campaigns")).mappings()
        return {row["campaign_id"]: dict(row) for row in rows}


def test_active_syncs_every_campaign_thulium_lists_and_the_ids_given_beside_it(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api, ACTIVE)
    api.set_statuses("0000X", sample_statuses("0000X", 2))  # not active, named explicitly
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active, 0000X")

    result = run_cli("sync", env=env)

    assert result.code == 0, result.err
    for campaign_id, statuses in served.items():
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(statuses)
    assert stored_statuses(migrated, "0000X")
    run, outcomes = last_run(migrated)
    assert sorted(outcomes) == sorted([*ACTIVE, "0000X"])
    assert run["campaigns_total"] == 4 and sorted(run["campaign_ids"]) == sorted(outcomes)
    assert api.requests_for(STATS) == 1
    known = campaigns(migrated)
    assert all(known[c]["last_seen_active_at"] is not None for c in ACTIVE)
    assert known["0000X"]["last_seen_active_at"] is None  # never listed as active


def test_a_campaign_no_longer_active_keeps_its_statuses_and_is_inactive_since_then(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = serve(api, ACTIVE)
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")
    assert run_cli("sync", env=env).code == 0
    seen = campaigns(migrated)["00003"]["last_seen_active_at"]
    serve(api, ACTIVE[:2])  # 00003 finished: Thulium no longer lists it

    assert run_cli("sync", env=env).code == 0

    gone = campaigns(migrated)["00003"]
    assert gone["last_seen_active_at"] == seen
    assert gone["inactive_since"] is not None and gone["inactive_since"] > seen
    stored = stored_statuses(migrated, "00003")  # as last seen, nothing deleted
    assert as_api(stored) == canonical(served["00003"])
    assert all(row["deleted_at"] is None for row in stored.values())
    _, outcomes = last_run(migrated)
    assert "00003" not in outcomes  # not synced any more
    since = gone["inactive_since"]

    assert run_cli("sync", env=env).code == 0
    assert campaigns(migrated)["00003"]["inactive_since"] == since  # still since then

    serve(api, ACTIVE)  # active again
    assert run_cli("sync", env=env).code == 0
    back = campaigns(migrated)["00003"]
    assert back["inactive_since"] is None and back["last_seen_active_at"] > seen


def test_every_discovery_keeps_what_it_saw_of_each_campaign(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")
    serve(api, ACTIVE, percent=12.5)
    assert run_cli("sync", env=env).code == 0
    serve(api, ACTIVE, percent=40)  # completion_percent may be an integer
    assert run_cli("sync", env=env).code == 0

    with migrated.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.run_id, s.campaign_id, s.records_count, s.completion_percent, "
                "s.observed_at, r.started_at FROM campaign_stats s JOIN sync_runs r USING "
                "(run_id) ORDER BY s.run_id, s.campaign_id"
            )
        ).all()
    assert [(r.campaign_id, r.records_count, r.completion_percent) for r in rows] == [
        ("00001", 100, 12.5),
        ("00002", 200, 12.5),
        ("00003", 300, 12.5),
        ("00001", 100, 40.0),
        ("00002", 200, 40.0),
        ("00003", 300, 40.0),
    ]
    assert len({r.run_id for r in rows}) == 2
    assert all(r.observed_at >= r.started_at for r in rows)


# What a DBA might add that refuses what discovery found, and what takes it away again.
REFUSING_STATS = {
    "check": (
        "ALTER TABLE campaign_stats ADD CONSTRAINT dba_small CHECK (records_count < 200)",
        "ALTER TABLE campaign_stats DROP CONSTRAINT dba_small",
    ),
    "deferred trigger": (  # fires at COMMIT, not at the INSERT
        """
        CREATE FUNCTION dba_small() RETURNS trigger LANGUAGE plpgsql AS
        $$BEGIN RAISE EXCEPTION 'dba_small: no more stats'; END$$;
        CREATE CONSTRAINT TRIGGER dba_small AFTER INSERT ON campaign_stats
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dba_small();
        """,
        "DROP TRIGGER dba_small ON campaign_stats; DROP FUNCTION dba_small()",
    ),
}


@pytest.mark.parametrize("refusal", REFUSING_STATS.values(), ids=REFUSING_STATS.keys())
def test_stats_the_database_refuses_cost_the_run_its_success_not_its_campaigns(
    api: StandIn, db_url: URL, migrated: Engine, refusal: tuple[str, str]
) -> None:
    """A DBA's trigger or constraint refuses what discovery found: one clear line, exit 1
    (partial), and every campaign is still synced, and seen active."""
    served = serve(api, ACTIVE)
    add, drop = refusal
    with migrated.begin() as conn:
        conn.execute(text(add))
    try:
        result = run_cli("sync", env=make_env(api, db_url, [], THULIUM_CAMPAIGNS="active"))
    finally:
        with migrated.begin() as conn:
            conn.execute(text(drop))

    assert result.code == 1, result.err
    assert "Traceback" not in result.err and '"exception"' not in result.err
    errors = [e["message"] for e in result.events() if e["level"] == "error"]
    refused = [m for m in errors if m.startswith("the database refused what discovery found")]
    assert len(refused) == 1 and "dba_small" in refused[0] and "\n" not in refused[0]
    assert "campaign_stats" in errors[-1]  # and the run's summary
    for campaign_id, statuses in served.items():
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(statuses)
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "partial" and "campaign_stats" in run["error"]
    assert "\n" not in run["error"]
    assert {o["outcome"] for o in outcomes.values()} == {"succeeded"}
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM campaign_stats")).scalar_one() == 0
    assert all(campaigns(migrated)[c]["last_seen_active_at"] is not None for c in ACTIVE)


def test_a_transient_failure_of_discovery_is_retried(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, ACTIVE)
    api.add_faults(STATS, Fault.status(503), Fault.reset())

    result = run_cli("sync", env=make_env(api, db_url, [], THULIUM_CAMPAIGNS="active"))

    assert result.code == 0, result.err
    assert api.requests_for(STATS) == 3
    assert all(stored_statuses(migrated, c) for c in ACTIVE)


def _item(**change: object) -> str:
    item: dict[str, object] = {"id": "00001", "records_count": 1, "completion_percent": 1.5}
    return json.dumps([{**item, **change}])


BROKEN_DISCOVERY = {
    "503-every-time": (Fault.status(503), r"HTTP 503"),
    "401": (Fault.status(401), r"HTTP 401.*THULIUM_PASSWORD"),
    "403": (Fault.status(403), r"HTTP 403.*permission for this method"),
    "404": (Fault.status(404), r"HTTP 404.*may not offer GET /outbounds/stats"),
    "204": (Fault.status(204, body=""), r"HTTP 204.*complete list of active campaigns"),
    "304": (Fault.status(304, body=""), r"HTTP 304.*not the list of active campaigns"),
    "html-page": (Fault.html(200), r"not valid JSON"),
    "docs-sample-json": (Fault.invalid_json(), r"not valid JSON"),
    "object": (Fault.status(200, body='{"errors": []}'), r"expected an array of campaigns"),
    "id-not-a-campaign-id": (Fault.status(200, body=_item(id=1)), r"item 0: id"),
    "percent-over-100": (
        Fault.status(200, body=_item(completion_percent=120)),
        r"completion_percent",
    ),
    "count-a-boolean": (Fault.status(200, body=_item(records_count=True)), r"records_count"),
    "id-twice": (
        Fault.status(200, body=json.dumps(json.loads(_item()) * 2)),
        r"id '00001' appears twice",
    ),
}


@pytest.mark.parametrize(("fault", "error"), BROKEN_DISCOVERY.values(), ids=BROKEN_DISCOVERY.keys())
def test_a_failed_discovery_fails_the_run_and_syncs_nothing(
    api: StandIn, db_url: URL, migrated: Engine, fault: Fault, error: str
) -> None:
    serve(api, ACTIVE)
    api.set_permanent_fault(STATS, fault)
    api.set_statuses("0000X", sample_statuses("0000X", 2))

    result = run_cli("sync", env=make_env(api, db_url, [], THULIUM_CAMPAIGNS="active,0000X"))

    # 1 for wrong credentials, which no retry (a Kubernetes Job's, say) can mend
    assert result.code == (1 if fault.code == 401 else 69), result.err
    assert api.total_requests == api.requests_for(STATS)  # no campaign was fetched
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed"
    assert "active campaigns" in run["error"]
    assert re.search(error, run["error"]), run["error"]
    assert [row["outcome"] for row in outcomes.values()] == ["skipped"]  # 0000X, planned
    errors = [e["message"] for e in result.events() if e["level"] == "error"]
    assert errors and "THULIUM_CAMPAIGNS" in errors[-1]


def test_shards_split_the_discovered_campaigns(api: StandIn, db_url: URL, migrated: Engine) -> None:
    ids = [f"{n:05d}" for n in range(1, 13)]
    serve(api, ids)
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")

    for shard in ("0/3", "1/3", "2/3"):
        assert run_cli("sync", env={**env, "THULIUM_SHARD": shard}).code == 0

    with migrated.connect() as conn:
        synced = (
            conn.execute(
                text("SELECT campaign_id FROM sync_run_campaigns WHERE outcome = 'succeeded'")
            )
            .scalars()
            .all()
        )
        stats = conn.execute(text("SELECT campaign_id FROM campaign_stats")).scalars().all()
    assert sorted(synced) == ids  # each campaign by exactly one shard
    assert sorted(stats) == ids  # and its progress kept once


def test_check_reports_what_discovery_found(api: StandIn, db_url: URL, migrated: Engine) -> None:
    serve(api, ACTIVE)

    result = run_cli("check", env=make_env(api, db_url, [], THULIUM_CAMPAIGNS="active"))

    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert "PASS  discovery: 3 active campaign(s): 00001, 00002, 00003" in lines
    assert all(f"PASS  campaign {c}: " in result.out for c in ACTIVE)
    with migrated.connect() as conn:  # check writes nothing
        assert conn.execute(text("SELECT count(*) FROM campaigns")).scalar_one() == 0


def test_check_fails_with_exit_69_when_discovery_fails(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, ACTIVE)
    api.set_permanent_fault(STATS, Fault.status(503))

    result = run_cli("check", env=make_env(api, db_url, [], THULIUM_CAMPAIGNS="active"))

    assert result.code == 69
    assert any(
        line.startswith("FAIL  discovery: ") and "HTTP 503" in line
        for line in result.out.splitlines()
    )


def test_check_exits_1_like_sync_when_discovery_is_refused_the_credentials(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, ACTIVE)
    api.set_permanent_fault(STATS, Fault.status(401))
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")

    results = [run_cli(command, env=env) for command in ("check", "sync")]

    assert [r.code for r in results] == [1, 1]  # no retry can mend wrong credentials
    assert "FAIL  discovery: " in results[0].out


def test_sigterm_while_discovery_waits_for_thulium_stops_the_run_at_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, ACTIVE)
    api.set_permanent_fault(STATS, Fault.delay(20))  # far beyond Kubernetes' grace period
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active", THULIUM_TIMEOUT="60")
    proc = spawn_cli("sync", env=env)
    wait_until(lambda: api.requests_for(STATS) >= 1, timeout=30)

    err, stopped_after = terminate(proc)

    assert proc.returncode == 143, err
    assert stopped_after < 5
    run, _ = last_run(migrated)
    assert run["outcome"] == "interrupted"
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0


def test_no_active_campaign_syncs_the_listed_ids_and_warns(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    serve(api, ACTIVE)
    env = make_env(api, db_url, [], THULIUM_CAMPAIGNS="active")
    assert run_cli("sync", env=env).code == 0
    api.set_stats([])  # a quiet weekend: nothing active
    api.set_statuses("0000X", sample_statuses("0000X", 2))

    result = run_cli("sync", env={**env, "THULIUM_CAMPAIGNS": "active,0000X"})

    assert result.code == 0, result.err
    _, outcomes = last_run(migrated)
    assert list(outcomes) == ["0000X"]
    assert any(
        e["level"] == "warning" and "0 active campaign(s)" in e["message"] for e in result.events()
    )
    known = campaigns(migrated)
    assert all(known[c]["inactive_since"] is not None for c in ACTIVE)
    assert all(stored_statuses(migrated, c) for c in ACTIVE)  # kept as last seen
