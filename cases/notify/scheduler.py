"""The scheduler: what runs on its own in the worker that ``scripts/run.sh`` starts
(``python -m cases.store.jobs`` imports this module and Huey's consumer runs the periodic tasks).

- ``sweep`` (every hour at :05): the deadline sweep of the case engine for today (China date) —
  T−1 alerts, breaches into the 问题清单, 辍学认定 — then the push deliveries for what it raised.
- ``report_reminders`` (every hour at :10): the reporting calendar's reminders (T−1, due today,
  overdue) and their deliveries.
- ``deliveries`` (every minute): quiet hours over, retries due, daily digests.

Each is idempotent (running it twice in an hour, or on two workers, changes nothing more: alerts,
reminders and deliveries are unique per stage). Each run is recorded in ``scheduler_runs`` (start,
end, status, what it did, the error) and shown by ``GET /api/v1/health``. ``now`` may be given
(a fake clock in tests; ``python -m cases.notify.scheduler run sweep --now ...`` by hand).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases.engine import casework
from cases.ledgers import reporting
from cases.notify import delivery
from cases.notify.models import SchedulerRun
from cases.store.jobs import periodic_task
from cases.store.models import utcnow

log = logging.getLogger(__name__)

TASKS = {"sweep": "时限巡检（T−1提醒、逾期、问题清单）", "report_reminders": "报表报送提醒",
         "deliveries": "推送发送（免打扰结束、重试、每日汇总）"}
# A task whose last successful run is older than this is reported as stale by /health.
STALE_AFTER = {"sweep": dt.timedelta(hours=3), "report_reminders": dt.timedelta(hours=3),
               "deliveries": dt.timedelta(minutes=10)}


def _record(factory: sessionmaker[Session], name: str, fn: Callable[[], dict], now: dt.datetime) -> dict:
    with factory() as s:
        row = s.get(SchedulerRun, name) or SchedulerRun(name=name, runs=0)
        row.started_at, row.status = utcnow(), "running"
        s.add(row)
        s.commit()
    try:
        result = fn()
    except Exception as e:
        with factory() as s:
            row = s.get(SchedulerRun, name)
            row.finished_at, row.status, row.error = utcnow(), "error", f"{type(e).__name__}: {e}"[:2000]
            row.runs = (row.runs or 0) + 1
            s.commit()
        log.exception("scheduler: %s failed", name)
        raise
    with factory() as s:
        row = s.get(SchedulerRun, name)
        row.finished_at, row.status, row.error = utcnow(), "ok", None
        row.result = {**result, "now": now.isoformat()}
        row.runs = (row.runs or 0) + 1
        s.commit()
    return result


def _raise_and_push(name: str, raise_due: Callable[[Session, dt.date], dict], now: dt.datetime | None,
                    factory: sessionmaker[Session] | None) -> dict:
    """One recorded run that raises what is due today (``raise_due(session, today)`` answers the
    counts to record), then creates the push deliveries for it and hands them to the senders."""
    clock, now = now, now or utcnow()
    factory = factory or delivery.session_factory()

    def work() -> dict:
        today = delivery.china_now(now).date()
        with factory() as s:
            counts = raise_due(s, today)
            s.commit()
            pushed = delivery.collect(s, now)
            s.commit()
        return {"today": today.isoformat(), **counts, "deliveries": pushed["created"],
                "queued": delivery.dispatch(pushed["pending"], now=clock)}

    return _record(factory, name, work, now)


def run_sweep(now: dt.datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> dict:
    return _raise_and_push("sweep", casework.sweep, now, factory)


def _reminders(session: Session, today: dt.date) -> dict:
    return {"reminders": len(reporting.remind(session, today))}


def run_report_reminders(now: dt.datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> dict:
    return _raise_and_push("report_reminders", _reminders, now, factory)


def run_deliveries(now: dt.datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> dict:
    now = now or utcnow()
    factory = factory or delivery.session_factory()
    return _record(factory, "deliveries", lambda: delivery.tick(now, factory=factory), now)


RUNNERS = {"sweep": run_sweep, "report_reminders": run_report_reminders, "deliveries": run_deliveries}


def run_all(now: dt.datetime | None = None, *, factory: sessionmaker[Session] | None = None) -> dict:
    """Every task once, in order (what an hour of the worker does)."""
    return {name: fn(now, factory=factory) for name, fn in RUNNERS.items()}


@periodic_task("sweep", minute="5")
def _periodic_sweep() -> None:
    run_sweep()


@periodic_task("report_reminders", minute="10")
def _periodic_reminders() -> None:
    run_report_reminders()


@periodic_task("deliveries", minute="*")
def _periodic_deliveries() -> None:
    run_deliveries()


def status(session: Session, now: dt.datetime | None = None) -> dict:
    """The last run of each task for ``/health``: when, how it ended, what it did, stale or not."""
    now = now or utcnow()
    rows = {r.name: r for r in session.scalars(select(SchedulerRun))}
    out = {}
    for name, label in TASKS.items():
        r = rows.get(name)
        finished = delivery.aware(r.finished_at) if r else None
        out[name] = {"label": label, "status": r.status if r else "never",
                     "last_started_at": delivery.aware(r.started_at).isoformat() if r and r.started_at else None,
                     "last_finished_at": finished.isoformat() if finished else None,
                     "runs": r.runs if r else 0, "result": r.result if r else None,
                     "error": r.error if r else None,
                     "stale": finished is None or now - finished > STALE_AFTER[name]}
    return out


def main(argv: list[str] | None = None, *, config) -> int:
    """``python -m cases.notify.scheduler run <task|all> [--now ISO]``: one run by hand, with the
    settings ``config`` (passed in by the ``__main__`` block)."""
    from cases.store.db import make_engine, make_session_factory
    from cases.store.services import Services, register

    parser = argparse.ArgumentParser(description="Run a scheduler task once.")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("task", choices=[*RUNNERS, "all"])
    parser.add_argument("--now", type=dt.datetime.fromisoformat, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from cases.store.jobs import init_jobs

    factory = make_session_factory(make_engine(config.DATABASE_URL))
    init_jobs(config, session_factory=factory)
    register(Services.from_config({k: getattr(config, k) for k in dir(config) if k.isupper()}, factory))
    now = args.now.replace(tzinfo=args.now.tzinfo or delivery.CHINA_TZ) if args.now else None
    result = run_all(now, factory=factory) if args.task == "all" else RUNNERS[args.task](now, factory=factory)
    print(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from config import Config

    sys.exit(main(config=Config))
