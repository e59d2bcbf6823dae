"""The real CLI, run in this process or as a process of its own, and the environment of a job
pointed at the stand-in and a test database."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from etl.cli import main
from standin import StandIn

PASSWORD = "s3cr3t-Pa55-zebra"  # distinctive: tests grep every output for it
DB_PASSWORD = "db-Pa55-okapi"
USER = "etl-test"

ROOT = Path(__file__).resolve().parents[2]


def make_env(api: StandIn, db_url: URL, campaigns: list[str], **extra: str) -> dict[str, str]:
    """The environment of a job pointed at the stand-in and the test database, fast retries."""
    if not db_url.password:  # trust auth ignores it; it is there to prove it is never printed
        db_url = db_url.set(password=DB_PASSWORD)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "THULIUM_BASE_URL": api.url,
        "THULIUM_USER": USER,
        "THULIUM_PASSWORD": PASSWORD,
        "THULIUM_CAMPAIGNS": ",".join(campaigns),
        "THULIUM_TIMEOUT": "2",
        "THULIUM_RETRY_ATTEMPTS": "3",
        "THULIUM_RETRY_WAIT": "0.01",
        "THULIUM_RETRY_MAX_WAIT": "0.05",
        "THULIUM_DB_RETRY_WAIT": "0.05",
        "THULIUM_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of the run."""
        return [json.loads(line) for line in self.err.splitlines() if line.startswith("{")]


def run_cli(*argv: str, env: Mapping[str, str]) -> Result:
    """Run the real CLI in this process, capturing stdout and the log stream."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv), environ=env)
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
    return Result(code, out.getvalue(), err.getvalue())


def spawn_cli(
    *argv: str | bytes, env: Mapping[str, str | bytes], **popen: Any
) -> subprocess.Popen[str]:
    """Start the CLI as its own process (for signals, kills and concurrent runs); arguments
    and variables may be bytes, as a shell can pass any."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *argv],
        env={**env, "PYTHONPATH": str(ROOT)},
        text=True,
        **streams,
    )


def exited(proc: subprocess.Popen[str], *, within: float) -> Result:
    """What the process printed and its exit code, once it exits; if it is still running
    after ``within`` seconds, it is killed and the test fails (instead of hanging)."""
    try:
        out, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running after {within:g} s; its log:\n{err}") from None
    return Result(proc.returncode, out, err)


def terminate(proc: subprocess.Popen[str], *, timeout: float = 30) -> tuple[str, float]:
    """Send SIGTERM, as Kubernetes and systemd do; the job's stderr, and the seconds it took
    to exit."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return err, time.monotonic() - sent


def run_in_terminal(*argv: str, env: Mapping[str, str]) -> tuple[int, bytes]:
    """Run the CLI with its stderr on a pseudo-terminal; its exit code and what it wrote."""
    leader, follower = os.openpty()
    try:
        proc = spawn_cli(*argv, env=env, stdin=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.communicate(timeout=60)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return proc.returncode, b"".join(chunks)


ERASE_LINE = "\r\x1b[K"  # back to the start of the line, and clear it


def screen(written: bytes) -> list[str]:
    """The lines a terminal shows after ``written``: a line erased and written over shows
    only what came after the erasure."""
    text = written.decode("utf-8").replace("\r\n", "\n")
    lines = [line.rsplit(ERASE_LINE, 1)[-1] for line in text.split("\n")]
    return [line for line in lines if line]
