"""The process's exit codes, declared once: what each means, and what a scheduler does with it.

The exceptions of :mod:`etl.errors` take their codes from :class:`ExitCode`, and so does the
CLI. ``--help`` renders its "exit codes" section from it (:func:`help_section`); ``make docs``
renders the README's table of exit codes and its podFailurePolicy table; a test checks the
Kubernetes CronJob's podFailurePolicy (hand-written YAML, for kustomize) against
:func:`by_retry`. The texts are Markdown (`` `code` ``), as the README shows them.
"""

from __future__ import annotations

import enum
import textwrap


class Retry(enum.Enum):
    """What a scheduler does with a run that ended with the code, as the podFailurePolicy
    action of the nightly Kubernetes Job and of the sharded (Indexed) one. In the order of
    the policy's rules."""

    NEVER = ("FailJob", "FailJob")  # the same on every try, and in every shard
    NOT_THIS_RUN = ("FailJob", "FailIndex")  # this run's (shard's) own end; the next night retries
    SOON = ("Count", "Count")  # transient: retried with the Job controller's backoff

    @property
    def nightly(self) -> str:
        return self.value[0]

    @property
    def sharded(self) -> str:
        return self.value[1]


class ExitCode(enum.IntEnum):
    """An exit code: its meaning, the same in a few words, and what a scheduler does with it
    (none for success) and why."""

    _value_: int
    meaning: str
    label: str
    retry: Retry | None
    why: str

    def __new__(
        cls, code: int, label: str, meaning: str, retry: Retry | None = None, why: str = ""
    ) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.label = label
        member.meaning = meaning
        member.retry = retry
        member.why = why
        return member

    OK = 0, "success", "every campaign synced (every check passed)"
    CAMPAIGN_FAILED = (
        1,
        "campaigns failed or skipped",
        "at least one campaign failed or was skipped; all the others were saved. Also a 401 "
        "while listing the active campaigns (`THULIUM_CAMPAIGNS=active`): wrong credentials, "
        "which no retry mends; and a database that refuses what discovery found (a DBA's "
        "constraint or trigger on `campaign_stats`): the campaigns are synced, the run is "
        "`partial`",
        Retry.NOT_THIS_RUN,
        "each campaign was already retried with backoff up to the retry budget and the others "
        "are saved; a new pod would fetch every campaign again for little chance of a "
        "different answer, and a 401 (bad credentials) must not be hammered. The next night "
        "retries.",
    )
    CONFIG = (
        2,
        "configuration",
        "configuration or usage error; nothing was contacted (`grant-read`: the role does not "
        "exist; nothing was changed)",
        Retry.NEVER,
        "nothing was contacted and a retry fails the same way; every shard has the same "
        "configuration.",
    )
    DATABASE = (
        3,
        "database unreachable, refusing writes, schema behind",
        "the database is unreachable, refuses writes (a read-only standby, a full disk), timed "
        "out past every retry, or its schema is not at this version's revision: not migrated "
        "yet (`thulium-etl migrate`), or migrated by a newer thulium-etl (upgrade this one). "
        "Also: the connection holding the run lock was lost mid-run and another sync took "
        "over; what this run committed is kept, and the other run closes it as `abandoned`",
        Retry.SOON,
        "usually transient: a restart, a failover, the migrate Job still running. Retried with "
        "the Job controller's backoff (10 s, 20 s, 40 s).",
    )
    DISCOVERY = (
        69,
        "`THULIUM_CAMPAIGNS=active`, the active campaigns could not be listed",
        "`THULIUM_CAMPAIGNS=active` and the active campaigns could not be listed "
        "(`GET /outbounds/stats` failed past its retries, or answered something that is not a "
        "list of campaigns): the run synced nothing and is recorded `failed` (`EX_UNAVAILABLE`)",
        Retry.SOON,
        "the API was down past every retry; nothing was synced, so a later pod loses nothing "
        "and may find it back.",
    )
    INTERNAL = (
        70,
        "internal error",
        "internal error: a bug in thulium-etl (`EX_SOFTWARE`); the log event carries the traceback",
        Retry.NOT_THIS_RUN,
        "a bug: it fails the same way until fixed.",
    )
    OUTPUT = (
        74,
        "output not written",
        "the command's output could not be written: a full disk, or a reader that went away "
        "(`runs | head`) (`EX_IOERR`)",
        Retry.SOON,
        "a full disk; `sync` writes only logs, so this is for completeness. A re-run is "
        "harmless: an unchanged re-sync writes nothing.",
    )
    LOCKED = (
        75,
        "lock held",
        "another sync holds the lock: this run did nothing; try later (`EX_TEMPFAIL`). The "
        "message names the holder",
        Retry.NOT_THIS_RUN,
        "another sync holds the lock and does this run's work; a retry would wait for it and "
        "then repeat it.",
    )
    TERMINATED = (
        143,
        "SIGTERM, no disruption condition",
        "stopped by SIGTERM/SIGINT, within seconds: finished campaigns are saved, the run is "
        "recorded `interrupted` (or, if the database does not let it within 2 s, closed "
        "`abandoned` by the next run); any other command stops at once, its transaction rolled "
        "back. Whatever it waits on, the process ends 10 s after the signal at the latest",
        Retry.SOON,
        "finished campaigns are saved; a retry finishes the rest.",
    )


def by_retry() -> dict[Retry, list[ExitCode]]:
    """The failure codes by what a scheduler does with them, in the order of :class:`Retry`."""
    return {retry: [code for code in ExitCode if code.retry is retry] for retry in Retry}


def help_section() -> str:
    """The "exit codes" section of ``--help``."""
    lines = ["exit codes:"]
    for code in ExitCode:
        lines += textwrap.wrap(
            code.meaning.replace("`", ""),
            92,
            initial_indent=f"  {int(code):<4}",
            subsequent_indent="      ",
        )
    return "\n".join(lines)
