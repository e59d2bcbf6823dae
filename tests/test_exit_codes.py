"""The exit codes are declared once (``etl/exits.py``), and every copy says the same.

``--help`` lists them from the declaration, the exceptions take their codes from it, and the
exception tree drawn in ``etl/errors.py``'s docstring states the code of each class. The
README's tables are checked in ``test_generated_docs.py``, the Kubernetes podFailurePolicy in
``test_kubernetes_manifests.py``.
"""

from __future__ import annotations

import inspect
import re

from etl import errors
from etl.exits import ExitCode, Retry
from tests.helpers.cli import run_cli
from tests.helpers.deploy import program_exit_codes

# "├── ConfigError               2: ..." and the root's "EtlError    exit 1 unless ..."
_TREE_LINE = re.compile(r"^[\s│├└─]*(\w+)\s+(?:exit )?(\d+)\b", re.M)


def test_help_lists_every_exit_code() -> None:
    assert program_exit_codes() == {int(code) for code in ExitCode}


def test_each_commands_help_ends_with_the_exit_codes() -> None:
    top = run_cli("--help", env={}).out
    section = top[top.index("exit codes:") :]

    for command in ("migrate", "sync", "check", "runs", "grant-read"):
        assert run_cli(command, "--help", env={}).out.endswith(section), command


def test_every_error_exits_with_a_declared_code() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)]
    for cls in classes:
        if issubclass(cls, errors.EtlError):
            assert isinstance(cls.exit_code, ExitCode), cls.__name__


def test_the_exception_tree_in_the_docstring_states_each_classs_exit_code() -> None:
    assert errors.__doc__ is not None
    stated = {name: int(code) for name, code in _TREE_LINE.findall(errors.__doc__)}

    assert stated, errors.__doc__
    for name, code in stated.items():
        assert getattr(errors, name).exit_code == code, name
    drawn = set(re.findall(r"\b([A-Z]\w+)\b", errors.__doc__))
    defined = {
        n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)
    }
    assert defined <= drawn, defined - drawn


def test_every_failure_says_what_a_scheduler_does_with_it_and_why() -> None:
    for code in ExitCode:
        if code is ExitCode.OK:
            assert code.retry is None
        else:
            assert isinstance(code.retry, Retry) and code.why, code
