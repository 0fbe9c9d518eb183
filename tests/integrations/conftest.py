from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture
def postgres_url() -> str:
    """The test server's URL; skips without one unless STAGEPLAN_REQUIRE_POSTGRES=1."""
    url = os.environ.get("STAGEPLAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("STAGEPLAN_REQUIRE_POSTGRES") == "1":
            pytest.fail("STAGEPLAN_REQUIRE_POSTGRES=1 but STAGEPLAN_TEST_POSTGRES_URL is unset")
        pytest.skip("set STAGEPLAN_TEST_POSTGRES_URL to a PostgreSQL URL to run this test")
    return url


@pytest.fixture
def study_name() -> str:
    """A unique study name, so tests sharing a database never meet."""
    return f"test-{uuid.uuid4().hex[:12]}"
