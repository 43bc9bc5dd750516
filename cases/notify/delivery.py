"""Push alerts out of the service: who receives what, and the delivery of each message.

- ``collect(session, now)`` turns what the engine and the reporting calendar raised into
  deliveries: every engine ``Alert`` (T−1 ``due_soon``, ``breach``) and every ``ReportReminder``
  (``report_due``) to the enabled channels of the responsible unit and the units above it that
  asked for that event; and, per channel, "new review items over N" (at most once a day).
  Each delivery's key names the stage (``alert:<id>`` is one deadline × one stage): ``(channel,
  key)`` is unique, so running it again — or two workers at once — sends nothing twice.
- A new delivery is ``pending`` and goes to the job queue (``notify_deliver``); inside the
  channel's quiet hours it is ``held`` until they end; for a digest channel it is
  ``queued_digest`` and goes out in the day's one digest message at ``digest_at``.
- ``deliver(id)`` (the queue task) claims the delivery with a conditional UPDATE, sends it and
  records the attempt (time, error). A failure is tried again after ``NOTIFY_RETRY_BASE_S`` ×
  2^(n−1) seconds (``retrying``, ``next_attempt_at``) up to ``NOTIFY_MAX_ATTEMPTS`` attempts, then
  it is ``failed`` with the last reason.
- ``tick(now)`` (every minute on the worker) releases held deliveries, re-sends the retries that
  are due (also when the queue lost the delayed message) and sends the digests.

Messages are built by ``cases.notify.messages`` from the case number, the masked name, the
deadline's label and date, never from an ID number.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cases.accounts.models import User
from cases.engine.models import Alert, Deadline
from cases.ledgers.models import ReportReminder
from cases.ledgers.reporting import REPORT_LINES
from cases.notify import messages
from cases.notify.models import Channel, Delivery
from cases.notify.senders import SendFailed, send
from cases.returns.models import ReviewItem
from cases.store.jobs import enqueue_task, queue_task
from cases.store.models import Case, Org, Pupil, ancestors, utcnow

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
DEFAULTS = {"PUBLIC_URL": "http://127.0.0.1:8000", "NOTIFY_RETRY_BASE_S": 60.0, "NOTIFY_MAX_ATTEMPTS": 5,
            "NOTIFY_HTTP_TIMEOUT_S": 10.0, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": 25,
            "NOTIFY_WEBHOOK_HOSTS": "qyapi.weixin.qq.com,oapi.dingtalk.com"}
# Alerts and reminders older than this are not pushed any more (a channel made today does not
# receive last month's alerts); the sweep runs every hour, so this only matters after an outage.
LOOKBACK = dt.timedelta(days=3)
CLAIM_S = 120  # a claimed attempt blocks other workers this long (the send's own timeout is shorter)


def settings() -> dict[str, Any]:
    from cases.store.services import registered

    try:
        extra = registered().extra
    except Exception:  # noqa: BLE001 - no app or worker configured (a bare script): the defaults
        extra = {}
    return {**DEFAULTS, **{k: v for k, v in extra.items() if v is not None}}


def webhook_hosts(cfg: dict | None = None) -> frozenset[str]:
    raw = (cfg or settings()).get("NOTIFY_WEBHOOK_HOSTS") or ""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return frozenset(h.strip().lower() for h in items if h.strip())


def session_factory() -> sessionmaker[Session]:
    from cases.store.services import registered

    return registered().session_factory


def aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def china_now(now: dt.datetime) -> dt.datetime:
    return aware(now).astimezone(CHINA_TZ)


def _hhmm(value: str) -> dt.time:
    h, m = value.split(":")
    return dt.time(int(h), int(m))


def quiet_until(ch: Channel, now: dt.datetime) -> dt.datetime | None:
    """The end of the channel's quiet hours if ``now`` falls inside them (China time), else None."""
    if not ch.quiet_start or not ch.quiet_end:
        return None
    local = china_now(now)
    start, end, t = _hhmm(ch.quiet_start), _hhmm(ch.quiet_end), local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(end_day, end, CHINA_TZ).astimezone(dt.UTC)


# ---- who receives what ---------------------------------------------------------------------------------

def receivers(session: Session, org_id: int, event: str) -> list[Channel]:
    """Enabled channels of ``org_id`` and the units above it that asked for ``event`` (a user's
    own channel only while the user's account is active)."""
    org = session.get(Org, org_id)
    if org is None:
        return []
    chain = [o.id for o in ancestors(session, org, include_self=True)]
    rows = session.scalars(select(Channel).outerjoin(User, User.id == Channel.user_id)
                           .where(Channel.org_id.in_(chain), Channel.enabled.is_(True),
                                  or_(Channel.user_id.is_(None), User.disabled.is_(False)))
                           .order_by(Channel.id)).all()
    return [ch for ch in rows if event in (ch.events or [])]


def post(session: Session, channels: Iterable[Channel], *, key: str, event: str, org_id: int,
         msg: messages.Message, now: dt.datetime, case_id: int | None = None) -> list[Delivery]:
    """One delivery per channel for ``key`` unless that channel already has it; returns the new ones."""
    made = []
    for ch in channels:
        if session.scalar(select(Delivery.id).where(Delivery.channel_id == ch.id, Delivery.key == key)):
            continue
        status, next_at = "pending", None
        if ch.digest and event not in ("digest", "test"):
            status = "queued_digest"
        elif (until := quiet_until(ch, now)) is not None:
            status, next_at = "held", until
        row = Delivery(channel_id=ch.id, org_id=org_id, key=key, event=event, case_id=case_id,
                       subject=msg.subject[:200], body=msg.body, link=msg.link, status=status,
                       next_attempt_at=next_at, created_at=aware(now), log=[])
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another run made it at the same moment
            continue
        made.append(row)
    return made


def _alert_deliveries(session: Session, now: dt.datetime, base_url: str) -> list[Delivery]:
    q = (select(Alert, Deadline, Case, Pupil, Org).join(Deadline, Deadline.id == Alert.deadline_id)
         .join(Case, Case.id == Alert.case_id).join(Pupil, Pupil.id == Case.pupil_id)
         .join(Org, Org.id == Case.org_id)
         .where(Alert.created_at >= aware(now) - LOOKBACK).order_by(Alert.id))
    made: list[Delivery] = []
    today = china_now(now).date()
    for alert, deadline, case, pupil, school in session.execute(q):
        chans = receivers(session, alert.org_id, alert.kind)
        if not chans:
            continue
        msg = messages.deadline_message(kind=alert.kind, case_number=case.number, case_id=case.id,
                                        pupil_name=pupil.name, school=school.name,
                                        label=deadline.label or deadline.timer, actor=alert.actor,
                                        due_on=alert.due_on, today=today, base_url=base_url)
        made += post(session, chans, key=f"alert:{alert.id}", event=alert.kind, org_id=alert.org_id, msg=msg,
                     now=now, case_id=case.id)
    return made


def _report_deliveries(session: Session, now: dt.datetime, base_url: str) -> list[Delivery]:
    q = (select(ReportReminder, Org).join(Org, Org.id == ReportReminder.org_id)
         .where(ReportReminder.created_at >= aware(now) - LOOKBACK).order_by(ReportReminder.id))
    made: list[Delivery] = []
    for r, org in session.execute(q):
        chans = receivers(session, r.org_id, "report_due")
        if not chans:
            continue
        _kind, to, title = REPORT_LINES.get(org.kind, (r.kind, "上级", "报表"))
        msg = messages.report_message(stage=r.stage, org_name=org.name, title=title, to=to, as_of=r.as_of,
                                      due_on=r.due_on, base_url=base_url, org_id=org.id)
        made += post(session, chans, key=f"report:{r.id}", event="report_due", org_id=r.org_id, msg=msg, now=now)
    return made


def _review_deliveries(session: Session, now: dt.datetime, base_url: str) -> list[Delivery]:
    made: list[Delivery] = []
    day = china_now(now).date()
    chans = session.scalars(select(Channel).where(Channel.enabled.is_(True)).order_by(Channel.id)).all()
    for ch in chans:
        if "review_items" not in (ch.events or []):
            continue
        key = f"review:{day.isoformat()}"
        if session.scalar(select(Delivery.id).where(Delivery.channel_id == ch.id, Delivery.key == key)):
            continue
        since = session.scalar(select(func.max(Delivery.created_at)).where(
            Delivery.channel_id == ch.id, Delivery.event == "review_items")) or ch.created_at
        org = session.get(Org, ch.org_id)
        count = session.scalar(select(func.count()).select_from(ReviewItem).where(
            ReviewItem.in_scope(org), ReviewItem.status == "open", ReviewItem.created_at > aware(since))) or 0
        if count <= ch.review_threshold:
            continue
        msg = messages.review_message(org_name=org.name, count=count, threshold=ch.review_threshold,
                                      base_url=base_url)
        made += post(session, [ch], key=key, event="review_items", org_id=org.id, msg=msg, now=now)
    return made


def collect(session: Session, now: dt.datetime | None = None) -> dict:
    """Deliveries for what was raised (module doc); flushes, the caller commits then ``dispatch``es."""
    now = aware(now) or utcnow()
    base_url = str(settings()["PUBLIC_URL"])
    made = (_alert_deliveries(session, now, base_url) + _report_deliveries(session, now, base_url)
            + _review_deliveries(session, now, base_url))
    return {"created": len(made), "pending": [d.id for d in made if d.status == "pending"],
            "held": sum(d.status == "held" for d in made),
            "queued_digest": sum(d.status == "queued_digest" for d in made)}


def dispatch(delivery_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Queue the sending of committed deliveries; returns how many were queued. ``now`` only for a
    run on a given clock (tests, a run by hand): the worker otherwise sends at its own time."""
    n = 0
    for i in delivery_ids:
        if now is None:
            enqueue_task("notify_deliver", int(i))
        else:
            enqueue_task("notify_deliver", int(i), aware(now).isoformat())
        n += 1
    return n


# ---- one attempt ----------------------------------------------------------------------------------------

def _claim(session: Session, delivery_id: int, now: dt.datetime) -> bool:
    res = session.execute(update(Delivery).where(
        Delivery.id == delivery_id, Delivery.status.in_(("pending", "retrying")),
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
        .values(next_attempt_at=now + dt.timedelta(seconds=CLAIM_S)).execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def deliver(delivery_id: int, *, now: dt.datetime | None = None,
            factory: sessionmaker[Session] | None = None) -> str | None:
    """Send one delivery if it is due (the queue task ``notify_deliver``); returns its new status
    (None: not due, or another worker has it)."""
    now = aware(now) or utcnow()
    cfg = settings()
    factory = factory or session_factory()
    with factory() as session:
        if not _claim(session, delivery_id, now):
            return None
        d = session.get(Delivery, delivery_id)
        ch = session.get(Channel, d.channel_id)
        error = None
        try:
            send(ch.kind, ch.target, ch.secret, d.subject, d.body, cfg, webhook_hosts=webhook_hosts(cfg))
        except SendFailed as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - recorded on the delivery, tried again
            error = f"发送出错：{type(e).__name__}"
            log.exception("notify: delivery %s failed unexpectedly", delivery_id)
        d.attempts = (d.attempts or 0) + 1
        d.log = [*(d.log or []), {"at": now.isoformat(), "ok": error is None, "error": error}]
        delay = None
        if error is None:
            d.status, d.sent_at, d.last_error, d.next_attempt_at = "sent", now, None, None
        elif d.attempts >= int(cfg["NOTIFY_MAX_ATTEMPTS"]):
            d.status, d.last_error, d.next_attempt_at = "failed", error, None
        else:
            delay = float(cfg["NOTIFY_RETRY_BASE_S"]) * 2 ** (d.attempts - 1)
            d.status, d.last_error = "retrying", error
            d.next_attempt_at = now + dt.timedelta(seconds=delay)
        status = d.status
        session.commit()
        log.info("notify: delivery %s to channel %s (%s): %s%s", d.id, ch.id, ch.kind, status,
                 f" ({error})" if error else "")
    if delay is not None:
        enqueue_task("notify_deliver", delivery_id, delay=delay)
    return status


@queue_task("notify_deliver")
def deliver_task(delivery_id: int, now_iso: str | None = None) -> None:
    deliver(delivery_id, now=dt.datetime.fromisoformat(now_iso) if now_iso else None)


# ---- the minute tick: quiet hours over, retries due, digests ----------------------------------------------

def _send_digests(session: Session, now: dt.datetime, base_url: str) -> list[int]:
    local = china_now(now)
    out = []
    chans = session.scalars(select(Channel).where(Channel.digest.is_(True), Channel.enabled.is_(True))).all()
    for ch in chans:
        if local.time() < _hhmm(ch.digest_at or "08:00") or quiet_until(ch, now) is not None:
            continue
        items = session.scalars(select(Delivery).where(Delivery.channel_id == ch.id,
                                                       Delivery.status == "queued_digest")
                                .order_by(Delivery.id)).all()
        if not items:
            continue
        key = f"digest:{local.date().isoformat()}"
        if session.scalar(select(Delivery.id).where(Delivery.channel_id == ch.id, Delivery.key == key)):
            continue  # today's digest went out; what came later waits for tomorrow's
        msg = messages.digest_message(day=local.date(), items=[(d.subject, d.body) for d in items],
                                      base_url=base_url)
        made = post(session, [ch], key=key, event="digest", org_id=ch.org_id, msg=msg, now=now)
        for digest in made:
            for d in items:
                d.status, d.digest_id = "digested", digest.id
            out.append(digest.id)
    session.flush()
    return out


def tick(now: dt.datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> dict:
    """Release held deliveries, send due retries and digests (module doc). Idempotent."""
    now = aware(now) or utcnow()
    factory = factory or session_factory()
    base_url = str(settings()["PUBLIC_URL"])
    with factory() as session:
        released = session.scalars(select(Delivery).where(Delivery.status == "held",
                                                          Delivery.next_attempt_at <= now)).all()
        for d in released:
            d.status, d.next_attempt_at = "pending", None
        digests = _send_digests(session, now, base_url)
        due = session.scalars(select(Delivery.id).where(
            or_(and_(Delivery.status == "pending", Delivery.next_attempt_at.is_(None)),
                and_(Delivery.status.in_(("pending", "retrying")), Delivery.next_attempt_at <= now)))
            .order_by(Delivery.id)).all()
        session.commit()
    results = {"released": len(released), "digests": len(digests), "attempted": 0, "sent": 0, "failed": 0,
               "retrying": 0}
    for i in due:
        status = deliver(i, now=now, factory=factory)
        if status is not None:
            results["attempted"] += 1
            results[status] = results.get(status, 0) + 1
    return results


def delivery_json(d: Delivery) -> dict:
    return {"id": d.id, "channel_id": d.channel_id, "org_id": d.org_id, "key": d.key, "event": d.event,
            "case_id": d.case_id, "subject": d.subject, "body": d.body, "link": d.link, "status": d.status,
            "attempts": d.attempts, "log": d.log or [], "last_error": d.last_error,
            "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
            "digest_id": d.digest_id, "created_at": d.created_at.isoformat() if d.created_at else None,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None}


def deliveries_in(session: Session, org: Org, *, status: str | None = None, channel_id: int | None = None,
                  limit: int = 100, offset: int = 0) -> tuple[int, list[Delivery]]:
    q = select(Delivery).join(Channel, Channel.id == Delivery.channel_id).where(Channel.in_scope(org))
    if status:
        q = q.where(Delivery.status == status)
    if channel_id:
        q = q.where(Delivery.channel_id == channel_id)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Delivery.id.desc()).limit(limit).offset(offset)).all()
    return total, list(rows)
