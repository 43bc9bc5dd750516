"""Per-request access to the service registry and the request's database session."""

from __future__ import annotations

from flask import current_app, g

from cases.store.services import Services


def services() -> Services:
    return current_app.extensions["baoxue"]


def db():
    """The request's session (opened on first use, closed at the end of the request)."""
    if "db_session" not in g:
        g.db_session = services().session_factory()
    return g.db_session
