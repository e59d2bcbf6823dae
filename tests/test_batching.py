"""Which campaigns share a write transaction: a batch holds what arrives within ``linger`` of
its first result, up to ``max_rows``, and results that waited while a batch was written are
not made to wait a linger of their own."""

from __future__ import annotations

import time

from etl.batches import Batch, batches
from etl.fetch import Arrival, Fetched
from etl.outcomes import CampaignResult
from etl.records import Snapshot, Status
from etl.stop import Stop

LINGER = 0.25


class Arrived:
    """Results that have already arrived, each at its own time: what a Fetcher hands over
    after the writer was busy (None: nothing waiting at that moment). Records every timeout
    it was asked to wait."""

    def __init__(self, arrivals: list[Arrival | None]) -> None:
        self._arrivals = list(arrivals)
        self.waits: list[float] = []

    @property
    def exhausted(self) -> bool:
        return not self._arrivals

    def get(self, timeout: float) -> Arrival | None:
        self.waits.append(timeout)
        return self._arrivals.pop(0) if self._arrivals else None


def fetched(campaign_id: str, *, statuses: int = 5) -> Fetched:
    rows = tuple(Status(f"s{n}", "CALL", None, f"status {n}") for n in range(statuses))
    return Fetched(Snapshot(campaign_id, rows), attempts=1, duration=0.05, http_status=200)


def campaigns(batch: Batch) -> list[str]:
    return [item.campaign_id for item in batch.fetched]


def test_results_that_waited_during_a_write_are_batched_without_waiting_again() -> None:
    long_ago = time.monotonic() - 1.0
    source = Arrived([Arrival(fetched(f"{n:05d}"), long_ago + n * 0.01) for n in range(3)])

    written = list(batches(source, max_rows=1000, stop=Stop(), linger=LINGER))

    assert [campaigns(batch) for batch in written] == [["00000", "00001", "00002"]]
    idle, *while_open = source.waits  # the first get waits for a batch to start
    assert idle > 0 and while_open and max(while_open) == 0


def test_a_batch_waits_out_its_linger_for_results_still_to_come() -> None:
    class Later(Arrived):
        """The second result comes only to a caller willing to wait for it."""

        def get(self, timeout: float) -> Arrival | None:
            if len(self.waits) == 1 and timeout == 0:
                self.waits.append(timeout)
                return None
            return super().get(timeout)

    now = time.monotonic()
    source = Later([Arrival(fetched("00001"), now), Arrival(fetched("00002"), now + 0.01)])

    written = list(batches(source, max_rows=1000, stop=Stop(), linger=60))

    assert [campaigns(batch) for batch in written] == [["00001", "00002"]]
    assert source.waits[1] > 0  # it waited for the second, within the first's linger


def test_a_batch_closes_when_it_holds_max_rows() -> None:
    now = time.monotonic()
    source = Arrived([Arrival(fetched(f"{n:05d}", statuses=5), now) for n in range(5)])

    written = list(batches(source, max_rows=10, stop=Stop(), linger=LINGER))

    assert [len(batch.fetched) for batch in written] == [2, 2, 1]
    assert [batch.weight for batch in written] == [10, 10, 5]


def test_failures_weigh_one_row_so_a_stream_of_them_is_written_as_it_goes() -> None:
    now = time.monotonic()
    failures = [CampaignResult.skipped(f"{n:05d}", "not attempted") for n in range(5)]
    source = Arrived([Arrival(failure, now) for failure in failures])

    written = list(batches(source, max_rows=2, stop=Stop(), linger=60))

    assert [len(batch.others) for batch in written] == [2, 2, 1]


def test_campaigns_without_statuses_weigh_one_row_each() -> None:
    now = time.monotonic()
    source = Arrived([Arrival(fetched(f"{n:05d}", statuses=0), now) for n in range(5)])

    written = list(batches(source, max_rows=2, stop=Stop(), linger=60))

    assert [len(batch.fetched) for batch in written] == [2, 2, 1]


def test_a_batch_past_its_linger_closes_when_nothing_is_waiting() -> None:
    long_ago = time.monotonic() - 1.0
    source = Arrived(
        [Arrival(fetched("00001"), long_ago), None, Arrival(fetched("00002"), long_ago + 0.5)]
    )

    written = list(batches(source, max_rows=1000, stop=Stop(), linger=LINGER))

    assert [campaigns(batch) for batch in written] == [["00001"], ["00002"]]


def test_a_stop_drops_the_open_batch_for_the_caller_to_record_skipped() -> None:
    stop = Stop()

    class StoppedMidBatch(Arrived):
        """A SIGTERM arrives just after the first result."""

        def get(self, timeout: float) -> Arrival | None:
            arrival = super().get(timeout)
            stop.request()
            return arrival

    now = time.monotonic()
    source = StoppedMidBatch([Arrival(fetched("00001"), now), Arrival(fetched("00002"), now)])

    assert list(batches(source, max_rows=1000, stop=stop, linger=60)) == []
