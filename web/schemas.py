"""Marshmallow schemas at the HTTP edge (and for the OpenAPI document).

Form data is validated by its FormSpec, not here; ``form_schema(spec)`` only *describes* a form's
fields for OpenAPI, generated from the spec so there is no second list of fields.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates

from forms import validators as v
from forms.spec import FormSpec, Kind


def _check(fn, value):
    try:
        return fn(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None


class OrgIn(Schema):
    parent_id = fields.Integer(allow_none=True)
    kind = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    code = fields.String(allow_none=True, validate=validate.Length(max=20))
    doc_prefix = fields.String(allow_none=True, validate=validate.Length(max=32))
    region_profile = fields.String(allow_none=True)


class OrgOut(Schema):
    id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    kind = fields.String()
    name = fields.String()
    code = fields.String(allow_none=True)
    doc_prefix = fields.String(allow_none=True)
    region_profile = fields.String(allow_none=True)
    path = fields.String()


class GuardianIn(Schema):
    name = fields.String(required=True)
    relation = fields.String(required=True, validate=validate.OneOf(["父", "母", "祖父母", "外祖父母", "其他"]))
    phone = fields.String(required=True)
    id_number = fields.String(allow_none=True)
    address = fields.String(allow_none=True)

    @validates("name")
    def _name(self, value, **_):
        _check(v.check_name, value)

    @validates("phone")
    def _phone(self, value, **_):
        _check(v.check_phone, value)

    @validates("id_number")
    def _idn(self, value, **_):
        if value:
            _check(v.check_id_number, value)


class PupilIn(Schema):
    org_id = fields.Integer(required=True, metadata={"description": "学籍所在学校"})
    class_id = fields.Integer(allow_none=True)
    name = fields.String(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(["男", "女"]))
    birth_date = fields.Date(required=True)
    id_number = fields.String(allow_none=True)
    xueji_no = fields.String(allow_none=True)
    ethnicity = fields.String(load_default="汉族")
    hukou_org_id = fields.Integer(allow_none=True)
    hukou_text = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    special_groups = fields.List(fields.String(), load_default=list)
    poverty_category = fields.String(allow_none=True)
    guardians = fields.List(fields.Nested(GuardianIn), load_default=list)

    @validates("name")
    def _name(self, value, **_):
        _check(v.check_name, value)

    @validates("id_number")
    def _idn(self, value, **_):
        if value:
            _check(v.check_id_number, value)

    @validates("xueji_no")
    def _xj(self, value, **_):
        if value:
            _check(v.check_xueji_no, value)


class GuardianOut(Schema):
    id = fields.Integer()
    name = fields.String()
    relation = fields.String()
    phone = fields.String(allow_none=True)


class PupilOut(Schema):
    id = fields.Integer()
    org_id = fields.Integer()
    school_name = fields.String(allow_none=True)
    class_id = fields.Integer(allow_none=True)
    class_name = fields.String(allow_none=True, metadata={"description": "班级名称，如“六(1)班”"})
    grade = fields.Integer(allow_none=True, metadata={"description": "年级 1–9"})
    grade_name = fields.String(allow_none=True, metadata={"description": "年级名称，如“六年级”"})
    name = fields.String()
    sex = fields.String()
    birth_date = fields.Date(allow_none=True)
    id_number = fields.String(allow_none=True, metadata={"description": "默认脱敏（前6后4）"})
    xueji_no = fields.String(allow_none=True)
    ethnicity = fields.String(allow_none=True)
    hukou_text = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    special_groups = fields.List(fields.String())
    poverty_category = fields.String(allow_none=True)
    guardians = fields.List(fields.Nested(GuardianOut))


class CaseIn(Schema):
    pupil_id = fields.Integer(required=True)
    reason_code = fields.String(allow_none=True)
    opened_on = fields.Date(allow_none=True)
    state = fields.String(allow_none=True, metadata={
        "description": "只能为 ABSENT（初始状态，可省略）；其他状态须经 /cases/<id>/actions 流转到达"})


class CaseOut(Schema):
    id = fields.Integer()
    number = fields.String()
    pupil_id = fields.Integer()
    org_id = fields.Integer()
    township_org_id = fields.Integer(allow_none=True)
    state = fields.String()
    reason_code = fields.String(allow_none=True)
    opened_on = fields.Date()
    episode = fields.Integer()
    relapse = fields.Boolean()
    profile = fields.String(allow_none=True)


class RenderIn(Schema):
    form = fields.String(required=True, metadata={"description": "表单代码，见 GET /forms"})
    variant = fields.String(allow_none=True)
    issuer_id = fields.Integer(required=True, metadata={"description": "签发机构（决定文号）"})
    case_id = fields.Integer(allow_none=True)
    data = fields.Dict(load_default=dict, metadata={"description": "表单字段，见 components.schemas.Form_*"})
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "docx"]))
    issued_on = fields.Date(allow_none=True)


class CaseRenderIn(Schema):
    form = fields.String(required=True)
    variant = fields.String(allow_none=True)
    issuer_id = fields.Integer(allow_none=True)
    data = fields.Dict(load_default=dict, metadata={"description": "覆盖或补充由案件预填的字段"})
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "docx"]))


class DocumentOut(Schema):
    id = fields.String()
    form = fields.String()
    variant = fields.String(allow_none=True)
    number = fields.String(allow_none=True)
    status = fields.String()
    void_reason = fields.String(allow_none=True)
    issuer_id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    template_version = fields.String()
    pages = fields.Integer(allow_none=True)
    docx_sha256 = fields.String(allow_none=True)
    pdf_sha256 = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    links = fields.Dict()


class VoidIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=2, max=500))


class ResponsibilityBatchIn(Schema):
    variant = fields.String(required=True)
    parent_org_id = fields.Integer(required=True, metadata={"description": "为其所有下级单位各生成一份"})
    issuer_id = fields.Integer(required=True)
    child_kind = fields.String(allow_none=True, metadata={"description": "只取此类下级，如 township、school"})
    data = fields.Dict(load_default=dict, metadata={"description": "各份共用的字段"})
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "docx"]))


class HandoverPlanItem(Schema):
    class_id = fields.Integer(required=True)
    receiving_school_id = fields.Integer(required=True)


class HandoverBatchIn(Schema):
    issuer_id = fields.Integer(required=True)
    plan = fields.List(fields.Nested(HandoverPlanItem), required=True, validate=validate.Length(min=1))
    data = fields.Dict(load_default=dict)
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "docx"]))


class JobOut(Schema):
    id = fields.String()
    kind = fields.String()
    status = fields.String()
    done = fields.Integer()
    total = fields.Integer()
    attempts = fields.Integer(metadata={"description": "runs started (a job whose worker died is run again)"})
    error = fields.String(allow_none=True)
    result_url = fields.String(allow_none=True)


ATTACH_VALUES = ["true", "false", "1", "0", "yes", "no", "on", "off"]


class UploadForm(Schema):
    class Meta:  # other form fields are ignored
        unknown = INCLUDE

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    org_id = fields.Integer(required=True)
    attach = fields.String(validate=validate.OneOf(ATTACH_VALUES),
                           metadata={"description": "true：不是本系统文书的文件作为附件保留（默认 false）"})


_KIND_FIELDS = {
    Kind.INT: lambda **kw: fields.Integer(**kw),
    Kind.DATE: lambda **kw: fields.Date(**kw),
    Kind.DATETIME: lambda **kw: fields.DateTime(**kw),
    Kind.BOOL: lambda **kw: fields.Boolean(**kw),
    Kind.SIGNATURE: lambda **kw: fields.Boolean(**kw),
    Kind.SEAL: lambda **kw: fields.Boolean(**kw),
}


def _field_for(f) -> fields.Field:
    meta = {"description": f"{f.label}（{f.filled.value}）" + (f"：{f.help}" if f.help else "")}
    kw = {"required": False, "allow_none": True, "metadata": meta}
    if f.kind == Kind.TABLE:
        inner = type(f"Row_{f.name}", (Schema,), {c.name: _field_for(c) for c in f.columns})
        return fields.List(fields.Nested(inner), **kw)
    if f.kind == Kind.CHOICE:
        return fields.String(validate=validate.OneOf([c.code for c in f.choices]), **kw)
    if f.kind == Kind.MULTI:
        return fields.List(fields.String(validate=validate.OneOf([c.code for c in f.choices])), **kw)
    return _KIND_FIELDS.get(f.kind, lambda **k: fields.String(**k))(**kw)


_FORM_SCHEMAS: dict[str, type[Schema]] = {}


def form_schema(spec: FormSpec) -> type[Schema]:
    """A Schema class describing ``spec``'s input fields, for the OpenAPI document."""
    if spec.code not in _FORM_SCHEMAS:
        attrs = {f.name: _field_for(f) for f in spec.fields}
        _FORM_SCHEMAS[spec.code] = type(f"Form_{spec.code}", (Schema,), attrs)
    return _FORM_SCHEMAS[spec.code]
