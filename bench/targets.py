"""Fresh databases for one benchmark run (SQLite file, PostgreSQL, MariaDB)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("ACP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ACP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@contextmanager
def bench_database(dialect: str) -> Iterator[str]:
    """Yield the URL of an empty database, dropped afterwards."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="acp-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    admin_url = PG_URL if dialect == "postgresql" else MYSQL_URL
    name = f"acp_bench_{os.getpid()}_{secrets.token_hex(3)}"
    quote = '"' if dialect == "postgresql" else "`"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if dialect == "postgresql" else ""
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}"))
        admin.dispose()
