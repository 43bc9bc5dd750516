"""Shared fixtures (flaskr style): an app with a fresh database and output folder per test."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.conftest_db"]


def pytest_collection_modifyitems(config, items):
    # Every test that touches the database is marked ``db`` so the PostgreSQL pass can select it.
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture
def app(db_url, tmp_path):
    from app import create_app

    app = create_app({
        "TESTING": True,
        "HUEY_IMMEDIATE": True,
        "REDIS_URL": None,
        "DATABASE_URL": db_url,
        "OUTPUT_DIR": tmp_path / "output",
        "CREATE_SCHEMA": True,
        "QR_HMAC_SECRET": "test-qr-secret",
        "SECRET_KEY": "test",
        # one warm LibreOffice per test process (pytest-xdist already uses both cores)
        "PDF_WORKERS": 1,
    })
    yield app
    app.extensions["baoxue_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return app.extensions["baoxue"]


@pytest.fixture
def app_session(app):
    s = app.extensions["baoxue"].session_factory()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def demo(app, app_session):
    """The synthetic demo county loaded into the app's database."""
    from cases.demo import load_demo

    summary = load_demo(app_session)
    app_session.commit()
    return summary
