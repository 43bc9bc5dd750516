"""Every job kind is idempotent (cases.store.jobs: a job whose worker died is run again by the
reaper): run twice with the same job id, a task leaves what running once leaves — no second
document number, no duplicated page or review item, the same result."""

from __future__ import annotations

import importlib
import io
import json
import zipfile

from sqlalchemy import func, select

from cases.store import jobs
from cases.store.models import Document, Job, NumberSequence, Org, Upload
from config import Config
from tests.test_scans_api import _post, _tiff

# kind -> the test below that runs it twice
IDEMPOTENCY_TESTS = {
    "verify_store": "test_verify_store_twice",
    "batch_render": "test_batch_render_twice",
    "return_read": "test_return_read_twice",
    "dossier_batch": "test_dossier_batch_twice",
}


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _again(session, services, job_id: str):
    """Run the job's task function once more under the same id, as the reaper would."""
    job = session.get(Job, job_id)
    ctx = jobs.JobContext(job_id=job_id, output_dir=services.output_dir)
    return jobs.kinds()[job.kind](ctx, *job.payload)


def test_every_job_kind_has_an_idempotency_test(app):
    for module in (*jobs.JOB_MODULES, *Config.JOB_MODULES):
        importlib.import_module(module)
    kinds = {k for k in jobs.kinds() if not k.startswith("test_")}
    assert kinds <= set(IDEMPOTENCY_TESTS), f"job kinds without an idempotency test: {kinds - set(IDEMPOTENCY_TESTS)}"
    for name in IDEMPOTENCY_TESTS.values():
        assert callable(globals()[name])


def test_verify_store_twice(app, app_session, services, demo):
    services.store.put_bytes(b"%PDF-1.4 x", ".pdf")
    org = app_session.scalar(select(Org).where(Org.kind == "school"))
    from cases.store.storage import save_upload

    save_upload(app_session, services.store, filename="a.pdf", data=b"%PDF-1.4 x", org=org, user="u", mime=None)
    app_session.commit()
    job_id = jobs.submit(app_session, "verify_store", str(services.store.root))
    first = json.loads(open(app_session.get(Job, job_id).result_path, encoding="utf-8").read())
    second_path = _again(app_session, services, job_id)
    assert json.loads(open(second_path, encoding="utf-8").read()) == first == {"checked": 1, "problems": []}


def test_batch_render_twice(client, app_session, services, demo):
    county = app_session.scalar(select(Org).where(Org.kind == "county"))
    body = {"variant": "R-CT", "parent_org_id": county.id, "issuer_id": county.id, "child_kind": "township",
            "format": "docx",
            "data": {"school_year": "2026—2027学年", "validity_from": "2026-09-01", "validity_to": "2027-08-31",
                     "basis": "《中华人民共和国义务教育法》", "party_a_person": "张建设", "party_a_post": "县长",
                     "party_b_person": "李卫东", "party_b_post": "乡(镇)长", "sign_date": "2026-09-01"}}
    r = client.post("/api/v1/batches/responsibility", json=body)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    app_session.expire_all()
    docs = app_session.scalars(select(Document).order_by(Document.seq)).all()
    first_zip = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/jobs/{job_id}/result").data)).namelist()
    series = (NumberSequence.org_id == county.id, NumberSequence.family == docs[0].family)
    last = app_session.scalar(select(NumberSequence.last_value).where(*series))
    assert len(docs) == len(first_zip) >= 2 and last == len(docs)
    result = _again(app_session, services, job_id)
    app_session.expire_all()
    again = app_session.scalars(select(Document).order_by(Document.seq)).all()
    assert [(d.id, d.number_text) for d in again] == [(d.id, d.number_text) for d in docs]
    assert app_session.scalar(select(NumberSequence.last_value).where(*series)) == last
    assert zipfile.ZipFile(result).namelist() == first_zip
    assert all(d.request_key.startswith(f"job:{job_id}:") for d in again)


def test_return_read_twice(client, app_session, services, notice):
    from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem

    r = _post(client, notice["org_id"], _tiff("receipt_direct_flatbed200.jpg", "blank_page.png", "foreign_page.png"),
              "stack.tiff")
    assert r.status_code == 202, r.get_json()
    app_session.expire_all()
    counts = (_count(app_session, ReturnPage), _count(app_session, ReviewItem), _count(app_session, DocumentReturn))
    assert counts[0] == 3 and counts[1] > 0
    _again(app_session, services, r.get_json()["job_id"])
    app_session.expire_all()
    assert (_count(app_session, ReturnPage), _count(app_session, ReviewItem),
            _count(app_session, DocumentReturn)) == counts
    assert _count(app_session, Upload) == 1


def test_dossier_batch_twice(client, app_session, services, demo):
    county = app_session.scalar(select(Org).where(Org.kind == "county"))
    township = app_session.scalar(select(Org).where(Org.kind == "township").order_by(Org.id))
    r = client.post("/api/v1/dossiers/batch", json={"org_id": township.id})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    first_path = app_session.get(Job, job_id).result_path
    with zipfile.ZipFile(first_path) as z:
        first = json.loads(z.read("index.json"))
    audit_before = _count(app_session, Document)
    second_path = _again(app_session, services, job_id)
    assert second_path == first_path
    with zipfile.ZipFile(second_path) as z:
        second = json.loads(z.read("index.json"))
        names = sorted(z.namelist())
    strip = [{k: v for k, v in d.items() if k != "sha256"} for d in first["dossiers"]]
    assert strip == [{k: v for k, v in d.items() if k != "sha256"} for d in second["dossiers"]]
    assert len(first["dossiers"]) >= 1 and names == sorted([d["file"] for d in second["dossiers"]] + ["index.json"])
    assert _count(app_session, Document) == audit_before and county is not None
