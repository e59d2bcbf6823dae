"""Helpers the tests import. Fixtures live in ``tests/conftest.py``; test modules import
nothing from it, nor from one another.

- ``cli``: the real CLI, run in this process or as a process of its own; the environment of a
  job pointed at the stand-in and a test database; the credentials the tests use
- ``data``: statuses for the stand-in to serve, and readers of what the database stores of
  them and of the runs, in the shape the API serves them for comparison
- ``databases``: the Postgres server of the test session, databases created and dropped on it,
  libpq URLs, the tables a sync writes
- ``scenario``: a fault on one campaign staged (campaigns synced, then served changed data
  while one misbehaves) and the checks that it failed alone or was ridden out
- ``history``: the invariant between ``statuses`` and ``status_history``, checked after every
  fault of the suite
- ``prometheus``: a real Pushgateway, read back over its HTTP API, and the samples of a
  textfile; ``promtool check metrics``
- ``reporting``: the reporting sample (four nights of syncs with renames, deletions, revivals,
  a failing and a dropped campaign), and the SQL blocks of a Markdown document
- ``snapshots``: numbered snapshots of campaigns, for the tests that interrupt a sync
- ``deploy``: the deployment kit's tools and files, and the program's own word on its
  settings and exit codes
- ``wheels``: the wheel, built and installed the way the Dockerfile does it
"""
