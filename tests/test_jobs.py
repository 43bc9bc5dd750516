"""Background jobs: Job rows, immediate mode, the SQLite queue, and a real Redis consumer."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from huey import MemoryHuey, RedisHuey, SqliteHuey

from cases.store import jobs
from cases.store.models import Job, Org
from cases.store.storage import Store, save_upload
from forms.errors import NotFound, ValidationFailed


@jobs.job_task("test_fail")
def _failing(ctx: jobs.JobContext, name: str) -> str:
    ctx.progress(1, 3)
    raise ValidationFailed(f"文件“{name}”无法识别")


@jobs.job_task("test_count")
def _count(ctx: jobs.JobContext, n: int) -> None:
    for i in range(1, n + 1):
        ctx.progress(i, n)


def _config(db_url, tmp_path, **extra):
    return {"DATABASE_URL": db_url, "OUTPUT_DIR": tmp_path / "out", "HUEY_IMMEDIATE": True, **extra}


def _uploads(session, store, n):
    org = Org(kind="school", name="东河镇中心小学")
    session.add(org)
    session.flush()
    ups = [save_upload(session, store, filename=f"scan{i}.pdf", data=b"%PDF-" + bytes([i]) * 50, org=org,
                       user="clerk", mime="application/pdf") for i in range(n)]
    session.commit()
    return ups


def test_immediate_task_updates_job_row(session, session_factory, db_url, tmp_path):
    huey = jobs.init_jobs(_config(db_url, tmp_path), session_factory=session_factory)
    assert isinstance(huey, MemoryHuey) and huey.immediate
    store = Store(tmp_path / "out")
    ups = _uploads(session, store, 3)
    job_id = jobs.submit(session, "verify_store", store.root)
    session.expire_all()
    job = jobs.get_job(session, job_id)
    assert (job.kind, job.status, job.done, job.total, job.error) == ("verify_store", "done", 3, 3, None)
    report = json.loads(open(job.result_path, encoding="utf-8").read())
    assert report == {"checked": 3, "problems": []}
    # Alter one stored file behind the store's back: the next run finds it.
    altered = store.path(ups[1].stored_path)
    os.chmod(altered, 0o644)
    altered.write_bytes(b"tampered")
    job2 = jobs.submit(session, "verify_store", str(store.root))
    session.expire_all()
    report = json.loads(open(jobs.get_job(session, job2).result_path, encoding="utf-8").read())
    assert report["problems"] == [{"upload_id": ups[1].id, "problem": "altered", "path": ups[1].stored_path}]


def test_failed_task_records_the_error(session, session_factory, db_url, tmp_path):
    jobs.init_jobs(_config(db_url, tmp_path), session_factory=session_factory)
    job_id = jobs.submit(session, "test_fail", "坏.jpg", total=3)
    session.expire_all()
    job = session.get(Job, job_id)
    assert job.status == "failed" and job.done == 1
    assert "坏.jpg" in job.error and "ValidationFailed" in job.error


def test_payloads_are_ids_and_paths(session, session_factory, db_url, tmp_path):
    jobs.init_jobs(_config(db_url, tmp_path), session_factory=session_factory)
    with pytest.raises(TypeError, match="ids and paths"):
        jobs.submit(session, "test_count", Org(kind="school", name="x"))
    with pytest.raises(NotFound):
        jobs.submit(session, "no_such_kind")
    with pytest.raises(NotFound):
        jobs.progress(str(uuid.uuid4()), 1)


def test_sqlite_queue_round_trip(session, session_factory, db_url, tmp_path):
    """Default (not immediate, no Redis): tasks wait in <output>/huey.db until a worker runs them."""
    huey = jobs.init_jobs(_config(db_url, tmp_path, HUEY_IMMEDIATE=False), session_factory=session_factory)
    assert isinstance(huey, SqliteHuey) and (tmp_path / "out" / "huey.db").exists()
    job_id = jobs.submit(session, "test_count", 4)
    session.expire_all()
    assert session.get(Job, job_id).status == "queued"
    assert huey.pending_count() == 1
    huey.execute(huey.dequeue())  # what a consumer's worker does
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.done, job.total) == ("done", 4, 4)
    assert huey.pending_count() == 0


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except (ImportError, OSError, redis.exceptions.RedisError):
        return None
    return url


def test_redis_queue_with_real_consumer(session, session_factory, db_url, tmp_path):
    url = _redis_url()
    if url is None:
        pytest.skip("Redis is not reachable")
    name = f"baoxue-test-{uuid.uuid4().hex[:8]}"  # a private queue: parallel test runs do not meet
    huey = jobs.init_jobs(_config(db_url, tmp_path, HUEY_IMMEDIATE=False, REDIS_URL=url, HUEY_NAME=name),
                          session_factory=session_factory)
    assert isinstance(huey, RedisHuey)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False, initial_delay=0.05,
                                    max_delay=0.2, check_worker_health=False)
    try:
        consumer.start()
        job_id = jobs.submit(session, "test_count", 5)
        deadline = time.monotonic() + 20
        while True:
            session.expire_all()
            job = session.get(Job, job_id)
            if job.status in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (job.status, job.done, job.total) == ("done", 5, 5)
    finally:
        consumer.stop(graceful=True)
        for s, handler in saved.items():
            signal.signal(s, handler)
        huey.storage.flush_all()


# ---- leases, claims and the reaper ------------------------------------------------------------------

def _expire_lease(session, job_id, seconds=120):
    import datetime as dt

    from cases.store.models import utcnow

    job = session.get(Job, job_id)
    job.lease_until = utcnow() - dt.timedelta(seconds=seconds)
    session.commit()


def _queued(session, session_factory, db_url, tmp_path, kind, *args, **cfg):
    huey = jobs.init_jobs(_config(db_url, tmp_path, HUEY_IMMEDIATE=False, **cfg), session_factory=session_factory)
    job_id = jobs.submit(session, kind, *args)
    return huey, job_id


def test_a_second_message_for_a_claimed_job_is_dropped(session, session_factory, db_url, tmp_path):
    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_count", 3)
    message = huey.dequeue()
    huey.execute(message)
    huey.execute(message)  # the same message delivered twice (a requeue racing a slow worker)
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.done, job.attempts, job.payload) == ("done", 3, 1, [3])
    assert job.lease_until is None


@jobs.job_task("test_die")
def _dies_once(ctx: jobs.JobContext, marker: str) -> str:
    """Dies (like a SIGKILL: not an Exception) on its first run, finishes on the next."""
    path = Path(marker)
    ctx.progress(1, 2)
    if not path.exists():
        path.write_text("first run")
        raise KeyboardInterrupt("worker killed")
    ctx.progress(2, 2)
    return str(path)


def test_reaper_requeues_an_expired_lease_and_the_job_finishes_once(session, session_factory, db_url, tmp_path):
    marker = tmp_path / "marker"
    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_die", str(marker))
    huey.execute(huey.dequeue())  # Huey logs "did not finish"
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.done, job.attempts) == ("running", 1, 1) and huey.pending_count() == 0
    assert jobs.reap() == {"requeued": [], "failed": [], "resent": []}  # lease still valid: left alone
    _expire_lease(session, job_id)
    assert jobs.reap()["requeued"] == [job_id]
    session.expire_all()
    assert (session.get(Job, job_id).status, huey.pending_count()) == ("queued", 1)
    assert jobs.reap()["requeued"] == []  # not twice
    huey.execute(huey.dequeue())
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.done, job.attempts, job.result_path, job.error) == ("done", 2, 2, str(marker), None)


@jobs.job_task("test_always_dies")
def _always_dies(ctx: jobs.JobContext) -> None:
    ctx.progress(0, 5)
    raise KeyboardInterrupt("worker killed")


def test_reaper_gives_up_after_max_attempts_with_a_visible_reason(app, session, session_factory, db_url,
                                                                   tmp_path):
    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_always_dies", JOB_MAX_ATTEMPTS=2)
    for _ in range(2):
        huey.execute(huey.dequeue())
        _expire_lease(session, job_id)
        found = jobs.reap()
    assert found["failed"] == [job_id] and huey.pending_count() == 0
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert "中断了2次" in job.error and "重新提交" in job.error
    # What the person polling the job reads (the API shows the same row).
    with app.app_context():
        from web.api import job_json

        with app.test_request_context():
            body = job_json(job)
    assert body["status"] == "failed" and body["attempts"] == 2 and "已停止重试" in body["error"]


@jobs.job_task("test_slow")
def _slow(ctx: jobs.JobContext, n: int) -> str:
    for i in range(n):
        ctx.progress(i, n)
        time.sleep(0.05)
    return "finished"


def test_a_worker_that_lost_its_lease_stops_and_its_result_is_discarded(session, session_factory, db_url, tmp_path):
    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_slow", 50)
    message = huey.dequeue()
    import threading

    t = threading.Thread(target=huey.execute, args=(message,))
    t.start()
    deadline = time.monotonic() + 10
    while session.get(Job, job_id).status != "running" and time.monotonic() < deadline:
        session.expire_all()
        time.sleep(0.05)
    # The reaper thinks the worker is dead (its lease ran out) and gives the job to another one.
    _expire_lease(session, job_id)
    assert jobs.reap()["requeued"] == [job_id]
    t.join(timeout=20)
    session.expire_all()
    job = session.get(Job, job_id)
    assert (job.status, job.worker) == ("queued", None)  # the first worker wrote nothing after losing it
    huey.execute(huey.dequeue())
    session.expire_all()
    assert (session.get(Job, job_id).status, session.get(Job, job_id).attempts) == ("done", 2)


def test_heartbeat_keeps_a_long_job_leased(session, session_factory, db_url, tmp_path):
    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_slow", 48, JOB_LEASE_SECONDS=0.9)
    import threading

    t = threading.Thread(target=huey.execute, args=(huey.dequeue(),))
    t.start()
    reaped = []
    while t.is_alive():
        reaped += jobs.reap()["requeued"]  # the job runs 2.4 s, more than twice its lease
        time.sleep(0.1)
    session.expire_all()
    assert reaped == [] and session.get(Job, job_id).status == "done"


def test_a_queued_job_whose_message_was_lost_is_sent_again(session, session_factory, db_url, tmp_path):
    import datetime as dt

    from cases.store.models import utcnow

    huey, job_id = _queued(session, session_factory, db_url, tmp_path, "test_count", 2)
    assert jobs.reap()["resent"] == []  # in the queue
    huey.flush()  # the queue lost its messages (a flushed Redis)
    assert jobs.reap()["resent"] == []  # too recent to call lost
    job = session.get(Job, job_id)
    job.updated_at = utcnow() - dt.timedelta(hours=1)
    session.commit()
    assert jobs.reap()["resent"] == [job_id]
    huey.execute(huey.dequeue())
    session.expire_all()
    assert session.get(Job, job_id).status == "done"


_WARMED: list[str] = []


@jobs.worker_warmup("test_warm_ok")
def _warm_ok() -> None:
    _WARMED.append("ok")


@jobs.worker_warmup("test_warm_broken")
def _warm_broken() -> None:
    raise RuntimeError("model file missing")


def test_worker_warmups_run_once_and_a_failing_one_is_logged_and_skipped(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="cases.store.jobs")
    _WARMED.clear()
    took = jobs.warm_up(["test_warm_ok", "test_warm_broken"])
    assert _WARMED == ["ok"]
    assert list(took) == ["test_warm_ok"] and 0 <= took["test_warm_ok"] < 5
    assert "warm-up test_warm_broken failed" in caplog.text and "model file missing" in caplog.text
    assert "worker warm-up: test_warm_ok" in caplog.text


def test_worker_modules_register_the_scan_reader_warmup():
    import importlib

    for module in jobs.JOB_MODULES:
        importlib.import_module(module)
    assert "scan_reader" in jobs.warmups()
