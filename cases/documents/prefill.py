"""System-filled values of a document: what the service knows that the user need not type.

* ``options_for_profile``: profile-dependent validation options for specs (attempt minimums).
* ``complete_data``: SYSTEM fields before validation (issue date, the legal-basis rows from the
  versioned library, the return deadline in working days from the region profile and, when the
  service date is already known, the computed date; the 责任书 clause library).
* ``data_from_case`` / ``default_issuer``: prefill a form from a case record.

Field names come from the specs; this module only decides *values*.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from cases.engine.profiles import load_profile
from cases.store.models import Case, Org, ancestors
from forms import validators as v
from forms.spec import FormSpec, Variant, is_blank

log = logging.getLogger(__name__)


def options_for_profile(profile_name: str | None) -> dict:
    profile = load_profile(profile_name)
    school = profile.school
    return {"min_attempts": school.home_visits_before_report or school.min_attempts,
            "profile": profile.name}


def _has(spec: FormSpec, name: str) -> bool:
    return any(f.name == name for f in spec.fields)


def _set_default(spec: FormSpec, data: dict, name: str, value: Any) -> None:
    if _has(spec, name) and is_blank(data.get(name)) and value is not None:
        data[name] = value


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


def complete_data(spec: FormSpec, variant: Variant | None, data: dict, *, profile: str | None,
                  issued_on: dt.date, issuer: Org | None = None) -> dict:
    """Fill SYSTEM fields the caller left blank; never overwrite what the caller gave."""
    data = dict(data)
    if issuer is not None:
        _set_default(spec, data, "issuer_name", issuer_title(issuer))
    _set_default(spec, data, "issue_date", issued_on.isoformat())
    if spec.code == "guardian_notice" and variant is not None:
        from forms.legal import legal_basis_rows

        prof = load_profile(profile)
        _set_default(spec, data, "legal_basis",
                     legal_basis_rows(variant.code, issued_on, reason=data.get("reason_code")))
        _set_default(spec, data, "return_deadline_days", prof.return_deadline.length)
        service = data.get("service_time") or data.get("stub_service_date")
        if service and is_blank(data.get("return_deadline_date")):
            try:
                served = v.parse_datetime(service).date()
            except ValueError:
                served = None  # reported by validation against its own field
            if served is not None:
                result = return_deadline(served, profile)
                if result.provisional:
                    # never print a date that may be wrong: leave it blank, say why in the log
                    log.warning("return deadline left blank: %s", result.warning)
                else:
                    data["return_deadline_date"] = result.date.isoformat()
    if spec.code == "responsibility" and variant is not None:
        from forms.specs.responsibility import agreement_defaults

        for name, value in agreement_defaults(variant.code).items():
            _set_default(spec, data, name, value)
    return data


def _chain(session: Session, org: Org) -> list[Org]:
    """``org`` and its ancestors, nearest first."""
    return [org, *reversed(ancestors(session, org))]


def default_issuer(session: Session, case: Case, spec: FormSpec, variant: Variant | None) -> int:
    """Who issues a form for a case by default: the school reports (报告单); the township serves
    限期返校/敦返/责令 notices; the county education bureau issues 劝返复学通知书 (§5.2)."""
    school = session.get(Org, case.pupil.org_id)
    if spec.code == "dropout_report":
        return school.id
    chain = _chain(session, school)
    if spec.code == "guardian_notice" and variant is not None and variant.code == "quanfan":
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


def _attempt_row(data: dict) -> dict:
    return {k: data.get(k) for k in ("date", "persons", "method", "result")}


def data_from_case(session: Session, case: Case, spec: FormSpec, variant: Variant | None) -> dict:
    """Values a form can take from the case record (pupil, guardian, school, township)."""
    pupil = case.pupil
    school = session.get(Org, pupil.org_id)
    chain = _chain(session, school)
    township = session.get(Org, case.township_org_id) if case.township_org_id else \
        next((o for o in chain if o.kind == "township"), None)
    guardian = pupil.guardians[0] if pupil.guardians else None
    other = pupil.guardians[1] if len(pupil.guardians) > 1 else None
    klass = pupil.school_class
    attempts = [e for e in case.events if e.kind == "attempt"]
    attempt_days = []
    for e in attempts:
        try:
            attempt_days.append(v.parse_date((e.data or {}).get("date")))
        except (ValueError, TypeError):
            continue  # an attempt without a readable date is counted, not listed
    known = {
        "school_name": school.name, "school_code": school.code,
        "township_name": township.name if township else None,
        "student_name": pupil.name, "student_sex": pupil.sex, "student_ethnicity": pupil.ethnicity,
        "student_birth_date": pupil.birth_date.isoformat() if pupil.birth_date else None,
        "student_id_number": pupil.id_number, "student_xueji_no": pupil.xueji_no,
        "grade": str(klass.grade) if klass else None, "class_name": klass.name if klass else None,
        "hukou_place": pupil.hukou_text, "home_address": pupil.address,
        "poverty_category": pupil.poverty_category or "none",
        "special_groups": list(pupil.special_groups or []),
        "guardian_name": guardian.name if guardian else None,
        "guardian_relation": guardian.relation if guardian else None,
        "guardian_phone": guardian.phone if guardian else None,
        "absent_since": case.opened_on.isoformat(), "reason": case.reason_code,
        "return_school": school.name,
        # the 报告单 always goes to both (DOMAIN §5.1)
        "send_to": ["township", "education"],
        "report_date": dt.date.today().isoformat(),
        "attempts": [_attempt_row(e.data) for e in attempts] or None,
        "persuasion_count": len(attempts) or None,
        "persuasion_dates": _date_list(attempt_days) or None,
        "guardian_address": (guardian.address if guardian else None) or pupil.address,
        "guardian2_name": other.name if other else None,
        # the 回证 is served on the guardian at home unless the server writes otherwise
        "recipient_name": guardian.name if guardian else None,
        "service_place": (guardian.address if guardian else None) or pupil.address,
    }
    return {k: val for k, val in known.items() if _has(spec, k) and val not in (None, "", [])}


def referral_letter_data(session: Session, case: Case, referral) -> tuple[str, dict]:
    """The variant code and input of the 部门函件 (``referral_letter``) for one ``Referral`` row:
    pupil, school and guardian from the case, sender and receiver from the referral, the request
    (the variant's standard wording when the referral names none) and a reply deadline
    ``REPLY_DAYS`` after sending. The caller adds the contact person and phone."""
    from forms.registry import get_spec
    from forms.specs.referral_letter import DEPARTMENT_UNITS, REPLY_DAYS, variant_for

    spec = get_spec("referral_letter")
    variant = spec.variant(variant_for(referral.to_department, case.reason_code))
    data = data_from_case(session, case, spec, variant)
    sender = session.get(Org, referral.org_id)
    if referral.to_org_id:
        to_unit = session.get(Org, referral.to_org_id).name
    elif referral.to_unit_name:
        to_unit = referral.to_unit_name
    else:
        county = next((o for o in _chain(session, sender) if o.kind == "county"), None)
        to_unit = f"{county.name if county else ''}{DEPARTMENT_UNITS.get(referral.to_department, '')}" or None
    data.update({
        "issue_date": referral.sent_on.isoformat(),
        "from_unit": issuer_title(sender),
        "to_department": referral.to_department,
        "to_unit": to_unit,
        "facts": referral.reason,
        "request_text": referral.request or variant.data["default_request"],
        "reply_by": (referral.sent_on + dt.timedelta(days=REPLY_DAYS)).isoformat(),
    })
    return variant.code, {k: val for k, val in data.items() if val not in (None, "", [])}
