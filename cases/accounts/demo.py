"""Demo accounts for the synthetic county (one per role), created by ``python -m cases.demo``.

Every account has the password ``DEMO_PASSWORD`` (printed in README.md): they exist for trying the
service on one's own machine, never for a real installation — ``create_demo_accounts`` refuses to
run under ``BAOXUE_ENV=production``. The demo's police bureau (青禾县公安局, a ``department`` node
under the county) receives one referral, so the department account has a case to look at.
"""

from __future__ import annotations

import datetime as dt
import logging

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.accounts import service as accounts
from cases.accounts.models import User
from cases.accounts.scope import referrals_table
from cases.store.models import Case, Org

log = logging.getLogger(__name__)

DEMO_PASSWORD = "baoxue-demo-2026"
DEPARTMENT_NAME = "青禾县公安局"
# (username, display name, role, organisation: (kind, name) or None for the whole installation)
DEMO_ACCOUNTS = (
    ("demo.teacher", "柳湾小学 王老师", "teacher", ("school", "东河镇柳湾小学")),
    ("demo.school", "柳湾小学 学籍管理员", "school_clerk", ("school", "东河镇柳湾小学")),
    ("demo.central", "东河镇中心校", "central_school", ("township", "东河镇")),
    ("demo.village", "东河村委会", "village", ("village", "东河村")),
    ("demo.township", "东河镇政府 控辍专干", "township", ("township", "东河镇")),
    ("demo.bureau", "县控辍办 李主任", "county_bureau", ("county", "青禾县")),
    ("demo.county", "县政府 督查室", "county_gov", ("county", "青禾县")),
    ("demo.police", "县公安局 户政科", "department", ("department", DEPARTMENT_NAME)),
    ("demo.auditor", "县教育督导室 督学", "auditor", ("county", "青禾县")),
    ("demo.prefecture", "演示市教育局", "prefecture", ("prefecture", "演示市")),
    ("demo.admin", "青禾县 系统管理员", "admin", ("county", "青禾县")),
    ("demo.sysadmin", "系统运维（全系统）", "admin", None),
)


def _org(session: Session, kind: str, name: str) -> Org | None:
    return session.scalar(select(Org).where(Org.kind == kind, Org.name == name))


def _department(session: Session, county: Org) -> Org:
    org = _org(session, "department", DEPARTMENT_NAME)
    if org is None:
        org = Org(kind="department", name=DEPARTMENT_NAME, parent_id=county.id, doc_prefix="青公")
        session.add(org)
        session.flush()
    return org


def _refer_one_case(session: Session, police: Org) -> None:
    """Refer the demo's JOINT case (its pupil left to work) to the police bureau, once."""
    from cases.engine import casework as engine

    ref = referrals_table()
    case = session.scalar(select(Case).where(Case.state == "JOINT").order_by(Case.id))
    if case is None or session.scalar(select(ref.c.id).where(ref.c.case_id == case.id,
                                                             ref.c.to_org_id == police.id)) is not None:
        return
    engine.create_referral(session, case, to_department="gongan", reason="学生外出后失联，请协查下落",
                           sent_on=case.opened_on + dt.timedelta(days=10), actor="demo", to_org_id=police.id)


def create_demo_accounts(session: Session, hasher: PasswordHasher, *, production: bool = False) -> list[str]:
    """Create the demo accounts that do not exist yet (the caller commits); their usernames."""
    if production:
        raise RuntimeError("BAOXUE_ENV=production：不创建密码公开的演示账号")
    county = _org(session, "county", "青禾县")
    if county is None:
        raise RuntimeError("演示县不存在：先运行 load_demo")
    police = _department(session, county)
    _refer_one_case(session, police)
    made = []
    for username, display, role, where in DEMO_ACCOUNTS:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            continue
        org = _org(session, *where) if where else None
        if where and org is None:
            log.warning("demo account %s skipped: no %s %s", username, *where)
            continue
        accounts.create_user(session, username=username, display_name=display, org_id=org.id if org else None,
                             roles=[role], password=DEMO_PASSWORD, hasher=hasher, by="demo")
        made.append(username)
    session.flush()
    return made
