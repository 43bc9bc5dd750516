"""No burned numbers (issue 14 item 4): with the real LibreOffice killed again and again, every
issue request fails cleanly (503 with Retry-After, a Chinese message), no document number is
consumed by a failed request, ``/health`` says the converter is unavailable, and once LibreOffice
is back the next document gets the next number of a gapless series."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
from sqlalchemy import func, select

from cases.store.models import AuditLog, Document, NumberSequence, Org, ReleasedNumber, to_json
from forms.converter_health import BREAKER
from tests.samples_data import sample_input


@pytest.fixture
def school(app_session):
    org = Org(kind="school", name="青禾县城关镇第一小学", code="2141001234", doc_prefix="城一小")
    app_session.add(org)
    app_session.commit()
    return org.id


@pytest.fixture
def breaker():
    BREAKER.configure(failures=2, retry_after_s=4)
    BREAKER.succeeded()
    yield BREAKER
    BREAKER.configure(failures=3, retry_after_s=30)
    BREAKER.succeeded()


def _issue(client, school):
    return client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school, "format": "pdf",
                                                  "data": to_json(sample_input("dropout_report"))})


def _seq(r) -> int:
    return int(re.search(r"〕(\d+)号", r.get_json()["number"]).group(1))


class Killer(threading.Thread):
    """Kills the converter's soffice process groups (ours, by id) as soon as they appear."""

    def __init__(self, converter):
        super().__init__(daemon=True)
        self.converter = converter
        self.stop = threading.Event()
        self.kills = 0

    def run(self):
        while not self.stop.is_set():
            for pid in self.converter.pids():
                try:
                    os.killpg(pid, signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.02)


def test_converter_killed_repeatedly_consumes_no_number(app, client, app_session, school, breaker, services):
    from forms.pdf import get_converter

    first = _issue(client, school)
    assert first.status_code == 201, first.get_json()
    assert _seq(first) == 1

    killer = Killer(get_converter(services.pdf_workers, services.pdf_timeout))
    killer.start()
    try:
        answers = []
        for _ in range(5):
            t = time.monotonic()
            r = _issue(client, school)
            answers.append((r.status_code, r.get_json()["error"], r.headers.get("Retry-After"), time.monotonic() - t))
            assert "未占用文号" in r.get_json()["message"] and "LibreOffice" in r.get_json()["message"]
        health = client.get("/api/v1/health").get_json()
    finally:
        killer.stop.set()
        killer.join()
    assert killer.kills >= 1
    assert all(a[:2] == (503, "converter_unavailable") and int(a[2]) >= 1 for a in answers), answers
    # after two failures in a row the breaker is open: refused at once, without trying LibreOffice
    assert all(a[3] < 1.0 for a in answers[2:]), answers
    assert health["status"] == "degraded" and health["pdf_converter"]["status"] == "unavailable"
    assert health["pdf_converter"]["retry_after"] >= 1

    app_session.expire_all()
    docs = app_session.scalars(select(Document)).all()
    assert [(d.status, d.seq) for d in docs] == [("issued", 1)]  # no voided or half-made documents
    assert app_session.scalar(select(NumberSequence.last_value).where(
        NumberSequence.family == docs[0].family)) == 1
    assert app_session.scalar(select(func.count()).select_from(ReleasedNumber)) == 0
    failed = app_session.scalars(select(AuditLog).where(AuditLog.action == "document.render_failed")).all()
    assert len(failed) == 2 and all("2号" in (f.after or {}).get("released_number", "") for f in failed)

    time.sleep(BREAKER.retry_after() + 0.2)  # the pause ends: the next request tries LibreOffice again
    again = _issue(client, school)
    assert again.status_code == 201, again.get_json()
    assert _seq(again) == 2
    assert client.get("/api/v1/health").get_json()["pdf_converter"]["status"] == "ok"


def test_released_number_is_taken_first(app_session, school):
    from cases.store.numbering import release_number, reserve_number

    got = [reserve_number(app_session, org=school, family="f", year=2026) for _ in range(3)]
    assert got == [1, 2, 3]
    release_number(app_session, org=school, family="f", year=2026, seq=2)  # not the last: kept aside
    release_number(app_session, org=school, family="f", year=2026, seq=3)  # the last: the counter steps back
    app_session.commit()
    assert [reserve_number(app_session, org=school, family="f", year=2026) for _ in range(3)] == [2, 3, 4]
    assert app_session.scalar(select(func.count()).select_from(ReleasedNumber)) == 0


def test_a_render_left_unfinished_by_a_dead_process_gives_its_number_back(client, app_session, school, breaker):
    import datetime as dt

    first = _issue(client, school)
    assert _seq(first) == 1
    # a process reserved number 2 and died while rendering: its row stays "rendering"
    from cases.store.numbering import number_document
    from forms.registry import get_spec

    spec = get_spec("dropout_report")
    dead = Document(id="DEADRENDER01", org_id=school, form="dropout_report", family=spec_family(spec),
                    template_version=spec.version, year=dt.date.today().year, status="rendering", created_by="x",
                    created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    app_session.add(dead)
    number_document(app_session, dead, issuer=app_session.get(Org, school), abbr=spec.abbr(None))
    app_session.commit()
    assert dead.seq == 2
    again = _issue(client, school)
    assert again.status_code == 201, again.get_json()
    assert _seq(again) == 2  # the dead render's number, not 3
    app_session.expire_all()
    assert app_session.get(Document, "DEADRENDER01") is None
    assert app_session.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "document.render_failed", AuditLog.target == "document:DEADRENDER01")) == 1


def spec_family(spec) -> str:
    from cases.store.numbering import family_key

    return family_key(spec.code, spec.abbr(None))
