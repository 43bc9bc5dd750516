"""Content-addressed store and the upload storage order."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest
from sqlalchemy import func, select

from cases.store.models import Org, Upload
from cases.store.storage import Store, save_upload
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


def test_failed_row_leaves_no_row_no_file_and_says_why(session, tmp_path, school):
    store = Store(tmp_path)
    with pytest.raises(ValidationFailed, match="org_id") as e:
        save_upload(session, store, filename="坏.pdf", data=PDF, org=987654, user="u", mime=None)  # no such org
    assert "org_id" in e.value.fields
    assert session.scalar(select(func.count()).select_from(Upload)) == 0
    digest = hashlib.sha256(PDF).hexdigest()
    rel = f"objects/{digest[:2]}/{digest[2:4]}/{digest}.pdf"
    assert not store.exists(rel)  # store -> row -> move: no file without its row
    assert list((tmp_path / "staging").iterdir()) == []
    ok = save_upload(session, store, filename="好.pdf", data=PDF, org=school, user="u", mime=None)
    assert not store.exists(rel)  # staged until the row commits
    session.commit()
    assert ok.id is not None and store.exists(rel) and store.read_bytes(rel) == PDF
    assert list((tmp_path / "staging").iterdir()) == []


def test_rolled_back_upload_leaves_nothing_in_the_store(session, tmp_path, school):
    store = Store(tmp_path)
    up = save_upload(session, store, filename="a.pdf", data=PDF, org=school, user="u", mime=None)
    rel = up.stored_path
    session.rollback()
    assert not store.exists(rel) and list((tmp_path / "staging").iterdir()) == []


def test_store_check_finds_orphans_finishes_interrupted_moves_and_deletes(session, tmp_path, school):
    from cases.store.maintenance import check_store

    store = Store(tmp_path)
    up = save_upload(session, store, filename="a.pdf", data=PDF, org=school, user="u", mime=None)
    session.commit()
    orphan_digest, orphan = store.put_bytes(b"no row refers to me", ".bin")
    # a committed row whose move to the store was interrupted: its file is still in staging
    staged = store.stage(b"%PDF-1.4 interrupted", ".pdf")
    session.add(Upload(sha256=staged.sha256, original_filename="b.pdf", size=20, stored_path=staged.relpath,
                       org_id=school.id, uploaded_by="u", status="stored"))
    session.commit()
    report = check_store(session, store, min_age_s=0)
    assert report.orphans == [orphan] and report.repaired == [staged.relpath] and report.missing == []
    assert store.read_bytes(staged.relpath) == b"%PDF-1.4 interrupted" and not staged.tmp.exists()
    assert report.files == 2 and not report.ok  # counted before the repair
    young = check_store(session, store, min_age_s=3600)  # a young file may belong to a running unit of work
    assert young.orphans == [] and young.ok
    gone = check_store(session, store, delete=True, min_age_s=0)
    assert gone.deleted == 1 and not store.exists(orphan) and store.exists(up.stored_path)
    assert check_store(session, store, min_age_s=0).ok
