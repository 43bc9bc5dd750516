"""Validation of the form specs: samples pass, every kind of bad input names its field, cross-field
checks, the legal citation and clause libraries, and the layout contract the template builder
and the parsers rely on."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest

from forms import clauses, legal
from forms import layout as L
from forms.errors import NotFound, ValidationFailed
from forms.registry import all_specs, get_spec
from forms.spec import Field, Filled, Kind, clean_value, format_value, read_value
from forms.specs import guardian_notice as gn
from forms.specs import responsibility as resp
from forms.validators import id_check_char, synthetic_id_number
from tests.samples_data import all_samples, sample_input

SAMPLES = list(all_samples())
IDS = [label for _f, _v, label, _d in SAMPLES]


def _validate(form: str, variant: str | None, data: dict, **kw) -> dict:
    spec = get_spec(form)
    return spec.validate(data, spec.variant(variant), **kw)


def _errors(form: str, variant: str | None, data: dict, **kw) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc:
        _validate(form, variant, data, **kw)
    assert exc.value.http_status == 422
    assert exc.value.to_dict()["fields"] == exc.value.fields
    return exc.value.fields


def _bad_checksum(idn: str) -> str:
    wrong = next(c for c in "0123456789X" if c != id_check_char(idn[:17]))
    return idn[:17] + wrong


# ---- samples --------------------------------------------------------------------------------------

def test_all_forms_registered():
    assert {"dropout_report", "guardian_notice", "responsibility", "handover"} <= set(all_specs())
    assert [v.code for v in get_spec("guardian_notice").variants] == ["xianqi", "quanfan", "dunfan", "zeling"]
    assert [v.code for v in get_spec("responsibility").variants] == [
        "R-CT", "R-CD", "R-ES", "R-HO", "R-TV", "R-VG", "R-ST", "R-SP"]


def test_samples_cover_every_form_and_variant():
    covered = {(f, v) for f, v, _l, _d in SAMPLES}
    for spec in all_specs().values():
        for variant in spec.variants or (None,):
            assert (spec.code, variant.code if variant else None) in covered
    assert sorted(len(d["pupils"]) for f, _v, _l, d in SAMPLES if f == "handover") == [6, 45]


@pytest.mark.parametrize("form", ["dropout_report", "guardian_notice", "responsibility", "handover"])
def test_samples_fill_every_field_and_column(form):
    """Across a form's variant samples every field (and every table column) has a value."""
    spec = get_spec(form)
    seen: set[str] = set()
    for f, v, _label, data in all_samples(signatures=True):
        if f != form:
            continue
        cleaned = spec.validate(data, spec.variant(v))
        for name, value in cleaned.items():
            if spec.field(name).kind == Kind.TABLE:
                for r in value:
                    seen |= {f"{name}[].{k}" for k, x in r.items() if x not in (None, "", [])}
            elif value not in (None, "", []):
                seen.add(name)
    expected = {path for path, f in spec.walk() if f.kind != Kind.TABLE or not f.columns}
    expected |= {f.name for f in spec.fields if f.kind == Kind.TABLE}
    missing = expected - seen - {f.name for f in spec.fields if f.kind == Kind.TABLE}
    assert not missing, missing


@pytest.mark.parametrize(("form", "variant", "label", "data"), SAMPLES, ids=IDS)
def test_sample_validates_and_builds_context(form, variant, label, data):
    spec = get_spec(form)
    v = spec.variant(variant)
    cleaned = spec.validate(data, v)
    ctx = spec.context(cleaned, v)
    # every non-table field of the sample was kept and prints as a string
    for name, value in data.items():
        f = spec.field(name)
        if f.kind == Kind.TABLE:
            assert len(ctx["rows"][name]) == max(len(value), f.min_rows)
            assert ctx["rows"][name][0]["_no"] == "1"
        else:
            assert isinstance(ctx["f"][name], str)
            assert cleaned[name] is not None
    assert ctx["form"]["title"] == (v.title if v else spec.title)


@pytest.mark.parametrize(("form", "variant", "label", "data"), SAMPLES, ids=IDS)
def test_sample_without_hand_fields_and_with_signatures(form, variant, label, data):
    hand_less = sample_input(form, variant, hand=False, pupils=len(data.get("pupils") or [1]))
    _validate(form, variant, hand_less)
    full = sample_input(form, variant, signatures=True, pupils=len(data.get("pupils") or [1]))
    cleaned = _validate(form, variant, full)
    spec = get_spec(form)
    for f in spec.fields:
        if f.kind in (Kind.SIGNATURE, Kind.SEAL) and f.name in full:
            assert cleaned[f.name] is True


@pytest.mark.parametrize(("form", "variant", "label", "data"), SAMPLES, ids=IDS)
def test_printed_values_read_back(form, variant, label, data):
    """format_value -> read_value -> clean_value gives the value back for every printed field
    (masked IDs and signature/seal zones excepted), table cells included."""
    spec = get_spec(form)
    cleaned = spec.validate(data, spec.variant(variant))

    def check(f: Field, value, path: str):
        if value is None or f.kind in (Kind.SIGNATURE, Kind.SEAL) or f.mask_on_print:
            return
        printed = format_value(f, value)
        raw = read_value(f, printed)
        back = clean_value(f, raw, required=False, errors={}, path=path, stage="returned")
        if f.kind == Kind.TEXT:  # multi-line text (statute 款) reads back on one line
            assert back == (re.sub(r"\s+", " ", value) if value else None), path
        elif f.kind == Kind.MULTI:
            assert sorted(back or []) == sorted(value or []), path  # printed in code-list order
        else:
            assert back == value, path

    for f in spec.fields:
        if f.kind == Kind.TABLE:
            for i, r in enumerate(cleaned[f.name]):
                for c in f.columns:
                    check(c, r.get(c.name), f"{f.name}[{i}].{c.name}")
        else:
            check(f, cleaned.get(f.name), f.name)


# ---- the layout contract (builder + parsers) ----------------------------------------------------

PORTRAIT_MM = 210 - L.MARGINS_MM["left"] - L.MARGINS_MM["right"]
LANDSCAPE_MAX_MM = 297 - 2 * 15


def _layouts():
    for spec in all_specs().values():
        for variant in spec.variants or (None,):
            yield spec, variant, spec.parts(variant)


@pytest.mark.parametrize(("spec", "variant", "parts"), list(_layouts()),
                         ids=[f"{s.code}-{v.code if v else ''}" for s, v, _p in _layouts()])
def test_layout_contract(spec, variant, parts):
    names = {f.name for f in spec.fields}
    for part in parts:
        labels: list[str] = []
        limit = LANDSCAPE_MAX_MM if part.landscape else PORTRAIT_MM
        for block in part.blocks:
            if isinstance(block, L.Grid):
                assert abs(sum(block.widths) - limit) < 0.5 or sum(block.widths) <= limit
                for r in block.rows:
                    assert sum(c.span for c in r) == len(block.widths), (part.key, r)
                    for i, cell in enumerate(r):
                        if isinstance(cell, L.Value):
                            assert cell.field in names
                            assert i > 0 and isinstance(r[i - 1], L.Label), (part.key, cell)
                        else:
                            labels.append(cell.text)
            elif isinstance(block, L.Rows):
                f = spec.field(block.field)
                assert f.kind == Kind.TABLE
                cols = block.columns or tuple(c.name for c in f.columns)
                for c in cols:
                    f.column(c)
                assert len(block.widths) == len(cols) + (1 if block.number_column else 0)
                assert sum(block.widths) <= limit + 0.5
            elif isinstance(block, (L.Para, L.Title)):
                assert "}{" not in block.text, block.text  # placeholders never adjacent
                for name in L.placeholders(block.text):
                    if name.startswith("variant."):
                        key = name.split(".", 1)[1]
                        assert variant is not None and (key in variant.data or key in ("title", "code"))
                    else:
                        assert name in names, name
        assert len(labels) == len(set(labels)), f"duplicate labels in {spec.code}/{part.key}"


def test_template_keys():
    g = get_spec("guardian_notice")
    assert g.template_name(g.variant("zeling")) == "guardian_notice-countersigned.docx"
    assert {g.template_name(g.variant(c)) for c in ("xianqi", "quanfan", "dunfan")} == {"guardian_notice.docx"}
    r = get_spec("responsibility")
    assert r.template_name(r.variant("R-HO")) == "responsibility-three_party.docx"
    assert r.template_name(r.variant("R-CT")) == "responsibility.docx"
    assert r.template_name(r.variant("R-SP")) == "responsibility-parent.docx"
    assert [p.name for p in g.parts(g.variant("xianqi"))] == ["存根", "正本", "送达回证"]
    assert get_spec("handover").parts(None)[0].landscape is True


def test_notice_parts_share_the_number_and_zeling_has_countersign_zone():
    g = get_spec("guardian_notice")
    for code in ("xianqi", "zeling"):
        parts = g.parts(g.variant(code))
        for part in parts:
            fields = {name for _b, name in L.iter_values(part)}
            assert "doc_number" in fields, part.key
        original = {name for _b, name in L.iter_values(parts[1])}
        assert ("countersign_seal" in original) == (code == "zeling")
    receipt = {name for _b, name in L.iter_values(g.parts(g.variant("xianqi"))[2])}
    assert {"receipt_number", "service_method", "refusal_reason", "witness_signature",
            "server_signature_1", "proxy_name"} <= receipt


# ---- field validation: each kind of bad input names its field -------------------------------------

def test_bad_inputs_each_name_the_field():
    data = sample_input("guardian_notice", "xianqi")
    data["student_id_number"] = _bad_checksum(data["student_id_number"])
    data["contact_phone"] = "12345"
    data["absent_since"] = "2025年13月40日"
    data["grade"] = "10"
    data["guardian_name"] = ""
    data["helper_name"] = "Tom"
    data["persuasion_count"] = "三次"
    data["no_such_field"] = "x"
    errs = _errors("guardian_notice", "xianqi", data)
    assert "校验码" in errs["student_id_number"]
    assert "电话号码" in errs["contact_phone"]
    assert "日期" in errs["absent_since"]
    assert "应为以下之一" in errs["grade"]
    assert errs["guardian_name"] == "必填"
    assert "汉字" in errs["helper_name"]
    assert errs["persuasion_count"] == "应为整数"
    assert "没有此字段" in errs["no_such_field"]
    assert len(errs) == 8


def test_bad_table_cells_name_row_and_column():
    data = sample_input("handover", pupils=6)
    data["pupils"][3]["xueji_no"] = "X123"
    data["pupils"][4]["guardian_phone"] = "0373"
    data["pupils"][5]["special_groups"] = ["G01", "G99"]
    data["pupils"][2]["id_number"] = _bad_checksum(data["pupils"][2]["id_number"])
    data["pupils"][1]["extra"] = 1
    errs = _errors("handover", None, data)
    assert "19位" in errs["pupils[3].xueji_no"]
    assert "pupils[4].guardian_phone" in errs
    assert "G99" in errs["pupils[5].special_groups"]
    assert "校验码" in errs["pupils[2].id_number"]
    assert errs["pupils[1].extra"] == "此表没有该列"


def test_required_table_and_row_limits():
    data = sample_input("handover", pupils=6)
    data["pupils"] = []
    data["expected_count"] = 0
    assert "至少需要1行" in _errors("handover", None, data)["pupils"]
    big = sample_input("handover", pupils=121)
    assert _errors("handover", None, big)["pupils"] == "最多120行"


def test_nothing_required_when_returned():
    assert _validate("guardian_notice", "xianqi", {}, stage="returned")["guardian_name"] is None


def test_unknown_variant_is_rejected():
    spec = get_spec("guardian_notice")
    with pytest.raises(ValidationFailed) as exc:
        spec.variant("fakuan")
    assert "xianqi" in exc.value.fields["variant"]


# ---- guardian notice cross-field checks -------------------------------------------------------

def test_notice_id_masked_on_print_and_deadline_blank_when_unknown():
    spec = get_spec("guardian_notice")
    v = spec.variant("xianqi")
    data = sample_input("guardian_notice", "xianqi", hand=False)
    assert "return_deadline_date" not in data
    ctx = spec.context(spec.validate(data, v), v)
    idn = data["student_id_number"]
    assert ctx["f"]["student_id_number"] == idn[:6] + "*" * 8 + idn[-4:]
    assert ctx["f"]["return_deadline_date"] == ""
    assert ctx["f"]["return_deadline_days"] == "5"
    assert ctx["variant"]["demand"].startswith("根据")


def test_notice_deadline_date_printed_when_known():
    spec = get_spec("guardian_notice")
    v = spec.variant("xianqi")
    data = sample_input("guardian_notice", "xianqi")
    ctx = spec.context(spec.validate(data, v), v)
    # served Sat 2025-09-27; working days 9-28 (调休 Sunday), 9-29, 9-30, then after the
    # National Day holiday 10-9 and 10-10
    assert data["service_time"] == dt.datetime(2025, 9, 27, 9, 30)
    assert ctx["f"]["return_deadline_date"] == "2025年10月10日"


def test_notice_sex_must_match_id():
    data = sample_input("guardian_notice", "dunfan")
    data["student_sex"] = "女"
    assert "第17位" in _errors("guardian_notice", "dunfan", data)["student_sex"]


def test_notice_dates_ordered():
    data = sample_input("guardian_notice", "xianqi")
    data["return_deadline_date"] = data["service_time"].date()
    data["absent_since"] = data["issue_date"] + dt.timedelta(days=1)
    data["recipient_signed_on"] = data["issue_date"] - dt.timedelta(days=1)
    errs = _errors("guardian_notice", "xianqi", data)
    assert "送达" in errs["return_deadline_date"]
    assert "发文日期" in errs["absent_since"]
    assert "recipient_signed_on" in errs


def test_notice_left_service_needs_reason_and_witness():
    data = sample_input("guardian_notice", "zeling")
    assert data["service_method"] == "left"
    del data["refusal_reason"], data["witness_name"]
    errs = _errors("guardian_notice", "zeling", data)
    assert set(errs) == {"refusal_reason", "witness_name"}
    assert "拒收事由" in errs["refusal_reason"]


def test_notice_proxy_needs_relationship_and_methods_agree():
    data = sample_input("guardian_notice", "quanfan")
    del data["proxy_relation"]
    data["stub_service_method"] = "post"
    errs = _errors("guardian_notice", "quanfan", data)
    assert set(errs) == {"proxy_relation", "stub_service_method"}


def test_notice_countersign_only_for_zeling():
    data = sample_input("guardian_notice", "zeling")
    del data["countersigner_name"]
    assert "司法所" in _errors("guardian_notice", "zeling", data)["countersigner_name"]
    data = sample_input("guardian_notice", "xianqi")
    data["countersigner_name"] = "城关司法所"
    assert "countersigner_name" in _errors("guardian_notice", "xianqi", data)


def test_notice_deadline_days_range():
    data = sample_input("guardian_notice", "dunfan")
    data["return_deadline_days"] = 0
    assert "1-30" in _errors("guardian_notice", "dunfan", data)["return_deadline_days"]


def test_notice_legal_rows_must_match_library():
    data = sample_input("guardian_notice", "xianqi")
    data["legal_basis"][0]["sha256"] = "0" * 64
    data["legal_basis"][1]["version"] = "1986"
    data["legal_basis"][2]["text"] = "篡改后的条文"
    errs = _errors("guardian_notice", "xianqi", data)
    assert set(errs) == {"legal_basis[0].sha256", "legal_basis[1].article", "legal_basis[2].text"}
    # rows read back from paper carry no law_id and are not checked against the library
    data = sample_input("guardian_notice", "xianqi")
    data["legal_basis"] = [{"law": r["law"], "article": r["article"], "text": "OCR文本"}
                           for r in data["legal_basis"]]
    _validate("guardian_notice", "xianqi", data)


def test_receipt_complete_rule():
    cleaned = _validate("guardian_notice", "xianqi", sample_input("guardian_notice", "xianqi",
                                                                   signatures=True))
    assert gn.receipt_complete(cleaned) == (True, [])
    unsigned = dict(cleaned, recipient_signature=None, recipient_signed_on=None)
    assert gn.receipt_complete(unsigned) == (False, ["recipient_signature", "recipient_signed_on"])
    left = _validate("guardian_notice", "zeling", sample_input("guardian_notice", "zeling",
                                                                signatures=True))
    assert gn.receipt_complete(left) == (True, [])
    ok, missing = gn.receipt_complete(dict(left, witness_signature=None, server_signature_1=None,
                                           server_signature_2=None))
    assert not ok and missing == ["server_signature_1", "witness_signature"]
    proxy = _validate("guardian_notice", "quanfan", sample_input("guardian_notice", "quanfan",
                                                                  signatures=True))
    assert gn.receipt_complete(proxy) == (True, [])
    assert gn.receipt_complete(dict(proxy, proxy_signature=None))[1] == ["proxy_signature"]
    blank = _validate("guardian_notice", "xianqi", sample_input("guardian_notice", "xianqi", hand=False))
    ok, missing = gn.receipt_complete(blank)
    assert not ok and missing[:3] == ["service_time", "service_method", "server_signature_1"]


# ---- legal citation library ---------------------------------------------------------------------

def test_citations_pick_version_in_force():
    before = legal.citations_for("xianqi", dt.date(2021, 5, 31))
    after = legal.citations_for("xianqi", dt.date(2021, 6, 1))
    old = next(c for c in before if c.key == "wcn.guardian_education")
    new = next(c for c in after if c.key == "wcn.guardian_education")
    assert (old.article, old.version) == ("第十三条", "2012修正")
    assert (new.article, new.version) == ("第十六条第（五）项", "2020修订")
    assert [c.article for c in after if c.law_id == "yiwu_jiaoyu_fa"] == [
        "第二条", "第四条", "第五条第二款", "第十一条", "第十三条", "第五十八条"]


def test_citations_by_variant_reason_and_law_start():
    zeling_2021 = {c.key for c in legal.citations_for("zeling", dt.date(2021, 12, 31))}
    zeling_2022 = {c.key for c in legal.citations_for("zeling", dt.date(2022, 1, 1))}
    assert "jtjy.a49" not in zeling_2021 and "jtjy.a49" in zeling_2022
    assert "wcn.a118" in zeling_2022
    quanfan = {c.key for c in legal.citations_for("quanfan", dt.date(2025, 9, 1))}
    assert "wcn.a83" in quanfan and "yjf.a13" not in quanfan
    working = [c.article for c in legal.citations_for("dunfan", dt.date(2025, 9, 1), reason="R02")]
    assert "第十四条" in working and "第五十九条" in working
    assert any(c.law_id == "jinzhi_shiyong_tonggong_guiding"
               for c in legal.citations_for("dunfan", dt.date(2025, 9, 1), reason="R02"))


def test_citation_hash_and_row():
    c = next(c for c in legal.citations_for("xianqi", dt.date(2025, 1, 1)) if c.key == "yjf.a58")
    assert c.article == "第五十八条"
    import hashlib
    assert c.sha256 == hashlib.sha256(c.text.encode()).hexdigest()
    assert c.as_row() == {"law": "《中华人民共和国义务教育法》(2018修正)", "article": "第五十八条",
                          "text": c.text, "law_id": "yiwu_jiaoyu_fa", "version": "2018修正",
                          "sha256": c.sha256}
    assert "责令限期改正" in c.text


def test_citations_errors():
    with pytest.raises(NotFound):
        legal.citations_for("fakuan", dt.date(2025, 1, 1))
    with pytest.raises(NotFound) as exc:
        legal.citations_for("xianqi", dt.date(2017, 1, 1))  # library has no pre-2018 text
    assert "legal_texts.json" in exc.value.message


def test_legal_library_from_file(tmp_path):
    raw = json.loads(legal.LEGAL_TEXTS_PATH.read_text(encoding="utf-8"))
    raw["entries"] = [e for e in raw["entries"] if e["key"] == "yjf.a58"]
    raw["entries"].append(dict(raw["entries"][0], id="yjf-2030-a58", version="2030修正",
                               effective_from="2030-01-01", text="新条文"))
    path = tmp_path / "legal.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    lib = legal.load_library(path)
    assert [c.version for c in legal.citations_for("xianqi", dt.date(2029, 12, 31), library=lib)] == ["2018修正"]
    assert [c.text for c in legal.citations_for("xianqi", dt.date(2030, 1, 1), library=lib)] == ["新条文"]
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(legal.LegalLibraryError):
        legal.load_library(bad)


# ---- 责任书 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [v.code for v in get_spec("responsibility").variants])
def test_clause_library_per_variant(variant):
    rows = clauses.clauses_for(variant)
    sections = {r["section"] for r in rows}
    assert len([r for r in rows if r["section"] in ("乙方职责", "丙方职责")]) >= 3
    assert {"报告制度", "考核问责"} <= sections
    assert all(len(r["text"]) >= 20 and r["text"].endswith("。") for r in rows)
    assert len({r["clause_id"] for r in rows}) == len(rows)
    assert clauses.targets_for(variant)
    copies = clauses.copies_for(variant)
    if variant == "R-HO":
        assert copies.startswith("本责任书一式三份，甲乙丙三方各执一份")
    else:
        assert "一式两份，甲乙双方各执一份" in copies
    defaults = resp.agreement_defaults(variant)
    assert defaults["clauses"] == rows and defaults["copies_note"] == copies


def test_clause_library_accountability_terms():
    texts = " ".join(r["text"] for r in clauses.clauses_for("R-CT"))
    assert "一票否决" in texts and "约谈" in texts
    assert "问责" in " ".join(r["text"] for r in clauses.clauses_for("R-CD"))
    with pytest.raises(NotFound):
        clauses.clauses_for("R-XX")


def test_responsibility_three_party_rules():
    data = sample_input("responsibility", "R-HO")
    del data["party_c_name"], data["party_c_person"]
    errs = _errors("responsibility", "R-HO", data)
    assert set(errs) == {"party_c_name", "party_c_person"}
    data = sample_input("responsibility", "R-CT")
    data["party_c_name"] = "某某中学"
    assert "丙方应为空" in _errors("responsibility", "R-CT", data)["party_c_name"]


def test_responsibility_period_year_and_parties():
    data = sample_input("responsibility", "R-ES")
    data["validity_to"] = data["validity_from"]
    data["school_year"] = "2025-2027学年"
    data["party_b_name"] = data["party_a_name"]
    del data["party_b_person"]
    errs = _errors("responsibility", "R-ES", data)
    assert set(errs) == {"validity_to", "sign_date", "school_year", "party_b_name", "party_b_person"}


def test_responsibility_parent_and_person_variants():
    data = sample_input("responsibility", "R-SP")
    del data["student_name"]
    assert "学生姓名" in _errors("responsibility", "R-SP", data)["student_name"]
    data = sample_input("responsibility", "R-ST")
    data["party_b_name"] = "李老师(班主任)"
    assert "姓名" in _errors("responsibility", "R-ST", data)["party_b_name"]
    data = sample_input("responsibility", "R-ES")
    data["student_name"] = "王浩然"
    assert "student_name" in _errors("responsibility", "R-ES", data)


def test_responsibility_terms():
    data = sample_input("responsibility", "R-CT")
    data["clauses"] = []
    data["targets"][0]["target"] = "≥120%"
    data["targets"][1]["target"] = "99.555%"
    errs = _errors("responsibility", "R-CT", data)
    assert set(errs) == {"clauses", "targets[0].target", "targets[1].target"}
    data = sample_input("responsibility", "R-CT")
    gross = next(i for i, t in enumerate(data["targets"]) if "毛入学率" in t["indicator"])
    data["targets"][gross]["target"] = "≥102%"
    _validate("responsibility", "R-CT", data)
    data["targets"][gross]["indicator"] = ""
    assert _errors("responsibility", "R-CT", data) == {f"targets[{gross}].indicator": "必填"}


# ---- 交接表 --------------------------------------------------------------------------------------

def test_handover_row_identity_checks():
    data = sample_input("handover", pupils=6)
    p = data["pupils"]
    p[1]["sex"] = "男" if p[1]["sex"] == "女" else "女"
    p[2]["birth_date"] = p[2]["birth_date"] + dt.timedelta(days=1)
    other = synthetic_id_number("410781", dt.date(2013, 2, 2), 99)
    p[4]["xueji_no"] = "G" + other
    errs = _errors("handover", None, data)
    assert "第17位" in errs["pupils[1].sex"]
    assert "第7-14位" in errs["pupils[2].birth_date"]
    assert "G字头" in errs["pupils[4].xueji_no"]
    assert len(errs) == 3


def test_handover_header_counts_must_match_rows():
    data = sample_input("handover")
    data["expected_count"] = 44
    data["g01_count"] += 1
    data["left_behind_count"] = 0
    data["arrived_count"] += 1
    errs = _errors("handover", None, data)
    assert "45" in errs["expected_count"]
    assert set(errs) == {"expected_count", "g01_count", "left_behind_count", "arrived_count",
                         "not_arrived_count"}


def test_handover_row_checks():
    data = sample_input("handover", pupils=6)
    p = data["pupils"]
    p[5]["id_number"] = p[0]["id_number"]
    p[5].update(sex=p[0]["sex"], birth_date=p[0]["birth_date"], xueji_no=p[0]["xueji_no"])
    p[1].update(registered=False, whereabouts=None, registered_on=None)
    p[2]["hukou_code"] = "41078"
    p[3]["registered_on"] = dt.date(2025, 7, 1)
    data["to_school_code"] = data["from_school_code"]
    data["arrived_count"] -= 1
    data["not_arrived_count"] += 1
    errs = _errors("handover", None, data)
    assert "第1行" in errs["pupils[5].id_number"]
    assert "去向" in errs["pupils[1].whereabouts"]
    assert "pupils[2].hukou_code" in errs
    assert "移交日期" in errs["pupils[3].registered_on"]
    assert "to_school_code" in errs
    assert len(errs) == 5


def test_handover_compact_cells():
    spec = get_spec("handover")
    data = sample_input("handover")
    ctx = spec.context(spec.validate(data), None)
    rows = ctx["rows"]["pupils"]
    assert len(rows) == 45 and rows[-1]["_no"] == "45"
    assert rows[0]["special_groups"] == "G01"
    assert rows[0]["registered"] == "☑"
    assert rows[12]["registered"] == "✗" and rows[12]["whereabouts"] == "转外地就读"
    assert rows[0]["id_number"] == data["pupils"][0]["id_number"]  # internal table: not masked
    blank = spec.context(spec.validate(sample_input("handover", hand=False, pupils=6)), None)
    assert {r["registered"] for r in blank["rows"]["pupils"]} == {"☐"}


def test_compact_read_value_inverse():
    multi = Field("g", "特殊群体", Kind.MULTI, choices=get_spec("handover").field("pupils")
                  .column("special_groups").choices, compact=True)
    assert read_value(multi, "G01,G03") == ["G01", "G03"]
    assert read_value(multi, "") is None
    flag = Field("b", "报到", Kind.BOOL, compact=True, filled=Filled.HAND)
    assert [read_value(flag, t) for t in ("☑", "√", "✗", "×", "☐", "")] == [True, True, False, False,
                                                                            None, None]
    sex = get_spec("handover").field("pupils").column("sex")
    assert format_value(sex, "女") == "女" and read_value(sex, " 女 ") == "女"
    normal = Field("b", "是否", Kind.BOOL)
    assert format_value(normal, True) == "☑是 ☐否"


def test_samples_are_fresh_copies():
    a = sample_input("handover", pupils=6)
    b = copy.deepcopy(a)
    a["pupils"][0]["name"] = "改动"
    assert sample_input("handover", pupils=6) == b


# ---- character boxes for handwritten numbers (DOMAIN §5.6.2) ----------------------------------------

def test_hand_dates_and_phones_print_as_character_boxes_when_blank():
    spec = get_spec("guardian_notice")
    f = spec.field("recipient_signed_on")
    assert f.hand_boxes and f.box_pattern() == "□□□□年□□月□□日" and f.box_groups() == (4, 2, 2)
    phone = get_spec("referral_letter").field("reply_phone")
    assert phone.box_pattern() == "□" * 11 and phone.box_groups() == (11,)
    # INPUT fields with ``boxes`` are typed before printing: never boxes
    assert not spec.field("issue_date").hand_boxes
    data = sample_input("guardian_notice", "xianqi", hand=False)
    ctx = spec.context(spec.validate(data, spec.variant("xianqi")), spec.variant("xianqi"))
    assert ctx["f"]["recipient_signed_on"] == "□□□□年□□月□□日"
    assert ctx["f"]["stub_service_date"] == "□□□□年□□月□□日"
    assert ctx["f"]["issue_date"] == "2025年9月26日"
    assert ctx["f"]["recipient_name"] == ""  # a name is written freely, not in boxes
    # a date already known when printed prints as a date
    filled = dict(data, recipient_signed_on="2025-09-28", service_time="2025-09-28 10:00",
                  service_method="direct", recipient_name=data["guardian_name"])
    ctx = spec.context(spec.validate(filled, spec.variant("xianqi")), spec.variant("xianqi"))
    assert ctx["f"]["recipient_signed_on"] == "2025年9月28日"


def test_unwritten_boxes_read_back_blank_and_typed_values_are_taken_from_among_them():
    from forms.spec import is_blank, without_box_pattern

    f = get_spec("dropout_report").field("township_received_on")
    assert is_blank("□□□□年□□月□□日") and is_blank(" □□□□□□□□□□□ ")
    assert not is_blank("2025年□□月□□日") and not is_blank("年月日")
    assert read_value(f, "□□□□年□□月□□日") is None
    # a value typed over the boxes in a PDF editor comes out interleaved with them
    assert read_value(f, "□202□5-0□9-26□年□□月□□日") == "2025-09-26"
    assert clean_value(f, read_value(f, "□202□5-0□9-26□年□□月□□日"), required=False, errors={},
                       path=f.name) == dt.date(2025, 9, 26)
    # digits typed into the boxes of the DOCX (the boxes replaced)
    typed = read_value(f, "2025年09月26日")
    assert clean_value(f, typed, required=False, errors={}, path=f.name) == dt.date(2025, 9, 26)
    # half the boxes left: the printed blank is not all there, the text is kept and fails as a date
    assert without_box_pattern(f, "2025年□□月□□日") == "2025年□□月□□日"
    with pytest.raises(ValueError):
        clean_value(f, read_value(f, "2025年□□月□□日"), required=False, errors={}, path=f.name)


def test_a_datetime_is_read_back_in_every_form_a_person_or_client_writes():
    import datetime as dt

    from forms.validators import parse_datetime
    want = dt.datetime(2026, 12, 3, 10, 0)
    for text in ("2026-12-03T10:00:00", "2026-12-03T10:00", "2026-12-03 10:00", "2026年12月3日10时00分",
                 "2026年12月3日 10:00"):
        assert parse_datetime(text) == want, text
    with pytest.raises(ValueError):
        parse_datetime("2026-12-03T10:00:30")  # seconds other than :00 are not a time on a form


def test_the_review_queue_offers_a_date_to_correct_in_the_form_it_accepts_back():
    from forms.registry import get_spec
    from forms.spec import Kind
    from forms.validators import parse_date, parse_datetime
    from web.pages_returns import _editable

    dt_field = next(f for _, f in get_spec("guardian_notice").walk() if f.kind == Kind.DATETIME)
    d_field = next(f for _, f in get_spec("dropout_report").walk() if f.kind == Kind.DATE)
    assert _editable(dt_field, "2026-12-03T10:00:00") == "2026年12月3日10时00分"
    assert _editable(d_field, "2026-10-11") == "2026年10月11日"
    assert _editable(d_field, "not a date") == "not a date"  # shown as read, the clerk corrects it
    assert _editable(d_field, None) == "" and _editable(None, True) == ""
    # what is offered is what the form takes back
    assert parse_datetime(_editable(dt_field, "2026-12-03T10:00:00")).hour == 10
    assert parse_date(_editable(d_field, "2026-10-11")).day == 11
