"""A form's effects on its case are declared in its spec (``FormSpec.effects``) and applied by one
generic code path (cases/returns/apply.py): a returned 报告单's 签收 dates become receipts, a
returned 交接表's row ticks become registrations, a 回证's service a service (tests/test_returns.py).
Each test stores what a returned file was read as (the readings a parser writes) and lets the
pipeline finish the document, on a real database."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from cases.engine.models import Deadline
from cases.handover.models import HandoverRow
from cases.returns.apply import ACTIONS, finish_document
from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store.models import Case, CaseEvent, Document, Org, Upload
from forms.registry import all_specs
from forms.spec import EFFECT_ACTIONS, Effect, Field, FormSpec, Kind
from tests.test_handover import world  # noqa: F401  (the demo county's handover plan)

REPORT_ID = "EFFECTREPRT1"
USER = "township-reviewer"


def _reading(value) -> dict:
    return {"value": value, "confidence": 0.99, "needs_review": False, "status": "ok", "origin": "hand"}


def _returned(session, doc: Document, values: dict, *, n: int = 1) -> int:
    """An upload of ``doc`` read as ``values`` (path -> value); returns the upload id."""
    up = Upload(sha256=f"{n:064x}", original_filename=f"returned-{n}.docx", size=1, stored_path=f"x/{n}",
                org_id=doc.org_id, status="parsed")
    session.add(up)
    session.flush()
    session.add(ReturnPage(upload_id=up.id, page_index=0, document_id=doc.id, status="read", method="metadata",
                           input_kind="docx", org_id=up.org_id,
                           readings={p: _reading(v) for p, v in values.items()}))
    session.commit()
    return up.id


def test_every_declared_effect_is_applied_by_cases():
    assert set(ACTIONS) == set(EFFECT_ACTIONS)
    declared = {e.action for s in all_specs().values() for e in s.effects}
    assert declared == {"service", "receipts", "registrations"}


def test_a_spec_naming_a_field_it_lacks_is_refused():
    fields = (Field("doc_number", "编号"), Field("got_on", "签收日期", Kind.DATE))
    with pytest.raises(ValueError, match="names no field 'received_on'"):
        FormSpec("x", "x", "1", fields, (), effects=(Effect("receipts", {"township": "received_on"}),))
    with pytest.raises(ValueError, match="no parameter 'when'"):
        FormSpec("x", "x", "1", fields, (), effects=(Effect("receipts", {"when": "got_on"}),))
    with pytest.raises(ValueError, match="unknown effect"):
        FormSpec("x", "x", "1", fields, (), effects=(Effect("archive", {}),))
    with pytest.raises(ValueError, match="unknown issuer"):
        FormSpec("x", "x", "1", fields, (), issuer="village")


@pytest.fixture
def report(app, app_session, demo):
    """A 报告单 issued by the school of a demo case."""
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    app_session.add(Document(id=REPORT_ID, org_id=case.pupil.org_id, case_id=case.id, form="dropout_report",
                             family="dropout_report:辍报", template_version="2026.1", year=2025, seq=3,
                             number_text="辍报〔2025〕3号", status="issued", data={}))
    app_session.commit()
    return app_session.get(Document, REPORT_ID)


SIGNED = {"teacher_signature": True, "principal_signature": True, "school_seal": True}


def test_a_returned_report_records_each_receipt_once(app_session, report):
    s = app_session
    up = _returned(s, report, {**SIGNED, "township_receiver": "赵敏", "township_received_on": "2025-09-22",
                               "education_received_on": "2025-09-23"})
    ret = finish_document(s, up, REPORT_ID, user=USER)
    assert (ret.status, ret.complete, ret.missing) == ("applied", True, [])
    receipts = s.scalars(select(CaseEvent).where(CaseEvent.case_id == report.case_id, CaseEvent.kind == "receipt")
                         .order_by(CaseEvent.id)).all()
    assert [e.data for e in receipts] == [
        {"document_id": REPORT_ID, "received_on": "2025-09-22", "by": "township"},
        {"document_id": REPORT_ID, "received_on": "2025-09-23", "by": "education"}]
    # the same copy returned again changes nothing
    again = _returned(s, report, {**SIGNED, "township_received_on": "2025-09-22"}, n=2)
    assert finish_document(s, again, REPORT_ID, user=USER).status == "applied"
    assert len(s.scalars(select(CaseEvent).where(CaseEvent.case_id == report.case_id,
                                              CaseEvent.kind == "receipt")).all()) == 2


def test_a_returned_report_with_another_receipt_day_goes_to_review(app_session, report):
    s = app_session
    finish_document(s, _returned(s, report, {**SIGNED, "township_received_on": "2025-09-22"}), REPORT_ID, user=USER)
    up = _returned(s, report, {**SIGNED, "township_received_on": "2025-09-25"}, n=2)
    ret = finish_document(s, up, REPORT_ID, user=USER)
    assert ret.status == "review"
    [item] = s.scalars(select(ReviewItem).where(ReviewItem.upload_id == up)).all()
    assert (item.kind, item.field_path, item.status) == ("discrepancy", "township_received_on", "open")
    assert item.proposed == {"value": {"received_on": "2025-09-25", "by": "township"}}
    assert item.recorded == {"value": {"received_on": "2025-09-22", "by": "township"}}
    assert len(s.scalars(select(CaseEvent).where(CaseEvent.case_id == report.case_id,
                                              CaseEvent.kind == "receipt")).all()) == 1


def test_an_unsigned_report_records_no_receipt(app_session, report):
    s = app_session
    up = _returned(s, report, {"teacher_signature": True, "principal_signature": False, "school_seal": True,
                               "township_received_on": "2025-09-22"})
    ret = finish_document(s, up, REPORT_ID, user=USER)
    assert (ret.status, ret.complete, ret.missing) == ("incomplete", False, ["principal_signature"])
    assert s.scalars(select(CaseEvent).where(CaseEvent.case_id == report.case_id,
                                              CaseEvent.kind == "receipt")).all() == []


def test_the_township_receipt_starts_the_notice_clock(app_session, report):
    """卫辉: the township's 2-day notice timer runs from its receipt of the 报告单."""
    s = app_session
    case = s.get(Case, report.case_id)
    school = s.get(Org, case.pupil.org_id)
    from cases.engine.casework import profile_name_for

    if profile_name_for(s, school) != "henan-weihui-2022":
        pytest.skip("the demo case is not under the 卫辉 profile")
    finish_document(s, _returned(s, report, {**SIGNED, "township_received_on": "2025-09-22"}), REPORT_ID,
                    user=USER)
    timers = s.scalars(select(Deadline).where(Deadline.case_id == case.id, Deadline.timer == "township_notice"))
    assert [d.start_on for d in timers] == [dt.date(2025, 9, 22)]


def test_a_returned_handover_table_records_its_row_ticks(world, services):  # noqa: F811
    """Row ticks on a returned 交接表 (read by any parser) become registrations of the plan."""
    from cases.handover import plans as ho
    from tests.test_handover import _run_job

    s, plan = world["s"], world["plan"]
    _run_job(s, ho.start_plan_render(s, services, plan, fmt="docx", data={"handover_date": "2027-07-10"},
                                     user="县教育局"))
    doc = s.get(Document, plan.entries[2].document_id)
    up = _returned(s, doc, {"pupils[0].registered": True, "pupils[0].registered_on": "2027-09-01",
                            "pupils[1].registered": False, "pupils[1].whereabouts": "transfer_out",
                            "pupils[2].registered_on": None})
    ret = finish_document(s, up, doc.id, user=USER)
    assert ret.status == "applied"
    rows = {r.row_index: r for r in s.scalars(select(HandoverRow).where(HandoverRow.entry_id == plan.entries[2].id))}
    assert (rows[1].registered, rows[1].registered_on) == (True, dt.date(2027, 9, 1))
    assert (rows[2].registered, rows[2].whereabouts) == (False, "transfer_out")
    assert not rows[3].registered and rows[3].whereabouts is None
    assert s.scalar(select(DocumentReturn).where(DocumentReturn.document_id == doc.id)).status == "applied"



# ---- no form knowledge in cases/ -----------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# The case record's own words that happen to be field names of a form too: case event kinds and
# keys ("facts" events, a receipt's "received_on"), workflow facts and states, returned-copy status.
CASE_RECORD_WORDS = {"facts", "received_on", "over_age", "deferred", "returned", "period", "closed"}
# Names that are a form's field names *and* the columns of another format of the store, allowed
# only in the module that defines that format. Nothing else in cases/ may name a form's field.
OTHER_VOCABULARY = {
    # the plan's own keys (which class: school code + class name), in its API and its imports; the
    # roster's other columns are the 交接表's row fields, read from its spec
    "cases/handover/plans.py": {"school_code", "class_name"},
    # the 台账's own row columns and indicator definitions, the aggregate's "enrolled" figures
    "cases/ledgers/ledger.py": {"school_code", "class_name", "guardian_phone", "g01", "band", "aid_policies",
                                "enrolled"},
    "cases/ledgers/models.py": {"g01"},
    "cases/ledgers/indicators.py": {"formula"},
}


def _vocabulary() -> tuple[set[str], set[str]]:
    """(field names of the forms, the facts' and store's own names: sources, columns, effect words)."""
    import importlib
    import pkgutil

    from cases.store.db import Base

    for m in pkgutil.walk_packages([str(ROOT / "cases")], "cases."):
        if m.name.endswith(".models"):
            importlib.import_module(m.name)
    fields, vocab = set(), set()
    for spec in all_specs().values():
        for _path, f in spec.walk():
            fields.add(f.name)
            for alt in f.source.split("|"):
                vocab.update(x for x in alt.split(".") if x)
    for table in Base.metadata.tables.values():
        vocab.update(c.name for c in table.columns)
    for action, params in EFFECT_ACTIONS.items():
        vocab.update((action, *params))
    return fields, vocab


def test_no_form_field_name_and_no_spec_code_branch_in_cases():
    fields, vocab = _vocabulary()
    form_only = fields - vocab
    assert {"service_time", "service_method", "recipient_signature", "township_received_on",
            "student_name", "party_a_name", "g01_count", "screening", "suspected_found", "legal_docs",
            "songjiao", "left_behind"} <= form_only
    found = []
    for path in sorted((ROOT / "cases").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if re.search(r"spec\.code\s*[!=]=", text):
            found.append((rel, "spec.code =="))
        allowed = CASE_RECORD_WORDS | OTHER_VOCABULARY.get(rel, set())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in form_only and node.value not in allowed:
                    found.append((f"{rel}:{node.lineno}", node.value))
    assert not found, f"form knowledge in cases/ (declare it in the spec: Field.source / FormSpec.effects): {found}"


# Form codes that are also the name of something else in cases/: "handover" is 整班移交 itself (a
# case's source, the region profile's section, audit actions). These are flagged only where they
# name a form; every other form code is flagged wherever cases/ writes it.
FORM_CODE_ALSO_A_WORD = {"handover"}
_FORM_CALLS = {"get_spec", "submit_batch", "issue_document", "render_document"}


def _names_a_form(node: ast.Constant, parents: dict) -> bool:
    """``node`` is used as a form code: compared with / put in ``x.form``, ``form=``, ``{"form": …}``,
    or passed to a function that takes a form code."""
    up = parents.get(node)
    while isinstance(up, (ast.Tuple, ast.List, ast.Set)):
        up = parents.get(up)
    if isinstance(up, ast.Compare):
        return any(isinstance(x, ast.Attribute) and x.attr == "form" for x in (up.left, *up.comparators))
    if isinstance(up, ast.keyword):
        return up.arg == "form"
    if isinstance(up, ast.Dict):
        return any(isinstance(k, ast.Constant) and k.value == "form" and v is node
                   for k, v in zip(up.keys, up.values, strict=True))
    if isinstance(up, ast.Call):
        f = up.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name == "in_":
            return isinstance(f.value, ast.Attribute) and f.value.attr == "form"
        return name in _FORM_CALLS
    if isinstance(up, ast.Assign):
        return any(isinstance(x, ast.Name) and x.id in {"FORM", "form", "form_code"} for x in up.targets)
    return False


def test_no_form_code_in_cases():
    """cases/ finds a form by its role (``FormSpec.role``, ``forms.registry.spec_for``), never by code."""
    codes = set(all_specs())
    found = []
    for path in sorted((ROOT / "cases").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in codes:
                if node.value not in FORM_CODE_ALSO_A_WORD or _names_a_form(node, parents):
                    found.append((f"{rel}:{node.lineno}", node.value))
    assert not found, f"form codes in cases/ (look the form up by its role: forms.registry.spec_for): {found}"


def test_no_variant_code_in_cases():
    """cases/ names no variant of a form (e.g. the 责令 notice): a variant the casework needs is
    read from the spec (``Variant``) or declared there (``Count.variant`` of the 统计表)."""
    variants = {x.code for s in all_specs().values() for x in s.variants}
    assert {"zeling", "xianqi", "R-CT"} <= variants
    found = []
    for path in sorted((ROOT / "cases").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in variants:
                found.append((f"{path.relative_to(ROOT).as_posix()}:{node.lineno}", node.value))
    assert not found, f"variant codes in cases/ (read them from the spec): {found}"


def test_the_guard_catches_a_form_code_written_as_a_form():
    tree = ast.parse('x = d.form == "handover"\nsubmit_batch(s, v, "handover", [])\n'
                     'items.append({"form": "handover"})\nopen_case(source="handover")\n'
                     'q.where(Document.form.in_(("handover", "y")))\n')
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    hits = [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value == "handover" and _names_a_form(n, parents)]
    assert sorted(hits) == [1, 2, 3, 5]


def test_the_roster_import_reads_its_columns_from_the_handover_spec():
    from cases.handover.plans import ROSTER_COLUMNS, ROSTER_REQUIRED
    from forms.registry import spec_for

    rows = {f.name: f for f in spec_for("class_list").field("pupils").columns}
    assert list(ROSTER_COLUMNS)[:2] == ["school_code", "class_name"]
    for name, headings in list(ROSTER_COLUMNS.items())[2:]:
        assert headings[0] == rows[name].label and headings[-1] == name
    assert ROSTER_COLUMNS["guardian_phone"] == ("联系电话", "监护人联系电话", "guardian_phone")
    assert "registered" not in ROSTER_COLUMNS and "file_handed" not in ROSTER_COLUMNS  # filled later
    assert set(ROSTER_REQUIRED) == {"school_code", "class_name"} | {
        n for n, f in rows.items() if n in ROSTER_COLUMNS and f.required and n != "birth_date"}


def test_every_casework_role_names_exactly_one_form():
    from forms.registry import spec_for
    from forms.spec import ROLES

    specs = all_specs()
    assert {s.role for s in specs.values()} == set(ROLES)
    assert spec_for("notice").code == "guardian_notice" and spec_for("class_list").code == "handover"
    assert spec_for("report").code == "dropout_report" and spec_for("duty_agreement").code == "responsibility"
    with pytest.raises(Exception, match="没有承担"):
        spec_for("no_such_role")
    with pytest.raises(ValueError, match="unknown role"):
        FormSpec(code="x", title="x", version="1", fields=(), layout=(), role="nope")


# ---- prefill from the spec's sources -----------------------------------------------------------

def test_prefill_reads_sources_alternatives_rows_and_defaults():
    spec = all_specs()["dropout_report"]
    facts = {"pupil": {"name": "王小明", "address": "东关村三组"}, "guardian": {"name": "王建国"},
             "case": {"attempts": [{"date": "2025-09-10", "persons": "李老师", "stage": "school"}]}}
    data = spec.prefill(facts)
    assert data["student_name"] == "王小明" and data["guardian_name"] == "王建国"
    assert data["guardian_address"] == "东关村三组"  # the guardian's own address, else the pupil's
    assert data["attempts"] == [{"date": "2025-09-10", "persons": "李老师"}]  # columns only
    assert data["send_to"] == ["township", "education"] and data["poverty_category"] == "none"
    assert "send_to" not in spec.prefill(facts, defaults=False)
    assert "student_sex" not in data  # no fact, no value


def test_the_default_issuer_is_named_by_the_spec():
    specs = all_specs()
    notice = specs["guardian_notice"]
    assert specs["dropout_report"].default_issuer(None) == "school"
    assert notice.default_issuer(notice.variant("xianqi")) == "township"
    assert notice.default_issuer(notice.variant("quanfan")) == "education_bureau"


def test_a_signed_responsibility_copy_is_counted_returned(app_session, demo):
    """责任书: no case effect; the signed copy counts in "N of M returned" once every signature and
    seal zone on it is present (the generic completeness rule), an unsealed copy does not."""
    from cases.returns.queries import returned_count

    s = app_session
    county = s.scalar(select(Org).where(Org.kind == "county"))
    docs = []
    for seq in (1, 2):
        doc = Document(id=f"EFFECTRESP{seq:02d}", org_id=county.id, form="responsibility", variant="R-CT",
                       family="responsibility:控辍责", template_version="2026.1", year=2025, seq=seq,
                       number_text=f"控辍责〔2025〕{seq}号", status="issued", data={})
        s.add(doc)
        docs.append(doc)
    s.commit()
    signed = {"party_a_signature": True, "party_b_signature": True, "party_a_seal": True, "party_b_seal": True}
    first = finish_document(s, _returned(s, docs[0], signed), docs[0].id, user=USER)
    second = finish_document(s, _returned(s, docs[1], {**signed, "party_b_seal": False}, n=2), docs[1].id, user=USER)
    assert (first.status, first.complete) == ("applied", True)
    assert (second.status, second.complete, second.missing) == ("incomplete", False, ["party_b_seal"])
    assert returned_count(s, form="responsibility", issuer_id=county.id) == {
        "returned": 1, "total": 2, "documents": [docs[0].id]}


# ---- the 统计表's counts declared in its spec ------------------------------------------------------

def test_every_statistics_column_declares_what_it_counts_in_case_record_words():
    """Each count column of the statistics form says what it counts (``Field.counts``), in words the
    case record has: workflow states and transitions, closure outcomes, reason and group codes,
    placements, a role and a variant of a form; cases/ledgers computes them (test_ledgers.py)."""
    from cases.engine.closure import OUTCOMES
    from cases.engine.workflow import STATES, TRANSITIONS_BY_CODE
    from cases.ledgers.ledger import stat_tables
    from forms import codes
    from forms.registry import spec_for

    spec = spec_for("statistics")
    tables = stat_tables()
    assert [t.name for t in tables] == [f.name for f in spec.fields if f.kind == Kind.TABLE]
    states_or_outcomes = set(STATES) | set(OUTCOMES)
    for t in tables:
        table = spec.field(t.name)
        assert [c.name for c in table.columns] == [t.key, *t.count_names]  # every column but the key counts
        for _name, counts in t.columns:
            for c in counts:
                assert c.state in STATES
                assert set(c.at_end + c.not_at_end) <= states_or_outcomes
                assert set(c.reached + c.not_reached + c.into) <= set(STATES)
                assert set(c.transitions) <= set(TRANSITIONS_BY_CODE)
                assert c.outcome in ("", *OUTCOMES)
                assert c.reason in ("", *(x.code for x in codes.DROPOUT_REASONS))
                assert c.group in ("", *(x.code for x in codes.SPECIAL_GROUPS))
                assert c.placement in ("", *(x.code for x in codes.PLACEMENTS))
                if c.variant:
                    assert spec_for(c.role).variant(c.variant) is not None


def test_a_count_with_an_unknown_kind_or_filter_is_refused():
    from forms.spec import Count

    with pytest.raises(ValueError, match="unknown count"):
        Count("pupils_absent")
    with pytest.raises(ValueError, match="no filter 'reason'"):
        Count("transitions", reason="R01")
    with pytest.raises(ValueError, match="unknown role"):
        Count("documents", role="court_order")
    assert Count("cases_entering", reached=("JOINT",), min_attempts=3).filters() == {
        "reached": ("JOINT",), "min_attempts": 3}
    with pytest.raises(ValueError, match="must be an INT"):
        FormSpec("x", "x", "1", (Field("t", "表", Kind.TABLE, columns=(
            Field("n", "人数", counts=(Count("pupils"),)),)),), ())
