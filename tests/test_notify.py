"""Push alerts with real parts (issue 16 items 4–6): a local SMTP server (aiosmtpd) receives the
e-mails, a local HTTP server records the 企业微信 / 钉钉 robot requests and checks the 钉钉 加签
signature, and a fake clock drives the scheduler (sweep, reminders, deliveries) day by day across
the 2025 国庆 week. Nothing leaves the machine: every receiver is on 127.0.0.1.

2025 around 国庆 (W = statutory working day; the 10-working-day persuasion window of a case
suspected on Fri 09-26 counts 09-28 Sun W, 09-29, 09-30, 10-09, 10-10, 10-11 Sat W, 10-13 … 10-16):
  09-26 Fri W · 09-27 Sat - · 09-28 Sun W · 09-29 Mon W · 09-30 Tue W · 10-01 … 10-08 - ·
  10-09 Thu W · 10-10 Fri W · 10-11 Sat W · 10-12 Sun - · 10-13 Mon W … 10-16 Thu W (due) ·
  T−1 = 10-15 (the working day before) · breach on 10-17.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import urllib.parse
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from cases.engine import casework as engine
from cases.engine.models import Alert, Deadline
from cases.ledgers import reporting
from cases.notify import delivery, scheduler
from cases.notify.models import Channel, Delivery, SchedulerRun
from cases.notify.senders import dingtalk_sign, signed_url
from cases.store.models import Case, Org, Pupil
from tests.conftest import client_for

D = dt.date
CN = dt.timezone(dt.timedelta(hours=8))
SECRET = "SEC0123456789abcdef-test-only"
B = "/api/v1"


def at(day: dt.date, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CN)


# ---- the receivers ------------------------------------------------------------------------------------

class Webhooks:
    """A local robot endpoint: ``/wecom/<name>`` and ``/dingtalk/<name>`` answer like the real
    robots ({"errcode": 0}); 钉钉 requests with ``sign`` are checked against ``SECRET``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                rec = {"path": parts.path, "query": query, "body": json.loads(raw.decode("utf-8")),
                       "accepted": False}
                if parts.path.startswith("/dingtalk/") and "sign" in query:
                    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{query['timestamp']}\n{SECRET}".encode(),
                                                         hashlib.sha256).digest()).decode()
                    rec["sign_ok"] = hmac.compare_digest(expected, query["sign"])
                outer.requests.append(rec)
                if outer.down:
                    self.send_response(502)
                    self.end_headers()
                    return
                if rec.get("sign_ok") is False:
                    answer = {"errcode": 310000, "errmsg": "sign not match"}
                else:
                    answer = {"errcode": 0, "errmsg": "ok"}
                    rec["accepted"] = True
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path and r["accepted"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd on 127.0.0.1: every message it receives, parsed."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                msg = message_from_bytes(envelope.content)
                outer.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                                       "subject": str(make_header(decode_header(msg["Subject"]))),
                                       "body": msg.get_payload(decode=True).decode("utf-8")})
                return "250 OK"

        self.port = _free_port()
        self.make = lambda: Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.running = False
        self.start()

    def to(self, addr: str) -> list[dict]:
        return [m for m in self.messages if addr in m["to"]]

    def stop(self):
        if self.running:
            self.controller.stop()
            self.running = False

    def start(self):  # a stopped controller cannot start again: a new one on the same port
        self.controller = self.make()
        self.controller.start()
        self.running = True


@pytest.fixture
def webhooks():
    w = Webhooks()
    yield w
    w.close()


@pytest.fixture
def mailbox():
    m = Mailbox()
    yield m
    m.stop()


@pytest.fixture
def notify_app(app, services, mailbox):
    services.extra.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": mailbox.port, "SMTP_FROM": "baoxue@test.local",
                           "PUBLIC_URL": "https://baoxue.example.test", "NOTIFY_RETRY_BASE_S": 60,
                           "NOTIFY_MAX_ATTEMPTS": 4, "NOTIFY_HTTP_TIMEOUT_S": 3,
                           "NOTIFY_WEBHOOK_HOSTS": "127.0.0.1,qyapi.weixin.qq.com,oapi.dingtalk.com"})
    return app


# ---- the county, the case, the channels ---------------------------------------------------------------

def _orgs(session, demo):
    county = session.get(Org, demo.county_id)
    townships = session.scalars(select(Org).where(Org.kind == "township", Org.parent_id == county.id)
                                .order_by(Org.id)).all()
    return county, townships


def _suspected_case(session) -> Case:
    """A pupil of 东河镇柳湾小学 absent from Mon 09-22, contacted and visited in time, suspected on
    Fri 09-26 (HN profile): the 10-working-day persuasion window runs over 国庆 with no attempt."""
    school = session.scalar(select(Org).where(Org.name == "东河镇柳湾小学"))
    pupil = session.scalars(select(Pupil).where(Pupil.org_id == school.id, Pupil.id.not_in(select(Case.pupil_id)))
                            .order_by(Pupil.id)).first()
    case = engine.open_case(session, pupil, opened_on=D(2025, 9, 22), actor="班主任", reason_code="R01")
    engine.record_attempt(session, case, {"date": "2025-09-22", "persons": "班主任", "method": "phone",
                                          "result": "refused"}, actor="班主任")
    engine.apply_action(session, case, "T3", actor="学校", data={"facts": {"unexcused_days": 3}},
                        occurred_at=at(D(2025, 9, 24)))
    engine.record_attempt(session, case, {"date": "2025-09-24", "persons": "班主任、村干部", "method": "visit",
                                          "result": "refused"}, actor="班主任")
    engine.apply_action(session, case, "T4", actor="学校", data={"facts": {"unexcused_days": 5}},
                        occurred_at=at(D(2025, 9, 26)))
    session.commit()
    return case


def _channels(client, session, demo, webhooks, make_user):
    """County: a 企业微信 group (T−1 + breach), a signed 钉钉 group (breach), the 控辍办 mailbox
    (breach); a township official's own e-mail (T−1 + breach); another township's group."""
    county, townships = _orgs(session, demo)
    east, west = townships[0], townships[1]
    assert east.name == "东河镇"
    made = {}
    for name, body in {
        "wecom": {"org_id": county.id, "kind": "wecom", "name": "县控辍办工作群",
                  "target": f"{webhooks.url}/wecom/county?key=abcdef0123456789", "events": ["due_soon", "breach"]},
        "dingtalk": {"org_id": county.id, "kind": "dingtalk", "name": "县教育局钉钉群",
                     "target": f"{webhooks.url}/dingtalk/county?access_token=tok0123456789", "secret": SECRET,
                     "events": ["breach"]},
        "mail": {"org_id": county.id, "kind": "email", "name": "控辍办邮箱", "target": "kcb@qinghe.example.org",
                 "events": ["breach"]},
        "west": {"org_id": west.id, "kind": "wecom", "name": "西岭乡工作群",
                 "target": f"{webhooks.url}/wecom/west?key=0000000000000000", "events": ["due_soon", "breach"]},
    }.items():
        r = client.post(f"{B}/notify/channels", json=body)
        assert r.status_code == 201, r.get_json()
        made[name] = r.get_json()
    _, token = make_user("east.official", ["township"], org_id=east.id)
    own = client_for(client.application, token)
    r = own.post(f"{B}/me/notify/channels", json={"kind": "email", "name": "本人邮箱",
                                                   "target": "li.east@qinghe.example.org",
                                                   "events": ["due_soon", "breach"]})
    assert r.status_code == 201, r.get_json()
    made["own"] = r.get_json()
    return made, own


def test_breach_over_the_holiday_week_reaches_each_receiver_once(notify_app, client, app_session, demo,
                                                                    webhooks, mailbox, make_user):
    factory = notify_app.extensions["baoxue"].session_factory
    made, _ = _channels(client, app_session, demo, webhooks, make_user)
    assert made["dingtalk"]["signed"] is True and "tok0123456789" not in made["dingtalk"]["target"]
    assert made["wecom"]["target"].endswith("key=***6789")
    case = _suspected_case(app_session)
    window = app_session.scalar(select(Deadline).where(Deadline.case_id == case.id,
                                                       Deadline.timer == "persuasion_window"))
    assert window.due_on == D(2025, 10, 16)  # by hand, see the module doc

    day, seen = D(2025, 9, 26), {}
    while day <= D(2025, 10, 17):
        scheduler.run_all(at(day), factory=factory)
        seen[day] = (len(webhooks.requests), len(mailbox.messages))
        day += dt.timedelta(days=1)
    # nothing through the holiday; the T−1 alert on 10-15 (the working day before), the breach on 10-17
    assert seen[D(2025, 10, 14)] == (0, 0)
    assert seen[D(2025, 10, 15)] == (1, 1) and seen[D(2025, 10, 16)] == (1, 1)
    county_wecom, ding = webhooks.accepted("/wecom/county"), webhooks.accepted("/dingtalk/county")
    assert len(county_wecom) == 2 and len(ding) == 1 and webhooks.accepted("/wecom/west") == []
    sent_ms = int(ding[0]["query"]["timestamp"])  # the real clock: DingTalk refuses a timestamp an hour off
    assert ding[0]["sign_ok"] is True and abs(sent_ms / 1000 - dt.datetime.now().timestamp()) < 600
    assert len(mailbox.to("kcb@qinghe.example.org")) == 1 and len(mailbox.to("li.east@qinghe.example.org")) == 2

    due_soon, breach = (m["body"]["text"]["content"] for m in county_wecom)
    pupil = app_session.get(Pupil, case.pupil_id)
    masked = (pupil.name[0] + "*" * (len(pupil.name) - 2) + pupil.name[-1]) if len(pupil.name) > 2 else \
        pupil.name[0] + "*"
    assert due_soon.startswith("【控辍保学】即将到期：") and f"案件{case.number}" in due_soon
    assert "期限：2025年10月16日到期（明日）" in due_soon
    assert breach.splitlines() == [
        f"【控辍保学】已逾期：{window.label}（案件{case.number}）",
        f"案件：{case.number}（东河镇柳湾小学）",
        f"学生：{masked}",
        f"事项：{window.label}（责任：学校）",
        "期限：2025年10月16日到期，已逾期1日",
        f"查看：https://baoxue.example.test/cases/{case.id}"]
    mail = mailbox.to("kcb@qinghe.example.org")[0]
    assert mail["subject"] == breach.splitlines()[0] and mail["body"].strip() == "\n".join(breach.splitlines()[1:])
    everything = json.dumps(webhooks.requests, ensure_ascii=False) + json.dumps(mailbox.messages, ensure_ascii=False)
    assert pupil.id_number not in everything and pupil.id_number[-6:] not in everything and pupil.name not in everything

    # idempotent: the same day again, and the next hour, send nothing more
    before = (len(webhooks.requests), len(mailbox.messages))
    scheduler.run_all(at(D(2025, 10, 17), 10), factory=factory)
    scheduler.run_all(at(D(2025, 10, 17), 10), factory=factory)
    assert (len(webhooks.requests), len(mailbox.messages)) == before
    app_session.expire_all()
    rows = app_session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(r.event, r.status, r.attempts) for r in rows] == [
        ("due_soon", "sent", 1), ("due_soon", "sent", 1),
        ("breach", "sent", 1), ("breach", "sent", 1), ("breach", "sent", 1), ("breach", "sent", 1)]
    alert = app_session.scalar(select(Alert).where(Alert.deadline_id == window.id, Alert.kind == "breach"))
    assert {r.key for r in rows if r.event == "breach"} == {f"alert:{alert.id}"}

    # the last runs, visible in /health
    health = client.get(f"{B}/health").get_json()["scheduler"]
    assert health["sweep"]["status"] == "ok" and health["sweep"]["runs"] == 24
    assert health["sweep"]["result"]["today"] == "2025-10-17"
    assert health["deliveries"]["status"] == "ok" and health["report_reminders"]["status"] == "ok"

    # the list of deliveries, per unit
    county, townships = _orgs(app_session, demo)
    listed = client.get(f"{B}/notify/deliveries?org_id={county.id}").get_json()
    assert listed["total"] == 6 and {i["status"] for i in listed["items"]} == {"sent"}
    west = client.get(f"{B}/notify/deliveries?org_id={townships[1].id}").get_json()
    assert west["total"] == 0


def test_receiver_down_retries_with_backoff_then_delivers(notify_app, client, app_session, demo, webhooks,
                                                          mailbox, make_user):
    factory = notify_app.extensions["baoxue"].session_factory
    _channels(client, app_session, demo, webhooks, make_user)
    case = _suspected_case(app_session)
    for day in (D(2025, 10, 13), D(2025, 10, 14), D(2025, 10, 15), D(2025, 10, 16)):
        scheduler.run_all(at(day), factory=factory)
    webhooks.down = True
    mailbox.stop()
    t0 = at(D(2025, 10, 17))
    scheduler.run_all(t0, factory=factory)
    app_session.expire_all()
    rows = app_session.scalars(select(Delivery).where(Delivery.event == "breach").order_by(Delivery.id)).all()
    assert [(r.status, r.attempts) for r in rows] == [("retrying", 1)] * 4
    errors = {app_session.get(Channel, r.channel_id).kind: r.last_error for r in rows}
    assert errors["wecom"] == "企业微信机器人返回HTTP 502" and errors["dingtalk"] == "钉钉机器人返回HTTP 502"
    assert errors["email"].startswith("无法连接邮件服务器 127.0.0.1:")
    assert all(r.next_attempt_at == t0 + dt.timedelta(seconds=60) for r in rows)

    assert delivery.tick(t0 + dt.timedelta(seconds=30), factory=factory)["attempted"] == 0  # not due yet
    assert delivery.tick(t0 + dt.timedelta(seconds=61), factory=factory)["retrying"] == 4  # 2nd attempt fails
    app_session.expire_all()
    rows = app_session.scalars(select(Delivery).where(Delivery.event == "breach").order_by(Delivery.id)).all()
    assert [(r.attempts, r.next_attempt_at) for r in rows] == [(2, t0 + dt.timedelta(seconds=61 + 120))] * 4

    webhooks.down = False
    mailbox.start()
    assert delivery.tick(t0 + dt.timedelta(seconds=200), factory=factory)["sent"] == 4
    app_session.expire_all()
    rows = app_session.scalars(select(Delivery).where(Delivery.event == "breach").order_by(Delivery.id)).all()
    assert [(r.status, r.attempts, [x["ok"] for x in r.log]) for r in rows] == [("sent", 3, [False, False, True])] * 4
    assert len(webhooks.accepted("/wecom/county")) == 2 and len(webhooks.accepted("/dingtalk/county")) == 1
    assert len(mailbox.to("kcb@qinghe.example.org")) == 1
    # shown to the unit with every attempt and its reason
    county, _ = _orgs(app_session, demo)
    listed = client.get(f"{B}/notify/deliveries?org_id={county.id}&status=sent").get_json()["items"]
    ding = next(i for i in listed if i["event"] == "breach" and "钉钉" not in i["subject"] and i["attempts"] == 3
                and i["log"][0]["error"] == "钉钉机器人返回HTTP 502")
    assert ding["log"][2]["error"] is None and case.number in ding["subject"]

    # a receiver that stays down: failed after NOTIFY_MAX_ATTEMPTS (4), with the reason
    mailbox.stop()
    scheduler.run_all(at(D(2025, 10, 20)), factory=factory)  # school_report breach and more
    now = at(D(2025, 10, 20))
    for extra in (61, 61 + 121, 61 + 121 + 241):
        delivery.tick(now + dt.timedelta(seconds=extra), factory=factory)
    app_session.expire_all()
    mails = app_session.scalars(select(Delivery).join(Channel).where(Channel.kind == "email",
                                                                     Delivery.created_at >= now)).all()
    assert mails and all(m.status == "failed" and m.attempts == 4 and m.last_error.startswith("无法连接邮件服务器")
                         for m in mails)


def test_quiet_hours_hold_and_daily_digest(notify_app, client, app_session, demo, webhooks, mailbox):
    factory = notify_app.extensions["baoxue"].session_factory
    county, _ = _orgs(app_session, demo)
    quiet = client.post(f"{B}/notify/channels", json={
        "org_id": county.id, "kind": "wecom", "name": "夜间免打扰群", "target": f"{webhooks.url}/wecom/quiet?key=q",
        "events": ["due_soon", "breach"], "quiet_hours": {"start": "22:00", "end": "07:30"}}).get_json()
    digest = client.post(f"{B}/notify/channels", json={
        "org_id": county.id, "kind": "email", "name": "局长每日汇总", "target": "juzhang@qinghe.example.org",
        "events": ["due_soon", "breach"], "digest": True, "digest_at": "08:00"}).get_json()
    assert quiet["quiet_hours"] == {"start": "22:00", "end": "07:30"} and digest["digest"] is True
    _suspected_case(app_session)
    scheduler.run_all(at(D(2025, 10, 14), 23), factory=factory)  # nothing due yet
    scheduler.run_all(at(D(2025, 10, 15), 0, 5), factory=factory)  # T−1 raised at 00:05: quiet, and digest
    assert webhooks.requests == [] and mailbox.messages == []
    app_session.expire_all()
    held = app_session.scalars(select(Delivery).where(Delivery.channel_id == quiet["id"])).all()
    assert [(d.status, d.next_attempt_at) for d in held] == [("held", at(D(2025, 10, 15), 7, 30))]
    scheduler.run_deliveries(at(D(2025, 10, 15), 7, 29), factory=factory)
    assert webhooks.requests == []
    scheduler.run_deliveries(at(D(2025, 10, 15), 7, 31), factory=factory)
    assert len(webhooks.accepted("/wecom/quiet")) == 1 and mailbox.messages == []
    scheduler.run_deliveries(at(D(2025, 10, 15), 8, 1), factory=factory)
    scheduler.run_deliveries(at(D(2025, 10, 15), 8, 2), factory=factory)
    assert len(mailbox.messages) == 1
    m = mailbox.messages[0]
    assert m["subject"] == "【控辍保学】每日汇总（1条）"
    assert m["body"].startswith("2025年10月15日控辍保学提醒汇总，共1条：")
    assert "即将到期" in m["body"] and "期限：2025年10月16日到期（明日）" in m["body"]
    app_session.expire_all()
    items = app_session.scalars(select(Delivery).where(Delivery.channel_id == digest["id"]).order_by(Delivery.id)).all()
    assert [(d.event, d.status) for d in items] == [("due_soon", "digested"), ("digest", "sent")]
    assert items[0].digest_id == items[1].id


def test_report_due_reminders_are_pushed(notify_app, client, app_session, webhooks, mailbox):
    factory = notify_app.extensions["baoxue"].session_factory
    from tests.test_reporting import build

    tree = build(app_session)
    r = client.post(f"{B}/notify/channels", json={"org_id": tree.gz.id, "kind": "dingtalk", "name": "甲县报表群",
                                                  "target": f"{webhooks.url}/dingtalk/gz", "secret": SECRET,
                                                  "events": ["report_due"]})
    assert r.status_code == 201
    scheduler.run_report_reminders(at(D(2025, 10, 16)), factory=factory)
    got = webhooks.accepted("/dingtalk/gz")
    assert all(x["sign_ok"] for x in got)
    # the first run catches up September's unfiled reports (overdue), then tomorrow's (T−1)
    heads = sorted(x["body"]["text"]["content"].splitlines()[0] for x in got)
    report = "乡镇半月报（乡级台账）"
    assert heads == [f"【控辍保学】明日截止：甲一镇{report}", f"【控辍保学】明日截止：甲二乡{report}"] + \
        [f"【控辍保学】逾期未报送：甲一镇{report}"] * 2 + [f"【控辍保学】逾期未报送：甲二乡{report}"] * 2
    texts = sorted(x["body"]["text"]["content"] for x in got)
    assert "事项：乡镇半月报（乡级台账）（截至2025年10月15日）报送县政府和县教育部门" in texts[0]
    assert "期限：2025年10月17日（明日截止）" in texts[0]
    scheduler.run_report_reminders(at(D(2025, 10, 16), 11), factory=factory)
    assert len(webhooks.accepted("/dingtalk/gz")) == 6
    assert len(reporting.remind(app_session, D(2025, 10, 16))) == 0


def test_channel_validation_permissions_and_masking(notify_app, client, app_session, demo, make_user, webhooks,
                                                     services):
    county, townships = _orgs(app_session, demo)
    r = client.post(f"{B}/notify/channels", json={"org_id": county.id, "kind": "sms", "name": "", "target": "x",
                                                  "events": ["everything"], "quiet_hours": {"start": "25:00"}})
    assert r.status_code == 422
    assert set(r.get_json()["fields"]) == {"kind", "name", "events", "quiet_hours"}
    r = client.post(f"{B}/notify/channels", json={"org_id": county.id, "kind": "dingtalk", "name": "钉钉群",
                                                  "target": "ftp://x", "secret": "nope"})
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"target", "secret"}
    r = client.post(f"{B}/notify/channels", json={"org_id": county.id, "kind": "email", "name": "邮箱",
                                                  "target": "not-an-address"})
    assert r.status_code == 422 and "target" in r.get_json()["fields"]
    # a webhook only to the robots' hosts (here also the local test receiver): nothing else is posted to
    r = client.post(f"{B}/notify/channels", json={"org_id": county.id, "kind": "wecom", "name": "内网",
                                                  "target": "http://10.0.0.5:6379/?key=x"})
    assert r.status_code == 422 and "qyapi.weixin.qq.com" in r.get_json()["fields"]["target"]
    assert app_session.scalar(select(Channel.id)) is None

    east, west = townships[0], townships[1]
    _, tok = make_user("east.admin", ["township"], org_id=east.id)
    c = client_for(client.application, tok)
    ok = c.post(f"{B}/notify/channels", json={"org_id": east.id, "kind": "wecom", "name": "东河镇工作群",
                                             "target": f"{webhooks.url}/wecom/east?key=secretkey12345678"})
    assert ok.status_code == 201 and ok.get_json()["events"] == ["due_soon", "breach", "review_items", "report_due"]
    assert "secretkey12345678" not in json.dumps(ok.get_json())
    assert c.post(f"{B}/notify/channels", json={"org_id": west.id, "kind": "email", "name": "x",
                                               "target": "a@b.example.org"}).status_code == 403
    test = c.post(f"{B}/notify/channels/{ok.get_json()['id']}/test")
    assert test.status_code == 201 and test.get_json()["status"] == "sent" and test.get_json()["event"] == "test"
    got = webhooks.accepted("/wecom/east")
    assert len(got) == 1 and got[0]["body"]["text"]["content"].startswith("【控辍保学】推送测试：东河镇")
    r = c.patch(f"{B}/notify/channels/{ok.get_json()['id']}", json={"enabled": False, "review_threshold": 3})
    assert r.status_code == 200 and r.get_json()["enabled"] is False and r.get_json()["review_threshold"] == 3
    # a teacher may not manage the unit's channels, but may keep their own
    school = app_session.scalar(select(Org).where(Org.name == "东河镇柳湾小学"))
    _, ttok = make_user("teacher.x", ["teacher"], org_id=school.id)
    t = client_for(client.application, ttok)
    assert t.post(f"{B}/notify/channels", json={"org_id": school.id, "kind": "email", "name": "x",
                                               "target": "a@b.example.org"}).status_code == 403
    assert t.get(f"{B}/notify/deliveries?org_id={school.id}").status_code == 403
    mine = t.post(f"{B}/me/notify/channels", json={"kind": "email", "name": "我的邮箱", "target": "t@x.example.org",
                                                  "events": ["breach"]})
    assert mine.status_code == 201 and mine.get_json()["org_id"] == school.id
    assert c.patch(f"{B}/me/notify/channels/{mine.get_json()['id']}", json={"enabled": False}).status_code == 403
    assert [x["name"] for x in t.get(f"{B}/me/notify/channels").get_json()["items"]] == ["我的邮箱"]


def test_dingtalk_signature_matches_the_documented_algorithm():
    # timestamp + "\n" + secret, HmacSHA256 keyed with the secret, Base64, then URL-encoded
    ts = 1700000000000
    sign = dingtalk_sign("SECabc", ts)
    expected = base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()).decode()
    assert sign == expected
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SECabc", ts)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q == {"access_token": "T", "timestamp": str(ts), "sign": expected}


def test_scheduler_registers_periodic_tasks_and_records_runs(app, app_session, monkeypatch):
    from cases.store import jobs

    assert jobs.periodic_tasks() == {"sweep": {"minute": "5"}, "report_reminders": {"minute": "10"},
                                     "deliveries": {"minute": "*"}}
    assert "cases.notify.scheduler" in jobs.JOB_MODULES
    health = app.test_client().get(f"{B}/health").get_json()["scheduler"]
    assert health["sweep"] == {"label": scheduler.TASKS["sweep"], "status": "never", "last_started_at": None,
                               "last_finished_at": None, "runs": 0, "result": None, "error": None, "stale": True}
    factory = app.extensions["baoxue"].session_factory
    scheduler.run_sweep(at(D(2025, 10, 17)), factory=factory)
    row = app_session.get(SchedulerRun, "sweep")
    assert row.status == "ok" and row.runs == 1 and row.result["today"] == "2025-10-17"

    def boom(*_a, **_k):
        raise RuntimeError("database gone")

    monkeypatch.setattr(engine, "sweep", boom)
    with pytest.raises(RuntimeError):
        scheduler.run_sweep(at(D(2025, 10, 18)), factory=factory)
    app_session.expire_all()
    row = app_session.get(SchedulerRun, "sweep")
    assert row.status == "error" and row.error == "RuntimeError: database gone" and row.runs == 2


def _review_items(session, school: Org, n: int, at_time: dt.datetime) -> None:
    """``n`` open review items of one returned notice of ``school`` (the rows the returns pipeline writes)."""
    from cases.returns.models import ReturnPage, ReviewItem
    from cases.store.models import Document, Upload

    doc_id = f"R{at_time:%H%M}{n:02d}"[:12]
    session.add(Document(id=doc_id, org_id=school.id, form="guardian_notice", variant="xianqi",
                         family="guardian_notice:限返", template_version="2026.1", year=2025, status="issued", data={}))
    up = Upload(org_id=school.id, sha256="a" * 64, original_filename="回证.jpg", size=1, stored_path="x/y.jpg")
    session.add(up)
    session.flush()
    page = ReturnPage(org_id=school.id, upload_id=up.id, page_index=0, status="read", document_id=doc_id)
    session.add(page)
    session.flush()
    for i in range(n):
        session.add(ReviewItem(org_id=school.id, page_id=page.id, upload_id=up.id, document_id=doc_id,
                               field_path=f"service_date.{i}", kind="low_confidence", created_at=at_time))
    session.commit()


def test_new_review_items_over_n_once_a_day(notify_app, client, app_session, demo, webhooks):
    factory = notify_app.extensions["baoxue"].session_factory
    county, townships = _orgs(app_session, demo)
    ch = client.post(f"{B}/notify/channels", json={
        "org_id": townships[0].id, "kind": "wecom", "name": "东河镇复核提醒", "review_threshold": 3,
        "target": f"{webhooks.url}/wecom/review?key=r", "events": ["review_items"]}).get_json()
    app_session.get(Channel, ch["id"]).created_at = at(D(2025, 10, 9), 8)
    app_session.commit()
    school = app_session.scalar(select(Org).where(Org.name == "东河镇柳湾小学"))
    _review_items(app_session, school, 3, at(D(2025, 10, 9), 10))
    scheduler.run_all(at(D(2025, 10, 9), 11), factory=factory)
    assert webhooks.requests == []  # 3 is not over the threshold of 3
    _review_items(app_session, school, 2, at(D(2025, 10, 9), 12))
    scheduler.run_all(at(D(2025, 10, 9), 13), factory=factory)
    got = webhooks.accepted("/wecom/review")
    assert len(got) == 1
    text = got[0]["body"]["text"]["content"].splitlines()
    assert text[0] == "【控辍保学】待复核5条：东河镇"
    assert text[2] == "事项：有5条新的回收件识别结果待人工复核（提醒阈值3条）"
    _review_items(app_session, school, 9, at(D(2025, 10, 9), 14))
    scheduler.run_all(at(D(2025, 10, 9), 15), factory=factory)
    assert len(webhooks.accepted("/wecom/review")) == 1  # once a day
    scheduler.run_all(at(D(2025, 10, 10), 9), factory=factory)  # the next day: the 9 new since the last message
    got = webhooks.accepted("/wecom/review")
    assert len(got) == 2 and got[1]["body"]["text"]["content"].splitlines()[0] == "【控辍保学】待复核9条：东河镇"
