"""deploy/kubernetes: what `kubectl apply -k` sends is valid, sets only settings the program
knows, meets the restricted Pod Security Standard, is sized from the benchmarks, maps the exit
codes to Job actions, and its sharded variant gives each pod its own shard."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from etl.exits import ExitCode
from standin import StandIn
from tests.helpers.cli import DB_PASSWORD, PASSWORD, make_env, run_cli
from tests.helpers.data import seed_campaigns
from tests.helpers.deploy import (
    KUBERNETES,
    PodTemplate,
    benchmark_megabytes,
    container_environment,
    container_security,
    days_without_exactly_one,
    exit_code_actions,
    implied_pod_failure_rules,
    load_yaml_documents,
    pod_templates,
    program_exit_codes,
    quantity_bytes,
    the,
)
from tests.helpers.prometheus import Pushgateway

Manifests = list[dict[str, Any]]

# podFailurePolicy (GA) needs Kubernetes 1.31; the newest schema kubernetes-validate ships is
# checked too.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
# The program's exit codes, as declared (etl/exits.py).
EXIT_CODES = {int(code) for code in ExitCode}
IMAGE = "registry.example.com/thulium-etl:0.1.0"
SECRET_EXAMPLE = KUBERNETES / "secret.example.yaml"


def templates(*renderings: Manifests) -> list[PodTemplate]:
    return [t for objects in renderings for t in pod_templates(objects)]


def test_both_variants_render_the_nightly_cronjob_the_migrate_job_and_the_settings(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for objects in (manifests, sharded_manifests):
        kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
        # no Secret: a re-apply must never overwrite the real one with placeholders
        assert kinds == [
            ("ConfigMap", "thulium-etl"),
            ("CronJob", "thulium-etl"),
            ("Job", "thulium-etl-migrate"),
        ]


def test_every_object_validates_against_the_kubernetes_schema(
    manifests: Manifests, sharded_manifests: Manifests, system_manifests: dict[str, Manifests]
) -> None:
    systems = [obj for objects in system_manifests.values() for obj in objects]
    objects = [*manifests, *sharded_manifests, *systems, *load_yaml_documents(SECRET_EXAMPLE)]
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:  # strict: a misspelt field is an error, not silently dropped
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {error}")


def test_every_variable_the_manifests_set_is_a_setting_the_program_knows(
    manifests: Manifests,
    sharded_manifests: Manifests,
    system_manifests: dict[str, Manifests],
    known_variables: set[str],
) -> None:
    for objects in (manifests, sharded_manifests, *system_manifests.values()):
        for template in pod_templates(objects):
            for container in template.containers:
                names = set(container_environment(container, objects))
                assert names, template.owner
                assert names <= known_variables, (template.owner, names - known_variables)
                assert "JOB_COMPLETION_INDEX" not in names  # Kubernetes sets it


def test_two_thulium_systems_are_two_overlays_each_with_its_own_names_secret_and_schema(
    system_manifests: dict[str, Manifests],
) -> None:
    seen: dict[str, set[str]] = {"names": set(), "secrets": set(), "schemas": set()}
    for system, objects in system_manifests.items():
        names = {o["metadata"]["name"] for o in objects}
        assert all(name.endswith(f"-{system}") for name in names), names
        assert not names & seen["names"]
        seen["names"] |= names
        for template in pod_templates(objects):
            (container,) = template.containers
            schema = container_environment(container, objects)["THULIUM_DB_SCHEMA"]
            assert schema == system, template.owner  # sync and migrate alike
            volumes = template.pod["volumes"]
            (secret,) = [v["secret"]["secretName"] for v in volumes if "secret" in v]
            assert secret == f"thulium-etl-{system}", template.owner
            seen["secrets"].add(secret)
        seen["schemas"].add(system)
    assert len(system_manifests) == 2 and len(seen["secrets"]) == 2


def test_secrets_are_mounted_read_only_as_files_and_read_through_the_file_variables(
    manifests: Manifests,
) -> None:
    example = the(load_yaml_documents(SECRET_EXAMPLE), "Secret", "thulium-etl")
    for template in pod_templates(manifests):
        (container,) = template.containers
        env = container_environment(container, manifests)
        assert not {"THULIUM_PASSWORD", "DATABASE_URL"} & set(env), template.owner
        files = {
            name: env[name]
            for name in ("THULIUM_PASSWORD_FILE", "DATABASE_URL_FILE")
            if name in env
        }
        assert "DATABASE_URL_FILE" in files
        volumes = {v["name"]: v for v in template.pod["volumes"]}
        for path in files.values():
            directory, _, key = path.rpartition("/")
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == example["metadata"]["name"]
            assert key in {item["path"] for item in secret["items"]}
            assert key in example["stringData"]


def test_the_example_secret_holds_only_placeholders() -> None:
    (secret,) = load_yaml_documents(SECRET_EXAMPLE)
    assert set(secret["stringData"]) == {"thulium-password", "database-url"}
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_every_pod_meets_the_restricted_pod_security_standard(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for template in templates(manifests, sharded_manifests):
        pod = template.pod
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), template.owner
        assert not any("hostPath" in volume for volume in pod.get("volumes", []))
        for container in template.containers:
            security = container_security(template, container)
            where = f"{template.owner} container {container['name']}"
            assert security.get("runAsNonRoot") is True, where
            assert security.get("runAsUser") == 10001, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("privileged", False) is False, where
            assert security.get("capabilities") == {"drop": ["ALL"]}, where
            assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert container["image"] == IMAGE, where


def test_memory_is_sized_from_the_measured_peak_rss(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    peak = benchmark_megabytes("W3 peak RSS, 10,000 campaigns") * 1e6
    # every worker holding an answer just under the ConfigMap's THULIUM_MAX_BODY_BYTES
    worst = benchmark_megabytes("W4 peak RSS, 8 answers of ~4.9 MB in flight") * 1e6
    cronjob = (KUBERNETES / "base" / "cronjob.yaml").read_text()
    assert f"{peak / 1e6:.0f} MB" in cronjob and f"{worst / 1e6:.0f} MB" in cronjob
    settings = the(manifests, "ConfigMap", "thulium-etl")["data"]
    assert settings["THULIUM_MAX_BODY_BYTES"] == "5000000"
    assert settings["THULIUM_CONCURRENCY"] == "8"
    for template in templates(manifests, sharded_manifests):
        for container in template.containers:
            resources = container["resources"]
            request = quantity_bytes(resources["requests"]["memory"])
            limit = quantity_bytes(resources["limits"]["memory"])
            assert request >= 1.25 * peak, (template.owner, request, peak)
            assert limit >= 2 * peak and limit >= request, (template.owner, limit, peak)
            if container["args"] == ["sync"]:
                assert limit >= 1.25 * worst, (template.owner, limit, worst)
            assert resources["requests"]["cpu"] and resources["limits"]["cpu"]


def test_the_nightly_cronjob_runs_sync_once_a_night_never_overlapping_and_cleans_up(
    manifests: Manifests,
) -> None:
    cronjob = the(manifests, "CronJob", "thulium-etl")["spec"]
    assert cronjob["timeZone"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    assert cronjob["startingDeadlineSeconds"] > 0
    assert cronjob["successfulJobsHistoryLimit"] >= 1
    assert cronjob["failedJobsHistoryLimit"] >= 1
    job = cronjob["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    assert job["ttlSecondsAfterFinished"] > 0
    assert job["backoffLimit"] >= 1
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # what podFailurePolicy requires
    (container,) = pod["containers"]
    assert container["args"] == ["sync"]


def test_the_nightly_schedule_runs_once_every_night_clock_changes_included(
    manifests: Manifests,
) -> None:
    cronjob = the(manifests, "CronJob", "thulium-etl")["spec"]
    minute, hour, *every = cronjob["schedule"].split()
    assert every == ["*", "*", "*"]
    at = dt.time(int(hour), int(minute))

    assert days_without_exactly_one(at, cronjob["timeZone"], years=range(2026, 2036)) == []


def test_the_migrate_job_runs_migrate_with_only_the_database_url(manifests: Manifests) -> None:
    job = the(manifests, "Job", "thulium-etl-migrate")["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    env = container_environment(container, manifests)
    assert "DATABASE_URL_FILE" in env and "THULIUM_PASSWORD_FILE" not in env
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_a_configuration_error_is_never_retried(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for template in templates(manifests, sharded_manifests):
        (container,) = template.containers
        assert exit_code_actions(template.job, container["name"])[2] == "FailJob", template.owner


def test_every_exit_code_of_the_program_has_a_pod_failure_policy_rule(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    codes = (EXIT_CODES | program_exit_codes()) - {0}
    for objects in (manifests, sharded_manifests):
        job = the(objects, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
        actions = exit_code_actions(job, "sync")
        assert set(actions) == codes
        assert actions[3] == "Count"  # a database outage may pass: retried
        assert {actions[c] for c in (74, 143)} == {"Count"}


def test_the_cronjobs_pod_failure_policy_is_the_one_the_exit_codes_declare(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for objects, sharded in ((manifests, False), (sharded_manifests, True)):
        job = the(objects, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
        (container,) = job["template"]["spec"]["containers"]
        implied = implied_pod_failure_rules(sharded=sharded, container=container["name"])

        assert job["podFailurePolicy"]["rules"] == implied, "sharded" if sharded else "nightly"


def test_evicted_or_preempted_pods_are_retried_without_counting_as_failures(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for template in templates(manifests, sharded_manifests):
        # first: an evicted pod also exits 143, and the first matching rule decides
        first = template.job["podFailurePolicy"]["rules"][0]
        assert first["action"] == "Ignore", template.owner
        assert first["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
        # the replacement starts once the evicted pod is gone, with its run lock
        assert template.job["podReplacementPolicy"] == "Failed"


def test_the_grace_period_outlasts_the_jobs_sigterm_handling(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    for template in templates(manifests, sharded_manifests):
        # the job exits within ~5 s of SIGTERM (tests/test_interruptions.py)
        assert template.pod["terminationGracePeriodSeconds"] >= 3 * 5, template.owner


def test_the_sharded_variant_is_an_indexed_job_with_one_shard_per_completion(
    manifests: Manifests, sharded_manifests: Manifests
) -> None:
    job = the(sharded_manifests, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    (container,) = job["template"]["spec"]["containers"]
    shards = int(container_environment(container, sharded_manifests)["THULIUM_SHARDS"])
    assert job["completions"] == job["parallelism"] == shards > 1
    # one shard's failure fails that shard, not the others mid-run
    assert job["backoffLimitPerIndex"] >= 1 and "backoffLimit" not in job
    actions = exit_code_actions(job, "sync")
    assert {actions[c] for c in (1, 70, 75)} == {"FailIndex"}
    # the unsharded variant sets no shard at all
    plain = the(manifests, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
    (plain_container,) = plain["template"]["spec"]["containers"]
    plain_env = container_environment(plain_container, manifests)
    assert not {"THULIUM_SHARD", "THULIUM_SHARDS"} & set(plain_env)


def test_the_sharded_jobs_pods_with_the_manifests_settings_sync_every_campaign_once(
    api: StandIn,
    db_url: URL,
    migrated: Engine,
    tmp_path: Path,
    sharded_manifests: Manifests,
    gateway: Pushgateway,
) -> None:
    ids = [f"{n:05d}" for n in range(1, 31)]
    seed_campaigns(api, ids)
    job = the(sharded_manifests, "CronJob", "thulium-etl")["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    # the pod's environment as rendered; only where the API, the database and the secret
    # files are differs here
    env = container_environment(container, sharded_manifests)
    test_env = make_env(api, db_url, ids)
    (tmp_path / "password").write_text(PASSWORD + "\n")
    (tmp_path / "database-url").write_text(
        db_url.set(password=DB_PASSWORD).render_as_string(hide_password=False) + "\n"
    )
    env |= {
        "THULIUM_BASE_URL": test_env["THULIUM_BASE_URL"],
        "THULIUM_USER": test_env["THULIUM_USER"],
        "THULIUM_CAMPAIGNS": test_env["THULIUM_CAMPAIGNS"],
        "THULIUM_PASSWORD_FILE": str(tmp_path / "password"),
        "DATABASE_URL_FILE": str(tmp_path / "database-url"),
        "THULIUM_PUSHGATEWAY_URL": gateway.url,
    }

    codes = [
        run_cli(*container["args"], env={**env, "JOB_COMPLETION_INDEX": str(index)}).code
        for index in range(job["completions"])
    ]

    assert codes == [0] * job["completions"]
    with migrated.connect() as conn:
        shards = conn.execute(text("SELECT shard FROM sync_runs ORDER BY shard")).scalars().all()
        synced = conn.execute(
            text("SELECT campaign_id FROM sync_run_campaigns WHERE outcome = 'succeeded'")
        ).scalars()
        assert Counter(synced) == Counter(ids)  # each campaign exactly once
    assert shards == [f"{i}/{job['completions']}" for i in range(job["completions"])]
    pushed = {dict(labels).get("shard") for labels in gateway.groups()}
    assert pushed == set(shards)  # each pod's metrics in a group of its own shard
