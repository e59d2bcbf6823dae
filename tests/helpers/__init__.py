"""Helpers the tests import. Fixtures live in ``tests/conftest.py``; test modules import
nothing from it, nor from one another.

- ``snapshots``: numbered snapshots of campaigns, for the tests that interrupt a sync
- ``deploy``: the deployment kit's tools, files and the program's own word on its settings
- ``wheels``: the wheel, built and installed the way the Dockerfile does it
"""
