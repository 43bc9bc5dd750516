"""Logging in, and the one access policy enforced for every route (API and HTML pages).

How a route declares what it does
---------------------------------
Every view names its action (``cases.accounts.policy.ACTIONS``) right under its route decorator::

    @blp.route("/cases/<int:case_id>")
    @requires("case.read")
    def get_case(case_id): ...

    @pages.route("/forms/<code>", methods=["GET", "POST"])
    @requires(GET="forms.read", POST="document.issue")
    def fill_form(code): ...

``@public`` marks the few routes anyone may reach (health, OpenAPI document, login page).

What happens on every request (``_gate``, one ``before_request`` hook)
----------------------------------------------------------------------
1. An endpoint that declares no action is refused (403) — fail closed: a new route that forgets
   its declaration serves nobody, and ``tests/test_permissions.py`` names it.
2. Authentication: ``Authorization: Bearer <token>`` (API tokens, ``cases.accounts.service``),
   otherwise the browser session (Flask-Login). Anonymous requests get 401 (JSON body
   ``{"error", "message", "fields"}``) under ``/api/``, a redirect to the login page elsewhere.
3. ``X-Baoxue-Org: <id>`` narrows the user to a node of their own subtree ("work in this
   sub-node"); any other node is refused (403). It never widens anything.
4. CSRF (Flask-WTF) is checked on every state-changing request made with a browser session;
   bearer-token requests are exempt (no cookie, no CSRF).
5. A user none of whose roles grants the action anywhere is refused (403).

Inside the view, the record touched is checked against the same action — ``get_scoped(Model, id,
"名称")`` (the row or 404, then ``authorize_row``), ``authorize_row(row)``, ``authorize_org(org_id)``
— and lists are filtered with ``visible(Model)``; ``web.api`` keeps short names of its own for the
last two (``check_scope``, ``scoped``).

The current user: ``principal()`` (the policy's ``Principal``: user id, username, roles, node),
``account()`` (the ``User`` row), ``work_org()`` (the node they work in; None for the whole
installation), ``can(action, target)`` for menus and buttons.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import flask_login
from flask import Flask, current_app, g, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from cases.accounts import policy
from cases.accounts import service as accounts
from cases.accounts.models import User
from cases.accounts.policy import ACTIONS, PUBLIC, Principal, Target
from cases.accounts.scope import org_target, target_of
from cases.accounts.scope import visible as visible_condition
from cases.engine.models import Referral
from cases.store.audit import ACTOR, record_export, record_unmask
from cases.store.models import Case, Document, Job, Org, Pupil, Upload
from forms.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from web.context import db

log = logging.getLogger(__name__)

ACTION_ATTR = "baoxue_actions"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints registered by libraries, not by us: the OpenAPI document of flask-smorest.
LIBRARY_PUBLIC_ENDPOINTS = frozenset({"api-docs.openapi_json"})

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


# ---- declaring actions ------------------------------------------------------------------------------

def requires(action: str | None = None, **per_method: str) -> Callable:
    """Declare the action of a view: ``@requires("case.read")`` for every method, or one per
    method: ``@requires(GET="forms.read", POST="document.issue")``. Unknown actions fail at import."""
    table = {m.upper(): a for m, a in per_method.items()}
    if action is not None:
        table["*"] = action
    for a in table.values():
        if a != PUBLIC and a not in ACTIONS:
            raise ValueError(f"unknown action {a!r}; add it to cases.accounts.policy.ACTIONS")
    if not table:
        raise ValueError("requires() needs an action")

    def decorate(view):
        setattr(view, ACTION_ATTR, table)
        return view

    return decorate


def public(view):
    """Anyone may reach this view, logged in or not."""
    return requires(PUBLIC)(view)


def declared_action(endpoint: str, method: str, app: Flask | None = None) -> str | None:
    """The action ``endpoint`` declares for ``method`` (None: nothing declared)."""
    if endpoint in LIBRARY_PUBLIC_ENDPOINTS:
        return PUBLIC
    view = (app or current_app).view_functions.get(endpoint)
    table = getattr(view, ACTION_ATTR, None) or {}
    return table.get(method.upper()) or table.get("GET" if method.upper() == "HEAD" else "") or table.get("*")


# ---- sessions ---------------------------------------------------------------------------------------

class SessionUser(flask_login.UserMixin):
    """Flask-Login's view of a user. The id carries ``auth_epoch``: changing the password or
    disabling the account ends every session at once."""

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.auth_epoch}"


def load_session_user(value: str) -> SessionUser | None:
    uid, _, epoch = (value or "").partition(":")
    if not uid.isdigit() or not epoch.isdigit():
        return None
    user = db().get(User, int(uid))
    if user is None or user.disabled or user.auth_epoch != int(epoch):
        return None
    return SessionUser(user)


def login_session(user: User) -> None:
    """Start a browser session for ``user`` (after the password and second factor were checked)."""
    session.clear()
    flask_login.login_user(SessionUser(user))
    session.permanent = True  # idle timeout: PERMANENT_SESSION_LIFETIME, refreshed on each request
    session["login_at"] = int(time.time())


def logout_session() -> None:
    flask_login.logout_user()
    session.clear()


def _authenticate() -> tuple[User | None, str | None]:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization 请求头应为“Bearer <令牌>”")
        user = accounts.user_for_token(db(), token.strip())
        if user is None:
            raise Unauthorized("令牌无效、已过期或已吊销，或账号已停用")
        return user, "token"
    current = flask_login.current_user
    if current is not None and current.is_authenticated:
        max_age = current_app.config["SESSION_MAX_HOURS"] * 3600
        if time.time() - session.get("login_at", 0) > max_age:
            logout_session()
            return None, None
        return current.user, "session"
    return None, None


def _attach(user: User, method: str, action: str) -> None:
    work_org = None
    value = request.headers.get("X-Baoxue-Org")
    if value:
        work_org = db().get(Org, int(value)) if value.isdigit() else None
        if work_org is None:
            raise Forbidden(f"X-Baoxue-Org 指定的机构 {value} 不存在")
    g.account = user
    g.auth_method = method
    g.principal = accounts.principal_of(db(), user, work_org)
    g.action = action
    db().info[ACTOR] = (user.id, user.username)


def gate():
    """The before_request hook described in the module doc."""
    if request.endpoint is None:  # no route: let routing answer 404/405
        return None
    action = declared_action(request.endpoint, request.method)
    if action is None:
        log.error("endpoint %s declares no action for %s: refused", request.endpoint, request.method)
        raise Forbidden("此接口未声明访问权限，已拒绝")
    user, method = _authenticate()
    if action == PUBLIC:
        if method != "token" and request.method not in SAFE_METHODS:
            csrf.protect()
        if user is not None:
            g.account = user
        return None
    if user is None:
        raise Unauthorized("请先登录")
    _attach(user, method, action)
    if method == "session" and request.method not in SAFE_METHODS:
        csrf.protect()
    if not policy.can(g.principal, action):
        raise Forbidden(f"您的角色无权{ACTIONS[action].label}", fields={}, action=action)
    _authorize_path_records()
    return None


# Path parameters that name a record: the record must exist (404) and be within reach for the
# route's action (403) before the view runs — before its body is even validated, so that a request
# about a record out of reach learns nothing from a 422, and a view cannot forget the check.
PATH_RECORDS: dict[str, tuple[type, str]] = {
    "case_id": (Case, "案件"), "doc_id": (Document, "文书"), "pupil_id": (Pupil, "学生"),
    "upload_id": (Upload, "上传件"), "job_id": (Job, "任务"), "referral_id": (Referral, "部门函件"),
}
PATH_ORGS: dict[str, tuple[type | None, str]] = {"org_id": (None, "机构"), "user_id": (User, "用户")}


def _authorize_path_records() -> None:
    for name, value in (request.view_args or {}).items():
        if name in PATH_RECORDS:
            model, label = PATH_RECORDS[name]
            get_scoped(model, value, label)
        elif name in PATH_ORGS:
            model, label = PATH_ORGS[name]
            row = db().get(model or Org, value)
            if row is None:
                raise NotFound(f"{label} {value} 不存在")
            authorize_org(row.id if model is None else row.org_id)


# ---- helpers for views ------------------------------------------------------------------------------

def principal() -> Principal:
    """The logged-in user as the policy sees them (raises 401 outside an authenticated request)."""
    p = g.get("principal")
    if p is None:
        raise Unauthorized("请先登录")
    return p


def account() -> User:
    """The logged-in user's row."""
    principal()
    return g.account


def current_action() -> str:
    return g.action


def work_org() -> Org | None:
    """The node the user works in (their own, or the one chosen with X-Baoxue-Org); None for an
    account of the whole installation."""
    p = principal()
    return db().get(Org, p.org_id) if p.org_id is not None else None


def can(action: str, target: Target | None = None) -> bool:
    """May the current user ``action`` ``target`` (for menus and buttons; never raises)."""
    p = g.get("principal")
    return p is not None and policy.can(p, action, target)


def authorize(target: Target | None, action: str | None = None) -> None:
    """Refuse (403) unless the current user may ``action`` (default: the route's) ``target``."""
    action = action or current_action()
    p = principal()
    if not policy.can(p, action, target):
        if not policy.can(p, action):
            raise Forbidden(f"您的角色无权{ACTIONS[action].label}", action=action)
        raise Forbidden("该记录不在您的管辖范围内", action=action)


def authorize_org(org_id: int | None, action: str | None = None) -> None:
    """The organisation ``org_id`` (None: the root) must be within reach for ``action``."""
    authorize(org_target(db(), org_id), action)


def authorize_row(row, action: str | None = None) -> None:
    """``row`` (a case, document, pupil, upload, job...) must be within reach for ``action``."""
    authorize(target_of(db(), row), action)


def get_scoped(model, key, what: str, action: str | None = None):
    """The row ``key`` of ``model`` if it exists (404 naming ``what``) and the user may ``action``
    it (default: the route's action; 403 otherwise) — for API routes and pages alike."""
    row = db().get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} 不存在")
    authorize_row(row, action)
    return row


def visible(model, action: str | None = None):
    """SQL condition for the rows of ``model`` the current user may ``action`` (None: all)."""
    return visible_condition(principal(), action or current_action(), model)


def unmask_reason() -> str:
    """The reason given for showing full ID numbers (``reason`` in the query or JSON body), after
    checking the ``pupil.unmask`` permission; 422 without a reason."""
    if not policy.can(principal(), "pupil.unmask"):
        raise Forbidden(f"您的角色无权{ACTIONS['pupil.unmask'].label}", action="pupil.unmask")
    reason = request.args.get("reason") or request.form.get("reason")
    if not reason and request.is_json:
        body = request.get_json(silent=True)
        reason = body.get("reason") if isinstance(body, dict) else None
    reason = str(reason or "").strip()
    if len(reason) < 2:
        raise ValidationFailed("查看完整身份证号须说明理由", fields={"reason": "必填：查看完整身份证号的理由"})
    return reason[:200]


def log_unmask(org: Org | int | None, target: str, reason: str, records: int = 1) -> None:
    """Record an unmasking with its reason (the caller commits)."""
    record_unmask(db(), who=principal().username, org=org, target=target, reason=reason, records=records)


def log_export(org: Org | int | None, what: str, records: int, fmt: str, scope: dict | None = None,
               unmasked_reason: str | None = None) -> None:
    """Record an export (who, scope, how many records, format); every export route calls this
    before answering (the caller commits)."""
    record_export(db(), who=principal().username, org=org, what=what, records=records, fmt=fmt,
                  scope=scope, unmasked_reason=unmasked_reason)


# ---- wiring ----------------------------------------------------------------------------------------

def hasher():
    """The password hasher configured for this app."""
    return current_app.extensions["baoxue_hasher"]
