"""Push channels of units and users: validation, create/update, JSON (secrets never shown).

Service functions for the API and the web pages alike. A channel of a unit (``user_id`` None)
receives what happens at that unit and below; a user's own channel the same for the user's unit.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.accounts.models import User
from cases.notify.delivery import webhook_hosts
from cases.notify.models import CHANNEL_KINDS, EVENTS, Channel
from cases.store import audit
from cases.store.models import Org
from forms.errors import NotFound, ValidationFailed

KIND_LABELS = {"wecom": "企业微信群机器人", "dingtalk": "钉钉自定义机器人", "email": "电子邮件"}
EVENT_LABELS = {"due_soon": "时限前一日提醒（T−1）", "breach": "逾期", "review_items": "待复核超过N条",
                "report_due": "报表报送提醒"}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
FIELDS = ("kind", "name", "target", "secret", "events", "review_threshold", "quiet_hours", "digest", "digest_at",
          "enabled")


def _clean(raw: Mapping[str, Any], current: Channel | None) -> dict:
    if not isinstance(raw, Mapping):
        raise ValidationFailed("请求体应为对象", fields={"body": "应为JSON对象"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = sorted(set(raw) - set(FIELDS) - {"org_id", "user_id"})
    for k in unknown:
        errors[k] = "未知字段"
    kind = raw.get("kind", current.kind if current else None)
    if kind not in CHANNEL_KINDS:
        errors["kind"] = "可选：" + "、".join(f"{k}（{v}）" for k, v in KIND_LABELS.items())
    elif current is not None and kind != current.kind:
        errors["kind"] = "推送方式不能修改，请新建"
    out["kind"] = kind
    if "name" in raw or current is None:
        name = str(raw.get("name") or "").strip()
        if not name:
            errors["name"] = "必填"
        elif len(name) > 80:
            errors["name"] = "不超过80字"
        out["name"] = name
    if "target" in raw or current is None:
        target = str(raw.get("target") or "").strip()
        if kind == "email":
            if not _EMAIL.match(target):
                errors["target"] = "应为电子邮件地址，如 zhang@example.org"
        elif kind in ("wecom", "dingtalk"):
            parts = urllib.parse.urlsplit(target)
            allowed = webhook_hosts()
            if parts.scheme not in ("http", "https") or not parts.hostname or len(target) > 500:
                errors["target"] = "应为机器人的Webhook地址（https://...）"
            elif parts.hostname.lower() not in allowed:
                errors["target"] = f"Webhook地址应在 {'、'.join(sorted(allowed))} 之下"
        out["target"] = target
    if "secret" in raw:
        secret = raw.get("secret")
        if secret in (None, ""):
            out["secret"] = None
        elif kind != "dingtalk":
            errors["secret"] = "只有钉钉机器人使用加签密钥"
        elif not isinstance(secret, str) or not secret.startswith("SEC") or len(secret) > 200:
            errors["secret"] = "应为钉钉机器人安全设置中“加签”一栏的 SEC 开头的密钥"
        else:
            out["secret"] = secret
    if "events" in raw or current is None:
        events = raw.get("events", list(EVENTS))
        if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
            errors["events"] = "可选：" + "、".join(f"{k}（{v}）" for k, v in EVENT_LABELS.items())
        else:
            out["events"] = [e for e in EVENTS if e in events]
    if "review_threshold" in raw:
        n = raw.get("review_threshold")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 10000:
            errors["review_threshold"] = "应为0–10000的整数"
        else:
            out["review_threshold"] = n
    if "quiet_hours" in raw:
        q = raw.get("quiet_hours")
        if q in (None, {}):
            out["quiet_start"] = out["quiet_end"] = None
        elif not isinstance(q, Mapping) or not all(_HHMM.match(str(q.get(k) or "")) for k in ("start", "end")):
            errors["quiet_hours"] = "应为 {\"start\": \"22:00\", \"end\": \"07:00\"}（北京时间，24小时制）"
        elif q["start"] == q["end"]:
            errors["quiet_hours"] = "开始和结束时间不能相同"
        else:
            out["quiet_start"], out["quiet_end"] = q["start"], q["end"]
    for key in ("digest", "enabled"):
        if key in raw:
            if not isinstance(raw[key], bool):
                errors[key] = "应为 true 或 false"
            else:
                out[key] = raw[key]
    if "digest_at" in raw:
        if not _HHMM.match(str(raw.get("digest_at") or "")):
            errors["digest_at"] = "应为 HH:MM（北京时间），如 08:00"
        else:
            out["digest_at"] = raw["digest_at"]
    if errors:
        raise ValidationFailed(f"推送设置有{len(errors)}处错误", fields=errors)
    return out


def create_channel(session: Session, *, org: Org, user: User | None, raw: Mapping[str, Any], by: str) -> Channel:
    """A new channel of unit ``org`` (or of ``user``, who must belong to ``org``); flushes."""
    values = _clean(raw, None)
    if user is not None and user.org_id != org.id:
        raise ValidationFailed("个人推送须设在本人所在单位", fields={"user_id": "用户不属于该单位"})
    ch = Channel(org_id=org.id, user_id=user.id if user else None, created_by=by, **values)
    session.add(ch)
    session.flush()
    audit.record(session, who=by, org=org.id, action="notify.channel.create", target=f"notify_channel:{ch.id}",
                 after=_audit_view(ch))
    return ch


def update_channel(session: Session, ch: Channel, raw: Mapping[str, Any], *, by: str) -> Channel:
    before = _audit_view(ch)
    for key, value in _clean(raw, ch).items():
        setattr(ch, key, value)
    session.flush()
    audit.record(session, who=by, org=ch.org_id, action="notify.channel.update", target=f"notify_channel:{ch.id}",
                 before=before, after=_audit_view(ch))
    return ch


def get_channel(session: Session, channel_id: int) -> Channel:
    ch = session.get(Channel, channel_id)
    if ch is None:
        raise NotFound(f"推送设置 {channel_id} 不存在")
    return ch


def channels_in(session: Session, org: Org, *, user_id: int | None = None) -> list[Channel]:
    q = select(Channel).where(Channel.in_scope(org)).order_by(Channel.id)
    if user_id is not None:
        q = q.where(Channel.user_id == user_id)
    return list(session.scalars(q))


def masked_target(ch: Channel) -> str:
    """The webhook without its token (``key=***abcd``); e-mail addresses as they are."""
    if ch.kind == "email":
        return ch.target
    parts = urllib.parse.urlsplit(ch.target)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    hidden = "&".join(f"{k}=***{v[-4:] if len(v) > 8 else ''}" for k, v in query)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, hidden, ""))


def _audit_view(ch: Channel) -> dict:
    return {"kind": ch.kind, "name": ch.name, "target": masked_target(ch), "signed": bool(ch.secret),
            "events": list(ch.events or []), "enabled": ch.enabled, "digest": ch.digest,
            "user_id": ch.user_id}


def channel_json(ch: Channel) -> dict:
    return {"id": ch.id, "org_id": ch.org_id, "user_id": ch.user_id, "kind": ch.kind,
            "kind_label": KIND_LABELS[ch.kind], "name": ch.name, "target": masked_target(ch),
            "signed": bool(ch.secret), "events": list(ch.events or []), "review_threshold": ch.review_threshold,
            "quiet_hours": {"start": ch.quiet_start, "end": ch.quiet_end} if ch.quiet_start else None,
            "digest": ch.digest, "digest_at": ch.digest_at, "enabled": ch.enabled, "created_by": ch.created_by,
            "created_at": ch.created_at.isoformat() if ch.created_at else None}
