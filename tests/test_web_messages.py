"""The message catalogue (web.messages): every code a page can show has a Chinese label, values read
as a person writes them, and the four 责任书 variants sharing a title read differently."""

from __future__ import annotations

import datetime as dt

import pytest

from cases.engine.models import DEADLINE_STATUSES, PROBLEM_STATUSES
from cases.handover.models import PLAN_STATUSES, REGISTRATION_STATUSES
from cases.ledgers.models import SNAPSHOT_STATUSES
from cases.returns.models import INPUT_KINDS, PAGE_STATUSES, REVIEW_KINDS, REVIEW_STATUSES
from cases.store.models import CASE_STATES, DOCUMENT_STATUSES, JOB_STATUSES, ORG_KINDS, UPLOAD_STATUSES
from forms.registry import all_specs
from web import messages as m

LISTS = {"case_state": CASE_STATES, "document_status": DOCUMENT_STATUSES, "upload_status": UPLOAD_STATUSES,
         "job_status": JOB_STATUSES, "page_status": PAGE_STATUSES, "input_kind": INPUT_KINDS,
         "review_kind": REVIEW_KINDS, "review_status": REVIEW_STATUSES, "deadline_status": DEADLINE_STATUSES,
         "problem_status": PROBLEM_STATUSES, "plan_status": PLAN_STATUSES,
         "registration_status": REGISTRATION_STATUSES, "snapshot_status": SNAPSHOT_STATUSES, "org_kind": ORG_KINDS}


@pytest.mark.parametrize("kind", sorted(LISTS))
def test_every_code_has_a_chinese_label(kind):
    for code in LISTS[kind]:
        text = m.label(code, kind)
        assert text != "其他" and not text.isascii(), (kind, code, text)


def test_job_kinds_registered_have_labels():
    import importlib

    from cases.store import jobs

    for module in jobs.JOB_MODULES:  # every module the worker loads registers its kinds
        importlib.import_module(module)

    # kinds a test module registered for itself (tests/test_jobs.py) are not the product's
    kinds = [kind for kind, fn in jobs.kinds().items() if not fn.__module__.startswith("tests.")]
    assert len(kinds) >= 2, kinds
    for kind in kinds:
        assert m.label(kind, "job_kind") != "其他", kind


def test_values_are_shown_as_a_person_reads_them():
    assert m.shown(None) == "—" and m.shown(True) == "是" and m.shown(False) == "否"
    assert m.shown(dt.date(2026, 3, 5)) == "2026年3月5日"
    assert m.cdatetime(dt.datetime(2026, 3, 5, 6, 5, tzinfo=dt.UTC)) == "2026年3月5日 14:05"  # China time
    assert m.shown(["家访", None, "电话"]) == "家访、电话"
    assert m.label(None, "case_state") == "—"
    assert m.label("NOTICED", "case_state") == "返校通知已送达"
    assert m.label("no-such-code", "case_state") == "其他"
    assert m.field_label("issuer_id") == "签发机构" and m.field_label("attempts[0].date") == "填写项"


def test_each_form_and_variant_title_is_distinct():
    titles = {}
    for spec in all_specs().values():
        for v in spec.variants or [None]:
            title = m.form_title(spec.code, v.code if v else None)
            assert title not in titles, (title, titles.get(title), spec.code, v)
            titles[title] = (spec.code, v.code if v else None)
    assert m.form_title("responsibility", "R-ES") == "控辍保学工作责任书（县教育局与学校）"
    assert m.form_title("responsibility", "R-CT") == "控辍保学工作目标责任书"
    assert m.form_title("guardian_notice", "xianqi") == "限期返校通知书"


def test_tick_boxes_read_from_a_scan_are_told_in_words():
    """What a scan reader saw in a field's boxes (``男:ticked,女:empty``) reads as 勾选“男”, never
    as codes: on the document page's returns and in the review queue."""
    from web.pages import shown_value

    spec = all_specs()["dropout_report"]
    assert shown_value(spec, "student_sex", "男:ticked,女:empty") == "勾选“男”"
    assert shown_value(spec, "send_to", "township:empty,education:empty") == "未见勾选"
    text = shown_value(spec, "whereabouts", "home:ticked,working:ambiguous,with_parents:empty,missing:empty,"
                                            "other:empty")
    assert text.startswith("勾选“") and "；看不清：“" in text and "home" not in text and "working" not in text
    assert shown_value(spec, "poverty_category", "jdlk") != "jdlk"  # a plain code still gets its label
