"""The database refuses, locks up or turns read-only: only a lost connection or a timeout is
retried, a value it refuses costs its campaign alone, and nothing ever waits without limit.
"""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from standin import StandIn, sample_statuses
from tests.helpers.cli import Result, make_env, run_cli, spawn_cli, terminate
from tests.helpers.data import (
    as_api,
    campaign_row,
    canonical,
    last_run,
    seed_campaigns,
    stored_statuses,
)
from tests.helpers.databases import libpq
from tests.helpers.history import assert_history_matches
from tests.helpers.locks import HOLDER_APPLICATION, dba_lock
from tests.helpers.pgproxy import CommitAckLoss, CopyStall, serving
from tests.helpers.snapshots import assert_totals_add_up, wait_until

IDS = ["00001", "00002", "00003"]


def _errors(result_err: str) -> list[str]:
    return [line for line in result_err.splitlines() if '"level": "error"' in line]


def _sync_while_locked(table: str, db_url: URL, env: dict[str, str]) -> Result:
    """A sync while another session holds ``table`` locked: short lock timeouts, 2 attempts."""
    with psycopg.connect(libpq(db_url)) as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            return run_cli(
                "sync",
                env={**env, "THULIUM_DB_LOCK_TIMEOUT": "0.2", "THULIUM_DB_RETRY_ATTEMPTS": "2"},
            )
        finally:
            holder.rollback()


def test_a_value_over_an_index_limit_fails_its_campaign_alone_without_a_retry(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    with migrated.begin() as conn:  # what a DBA might add: an index on the names
        conn.execute(text("CREATE INDEX dba_statuses_name ON statuses (name)"))
    try:
        served = seed_campaigns(api, IDS)
        # 3,000 characters that do not compress: far over a btree entry's ~2,700 bytes
        huge = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))
        served["00002"][0]["name"] = huge
        api.set_statuses("00002", served["00002"])
        env = make_env(api, db_url, IDS, THULIUM_CONCURRENCY="1", THULIUM_DB_RETRY_WAIT="5")

        started = time.monotonic()
        result = run_cli("sync", env=env)

        assert result.code == 1, result.err
        assert time.monotonic() - started < 5  # refused data is not waited on as a lost link
        assert stored_statuses(migrated, "00002") == {}
        for campaign_id in ("00001", "00003"):
            assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
        run, outcomes = last_run(migrated)
        assert run["outcome"] == "partial"
        assert outcomes["00002"]["outcome"] == "failed"
        assert "index row" in outcomes["00002"]["error"]
        assert "connection lost" not in result.err
        assert_history_matches(migrated)
    finally:
        with migrated.begin() as conn:
            conn.execute(text("DROP INDEX dba_statuses_name"))


def test_a_read_only_database_is_one_clear_line_and_exit_3(
    api: StandIn, db_url: URL, migrated: Engine, pg_server: URL
) -> None:
    """What a sync meets when DATABASE_URL leads to a standby after a failover."""
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS)
    # From the server's maintenance database: a read-only database cannot undo it itself.
    with psycopg.connect(libpq(pg_server), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{db_url.database}" SET default_transaction_read_only = on')
        try:
            result = run_cli("sync", env=env)
        finally:
            admin.execute(f'ALTER DATABASE "{db_url.database}" RESET default_transaction_read_only')

    assert result.code == 3, result.err
    errors = _errors(result.err)
    assert len(errors) == 1 and "read-only" in errors[0] and "standby" in errors[0]
    assert "Traceback" not in result.err and '"exception"' not in result.err
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0


def test_a_lock_held_by_another_session_times_out_and_ends_the_run_with_exit_3(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    served = seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS)
    assert run_cli("sync", env=env).code == 0
    for campaign_id in IDS:
        api.set_statuses(campaign_id, sample_statuses(campaign_id, 2, seed=99))
    result = _sync_while_locked("statuses", db_url, env)

    assert result.code == 3, result.err
    errors = _errors(result.err)
    assert len(errors) == 1 and "lock" in errors[0] and "THULIUM_DB_LOCK_TIMEOUT" in errors[0]
    assert "timed out" in result.err  # the first timeout was retried
    for campaign_id in IDS:  # untouched: still the first sync's data
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed" and "lock" in run["error"]
    assert sorted(outcomes) == IDS and all(o["outcome"] == "skipped" for o in outcomes.values())
    for campaign_id in IDS:  # what a freshness dashboard shows: why the last night did nothing
        campaign = campaign_row(migrated, campaign_id)
        assert campaign["last_attempt_outcome"] == "skipped" and "lock" in campaign["last_error"]
    assert_totals_add_up(migrated)
    assert_history_matches(migrated)


def test_a_write_waiting_for_a_lock_says_who_holds_it(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS, THULIUM_DB_LOCK_TIMEOUT="2", THULIUM_DB_RETRY_ATTEMPTS="1")
    with dba_lock(db_url, "statuses") as holder:
        result = run_cli("sync", env=env)

    assert result.code == 3, result.err
    held_by = f"held by pid {holder} (user postgres, application '{HOLDER_APPLICATION}', since"
    waits = [e["message"] for e in result.events() if "waiting for a lock" in e["message"]]
    assert waits and all("statuses" in w and held_by in w for w in waits), result.err
    errors = _errors(result.err)
    assert len(errors) == 1 and "lock timeout" in errors[0] and held_by in errors[0]
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0


def test_a_run_failed_by_a_lock_on_campaigns_still_records_its_outcome(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """Closing a run also records its campaigns' last attempt, in the table that is locked:
    that part gives way, the run's outcome does not."""
    served = seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS)
    assert run_cli("sync", env=env).code == 0
    result = _sync_while_locked("campaigns", db_url, env)

    assert result.code == 3, result.err
    assert "could not record the last attempt of 3 campaign(s)" in result.err
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "failed" and "lock" in run["error"]
    assert sorted(outcomes) == IDS and all(o["outcome"] == "skipped" for o in outcomes.values())
    for campaign_id in IDS:  # untouched: the first sync's data and last attempt
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
        assert campaign_row(migrated, campaign_id)["last_attempt_outcome"] == "succeeded"
    assert_totals_add_up(migrated)
    assert_history_matches(migrated)


def test_sigterm_cancels_a_statement_waiting_for_a_lock(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(api, db_url, IDS, THULIUM_DB_LOCK_TIMEOUT="600")
    with psycopg.connect(libpq(db_url)) as holder:
        holder.execute("LOCK TABLE statuses IN ACCESS EXCLUSIVE MODE")
        proc = spawn_cli("sync", env=env)
        wait_until(lambda: _waiting_for(db_url, "Lock"), timeout=30)

        err, stopped_after = terminate(proc)
        holder.rollback()

    assert proc.returncode == 143, err
    assert stopped_after < 5
    assert_interrupted_before_writing_anything(migrated)


def test_sigterm_in_the_middle_of_a_copy_cancels_it_and_writes_nothing(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    with serving(CopyStall(db_url)) as proxy:
        proc = spawn_cli("sync", env=make_env(api, proxy.url, IDS))
        assert proxy.stalled.wait(30), "the job never started copying"

        err, stopped_after = terminate(proc)

    assert proc.returncode == 143, err
    assert stopped_after < 5
    assert_interrupted_before_writing_anything(migrated)


def test_sigterm_while_the_run_is_being_closed_still_closes_it(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    with migrated.begin() as conn:  # a DBA's slow trigger: closing a run as succeeded hangs
        conn.execute(
            text(
                "CREATE FUNCTION dba_slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER dba_slow BEFORE UPDATE ON sync_runs FOR EACH ROW "
                "WHEN (NEW.outcome = 'succeeded') EXECUTE FUNCTION dba_slow()"
            )
        )
    try:
        proc = spawn_cli("sync", env=make_env(api, db_url, IDS))
        wait_until(lambda: _waiting_for(db_url, "PgSleep"), timeout=30)

        err, stopped_after = terminate(proc)
    finally:
        with migrated.begin() as conn:
            conn.execute(text("DROP TRIGGER dba_slow ON sync_runs"))
            conn.execute(text("DROP FUNCTION dba_slow()"))

    assert proc.returncode == 143, err
    assert stopped_after < 5
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "interrupted"  # closed, not left running
    assert sorted(outcomes) == IDS and all(o["outcome"] == "succeeded" for o in outcomes.values())
    assert_totals_add_up(migrated)


def assert_interrupted_before_writing_anything(engine: Engine) -> None:
    """The run is recorded interrupted, every campaign skipped, and no status written."""
    run, outcomes = last_run(engine)
    assert run["outcome"] == "interrupted"
    assert sorted(outcomes) == IDS and all(o["outcome"] == "skipped" for o in outcomes.values())
    assert_totals_add_up(engine)
    assert_history_matches(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM statuses")).scalar_one() == 0


def _waiting_for(db_url: URL, wait: str) -> bool:
    """Whether one of the job's sessions waits for ``wait`` (a wait event or its type)."""
    with psycopg.connect(libpq(db_url), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'thulium-etl' "
            "AND %s IN (wait_event_type, wait_event) AND datname = %s",
            (wait, db_url.database),
        ).fetchone()
    return bool(row and row[0])


def test_sigterm_while_waiting_to_retry_the_database_stops_the_run_at_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    env = make_env(
        api,
        db_url,
        IDS,
        THULIUM_DB_LOCK_TIMEOUT="0.2",
        THULIUM_DB_RETRY_WAIT="30",
        THULIUM_DB_RETRY_ATTEMPTS="4",
    )
    with psycopg.connect(libpq(db_url)) as holder:
        holder.execute("LOCK TABLE statuses IN ACCESS EXCLUSIVE MODE")
        proc = spawn_cli("sync", env=env)
        assert proc.stderr is not None
        waiting = ""
        while "retrying in" not in waiting:  # the job now sleeps about 30 s before retrying
            line = proc.stderr.readline()
            assert line, "the job ended without waiting to retry"
            waiting = line

        err, stopped_after = terminate(proc)
        holder.rollback()

    assert proc.returncode == 143, err
    assert stopped_after < 5
    assert "timed out" in waiting
    assert_interrupted_before_writing_anything(migrated)


def test_a_commit_whose_acknowledgement_is_lost_is_recorded_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    """The connection dies after the server committed a batch, before the job heard it did:
    the retry finds the batch committed and writes nothing twice."""
    served = seed_campaigns(api, IDS)
    with serving(CommitAckLoss(db_url, marker=b"sync_run_batches")) as proxy:
        result = run_cli("sync", env=make_env(api, proxy.url, IDS, THULIUM_CONCURRENCY="1"))

    assert proxy.fired.is_set()
    assert result.code == 0, result.err
    assert "committed before the connection was lost" in result.err
    with migrated.connect() as conn:
        recorded = conn.execute(
            text("SELECT campaign_id, count(*) FROM sync_run_campaigns GROUP BY campaign_id")
        ).all()
    assert sorted(recorded) == [(campaign_id, 1) for campaign_id in IDS]
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "succeeded"
    assert (run["campaigns_total"], run["campaigns_ok"]) == (len(IDS), len(IDS))
    assert run["rows_inserted"] == sum(len(statuses) for statuses in served.values())
    for campaign_id in IDS:
        assert as_api(stored_statuses(migrated, campaign_id)) == canonical(served[campaign_id])
        assert outcomes[campaign_id]["rows_inserted"] == len(served[campaign_id])
    assert_totals_add_up(migrated)
    assert_history_matches(migrated)


def test_a_run_whose_closing_commit_acknowledgement_is_lost_still_ends_succeeded(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)
    with serving(CommitAckLoss(db_url, marker=b"campaigns_skipped = t.skipped")) as proxy:
        result = run_cli("sync", env=make_env(api, proxy.url, IDS))

    assert proxy.fired.is_set()
    assert result.code == 0, result.err  # the retry finds the run closed by itself
    run, _ = last_run(migrated)
    assert (run["outcome"], run["campaigns_ok"]) == ("succeeded", len(IDS))
    assert_totals_add_up(migrated)


def test_discovery_whose_commit_acknowledgement_is_lost_is_recorded_once(
    api: StandIn, db_url: URL, migrated: Engine
) -> None:
    seed_campaigns(api, IDS)  # each campaign given statuses is active
    with serving(CommitAckLoss(db_url, marker=b"campaign_stats")) as proxy:
        env = make_env(api, proxy.url, [], THULIUM_CAMPAIGNS="active")
        result = run_cli("sync", env=env)

    assert proxy.fired.is_set()
    assert result.code == 0, result.err
    with migrated.connect() as conn:
        observed = conn.execute(
            text("SELECT campaign_id, count(*) FROM campaign_stats GROUP BY campaign_id")
        ).all()
    assert sorted(observed) == [(campaign_id, 1) for campaign_id in IDS]
    run, outcomes = last_run(migrated)
    assert run["outcome"] == "succeeded" and sorted(outcomes) == IDS
    assert_history_matches(migrated)
