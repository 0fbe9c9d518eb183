"""New, uniquely named PostgreSQL databases for test runs and soaks.

A database that already has Optuna's schema hides every bug of a first start (several workers
creating the schema at once), so the project's tests and its fault soak each make a new one.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

__all__ = ["drop_postgres_database", "new_postgres_database"]


def _admin(server_url: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(server_url, connect_timeout=10)
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def new_postgres_database(server_url: str, *, prefix: str = "stageplan_test") -> str:
    """Create an empty database on ``server_url``'s server; return its URL.

    ``server_url`` is any database URL on that server whose user may create databases; the
    new database is named ``<prefix>_<12 hex digits>``.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_postgres_database(url: str, *, server_url: str) -> None:
    """Drop the database ``url`` names (made by :func:`new_postgres_database`), if it exists."""
    name = urlsplit(url).path.lstrip("/")
    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
