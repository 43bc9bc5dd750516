"""交接表 documents of a handover (DOMAIN §4.2): the table's data from the store for one class,
and one batch render of the 交接表 of every class named in a plan."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.documents.batch import submit_batch
from cases.documents.prefill import pupil_facts
from cases.store.models import Org, Pupil, SchoolClass, ancestors
from cases.store.services import Services
from forms.codes import SPECIAL_GROUPS
from forms.errors import NotFound, ValidationFailed
from forms.registry import spec_for

ROLE = "class_list"  # the 交接表 (forms.spec.ROLES)
GROUPS = tuple(c.code for c in SPECIAL_GROUPS)  # counted per class: facts "class.groups.<code>"


def handover_data(session: Session, klass: SchoolClass, receiving: Org,
                  pupils: list[Pupil] | None = None, year: int | None = None) -> dict:
    """A 交接表 for one grade-6 class, from the store: header, counts and one row per pupil
    (``pupils`` in the given order, e.g. a plan's row order; default: the class's pupils by id;
    ``year``: the plan's year, default this year),
    each value where the 交接表's spec sources it (``Field.source``)."""
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
        facts = pupil_facts(p)
        facts["pupil"]["hukou_short"] = _hukou_short(session, p) or p.hukou_text or p.address
        facts["class"] = {"name": klass.name}
        rows.append(facts)  # 档案 is ticked on paper when the file is actually handed over, never pre-ticked
    groups = Counter(g for p in pupils for g in set(p.special_groups or []))
    facts = {
        "county": {"name": county.name} if county else {}, "year": year or dt.date.today().year,
        "township": {"name": township.name} if township else {},
        "central_school": {"name": central.name} if central else {},
        "school": {"name": school.name, "code": school.code},
        "class": {"name": klass.name, "pupils": rows, "size": len(rows), "groups": {g: groups[g] for g in GROUPS}},
        "receiving_school": {"name": receiving.name, "code": receiving.code},
        "today": dt.date.today().isoformat(),
    }
    return spec_for(ROLE).prefill(facts)


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
            items.append({"form": spec_for(ROLE).code, "variant": None, "issuer_id": body["issuer_id"],
                          "data": data, "label": f"{klass.name}"})
    if errors:
        raise ValidationFailed("整班移交方案有误", fields=errors)
    return submit_batch(session, services, spec_for(ROLE).code, items, fmt=body["format"], user=user,
                   org_id=body["issuer_id"])
