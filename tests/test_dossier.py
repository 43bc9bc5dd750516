"""The case dossier (cases/dossier, web/api_dossier): a real case walked through the engine with
LibreOffice-rendered documents and a returned scan -> one PDF/A file, structurally valid (qpdf,
pikepdf's PDF/A validator), fonts embedded, OutputIntent and XMP present, 目录 page numbers equal
the real pages, bookmarks per item, pupil masked, the signed manifest attached."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pdfplumber
import pikepdf
import pytest
from sqlalchemy import select

from cases.dossier import manifest as mf
from cases.dossier import pdf as P
from cases.store.models import AuditLog, Document, Org
from tests.conftest import client_for
from tests.dossier_case import noticed_case


@pytest.fixture
def county(demo, app_session):
    return app_session.get(Org, demo.county_id)


@pytest.fixture
def case(app_session, services, county):
    return noticed_case(app_session, services)


def _texts(data: bytes) -> list[str]:
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [(p.extract_text() or "") for p in pdf.pages]


def _fonts_embedded(pdf: pikepdf.Pdf) -> list[str]:
    """Names of fonts in the file without an embedded font program."""
    bad = []
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Dictionary) or obj.get("/Type") != pikepdf.Name.Font:
            continue
        if obj.get("/Subtype") == pikepdf.Name.Type0:
            fonts = list(obj.DescendantFonts)
        elif obj.get("/Subtype") == pikepdf.Name.Type3:
            continue
        else:
            fonts = [obj]
        for f in fonts:
            fd = f.get("/FontDescriptor")
            if fd is None or not any(k in fd for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                bad.append(str(f.get("/BaseFont")))
    return bad


def test_dossier_pdf_is_valid_pdfa_with_true_toc_and_signed_manifest(app, app_session, make_user, case, county):
    _, token = make_user("auditor1", ["auditor"], org_id=county.id)
    r = client_for(app, token).get(f"/api/v1/cases/{case.id}/dossier.pdf?validate=1")
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    assert r.mimetype == "application/pdf" and "attachment" in r.headers["Content-Disposition"]
    data = r.data

    # structurally valid, and approved by pikepdf's PDF/A validator on the written bytes
    tmp = app.config["OUTPUT_DIR"] / "d.pdf"
    tmp.write_bytes(data)
    check = subprocess.run(["qpdf", "--check", str(tmp)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    report = P.validate(data)
    assert report.passed, P.findings_text(report)

    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert _fonts_embedded(pdf) == []
        intents = pdf.Root.OutputIntents
        assert len(intents) == 1 and intents[0].S == "/GTS_PDFA1"
        assert b"sRGB" in intents[0].DestOutputProfile.read_bytes()[:200] or "sRGB" in str(
            intents[0].get("/OutputConditionIdentifier"))
        # the part declared in XMP is the one the file is made and validated as: PDF/A-3b, the
        # part that allows an arbitrary embedded file (the JSON manifest) as an associated file
        meta = pdf.open_metadata()
        declared = meta["pdfaid:part"] + meta["pdfaid:conformance"].lower()
        assert declared == P.PDFA_FLAVOUR == "3b"
        assert P.validate(data).passed  # the validator of that part (pikepdf.pdfa)
        assert "卷宗" in meta["dc:title"]
        n_pages = len(pdf.pages)
        with pdf.open_outline() as outline:
            marks = [(o.title, pdf.pages.index(pikepdf.Page(o.destination[0]))) for o in outline.root]
        envelope = json.loads(pdf.attachments[P.MANIFEST_NAME].get_file().read_bytes())
        assert "/AF" in pdf.Root
        [spec] = list(pdf.Root.AF)
        assert spec.AFRelationship == pikepdf.Name.Data and spec.F == P.MANIFEST_NAME

    man = envelope["manifest"]
    assert man["pdfa"] == declared and man["format"] == mf.FORMAT
    assert mf.check_signature(envelope, app.config["QR_HMAC_SECRET"]) == []
    assert man["pages"] == n_pages and len(man["page_fingerprints"]) == man["body_pages"]

    # every issued document and the returned scan are listed with the stored SHA-256
    docs = app_session.scalars(select(Document).where(Document.case_id == case.id)).all()
    listed = {(f["role"], f["sha256"]) for f in man["files"]}
    for d in docs:
        assert ("issued", d.pdf_sha256) in listed
    assert any(role == "returned" for role, _ in listed)

    texts = _texts(data)
    # cover: case number, masked pupil, no full name and no full ID number anywhere
    pupil = case.pupil
    assert case.number in texts[0] and f"{pupil.name[0]}*" in texts[0]
    assert pupil.name not in texts[0]
    original_pages = {n for f in man["files"] if f["first_page"] for n in range(f["first_page"], f["last_page"] + 1)}
    generated = [t for i, t in enumerate(texts, 1) if i not in original_pages]
    assert not any(pupil.id_number in t or pupil.name in t for t in generated)

    # 目录: each item's listed page is the page whose heading is that item
    toc = texts[1]
    found = 0
    for item in man["items"]:
        m = re.search(rf"{item['no']}\.\s*{re.escape(item['title'])}.*?(\d+)\s*$", toc, re.M)
        assert m, f"item {item['no']} not in the 目录"
        page_no = int(m.group(1))
        assert page_no == item["page"]
        assert texts[page_no - 1].lstrip().startswith(f"{item['no']}. {item['title']}")
        found += 1
    assert found == 13
    # the issued PDFs sit on the pages the manifest says (their first page carries the QR line)
    for f in man["files"]:
        if f["role"] == "issued":
            assert f["document_id"] in texts[f["first_page"] - 1]
    # bookmarks: cover, 目录, 13 items, checks, manifest; each item's bookmark on its page
    titles = [t for t, _ in marks]
    assert titles[:2] == ["封面", "目录"] and len(titles) == 17
    for item, (_title, index) in zip(man["items"], marks[2:15], strict=True):
        assert index == item["page"] - 1
    # a gap in the closed loop is named on its item page: this case has no attendance records
    assert "缺失：没有无故缺勤的考勤记录" in texts[man["items"][0]["page"] - 1]
    # the download is an export in the audit log
    entry = app_session.scalars(select(AuditLog).where(AuditLog.action == "dossier.export")).one()
    assert entry.after["scope"]["case"] == case.id and entry.who == "auditor1"


def test_dossier_access_follows_the_policy(app, make_user, case, county, app_session):
    school = case.org_id
    _, teacher = make_user("t1", ["teacher"], org_id=school)
    r = client_for(app, teacher).get(f"/api/v1/cases/{case.id}/dossier.pdf")
    assert r.status_code == 403
    other = Org(kind="county", name="别县", code="419902")
    app_session.add(other)
    app_session.commit()
    _, outsider = make_user("a2", ["auditor"], org_id=other.id)
    assert client_for(app, outsider).get(f"/api/v1/cases/{case.id}/dossier.pdf").status_code == 403
    _, gov = make_user("g1", ["county_gov"], org_id=county.id)
    r = client_for(app, gov).get(f"/api/v1/cases/{case.id}/dossier.pdf")
    assert r.status_code == 200 and r.data[:5] == b"%PDF-"


def _flip_byte(path, offset: int = 100) -> None:
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_verify_passes_then_fails_after_a_page_is_removed_or_an_original_changes(app, app_session, services, case,
                                                                                  make_user, county):
    from cases.dossier.build import build_dossier

    dossier = build_dossier(app_session, services, case)
    good = app.config["OUTPUT_DIR"] / "good.pdf"
    good.write_bytes(dossier.pdf)
    runner = app.test_cli_runner()
    r = runner.invoke(args=["dossier", "verify", str(good)])
    assert r.exit_code == 0, r.output
    assert "核验通过" in r.output and case.number in r.output

    # a dossier of manifest format 1 (page fingerprints with images decoded) still verifies
    with pytest.MonkeyPatch.context() as mp:
        fingerprint = P.page_fingerprint
        mp.setattr(mf, "FORMAT", "baoxue-dossier/1")
        mp.setattr(P, "page_fingerprint", lambda page, version=1: fingerprint(page, version))
        old = build_dossier(app_session, services, case)
    assert old.manifest["format"] == "baoxue-dossier/1" and old.manifest["page_fingerprints"] != \
        dossier.manifest["page_fingerprints"]
    (app.config["OUTPUT_DIR"] / "old.pdf").write_bytes(old.pdf)
    r = runner.invoke(args=["dossier", "verify", str(app.config["OUTPUT_DIR"] / "old.pdf")])
    assert r.exit_code == 0, r.output

    # the same dossier through the auditors' upload endpoint
    _, token = make_user("auditor2", ["auditor"], org_id=county.id)
    auditor = client_for(app, token)
    r = auditor.post("/api/v1/dossiers/verify", data={"file": (io.BytesIO(dossier.pdf), "卷宗.pdf")},
                     content_type="multipart/form-data")
    assert r.status_code == 200 and r.get_json()["ok"] is True, r.get_json()
    assert r.get_json()["files_checked"] == len(dossier.manifest["files"]) == 3
    r = auditor.post("/api/v1/dossiers/verify", data={}, content_type="multipart/form-data")
    assert r.status_code == 422 and "file" in r.get_json()["fields"]

    # a page removed: the page count and the pages after it no longer match
    with pikepdf.open(io.BytesIO(dossier.pdf)) as pdf:
        del pdf.pages[5]
        cut = app.config["OUTPUT_DIR"] / "cut.pdf"
        pdf.save(cut)
    r = runner.invoke(args=["dossier", "verify", str(cut)])
    assert r.exit_code == 1
    assert f"清单记载 {dossier.manifest['pages']} 页，文件有 {dossier.manifest['pages'] - 1} 页" in r.output
    assert "第 6、7" in r.output and "核验未通过" in r.output

    # a page's text edited (same page count): named by its number
    with pikepdf.open(io.BytesIO(dossier.pdf)) as pdf:
        page = pdf.pages[2]
        page.Contents = pikepdf.Stream(pdf, page.Contents.read_bytes() + b"\nq Q\n")
        edited = app.config["OUTPUT_DIR"] / "edited.pdf"
        pdf.save(edited)
    r = runner.invoke(args=["dossier", "verify", str(edited), "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["problems"] == ["第 3 页与签名时的内容不符（共 1 页）"]

    # the manifest changed after signing
    with pikepdf.open(io.BytesIO(dossier.pdf)) as pdf:
        env = json.loads(pdf.attachments[P.MANIFEST_NAME].get_file().read_bytes())
        env["manifest"]["files"][0]["sha256"] = "0" * 64
        pdf.attachments[P.MANIFEST_NAME] = pikepdf.AttachedFileSpec(pdf, json.dumps(env).encode(),
                                                                    filename=P.MANIFEST_NAME)
        forged = app.config["OUTPUT_DIR"] / "forged.pdf"
        pdf.save(forged)
    r = runner.invoke(args=["dossier", "verify", str(forged)])
    assert r.exit_code == 1 and "清单签名无效" in r.output

    # one byte of an original in the store changed (the returned scan of the 回证)
    scan = next(f for f in dossier.manifest["files"] if f["role"] == "returned")
    _flip_byte(services.store.path(scan["store_path"]))
    r = runner.invoke(args=["dossier", "verify", str(good)])
    assert r.exit_code == 1
    assert f"原件已被改动：{scan['label']}" in r.output
    r = auditor.post("/api/v1/dossiers/verify", data={"file": (io.BytesIO(dossier.pdf), "卷宗.pdf")},
                     content_type="multipart/form-data")
    body = r.get_json()
    assert body["ok"] is False and len(body["problems"]) == 1 and "原件已被改动" in body["problems"][0]
