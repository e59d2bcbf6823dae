"""What a run has done so far (the tally), and one log line per campaign as it is recorded."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from etl.errors import with_request_id
from etl.outcomes import CampaignOutcome, CampaignResult, Counts, Halt, RunOutcome, RunTotals

logger = logging.getLogger("etl.sync")

_MAX_ERRORS_IN_SUMMARY = 5


@dataclass
class Tally:
    """Campaigns by outcome so far, and the first errors, for the run's outcome and summary."""

    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    rows: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # of the run, not of one campaign

    def add(self, result: CampaignResult) -> None:
        if result.outcome is CampaignOutcome.SUCCEEDED:
            self.ok += 1
            c = result.counts
            self.rows = Counts(
                self.rows.inserted + c.inserted,
                self.rows.updated + c.updated,
                self.rows.deleted + c.deleted,
            )
        elif result.outcome is CampaignOutcome.FAILED:
            self.failed += 1
            if len(self.errors) < _MAX_ERRORS_IN_SUMMARY:
                self.errors.append(f"{result.campaign_id}: {result.error}")
        else:
            self.skipped += 1

    def totals(self) -> RunTotals:
        """The totals so far: what a run that cannot count them from its rows reports."""
        return RunTotals(
            campaigns_total=self.total,
            campaigns_ok=self.ok,
            campaigns_failed=self.failed,
            campaigns_skipped=self.skipped,
            rows_inserted=self.rows.inserted,
            rows_updated=self.rows.updated,
            rows_deleted=self.rows.deleted,
        )

    def outcome(self, *, interrupted: bool) -> RunOutcome:
        if interrupted:
            return RunOutcome.INTERRUPTED
        if self.failed == 0 and self.skipped == 0 and not self.problems:
            return RunOutcome.SUCCEEDED
        if self.ok == 0:
            return RunOutcome.FAILED
        return RunOutcome.PARTIAL

    def progress(self, *, elapsed: float) -> str:
        """``412/1000 campaigns, 3 failed, 35.2/s, ETA 17s``: the terminal's status line."""
        done = self.ok + self.failed + self.skipped
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"ETA {(self.total - done) / rate:.0f}s" if rate else "ETA ?"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{done}/{self.total} campaigns{failed}, {rate:.1f}/s, {eta}"

    def summary(self, *, halted: Halt | None) -> str | None:
        """The run's error summary: what went wrong, in a line (None if nothing did)."""
        parts = list(self.problems)
        if halted:
            parts.append(f"stopped starting campaigns: {halted.value}")
        if self.failed:
            more = " …" if self.failed > len(self.errors) else ""
            parts.append(
                f"{self.failed} of {self.total} campaigns failed: {'; '.join(self.errors)}{more}"
            )
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return " | ".join(parts) or None


def log_result(result: CampaignResult) -> None:
    """One event per campaign, with ``campaign_id`` and ``outcome`` fields."""
    extra = {"campaign_id": result.campaign_id, "outcome": str(result.outcome)}
    if result.outcome is CampaignOutcome.SUCCEEDED:
        c = result.counts
        logger.info(
            "campaign %s synced: %d inserted, %d updated, %d deleted, %d attempt(s), %.2fs",
            result.campaign_id,
            c.inserted,
            c.updated,
            c.deleted,
            result.attempts,
            result.duration,
            extra=extra,
        )
    elif result.outcome is CampaignOutcome.FAILED:
        logger.error(
            "campaign %s failed after %d attempt(s): %s",
            result.campaign_id,
            result.attempts,
            with_request_id(str(result.error), result.request_id),
            extra=extra,
        )
    else:
        logger.warning("campaign %s skipped: %s", result.campaign_id, result.error, extra=extra)
