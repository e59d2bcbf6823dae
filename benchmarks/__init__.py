"""thulium-etl benchmarks: the real CLI against the Thulium stand-in and a real Postgres.

``python -m benchmarks`` (``make bench``) runs the workloads of ``benchmarks/README.md``, one
module each (:mod:`benchmarks.w1`, :mod:`~benchmarks.wc`, :mod:`~benchmarks.w2`,
:mod:`~benchmarks.w3`, :mod:`~benchmarks.w4`, and :mod:`~benchmarks.w2_profile`), prints
every figure against its target (:mod:`benchmarks.targets`, each declared once) and writes
them to ``.bench/results.json``; ``python -m benchmarks.render`` puts a run's tables into the
README. Importing this package loads nothing: the helper programs the jobs run under
(:mod:`benchmarks.peak_rss`, :mod:`benchmarks.sql_timings`) must not weigh on them.
"""
