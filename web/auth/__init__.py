"""Authentication and the one access policy for every route: see ``web.auth.core`` for how a
route declares its action and what the gate checks on every request. This package re-exports
the names views use (``requires``, ``public``, ``principal``, ``authorize_row``...) and wires the
extensions (``init_auth``)."""

from __future__ import annotations

import flask_login
from flask import Flask
from flask_wtf.csrf import CSRFError

from cases.accounts import service as accounts
from cases.store.audit import ANCHOR_FILE
from web.auth.core import (
    ACTION_ATTR,
    LIBRARY_PUBLIC_ENDPOINTS,
    SessionUser,
    account,
    authorize,
    authorize_org,
    authorize_row,
    can,
    csrf,
    current_action,
    declared_action,
    gate,
    get_scoped,
    hasher,
    limiter,
    load_session_user,
    log_export,
    log_unmask,
    login_session,
    logout_session,
    principal,
    public,
    requires,
    unmask_reason,
    visible,
    work_org,
)

__all__ = ["ACTION_ATTR", "LIBRARY_PUBLIC_ENDPOINTS", "SessionUser", "account", "authorize", "authorize_org",
           "authorize_row", "can", "current_action", "declared_action", "get_scoped", "hasher", "init_auth",
           "log_export", "log_unmask", "login_session", "logout_session", "principal", "public", "requires",
           "unmask_reason", "visible", "work_org"]


def _hasher(app: Flask):
    return accounts.cheap_hasher() if app.config.get("PASSWORD_HASH") == "cheap" else accounts.default_hasher()


def init_auth(app: Flask) -> None:
    """Sessions, CSRF, login throttling, the gate, the account pages and the operator CLI."""
    from web.auth import cli, pages
    from web.errors import error_response

    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked by the gate, only for browser sessions
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.extensions["baoxue_hasher"] = _hasher(app)

    manager = flask_login.LoginManager()
    manager.session_protection = "strong"
    manager.user_loader(load_session_user)
    manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    app.before_request(gate)

    @app.errorhandler(CSRFError)
    def _csrf_failed(e):
        return error_response(400, {"error": "csrf_failed", "fields": {},
                                    "message": "页面已过期或缺少安全令牌，请刷新页面后重试"})

    services = app.extensions["baoxue"]
    if app.config.get("AUDIT_ANCHOR_FILE"):
        services.session_factory.kw.setdefault("info", {})[ANCHOR_FILE] = str(app.config["AUDIT_ANCHOR_FILE"])
    app.register_blueprint(pages.bp)
    cli.register(app)
