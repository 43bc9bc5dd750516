"""The case dossier (卷宗, DOMAIN §8.3–8.4): one PDF/A file per case with a cover, a 目录 with real
page numbers, the thirteen items of the closed loop in order (each a summary page naming what is
there and a red "缺失" line for each gap, followed by the issued PDFs and the returned copies), the
closed-loop check results, a manifest page, and the signed JSON manifest attached.

``build_dossier(session, services, case)`` returns the bytes and the manifest; the manifest lists
the SHA-256 of every included original (issued PDF, returned upload, evidence file) and the
fingerprint of every page, so ``cases.dossier.verify`` can tell whether anything was altered,
added or removed since.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass, field

import pikepdf
from sqlalchemy.orm import Session

from cases.dossier import manifest as mf
from cases.dossier import pdf as P
from cases.dossier.casefile import CaseFile, ReturnedCopy, load_case_file
from cases.dossier.checks import Finding, run_checks
from cases.engine import workflow
from cases.engine.closure import EVIDENCE_KINDS, OUTCOMES
from cases.store.models import Case, Document, Upload, utcnow
from cases.store.services import Services
from forms import codes
from forms.errors import BaoxueError, NotFound
from forms.registry import get_spec

log = logging.getLogger(__name__)

# DOMAIN §8.3, in the order of the closed loop.
ITEMS = (
    (1, "发现：缺勤证据"),
    (2, "核实：家访或联系记录"),
    (3, "疑似辍学认定与劝返专人"),
    (4, "学校劝返记录"),
    (5, "辍学情况报告单及签收回执"),
    (6, "乡(镇)通知书：存根、正本、送达回证"),
    (7, "联合劝返、部门函件及回复"),
    (8, "司法措施"),
    (9, "结果证明材料"),
    (10, "持续劝返 / 送教记录"),
    (11, "超龄离校标注"),
    (12, "销号"),
    (13, "台账一致性（各期快照）"),
)
ITEM_TITLES = dict(ITEMS)
# Documents whose form declares no dossier item go where the case stood on the day they were issued.
STATE_ITEM = {"ABSENT": 1, "VERIFY": 2, "SUSPECTED": 4, "REPORTED": 5, "NOTICED": 6, "JOINT": 7, "LEGAL": 8,
              "LOCATING": 7, "ASSESSING": 9, "APPROVAL": 9, "RETURNED": 9, "DEFERRED": 10, "HOME_TAUGHT": 10,
              "CLOSED": 12, "ATTENDING": 1}
# Evidence kinds shown under legal measures rather than outcome evidence.
LEGAL_EVIDENCE = ("court_ruling",)
OVER_AGE_EVIDENCE = ("over_age_mark",)

_METHODS = {c.code: c.label for c in codes.ATTEMPT_METHODS}
_RESULTS = {c.code: c.label for c in codes.ATTEMPT_RESULTS}
_PARTNERS = {c.code: c.label for c in codes.PARTNER_DEPARTMENTS}
_SERVICE = {c.code: c.label for c in codes.SERVICE_METHODS}
_STAGES = {"school": "学校", "township": "乡(镇)", "joint": "联合"}


class DossierFailed(BaoxueError):
    """The dossier could not be produced (a stored original is missing, or PDF/A validation failed)."""

    code = "dossier_failed"
    http_status = 500


def mask_name(name: str | None) -> str:
    """A pupil's name on the cover: first and last character kept (张*明, 李*)."""
    name = (name or "").strip()
    if len(name) <= 1:
        return name or "—"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


# ---- what goes in ---------------------------------------------------------------------------------

@dataclass
class Source:
    """An original included in the dossier: an issued PDF or a returned / evidence upload."""

    role: str  # issued | returned | evidence
    label: str
    sha256: str
    size: int | None
    store_path: str
    document_id: str | None = None
    upload_id: int | None = None
    pages: list[int] | None = None  # 0-based pages of the original shown (None: all)
    filename: str | None = None
    on: dt.date | None = None


@dataclass
class Item:
    no: int
    title: str
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    applicable: bool = True


def _d(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _attempt_line(a: dict) -> str:
    partners = "、".join(_PARTNERS.get(p, p) for p in a.get("partners") or [])
    return (f"{a.get('date')}  {_STAGES.get(a.get('stage'), a.get('stage') or '')}"
            f"{_METHODS.get(a.get('method'), a.get('method') or '')}，参加人员：{a.get('persons') or '—'}"
            + (f"，部门：{partners}" if partners else "")
            + f"，结果：{_RESULTS.get(a.get('result'), a.get('result') or '—')}"
            + (f"；{a['statements']}" if a.get("statements") else ""))


def _doc_item(cf: CaseFile, doc: Document) -> int:
    spec = get_spec(doc.form)
    variant = None
    if doc.variant:
        try:
            variant = spec.variant(doc.variant)
        except BaoxueError:
            variant = None
    item = spec.dossier_item_of(variant)
    if item:
        return item
    state = "ABSENT"
    for t in cf.transitions:
        if t.occurred_at <= doc.created_at and t.to_state:
            state = t.to_state
    return STATE_ITEM.get(state, 9)


def _doc_title(doc: Document) -> str:
    spec = get_spec(doc.form)
    try:
        title = spec.doc_title(spec.variant(doc.variant) if spec.variants else None)
    except BaoxueError:
        title = spec.title
    return f"《{title}》{doc.number_text or doc.id}"


def _services_of(cf: CaseFile, doc_id: str) -> list[dict]:
    return [e.data for e in cf.of_kind("service") if e.data.get("document_id") == doc_id]


def _returned_sources(cf: CaseFile, doc: Document, copies: list[ReturnedCopy]) -> list[Source]:
    out = []
    for c in copies:
        u = c.upload
        kind = {"scan": "扫描件/照片", "docx": "DOCX 回收件", "pdf": "PDF 回收件"}.get(c.input_kind or "", "回收件")
        state = "完整" if c.complete else ("不完整" if c.complete is False else "未识读")
        out.append(Source("returned", f"{_doc_title(doc)} {kind}（{u.original_filename}，{state}）", u.sha256, u.size,
                          u.stored_path, document_id=doc.id, upload_id=u.id, pages=c.pages,
                          filename=u.original_filename, on=u.uploaded_at.date() if u.uploaded_at else None))
    return out


def _document_entries(cf: CaseFile, doc: Document, item: Item) -> None:
    """The issued PDF and its returned copies into ``item``, with their lines."""
    title = _doc_title(doc)
    if doc.status == "void":
        item.lines.append(f"{title}：已作废（{doc.void_reason or ''}），文号保留不再使用")
        return
    item.lines.append(f"{title}：{_d(doc.created_at)} 由 {doc.created_by or '—'} 生成，{doc.pages or '?'} 页")
    if doc.pdf_sha256:
        item.sources.append(Source("issued", f"{title} 签发件 PDF", doc.pdf_sha256, None,
                                   f"objects/{doc.pdf_sha256[:2]}/{doc.pdf_sha256[2:4]}/{doc.pdf_sha256}.pdf",
                                   document_id=doc.id, on=doc.created_at.date() if doc.created_at else None))
    copies = cf.returns.get(doc.id, [])
    if copies:
        item.sources.extend(_returned_sources(cf, doc, copies))
        item.lines.append(f"    回收件 {len(copies)} 份：" + "；".join(
            f"{c.upload.original_filename}（{'完整' if c.complete else '不完整' if c.complete is False else '未识读'}）"
            for c in copies))


def collect_items(cf: CaseFile) -> list[Item]:
    """The thirteen items of DOMAIN §8.3 with what the case has for each and what is missing."""
    case, visited = cf.case, cf.visited()
    items = {no: Item(no, title) for no, title in ITEMS}
    attempts = cf.attempts
    detected = cf.detected_on()

    # 1. detection
    it = items[1]
    t1 = next((t for t in cf.transitions if t.transition in ("T1", "T23")), None)
    source = (t1.data or {}).get("source") if t1 else None
    it.lines.append(f"立案日期：{case.opened_on.isoformat()}；发现方式：" + {
        "attendance": "考勤记录", "term_start": "开学未报到", "handover": "整班移交未报到",
        "manual": "班主任登记"}.get(source, source or "—"))
    window_end = cf.closed_on() or cf.today
    absences = [a for a in cf.attendance if detected - dt.timedelta(days=31) <= a.day <= window_end]
    unexcused = [a for a in absences if a.kind == "unexcused"]
    if absences:
        days = "、".join(a.day.isoformat() for a in unexcused[:20])
        it.lines.append(f"考勤记录：无故缺勤 {len(unexcused)} 天（" + days
                        + ("…" if len(unexcused) > 20 else "") + "）")
    facts = {k: v for e in cf.of_kind("facts") for k, v in (e.data or {}).items()}
    if source in ("term_start", "handover") or facts.get("unregistered_at_term_start") or \
            facts.get("handover_not_arrived"):
        it.lines.append("未报到证据：" + ("开学未报到" if source == "term_start" else "整班移交未到校"))
    elif not unexcused:
        it.missing.append("没有无故缺勤的考勤记录（缺勤证据）")

    # 2. verification
    it = items[2]
    it.applicable = bool(visited & {"VERIFY", "SUSPECTED"}) or "VERIFY" in visited
    by_day3 = [a for a in attempts if a.get("date") and
               dt.date.fromisoformat(a["date"]) <= detected + dt.timedelta(days=3)]
    if cf.entered("VERIFY"):
        it.lines.append(f"进入家访核实：{cf.entered('VERIFY').isoformat()}")
    it.lines.extend(_attempt_line(a) for a in by_day3)
    if it.applicable and not by_day3:
        it.missing.append(f"第3天（{(detected + dt.timedelta(days=3)).isoformat()}）前没有家访或联系记录")

    # 3. suspected start
    it = items[3]
    suspected = cf.entered("SUSPECTED")
    it.applicable = suspected is not None
    if suspected:
        t4 = next(t for t in cf.transitions if t.to_state == "SUSPECTED")
        person = (t4.data or {}).get("dedicated_person") or (t4.data or {}).get("assignee")
        it.lines.append(f"认定疑似辍学：{suspected.isoformat()}（{t4.transition}，{t4.actor or '—'}）")
        it.lines.append(f"劝返专人：{person}" if person else f"劝返专人：{t4.actor or '—'}（认定人）")
    else:
        it.lines.append("未进入疑似辍学阶段")

    # 4. school persuasion
    it = items[4]
    school = [a for a in attempts if a.get("stage") == "school"]
    it.applicable = suspected is not None
    it.lines.extend(_attempt_line(a) for a in school)
    check = cf.school_check
    if check.get("status") == "missed":
        it.missing.append(f"学校劝返记录在劝返期内 {check['in_window']} 次，少于 {check['required']} 次"
                          f"（{_d(check.get('window_start'))} 至 {_d(check.get('window_due'))}）")
    elif check.get("status") == "running":
        it.lines.append(f"劝返期进行中：已 {check['in_window']} 次，需 {check['required']} 次，"
                        f"截止 {_d(check.get('window_due'))}")

    # documents into their items (5, 6, 7, 8 by their forms; others by the state on the day)
    for doc in cf.documents:
        _document_entries(cf, doc, items[_doc_item(cf, doc)])

    # 5. 报告单 and receipts
    it = items[5]
    it.applicable = bool(visited & {"REPORTED", "NOTICED", "JOINT", "LEGAL", "APPROVAL", "DEFERRED", "LOCATING"})
    receipts = cf.of_kind("receipt")
    for r in receipts:
        who = {"township": "乡(镇)人民政府", "education": "教育部门"}.get(r.data.get("by"), r.data.get("by"))
        it.lines.append(f"签收：{who} {r.data.get('received_on')}")
    if it.applicable:
        reports = [d for d in cf.documents if _doc_item(cf, d) == 5 and d.status == "issued"]
        if not reports:
            it.missing.append("没有辍学情况报告单")
        by = {r.data.get("by") for r in receipts}
        if "township" not in by:
            it.missing.append("没有乡(镇)人民政府的签收回执")
        if "education" not in by and not facts.get("report_received_by_education"):
            it.missing.append("没有教育部门的签收回执")

    # 6. township notice with stub and a complete 送达回证
    it = items[6]
    notices = [d for d in cf.documents if _doc_item(cf, d) == 6 and d.status == "issued"]
    it.applicable = bool(visited & {"NOTICED", "JOINT", "LEGAL"}) or bool(notices)
    for d in notices:
        for s in _services_of(cf, d.id):
            method = _SERVICE.get(s.get("method"), s.get("method"))
            it.lines.append(f"送达：{_doc_title(d)} {s.get('served_on')} {method}"
                            f"，回证{'完整' if s.get('complete') else '不完整'}")
        if not any(s.get("complete") for s in _services_of(cf, d.id)):
            it.missing.append(f"{_doc_title(d)} 没有完整的送达回证")
        if not cf.returns.get(d.id):
            it.missing.append(f"{_doc_title(d)} 没有回收的送达回证原件（扫描件）")
    if it.applicable and not notices:
        it.missing.append("没有乡(镇)返校通知书")

    # 7. joint persuasion, letters and replies
    it = items[7]
    joint = [a for a in attempts if a.get("stage") == "joint"]
    it.applicable = bool(visited & {"JOINT", "LEGAL", "APPROVAL"})
    it.lines.extend(_attempt_line(a) for a in joint)
    for r in cf.referrals:
        it.lines.append(f"部门函件：致{_PARTNERS.get(r.to_department, r.to_department)}"
                        f"{'（' + r.to_unit_name + '）' if r.to_unit_name else ''} {r.sent_on.isoformat()}：{r.reason}"
                        + (f"；回复 {_d(r.replied_on)}：{r.reply}" if r.reply else "；未回复"))
    if it.applicable:
        need_joint = cf.profile.joint.min_attempts
        if len(joint) < need_joint:
            it.missing.append(f"联合劝返记录 {len(joint)} 次，少于 {need_joint} 次")
        if not cf.referrals:
            it.missing.append("没有部门函件")
        for r in cf.referrals:
            if not r.reply:
                to = _PARTNERS.get(r.to_department, r.to_department)
                it.missing.append(f"致{to}的函件（{r.sent_on.isoformat()}）没有回复")

    # 8. legal measures, 9 outcome evidence, 11 over-age mark: evidence items by kind
    for ev in cf.evidence:
        no = 8 if ev.kind in LEGAL_EVIDENCE else 11 if ev.kind in OVER_AGE_EVIDENCE else 9
        it = items[no]
        state = f"已核实（{ev.verified_by} {_d(ev.verified_at)}）" if ev.verified_by else "未核实"
        it.lines.append(f"{EVIDENCE_KINDS.get(ev.kind, ev.kind)}：{state}" + (f"；{ev.note}" if ev.note else ""))
        up = cf.uploads.get(ev.upload_id) if ev.upload_id else None
        if up is not None:
            it.sources.append(Source("evidence", f"{EVIDENCE_KINDS.get(ev.kind, ev.kind)}（{up.original_filename}）",
                                     up.sha256, up.size, up.stored_path, upload_id=up.id,
                                     filename=up.original_filename, on=up.uploaded_at.date()))
    items[8].applicable = "LEGAL" in visited or bool(items[8].lines)
    if "LEGAL" in visited and not any(_doc_item(cf, d) == 8 for d in cf.documents) and \
            not any(e.kind in LEGAL_EVIDENCE for e in cf.evidence):
        items[8].missing.append("进入司法介入，但没有责令复学通知书或司法文书")
    if not items[8].applicable:
        items[8].lines.append("未采取司法措施")

    # 9. outcome evidence
    it = items[9]
    it.applicable = case.state == "CLOSED" or bool(visited & {"RETURNED", "DEFERRED", "HOME_TAUGHT"})
    returned_on = facts.get("returned_on")
    if returned_on:
        it.lines.insert(0, f"返校日期：{returned_on}")
    if case.state == "CLOSED":
        from cases.engine.closure import check_closure

        outcome = case.closure_reason
        if outcome in OUTCOMES:
            check = check_closure(outcome, cf.evidence_items, cf.profile)
            for m in check.missing:
                it.missing.append(f"{OUTCOMES[outcome]}：{m}")
    elif not it.lines:
        it.lines.append("案件尚未结案")

    # 10. continuing persuasion / home teaching
    it = items[10]
    since = cf.entered("DEFERRED") or cf.entered("HOME_TAUGHT")
    it.applicable = since is not None
    if since:
        later = [a for a in attempts if dt.date.fromisoformat(a["date"]) >= since]
        it.lines.extend(_attempt_line(a) for a in later)
        if not later:
            it.missing.append(f"{since.isoformat()} 起延缓/送教期间没有持续劝返或送教记录")
    else:
        it.lines.append("未进入延缓入学/休学或送教上门")

    # 11. over-age mark
    it = items[11]
    it.applicable = any(t.transition == "T20" for t in cf.transitions) or bool(facts.get("over_age"))
    if it.applicable and not any(e.kind in OVER_AGE_EVIDENCE for e in cf.evidence):
        it.missing.append("没有超龄离校标注")
    if not it.applicable and not it.lines:
        it.lines.append("不适用")

    # 12. closure
    it = items[12]
    closing = [t for t in cf.transitions if t.to_state == "CLOSED"]
    it.applicable = bool(closing)
    for t in closing:
        outcome = (t.data or {}).get("outcome") or case.closure_reason
        it.lines.append(f"销号：{_d(t.occurred_at)}，依据：{OUTCOMES.get(outcome, outcome or '—')}（{t.transition}），"
                        f"办理人：{t.actor or '—'}")
    if not closing:
        it.lines.append(f"案件未销号，当前状态：{workflow.STATES.get(case.state, case.state)}")

    # 13. ledger presence per snapshot
    it = items[13]
    for snap in cf.snapshots:
        row = next((r for r in snap.rows or [] if r.get("case_id") == case.id), None)
        if snap.as_of > (cf.closed_on() or cf.today):
            continue
        it.lines.append(f"{snap.as_of.isoformat()} {_ledger_label(snap.kind)}台账（快照 {snap.id}）："
                        + (f"在册，状态 {row.get('state')}" if row else "未列入"))
    if not cf.snapshots:
        it.lines.append("立案以来没有已归档的学校或乡镇台账快照")
    return [items[no] for no, _ in ITEMS]


def _ledger_label(kind: str) -> str:
    return {"school": "学校", "township": "乡镇", "village": "村", "county": "县"}.get(kind, kind)


# ---- assembly -------------------------------------------------------------------------------------

@dataclass
class Dossier:
    pdf: bytes
    manifest: dict
    filename: str


def _source_pages(out: pikepdf.Pdf, services: Services, src: Source, cache: dict) -> list[pikepdf.Page]:
    """Pages of one original, in ``out``'s object space."""
    try:
        data = services.store.read_bytes(src.store_path)
    except (NotFound, OSError) as e:
        raise DossierFailed(f"存储区中找不到原件：{src.label}（{src.store_path}）", path=src.store_path) from e
    if mf_sha(data) != src.sha256:
        raise DossierFailed(f"存储区中的原件与登记的哈希不一致：{src.label}", path=src.store_path)
    src.size = len(data)
    if src.role == "issued":
        pdf = pikepdf.open(io.BytesIO(data))
        cache.setdefault("open", []).append(pdf)
        pages = [out.copy_foreign(p.obj) for p in pdf.pages]
        return [pikepdf.Page(p) for p in pages]
    if data[:4] == b"PK\x03\x04":  # a DOCX return: laid out by the warm converter, then pictured
        from forms.pdf import get_converter

        data = get_converter(services.pdf_workers, services.pdf_timeout).convert(data)
    try:
        return P.image_pages(out, data, src.filename or src.label, src.pages)
    except BaoxueError as e:
        log.warning("dossier: %s cannot be shown as pages: %s", src.label, e.message)
        return []


def mf_sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _cover_lines(cf: CaseFile, generated: dt.datetime) -> list[P.Line]:
    case = cf.case
    opened, closed = case.opened_on, cf.closed_on()
    reason = next((c.label for c in codes.DROPOUT_REASONS if c.code == case.reason_code), case.reason_code or "—")
    return [
        P.Line("控辍保学个案卷宗", "title"),
        P.Line(f"案件编号 {case.number}", "subtitle"),
        P.Line(f"学生：{mask_name(cf.pupil.name)}（{cf.pupil.sex}）"),
        P.Line(f"学校：{cf.school.name}"),
        P.Line(f"乡(镇)：{cf.township.name if cf.township else '—'}"),
        P.Line(f"当前状态：{workflow.STATES.get(case.state, case.state)}（{case.state}）"),
        P.Line(f"辍学原因：{reason}"),
        P.Line(f"立案日期：{opened.isoformat()}；结案日期：{closed.isoformat() if closed else '未结案'}"),
        P.Line(f"辍学认定日：{case.dropout_confirmed_on.isoformat() if case.dropout_confirmed_on else '—'}"),
        P.Line(f"第 {case.episode} 次{'（反弹）' if case.relapse else ''}；地区规则：{cf.profile.name}"),
        P.Line("space", "space"),
        P.Line(f"生成时间：{generated.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime('%Y-%m-%d %H:%M')}"
               "（北京时间）", "small"),
        P.Line("本卷宗为 PDF/A 归档文件，附有签名清单（manifest.json），可用“flask --app app dossier verify 文件.pdf”"
               "或核验接口核对每一份原件。学生姓名已遮盖，身份证号不在卷宗封面出现。", "small"),
    ]


def _toc_lines(entries: list[tuple[str, int, bool]]) -> list[P.Line]:
    lines = [P.Line("目  录", "heading")]
    for title, page, sub in entries:
        dots = "·" * max(4, 60 - len(title) * 2)
        lines.append(P.Line(f"{title} {dots} {page}", "tocsub" if sub else "toc"))
    return lines


def _item_lines(item: Item) -> list[P.Line]:
    lines = [P.Line(f"{item.no}. {item.title}", "heading")]
    lines.extend(P.Line(t) for t in item.lines)
    if not item.applicable and not item.lines:
        lines.append(P.Line("不适用"))
    for m in item.missing:
        lines.append(P.Line(f"缺失：{m}", "missing"))
    if item.sources:
        lines.append(P.Line("附：" + "；".join(s.label for s in item.sources), "small"))
    return lines


def _checks_lines(findings: list[Finding]) -> list[P.Line]:
    lines = [P.Line("闭环核查结果", "heading")]
    if not findings:
        lines.append(P.Line("未发现不一致。"))
    for f in findings:
        lines.append(P.Line(f"[{f.rule}] {f.title}：{f.message}", "missing"))
    return lines


def _manifest_lines(man: dict, public_key: str) -> list[P.Line]:
    lines = [P.Line("卷宗清单", "heading"),
             P.Line(f"案件 {man['case']['number']}；正文第 1–{man['body_pages']} 页，本清单自第 "
                    f"{man['body_pages'] + 1} 页起；生成于 {man['generated_at']}", "small"),
             P.Line(f"签名：Ed25519；公钥 {public_key}", "mono"),
             P.Line("每份原件（签发件 PDF、回收件、证明材料）的 SHA-256：", "small")]
    for f in man["files"]:
        where = f"第 {f['first_page']}–{f['last_page']} 页" if f.get("first_page") else "未显示页面"
        lines.append(P.Line(f"{f['role']} {f['label']}（{where}）", "mono"))
        lines.append(P.Line(f["sha256"], "hash"))
    lines.append(P.Line("各页指纹（页面内容和图像的 SHA-256）见附件 manifest.json。", "small"))
    return lines


def build_dossier(session: Session, services: Services, case: Case, *, today: dt.date | None = None,
                  generated_by: str = "system", validate: bool = False) -> Dossier:
    """The dossier PDF/A of ``case`` and its manifest. Raises DossierFailed naming a missing or
    altered original (nothing is produced from a store that does not match its records)."""
    cf = load_case_file(session, case, today=today)
    items = collect_items(cf)
    findings = run_checks(session, cf)
    generated = utcnow()
    footer = f"{case.number} 卷宗"
    out = pikepdf.new()
    keep: dict = {}

    # Parts in order: cover, 目录, per item: summary + originals, checks, manifest. The text parts
    # but the 目录 and the manifest are set in one build (their page counts known from it).
    text, counts = P.text_parts([_cover_lines(cf, generated), *(_item_lines(it) for it in items),
                                 _checks_lines(findings)], footer=footer)
    cover_n, item_ns, checks_n = counts[0], counts[1:-1], counts[-1]
    item_parts = []
    for item in items:
        item_parts.append((item, [(src, _source_pages(out, services, src, keep)) for src in item.sources]))

    def numbered(toc_n: int) -> tuple[list[tuple[str, int, bool]], list[P.Bookmark], list, int, int]:
        """The 目录's entries, the bookmarks, the originals' page ranges, the checks' and the
        manifest's first page (1-based) when the 目录 has ``toc_n`` pages."""
        page = cover_n + toc_n + 1
        entries: list[tuple[str, int, bool]] = []
        marks: list[P.Bookmark] = []
        layout = []
        for (item, originals), summary_n in zip(item_parts, item_ns, strict=True):
            start = page
            entries.append((f"{item.no}. {item.title}" + ("（有缺失）" if item.missing else ""), start, False))
            page += summary_n
            children = []
            for src, pages in originals:
                if pages:
                    entries.append((src.label, page, True))
                    children.append(P.Bookmark(src.label, page - 1))
                    layout.append((src, page, page + len(pages) - 1))
                    page += len(pages)
                else:
                    layout.append((src, None, None))
            marks.append(P.Bookmark(f"{item.no}. {item.title}", start - 1, tuple(children)))
        checks_page = page
        entries.append(("闭环核查结果", checks_page, False))
        entries.append(("卷宗清单", checks_page + checks_n, False))
        return entries, marks, layout, checks_page, checks_page + checks_n

    # The 目录 is set for the page count it is expected to take, again if it takes another.
    toc_n = max(1, -(-(24 + sum(19 if not sub else 14 for *_, sub in numbered(1)[0])) // 700))
    for _ in range(3):
        entries, marks, layout, checks_page, manifest_page = numbered(toc_n)
        toc, (n,) = P.text_parts([_toc_lines(entries)], footer=footer)
        if n == toc_n:
            break
        toc_n = n
    else:
        raise DossierFailed("目录页数与预排不一致")

    def append_pdf(data: bytes, counts: list[int]) -> list[list[pikepdf.Page]]:
        """The pages of each part of ``data``, copied into ``out`` (not yet placed)."""
        src = pikepdf.open(io.BytesIO(data))
        keep.setdefault("open", []).append(src)
        copied = [pikepdf.Page(out.copy_foreign(p.obj)) for p in src.pages]
        parts, at = [], 0
        for n in counts:
            parts.append(copied[at:at + n])
            at += n
        return parts

    cover_pages, *summary_pages, checks_pages = append_pdf(text, counts)
    [toc_pages] = append_pdf(toc, [toc_n])
    out.pages.extend(cover_pages + toc_pages)
    for (_item, originals), summary in zip(item_parts, summary_pages, strict=True):
        out.pages.extend(summary)
        for _src, pages in originals:
            out.pages.extend(pages)
    out.pages.extend(checks_pages)
    P.strip_page_extras(out.pages)
    body_pages = len(out.pages)
    fingerprints = [P.page_fingerprint(p) for p in out.pages]

    files = []
    for src, first, last in layout:
        files.append({"role": src.role, "label": src.label, "sha256": src.sha256, "size": src.size,
                      "store_path": src.store_path, "document_id": src.document_id, "upload_id": src.upload_id,
                      "first_page": first, "last_page": last, "shown_pages": src.pages})
    man = {
        "format": mf.FORMAT,
        "case": {"id": case.id, "number": case.number, "state": case.state, "org_id": case.org_id,
                 "township_org_id": case.township_org_id, "opened_on": case.opened_on.isoformat(),
                 "closed_on": cf.closed_on().isoformat() if cf.closed_on() else None},
        "generated_at": generated.isoformat(timespec="seconds"), "generated_by": generated_by,
        "pdfa": P.PDFA_FLAVOUR,
        "items": [{"no": it.no, "title": it.title, "page": e[1], "missing": it.missing}
                  for it, e in zip(items, [x for x in entries if not x[2]][:len(items)], strict=True)],
        "checks": [f.as_json() for f in findings],
        "files": files,
        "body_pages": body_pages,
        "page_fingerprints": fingerprints,
    }
    # The manifest pages name the body's pages only, so they are set once and then counted.
    mpdf, (man["manifest_pages"],) = P.text_parts([_manifest_lines(man, mf.public_key_hex(services.qr_keys.current))],
                                                  footer=footer)
    man["pages"] = body_pages + man["manifest_pages"]
    [manifest_pages] = append_pdf(mpdf, [man["manifest_pages"]])
    out.pages.extend(manifest_pages)
    P.strip_page_extras(out.pages)
    P.embed_standard_fonts(out)
    marks.append(P.Bookmark("闭环核查结果", checks_page - 1))
    marks.append(P.Bookmark("卷宗清单", manifest_page - 1))
    P.add_bookmarks(out, [P.Bookmark("封面", 0), P.Bookmark("目录", cover_n), *marks])
    P.attach_manifest(out, mf.sign(man, services.qr_keys.current))
    title = f"控辍保学个案卷宗 {case.number}"
    try:
        data = P.save_pdfa(out, title=title, subject=f"{case.number} 卷宗（{len(files)} 份原件）", validate=validate)
    except P.DossierPdfError as e:
        raise DossierFailed(str(e), case=case.id) from e
    finally:
        for p in keep.get("open", []):
            p.close()
    log.info("dossier of case %s: %d pages, %d originals, %d findings", case.number, man["pages"], len(files),
             len(findings))
    return Dossier(pdf=data, manifest=man, filename=f"卷宗-{case.number}.pdf")


__all__ = ["ITEMS", "Dossier", "DossierFailed", "Item", "Source", "build_dossier", "collect_items", "mask_name",
           "Upload"]
