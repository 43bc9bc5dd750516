"""A job worker killed with SIGKILL in the middle of a scan: the job's lease runs out, a newly
started worker's reaper queues it again, and it finishes exactly once — every page recorded once,
the pages read before the kill untouched, no review item twice (cases.store.jobs).

Real parts: ``python -m cases.store.jobs`` worker processes with the real OCR engines, the SQLite
queue or Redis, the test database (SQLite here; PostgreSQL in the database pass)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from cases.accounts.service import cheap_hasher, create_token, create_user
from cases.store.db import normalise_url
from tests.conftest import client_for
from tests.conftest_scans import SAMPLES, add_issued_notice

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("receipt_direct_flatbed200.jpg", "stub_photo.jpg", "original_sealed_jpeg50.jpg", "blank_page.png",
         "receipt_left_fax150_upside_down.png", "foreign_page.png")


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except (ImportError, OSError, redis.exceptions.RedisError):
        return None
    return url


def _tiff() -> bytes:
    imgs = [Image.open(SAMPLES / n).convert("RGB") for n in PAGES]
    buf = io.BytesIO()
    imgs[0].save(buf, format="TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate")
    return buf.getvalue()


def _worker(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "cases.store.jobs"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: the worker and its children
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _job(session, job_id):
    from cases.store.models import Job

    session.expire_all()
    return session.get(Job, job_id)


@pytest.mark.slow
@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_worker_killed_mid_scan_job_finishes_exactly_once(db_url, tmp_path, queue):
    from app import create_app
    from cases.demo import load_demo
    from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem

    postgres = normalise_url(db_url).get_backend_name() == "postgresql"
    if queue == "sqlite" and postgres:
        pytest.skip("the PostgreSQL pass runs the Redis queue (the SQLite queue ran in the SQLite pass)")
    redis_url = _redis_url() if queue == "redis" else None
    if queue == "redis" and redis_url is None:
        pytest.skip("Redis is not reachable")
    name = f"baoxue-kill-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "output"
    settings = {"TESTING": True, "HUEY_IMMEDIATE": False, "REDIS_URL": redis_url, "HUEY_NAME": name,
                "DATABASE_URL": db_url, "OUTPUT_DIR": out, "CREATE_SCHEMA": True, "QR_HMAC_SECRET": "test-qr-secret",
                "SECRET_KEY": "test", "PDF_WORKERS": 1}
    app = create_app(settings)
    services = app.extensions["baoxue"]
    session = services.session_factory()
    env = {**os.environ, "DATABASE_URL": db_url, "BAOXUE_OUTPUT_DIR": str(out), "BAOXUE_QR_SECRET": "test-qr-secret",
           "BAOXUE_HUEY_NAME": name, "BAOXUE_JOB_LEASE_S": "3", "BAOXUE_JOB_REAP_S": "1",
           "BAOXUE_JOB_WORKERS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    workers: list[subprocess.Popen] = []
    try:
        load_demo(session)
        session.commit()
        org_id = add_issued_notice(session, services.store).org_id
        form = {"org_id": str(org_id), "file": (io.BytesIO(_tiff()), "s.tiff")}
        clerk = create_user(session, username="clerk", display_name="clerk", org_id=org_id, roles=["school_clerk"],
                            password="Test-passw0rd", hasher=cheap_hasher(), by="test")
        token = create_token(session, clerk, name="test", expires_days=None, by="test").token
        session.commit()
        r = client_for(app, token).post("/api/v1/scans", data=form, content_type="multipart/form-data")
        assert r.status_code == 202, r.get_json()
        job_id, upload_id = r.get_json()["job_id"], r.get_json()["upload_id"]
        assert _job(session, job_id).status == "queued"

        workers.append(_worker(env, tmp_path / "worker1.log"))
        deadline = time.monotonic() + 240
        while (_job(session, job_id).done or 0) < 1:
            assert time.monotonic() < deadline, (tmp_path / "worker1.log").read_text()[-3000:]
            assert workers[0].poll() is None, (tmp_path / "worker1.log").read_text()[-3000:]
            time.sleep(0.05)
        _kill(workers[0])
        killed = _job(session, job_id)
        assert (killed.status, killed.attempts) == ("running", 1)
        assert 1 <= killed.done < len(PAGES), "the job finished before the worker could be killed"
        before = {p.page_index: p.id
                  for p in session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id))}
        items_before = sorted(session.scalars(select(ReviewItem.id).where(ReviewItem.upload_id == upload_id)))

        workers.append(_worker(env, tmp_path / "worker2.log"))  # its reaper finds the lease run out
        while _job(session, job_id).status not in ("done", "failed"):
            assert time.monotonic() < deadline, (tmp_path / "worker2.log").read_text()[-3000:]
            assert workers[1].poll() is None, (tmp_path / "worker2.log").read_text()[-3000:]
            time.sleep(0.2)
        job = _job(session, job_id)
        assert (job.status, job.attempts, job.done, job.total, job.error) == ("done", 2, len(PAGES), len(PAGES), None)
        pages = session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id)
                                .order_by(ReturnPage.page_index)).all()
        assert [p.page_index for p in pages] == list(range(len(PAGES)))  # each page once
        assert {i: p.id for i, p in enumerate(pages) if i in before} == before  # read before the kill: kept
        statuses = [(p.status, p.page_no) for p in pages]
        assert statuses[3] == ("blank", None) and statuses[5][0] == "unidentified"
        assert [s for s, _ in statuses[:3]] == ["read"] * 3 and statuses[4][0] == "read"
        items = session.execute(select(ReviewItem.id, ReviewItem.page_id, ReviewItem.field_path,
                                       ReviewItem.kind).where(ReviewItem.upload_id == upload_id)).all()
        assert len({(p, f, k) for _, p, f, k in items}) == len(items)  # no review item twice
        assert set(items_before) <= {i for i, *_ in items}
        assert session.scalar(select(func.count()).select_from(DocumentReturn)
                              .where(DocumentReturn.upload_id == upload_id)) == 1
        log2 = (tmp_path / "worker2.log").read_text()
        assert "lease expired (attempt 1); queued again" in log2
    finally:
        for w in workers:
            _kill(w)
        session.close()
        if redis_url:
            from cases.store import jobs

            jobs.get_huey().storage.flush_all()
        app.extensions["baoxue_engine"].dispose()
