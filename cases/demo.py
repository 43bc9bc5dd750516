"""Demo data: a plausible but synthetic county, for trying the service and for tests.

``load_demo(session, seed=1)`` builds 演示市青禾县 (GB/T 2260-looking code 419901, not a real
county): the county government and education bureau as issuers, 3 townships with 3–4 villages
each, 6 schools (4 primary, 2 junior) with 学校标识码, one class per grade, 300 pupils with
checksum-valid synthetic ID numbers (area code: see ID_AREA_CODE; birth dates consistent with
their grade; 学籍号 "G"+ID),
guardians with valid mobile numbers, 8 open cases at different workflow states with the events
that led there, and the county's indicator targets. With the services (the command line, the
browser tests) the two NOTICED cases get their 返校通知书, one 回证 returned and waiting in the
review queue, the other outstanding. Deterministic for a given seed and date. Every person is
invented.

Command line: ``python -m cases.demo [--seed N]`` (uses DATABASE_URL or the default SQLite file,
migrates it, and skips if the demo county is already there; issues the notices through
LibreOffice).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import random
import sys
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.engine import casework
from cases.engine.deadlines import count_working_days, due_date
from cases.engine.profiles import load_profile
from cases.store import audit
from cases.store.models import Case, Guardian, Org, Pupil, SchoolClass, descendants
from forms import validators

log = logging.getLogger(__name__)

COUNTY_CODE = "419901"
# ID numbers need a real GB/T 2260 area code valid in the birth year (the validator checks it
# through python-stdnum); 410721 has been assigned since 1983. Birth dates and sequence numbers
# are drawn at random, so the numbers are synthetic all the same.
ID_AREA_CODE = "410721"
REGION_PROFILE = "henan-weihui-2022"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
PUPILS_PER_CLASS = 10

# (township name, kind suffix, doc prefix, [village names], [(school name, level)])
TOWNSHIPS = (
    ("东河镇", "100", "东河镇政", ("东河村", "柳湾村", "石桥村", "杏林村"),
     (("东河镇中心小学", "primary"), ("东河镇柳湾小学", "primary"), ("东河镇初级中学", "junior"))),
    ("西岭乡", "200", "西岭乡政", ("西岭村", "槐树岭村", "上庄村"),
     (("西岭乡中心小学", "primary"), ("西岭乡初级中学", "junior"))),
    ("南坪镇", "101", "南坪镇政", ("南坪村", "枣园村", "后沟村", "新庄村"),
     (("南坪镇中心小学", "primary"),)),
)
GRADE_NAMES = ("一", "二", "三", "四", "五", "六", "七", "八", "九")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
BOY_CHARS = "浩宇轩子涵博文俊杰明轩晨阳志强家豪一鸣天佑思远嘉乐振宇"
GIRL_CHARS = "欣怡梓涵雨萱佳琪诗雨静怡思彤可馨语嫣梦琪紫萱雅婷心悦"
# Open demo cases: (target state, reason code, transitions walked to get there, the deadline the
# case is waiting on and where it stands on load day). Each case is opened by the engine
# (``open_case``, T1) and walked through ``apply_action`` with the facts and persuasion records its
# guards ask for, so its events, deadlines and 问题清单 are the engine's own. The opening day is
# searched backwards from the load day so that the named deadline is overdue / due today / due
# within 3 working days on that day by the profile's working-day calendar ("done": the case is
# just past its last step); a pending duty is left undone (no same-day contact, no home visit yet).
# The last field is the pupil's school: most cases sit in 东河镇 (the demo township and school accounts).
CASE_PLAN = (
    ("ABSENT", "R01", ("T1",), ("contact_guardian", "overdue"), "东河镇柳湾小学"),
    ("VERIFY", "R06", ("T1", "T3"), ("verify_visit", "today"), "东河镇柳湾小学"),
    ("SUSPECTED", "R02", ("T1", "T3", "T4"), ("persuasion_window", "soon"), "东河镇初级中学"),
    ("REPORTED", "R07", ("T1", "T3", "T4", "T7"), ("township_notice", "overdue"), "东河镇初级中学"),
    ("NOTICED", "R01", ("T1", "T3", "T4", "T7", "T8"), ("return_deadline", "soon"), "东河镇柳湾小学"),
    ("JOINT", "R02", ("T1", "T3", "T4", "T7", "T8", "T10"), (None, "done"), "西岭乡初级中学"),
    ("REPORTED", "R02", ("T1", "T3", "T4", "T7"), ("township_notice", "today"), "东河镇初级中学"),
    ("NOTICED", "R07", ("T1", "T3", "T4", "T7", "T8"), ("return_deadline", "overdue"), "西岭乡初级中学"),
)
ACTORS = {"T1": "班主任", "T3": "学校", "T4": "学校", "T7": "学校", "T8": "乡(镇)人民政府", "T10": "乡(镇)人民政府"}
# The transition whose day starts each target timer (``_plan`` knows those days).
TIMER_START = {"contact_guardian": "T1", "verify_visit": "T3", "persuasion_window": "T4",
               "township_notice": "T7", "return_deadline": "T8"}
SOON_WORKING_DAYS = 3
# Indicator targets of the demo county (DOMAIN §6.4: the seeds' targets, the strictest where two
# regions differ), so the indicators page shows each figure against a target on first run.
DEMO_TARGETS = (
    ("primary_enrolment_rate", "ge", 99.5, "演示：参照勐海[S4]"),
    ("junior_gross_enrolment_rate", "ge", 99, "演示：参照勐海[S4]"),
    ("nine_year_retention_rate", "ge", 97, "演示：参照灵璧[S0]"),
    ("primary_dropout_rate", "le", 0.6, "演示：参照勐海[S4]"),
    ("junior_dropout_rate", "le", 1.8, "演示：参照勐海[S4]"),
    ("g01_retention_rate", "ge", 100, "演示：参照贵州[S3]"),
    ("disabled_enrolment_rate", "ge", 95, "演示：参照贵州[S3]"),
    ("g01_dropouts", "eq", 0, "演示：动态清零[S0][S3][S4]"),
)


@dataclass(frozen=True)
class DemoSummary:
    """What ``load_demo`` found or created."""

    created: bool
    county_id: int
    townships: int
    villages: int
    schools: int
    classes: int
    pupils: int
    guardians: int
    cases: int


def school_year_of(day: dt.date) -> int:
    """Start year of the school year containing ``day`` (it starts on 1 September)."""
    return day.year if day.month >= 9 else day.year - 1


def _find_county(session: Session) -> Org | None:
    return session.scalar(select(Org).where(Org.kind == "county", Org.code == COUNTY_CODE))


def _summary(session: Session, county: Org, created: bool) -> DemoSummary:
    below = descendants(session, county)
    school_ids = [o.id for o in below if o.kind == "school"]

    def count(model) -> int:
        return session.scalar(select(func.count()).select_from(model).where(model.in_scope(county))) or 0

    return DemoSummary(created=created, county_id=county.id,
                       townships=sum(o.kind == "township" for o in below),
                       villages=sum(o.kind == "village" for o in below), schools=len(school_ids),
                       classes=count(SchoolClass), pupils=count(Pupil), guardians=count(Guardian),
                       cases=count(Case))


def _plan(path: tuple[str, ...], opened: dt.date, holidays) -> dict[str, dt.date]:
    """The day of each transition of ``path`` for a case opened on ``opened``: 3 and 5 days of
    absence for T3/T4, the report the day after the 10-working-day persuasion window ends, the
    township signing for it that day and serving the notice the day after (T8), the joint team
    the day after that (R02 外出打工 needs partners at once)."""
    window = load_profile(REGION_PROFILE).timer("persuasion_window")
    days = {"T1": opened, "T3": opened + dt.timedelta(days=3), "T4": opened + dt.timedelta(days=5)}
    days["T7"] = due_date(window, days["T4"], holidays=holidays).date + dt.timedelta(days=1)
    days["T8"] = days["T7"] + dt.timedelta(days=1)
    days["T10"] = days["T8"] + dt.timedelta(days=1)
    return {code: days[code] for code in path}


def _standing(due: dt.date, today: dt.date, holidays) -> str:
    """Where a deadline due on ``due`` stands on ``today``: overdue, today, soon (≤ 3 working days)."""
    if due < today:
        return "overdue"
    if due == today:
        return "today"
    left = count_working_days(today + dt.timedelta(days=1), due, holidays=holidays).days
    return "soon" if left <= SOON_WORKING_DAYS else "later"


def _opening(path: tuple[str, ...], target: tuple[str | None, str], today: dt.date, holidays) -> dict[str, dt.date]:
    """The transition days of ``path`` for the latest opening day (searched back from ``today``)
    whose last step is before ``today`` and whose ``target`` deadline stands as asked on ``today``;
    "done" (or no such day within 90 days): the last step 2 days before ``today``."""
    profile = load_profile(REGION_PROFILE)
    timer, standing = target
    if timer is not None:
        for back in range(1, 90):
            days = _plan(path, today - dt.timedelta(days=back), holidays)
            if days[path[-1]] >= today:
                continue
            due = due_date(profile.timer(timer), days[TIMER_START[timer]], holidays=holidays).date
            if _standing(due, today, holidays) == standing:
                return days
    span = _plan(path, today, holidays)[path[-1]] - today
    return _plan(path, today - span - dt.timedelta(days=2), holidays)


def _walk_case(session: Session, pupil: Pupil, reason: str, path: tuple[str, ...], today: dt.date,
               target: tuple[str | None, str] = (None, "done")) -> Case:
    """Open a case for ``pupil`` and take it along ``path`` through the engine so that ``target``
    stands as asked on ``today``, with three failed school persuasion attempts inside the window
    once suspected; a REPORTED case's 报告单 is signed for by the township the day it is sent."""
    holidays = casework.holiday_tables(session)
    days = _opening(path, target, today, holidays)
    pending = target[0]
    case = casework.open_case(session, pupil, reason_code=reason, opened_on=days["T1"], actor=ACTORS["T1"])
    facts = {"T3": {"unexcused_days": 3}, "T4": {"unexcused_days": 5},
             "T8": {"report_received_on": days.get("T7"), "notice_served_on": days.get("T8")}}
    if pending != "contact_guardian":  # the same-day contact with the guardian (T1's duty)
        casework.record_attempt(session, case, {
            "date": days["T1"].isoformat(), "persons": "班主任", "method": "phone", "result": "refused",
            "stage": "school", "statements": "监护人称孩子身体不适（演示数据）"}, actor=ACTORS["T1"])
    for code in path[1:]:
        if code == "T7":  # the school's persuasion inside the window, all refused
            for n in (1, 3, 5):
                casework.record_attempt(session, case, {
                    "date": (days["T4"] + dt.timedelta(days=n)).isoformat(), "persons": "班主任、专人",
                    "method": "visit" if n != 3 else "phone", "result": "refused", "stage": "school",
                    "statements": "监护人称孩子不愿上学（演示数据）"}, actor="专人")
        data = {"facts": {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in facts.get(code, {}).items()},
                "note": "演示数据"}
        casework.apply_action(session, case, code, actor=ACTORS[code], data=data,
                              occurred_at=dt.datetime.combine(days[code], dt.time(9 + len(path) % 6), CHINA_TZ))
        if code == "T3" and pending != "verify_visit":  # the home visit that verifies the absence
            casework.record_attempt(session, case, {
                "date": days["T3"].isoformat(), "persons": "班主任、村干部", "method": "visit", "result": "refused",
                "stage": "school", "statements": "学生在家，不愿返校（演示数据）"}, actor="班主任")
        if code == "T7" and path[-1] == "T7":  # the township signs for the 报告单 (starts its notice duty)
            casework.record_receipt(session, case, document_id=None, received_on=days["T7"], by="township",
                                    actor="乡(镇)人民政府")
    return case


def _issue_notices(session: Session, services, cases: list[Case]) -> list[str]:
    """The township's 返校通知书 of each NOTICED case, issued from the case the way the case page
    does (the same prefill, the profile's variant, the issuer the case suggests, the few fields no
    record holds typed in), numbered and rendered (DOCX and PDF) on the day of the case's T8."""
    from cases.documents import issuing
    from cases.documents.prefill import data_from_case, default_issuer
    from cases.store.models import CaseEvent
    from forms.registry import spec_for

    spec = spec_for("notice")
    by_label = {f.label: path for path, f in spec.walk() if "." not in path and "[" not in path}
    out = []
    for case in cases:
        variant = spec.variant(casework.case_profile(case).notice_variant)
        served = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == "transition")
                                 .order_by(CaseEvent.id.desc())).first()
        issued_on = served.occurred_at.astimezone(CHINA_TZ).date() if served else case.opened_on
        school = session.get(Org, case.org_id)
        # what the township's clerk types on the case page (the fields no record holds), by the
        # label the page shows beside each
        typed = {"报到地点": f"{school.name}教务处", "联系人": "李秀兰", "联系电话": "13703730166",
                 "抄送": "青禾县教育局、青禾县控辍保学工作领导小组办公室", "经办人": "王建国"}
        asked = {by_label[label]: value for label, value in typed.items()}
        doc = issuing.issue_document(session, services, form=spec.code, variant=variant.code,
                                     issuer_id=default_issuer(session, case, spec, variant),
                                     data={**data_from_case(session, case, spec, variant), **asked}, case_id=case.id,
                                     user="demo", issued_on=issued_on)
        out.append(doc.id)
    return out


# The 回证 as the township's clerk types it into the Word file of the notice after the guardian
# signed on paper: label printed on the form -> what is written beside it ({day}: the service day).
RECEIPT_TYPED = {"送达地点": "学生家中", "送达时间": "{day}10时00分",
                 "送达方式": "☑直接送达 ☐留置送达 ☐委托送达 ☐邮寄送达 ☐电子送达",
                 "受送达人签名(捺印)": "{guardian}", "签收日期": "{day}", "送达人签名(一)": "王建国"}


def typed_receipt(docx_bytes: bytes, values: dict[str, str]) -> bytes:
    """The notice's DOCX with ``values`` typed into the value cell after each printed label of the
    回证 (the tables from the one holding 回证编号 on), as a person does in Word."""
    import io

    import docx

    d = docx.Document(io.BytesIO(docx_bytes))
    todo = dict(values)
    start = next(i for i, t in enumerate(d.tables) if "回证编号" in t._tbl.xml)
    for table in d.tables[start:]:
        for row in table.rows:
            cells = []
            for c in row.cells:
                if not cells or cells[-1]._tc is not c._tc:
                    cells.append(c)
            for a, b in zip(cells, cells[1:], strict=False):
                if a.text.strip() in todo:
                    b.paragraphs[0].text = todo.pop(a.text.strip())
                    for p in b.paragraphs[1:]:
                        p._p.getparent().remove(p._p)
    if todo:
        raise RuntimeError(f"回证 labels not found in the notice: {sorted(todo)}")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def _return_receipt(session: Session, services, doc_id: str) -> dict:
    """The signed 回证 of notice ``doc_id`` uploaded back (typed into its Word file) and read by the
    one returns pipeline: the service method waits in the review queue for a person to confirm."""
    from cases.documents.issuing import document_file
    from cases.returns import intake
    from cases.store.models import Document
    from forms.registry import get_spec

    doc = session.get(Document, doc_id)
    spec = get_spec(doc.form)
    issued = dt.date.fromisoformat(next(doc.data[path] for path, f in spec.walk() if f.source == "issue.date"))
    day = f"{issued.year}年{issued.month}月{issued.day}日"
    guardian = session.scalars(select(Guardian).where(Guardian.pupil_id == doc.case.pupil_id)
                               .order_by(Guardian.id)).first()
    typed = {k: v.format(day=day, guardian=guardian.name) for k, v in RECEIPT_TYPED.items()}
    data = typed_receipt(document_file(services, doc, "docx"), typed)
    return intake.receive(session, services, filename="送达回证.docx", data=data, org_id=doc.org_id, user="demo")


def load_demo(session: Session, *, seed: int = 1, today: dt.date | None = None, services=None) -> DemoSummary:
    """Load the synthetic county into ``session`` (flushed; the caller commits).

    With ``services`` (the running app's or the command line's: the store and the converter), the
    返校通知书 of each NOTICED case is issued too, so no NOTICED case stands without its document;
    one 回证 comes back with its values waiting for review, the other is outstanding. The upload
    of that 回证 commits ``session`` (the returns pipeline reads in its own sessions).
    Idempotent: if the demo county exists, nothing is added and ``created`` is False.
    """
    existing = _find_county(session)
    if existing is not None:
        log.info("demo county already loaded (org %s); skipping", existing.id)
        return _summary(session, existing, created=False)
    today = today or dt.date.today()
    rng = random.Random(seed)
    year = school_year_of(today)

    def add(kind: str, name: str, parent: Org | None, **kw) -> Org:
        org = Org(kind=kind, name=name, parent_id=parent.id if parent else None, **kw)
        session.add(org)
        session.flush()
        return org

    province = add("province", "河南省", None, code="410000")
    prefecture = add("prefecture", "演示市", province, code="419900")
    county = add("county", "青禾县", prefecture, code=COUNTY_CODE, doc_prefix="青政",
                 region_profile=REGION_PROFILE)
    add("education_bureau", "青禾县教育局", county, doc_prefix="青教")

    used_ids: set[str] = set()

    def id_number(birth: dt.date, male: bool) -> str:
        while True:
            seq = rng.randrange(0, 500) * 2 + (1 if male else 0)
            value = validators.synthetic_id_number(ID_AREA_CODE, birth, seq)
            if value not in used_ids:
                used_ids.add(value)
                return value

    def person_name(surname: str, male: bool) -> str:
        chars = BOY_CHARS if male else GIRL_CHARS
        return surname + "".join(rng.choice(chars) for _ in range(rng.choice((1, 2))))

    def mobile() -> str:
        return rng.choice(("13", "15", "17", "18", "19")) + "".join(rng.choice("0123456789") for _ in range(9))

    school_count = 0
    pupils_by_grade: dict[int, list[tuple[Pupil, Org, Org]]] = {}
    for t_name, t_code, t_prefix, villages, schools in TOWNSHIPS:
        township = add("township", t_name, county, code=f"{COUNTY_CODE}{t_code}000", doc_prefix=t_prefix)
        village_orgs = [add("village", v, township, code=f"{COUNTY_CODE}{t_code}{200 + i:03d}")
                        for i, v in enumerate(villages, 1)]
        for s_name, level in schools:
            school_count += 1
            short = s_name.removeprefix(t_name).removesuffix("小学")[:2]
            school = add("school", s_name, township, code=f"21{COUNTY_CODE[:4]}{school_count:04d}",
                         doc_prefix=t_name[:2] + ("初中" if level == "junior" else f"{short}小"))
            grades = range(1, 7) if level == "primary" else range(7, 10)
            for grade in grades:
                klass = SchoolClass(org_id=school.id, grade=grade, school_year=year,
                                    name=f"{GRADE_NAMES[grade - 1]}年级(1)班")
                session.add(klass)
                session.flush()
                for _ in range(PUPILS_PER_CLASS):
                    male = rng.random() < 0.52
                    # Grade g in school year Y: 6 years old by 31 August of Y - (g - 1).
                    start = dt.date(year - 6 - (grade - 1), 9, 1)
                    birth = start + dt.timedelta(days=rng.randrange(365))
                    number = id_number(birth, male)
                    village = rng.choice(village_orgs)
                    surname = rng.choice(SURNAMES)
                    groups = []
                    if rng.random() < 0.15:
                        groups.append("G02")  # 农村留守儿童
                    poverty = None
                    if rng.random() < 0.06:
                        groups.append("G01")
                        poverty = rng.choice(("jdlk", "tph", "jcdx"))
                    address = f"河南省演示市青禾县{t_name}{village.name}{rng.randrange(1, 60)}号"
                    pupil = Pupil(org_id=school.id, class_id=klass.id, name=person_name(surname, male),
                                  sex="男" if male else "女", birth_date=birth, id_number=number,
                                  xueji_no="G" + number, ethnicity="汉族" if rng.random() < 0.93 else "回族",
                                  hukou_org_id=village.id, hukou_text=address, address=address,
                                  special_groups=groups, poverty_category=poverty)
                    session.add(pupil)
                    session.flush()
                    left_behind = "G02" in groups
                    parent_age = rng.randrange(24, 31) + grade
                    for relation, g_male in (("父", True), ("母", False)):
                        g_year = max(year - parent_age, 1984)  # inside the area code's validity
                        g_birth = dt.date(g_year, rng.randrange(1, 13), rng.randrange(1, 29))
                        g_surname = surname if g_male else rng.choice(SURNAMES)
                        session.add(Guardian(pupil_id=pupil.id, org_id=school.id, relation=relation,
                                             name=person_name(g_surname, g_male), phone=mobile(),
                                             id_number=id_number(g_birth, g_male), address=address))
                    if left_behind:  # parents work away: the grandparent at home is the contact
                        session.add(Guardian(pupil_id=pupil.id, org_id=school.id, relation="祖父母",
                                             name=person_name(surname, True), phone=mobile(), address=address))
                    pupils_by_grade.setdefault(grade, []).append((pupil, school, township))
    session.flush()

    # Open cases: older pupils (dropouts are concentrated in junior grades) of the planned school.
    candidates = [p for g in (7, 8, 9, 6, 5) for p in pupils_by_grade.get(g, [])]
    taken: set[int] = set()
    noticed = []
    for state, reason, path, target, school_name in CASE_PLAN:
        pupil = rng.choice([p for p, school, _t in candidates if school.name == school_name and id(p) not in taken])
        taken.add(id(pupil))
        case = _walk_case(session, pupil, reason, path, today, target)
        if state == "NOTICED":
            noticed.append(case)
    from cases.ledgers.models import IndicatorTarget

    session.add_all([IndicatorTarget(region=COUNTY_CODE, indicator=code, op=op, value=value, source=source)
                     for code, op, value, source in DEMO_TARGETS])
    session.flush()
    if services is not None:
        notices = _issue_notices(session, services, noticed)
        # 东河镇's comes back (its service waits in the review queue); 西岭乡's stays outstanding
        _return_receipt(session, services, notices[0])
    audit.record(session, who="demo", org=county, action="demo.load", target=f"org:{county.id}",
                 after={"seed": seed, "school_year": year})
    session.flush()
    summary = _summary(session, county, created=True)
    log.info("demo county loaded: %s", summary)
    return summary


def main(argv: list[str] | None = None, *, config) -> int:
    """``python -m cases.demo``: migrate the database of ``config`` (or ``--database-url``) and load
    the demo county (the settings are passed in by the ``__main__`` block)."""
    from cases.store.db import make_engine, make_session_factory, session_scope, upgrade_to_head

    parser = argparse.ArgumentParser(description="Load the synthetic demo county (青禾县).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=config.DATABASE_URL)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    upgrade_to_head(args.database_url)
    engine = make_engine(args.database_url)
    made: list[str] = []
    try:
        from cases.store.services import Services

        factory = make_session_factory(engine)
        settings = {k: getattr(config, k) for k in dir(config) if k.isupper()}
        services = Services.from_config(settings, factory)  # the store and converter the notices need
        with session_scope(factory) as session:
            summary = load_demo(session, seed=args.seed, services=services)
            if getattr(config, "ENV_NAME", "") != "production":  # never accounts with published passwords in production
                from cases.accounts.demo import create_demo_accounts
                from cases.accounts.service import default_hasher

                made = create_demo_accounts(session, default_hasher())
    finally:
        engine.dispose()
    verb = "loaded" if summary.created else "already present, nothing added"
    sys.stdout.write(f"demo county {verb}: {summary.townships} townships, {summary.villages} villages, "
                     f"{summary.schools} schools, {summary.classes} classes, {summary.pupils} pupils, "
                     f"{summary.guardians} guardians, {summary.cases} open cases\n")
    if made:
        sys.stdout.write(f"demo accounts created: {', '.join(made)} (password: see README)\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from config import Config

    sys.exit(main(config=Config))
