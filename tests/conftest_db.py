"""Database fixtures (a pytest plugin: ``pytest_plugins = ["tests.conftest_db"]``).

- ``db_url``: a fresh, empty database per test. SQLite: a file in ``tmp_path``. When
  ``DATABASE_URL`` is set (PostgreSQL): a unique schema per test, selected through the URL
  (``?options=-csearch_path=...``) so every engine made from the URL lands in it, dropped after
  the test. Tests therefore also run in parallel on PostgreSQL (``pytest -n 2``).
- ``engine``: an engine on ``db_url`` with the schema created from the models.
- ``session_factory`` and ``session``: sessions on that engine (``session`` is closed after).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from cases.store.db import create_schema, make_engine, make_session_factory, normalise_url

log = logging.getLogger(__name__)


def _schema_name(request) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    test = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:20]
    return f"t_{worker}_{test}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db_url(request, tmp_path) -> Iterator[str]:
    """URL of a fresh empty database for this test (see module doc)."""
    base = os.environ.get("DATABASE_URL")
    if not base or normalise_url(base).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    schema = _schema_name(request)
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection left open by the test must not hang the suite: give up after 10 s.
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url):
    """An engine on the test database, with every table created from the models."""
    eng = make_engine(db_url)
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine):
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory):
    """A session on the fresh test database (rolled back and closed after the test)."""
    s = session_factory()
    yield s
    s.rollback()
    s.close()
