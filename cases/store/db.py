"""Engines, sessions, schema creation and migrations.

SQLite (one file, the default) runs in WAL mode with a 30 s busy timeout and foreign keys on, so
several threads and processes (web workers, the Huey consumer) can share it. PostgreSQL is used
when ``DATABASE_URL`` says so; ``postgresql://`` URLs are served by psycopg2 unless psycopg 3 is
installed. A PostgreSQL schema can be chosen in the URL: ``?options=-csearch_path%3Dmy_schema``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from cases.store.models import Base
from forms.errors import BaoxueError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"
SQLITE_TIMEOUT_S = 30


class DatabaseUnavailable(BaoxueError):
    """The database URL is wrong or the database cannot be reached."""

    code = "database_unavailable"
    http_status = 503


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; pick an installed PostgreSQL driver for bare ``postgresql://``."""
    try:
        u = make_url(url)
    except ArgumentError as e:
        raise DatabaseUnavailable(f"数据库地址无效：{e}") from e
    if u.drivername in ("postgres", "postgresql"):
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        u = u.set(drivername=f"postgresql+{driver}")
    return u


def make_engine(url: str | URL, **kwargs) -> Engine:
    """An engine configured for concurrent use (see module doc). Extra kwargs go to create_engine."""
    u = normalise_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_TIMEOUT_S, "check_same_thread": False}
        engine = create_engine(u, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(u, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    # Transactions stay in pysqlite's default mode (BEGIN only before a write), so a transaction
    # starts with its first write and waits for the lock instead of failing on a stale read.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (handy for returning rows to the web layer),
    checking foreign keys, text lengths and integer ranges before each flush
    (``cases.store.integrity``)."""
    from cases.store.integrity import install

    factory = sessionmaker(bind=engine, expire_on_commit=False)
    install(factory)
    return factory


def create_schema(engine: Engine) -> None:
    """Create every table from the models (tests; production uses ``upgrade_to_head``)."""
    from cases.store.models import load_all_models

    load_all_models()
    Base.metadata.create_all(engine)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | URL | None = None):
    """The Alembic config of this project, pointed at ``url`` when given."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        text = normalise_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return cfg


def upgrade_to_head(url: str | URL) -> None:
    """Bring the database at ``url`` to the newest migration (used by the run script)."""
    from alembic import command

    log.info("migrating database to head")
    command.upgrade(alembic_config(url), "head")
