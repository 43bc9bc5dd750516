"""Tables of push alerts and the scheduler (issue 16).

- ``Channel``: where a unit (``org_id``) or one user (``user_id``) is told: a 企业微信 group robot
  webhook, a 钉钉 custom robot webhook (with its 加签 secret when the robot uses signed requests) or
  an e-mail address; what to send (``events``), the review-queue threshold, quiet hours, and
  whether to send one daily digest instead of single messages. A channel receives what happens at
  its unit and below.
- ``Delivery``: one message for one channel, recorded from creation to ``sent`` / ``failed`` with
  every attempt (time, error). ``(channel_id, key)`` is unique: the key names the deadline stage
  (``alert:<id>`` = one engine alert = one deadline × T−1/breach; ``report:<id>`` one reporting
  reminder), so one stage never reaches a receiver twice.
- ``SchedulerRun``: the last run of each periodic task (shown by ``/api/v1/health``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cases.store.models import Base, OrgScoped, in_list, utcnow

CHANNEL_KINDS = ("wecom", "dingtalk", "email")
EVENTS = ("due_soon", "breach", "review_items", "report_due")
DELIVERY_STATUSES = ("pending", "held", "queued_digest", "digested", "retrying", "sent", "failed")


class Channel(OrgScoped, Base):
    """A push channel of a unit (``user_id`` NULL) or of one user of that unit."""

    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(500))  # webhook URL or e-mail address
    secret: Mapped[str | None] = mapped_column(String(200))  # 钉钉 加签 secret (SEC...)
    events: Mapped[list] = mapped_column(JSON, default=list)
    review_threshold: Mapped[int] = mapped_column(Integer, default=10)
    quiet_start: Mapped[str | None] = mapped_column(String(5))  # "22:00" China time
    quiet_end: Mapped[str | None] = mapped_column(String(5))  # "07:00"
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    digest_at: Mapped[str] = mapped_column(String(5), default="08:00")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint(f"kind IN ({in_list(CHANNEL_KINDS)})", name="kind"),)


class Delivery(OrgScoped, Base):
    """One message to one channel; ``org_id`` is the unit the message is about."""

    __tablename__ = "notify_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id"), index=True)
    key: Mapped[str] = mapped_column(String(120))
    event: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    log: Mapped[list] = mapped_column(JSON, default=list)  # [{"at", "ok", "error"}] per attempt
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("notify_deliveries.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()

    channel: Mapped[Channel] = relationship()

    __table_args__ = (UniqueConstraint("channel_id", "key"),
                      CheckConstraint(f"status IN ({in_list(DELIVERY_STATUSES)})", name="status"),
                      CheckConstraint(f"event IN ({in_list((*EVENTS, 'digest', 'test'))})", name="event"))


class SchedulerRun(Base):
    """The last run of one periodic task: when, how it ended, what it did."""

    __tablename__ = "scheduler_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="never")
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)


__all__ = ["Channel", "Delivery", "SchedulerRun", "CHANNEL_KINDS", "EVENTS", "DELIVERY_STATUSES"]
