"""System-filled values of a document: what the service knows that the user need not type.

* ``options_for_profile``: profile-dependent validation options for specs (attempt minimums).
* ``complete_data``: values at issue: the fields whose spec sources are the issue's date and
  issuer, then the spec's own ``system_values`` (legal-basis rows, the return deadline in working
  days from the region profile...), given an ``IssueContext`` of the region profile's timers.
* ``case_facts`` / ``data_from_case`` / ``default_issuer``: prefill a form from a case record.

The facts are named in the store's own words (pupil, guardian, school, case...); each form's spec
says which of its fields takes which fact (``Field.source``). No form's field is named here.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from cases.engine.profiles import load_profile
from cases.store.models import Case, Org, Pupil, ancestors
from forms import validators as v
from forms.spec import FormSpec, IssueContext, Variant, is_blank

log = logging.getLogger(__name__)


def options_for_profile(profile_name: str | None) -> dict:
    profile = load_profile(profile_name)
    school = profile.school
    return {"min_attempts": school.home_visits_before_report or school.min_attempts,
            "profile": profile.name}


def return_deadline(service_date: dt.date, profile_name: str | None):
    """The return deadline counted from the service date (DOMAIN §3.6; Q3: from service)."""
    from cases.engine.deadlines import due_date

    timer = load_profile(profile_name).return_deadline
    return due_date(timer, service_date)


def issuer_title(org: Org) -> str:
    """How an organisation is named as the party or issuer of a document: a county or township
    signs as its 人民政府, a village as its 村民委员会; other units by their name."""
    if org.kind in ("county", "township") and not org.name.endswith(("政府", "办事处")):
        return f"{org.name}人民政府"
    if org.kind == "village" and not org.name.endswith("委员会"):
        return f"{org.name}{'居民委员会' if org.name.endswith('社区') else '村民委员会'}"
    return org.name


def _date_list(days: list[dt.date]) -> str:
    """2025年9月11日、9月15日、10月2日 (the year only where it changes)."""
    out, year = [], None
    for d in sorted(days):
        out.append(f"{d.year}年{d.month}月{d.day}日" if d.year != year else f"{d.month}月{d.day}日")
        year = d.year
    return "、".join(out)


def issue_context(profile_name: str | None, issued_on: dt.date) -> IssueContext:
    """The region profile's timers, as a spec's ``system_values`` sees them at issue."""
    profile = load_profile(profile_name)

    def due(timer: str, start: dt.date) -> dt.date | None:
        from cases.engine.deadlines import due_date

        result = due_date(profile.timer(timer), start)
        if result.provisional:
            # never print a date that may be wrong: leave it blank, say why in the log
            log.warning("%s left blank: %s", timer, result.warning)
            return None
        return result.date

    return IssueContext(issued_on=issued_on, timer_length=lambda timer: profile.timer(timer).length, due=due)


def complete_data(spec: FormSpec, variant: Variant | None, data: dict, *, profile: str | None,
                  issued_on: dt.date, issuer: Org | None = None) -> dict:
    """Fill SYSTEM values the caller left blank; never overwrite what the caller gave."""
    data = dict(data)
    facts: dict[str, Any] = {"issue": {"date": issued_on.isoformat()}}
    if issuer is not None:
        facts["issuer"] = {"title": issuer_title(issuer)}
    for name, value in spec.prefill(facts, defaults=False).items():
        if is_blank(data.get(name)):
            data[name] = value
    if spec.system_values is not None:
        for name, value in spec.system_values(data, variant, issue_context(profile, issued_on)).items():
            if is_blank(data.get(name)) and value is not None:
                data[name] = value
    return data


def _chain(session: Session, org: Org) -> list[Org]:
    """``org`` and its ancestors, nearest first."""
    return [org, *reversed(ancestors(session, org))]


def default_issuer(session: Session, case: Case, spec: FormSpec, variant: Variant | None) -> int:
    """Who issues a form for a case by default, as its spec says (``FormSpec.issuer``): the
    school (报告单); the county's education bureau (劝返复学通知书, §5.2; the school when the
    county has none); else the case's township (限期返校/敦返/责令 notices)."""
    school = session.get(Org, case.pupil.org_id)
    who = spec.default_issuer(variant)
    if who == "school":
        return school.id
    chain = _chain(session, school)
    if who == "education_bureau":
        county = next((o for o in chain if o.kind == "county"), None)
        if county is not None:
            bureau = next((c for c in county.children if c.kind == "education_bureau"), None)
            if bureau is not None:
                return bureau.id
        return school.id
    if case.township_org_id:
        return case.township_org_id
    township = next((o for o in chain if o.kind == "township"), None)
    return (township or school).id


def pupil_facts(pupil: Pupil) -> dict[str, Any]:
    """A pupil as the facts of a form name it (``Field.source`` "pupil.…", "guardian.…")."""
    guardian = pupil.guardians[0] if pupil.guardians else None
    other = pupil.guardians[1] if len(pupil.guardians) > 1 else None
    return {
        "pupil": {"name": pupil.name, "sex": pupil.sex, "ethnicity": pupil.ethnicity,
                  "birth_date": pupil.birth_date.isoformat() if pupil.birth_date else None,
                  "id_number": pupil.id_number, "xueji_no": pupil.xueji_no, "hukou_text": pupil.hukou_text,
                  "address": pupil.address, "poverty_category": pupil.poverty_category,
                  "special_groups": list(pupil.special_groups or [])},
        "guardian": {"name": guardian.name, "relation": guardian.relation, "phone": guardian.phone,
                     "address": guardian.address} if guardian else {},
        "guardian2": {"name": other.name} if other else {},
    }


def case_facts(session: Session, case: Case) -> dict[str, Any]:
    """What the case record says, by the store's names, for a form's ``Field.source``: the pupil,
    guardians, class, school, township, the case (opened, reason, persuasion attempts) and today."""
    pupil = case.pupil
    school = session.get(Org, pupil.org_id)
    chain = _chain(session, school)
    township = session.get(Org, case.township_org_id) if case.township_org_id else \
        next((o for o in chain if o.kind == "township"), None)
    klass = pupil.school_class
    attempts = [e for e in case.events if e.kind == "attempt"]
    attempt_days = []
    for e in attempts:
        try:
            attempt_days.append(v.parse_date((e.data or {}).get("date")))
        except (ValueError, TypeError):
            continue  # an attempt without a readable date is counted, not listed
    return {
        **pupil_facts(pupil),
        "class": {"grade": str(klass.grade), "name": klass.name} if klass else {},
        "school": {"name": school.name, "code": school.code},
        "township": {"name": township.name} if township else {},
        "case": {"opened_on": case.opened_on.isoformat(), "reason_code": case.reason_code,
                 "attempts": [dict(e.data or {}) for e in attempts], "attempt_count": len(attempts) or None,
                 "attempt_days": _date_list(attempt_days) or None},
        "today": dt.date.today().isoformat(),
    }


def data_from_case(session: Session, case: Case, spec: FormSpec, variant: Variant | None) -> dict:
    """Values a form takes from the case record, as its spec's field sources say."""
    return spec.prefill(case_facts(session, case))


def referral_letter_data(session: Session, case: Case, referral) -> tuple[str, dict]:
    """The variant code and input of the 部门函件 (``referral_letter``) for one ``Referral`` row:
    pupil, school and guardian from the case, sender and receiver from the referral, the request
    (the variant's standard wording when the referral names none) and a reply deadline
    ``REPLY_DAYS`` after sending. The caller adds the contact person and phone."""
    from forms.registry import spec_for
    from forms.specs.referral_letter import DEPARTMENT_UNITS, REPLY_DAYS, variant_for

    spec = spec_for("department_letter")
    variant = spec.variant(variant_for(referral.to_department, case.reason_code))
    sender = session.get(Org, referral.org_id)
    if referral.to_org_id:
        to_unit = session.get(Org, referral.to_org_id).name
    elif referral.to_unit_name:
        to_unit = referral.to_unit_name
    else:
        county = next((o for o in _chain(session, sender) if o.kind == "county"), None)
        to_unit = f"{county.name if county else ''}{DEPARTMENT_UNITS.get(referral.to_department, '')}" or None
    facts = {**case_facts(session, case), "variant": dict(variant.data), "referral": {
        "sent_on": referral.sent_on.isoformat(), "from_unit": issuer_title(sender),
        "to_department": referral.to_department, "to_unit": to_unit, "reason": referral.reason,
        "request": referral.request, "reply_by": (referral.sent_on + dt.timedelta(days=REPLY_DAYS)).isoformat()}}
    return variant.code, spec.prefill(facts)
