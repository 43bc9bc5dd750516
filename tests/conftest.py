"""Shared fixtures (flaskr style): an app with a fresh database and output folder per test."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.conftest_db", "tests.conftest_browser", "tests.conftest_scans"]


def pytest_collection_modifyitems(config, items):
    # Every test that touches the database is marked ``db`` so the PostgreSQL pass can select it.
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
        # Browser tests (real Chromium against a live server, tests/conftest_browser.py).
        if "web" in getattr(item, "fixturenames", ()) or "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


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
        "PASSWORD_HASH": "cheap",
        # one warm LibreOffice per test process (pytest-xdist already uses both cores)
        "PDF_WORKERS": 1,
        # rendered in the test's own process (tests/test_render_pool.py runs the renderer pool)
        "RENDER_PROCESSES": 0,
    })
    yield app
    app.extensions["baoxue_engine"].dispose()


ROOT_USER = "root"


@pytest.fixture
def make_user(app):
    """``make_user(username, roles, org_id=None, password=...)`` -> (user id, bearer token)."""
    from cases.accounts import service as accounts
    from cases.store.db import session_scope

    def make(username: str, roles, org_id: int | None = None, password: str = "Test-passw0rd"):
        with session_scope(app.extensions["baoxue"].session_factory) as s:
            user = accounts.create_user(s, username=username, display_name=username, org_id=org_id,
                                        roles=list(roles), password=password,
                                        hasher=app.extensions["baoxue_hasher"], by="test")
            new = accounts.create_token(s, user, name="test", expires_days=None, by="test")
            return user.id, new.token

    return make


def client_for(app, token: str | None):
    """A test client sending ``Authorization: Bearer <token>`` on every request (None: anonymous)."""
    c = app.test_client()
    if token:
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


@pytest.fixture
def root_token(make_user):
    """A token of ``root``: an account of the whole installation holding every role."""
    from cases.accounts.policy import ROLES

    return make_user(ROOT_USER, list(ROLES))[1]


@pytest.fixture
def client(app, root_token):
    """A client logged in (bearer token) as ``root``, who may do everything everywhere."""
    return client_for(app, root_token)


@pytest.fixture
def anon_client(app):
    """A client without credentials."""
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
