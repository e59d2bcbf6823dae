"""A large answer is checked item by item and kept packed, so every worker of a run can hold
one: the 5 MB answers the Kubernetes ConfigMap allows (``THULIUM_MAX_BODY_BYTES``) took about
13 MB each once parsed, and 23 MB more while being parsed, as trees and tuples of Python
objects (benchmarks/README.md, W4). Measured with tracemalloc, which counts what Python
allocates whatever the machine's load."""

from __future__ import annotations

import json
import tracemalloc

from etl.records import Status, parse_statuses
from standin import sample_statuses

MB = 1_000_000


def test_an_answer_of_40000_statuses_is_held_in_3_mb_and_parsed_within_12_mb() -> None:
    statuses = sample_statuses("00001", 40_000, seed=1)
    body = json.dumps(statuses, ensure_ascii=False).encode("utf-8")
    assert len(body) > 4 * MB

    tracemalloc.start()
    try:
        snapshot = parse_statuses(body, campaign_id="00001")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert held < 3 * MB
    assert peak < 12 * MB
    assert len(snapshot.statuses) == 40_000
    assert list(snapshot.statuses) == [Status(**s) for s in statuses]  # type: ignore[arg-type]
