"""Content-addressed store and the upload storage order."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest
from sqlalchemy import func, select

from cases.store.models import Org, Upload
from cases.store.storage import StorageFailed, Store, save_upload
from forms.errors import NotFound, ValidationFailed

PDF = b"%PDF-1.4\n% synthetic test bytes\n"


def test_put_bytes_layout_and_idempotence(tmp_path):
    store = Store(tmp_path)
    digest, rel = store.put_bytes(PDF, ".PDF")
    assert digest == hashlib.sha256(PDF).hexdigest()
    assert rel == f"objects/{digest[:2]}/{digest[2:4]}/{digest}.pdf"
    assert store.path(rel).read_bytes() == PDF
    assert store.exists(rel)
    assert not os.stat(store.path(rel)).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.put_bytes(PDF, ".pdf") == (digest, rel)
    with store.open(rel) as fh:
        assert fh.read() == PDF
    leftovers = [p.name for p in store.path(rel).parent.iterdir()]
    assert leftovers == [f"{digest}.pdf"]  # no temp files left behind


def test_never_overwrites_an_existing_file(tmp_path):
    store = Store(tmp_path)
    digest, rel = store.put_bytes(PDF, ".pdf")
    target = store.path(rel)
    os.chmod(target, 0o644)
    target.write_bytes(b"damaged on disk")  # e.g. bit rot; the store must not silently "repair" it
    assert store.put_bytes(PDF, ".pdf") == (digest, rel)
    assert target.read_bytes() == b"damaged on disk"


def test_concurrent_identical_writes_give_one_file(tmp_path):
    store = Store(tmp_path)
    data = os.urandom(200_000)
    out, errors = [], []

    def put():
        try:
            out.append(store.put_bytes(data, ".jpg"))
        except BaseException as e:  # re-checked in the main thread
            errors.append(e)

    threads = [threading.Thread(target=put) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(out)) == 1
    folder = store.path(out[0][1]).parent
    assert [p.name for p in folder.iterdir()] == [out[0][0] + ".jpg"]
    assert store.path(out[0][1]).read_bytes() == data


def test_paths_outside_the_store_are_refused(tmp_path):
    store = Store(tmp_path)
    for bad in ("../etc/passwd", "objects/../../x", "/etc/passwd", "objects/ab/cd/short.pdf"):
        with pytest.raises(NotFound):
            store.path(bad)
        assert not store.exists(bad)
    with pytest.raises(NotFound):
        store.open("objects/aa/bb/" + "a" * 64 + ".pdf")


@pytest.fixture
def school(session):
    org = Org(kind="school", name="东河镇中心小学")
    session.add(org)
    session.commit()
    return org


def test_save_upload_stores_bytes_then_row(session, tmp_path, school):
    store = Store(tmp_path / "out")
    up = save_upload(session, store, filename="C:\\scans\\报告单.pdf", data=PDF, org=school, user="clerk1",
                     mime="application/pdf", source_device="扫描仪-01")
    session.commit()
    row = session.get(Upload, up.id)
    assert row.original_filename == "报告单.pdf"
    assert row.sha256 == hashlib.sha256(PDF).hexdigest() and row.size == len(PDF)
    assert (row.status, row.uploaded_by, row.org_id, row.source_device) == ("stored", "clerk1", school.id,
                                                                            "扫描仪-01")
    assert row.uploaded_at.tzinfo is not None
    assert store.read_bytes(row.stored_path) == PDF
    # The same bytes again: a second upload row, one stored file.
    again = save_upload(session, store, filename="again.pdf", data=PDF, org=school, user="clerk2", mime=None)
    session.commit()
    assert again.id != up.id and again.stored_path == row.stored_path


def test_empty_and_oversized_uploads_name_the_file(session, tmp_path, school):
    store = Store(tmp_path)
    with pytest.raises(ValidationFailed, match="空.pdf") as e:
        save_upload(session, store, filename="空.pdf", data=b"", org=school, user="u", mime=None)
    assert "空.pdf" in e.value.fields["file"]
    with pytest.raises(ValidationFailed, match="大.jpg.*上限"):
        save_upload(session, store, filename="大.jpg", data=b"x" * 2000, org=school, user="u", mime=None,
                    max_bytes=1000)
    assert not (tmp_path / "objects").exists()
    assert session.scalar(select(func.count()).select_from(Upload)) == 0


def test_failed_row_leaves_no_row_and_says_why(session, tmp_path, school):
    store = Store(tmp_path)
    with pytest.raises(StorageFailed, match="坏.pdf"):
        save_upload(session, store, filename="坏.pdf", data=PDF, org=987654, user="u", mime=None)  # no such org
    assert session.scalar(select(func.count()).select_from(Upload)) == 0
    digest = hashlib.sha256(PDF).hexdigest()
    assert store.exists(f"objects/{digest[:2]}/{digest[2:4]}/{digest}.pdf")  # kept for a retry
    ok = save_upload(session, store, filename="好.pdf", data=PDF, org=school, user="u", mime=None)
    session.commit()
    assert ok.id is not None
