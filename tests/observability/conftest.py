"""Fixtures for the observability tests; the store fixtures are the contract suite's, so
``backlog()`` is checked on SQLite and PostgreSQL alike."""

from tests.contract.conftest import backend, make_store, pg_url, store

__all__ = ["backend", "make_store", "pg_url", "store"]
