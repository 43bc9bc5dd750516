"""Accounts API (/api/v1): who am I, the role catalogue, personal tokens, user administration,
the audit log and its verification.

* ``GET /me``: the current user, their node, roles and every action they may perform.
* ``GET /roles``: roles and actions with Chinese labels (for the web application's menus).
* ``GET|POST /tokens``, ``POST /tokens/<id>/revoke``: one's own API tokens (an administrator may
  also revoke the tokens of users in their scope).
* ``GET|POST /users``, ``GET /users/<id>``, ``POST /users/<id>/disable|enable|roles``: accounts of
  the administrator's node and below. Users are never deleted.
* ``GET /audit``: audit entries of the caller's scope; ``GET /audit/verify``: check the chain.
"""

from __future__ import annotations

from pathlib import Path

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint
from sqlalchemy import or_, select

from cases.accounts import policy
from cases.accounts import service as accounts
from cases.accounts.models import ApiToken, User
from cases.store import audit as auditlog
from cases.store.models import AuditLog, Org
from forms.errors import NotFound, ValidationFailed
from web.auth.core import account, authorize_org, hasher, principal, requires, visible
from web.context import db
from web.openapi import PAGE_QUERY, query
from web.paging import int_arg, paged

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="账号、角色、令牌与审计日志")


class TokenIn(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=80))
    expires_days = ma.fields.Integer(load_default=None, allow_none=True,
                                     validate=ma.validate.Range(min=1, max=3650))


class UserIn(ma.Schema):
    username = ma.fields.String(required=True)
    display_name = ma.fields.String(load_default="")
    org_id = ma.fields.Integer(load_default=None, allow_none=True)
    roles = ma.fields.List(ma.fields.String(), required=True)
    password = ma.fields.String(required=True, load_only=True)


class RolesIn(ma.Schema):
    roles = ma.fields.List(ma.fields.String(), required=True)


def _me_json() -> dict:
    p = principal()
    user = account()
    org = db().get(Org, p.org_id) if p.org_id is not None else None
    return {**accounts.user_json(user),
            "work_org": {"id": org.id, "name": org.name, "kind": org.kind, "path": org.path} if org else None,
            "actions": policy.allowed_actions(p)}


@blp.route("/me")
@requires("account.self")
def me():
    """The logged-in user: node, roles, and every action their roles allow somewhere."""
    return _me_json()


@blp.route("/roles")
@requires("account.self")
def roles():
    """Roles (with what each grants, and in which scope) and actions, with Chinese labels."""
    return {"roles": [{"code": r.code, "label": r.label, "description": r.description,
                       "totp_offered": r.totp_offered,
                       "grants": {a: s.value for a, s in {**policy.BASELINE, **r.grants}.items()}}
                      for r in policy.ROLES.values()],
            "actions": [{"code": a.code, "label": a.label, "write": a.write} for a in policy.ACTIONS.values()]}


# ---- tokens -------------------------------------------------------------------------------------------

@blp.route("/tokens")
@requires("account.self")
@query(*PAGE_QUERY)
def list_tokens():
    """The caller's own tokens (never the token itself: it was shown once)."""
    q = select(ApiToken).where(ApiToken.user_id == account().id).order_by(ApiToken.id)
    return paged(db(), q, accounts.token_json)


@blp.route("/tokens", methods=["POST"])
@requires("account.self")
@blp.arguments(TokenIn)
def create_token(body):
    """A new token for the caller: ``{"name", "expires_days"?}``. The answer holds the token; it is
    not shown again."""
    user = account()
    new = accounts.create_token(db(), user, name=body["name"], expires_days=body["expires_days"], by=user.username)
    db().commit()
    return {**accounts.token_json(new.row), "token": new.token}, 201


@blp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@requires("account.self")
def revoke_token(token_id: int):
    """Revoke one's own token, or (administrators) a token of a user in scope. Works at once."""
    row = db().get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"令牌 {token_id} 不存在")
    if row.user_id != account().id:
        authorize_org(row.user.org_id, "user.manage")
        accounts.check_manageable(principal(), row.user)
    accounts.revoke_token(db(), token_id, by=principal().username)
    db().commit()
    return accounts.token_json(row)


# ---- users --------------------------------------------------------------------------------------------

def _user(user_id: int, action: str) -> User:
    user = db().get(User, user_id)
    if user is None:
        raise NotFound(f"用户 {user_id} 不存在")
    authorize_org(user.org_id, action)
    if action == "user.manage":
        accounts.check_manageable(principal(), user)
    return user


@blp.route("/users")
@requires("user.read")
@query(("q", "str", False, "用户名或姓名的一部分"), ("org_id", "int", False, "机构"), *PAGE_QUERY)
def list_users():
    """Accounts at the administrator's node and below (``?q=`` name, ``?org_id=``)."""
    q = select(User).join(Org, Org.id == User.org_id, isouter=True).order_by(User.id)
    p = principal()
    if p.org_path is not None:
        q = q.where(Org.path.startswith(p.org_path))
    if request.args.get("q"):
        q = q.where(or_(User.username.contains(request.args["q"]), User.display_name.contains(request.args["q"])))
    if "org_id" in request.args:
        q = q.where(User.org_id == int_arg("org_id"))
    return paged(db(), q, accounts.user_json)


@blp.route("/users", methods=["POST"])
@requires("user.manage")
@blp.arguments(UserIn)
def create_user(body):
    """Open an account at the administrator's node or below (the administrator role only below)."""
    user = accounts.create_user(db(), username=body["username"], display_name=body["display_name"],
                                org_id=body["org_id"], roles=body["roles"], password=body["password"],
                                hasher=hasher(), by=principal().username, by_principal=principal())
    db().commit()
    return accounts.user_json(user), 201


@blp.route("/users/<int:user_id>")
@requires("user.read")
def get_user(user_id: int):
    return accounts.user_json(_user(user_id, "user.read"))


@blp.route("/users/<int:user_id>/disable", methods=["POST"])
@requires("user.manage")
def disable_user(user_id: int):
    """Disable an account: its sessions and tokens stop working at once; nothing is deleted."""
    user = _user(user_id, "user.manage")
    if user.id == account().id:
        raise ValidationFailed("不能停用自己的账号", fields={"user_id": "本人"})
    accounts.set_disabled(db(), user, True, by=principal().username)
    db().commit()
    return accounts.user_json(user)


@blp.route("/users/<int:user_id>/enable", methods=["POST"])
@requires("user.manage")
def enable_user(user_id: int):
    user = _user(user_id, "user.manage")
    accounts.set_disabled(db(), user, False, by=principal().username)
    db().commit()
    return accounts.user_json(user)


@blp.route("/users/<int:user_id>/roles", methods=["POST"])
@requires("user.manage")
@blp.arguments(RolesIn)
def set_user_roles(body, user_id: int):
    """Replace a user's roles (``{"roles": [...]}``); their sessions end."""
    user = _user(user_id, "user.manage")
    accounts.set_roles(db(), user, body["roles"], by=principal().username, by_principal=principal())
    db().commit()
    return accounts.user_json(user)


# ---- audit log ----------------------------------------------------------------------------------------

def _audit_json(e: AuditLog) -> dict:
    return {"seq": e.seq, "id": e.id, "at": e.at, "user_id": e.user_id, "who": e.who, "org_id": e.org_id,
            "action": e.action, "target": e.target, "before": e.before, "after": e.after, "hash": e.hash}


@blp.route("/audit")
@requires("audit.read")
@query(("target", "str", False, "对象"), ("action", "str", False, "操作"), ("who", "str", False, "用户名"), *PAGE_QUERY)
def audit_entries():
    """Audit entries of the caller's scope, newest first: ``?target=``, ``?action=``, ``?who=``,
    ``?limit=`` (≤ 500), ``?offset=``."""
    q = select(AuditLog).order_by(AuditLog.seq.desc())
    cond = visible(AuditLog)
    if cond is not None:
        q = q.where(cond)
    for key in ("target", "action", "who"):
        if request.args.get(key):
            q = q.where(getattr(AuditLog, key) == request.args[key])
    return paged(db(), q, _audit_json)


@blp.route("/audit/verify")
@requires("audit.read")
def audit_verify():
    """Walk the whole chain and the anchors: ``ok``, and the first broken entry if any."""
    path = current_app.config.get("AUDIT_ANCHOR_FILE")
    return auditlog.verify(db(), anchor_file=Path(path) if path else None).as_json()
