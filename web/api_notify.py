"""Push-alert endpoints (issue 16) under /api/v1.

- ``GET /notify/channels?org_id=`` the channels of a unit and the units below it (``notify.read``);
  ``POST /notify/channels`` a unit's channel (``notify.manage``): ``{"org_id", "kind": "wecom" |
  "dingtalk" | "email", "name", "target", "secret" (钉钉 加签), "events": ["due_soon", "breach",
  "review_items", "report_due"], "review_threshold", "quiet_hours": {"start", "end"}, "digest",
  "digest_at", "enabled", "user_id" (a user of that unit)}``; ``PATCH /notify/channels/<id>``;
  ``POST /notify/channels/<id>/test`` sends a test message through the queue.
- ``GET/POST /me/notify/channels``, ``PATCH /me/notify/channels/<id>``: a user's own channels.
- ``GET /notify/deliveries?org_id=&status=&channel_id=`` what was sent, failed or is waiting,
  with every attempt and its reason.
Webhook tokens and 加签 secrets are never shown (``target`` masked, ``signed`` true/false).
"""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from cases.accounts.models import User
from cases.notify import channels as svc
from cases.notify import delivery, messages
from cases.store.models import Org, utcnow
from forms.errors import Forbidden, NotFound, ValidationFailed
from web.api import check_scope, current_user, json_body, scope_org
from web.auth import principal, requires
from web.context import db
from web.paging import envelope, page_args, paged_list

blp = Blueprint("notify", __name__, url_prefix="/api/v1", description="消息推送（企业微信、钉钉、邮件）")


def _settings(body: dict) -> dict:
    """A request body as a channel's settings: the unit and the user a channel belongs to are not
    changed through it (``org_id`` and ``user_id`` in it are ignored); ``svc`` checks the rest."""
    body.pop("org_id", None)
    body.pop("user_id", None)
    return body


def _update(ch, body: dict):
    """Apply the settings of ``body`` to the channel ``ch`` (already checked within reach)."""
    svc.update_channel(db(), ch, _settings(body), by=current_user())
    db().commit()
    return svc.channel_json(ch)


def _org(org_id) -> Org:
    try:
        org = db().get(Org, int(org_id))
    except (TypeError, ValueError):
        raise ValidationFailed("org_id 应为整数", fields={"org_id": "应为整数"}) from None
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    return org


def _org_arg() -> Org:
    raw = request.args.get("org_id")
    if raw in (None, ""):
        org = scope_org()
        if org is None:
            raise ValidationFailed("缺少参数 org_id", fields={"org_id": "必填"})
        return org
    return _org(raw)


@blp.route("/notify/channels")
@requires("notify.read")
def list_channels():
    org = _org_arg()
    check_scope(org.id)
    return paged_list(svc.channels_in(db(), org), svc.channel_json, org_id=org.id)


@blp.route("/notify/channels", methods=["POST"])
@requires("notify.manage")
def create_channel():
    body = json_body()
    if body.get("org_id") in (None, ""):
        raise ValidationFailed("缺少 org_id（推送设置所属单位）", fields={"org_id": "必填"})
    org = _org(body["org_id"])
    check_scope(org.id)
    user = None
    if body.get("user_id") is not None:
        user = db().get(User, body["user_id"]) if isinstance(body["user_id"], int) else None
        if user is None:
            raise ValidationFailed("用户不存在", fields={"user_id": "不存在"})
    ch = svc.create_channel(db(), org=org, user=user, raw=body, by=current_user())
    db().commit()
    return svc.channel_json(ch), 201


@blp.route("/notify/channels/<int:channel_id>", methods=["PATCH"])
@requires("notify.manage")
def update_channel(channel_id: int):
    ch = svc.get_channel(db(), channel_id)
    check_scope(ch.org_id)
    return _update(ch, json_body())


@blp.route("/notify/channels/<int:channel_id>/test", methods=["POST"])
@requires("notify.manage")
def test_channel(channel_id: int):
    """Send a test message to the channel now (through the queue); returns the delivery."""
    session = db()
    ch = svc.get_channel(session, channel_id)
    check_scope(ch.org_id)
    org = session.get(Org, ch.org_id)
    now = utcnow()
    msg = messages.Message(f"{messages.PREFIX}推送测试：{org.name}",
                           f"这是一条测试消息，说明“{ch.name}”可以收到控辍保学提醒。\n发送人：{current_user()}", None)
    made = delivery.post(session, [ch], key=f"test:{now.isoformat()}", event="test", org_id=org.id, msg=msg,
                         now=now)
    session.commit()
    delivery.dispatch([d.id for d in made if d.status == "pending"])
    session.expire_all()
    return delivery.delivery_json(made[0]), 201


@blp.route("/notify/deliveries")
@requires("notify.read")
def list_deliveries():
    org = _org_arg()
    check_scope(org.id)
    limit, offset = page_args()
    channel_id = request.args.get("channel_id", type=int)
    total, rows = delivery.deliveries_in(db(), org, status=request.args.get("status") or None,
                                         channel_id=channel_id, limit=limit, offset=offset)
    return envelope([delivery.delivery_json(d) for d in rows], total, limit, offset, org_id=org.id)


# ---- a user's own channels ------------------------------------------------------------------------

def _own_org() -> Org:
    p = principal()
    if p.org_id is None:
        raise ValidationFailed("系统级账号没有所属单位，不能设置个人推送", fields={"org_id": "无所属单位"})
    return _org(p.org_id)


@blp.route("/me/notify/channels")
@requires("account.self")
def my_channels():
    org = _own_org()
    return paged_list(svc.channels_in(db(), org, user_id=principal().user_id), svc.channel_json)


@blp.route("/me/notify/channels", methods=["POST"])
@requires("account.self")
def create_my_channel():
    org = _own_org()
    user = db().get(User, principal().user_id)
    ch = svc.create_channel(db(), org=org, user=user, raw=_settings(json_body()), by=current_user())
    db().commit()
    return svc.channel_json(ch), 201


@blp.route("/me/notify/channels/<int:channel_id>", methods=["PATCH"])
@requires("account.self")
def update_my_channel(channel_id: int):
    ch = svc.get_channel(db(), channel_id)
    if ch.user_id != principal().user_id:
        raise Forbidden("只能修改本人的推送设置")
    return _update(ch, json_body())


