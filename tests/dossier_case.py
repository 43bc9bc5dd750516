"""A case walked through the engine's transitions to NOTICED, with its real documents (the 报告单
and a 限期返校通知书 rendered by LibreOffice), receipts, the service of the notice and a returned
scan of it: the fixture of the dossier tests and of bench/dossier.py."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import select

from cases.documents import issuing
from cases.documents.prefill import data_from_case, default_issuer
from cases.engine import casework as engine
from cases.returns.models import DocumentReturn
from cases.store.models import Case, Document, Pupil
from cases.store.storage import save_upload
from forms.registry import get_spec

REPORT_DATA = {"school_opinion": "建议乡镇组织联合劝返", "filler_name": "王芳", "absent_days": 14,
               "whereabouts": "home"}
NOTICE_DATA = {"persuasion_count": 3, "report_place": "学校教务处", "contact_person": "李明",
               "contact_phone": "13800001111", "cc": "学校、村委会", "handler_name": "赵强"}


def free_pupil(session) -> Pupil:
    taken = select(Case.pupil_id)
    return session.scalars(select(Pupil).where(Pupil.id.not_in(taken)).order_by(Pupil.id)).first()


def issue(session, services, case: Case, form: str, variant: str | None, data: dict) -> Document:
    spec = get_spec(form)
    var = spec.variant(variant)
    issuer = default_issuer(session, case, spec, var)
    full = {**data_from_case(session, case, spec, var), **data}
    return issuing.issue_document(session, services, form=form, variant=variant, issuer_id=issuer,
                                  case_id=case.id, data=full, user="测试")


def scan_of(pdf: bytes, page: int, dpi: int = 100) -> bytes:
    """A PNG of one page of ``pdf`` (pdftoppm), standing in for a scanned returned copy."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.pdf"
        src.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-f", str(page), "-l", str(page), "-singlefile",
                        str(src), str(Path(tmp) / "out")], check=True, timeout=60)
        return (Path(tmp) / "out.png").read_bytes()


def attach_return(session, services, doc: Document, data: bytes, filename: str, *, complete: bool = True,
                  values: dict | None = None, input_kind: str = "scan") -> DocumentReturn:
    """A returned copy stored the way the returns pipeline stores it (upload + DocumentReturn)."""
    up = save_upload(session, services.store, filename=filename, data=data, org=doc.org_id, user="测试",
                     mime="image/png")
    up.document_id, up.status = doc.id, "attached"
    ret = DocumentReturn(document_id=doc.id, upload_id=up.id, form=doc.form, input_kind=input_kind,
                         values=values or {}, complete=complete, missing=[] if complete else ["service_date"],
                         status="applied" if complete else "incomplete", org_id=doc.org_id)
    session.add(ret)
    session.flush()
    return ret


def noticed_case(session, services, *, today: dt.date | None = None, with_scan: bool = True) -> Case:
    """A case at NOTICED with 报告单, receipts, a served 限期返校通知书 and its returned scan."""
    today = today or dt.date.today()
    D = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    case = engine.open_case(session, free_pupil(session), opened_on=D(40), actor="班主任", source="manual",
                            reason_code="R01")
    engine.record_attempt(session, case, {"date": D(39).isoformat(), "persons": "班主任", "method": "phone",
                                          "result": "not_met", "stage": "school"}, actor="班主任")
    engine.apply_action(session, case, "T3", actor="学校", data={"facts": {"unexcused_days": 3}}, occurred_at=D(38))
    engine.apply_action(session, case, "T4", actor="学校", data={"facts": {"unexcused_days": 5}}, occurred_at=D(36))
    for n in (35, 33, 31):
        engine.record_attempt(session, case, {"date": D(n).isoformat(), "persons": "班主任、村干部",
                                              "method": "visit", "result": "refused", "stage": "school"},
                              actor="专人")
    engine.apply_action(session, case, "T7", actor="学校", occurred_at=D(18))
    session.commit()
    report = issue(session, services, case, "dropout_report", None, REPORT_DATA)
    engine.record_receipt(session, case, document_id=report.id, received_on=D(17), actor="乡镇")
    engine.record_receipt(session, case, document_id=report.id, received_on=D(17), by="education", actor="教育局")
    session.commit()
    notice = issue(session, services, case, "guardian_notice", "xianqi", NOTICE_DATA)
    engine.record_service(session, case, document_id=notice.id, served_on=D(16), method="direct", complete=True,
                          actor="乡镇")
    if with_scan:
        pdf = issuing.document_file(services, notice, "pdf")
        attach_return(session, services, notice, scan_of(pdf, notice.pages or 1), "回证扫描.png")
    session.commit()
    return case


def png_bytes(width: int = 200, height: int = 280) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(img).rectangle([10, 10, width - 10, height - 10], outline="black", width=3)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
