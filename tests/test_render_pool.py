"""Reads never wait behind rendering (issue 14 item 8): a web process renders documents in its own
renderer processes behind a bounded queue.

The converter is slowed on purpose the way the real renderer slows a web process: each conversion
first holds the interpreter lock for ``HOLD_S`` seconds (a C call that keeps it, like pure-Python
rendering does between switches), then converts for real with LibreOffice. Rendered in the web
process, that lock stops every read of that process; in the renderer pool it does not. When every
renderer is busy and the queue is full, issuing answers 503 with Retry-After at once, and no
document number is taken."""

from __future__ import annotations

import ctypes
import re
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from cases.documents import render_pool
from cases.store.models import AuditLog, Document, NumberSequence, Org, ReleasedNumber, to_json
from forms import pdf, tools
from tests.conftest import client_for
from tests.samples_data import sample_input

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")
HOLD_S = 3.0
PIECE_S = 0.5
HOLDING = threading.Event()  # set while a conversion in this process holds the lock
PIECES_LEFT = [0]  # of that hold, the pieces still to come after the one running


def hold_the_lock_then_convert() -> None:
    """``setup`` of a renderer (or of this process): every conversion holds the interpreter lock
    for HOLD_S seconds, in pieces (as pure-Python work lets other threads in only between long steps), before
    converting. ``PyDLL`` calls keep the lock (``CDLL`` ones release it)."""
    libc = ctypes.PyDLL(None)
    original = pdf.PdfConverter.convert_with_layout

    def slow(self, docx):
        HOLDING.set()
        pieces = round(HOLD_S / PIECE_S)
        for k in range(pieces):
            PIECES_LEFT[0] = pieces - k - 1
            libc.usleep(int(PIECE_S * 1_000_000))
        HOLDING.clear()
        return original(self, docx)

    pdf.PdfConverter.convert_with_layout = slow


@pytest.fixture
def school(app_session):
    org = Org(kind="school", name="青禾县城关镇第一小学", code="2141001234", doc_prefix="城一小")
    app_session.add(org)
    app_session.commit()
    return org.id


@pytest.fixture
def pool(app, services):
    """A renderer pool of one process and a queue of two documents, its LibreOffice started."""
    p = render_pool.configure(1, 2, nice=5, pdf_settings=dict(pdf.SETTINGS), setup=hold_the_lock_then_convert)
    p.start(render_pool.RenderSettings.of(services))
    yield p
    render_pool.configure(0, 0)


def _issue(client, school):
    return client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school, "format": "pdf",
                                                  "data": to_json(sample_input("dropout_report"))})


def _seq(r) -> int:
    return int(re.search(r"〕(\d+)号", r.get_json()["number"]).group(1))


def _issue_in_background(app, token, school, answers: list) -> threading.Thread:
    t = threading.Thread(target=lambda: answers.append(_issue(client_for(app, token), school)), daemon=True)
    t.start()
    return t


def _wait_pending(p, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while p.stats()["pending"] < n:
        assert time.monotonic() < deadline, p.stats()
        time.sleep(0.02)


def _timed_read(client) -> float:
    t = time.monotonic()
    r = client.get("/api/v1/orgs")
    assert r.status_code == 200, r.get_json()
    return time.monotonic() - t


def _check_while_busy(client, school, pool) -> None:
    """With both places of the queue taken: reads are answered at once, a third document is refused."""
    _wait_pending(pool, 2)
    time.sleep(0.3)  # the first conversion is holding its renderer's lock now
    reads = [_timed_read(client) for _ in range(5)]
    assert pool.stats()["pending"] == 2  # the renders are still running: the reads did not wait for them
    assert max(reads) < PIECE_S, reads

    health = client.get("/api/v1/health").get_json()["renderers"]
    assert (health["processes"], health["pending"], health["limit"]) == (1, 2, 2)
    busy = _issue(client, school)  # a third document: the queue is full
    assert busy.status_code == 503, busy.get_json()
    body = busy.get_json()
    assert body["error"] == "renderer_busy" and "未占用文号" in body["message"] and "上限2份" in body["message"]
    assert 1 <= int(busy.headers["Retry-After"]) <= 60


def test_reads_are_answered_while_every_renderer_is_busy(app, client, root_token, school, pool, app_session):
    renderer = pool.renderer_stats()[0]
    assert renderer["pid"] > 0 and renderer["nice"] >= 5 and renderer["running"] == 1  # niced, LibreOffice warm
    answers: list = []
    workers = [_issue_in_background(app, root_token, school, answers) for _ in range(2)]
    try:
        _check_while_busy(client, school, pool)
    finally:
        for w in workers:
            w.join(120)
    assert sorted(r.status_code for r in answers) == [201, 201], [r.get_json() for r in answers]
    assert sorted(_seq(r) for r in answers) == [1, 2]
    app_session.expire_all()
    docs = app_session.scalars(select(Document)).all()
    assert sorted((d.status, d.seq) for d in docs) == [("issued", 1), ("issued", 2)]
    assert all(d.pdf_sha256 and d.docx_sha256 and d.pages for d in docs)
    assert app_session.scalar(select(NumberSequence.last_value).where(
        NumberSequence.family == docs[0].family)) == 2  # the refused request took no number
    assert app_session.scalar(select(func.count()).select_from(ReleasedNumber)) == 0
    assert app_session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "document.render_failed")) == 0
    assert pool.stats()["refused"] == 1 and pool.stats()["rendered"] == 2

    again = _issue(client, school)  # the queue has room again: the next number
    assert again.status_code == 201 and _seq(again) == 3


def test_rendered_in_the_web_process_reads_wait(app, client, root_token, school, services):
    """The same slowed converter without a pool: a read waits for the lock (what the pool is for,
    and proof that the test above could fail)."""
    hold_the_lock_then_convert_here = pdf.PdfConverter.convert_with_layout
    switch = sys.getswitchinterval()
    # A read shorter than one switch interval (5 ms) could run whole between two pieces of the held
    # lock and never wait; a short interval makes the read hand the lock back to the renderer
    # mid-way, as any real read (longer than 5 ms on a busy server) does.
    sys.setswitchinterval(1e-4)
    try:
        hold_the_lock_then_convert()
        pdf.get_converter(services.pdf_workers, services.pdf_timeout).start()
        answers: list = []
        worker = _issue_in_background(app, root_token, school, answers)
        try:
            assert HOLDING.wait(60)  # the conversion holds this process's lock now
            # (on a loaded machine this thread may get the lock only after the hold's last piece:
            # then nothing is left for the read to wait for)
            during = HOLDING.is_set() and PIECES_LEFT[0] > 0
            waited = _timed_read(client)
        finally:
            worker.join(120)
    finally:
        sys.setswitchinterval(switch)
        pdf.PdfConverter.convert_with_layout = hold_the_lock_then_convert_here
    assert answers[0].status_code == 201
    assert waited >= PIECE_S * 0.9 or not during, waited


def test_a_renderer_that_dies_is_replaced_and_takes_no_number(app, client, school, pool, app_session):
    import os
    import signal

    first = _issue(client, school)
    assert first.status_code == 201 and _seq(first) == 1
    answers: list = []
    worker = threading.Thread(target=lambda: answers.append(_issue(client, school)), daemon=True)
    worker.start()
    _wait_pending(pool, 1)
    time.sleep(0.5)
    os.kill(pool.renderer_pids()[0], signal.SIGKILL)  # ours, by id
    worker.join(120)
    r = answers[0]
    assert r.status_code == 503 and "未占用文号" in r.get_json()["message"], r.get_json()
    assert pool.stats()["replaced"] == 1
    from forms.converter_health import BREAKER

    BREAKER.succeeded()
    again = _issue(client, school)  # a fresh renderer: the number the failed request gave back
    assert again.status_code == 201, again.get_json()
    assert _seq(again) == 2
    app_session.expire_all()
    assert sorted(d.seq for d in app_session.scalars(select(Document))) == [1, 2]


def test_renderers_outlive_a_group_sigterm_and_quit_libreoffice_with_the_pool(pool):
    """gunicorn stopping sends SIGTERM to its whole process group, renderers included: a renderer
    ignores it (the web process ends it, after the document it renders); when the pool ends, each
    renderer exits normally and quits its soffice, which would otherwise run on parentless."""
    import os
    import signal

    renderer = pool.renderer_stats()[0]
    assert renderer["soffice_pids"], renderer
    os.kill(renderer["pid"], signal.SIGTERM)  # ours, by id
    time.sleep(0.5)
    assert pool.renderer_stats()[0]["pid"] == renderer["pid"]  # still serving
    pool.shutdown()
    deadline = time.monotonic() + 30
    while _running_in_groups(renderer["soffice_pids"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running_in_groups(renderer["soffice_pids"])


def _running_in_groups(groups) -> list[tuple[int, str, str]]:
    """Processes of these process groups that still run (not zombies): (pid, state, name)."""
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name_end = (text := stat.read_text()).rindex(")")
        except (OSError, ValueError):
            continue
        fields = text[name_end + 2:].split()
        if int(fields[2]) in groups and fields[0] != "Z":
            out.append((int(stat.parent.name), fields[0], text[text.index("(") + 1:name_end]))
    return out
