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

import pytest


def _server_url() -> str:
    """The test server's URL; skips without one unless STAGEPLAN_REQUIRE_POSTGRES=1."""
    url = os.environ.get("STAGEPLAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("STAGEPLAN_REQUIRE_POSTGRES") == "1":
            pytest.fail("STAGEPLAN_REQUIRE_POSTGRES=1 but STAGEPLAN_TEST_POSTGRES_URL is unset")
        pytest.skip("set STAGEPLAN_TEST_POSTGRES_URL to a PostgreSQL URL to run this test")
    return url


@pytest.fixture(scope="session")
def _new_database() -> Iterator[object]:
    """Make new, uniquely named databases on the test server; drop them all at the end."""
    from stageplan.integrations.optuna._databases import (
        drop_postgres_database,
        new_postgres_database,
    )

    server = _server_url()
    made: list[str] = []

    def make() -> str:
        made.append(new_postgres_database(server))
        return made[-1]

    yield make
    for url in made:
        drop_postgres_database(url, server_url=server)


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
