"""Closed-loop consistency checks (DOMAIN §8.3 "Consistency checks to run automatically"), per case
(shown in the dossier and ``GET /cases/<id>/checks``) and per jurisdiction (JSON and XLSX). Every
finding names the case and the rule.

Rules (``RULES``): closure without the required evidence; an attempt dated before detection; a
notice served before the 报告单 was received; a return deadline computed from an incomplete 回证;
an ID number that differs between documents (or from the pupil's record); a case missing from a
filed ledger snapshot; the school ledger and the township ledger disagreeing about the same child.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.engine.closure import OUTCOMES, check_closure
from cases.engine.models import Deadline
from cases.store.models import Case, Org, in_scope
from forms.errors import BaoxueError
from forms.registry import get_spec
from forms.spec import Kind

if TYPE_CHECKING:
    from cases.dossier.casefile import CaseFile

RULES = {
    "closure_without_evidence": "销号缺少证明材料",
    "attempt_before_detection": "劝返记录早于发现日期",
    "notice_before_receipt": "通知书送达早于报告单签收",
    "deadline_from_incomplete_return": "返校期限依据不完整的送达回证",
    "id_number_mismatch": "文书间身份证号不一致",
    "missing_from_snapshot": "台账快照缺少本案",
    "school_township_ledger_mismatch": "学校台账与乡镇台账不一致",
}
# Ledger row columns compared between the school's and the township's snapshot of the same day.
LEDGER_COMPARED = (("state_code", "状态"), ("opened_on", "立案日期"), ("reason", "辍学原因"),
                   ("closed_on", "销号日期"), ("attempts", "劝返次数"))


@dataclass(frozen=True)
class Finding:
    case_id: int
    case_number: str
    rule: str
    message: str
    org_id: int | None = None

    @property
    def title(self) -> str:
        return RULES[self.rule]

    def as_json(self) -> dict:
        return {"case_id": self.case_id, "case_number": self.case_number, "rule": self.rule,
                "rule_label": self.title, "message": self.message, "org_id": self.org_id}


def _day(value) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _id_fields(form: str) -> list[str]:
    try:
        spec = get_spec(form)
    except (KeyError, BaoxueError):
        return []
    return [f.name for f in spec.fields if f.kind == Kind.ID_NUMBER]


def _mask(value: str) -> str:
    from forms.validators import mask_id

    return mask_id(value)


def run_checks(session: Session, cf: CaseFile) -> list[Finding]:
    """Every consistency finding of one case (in rule order)."""
    case = cf.case
    out: list[Finding] = []

    def add(rule: str, message: str) -> None:
        out.append(Finding(case.id, case.number, rule, message, case.org_id))

    # closure without the required evidence
    if case.state == "CLOSED":
        outcome = case.closure_reason
        if outcome in OUTCOMES:
            check = check_closure(outcome, cf.evidence_items, cf.profile)
            if not check.ok:
                add("closure_without_evidence", f"以{OUTCOMES[outcome]}销号，但" + "；".join(check.missing))
        else:
            add("closure_without_evidence", "已销号，但没有记录销号类型")

    # an attempt dated before detection
    detected = cf.detected_on()
    for a in cf.attempts:
        day = _day(a.get("date"))
        if day is not None and day < detected:
            add("attempt_before_detection", f"劝返记录日期 {day.isoformat()} 早于发现日期 {detected.isoformat()}")

    # a notice served before the 报告单 was received by the township
    receipts = [_day(e.data.get("received_on")) for e in cf.of_kind("receipt") if e.data.get("by") == "township"]
    receipts = [r for r in receipts if r]
    first_receipt = min(receipts) if receipts else None
    services = cf.of_kind("service")
    for e in services:
        served = _day(e.data.get("served_on"))
        if served is None:
            continue
        if first_receipt is None:
            add("notice_before_receipt", f"通知书 {served.isoformat()} 送达，但没有乡(镇)签收报告单的记录")
        elif served < first_receipt:
            add("notice_before_receipt", f"通知书 {served.isoformat()} 送达，早于乡(镇)签收报告单 "
                                         f"{first_receipt.isoformat()}")

    # a return deadline computed from an incomplete 回证
    complete_days = {_day(e.data.get("served_on")) for e in services if e.data.get("complete")}
    incomplete_docs = {ret_doc for ret_doc, copies in cf.returns.items()
                       if copies and all(c.complete is False for c in copies)}
    for d in session.scalars(select(Deadline).where(Deadline.case_id == case.id, Deadline.start_event == "service")
                             .order_by(Deadline.id)):
        if d.start_on is None or d.status == "cancelled":
            continue
        if d.start_on not in complete_days:
            add("deadline_from_incomplete_return", f"{d.label or d.timer}自 {d.start_on.isoformat()} 起算，"
                                                   "但当天没有完整的送达回证")
    for e in services:
        doc_id = e.data.get("document_id")
        if e.data.get("complete") and doc_id in incomplete_docs:
            add("deadline_from_incomplete_return", f"文书 {doc_id} 的送达按完整回证登记，但回收的回证不完整")

    # an ID number that differs between documents (or from the pupil's record)
    known = {cf.pupil.id_number} | {g.id_number for g in cf.pupil.guardians if g.id_number}
    known.discard(None)
    for doc in cf.documents:
        if doc.status != "issued":
            continue
        names = _id_fields(doc.form)
        for name in names:
            value = (doc.data or {}).get(name)
            if value and value not in known:
                add("id_number_mismatch", f"文书 {doc.number_text or doc.id} 的身份证号 {_mask(value)} 与学生及监护人"
                                          "登记的身份证号都不一致")
        for copy in cf.returns.get(doc.id, []):
            for name in names:
                returned = copy.values.get(name)
                issued = (doc.data or {}).get(name)
                if isinstance(returned, dict):
                    returned = returned.get("value")
                if returned and issued and str(returned) != str(issued):
                    add("id_number_mismatch", f"回收件 {copy.upload.original_filename} 上的身份证号 "
                                              f"{_mask(str(returned))} 与签发的文书 {doc.number_text or doc.id}"
                                              f"（{_mask(issued)}）不一致")

    # a case missing from a snapshot, and school vs township ledgers of the same day
    closed = cf.closed_on()
    by_day: dict[dt.date, dict[str, dict | None]] = {}
    for snap in cf.snapshots:
        if snap.as_of < case.opened_on or (closed is not None and snap.as_of >= closed) or snap.as_of > cf.today:
            continue
        if case.created_at and snap.filed_at < case.created_at:
            continue  # filed before the case was recorded: it could not list it
        row = next((r for r in snap.rows or [] if r.get("case_id") == case.id), None)
        if row is None:
            add("missing_from_snapshot", f"{snap.as_of.isoformat()} 的{_kind_label(snap.kind)}台账快照（{snap.id}）"
                                         "没有列入本案")
        by_day.setdefault(snap.as_of, {})[snap.kind] = row
    for day, rows in sorted(by_day.items()):
        school, township = rows.get("school"), rows.get("township")
        if school and township:
            diffs = [f"{label}：学校“{school.get(k)}”，乡镇“{township.get(k)}”" for k, label in LEDGER_COMPARED
                     if school.get(k) != township.get(k)]
            if diffs:
                add("school_township_ledger_mismatch", f"{day.isoformat()} 台账：" + "；".join(diffs))
    return out


def _kind_label(kind: str) -> str:
    return {"school": "学校", "township": "乡镇"}.get(kind, kind)


def jurisdiction_checks(session: Session, org: Org, *, today: dt.date | None = None) -> list[Finding]:
    """The findings of every case in ``org``'s subtree (responsible unit or township)."""
    from cases.dossier.casefile import load_case_file

    cases = session.scalars(select(Case).where(in_scope(Case.org_id, org) | in_scope(Case.township_org_id, org))
                            .order_by(Case.id))
    out: list[Finding] = []
    for case in cases:
        out.extend(run_checks(session, load_case_file(session, case, today=today)))
    return out


def report_json(org: Org, findings: list[Finding], *, checked: int | None = None) -> dict:
    by_rule = {r: 0 for r in RULES}
    for f in findings:
        by_rule[f.rule] += 1
    return {"org_id": org.id, "org_name": org.name, "findings": [f.as_json() for f in findings],
            "total": len(findings), "cases_with_findings": len({f.case_id for f in findings}),
            "by_rule": [{"rule": r, "label": RULES[r], "count": n} for r, n in by_rule.items()],
            **({"cases_checked": checked} if checked is not None else {})}


def report_xlsx(org: Org, findings: list[Finding]) -> bytes:
    """The findings as one worksheet (案件编号, 规则, 说明) plus a count per rule."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "闭环核查"
    ws.append([f"{org.name} 闭环核查结果"])
    ws.append(["案件编号", "案件ID", "规则代码", "规则", "说明"])
    for f in findings:
        ws.append([f.case_number, f.case_id, f.rule, f.title, f.message])
    for col, width in zip("ABCDE", (22, 8, 30, 26, 90), strict=True):
        ws.column_dimensions[col].width = width
    summary = wb.create_sheet("按规则统计")
    summary.append(["规则代码", "规则", "条数"])
    for r, label in RULES.items():
        summary.append([r, label, sum(1 for f in findings if f.rule == r)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
