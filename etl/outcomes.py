"""What happened to a campaign and to a run: the vocabulary, and the record of one campaign.

The outcomes are :class:`~enum.StrEnum` s, so mypy checks every use, the schema builds its
CHECK constraints from them, and they are stored as the plain words they are.
"""

from __future__ import annotations

import collections
import enum
import threading
from dataclasses import dataclass, field

from etl.errors import ApiError, CampaignError
from etl.shards import Shard


class CampaignOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"  # fetched, validated and written, with its outcome row
    FAILED = "failed"  # the API, the answer or the database refused it; its rows untouched
    SKIPPED = "skipped"  # never attempted (a 401 earlier, a stop, a dead run)


class Halt(enum.Enum):
    """Why the workers stopped starting campaigns before the list ran out, in words that
    follow "not attempted: " or "stopped starting campaigns: "."""

    AUTH = "the API rejected the credentials (HTTP 401)"
    API_DOWN = "the API kept failing after the retry budget was spent (THULIUM_RETRY_BUDGET)"


class RunOutcome(enum.StrEnum):
    RUNNING = "running"  # only while its process holds the run lock
    SUCCEEDED = "succeeded"  # every campaign succeeded
    PARTIAL = "partial"  # some failed or were skipped, the others were saved
    FAILED = "failed"  # none succeeded, or the run stopped on an error
    INTERRUPTED = "interrupted"  # SIGTERM or SIGINT
    ABANDONED = "abandoned"  # its process died; a later run found it


@dataclass(frozen=True)
class Counts:
    """Rows of one campaign written by one sync."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True, kw_only=True)
class RunTotals:
    """A run's totals, as counted from its per-campaign rows."""

    campaigns_total: int = 0
    campaigns_ok: int = 0
    campaigns_failed: int = 0
    campaigns_skipped: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0


@dataclass(frozen=True, kw_only=True)
class CampaignResult:
    """What happened to one campaign in one run: the row the run history records.

    Build it with :meth:`succeeded`, :meth:`failed` or :meth:`skipped`.
    """

    campaign_id: str
    outcome: CampaignOutcome
    counts: Counts = field(default_factory=Counts)
    attempts: int = 0
    duration: float = 0.0
    http_status: int | None = None
    request_id: str | None = None
    error: str | None = None

    @classmethod
    def succeeded(
        cls, campaign_id: str, counts: Counts, *, attempts: int, duration: float, http_status: int
    ) -> CampaignResult:
        return cls(
            campaign_id=campaign_id,
            outcome=CampaignOutcome.SUCCEEDED,
            counts=counts,
            attempts=attempts,
            duration=duration,
            http_status=http_status,
        )

    @classmethod
    def failed(
        cls,
        error: CampaignError,
        *,
        duration: float,
        attempts: int | None = None,
        http_status: int | None = None,
    ) -> CampaignResult:
        """From the error that failed it; ``attempts`` and ``http_status`` when the error
        cannot know them (a payload error knows nothing of the request that fetched it)."""
        return cls(
            campaign_id=error.campaign_id,
            outcome=CampaignOutcome.FAILED,
            attempts=error.attempts if attempts is None else attempts,
            duration=duration,
            http_status=error.status if isinstance(error, ApiError) else http_status,
            request_id=error.request_id,
            error=error.message,
        )

    @classmethod
    def skipped(cls, campaign_id: str, why: str) -> CampaignResult:
        return cls(campaign_id=campaign_id, outcome=CampaignOutcome.SKIPPED, error=why)


class RequestCounts:
    """What one client asked of the API: requests by HTTP status, and retries.

    A request that got no answer at all (a network error, a timeout) counts as ``none``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_status: collections.Counter[str] = collections.Counter()
        self.retries = 0

    def answered(self, status: int | None) -> None:
        with self._lock:
            self.by_status["none" if status is None else str(status)] += 1

    def retried(self, times: int) -> None:
        with self._lock:
            self.retries += times


@dataclass(kw_only=True)
class RunReport:
    """What one run reports, filled in as it goes."""

    shard: Shard | None
    schema: str  # THULIUM_DB_SCHEMA: which Thulium system's run it is
    started: float  # time.monotonic() when the run started
    duration: float = 0.0  # seconds, start to end
    finished_at: float = 0.0  # Unix time: the database's, once the run is recorded
    outcome: RunOutcome = RunOutcome.FAILED
    totals: RunTotals = field(default_factory=RunTotals)
    http: RequestCounts = field(default_factory=RequestCounts)
    last_success: float | None = None  # Unix time, from the run history

    def grouping(self) -> dict[str, str]:
        """The labels that tell this run's series from another deployment's: its shard, and
        its schema unless it is the default one (public), whose series keep the labels they
        had before schemas were a setting."""
        labels = {"shard": str(self.shard)} if self.shard else {}
        if self.schema != "public":
            labels["schema"] = self.schema
        return labels
