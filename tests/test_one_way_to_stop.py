"""Every place that waits registers with the run's stop what ends its wait and how long it may
last (``Stop.cancelling``): the wait is ended at its bound or at a stop, whichever comes
first, once; a second stop ends what began after the first."""

from __future__ import annotations

import threading
import time

from etl.stop import Stop


def _ended(
    stop: Stop, *, within: float | None, request_after: float | None, patience: float = 2
) -> float | None:
    """Seconds from registering a wait to its end (None: not ended within ``patience``)."""
    ended = threading.Event()
    started = time.monotonic()
    with stop.cancelling(ended.set, within=within):
        if request_after is not None:
            time.sleep(request_after)
            stop.request()
        if not ended.wait(patience):
            return None
    return time.monotonic() - started


def test_a_wait_is_ended_at_its_bound() -> None:
    took = _ended(Stop(), within=0.2, request_after=None)

    assert took is not None and 0.2 <= took < 1


def test_a_stop_ends_a_wait_at_once_whatever_its_bound() -> None:
    took = _ended(Stop(), within=60, request_after=0.1)

    assert took is not None and took < 1


def test_a_wait_with_no_bound_lasts_until_a_stop() -> None:
    assert _ended(Stop(), within=None, request_after=None, patience=0.5) is None


def test_a_wait_is_ended_once_and_a_second_stop_ends_what_began_after_the_first() -> None:
    stop = Stop()
    calls: list[str] = []
    with stop.cancelling(lambda: calls.append("before"), within=0.1):
        stop.request()
        time.sleep(0.3)  # its bound passes too
        with stop.cancelling(lambda: calls.append("after")):
            stop.request()
            time.sleep(0.3)

    assert sorted(calls) == ["after", "before"]


def test_a_bound_is_kept_while_another_wait_is_being_cancelled() -> None:
    """Each cancel runs on a thread of its own: one that blocks holds up no other."""
    stop = Stop()
    ended = threading.Event()
    with (
        stop.cancelling(lambda: time.sleep(1.5), within=0.05),
        stop.cancelling(ended.set, within=0.2),
    ):
        assert ended.wait(1)


def test_a_cancel_never_reaches_what_the_waiting_code_does_next() -> None:
    """A cancel under way when its wait ends finishes before the code goes on (to its next
    request on a kept-alive connection, its next statement on a pooled one); one chosen but
    not yet begun never runs."""
    stop = Stop()
    cancelled: list[float] = []

    def cancel() -> None:
        time.sleep(0.3)  # a cancel that takes a round trip
        cancelled.append(time.monotonic())

    with stop.cancelling(cancel, within=0):
        time.sleep(0.1)  # the cancel is under way
    went_on = time.monotonic()

    assert cancelled and cancelled[0] <= went_on
    with stop.cancelling(lambda: cancelled.append(0.0), within=0.2):
        pass
    time.sleep(0.4)
    assert len(cancelled) == 1
