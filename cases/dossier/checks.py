"""Closed-loop consistency checks (DOMAIN §8.3 "Consistency checks to run automatically"), per case
(shown in the dossier and ``GET /cases/<id>/checks``) and per jurisdiction (JSON and XLSX). Every
finding names the case and the rule.

Rules (``RULES``): closure without the required evidence; an attempt dated before detection; a
notice served before the 报告单 was received; a return deadline computed from an incomplete 回证;
an ID number or a 学籍号 that differs between documents (or from the pupil's record; shown masked,
with the positions that differ); a case missing from a filed ledger snapshot; the school ledger
and the township ledger disagreeing about the same child.
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
from forms.spec import Field, Kind, resolve
from forms.validators import mask_id

if TYPE_CHECKING:
    from cases.dossier.casefile import CaseFile

RULES = {
    "closure_without_evidence": "销号缺少证明材料",
    "attempt_before_detection": "劝返记录早于发现日期",
    "notice_before_receipt": "通知书送达早于报告单签收",
    "deadline_from_incomplete_return": "返校期限依据不完整的送达回证",
    "id_number_mismatch": "文书间身份证号不一致",
    "xueji_no_mismatch": "文书间学籍号不一致",
    "missing_from_snapshot": "台账快照缺少本案",
    "school_township_ledger_mismatch": "学校台账与乡镇台账不一致",
}
# The numbers compared between documents: the kind of field and the rule of a difference.
NUMBER_RULES = ((Kind.ID_NUMBER, "id_number_mismatch"), (Kind.XUEJI_NO, "xueji_no_mismatch"))
NUMBER_WORDS = {Kind.ID_NUMBER: "身份证号", Kind.XUEJI_NO: "学籍号"}
# Whose record a field's ``source`` names, in a finding.
RECORD_WORDS = {"pupil.id_number": "学生", "pupil.xueji_no": "学生"}
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


def _number_fields(form: str, kind: Kind) -> list[Field]:
    """The fields of ``form`` holding a number of ``kind`` (ID number or 学籍号)."""
    try:
        spec = get_spec(form)
    except (KeyError, BaoxueError):
        return []
    return [f for f in spec.fields if f.kind == kind]


def _mask(value: str) -> str:
    """A number as findings show it: first 6 and last 4 characters (never in full)."""
    return mask_id(value)


def _differ(a: str, b: str) -> str:
    """Where two numbers differ, by position (the masked forms may look alike)."""
    if len(a) != len(b):
        return f"位数不同（{len(a)} 位与 {len(b)} 位）"
    at = [str(i + 1) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return "第 " + "、".join(at[:6]) + ("…" if len(at) > 6 else "") + " 位不同"


def _number_findings(cf: CaseFile, kind: Kind) -> list[str]:
    """Findings on the numbers of ``kind`` in the case's issued documents and their returned
    copies: a field with a ``source`` (e.g. ``pupil.id_number``) against that record and against
    the same field of the other documents; one without (a guardian's number) against the
    numbers of the case's people; a returned copy against the copy issued. Numbers masked."""
    what = NUMBER_WORDS[kind]
    people = {cf.pupil.id_number, *(g.id_number for g in cf.pupil.guardians)} if kind == Kind.ID_NUMBER \
        else {cf.pupil.xueji_no}
    people.discard(None)
    facts = {"pupil": {"id_number": cf.pupil.id_number, "xueji_no": cf.pupil.xueji_no}}
    out: list[str] = []
    seen: dict[str, list[tuple[str, str]]] = {}  # source -> [(document, value)] without a record
    for doc in cf.documents:
        if doc.status != "issued":
            continue
        name = doc.number_text or doc.id
        fields = _number_fields(doc.form, kind)
        for f in fields:
            value = str((doc.data or {}).get(f.name) or "")
            if not value:
                continue
            record = resolve(facts, f.source) if f.source else None
            if record:
                if value != record:
                    out.append(f"文书 {name} 的{f.label} {_mask(value)} 与{RECORD_WORDS.get(f.source, '')}登记的"
                               f" {_mask(record)} 不一致（{_differ(value, record)}）")
            elif f.source:
                seen.setdefault(f.source, []).append((name, value))
            elif people and value not in people:
                out.append(f"文书 {name} 的{f.label} {_mask(value)} 与学生及监护人登记的{what}都不一致")
        for copy in cf.returns.get(doc.id, []):
            for f in fields:
                returned, issued = copy.values.get(f.name), (doc.data or {}).get(f.name)
                if isinstance(returned, dict):
                    returned = returned.get("value")
                if returned and issued and str(returned) != str(issued):
                    out.append(f"回收件 {copy.upload.original_filename} 上的{f.label} {_mask(str(returned))} "
                               f"与签发的文书 {name}（{_mask(str(issued))}）不一致"
                               f"（{_differ(str(returned), str(issued))}）")
    for source, held in seen.items():
        first_doc, first = held[0]
        for other_doc, value in held[1:]:
            if value != first:
                out.append(f"{RECORD_WORDS.get(source, '同一人')}没有登记{what}，而文书 {first_doc}（{_mask(first)}）"
                           f"与文书 {other_doc}（{_mask(value)}）的{what}不一致（{_differ(value, first)}）")
    return out


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

    # an ID number, or a 学籍号, that differs between documents (or from the record of the person)
    for kind, rule in NUMBER_RULES:
        for message in _number_findings(cf, kind):
            add(rule, message)

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
