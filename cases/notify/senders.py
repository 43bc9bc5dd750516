"""The three ways out: 企业微信 group robot, 钉钉 custom robot (optionally signed), e-mail (SMTP).

``send(channel, subject, text, settings)`` raises ``SendFailed`` with a reason in Chinese when the
receiver refuses or cannot be reached; it never logs the message text.

- 企业微信 群机器人: ``POST <webhook>`` ``{"msgtype": "text", "text": {"content": ...}}``; the
  answer ``{"errcode": 0, "errmsg": "ok"}`` means sent.
- 钉钉 自定义机器人: the same body shape on ``POST <webhook>``. With 加签 (a secret ``SEC...``): the
  URL gets ``&timestamp=<ms>&sign=<urlencode(base64(HmacSHA256(key=secret, "<ms>\\n<secret>")))>``
  (the timestamp must be within an hour of DingTalk's clock); ``errcode`` 0 means sent.
- E-mail: one message per address through the configured SMTP server (UTF-8 subject and body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any


class SendFailed(Exception):
    """The receiver refused or could not be reached; ``str()`` is the reason (Chinese)."""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The 钉钉 加签 ``sign`` value (before URL encoding) for ``timestamp_ms``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{sep}timestamp={ts}&sign={urllib.parse.quote_plus(dingtalk_sign(secret, ts))}"


def _post_json(url: str, payload: dict, timeout: float, what: str) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 - the configured webhook
            body = res.read(64 * 1024)
    except urllib.error.HTTPError as e:
        raise SendFailed(f"{what}返回HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise SendFailed(f"{what}无法连接：{reason}") from None
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SendFailed(f"{what}的应答不是JSON") from None
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        code = answer.get("errcode") if isinstance(answer, dict) else None
        msg = answer.get("errmsg") if isinstance(answer, dict) else None
        raise SendFailed(f"{what}拒收：errcode={code} {msg or ''}".strip())


def send(kind: str, target: str, secret: str | None, subject: str, text: str,
         settings: Mapping[str, Any], *, webhook_hosts: frozenset[str] | None = None) -> None:
    timeout = float(settings.get("NOTIFY_HTTP_TIMEOUT_S") or 10)
    if kind in ("wecom", "dingtalk") and webhook_hosts is not None:
        host = (urllib.parse.urlsplit(target).hostname or "").lower()
        if host not in webhook_hosts:
            raise SendFailed(f"Webhook地址的主机 {host} 不在允许的范围内（NOTIFY_WEBHOOK_HOSTS）")
    if kind == "wecom":
        _post_json(target, {"msgtype": "text", "text": {"content": f"{subject}\n{text}"}}, timeout, "企业微信机器人")
    elif kind == "dingtalk":
        url = signed_url(target, secret) if secret else target
        _post_json(url, {"msgtype": "text", "text": {"content": f"{subject}\n{text}"}}, timeout, "钉钉机器人")
    elif kind == "email":
        send_mail(target, subject, text, settings)
    else:
        raise SendFailed(f"未知的推送方式：{kind}")


def send_mail(to: str, subject: str, text: str, settings: Mapping[str, Any]) -> None:
    msg = EmailMessage()
    sender = settings.get("SMTP_FROM") or "baoxue@localhost"
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg.set_content(text, charset="utf-8")
    host, port = settings.get("SMTP_HOST") or "127.0.0.1", int(settings.get("SMTP_PORT") or 25)
    timeout = float(settings.get("NOTIFY_HTTP_TIMEOUT_S") or 10)
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            if settings.get("SMTP_STARTTLS"):
                smtp.starttls()
            if settings.get("SMTP_USER"):
                smtp.login(settings["SMTP_USER"], settings.get("SMTP_PASSWORD") or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused:
        raise SendFailed(f"邮件服务器拒收收件人 {to}") from None
    except smtplib.SMTPResponseException as e:
        raise SendFailed(f"邮件服务器拒收：{e.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendFailed(f"无法连接邮件服务器 {host}:{port}：{e}") from None
    if refused:
        raise SendFailed(f"邮件服务器拒收收件人 {to}")
