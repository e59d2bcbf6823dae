"""The dlt peer of the benchmark: the same sync written the way dlt's docs suggest.

A resource yields the campaign ids; a ``parallelized`` transformer fetches each campaign's
statuses with dlt's own requests helper (retries, per-thread keep-alive sessions) and adds
``campaign_id``; the rows are merged into Postgres with dlt's default merge strategy,
``delete-insert``, on the key (campaign_id, status_id). Parallelism is dlt's extract thread
pool: ``extract.workers`` (``EXTRACT__WORKERS``, dlt's default 5), set here with ``--workers``.

Run by :mod:`benchmarks.w1` as a subprocess, timed as a whole; it prints one JSON line with
dlt's own step timings and row counts. The database comes from dlt's usual variable
``DESTINATION__POSTGRES__CREDENTIALS`` (or ``--credentials``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="the stand-in's API root, .../api")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--campaigns", type=int, required=True, help="ids 00001..N")
    p.add_argument("--workers", type=int, default=16, help="extract.workers (dlt default 5)")
    p.add_argument("--dataset", default="thulium_dlt", help="dlt dataset (Postgres schema)")
    p.add_argument("--pipelines-dir", required=True, help="where dlt keeps its local state")
    p.add_argument("--pipeline-name", default="thulium_dlt_bench")
    p.add_argument("--credentials", help="Postgres URL (else DESTINATION__POSTGRES__CREDENTIALS)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = _parse(argv)
    # dlt reads its configuration from the environment; set it before dlt is imported.
    os.environ["EXTRACT__WORKERS"] = str(args.workers)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    if args.credentials:
        os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = args.credentials

    import dlt
    from dlt.sources.helpers import requests as dlt_requests

    imported = time.perf_counter()
    base = args.base_url.rstrip("/")
    auth = (args.user, args.password)
    ids = [f"{i:05d}" for i in range(1, args.campaigns + 1)]

    # dlt is typed as Any here (pyproject.toml), so its decorators are untyped.
    @dlt.resource(name="campaign_ids", selected=False)  # type: ignore[untyped-decorator]
    def campaign_ids() -> Iterator[str]:
        yield from ids

    @dlt.transformer(  # type: ignore[untyped-decorator]
        name="statuses",
        parallelized=True,
        primary_key=("campaign_id", "status_id"),
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
    )
    def statuses(campaign_id: str) -> list[dict[str, Any]]:
        response = dlt_requests.get(
            f"{base}/outbounds/{campaign_id}/statuses",
            auth=auth,
            headers={"Accept": "application/json"},
        )
        response.raise_for_status()
        return [{**status, "campaign_id": campaign_id} for status in response.json()]

    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination="postgres",
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )
    pipeline.run(campaign_ids | statuses)
    finished = time.perf_counter()

    trace = pipeline.last_trace
    assert trace is not None, "dlt keeps a trace of every run"
    steps = {
        step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
        for step in trace.steps
        if step.finished_at is not None
    }
    normalize = trace.last_normalize_info
    rows = dict(normalize.row_counts) if normalize is not None else {}
    print(
        json.dumps(
            {
                "dlt_version": dlt.__version__,
                "workers": args.workers,
                "import_seconds": round(imported - started, 3),
                "run_seconds": round(finished - imported, 3),
                "steps": steps,
                "rows": rows,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
