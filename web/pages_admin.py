"""Administration pages (issue 11 item 9): the accounts of one's subtree (open, disable, enable —
never deleted), the holiday tables (upload a year's statutory arrangement), the region profiles
(which county uses which, and checking a profile file before it is installed) and the status of
the QR signing keys. The same service calls and checks as the API (``web.auth.api``)."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from cases.accounts import service as accounts
from cases.accounts.models import User
from cases.accounts.policy import ROLES, may_grant
from cases.engine import casework as engine
from cases.engine import installed, profiles
from cases.engine.models import HolidayTableRow
from cases.store.models import Org
from forms.errors import BaoxueError, Forbidden, NotFound, ValidationFailed
from web.auth import account, authorize_org, can, hasher, principal, requires, visible
from web.context import db
from web.context import services as _services

bp = Blueprint("adminpages", __name__, url_prefix="/admin")


def _users() -> list[User]:
    q = select(User).join(Org, Org.id == User.org_id, isouter=True).order_by(Org.path, User.username)
    p = principal()
    if p.org_path is not None:
        q = q.where(Org.path.startswith(p.org_path))
    return list(db().scalars(q))


def _orgs() -> list[Org]:
    return _orgs_for("user.manage")


def _orgs_for(action: str) -> list[Org]:
    q = select(Org).order_by(Org.path)
    cond = visible(Org, action)
    if cond is not None:
        q = q.where(cond)
    return list(db().scalars(q))


def _json_upload(what: str) -> dict:
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationFailed(f"请选择{what}文件（JSON）", fields={"file": "必填"})
    try:
        data = json.loads(f.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationFailed(f"“{f.filename}”不是有效的 JSON 文件：{e}", fields={"file": "JSON 格式错误"}) from None
    if not isinstance(data, dict):
        raise ValidationFailed(f"“{f.filename}”应为 JSON 对象", fields={"file": "应为对象"})
    return data


def _page(**extra):
    session = db()
    p = principal()
    users = _users()
    orgs = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_({u.org_id for u in users if u.org_id})))}
    keys = _services().qr_keys
    counties = list(session.scalars(select(Org).where(Org.kind == "county").order_by(Org.path)))
    if p.org_path is not None:
        counties = [c for c in counties if c.path.startswith(p.org_path) or p.org_path.startswith(c.path)]
    # Only the roles this administrator may give (their level and below; no administrators but
    # from the installation's administrator): ``policy.may_grant``.
    roles = [(code, r.label) for code, r in ROLES.items() if may_grant(p, code)]
    may_install = can("profile.install")
    install_scopes = [o for o in _orgs_for("profile.install") if o.kind in ("province", "prefecture", "county")] \
        if may_install else []
    rows = installed.listing(session)
    owner_ids = {r.org_id for r in rows if r.org_id}
    owners = {o.id: o.name for o in session.scalars(select(Org).where(Org.id.in_(owner_ids)))}
    return render_template(
        "admin/index.html", users=users, orgs=orgs, me=account(), roles=roles, assignable=_orgs(),
        manageable={u.id for u in users if accounts.manage_refusal(p, u) is None},
        may_manage=can("user.manage"), system=can("system.admin"),
        holidays=list(session.scalars(select(HolidayTableRow).order_by(HolidayTableRow.year.desc()))),
        profiles={n: profiles.load_profile(n).title for n in profiles.available_profiles()},
        default_profile=profiles.DEFAULT_PROFILE, counties=counties, may_install=may_install,
        install_scopes=install_scopes,
        install_counties=[c for c in counties if c.id in {o.id for o in install_scopes}],
        installed_rows=rows, owners=owners, shipped=profiles.list_profiles(),
        keys={"current": keys.current_id, "retired": [k for k, (_s, old) in keys.by_id().items() if old],
              "refused": len(keys.refused), "env": current_app.config.get("ENV_NAME") or "",
              "dev": keys.current == current_app.config.get("QR_DEV_SECRET")},
        **{"created": None, "checked": None, "loaded": None, "form": {}, "errors": {}, "install": None,
           **extra})


@bp.route("")
@requires("user.read")
def index():
    return _page(done=request.args.get("done"))


@bp.route("/users", methods=["POST"])
@requires("user.manage")
def create_user():
    f = request.form
    org_id = f.get("org_id") or ""
    roles = f.getlist("roles")
    form = {"username": f.get("username", ""), "display_name": f.get("display_name", ""), "org_id": org_id,
            "roles": roles}
    if org_id and not org_id.isdigit():
        raise ValidationFailed("单位应为编号", fields={"org_id": "应为编号"})
    authorize_org(int(org_id) if org_id else None)
    try:
        user = accounts.create_user(db(), username=form["username"], display_name=form["display_name"],
                                    org_id=int(org_id) if org_id else None, roles=roles,
                                    password=f.get("password", ""), hasher=hasher(), by=principal().username,
                                    by_principal=principal())
    except ValidationFailed as e:
        db().rollback()
        return _page(form=form, errors=e.fields, message=e.message), 422
    except Forbidden as e:  # a role above the administrator's level: named on the form, nothing made
        db().rollback()
        return _page(form=form, errors=e.fields, message=e.message), 403
    db().commit()
    return redirect(url_for("adminpages.index", done=f"已开设账号 {user.username}") + "#users")


def _user(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        raise NotFound(f"用户 {user_id} 不存在")
    authorize_org(user.org_id, "user.manage")
    accounts.check_manageable(principal(), user)
    return user


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
@requires("user.manage")
def disable_user(user_id: int):
    user = _user(user_id)
    if user.id == account().id:
        raise ValidationFailed("不能停用自己的账号", fields={"user_id": "本人"})
    accounts.set_disabled(db(), user, True, by=principal().username)
    db().commit()
    return redirect(url_for("adminpages.index", done=f"已停用账号 {user.username}") + "#users")


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
@requires("user.manage")
def enable_user(user_id: int):
    user = _user(user_id)
    accounts.set_disabled(db(), user, False, by=principal().username)
    db().commit()
    return redirect(url_for("adminpages.index", done=f"已启用账号 {user.username}") + "#users")


@bp.route("/holidays", methods=["POST"])
@requires("system.admin")
def holidays():
    data = _json_upload("节假日安排表")
    session = db()
    table = engine.load_holiday_table(session, data, actor=principal().username)
    session.commit()
    return redirect(url_for("adminpages.index", done=f"已载入{table.year}年节假日安排：放假{len(table.holidays)}天，"
                                                   f"调休上班{len(table.workdays)}天") + "#holidays")


@bp.route("/profiles/check", methods=["POST"])
@requires("system.admin")
def check_profile():
    data = _json_upload("地区配置")
    try:
        prof = profiles.profile_from_dict(data)
    except BaoxueError as e:
        return _page(checked={"ok": False, "message": e.message,
                              "fields": (e.fields)}), 422
    return _page(checked={"ok": True, "name": prof.name, "title": prof.title, "source": prof.source})


@bp.route("/profiles", methods=["POST"])
@requires("profile.install")
def install_profile():
    """Install a region profile for a node within the administrator's reach (the whole installation
    when none is chosen: the installation's administrator only) and point counties at it."""
    f = request.form
    raw_org, raw_counties = f.get("org_id") or "", f.getlist("counties")
    form = {"org_id": raw_org, "counties": raw_counties}
    session = db()
    try:
        if raw_org and not raw_org.isdigit():
            raise ValidationFailed("适用范围应为机构编号", fields={"org_id": "应为编号"})
        bad = [c for c in raw_counties if not c.isdigit()]
        if bad:
            raise ValidationFailed(f"县应为机构编号：{bad[0]!r}", fields={"counties": "应为编号"})
        org = session.get(Org, int(raw_org)) if raw_org else None
        if raw_org and org is None:
            raise NotFound(f"机构 {raw_org} 不存在", fields={"org_id": "不存在"})
        authorize_org(org.id if org else None)
        counties = [session.get(Org, int(c)) for c in raw_counties]
        if any(c is None for c in counties):
            raise NotFound("所选的县不存在", fields={"counties": "不存在"})
        for county in counties:
            authorize_org(county.id)
        data = _json_upload("地区配置")
        done = installed.install_profile(session, data, org=org, counties=counties, actor=principal().username)
    except ValidationFailed as e:
        session.rollback()
        return _page(form=form, install={"ok": False, "message": e.message, "fields": e.fields}), 422
    session.commit()
    installed.sync(session)
    where = f"，{'、'.join(done.counties)}改用此配置" if done.counties else ""
    verb = "已替换" if done.replaced else "已安装"
    done_text = f"{verb}地区配置“{done.profile.title}”（{done.profile.name}）{where}"
    return redirect(url_for("adminpages.index", done=done_text) + "#profiles")
