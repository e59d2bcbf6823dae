"""Helpers for the deployment-kit tests: the tools they need, the program's settings and exit
codes as its ``--help`` lists them, and readers for the files under ``deploy/``, the Dockerfile
and the benchmark figures the manifests are sized from.

A missing tool fails the test that needs it with a message naming the package; ``.ci/run``
installs them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"

# How to get each tool; .ci/run does it.
TOOLS = {
    "kubectl": "install kubectl (Debian package kubectl from the Kubernetes or Google Cloud "
    "apt repository); `kubectl kustomize` renders deploy/kubernetes",
    "systemd-analyze": "apt-get install systemd",
    "promtool": "apt-get install prometheus (Debian's package ships promtool)",
    "prometheus-pushgateway": "apt-get install prometheus-pushgateway",
    "setpriv": "apt-get install util-linux",
}


def require(tool: str) -> str:
    """The path of ``tool``; the test fails (never skips) when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: {TOOLS[tool]}", pytrace=False)
    return path


# --- the Dockerfile -----------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuations joined

    def all(self, instruction: str) -> list[str]:
        return [args for kind, args in self.instructions if kind == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"the stage FROM {self.base} has no {instruction}"
        return found[-1]


def dockerfile_stages(path: Path) -> list[Stage]:
    """The build stages of a Dockerfile, in order."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") and not pending:
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending or line:
            logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        kind, _, args = line.partition(" ")
        kind, args = kind.upper(), " ".join(args.split())
        if kind == "FROM":
            base, _, alias = args.partition(" AS ")
            stages.append(Stage(base.strip(), alias.strip() or None, []))
        else:
            assert stages, f"{line!r} before the first FROM"
            stages[-1].instructions.append((kind, args))
    return stages


def dockerfile_env(stage: Stage) -> dict[str, str]:
    """The ``ENV KEY=value ...`` settings of a stage."""
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            env[key] = value.strip('"')
    return env


# --- the program's own word on its settings and exit codes ------------------------------------


def program_help(*command: str) -> str:
    """``python -m etl [COMMAND] --help`` of the package under test."""
    done = subprocess.run(
        [sys.executable, "-m", "etl", *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def help_section(help_text: str, title: str) -> str:
    """The indented lines under the help line that starts with ``title``."""
    lines = help_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(title)]
    assert starts, f"the help has no {title!r} section:\n{help_text}"
    section = []
    for line in lines[starts[0] + 1 :]:
        if line and not line[0].isspace():
            break
        section.append(line)
    return "\n".join(section)


def program_variables() -> set[str]:
    """Every environment variable a setting of any command is read from (etl.config)."""
    from etl import cli, config

    names: set[str] = set()
    for command in (config.LogSettings, *(c.settings for c in cli.COMMANDS.values())):
        for _, declaration in config.declared(command):
            if declaration.env is None:  # a command's own option: no variable
                continue
            names.add(declaration.env)
            if declaration.file:
                names.add(f"{declaration.env}_FILE")
    return names


def program_exit_codes() -> set[int]:
    """The exit codes the help documents."""
    section = help_section(program_help(), "exit codes")
    return {int(code) for code in re.findall(r"^\s+(\d+)\s", section, re.M)}


# --- Kubernetes ---------------------------------------------------------------------------------


# kubectl kustomize needs no cluster, but a kubectl may still ask one: the Google Cloud SDK's
# kubectl is a dispatcher that first asks the current cluster (else localhost:8080) for its
# version. A kubeconfig of our own, whose server is an address nothing can listen on, keeps
# the tests off any real cluster and off whatever answers on localhost:8080.
OFFLINE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:0"}}]
contexts: [{name: none, context: {cluster: none}}]
current-context: none
"""


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIRECTORY`` renders (what ``apply -k`` would send)."""
    kubectl = require("kubectl")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as kubeconfig:
        kubeconfig.write(OFFLINE_KUBECONFIG)
        kubeconfig.flush()
        done = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            env={**os.environ, "KUBECONFIG": kubeconfig.name},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@dataclass
class PodTemplate:
    """The pod template of a Job or of a CronJob's Job, with the Job spec around it."""

    owner: str  # e.g. "CronJob/thulium-etl"
    job: dict[str, Any]
    pod: dict[str, Any]

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.pod.get("initContainers", [])) + list(self.pod["containers"])


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[PodTemplate]:
    for obj in objects:
        if obj["kind"] == "CronJob":
            job = obj["spec"]["jobTemplate"]["spec"]
        elif obj["kind"] == "Job":
            job = obj["spec"]
        else:
            continue
        yield PodTemplate(f"{obj['kind']}/{obj['metadata']['name']}", job, job["template"]["spec"])


def the(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container_security(template: PodTemplate, container: dict[str, Any]) -> dict[str, Any]:
    """The security settings in force for a container: its own, else the pod's."""
    return {**template.pod.get("securityContext", {}), **container.get("securityContext", {})}


def container_environment(
    container: dict[str, Any], objects: list[dict[str, Any]]
) -> dict[str, str]:
    """The variables a container gets: its ``env`` (a ConfigMap's key looked up) and the
    ConfigMaps of its ``envFrom``."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"envFrom other than a ConfigMap: {source}"
        config_map = the(objects, "ConfigMap", source["configMapRef"]["name"])
        env.update({source.get("prefix", "") + k: v for k, v in config_map["data"].items()})
    for item in container.get("env", []):
        key = item.get("valueFrom", {}).get("configMapKeyRef")
        if key is not None:
            env[item["name"]] = the(objects, "ConfigMap", key["name"])["data"][key["key"]]
        else:
            env[item["name"]] = item.get("value", "<from valueFrom>")
    return env


def implied_pod_failure_rules(*, sharded: bool, container: str) -> list[dict[str, Any]]:
    """The podFailurePolicy rules the exit codes' declaration (etl/exits.py) implies for the
    nightly Job, or the sharded one: evicted pods first, then a rule per kind of retry."""
    from etl import exits

    rules: list[dict[str, Any]] = [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    for retry, codes in exits.by_retry().items():
        on = {"containerName": container, "operator": "In", "values": [int(c) for c in codes]}
        rules.append({"action": retry.sharded if sharded else retry.nightly, "onExitCodes": on})
    return rules


def exit_code_actions(job: dict[str, Any], container: str) -> dict[int, str]:
    """Exit code → the podFailurePolicy action the first matching rule takes."""
    actions: dict[int, str] = {}
    for rule in job["podFailurePolicy"]["rules"]:
        on = rule.get("onExitCodes")
        if on is None:
            continue
        assert on["operator"] == "In", rule
        assert on.get("containerName", container) == container, rule
        for code in on["values"]:
            actions.setdefault(code, rule["action"])
    return actions


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``96Mi``, ``100M``, ``1Gi``) in bytes."""
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", str(quantity))
    assert match and match[2] in ("", *_SUFFIXES), f"not a memory quantity: {quantity}"
    return int(match[1]) * _SUFFIXES.get(match[2], 1)


def benchmark_megabytes(figure: str) -> float:
    """A figure in MB (10^6 bytes) from the results table of benchmarks/README.md."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    match = re.search(rf"^{re.escape(figure)}\s*\|\s*([\d.]+) MB\s*\|", text, re.M)
    assert match, f"benchmarks/README.md has no figure {figure!r}"
    return float(match[1])


# --- systemd and cron ---------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """section → key → every value of a systemd unit file (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_root(tmp: Path, units: list[Path]) -> Path:
    """A file system root for ``systemd-analyze --root``: the host's own units (for targets
    such as sysinit.target) and ``units`` in /etc/systemd/system."""
    root = tmp / "root"
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    shutil.copytree(
        "/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True
    )
    for unit in units:
        shutil.copy(unit, system / unit.name)
    return root


def install_at(root: Path, absolute: str, source: Path) -> None:
    """Copy ``source`` (an executable) to the absolute path ``absolute`` under ``root``."""
    target = root / absolute.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


@dataclass
class CronEntry:
    minute: str
    hour: str
    day: str
    month: str
    weekday: str
    user: str
    command: str


@dataclass
class Crontab:
    """A file for /etc/cron.d: variable assignments and entries (with a user field)."""

    variables: dict[str, str] = field(default_factory=dict)
    entries: list[CronEntry] = field(default_factory=list)


def read_crontab(path: Path) -> Crontab:
    crontab = Crontab()
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if assignment:
            crontab.variables[assignment[1]] = assignment[2]
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not `m h dom mon dow user command`: {line}"
        crontab.entries.append(CronEntry(*fields))
    return crontab


def cron_field_ok(value: str, low: int, high: int) -> bool:
    """A cron time field: ``*``, numbers, ranges, lists and steps within [low, high]."""
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            return False
    return True


def env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (comments and blank lines skipped); fails on anything else."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # no quotes, spaces, $ or backslashes: sh's `.` and systemd's EnvironmentFile= must
        # read the same value
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s'\"$`\\]*)", line)
        assert match, f"{path.name}: not a plain KEY=value line: {line}"
        values[match[1]] = match[2]
    return values


# --- schedules ------------------------------------------------------------------------------


def days_without_exactly_one(at: dt.time, zone: str, *, years: range) -> list[dt.date]:
    """The days on which the local time ``at`` in ``zone`` is skipped (the clocks jump over
    it) or happens twice (they go back over it): a daily schedule at ``at`` misses or doubles
    a run on each of them."""
    tz = ZoneInfo(zone)
    day, end = dt.date(years.start, 1, 1), dt.date(years.stop, 1, 1)
    found = []
    while day < end:
        local = dt.datetime.combine(day, at, tzinfo=tz)
        if local.utcoffset() != local.replace(fold=1).utcoffset():
            found.append(day)
        day += dt.timedelta(days=1)
    return found
