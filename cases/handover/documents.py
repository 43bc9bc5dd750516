"""交接表 documents of a handover (DOMAIN §4.2): the table's data from the store for one class,
and one batch render of the 交接表 of every class named in a plan."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.documents.batch import submit_batch
from cases.store.models import Org, Pupil, SchoolClass, ancestors
from cases.store.services import Services
from forms.errors import NotFound, ValidationFailed


def handover_data(session: Session, klass: SchoolClass, receiving: Org,
                  pupils: list[Pupil] | None = None) -> dict:
    """A 交接表 for one grade-6 class, from the store: header, counts and one row per pupil
    (``pupils`` in the given order, e.g. a plan's row order; default: the class's pupils by id)."""
    school = session.get(Org, klass.org_id)
    chain = [school, *reversed(ancestors(session, school))]
    township = next((o for o in chain if o.kind == "township"), None)
    county = next((o for o in chain if o.kind == "county"), None)
    central = None
    if township is not None:  # the township's 中心校: a central-school unit, else its 中心 school
        central = next((c for c in township.children if c.kind == "central_school"), None) or next(
            (c for c in township.children if c.kind == "school" and "中心" in c.name), None)
    if pupils is None:
        pupils = session.scalars(select(Pupil).where(Pupil.class_id == klass.id).order_by(Pupil.id)).all()
    rows = []
    for p in pupils:
        g = p.guardians[0] if p.guardians else None
        rows.append({
            "name": p.name, "sex": p.sex, "birth_date": p.birth_date.isoformat() if p.birth_date else None,
            "id_number": p.id_number, "xueji_no": p.xueji_no, "primary_class": f"{klass.name}",
            "hukou_place": _hukou_short(session, p) or p.hukou_text or p.address, "residence": p.address,
            "guardian_name": g.name if g else None, "guardian_relation": g.relation if g else None,
            "guardian_phone": g.phone if g else None, "special_groups": list(p.special_groups or []),
            # 档案 is ticked on paper when the file is actually handed over, never pre-ticked
        })
    groups = [set(r["special_groups"]) for r in rows]
    return {
        "county_name": county.name if county else "", "handover_year": dt.date.today().year,
        "township_name": township.name if township else "",
        "central_school": central.name if central else None,
        "from_school": school.name, "from_school_code": school.code or "", "from_class": klass.name,
        "to_school": receiving.name, "to_school_code": receiving.code or "",
        "expected_count": len(rows), "g01_count": sum("G01" in g for g in groups),
        "disabled_count": sum("G03" in g for g in groups), "left_behind_count": sum("G02" in g for g in groups),
        "handover_date": dt.date.today().isoformat(), "pupils": rows,
    }


def _hukou_short(session: Session, pupil: Pupil) -> str | None:
    """户籍地 as 乡镇 + 村 (the 交接表 column), from the pupil's 户籍 village in the store."""
    if not pupil.hukou_org_id:
        return None
    village = session.get(Org, pupil.hukou_org_id)
    if village is None:
        return None
    chain = [village, *reversed(ancestors(session, village))]
    town = next((o for o in chain if o.kind == "township"), None)
    return f"{town.name if town else ''}{village.name}"


def start_handover_batch(session: Session, services: Services, body: dict, *, user: str) -> str:
    """One 交接表 per class of the plan, rows taken from the class's pupils."""
    if session.get(Org, body["issuer_id"]) is None:
        raise NotFound("签发机构不存在", fields={"issuer_id": "不存在"})
    items = []
    errors = {}
    for i, entry in enumerate(body["plan"]):
        klass = session.get(SchoolClass, entry["class_id"])
        receiving = session.get(Org, entry["receiving_school_id"])
        if klass is None:
            errors[f"plan[{i}].class_id"] = "班级不存在"
        if receiving is None or receiving.kind != "school":
            errors[f"plan[{i}].receiving_school_id"] = "接收学校不存在"
        if klass is not None and receiving is not None:
            data = {**handover_data(session, klass, receiving), **body["data"]}
            items.append({"form": "handover", "variant": None, "issuer_id": body["issuer_id"],
                          "data": data, "label": f"{klass.name}"})
    if errors:
        raise ValidationFailed("整班移交方案有误", fields=errors)
    return submit_batch(session, services, "handover", items, fmt=body["format"], user=user,
                   org_id=body["issuer_id"])
