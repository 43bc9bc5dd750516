"""整班移交 (whole-class handover, DOMAIN §4) end to end.

1. ``import_plan``: the county assigns each grade-6 class to a junior school (整班移交方案).
2. ``import_roster``: the grade-6 roster (CSV/XLSX) creates or updates pupils and guardians in the
   plan's classes; bad rows are reported by row number and reason, good rows are kept.
3. ``start_plan_render``: one 交接表 per class as a background job (reuses ``cases.documents.batch``); each
   issued document is linked to its plan entry, and its printed 序号 are the plan's row indexes.
4. ``record_registration`` (grade-7 registration at the receiving school, matched per §4.3 by ID
   number, else 学籍号, else name + birth date — the last kept pending until a person confirms it
   with ``confirm_registration``) and ``record_row_tick`` (ticks on a returned 交接表).
5. ``close_registration_window``: every non-arrival without a legitimate, proven whereabouts
   becomes an ABSENT case (T1) at the receiving school with the township of the pupil's 户籍;
   the sending school is notified (``notified_on``) and late notifications are flagged.
6. ``county_check_report``: the county's 15-day check per handing-over / receiving pair, as JSON
   and XLSX.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.documents.batch import submit_batch
from cases.engine.deadlines import Timer, add_working_days, due_date
from cases.engine.profiles import DEFAULT_PROFILE, RegionProfile, load_profile
from cases.engine.workflow import OPEN_STATES
from cases.handover.documents import ROLE, handover_data
from cases.handover.models import HandoverEntry, HandoverPlan, HandoverRow, Registration
from cases.store import audit
from cases.store.models import Case, CaseEvent, Document, Guardian, Org, Pupil, SchoolClass, descendants, nearest
from cases.store.tables import read_table
from forms import codes
from forms import validators as v
from forms.errors import Conflict, NotFound, ValidationFailed
from forms.registry import spec_for
from forms.spec import Kind
from forms.specs.handover import ROSTER_HUKOU_CODE, roster_columns, roster_fields
from forms.validators import format_date

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
WHEREABOUTS = {c.code: c.label for c in codes.HANDOVER_WHEREABOUTS}
# Non-arrivals that need no case when the whereabouts is proven (DOMAIN §4.3: cases are required
# for 去向不明 / 疑似辍学; 转外地就读 needs its 学籍转接证明, the others a comparable proof).
LEGITIMATE_WITH_PROOF = frozenset({"transfer_out", "county_other", "migrated"})
CASE_WHEREABOUTS = frozenset({"unknown", "suspected"})
# Q13: the registration period ends with the 3rd school day of term unless the plan says otherwise.
DEFAULT_WINDOW_SCHOOL_DAYS = 3
SENDING_GRADE = 6

# ---- roster columns (CSV/XLSX header -> field); the first label is the official heading ---------------

# the plan's own keys (which class), then the 交接表's row columns as its spec declares them
ROSTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "school_code": ("学校标识码", "移交学校标识码", "school_code"),
    "class_name": ("班级", "原班级", "class_name"),
    **roster_columns(),
}
ROSTER_ROW_FIELDS = roster_fields()
# a roster row's field by its source in the 交接表 (``Field.source``)
_ROW = {f.source: f.name for f in ROSTER_ROW_FIELDS if f.source}
HUKOU_CODE = ROSTER_HUKOU_CODE
# required: the plan's keys and the spec's required columns, except the birth date (from the ID number)
ROSTER_REQUIRED = ("school_code", "class_name", *(f.name for f in ROSTER_ROW_FIELDS
                                                  if f.required and f.kind != Kind.DATE))
_KIND_CHECKS = {Kind.ID_NUMBER: v.check_id_number, Kind.XUEJI_NO: v.check_xueji_no, Kind.PHONE: v.check_phone,
                Kind.NAME: v.check_name, Kind.DATE: v.parse_date}
PLAN_COLUMNS: dict[str, tuple[str, ...]] = {
    "school_code": ("学校标识码", "移交学校标识码", "school_code"),
    "class_name": ("班级", "原班级", "class_name"),
    "receiving_school_code": ("接收学校标识码", "receiving_school_code"),
}
_SPECIAL = {c.code: c.code for c in codes.SPECIAL_GROUPS} | {c.label: c.code for c in codes.SPECIAL_GROUPS}
_RELATIONS = {c.code for c in codes.RELATIONSHIPS}


# ---- reading tables ---------------------------------------------------------------------------------

def _map_columns(header_row: Mapping[str, str], columns: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """field -> the header used in the file, for the known columns present."""
    found = {}
    for fname, labels in columns.items():
        for label in labels:
            if label in header_row:
                found[fname] = label
                break
    return found


# ---- plan ---------------------------------------------------------------------------------------------

def _county(session: Session, county_id: int) -> Org:
    county = session.get(Org, int(county_id))
    if county is None or county.kind != "county":
        raise NotFound(f"县(市、区) {county_id} 不存在", fields={"county_id": "不存在"})
    return county


def profile_of(session: Session, org: Org) -> RegionProfile:
    """The region profile configured on ``org`` or the nearest ancestor (default otherwise)."""
    node: Org | None = org
    while node is not None:
        if node.region_profile:
            return load_profile(node.region_profile)
        node = session.get(Org, node.parent_id) if node.parent_id else None
    return load_profile(DEFAULT_PROFILE)


def _school_by_code(session: Session, county: Org, code: str) -> Org | None:
    return session.scalar(select(Org).where(Org.code == code, Org.kind == "school",
                                            Org.path.startswith(county.path)))


def _class_for(session: Session, school: Org, name: str, school_year: int, *, create: bool) -> SchoolClass | None:
    klass = session.scalar(select(SchoolClass).where(SchoolClass.org_id == school.id,
                                                     SchoolClass.school_year == school_year,
                                                     SchoolClass.name == name))
    if klass is None and create:
        klass = SchoolClass(org_id=school.id, grade=SENDING_GRADE, school_year=school_year, name=name)
        session.add(klass)
        session.flush()
    return klass


def default_window_end(term_start: dt.date) -> dt.date:
    """Q13 default: the end of the 3rd school day of the autumn term (statutory working days)."""
    return add_working_days(term_start - dt.timedelta(days=1), DEFAULT_WINDOW_SCHOOL_DAYS).date


def import_plan(session: Session, *, county_id: int, year: int, entries: Iterable[Mapping[str, Any]],
                window_end: dt.date | None = None, term_start: dt.date | None = None,
                title: str | None = None, actor: str) -> HandoverPlan:
    """Create a county's 整班移交方案: each entry names a sending grade-6 class (``class_id``, or
    ``school_code`` + ``class_name``, created if missing) and its receiving school
    (``receiving_school_id`` or ``receiving_school_code``). Every entry is checked before anything
    is written; errors name the entry and field."""
    county = _county(session, county_id)
    if window_end is None:
        if term_start is None:
            raise ValidationFailed("请给出报到注册截止日期或秋季开学日期",
                                   fields={"window_end": "必填（或填 term_start）"})
        window_end = default_window_end(term_start)
    if term_start is not None and window_end < term_start:
        raise ValidationFailed("报到注册截止日期不能早于开学日期", fields={"window_end": "早于开学日期"})
    entries = list(entries)
    if not entries:
        raise ValidationFailed("移交方案没有班级", fields={"entries": "至少一个班级"})
    school_year = year - 1  # the grade-6 classes belong to the school year ending in the handover summer
    errors: dict[str, str] = {}
    # (existing class, or (school, class name) to create once everything checked out, receiving school)
    resolved: list[tuple[SchoolClass | tuple[Org, str], Org]] = []
    seen: set = set()
    for i, e in enumerate(entries):
        p = f"entries[{i}]."
        klass: SchoolClass | tuple[Org, str] | None = None
        if e.get("class_id"):
            klass = session.get(SchoolClass, int(e["class_id"]))
            if klass is None:
                errors[p + "class_id"] = "班级不存在"
        else:
            school = _school_by_code(session, county, str(e.get("school_code") or ""))
            if school is None:
                errors[p + "school_code"] = f"本县没有学校标识码为“{e.get('school_code')}”的学校"
            elif not e.get("class_name"):
                errors[p + "class_name"] = "必填"
            else:
                klass = (_class_for(session, school, str(e["class_name"]), school_year, create=False)
                         or (school, str(e["class_name"])))
        sending_id = None
        if isinstance(klass, SchoolClass):
            sending = session.get(Org, klass.org_id)
            sending_id = sending.id
            if not sending.path.startswith(county.path):
                errors[p + "class_id"] = "班级不在本县"
            elif klass.grade != SENDING_GRADE:
                errors[p + "class_id"] = f"整班移交针对六年级班级，该班为{klass.grade}年级"
            key = klass.id
        elif klass is not None:
            sending_id = klass[0].id
            key = (klass[0].id, klass[1])
        if klass is not None:
            if key in seen:
                errors[p + "class_id"] = "班级重复"
            seen.add(key)
        receiving = None
        if e.get("receiving_school_id"):
            receiving = session.get(Org, int(e["receiving_school_id"]))
        elif e.get("receiving_school_code"):
            receiving = _school_by_code(session, county, str(e["receiving_school_code"]))
        if receiving is None or receiving.kind != "school" or not receiving.path.startswith(county.path):
            errors[p + "receiving_school_id"] = "接收学校不存在或不在本县"
        elif receiving.id == sending_id:
            errors[p + "receiving_school_id"] = "接收学校不能是移交学校"
        if klass is not None and receiving is not None:
            resolved.append((klass, receiving))
    if errors:
        raise ValidationFailed(f"移交方案有{len(errors)}处错误，未保存", fields=errors)
    plan = HandoverPlan(org_id=county.id, year=year, term_start=term_start, window_end=window_end,
                        status="open", title=title or f"{county.name}{year}年小学六年级毕业生整班移交方案",
                        created_by=actor)
    session.add(plan)
    session.flush()
    for klass, receiving in resolved:
        if not isinstance(klass, SchoolClass):
            klass = _class_for(session, klass[0], klass[1], school_year, create=True)
        entry = HandoverEntry(plan_id=plan.id, org_id=klass.org_id, class_id=klass.id,
                              receiving_school_id=receiving.id)
        session.add(entry)
        session.flush()
        sync_rows(session, entry)
    audit.record(session, who=actor, org=county, action="handover.plan", target=f"handover_plan:{plan.id}",
                 after={"year": year, "entries": len(resolved), "window_end": window_end})
    session.flush()
    return plan


def import_plan_table(session: Session, *, county_id: int, year: int, filename: str, data: bytes,
                      window_end: dt.date | None = None, term_start: dt.date | None = None,
                      actor: str) -> HandoverPlan:
    """``import_plan`` from a CSV/XLSX with columns 学校标识码, 班级, 接收学校标识码."""
    rows = read_table(filename, data)
    entries = []
    for _number, raw in rows:
        cols = _map_columns(raw, PLAN_COLUMNS)
        entries.append({k: raw[h] for k, h in cols.items()})
    return import_plan(session, county_id=county_id, year=year, entries=entries, window_end=window_end,
                       term_start=term_start, actor=actor)


def get_plan(session: Session, plan_id: int) -> HandoverPlan:
    plan = session.get(HandoverPlan, int(plan_id))
    if plan is None:
        raise NotFound(f"移交方案 {plan_id} 不存在")
    return plan


def sync_rows(session: Session, entry: HandoverEntry) -> list[HandoverRow]:
    """Make the entry's rows follow its class's pupils. Before the 交接表 is issued rows are
    renumbered by pupil id; afterwards the printed 序号 are fixed, so new pupils are only appended."""
    pupils = session.scalars(select(Pupil).where(Pupil.class_id == entry.class_id).order_by(Pupil.id)).all()
    rows = {r.pupil_id: r for r in session.scalars(select(HandoverRow).where(HandoverRow.entry_id == entry.id))}
    if entry.document_id is None:
        ids = {p.id for p in pupils}
        for pid, r in list(rows.items()):
            if pid not in ids and r.registered is None:
                session.delete(r)
                del rows[pid]
        session.flush()
        # two passes so the (entry, row_index) unique key never collides while renumbering
        for r in rows.values():
            r.row_index = -r.id
        session.flush()
        for i, p in enumerate(pupils, 1):
            if p.id in rows:
                rows[p.id].row_index = i
            else:
                rows[p.id] = HandoverRow(entry_id=entry.id, org_id=entry.org_id, pupil_id=p.id, row_index=i)
                session.add(rows[p.id])
    else:
        last = max((r.row_index for r in rows.values()), default=0)
        for p in pupils:
            if p.id not in rows:
                last += 1
                rows[p.id] = HandoverRow(entry_id=entry.id, org_id=entry.org_id, pupil_id=p.id, row_index=last)
                session.add(rows[p.id])
                log.warning("pupil %s joined class %s after its 交接表 was issued (row %s)", p.id,
                            entry.class_id, last)
    session.flush()
    session.expire(entry, ["rows"])  # rows were added through the session, not the relationship
    return sorted(rows.values(), key=lambda r: r.row_index)


# ---- roster -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RosterResult:
    """What a roster import did: pupils created / updated and the rejected rows with reasons."""

    created: int
    updated: int
    errors: tuple[dict, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"created": self.created, "updated": self.updated, "rejected": len(self.errors),
                "errors": list(self.errors)}


def _place_from_text(session: Session, county: Org, code: str | None, text: str | None) -> Org | None:
    """The village (or township) a 户籍 entry names: by division code, else by the names in it."""
    if code:
        org = session.scalar(select(Org).where(Org.code == code, Org.path.startswith(county.path)))
        if org is not None:
            return org
    if not text:
        return None
    for township in descendants(session, county, kind="township"):
        if township.name in text:
            for village in descendants(session, township, kind="village"):
                if village.name in text:
                    return village
            return township
    return None


def _clean_roster_row(raw: Mapping[str, str], cols: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    val = {k: (raw.get(h) or "").strip() for k, h in cols.items()}
    errs: dict[str, str] = {}
    for k in ROSTER_REQUIRED:
        if not val.get(k):
            errs[k] = f"“{ROSTER_COLUMNS[k][0]}”必填"
    out: dict[str, Any] = {k: val.get(k) or None for k in ROSTER_COLUMNS}

    def check(key: str, fn) -> None:
        if out.get(key) and key not in errs:
            try:
                out[key] = fn(out[key])
            except ValueError as e:
                errs[key] = str(e)

    for f in ROSTER_ROW_FIELDS:
        if f.kind in _KIND_CHECKS:
            check(f.name, _KIND_CHECKS[f.kind])
    if out.get("sex") and out["sex"] not in ("男", "女"):
        errs["sex"] = "性别应为“男”或“女”"
    idn = out.get("id_number") if "id_number" not in errs else None
    if idn:
        if out.get("sex") in ("男", "女") and out["sex"] != v.id_sex(idn):
            errs["sex"] = f"性别与身份证号第17位不符(应为{v.id_sex(idn)})"
        if out.get("birth_date") and "birth_date" not in errs and out["birth_date"] != v.id_birth_date(idn):
            errs["birth_date"] = "出生日期与身份证号第7-14位不符"
        out["birth_date"] = v.id_birth_date(idn)
        x = out.get("xueji_no")
        if x and "xueji_no" not in errs and x.startswith("G") and x[1:] != idn:
            errs["xueji_no"] = "G字头学籍号应为“G”+身份证号"
    relation = _ROW["guardian.relation"]
    if out.get(relation) and out[relation] not in _RELATIONS:
        errs[relation] = f"关系应为{'、'.join(sorted(_RELATIONS))}之一"
    groups = []
    for part in re.split(r"[,，、;；\s]+", out.get("special_groups") or ""):
        if not part:
            continue
        if part not in _SPECIAL:
            errs["special_groups"] = f"未知的特殊群体“{part}”"
            break
        groups.append(_SPECIAL[part])
    out["special_groups"] = sorted(set(groups))
    if out.get(HUKOU_CODE) and not re.fullmatch(r"\d{6}(\d{6})?", out[HUKOU_CODE]):
        errs[HUKOU_CODE] = "户籍地区划代码应为6位或12位数字"
    return out, errs


def import_roster(session: Session, plan: HandoverPlan, *, filename: str, data: bytes, actor: str) -> RosterResult:
    """Import the grade-6 roster of a plan (CSV/XLSX, columns ``ROSTER_COLUMNS``; the first label of
    each is the official heading). Each row must name a class of the plan (学校标识码 + 班级); ID
    number, 学籍号 and phone are validated. Pupils are matched by ID number and created or updated
    with their guardian; bad rows are skipped and reported as {"row", "errors"}."""
    county = session.get(Org, plan.org_id)
    rows = read_table(filename, data)
    if not rows:
        raise ValidationFailed(f"“{filename}”没有数据行", fields={"file": "没有数据行"})
    cols = _map_columns(rows[0][1], ROSTER_COLUMNS)
    missing = [ROSTER_COLUMNS[k][0] for k in ROSTER_REQUIRED if k not in cols]
    if missing:
        raise ValidationFailed(f"花名册缺少列：{'、'.join(missing)}", fields={"file": "缺少列：" + "、".join(missing)})
    entries = {}
    for e in plan.entries:
        school = session.get(Org, e.org_id)
        entries[(school.code, e.school_class.name)] = e
    created = updated = 0
    errors: list[dict] = []
    seen_ids: dict[str, int] = {}
    touched: set[int] = set()
    for number, raw in rows:
        out, errs = _clean_roster_row(raw, cols)
        entry = entries.get((out.get("school_code"), out.get("class_name")))
        if entry is None and "school_code" not in errs and "class_name" not in errs:
            errs["class_name"] = f"学校“{out.get('school_code')}”的“{out.get('class_name')}”不在本移交方案中"
        idn = out.get("id_number")
        if idn and "id_number" not in errs:
            if idn in seen_ids:
                errs["id_number"] = f"与第{seen_ids[idn]}行身份证号重复"
            else:
                seen_ids[idn] = number
        if errs:
            errors.append({"row": number, "errors": errs})
            continue
        pupil = session.scalar(select(Pupil).where(Pupil.id_number == idn))
        hukou_place, residence = out[_ROW["pupil.hukou_short"]], out.get(_ROW["pupil.address"])
        place = _place_from_text(session, county, out.get(HUKOU_CODE), hukou_place)
        values = {"org_id": entry.org_id, "class_id": entry.class_id, "name": out["name"], "sex": out["sex"],
                  "birth_date": out["birth_date"], "id_number": idn, "xueji_no": out["xueji_no"],
                  "hukou_text": hukou_place, "address": residence or hukou_place,
                  "special_groups": out["special_groups"], "hukou_org_id": place.id if place else None}
        if pupil is None:
            pupil = Pupil(**values)
            session.add(pupil)
            created += 1
        else:
            for k, val in values.items():
                setattr(pupil, k, val)
            updated += 1
        session.flush()
        g_name, g_relation, g_phone = (out[_ROW[f"guardian.{k}"]] for k in ("name", "relation", "phone"))
        guardian = session.scalar(select(Guardian).where(Guardian.pupil_id == pupil.id, Guardian.name == g_name))
        if guardian is None:
            guardian = Guardian(pupil_id=pupil.id, org_id=pupil.org_id, name=g_name, relation=g_relation,
                                phone=g_phone)
            session.add(guardian)
        else:
            guardian.relation, guardian.phone, guardian.org_id = g_relation, g_phone, pupil.org_id
        touched.add(entry.id)
    session.flush()
    for e in plan.entries:
        if e.id in touched:
            sync_rows(session, e)
    result = RosterResult(created, updated, tuple(errors))
    audit.record(session, who=actor, org=plan.org_id, action="handover.roster",
                 target=f"handover_plan:{plan.id}", after={"file": filename, **result.to_json(),
                                                           "errors": len(errors)})
    session.flush()
    log.info("roster %s for plan %s: %s created, %s updated, %s rejected", filename, plan.id, created,
             updated, len(errors))
    return result


# ---- 交接表 per class (the batch job of cases.documents.batch) -------------------------------------

def default_issuer(session: Session, plan: HandoverPlan) -> Org:
    """Who numbers the 交接表 of a plan by default: the county education bureau, else the county."""
    county = session.get(Org, plan.org_id)
    bureau = next((c for c in sorted(county.children, key=lambda o: o.id) if c.kind == "education_bureau"),
                  None)
    return bureau or county


def plan_render_items(session: Session, plan: HandoverPlan, *, issuer_id: int,
                      data: Mapping[str, Any] | None = None) -> list[dict]:
    """One batch item per class of the plan: the 交接表 data (rows in the plan's row order) and the
    hook that links the issued document to the entry."""
    items, errors = [], {}
    for entry in plan.entries:
        rows = sync_rows(session, entry)
        klass = entry.school_class
        school = session.get(Org, entry.org_id)
        if not rows:
            errors[f"entries[{entry.id}]"] = f"{school.name}{klass.name}没有学生，请先导入花名册"
            continue
        receiving = session.get(Org, entry.receiving_school_id)
        body = {**handover_data(session, klass, receiving, pupils=[r.pupil for r in rows], year=plan.year),
                **(data or {})}
        items.append({"form": spec_for(ROLE).code, "variant": None, "issuer_id": issuer_id, "data": body,
                      "label": f"{school.name}{klass.name}", "entry_id": entry.id,
                      "after_issue": "cases.handover.plans:link_document"})
    if errors:
        raise ValidationFailed("移交方案中有班级没有学生", fields=errors)
    return items


def start_plan_render(session: Session, services, plan: HandoverPlan, *, issuer_id: int | None = None,
                      fmt: str = "pdf", data: Mapping[str, Any] | None = None, user: str) -> str:
    """Queue the 交接表 of every class of ``plan`` as one job (-> ZIP); returns the job id. Every
    item is validated first (422, nothing numbered); each issued document is linked to its entry."""
    issuer = session.get(Org, issuer_id) if issuer_id else default_issuer(session, plan)
    if issuer is None:
        raise NotFound("签发机构不存在", fields={"issuer_id": "不存在"})
    items = plan_render_items(session, plan, issuer_id=issuer.id, data=data)
    session.commit()  # the rows' 序号 must be visible to the job's own session
    return submit_batch(session, services, spec_for(ROLE).code, items, fmt=fmt, user=user, org_id=issuer.id)


def link_document(session: Session, doc: Document, item: Mapping[str, Any]) -> None:
    """``after_issue`` hook of the batch job: the entry's 交接表 is this document."""
    entry = session.get(HandoverEntry, int(item["entry_id"]))
    if entry is None:
        raise NotFound(f"移交方案条目 {item['entry_id']} 不存在")
    entry.document_id = doc.id


# ---- registrations -----------------------------------------------------------------------------------

def _rows_for_school(session: Session, school_id: int, year: int) -> list[HandoverRow]:
    stmt = (select(HandoverRow).join(HandoverEntry, HandoverRow.entry_id == HandoverEntry.id)
            .join(HandoverPlan, HandoverEntry.plan_id == HandoverPlan.id)
            .where(HandoverEntry.receiving_school_id == school_id, HandoverPlan.year == year)
            .order_by(HandoverRow.id))
    return list(session.scalars(stmt))


def _registration_event(session: Session, row: HandoverRow, *, actor: str) -> None:
    """The shared ``registration`` CaseEvent contract, on the row's case (only if it has one)."""
    if row.case_id is None:
        return
    entry = row.entry
    session.add(CaseEvent(case_id=row.case_id, org_id=entry.receiving_school_id, kind="registration",
                          actor=actor, occurred_at=_at(row.registered_on or dt.date.today()),
                          data={"handover_document_id": entry.document_id, "row": row.row_index,
                                "registered": row.registered,
                                "registered_on": row.registered_on.isoformat() if row.registered_on else None,
                                "whereabouts": row.whereabouts}))


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, 0, tzinfo=CHINA_TZ)


def _mark_registered(session: Session, row: HandoverRow, *, registered_on: dt.date, method: str,
                     actor: str) -> None:
    if row.registered and row.registered_on and row.registered_on <= registered_on:
        return  # a repeated registration: the first one stands
    row.registered, row.registered_on, row.match_method = True, registered_on, method
    row.whereabouts = row.whereabouts_proof = None
    _registration_event(session, row, actor=actor)


def record_registration(session: Session, *, receiving_school: Org | int, id_number: str | None = None,
                        xueji_no: str | None = None, name: str | None = None,
                        birth_date: dt.date | None = None, registered_on: dt.date, source: str = "api",
                        actor: str) -> HandoverRow | Registration:
    """Record a grade-7 registration at ``receiving_school`` and match it to that school's 交接表
    rows (plans of the registration year), DOMAIN §4.3: by ID number, else 学籍号, else name +
    birth date. ID / 学籍号 matches mark the row registered and return it; a name + birth match
    returns a ``pending`` Registration (``confirm_registration`` decides); no match returns an
    ``unexpected`` Registration (a transfer-in)."""
    school = receiving_school if isinstance(receiving_school, Org) else session.get(Org, int(receiving_school))
    if school is None or school.kind != "school":
        raise NotFound("接收学校不存在", fields={"receiving_school_id": "不存在"})
    errs: dict[str, str] = {}
    try:
        id_number = v.check_id_number(id_number) if id_number else None
    except ValueError as e:
        errs["id_number"] = str(e)
    try:
        xueji_no = v.check_xueji_no(xueji_no) if xueji_no else None
    except ValueError as e:
        errs["xueji_no"] = str(e)
    if not (id_number or xueji_no or (name and birth_date)) and not errs:
        errs["id_number"] = "请提供身份证号、全国学籍号，或姓名加出生日期"
    if errs:
        raise ValidationFailed("报到信息有误", fields=errs)
    rows = _rows_for_school(session, school.id, registered_on.year)
    row, method = None, None
    if id_number:
        row = next((r for r in rows if r.pupil.id_number == id_number), None)
        method = "id_number"
    if row is None and xueji_no:
        row = next((r for r in rows if (r.pupil.xueji_no or "").upper() == xueji_no), None)
        method = "xueji_no"
    reg = Registration(org_id=school.id, id_number=id_number, xueji_no=xueji_no, name=name,
                       birth_date=birth_date, registered_on=registered_on, source=source, actor=actor)
    if row is not None:
        reg.status, reg.row_id, reg.pupil_id = "matched", row.id, row.pupil_id
        _mark_registered(session, row, registered_on=registered_on, method=method, actor=actor)
    else:
        candidates = [r for r in rows if name and birth_date and r.pupil.name == name
                      and r.pupil.birth_date == birth_date and not r.registered]
        if candidates:
            reg.status = "pending"
            reg.candidate_row_id = candidates[0].id if len(candidates) == 1 else None
        else:
            reg.status = "unexpected"
            pupil = None
            if id_number:
                pupil = session.scalar(select(Pupil).where(Pupil.id_number == id_number))
            if pupil is None and xueji_no:
                pupil = session.scalar(select(Pupil).where(Pupil.xueji_no == xueji_no))
            reg.pupil_id = pupil.id if pupil else None
    session.add(reg)
    session.flush()
    audit.record(session, who=actor, org=school, action="handover.registration",
                 target=f"handover_registration:{reg.id}",
                 after={"status": reg.status, "id_number": v.mask_id(id_number), "row_id": reg.row_id})
    return row if row is not None else reg


def confirm_registration(session: Session, registration_id: int, *, accept: bool, actor: str,
                         row_id: int | None = None) -> Registration:
    """A person decides a pending (name + birth date) match: ``accept`` marks the candidate row
    (or ``row_id``) registered; otherwise the registration is someone not on the roster."""
    reg = session.get(Registration, int(registration_id))
    if reg is None:
        raise NotFound(f"报到记录 {registration_id} 不存在")
    if reg.status != "pending":
        raise Conflict(f"报到记录 {reg.id} 不是待确认状态（{reg.status}）")
    if accept:
        row = session.get(HandoverRow, int(row_id or reg.candidate_row_id or 0))
        if row is None or row.entry.receiving_school_id != reg.org_id:
            raise ValidationFailed("请指定本校交接表中的学生行", fields={"row_id": "必填（本校交接表的行）"})
        if row.registered:
            raise Conflict(f"{row.pupil.name}已报到")
        reg.status, reg.row_id, reg.pupil_id = "matched", row.id, row.pupil_id
        _mark_registered(session, row, registered_on=reg.registered_on, method="name_birth", actor=actor)
    else:
        reg.status = "unexpected"
    audit.record(session, who=actor, org=reg.org_id, action="handover.registration.confirm",
                 target=f"handover_registration:{reg.id}", after={"accept": accept, "row_id": reg.row_id})
    session.flush()
    return reg


def record_row_tick(session: Session, *, handover_document_id: str, row: int, registered: bool | None,
                    registered_on: dt.date | None, whereabouts: str | None, actor: str,
                    proof: str | None = None) -> HandoverRow:
    """A tick on a returned 交接表 (called by the scan reader): ``row`` is the printed 序号 (from 1).
    Registered rows get their date; a non-arrival may carry its whereabouts (and proof, e.g. the
    学籍转接证明). Writes the ``registration`` CaseEvent when the pupil already has a case."""
    entry = session.scalar(select(HandoverEntry).where(HandoverEntry.document_id == handover_document_id))
    if entry is None:
        raise NotFound(f"文书 {handover_document_id} 不是移交方案中的交接表", document=handover_document_id)
    target = session.scalar(select(HandoverRow).where(HandoverRow.entry_id == entry.id,
                                                      HandoverRow.row_index == int(row)))
    if target is None:
        raise NotFound(f"交接表 {handover_document_id} 没有第{row}行", document=handover_document_id)
    if whereabouts is not None and whereabouts not in WHEREABOUTS:
        raise ValidationFailed("未报到去向代码无效", fields={"whereabouts": "可选：" + "、".join(WHEREABOUTS)})
    if registered and whereabouts:
        raise ValidationFailed("已报到的学生不填未报到去向", fields={"whereabouts": "已报到"})
    if registered:
        on = registered_on or dt.date.today()
        if not target.registered:
            session.add(Registration(org_id=entry.receiving_school_id, pupil_id=target.pupil_id,
                                     id_number=target.pupil.id_number, xueji_no=target.pupil.xueji_no,
                                     name=target.pupil.name, birth_date=target.pupil.birth_date,
                                     registered_on=on, source="table_tick", status="matched",
                                     row_id=target.id, actor=actor))
        _mark_registered(session, target, registered_on=on, method="table_tick", actor=actor)
    else:
        if registered is False:
            target.registered, target.registered_on = False, None
        if whereabouts is not None:
            target.whereabouts = whereabouts
        if proof is not None:
            target.whereabouts_proof = proof
        _registration_event(session, target, actor=actor)
    audit.record(session, who=actor, org=entry.receiving_school_id, action="handover.tick",
                 target=f"handover_row:{target.id}",
                 after={"registered": registered, "whereabouts": whereabouts, "row": target.row_index})
    session.flush()
    return target


def set_whereabouts(session: Session, row_id: int, *, whereabouts: str, proof: str | None, actor: str
                    ) -> HandoverRow:
    """Record where a pupil who did not register is (and the proof, e.g. 学籍转接证明)."""
    row = session.get(HandoverRow, int(row_id))
    if row is None:
        raise NotFound(f"交接表行 {row_id} 不存在")
    if row.registered:
        raise Conflict(f"{row.pupil.name}已报到，不填未报到去向")
    if whereabouts not in WHEREABOUTS:
        raise ValidationFailed("未报到去向代码无效", fields={"whereabouts": "可选：" + "、".join(WHEREABOUTS)})
    row.whereabouts, row.whereabouts_proof = whereabouts, proof
    _registration_event(session, row, actor=actor)
    audit.record(session, who=actor, org=row.entry.receiving_school_id, action="handover.whereabouts",
                 target=f"handover_row:{row.id}", after={"whereabouts": whereabouts, "proof": bool(proof)})
    session.flush()
    return row


# ---- closing the registration window --------------------------------------------------------------------

def notify_due(session: Session, plan: HandoverPlan) -> dt.date:
    """Last day to notify the sending schools: ``profile.handover.notify_within_days`` after the
    end of the registration period (the profile's ``handover_notify`` timer when it defines one)."""
    profile = profile_of(session, session.get(Org, plan.org_id))
    timer = profile.timers.get("handover_notify") or Timer(
        "handover_notify", "calendar_day", profile.handover.notify_within_days, "registration_period_end")
    return due_date(timer, plan.window_end).date


def check_due(session: Session, plan: HandoverPlan) -> dt.date | None:
    """The county's check deadline: ``county_check_within_days`` after autumn term start."""
    if plan.term_start is None:
        return None
    profile = profile_of(session, session.get(Org, plan.org_id))
    timer = profile.timers.get("handover_county_check") or Timer(
        "handover_county_check", "calendar_day", profile.handover.county_check_within_days, "autumn_term_start")
    return due_date(timer, plan.term_start).date


def _pupil_township(session: Session, pupil: Pupil, county: Org, sending: Org) -> Org | None:
    """The township of the pupil's 户籍 (else residence, else the sending school's township)."""
    if pupil.hukou_org_id:
        town = nearest(session, session.get(Org, pupil.hukou_org_id), "township")
        if town is not None:
            return town
    for text in (pupil.hukou_text, pupil.address):
        place = _place_from_text(session, county, None, text)
        if place is not None:
            return nearest(session, place, "township")
    return nearest(session, sending, "township")


def _open_case(session: Session, pupil: Pupil, *, opened_on: dt.date, actor: str, school: Org,
               township: Org | None) -> Case:
    from cases.engine.casework import open_case  # the case engine (T1 through the workflow, deadlines)

    case = open_case(session, pupil, reason_code=None, opened_on=opened_on, actor=actor, source="handover")
    # 整班移交: the receiving school is responsible, the township of the 户籍 organises persuasion.
    # open_case files the new episode under the pupil's (primary) school, so its first event,
    # deadlines and alerts move with it, keeping them in the receiving school's scoped lists.
    from sqlalchemy import update

    from cases.engine.models import Alert, Deadline

    case.org_id = school.id
    if township is not None:
        case.township_org_id = township.id
    session.flush()
    for model in (CaseEvent, Deadline, Alert):
        session.execute(update(model).where(model.case_id == case.id).values(org_id=school.id)
                        .execution_options(synchronize_session="fetch"))
    return case


@dataclass(frozen=True)
class CloseResult:
    """What closing the registration window did."""

    plan_id: int
    closed_on: dt.date
    notify_due: dt.date
    notifications_overdue: bool
    cases: tuple[dict, ...]
    legitimate: tuple[dict, ...]
    notifications: tuple[dict, ...]
    unexpected: tuple[dict, ...]

    def to_json(self) -> dict:
        return {"plan_id": self.plan_id, "closed_on": self.closed_on.isoformat(),
                "notify_due": self.notify_due.isoformat(), "notifications_overdue": self.notifications_overdue,
                "cases": list(self.cases), "legitimate": list(self.legitimate),
                "notifications": list(self.notifications), "unexpected": list(self.unexpected)}


def _registration_json(r: Registration) -> dict:
    return {"id": r.id, "receiving_school_id": r.org_id, "status": r.status, "pupil_id": r.pupil_id,
            "id_number": v.mask_id(r.id_number), "xueji_no": v.mask_id(r.xueji_no), "name": r.name,
            "birth_date": r.birth_date.isoformat() if r.birth_date else None,
            "registered_on": r.registered_on.isoformat(), "source": r.source,
            "candidate_row_id": r.candidate_row_id, "row_id": r.row_id}


def registrations_of(session: Session, plan: HandoverPlan, status: str) -> list[Registration]:
    """Registrations of the plan's receiving schools in its year with ``status``."""
    schools = {e.receiving_school_id for e in plan.entries}
    stmt = (select(Registration).where(Registration.org_id.in_(schools), Registration.status == status,
                                       Registration.registered_on.between(dt.date(plan.year, 1, 1),
                                                                          dt.date(plan.year, 12, 31)))
            .order_by(Registration.id))
    return list(session.scalars(stmt))


def close_registration_window(session: Session, plan: HandoverPlan, *, today: dt.date, actor: str) -> CloseResult:
    """After the registration period: every non-arrival without a legitimate, proven whereabouts
    (转外地就读 etc. with proof, or registered at another school of the county) becomes an ABSENT
    case at the receiving school with the township of the pupil's 户籍; the sending schools are
    notified (``notified_on`` = ``today``, overdue after ``notify_due``). Refused while the window
    is still open or name + birth-date matches await confirmation."""
    if plan.status == "closed":
        raise Conflict(f"移交方案 {plan.id} 的报到注册期已于{plan.closed_on}结束")
    if today <= plan.window_end:
        raise Conflict(f"报到注册期到{format_date(plan.window_end)}才结束，请在此后办理未报到学生")
    pending = registrations_of(session, plan, "pending")
    if pending:
        raise Conflict(f"有{len(pending)}条按姓名和出生日期匹配的报到记录待人工确认，请先确认",
                       fields={f"registrations[{r.id}]": f"{r.name} 待确认" for r in pending})
    county = session.get(Org, plan.org_id)
    due = notify_due(session, plan)
    overdue = today > due
    elsewhere = {r.pupil_id: r for r in registrations_of(session, plan, "unexpected") if r.pupil_id}
    cases, legit, notifications = [], [], defaultdict(list)
    for entry in plan.entries:
        sending = session.get(Org, entry.org_id)
        receiving = session.get(Org, entry.receiving_school_id)
        for row in sync_rows(session, entry):
            if row.registered:
                continue
            row.registered = False
            other = elsewhere.get(row.pupil_id)
            if other is not None and other.org_id != receiving.id and not row.whereabouts:
                row.whereabouts = "county_other"
                row.whereabouts_proof = f"已在{session.get(Org, other.org_id).name}报到（报到记录{other.id}）"
            if not row.whereabouts:
                row.whereabouts = "unknown"
            item = {"row_id": row.id, "row": row.row_index, "pupil_id": row.pupil_id, "name": row.pupil.name,
                    "sending_school_id": sending.id, "receiving_school_id": receiving.id,
                    "whereabouts": row.whereabouts}
            if row.notified_on is None:
                row.notified_on = today
            notifications[sending.id].append(item)
            if row.whereabouts in LEGITIMATE_WITH_PROOF and row.whereabouts_proof:
                legit.append(item)
                continue
            existing = session.scalar(select(Case).where(Case.pupil_id == row.pupil_id,
                                                         Case.state.in_(sorted(OPEN_STATES))))
            township = _pupil_township(session, row.pupil, county, sending)
            case = existing or _open_case(session, row.pupil, opened_on=today, actor=actor, school=receiving,
                                          township=township)
            row.case_id = case.id
            _registration_event(session, row, actor=actor)
            cases.append({**item, "case_id": case.id, "case_number": case.number, "new": existing is None,
                          "org_id": case.org_id, "township_org_id": case.township_org_id})
    plan.status, plan.closed_on = "closed", today
    notes = tuple({"sending_school_id": sid, "sending_school": session.get(Org, sid).name,
                   "notified_on": today.isoformat(), "overdue": overdue, "pupils": items}
                  for sid, items in notifications.items())
    for n in notes:
        audit.record(session, who=actor, org=n["sending_school_id"], action="handover.notify",
                     target=f"handover_plan:{plan.id}",
                     after={"notified_on": today, "pupils": len(n["pupils"]), "overdue": overdue})
    unexpected = tuple(_registration_json(r) for r in registrations_of(session, plan, "unexpected"))
    session.flush()
    if overdue:
        log.warning("handover plan %s: sending schools notified on %s, after the due date %s", plan.id, today, due)
    return CloseResult(plan.id, today, due, overdue, tuple(cases), tuple(legit), notes, unexpected)


# ---- the county's 15-day check ---------------------------------------------------------------------------

REPORT_HEADINGS = ("移交学校", "接收学校", "应到人数", "实到人数", "未到人数",
                   *(f"未到：{label}" for label in WHEREABOUTS.values()), "未到：未填去向",
                   "在办劝返案件", "逾期未通报或逾期通报")


def county_check_report(session: Session, county: Org, plan: HandoverPlan, *, as_of: dt.date) -> dict:
    """DOMAIN §4.3: per handing-over / receiving pair — expected, arrived, not arrived by
    whereabouts, open cases, overdue notifications — with totals, the unexpected registrations
    (transfers-in) and the pending matches, as of ``as_of``."""
    if plan.org_id != county.id:
        raise ValidationFailed("移交方案不属于该县", fields={"county_id": "与方案不符"})
    due = notify_due(session, plan)
    pairs: dict[tuple[int, int], dict] = {}
    for entry in plan.entries:
        key = (entry.org_id, entry.receiving_school_id)
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = {
                "sending_school_id": key[0], "sending_school": session.get(Org, key[0]).name,
                "receiving_school_id": key[1], "receiving_school": session.get(Org, key[1]).name,
                "expected": 0, "arrived": 0, "not_arrived": 0,
                "not_arrived_by_whereabouts": {**dict.fromkeys(WHEREABOUTS, 0), "unrecorded": 0},
                "open_cases": 0, "overdue_notifications": 0}
        for row in entry.rows:
            pair["expected"] += 1
            # a case stays open after a late arrival until the case engine closes it
            if row.case_id is not None:
                pair["open_cases"] += session.get(Case, row.case_id).state in OPEN_STATES
            if row.registered and (row.registered_on is None or row.registered_on <= as_of):
                pair["arrived"] += 1
                continue
            pair["not_arrived"] += 1
            pair["not_arrived_by_whereabouts"][row.whereabouts or "unrecorded"] += 1
            late = row.notified_on > due if row.notified_on else as_of > due
            pair["overdue_notifications"] += late
    rows = sorted(pairs.values(), key=lambda p: (p["sending_school_id"], p["receiving_school_id"]))
    totals = {k: sum(p[k] for p in rows) for k in ("expected", "arrived", "not_arrived", "open_cases",
                                                   "overdue_notifications")}
    totals["not_arrived_by_whereabouts"] = {k: sum(p["not_arrived_by_whereabouts"][k] for p in rows)
                                            for k in (*WHEREABOUTS, "unrecorded")}
    check = check_due(session, plan)
    return {"plan_id": plan.id, "county_id": county.id, "county": county.name, "year": plan.year,
            "as_of": as_of.isoformat(), "window_end": plan.window_end.isoformat(), "status": plan.status,
            "notify_due": due.isoformat(), "check_due": check.isoformat() if check else None,
            "check_overdue": bool(check and as_of > check), "pairs": rows, "totals": totals,
            "unexpected": [_registration_json(r) for r in registrations_of(session, plan, "unexpected")],
            "pending": [_registration_json(r) for r in registrations_of(session, plan, "pending")]}


def report_xlsx(report: Mapping[str, Any]) -> bytes:
    """The county check report as an XLSX workbook with the official Chinese headings."""
    import openpyxl
    from openpyxl.styles import Alignment, Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "整班移交核查"
    sheet.append([f"{report['county']}{report['year']}年小学六年级毕业生整班移交核查情况表"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([f"统计截至：{report['as_of']}", f"通报期限：{report['notify_due']}",
                  f"核查期限：{report['check_due'] or '未设开学日期'}"])
    sheet.append(list(REPORT_HEADINGS))
    for cell in sheet[3]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, horizontal="center")

    def line(first, second, p):
        return [first, second, p["expected"], p["arrived"], p["not_arrived"],
                *(p["not_arrived_by_whereabouts"][k] for k in (*WHEREABOUTS, "unrecorded")),
                p["open_cases"], p["overdue_notifications"]]

    for p in report["pairs"]:
        sheet.append(line(p["sending_school"], p["receiving_school"], p))
    sheet.append(line("合计", "", report["totals"]))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = sheet.column_dimensions["B"].width = 20
    extra = book.create_sheet("计划外报到")
    extra.append(["接收学校", "姓名", "身份证号", "全国学籍号", "报到日期", "状态"])
    names = {p["receiving_school_id"]: p["receiving_school"] for p in report["pairs"]}
    for r in report["unexpected"] + report["pending"]:
        extra.append([names.get(r["receiving_school_id"], r["receiving_school_id"]), r["name"] or "",
                      r["id_number"], r["xueji_no"], r["registered_on"],
                      "待确认" if r["status"] == "pending" else "计划外"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


# ---- JSON views ---------------------------------------------------------------------------------------

def plan_json(session: Session, plan: HandoverPlan) -> dict:
    """A plan with its entries (class, receiving school, 交接表 document, row counts)."""
    entries = []
    for e in plan.entries:
        school = session.get(Org, e.org_id)
        entries.append({"id": e.id, "class_id": e.class_id, "class_name": e.school_class.name,
                        "sending_school_id": school.id, "sending_school": school.name,
                        "receiving_school_id": e.receiving_school_id,
                        "receiving_school": session.get(Org, e.receiving_school_id).name,
                        "document_id": e.document_id, "rows": len(e.rows),
                        "registered": sum(1 for r in e.rows if r.registered)})
    return {"id": plan.id, "county_id": plan.org_id, "year": plan.year, "title": plan.title,
            "term_start": plan.term_start.isoformat() if plan.term_start else None,
            "window_end": plan.window_end.isoformat(), "status": plan.status,
            "closed_on": plan.closed_on.isoformat() if plan.closed_on else None, "entries": entries}


def row_json(row: HandoverRow) -> dict:
    """One 交接表 row's reconciliation state (ID numbers never appear here)."""
    return {"id": row.id, "entry_id": row.entry_id, "row": row.row_index, "pupil_id": row.pupil_id,
            "name": row.pupil.name, "registered": row.registered,
            "registered_on": row.registered_on.isoformat() if row.registered_on else None,
            "whereabouts": row.whereabouts, "notified_on": row.notified_on.isoformat() if row.notified_on else None,
            "case_id": row.case_id, "match_method": row.match_method}


def registration_json(reg: Registration) -> dict:
    """A registration for the API (ID numbers masked)."""
    return _registration_json(reg)
