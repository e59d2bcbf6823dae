"""deploy/prometheus: the alert rules are valid, use only the metrics the job exposes, and each
is shown by promtool's unit tests to fire when it should and to stay quiet when it should not."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.helpers.deploy import DEPLOY, require

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yaml"

# What the job exposes (README.md, "Alerts"); every series also has job="thulium-etl" and,
# when sharded, shard="I/N".
METRICS = {
    "thulium_etl_last_run_timestamp_seconds",
    "thulium_etl_last_success_timestamp_seconds",
    "thulium_etl_run_duration_seconds",
    "thulium_etl_last_run_outcome",
    "thulium_etl_last_run_campaigns",
    "thulium_etl_last_run_rows",
    "thulium_etl_last_run_http_requests",
    "thulium_etl_last_run_http_retries",
    "thulium_etl_build_info",
}


def rules() -> list[dict[str, object]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args], cwd=PROMETHEUS, capture_output=True, text=True
    )


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", ALERTS.name)  # syntax, PromQL, templates, duplicates
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", ALERTS_TEST.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_use_only_the_jobs_metrics_and_select_its_job_label() -> None:
    for rule in rules():
        expr = str(rule["expr"])
        used = set(re.findall(r"\bthulium_etl_[a-z_]+", expr))
        assert used and used <= METRICS, (rule["alert"], used - METRICS)
        selectors = re.findall(r"thulium_etl_[a-z_]+(\{[^}]*\})?", expr)
        assert all('job="thulium-etl"' in s for s in selectors), (rule["alert"], selectors)


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for name in {str(rule["alert"]) for rule in rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never shown quiet"
