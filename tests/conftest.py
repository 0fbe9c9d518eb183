"""Fixtures shared by the test packages: PostgreSQL databases created fresh for each run.

A database that already has Optuna's schema hides every bug of a first start (several workers
creating the schema at once failed only on a new database), so no test uses the server's
database as it is: ``postgres_url`` is a database created for this test session and dropped
after it, ``fresh_postgres_url`` one created for a single test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest


def _server_url() -> str:
    """The test server's URL; skips without one unless STAGEPLAN_REQUIRE_POSTGRES=1."""
    url = os.environ.get("STAGEPLAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("STAGEPLAN_REQUIRE_POSTGRES") == "1":
            pytest.fail("STAGEPLAN_REQUIRE_POSTGRES=1 but STAGEPLAN_TEST_POSTGRES_URL is unset")
        pytest.skip("set STAGEPLAN_TEST_POSTGRES_URL to a PostgreSQL URL to run this test")
    return url


def _admin(url: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def _new_database() -> Iterator[object]:
    """Make new, uniquely named databases on the test server; drop them all at the end."""
    server = _server_url()
    made: list[str] = []

    def make() -> str:
        name = f"stageplan_test_{uuid.uuid4().hex[:12]}"
        _admin(server, f'CREATE DATABASE "{name}"')
        made.append(name)
        parts = urlsplit(server)
        return urlunsplit(parts._replace(path=f"/{name}"))

    yield make
    for name in made:
        _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(_new_database: object) -> str:
    """A PostgreSQL database created empty for this test session (dropped after it)."""
    make = _new_database
    assert callable(make)
    url: str = make()
    return url


@pytest.fixture
def fresh_postgres_url(_new_database: object) -> str:
    """A PostgreSQL database created empty for one test (dropped after the session)."""
    make = _new_database
    assert callable(make)
    url: str = make()
    return url


@pytest.fixture
def study_name() -> str:
    """A unique study name, so tests sharing a database never meet."""
    return f"test-{uuid.uuid4().hex[:12]}"
