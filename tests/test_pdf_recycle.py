"""LibreOffice kept healthy: each warm listener is recycled after N conversions or above a resident
memory limit, off the caller's path — every document is delivered, none fails, the pool keeps
serving while one listener restarts — and soffice runs at a lower CPU priority than the web."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from forms import pdf, tools
from tests.test_pdf import _text, docs  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")
NAMES = ["李明", "王芳", "赵磊", "陈静"]


def _wait_running(conv, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while conv.stats["running"] < n and time.monotonic() < deadline:
        time.sleep(0.1)


def test_recycled_after_n_conversions_without_failing_a_document(docs):  # noqa: F811
    with pdf.PdfConverter(workers=1, recycle_after=3, recycle_rss_mb=0, nice=0) as conv:
        seen_pids = []
        for i in range(7):
            data = conv.convert(docs[i % 4])
            assert NAMES[i % 4] in _text(data)  # every document delivered, in full
            deadline = time.monotonic() + 60
            while conv.stats["recycles"] < (i + 1) // 3 and time.monotonic() < deadline:
                time.sleep(0.05)  # the recycle runs apart from the caller
            _wait_running(conv, 1)
            seen_pids.append(conv.pids()[0])
        # Recycled after the 3rd and the 6th document: three soffice processes served the seven.
        assert len(set(seen_pids)) == 3
        assert seen_pids[0] == seen_pids[1] != seen_pids[2] == seen_pids[3] == seen_pids[4] != seen_pids[5]
        assert conv.stats["recycles"] == 2 and conv.stats["restarts"] == 0
        assert conv.stats["conversions"] == 7


def test_recycled_above_the_memory_limit(docs):  # noqa: F811
    with pdf.PdfConverter(workers=1, recycle_after=0, recycle_rss_mb=1, nice=0) as conv:
        conv.convert(docs[0])
        first = conv.pids()
        assert conv.stats["rss_mb"] == 0 or conv.stats["rss_mb"] > 1
        assert "王芳" in _text(conv.convert(docs[1]))  # waits for the fresh listener, does not fail
        assert conv.stats["recycles"] >= 1 and conv.pids() != first
    with pdf.PdfConverter(workers=1, recycle_after=0, recycle_rss_mb=4096, nice=0) as conv:
        for d in docs:
            conv.convert(d)
        rss = conv.stats["rss_mb"]
        assert 50 < rss < 4096 and conv.stats["recycles"] == 0  # a real soffice measured, under the limit


def test_pool_keeps_serving_while_a_listener_recycles(docs):  # noqa: F811
    with pdf.PdfConverter(workers=2, recycle_after=2, recycle_rss_mb=0, nice=0) as conv:
        conv.start()
        jobs = [docs[i % 4] for i in range(10)]
        with ThreadPoolExecutor(4) as ex:
            out = list(ex.map(conv.convert, jobs))
        for i, data in enumerate(out):
            assert NAMES[i % 4] in _text(data)
        _wait_running(conv, 2)
        assert conv.stats["conversions"] == 10 and conv.stats["recycles"] >= 4 and conv.stats["restarts"] == 0


def test_soffice_runs_niced(docs):  # noqa: F811
    with pdf.PdfConverter(workers=1, nice=7) as conv:
        conv.convert(docs[0])
        (pid,) = conv.pids()
        nice = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])
        assert nice == os.nice(0) + 7 or nice == 19
        assert threading.active_count() >= 1
