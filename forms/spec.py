"""A form is data: the ``FormSpec`` and its parts.

One spec per official form defines its fields (labels, kinds, validators), variants, numbering and
the printed layout (``forms.layout``). That single definition drives the template build, the
render context, input validation, the web/API schema and the parse-back of DOCX, PDF and scans.
Nothing else in the code base may keep a list of a form's fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from forms import validators as v
from forms.errors import ValidationFailed


class Kind(StrEnum):
    """How a value is typed, validated, printed and read back."""

    TEXT = "text"
    NAME = "name"
    DATE = "date"
    DATETIME = "datetime"
    INT = "int"
    ID_NUMBER = "id_number"
    XUEJI_NO = "xueji_no"
    PHONE = "phone"
    CHOICE = "choice"  # one code of ``choices``, printed as tick boxes
    MULTI = "multi"  # several codes of ``choices``, printed as tick boxes
    BOOL = "bool"  # printed as ☐是 ☐否
    SIGNATURE = "signature"  # a zone for a signature or fingerprint; value = presence (bool)
    SEAL = "seal"  # a zone for an official seal; value = presence (bool)
    TABLE = "table"  # repeating rows; ``columns`` are the row's fields


class Filled(StrEnum):
    """Who supplies a value."""

    INPUT = "input"  # the user, before rendering (required ones must be present to render)
    SYSTEM = "system"  # the service at render time (document number, issue date...)
    HAND = "hand"  # on paper after printing (receipts, service date, signatures); may be prefilled


NAME_MAX = 20  # forms.validators.check_name
_FORMATS = {
    "name": "汉字，可含间隔号“·”，1-20字",
    "date": "日期，如2025-09-03（也可写2025年9月3日、2025.9.3）",
    "datetime": "日期时间，如2025-09-03 10:30",
    "int": "非负整数",
    "id_number": "18位居民身份证号（GB 11643，末位为校验码）",
    "xueji_no": "19位全国学籍号（G/J/L开头）",
    "phone": "手机号（1开头11位）或座机（0开头区号-号码），多个号码用“、”分隔",
}
TICKED = "☑"
UNTICKED = "☐"
TICK_MARKS = "☑☒■✓✔√"
BOX_CHARS = TICK_MARKS + "☐□"
BLANK = "____"
# One printed character box of a handwritten number (DOMAIN §5.6.2: 18 for an ID number, 8 for a
# date, 11 for a mobile number), a digit written in each.
CHAR_BOX = "□"


@dataclass(frozen=True)
class Choice:
    code: str
    label: str


@dataclass(frozen=True)
class Field:
    """One field of a form. ``name`` is snake_case English; ``label`` is the printed Chinese label."""

    name: str
    label: str
    kind: Kind = Kind.TEXT
    required: bool = False
    filled: Filled = Filled.INPUT
    choices: tuple[Choice, ...] = ()
    columns: tuple[Field, ...] = ()
    min_rows: int = 0  # rows printed (blank ones for handwriting) and, when required, rows needed
    max_rows: int | None = None
    max_length: int | None = None
    mask_on_print: bool = False  # ID numbers on notices print as first 6 + last 4
    # Where a masked number must print in full (DOMAIN §8.4: a letter asking 公安 to find a child
    # needs the number it can search): ((field, (values...)), ...) — printed in full when one of
    # these fields holds one of its values, e.g. (("to_department", ("gongan",)),). Every such print
    # is written to the audit log by the service that issues the document.
    full_print_when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Character boxes printed, when the value is blank, for a value written by hand (DOMAIN
    # §5.6.2), one digit per box: see ``box_pattern``. Only HAND fields print them.
    boxes: int = 0
    # A NAME that is one of the case's people (pupil, guardians): a scan reading one character or
    # one sound off is proposed as that person (for review). Officials and witnesses are not.
    case_person: bool = False
    # Read from a scan, a person confirms it even when the reading is sure (DOMAIN §5.6 3(b): the
    # 送达 date and method, which start the return deadline).
    confirm: bool = False
    help: str = ""
    # Narrow table cells: CHOICE prints only the chosen label, MULTI the chosen codes joined by ",",
    # BOOL "☑" (yes) / "✗" (no) / "☐" (blank, to tick on paper). ``read_value`` is the inverse.
    compact: bool = False
    # A SYSTEM field holding a document number of its own numbering series, e.g. the 送达回证's
    # own number (DOMAIN §5.0.1): the series' abbreviation (送回). It has its own counter per issuer
    # and year, shared by every variant of the form, so no two documents print the same number.
    series: str = ""
    # Prefill: where the service finds this value in a case's facts, a dotted path of the facts'
    # own vocabulary (``cases.documents.prefill.case_facts``), e.g. "pupil.name", "guardian.phone",
    # "issuer.title". A TABLE's ``source`` names a list of rows; its columns' sources are read in
    # each row's facts. "a|b": the first of these found. No source: never filled from a case.
    source: str = ""
    # Prefilled when the case's facts give no value (e.g. the 报告单 always goes to both units).
    default: Any = None
    # A count column of a statistics form (the 统计表): what it counts, per 学段, for a node and a
    # period, from the case record (``Count``); several: their sum. Computed generically by
    # cases/ledgers (``quarterly_figures``), which names no column of the form.
    counts: tuple[Count, ...] = ()

    @property
    def hand_boxes(self) -> bool:
        """Printed as character boxes when blank (a HAND field with ``boxes``)."""
        return bool(self.boxes) and self.filled == Filled.HAND

    def box_pattern(self) -> str:
        """The printed blank of a ``hand_boxes`` field: one ``CHAR_BOX`` per digit, a date's
        boxes grouped as □□□□年□□月□□日."""
        if self.kind == Kind.DATE and self.boxes == 8:
            return f"{CHAR_BOX * 4}年{CHAR_BOX * 2}月{CHAR_BOX * 2}日"
        return CHAR_BOX * self.boxes

    def box_groups(self) -> tuple[int, ...]:
        """How the boxes group into numbers: (4, 2, 2) for a date, else one group."""
        return tuple(len(g) for g in re.findall(f"{CHAR_BOX}+", self.box_pattern()))

    def prints_full(self, data: Mapping[str, Any]) -> bool:
        """Whether this masked-on-print value prints in full in a document with ``data``."""
        return any(data.get(name) in values for name, values in self.full_print_when)

    def limits(self) -> dict[str, Any]:
        """What the validator accepts, for a form-filling client: ``max_length`` (characters) and
        ``format`` (in words), where the kind has them. Longer values are refused, never shrunk."""
        out: dict[str, Any] = {}
        if self.kind == Kind.NAME:
            out["max_length"] = min(self.max_length or NAME_MAX, NAME_MAX)
        elif self.max_length and self.kind == Kind.TEXT:
            out["max_length"] = self.max_length
        fmt = _FORMATS.get(self.kind)
        if fmt:
            out["format"] = fmt
        return out

    def choice_label(self, code: str) -> str:
        for c in self.choices:
            if c.code == code:
                return c.label
        raise KeyError(code)

    def code_for_label(self, label: str) -> str | None:
        norm = _norm(label)
        for c in self.choices:
            if _norm(c.label) == norm or c.code == label:
                return c.code
        return None

    def column(self, name: str) -> Field:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class Variant:
    """A variant of a form (e.g. 限期返校 vs 责令复学; 责任书 R-CT...). ``data`` is printed text."""

    code: str
    title: str
    number_abbr: str = ""  # e.g. 限返: 文号 = {org prefix}{abbr}〔{year}〕{seq}号
    data: Mapping[str, Any] = field(default_factory=dict)
    # Where this variant's documents go in the case dossier when it differs from the form's.
    dossier_item: int | None = None
    # Who issues this variant by default, when not the form's ``FormSpec.issuer``.
    issuer: str = ""


# What a returned copy of a form can do to its case (DOMAIN §5.6 item 4), each implemented once,
# generically, by cases/returns/apply.py: the action's parameters, each naming a field of the form.
EFFECT_ACTIONS: dict[str, tuple[str, ...]] = {
    # a notice was served: the service date (DATE/DATETIME) and method; starts the return deadline
    "service": ("served", "method"),
    # rows of a table ticked on arrival: per row, whether registered, when, and where to if not
    "registrations": ("registered", "registered_on", "whereabouts"),
    # a report signed for: the day each receiving unit ("township", "education") received it
    "receipts": ("township", "education"),
}


@dataclass(frozen=True)
class Effect:
    """What a returned copy of the form does to its case once no review item of it is open.

    ``action``: a key of ``EFFECT_ACTIONS``; ``args``: each parameter of the action -> the field
    path holding it (``table[].column`` for a value read per row). ``when_any``: the effect (and
    its ``complete`` rule) applies only when the returned pages hold one of these fields, e.g. the
    送达回证 part of a notice; empty: always. ``complete``: whether that returned part counts as
    evidence and what is missing (cleaned values -> (complete, missing field names)); default: every
    signature and seal zone on the returned pages present."""

    action: str
    args: Mapping[str, str] = field(default_factory=dict)
    when_any: tuple[str, ...] = ()
    complete: Callable[[Mapping[str, Any]], tuple[bool, list[str]]] | None = None

    def applies(self, paths: Iterable[str]) -> bool:
        """Whether a return holding values at ``paths`` is the part this effect reads."""
        return not self.when_any or any(p in self.when_any for p in paths)


# What a count column of a statistics form can count (``Count.of``), each implemented once,
# generically, by cases/ledgers/ledger.py over the case record of a node and a period; with the
# filters each kind accepts. Words of the case record only: states, transitions, closure outcomes
# (C1–C7), reason and special-group codes (forms.codes), placements, roles and variants of forms.
COUNT_KINDS: dict[str, tuple[str, ...]] = {
    # pupils on the roll at the period end
    "pupils": (),
    # cases that entered ``state`` inside the period, as they stand at its end
    "cases_entering": ("state", "at_end", "not_at_end", "reached", "not_reached", "min_attempts", "reason", "group"),
    # cases in scope whose state at the period end is one of ``at_end``
    "cases_at_end": ("at_end",),
    # state events inside the period: into one of ``into`` or by one of ``transitions``
    "transitions": ("into", "transitions", "placement", "outcome"),
    # documents of a form (by ``role``, ``variant``) issued for a case inside the period
    "documents": ("role", "variant"),
}


@dataclass(frozen=True)
class Count:
    """What one count column of a statistics form counts (see ``COUNT_KINDS``); every filter given
    must hold. ``state``: the state entered (``cases_entering``, default SUSPECTED); ``at_end`` /
    ``not_at_end`` / ``into``: states (a closure outcome code C1–C7 in ``at_end`` or ``not_at_end``
    stands for CLOSED with that outcome); ``reached`` / ``not_reached``: states entered (or not) by the period end;
    ``min_attempts``: persuasion attempts recorded by the period end; ``reason``: the case's
    dropout reason code; ``group``: a special-group code of the pupil (G01 also by poverty
    category); ``placement``: of a return; ``outcome``: closure outcome of a transition into
    CLOSED; ``role``/``variant``: of an issued document."""

    of: str
    state: str = "SUSPECTED"
    at_end: tuple[str, ...] = ()
    not_at_end: tuple[str, ...] = ()
    reached: tuple[str, ...] = ()
    not_reached: tuple[str, ...] = ()
    min_attempts: int = 0
    reason: str = ""
    group: str = ""
    into: tuple[str, ...] = ()
    transitions: tuple[str, ...] = ()
    placement: str = ""
    outcome: str = ""
    role: str = ""
    variant: str = ""

    def __post_init__(self) -> None:
        allowed = COUNT_KINDS.get(self.of)
        if allowed is None:
            raise ValueError(f"unknown count {self.of!r}")
        default = Count.__dataclass_fields__
        for name in default:
            if name != "of" and getattr(self, name) != default[name].default and name not in allowed:
                raise ValueError(f"count {self.of} has no filter {name!r}")
        if self.of == "documents" and self.role not in ROLES:
            raise ValueError(f"count documents: unknown role {self.role!r}")

    def filters(self) -> dict[str, Any]:
        """The filters set (name -> value), ``of`` left out."""
        default = Count.__dataclass_fields__
        return {n: getattr(self, n) for n in default if n != "of" and getattr(self, n) != default[n].default}


@dataclass(frozen=True)
class IssueContext:
    """What the service tells a spec's ``system_values`` when a document is issued."""

    issued_on: dt.date
    # a region-profile timer's length (e.g. "return_deadline" -> 5 working days)
    timer_length: Callable[[str], int]
    # when a region-profile timer started on a day falls due; None when the date may be wrong
    # (a holiday table missing), so it is never printed
    due: Callable[[str, dt.date], dt.date | None]


# Default issuers a spec may name (``FormSpec.issuer`` / ``Variant.issuer``), resolved from the
# case's school upwards by the service.
ISSUERS = ("school", "township", "education_bureau")

# What a form is for in the casework, so that cases/ finds the form it needs by its role
# (``forms.registry.spec_for``) and never writes a form's code. At most one form per role.
ROLES = {
    "report": "学生辍学报告单：学校报告乡镇与教育局",
    "notice": "致监护人的复学通知书（限期/劝返/责令）",
    "department_letter": "部门函件：请有关部门协助劝返",
    "class_list": "整班移交的学生交接表",
    "duty_agreement": "控辍保学目标责任书",
    "statistics": "控辍保学季度统计表",
}


Check = Callable[[dict, "Variant | None", Mapping[str, Any]], dict[str, str]]


@dataclass(frozen=True)
class FormSpec:
    """The single definition of one official form."""

    code: str
    title: str
    version: str
    fields: tuple[Field, ...]
    layout: Callable[[Variant | None], tuple] | tuple  # tuple[layout.Part, ...]
    variants: tuple[Variant, ...] = ()
    number_abbr: str = ""
    number_field: str = "doc_number"
    # The field holding the date of issue, where the form prints one (else the day it was issued).
    date_field: str = "issue_date"
    checks: tuple[Check, ...] = ()  # cross-field checks -> {field path: message}
    orientation: str = "portrait"
    description: str = ""
    # The item of the closed-loop case dossier (DOMAIN §8.3, 1–13) its documents belong to; None:
    # not part of a case dossier (or placed by the case state on the day it was issued).
    dossier_item: int | None = None
    # Who issues the form for a case by default (one of ``ISSUERS``; a variant may say otherwise).
    issuer: str = "township"
    # What a complete returned copy does to the case (see ``Effect``).
    effects: tuple[Effect, ...] = ()
    # The parts (``layout.Part.key``) a returned copy consists of, e.g. the 送达回证 of a notice:
    # every page the issued document printed for them must come back before the return is
    # complete (DOMAIN §5.6). Empty: every part.
    returned_parts: tuple[str, ...] = ()
    # What the form is for in the casework (one of ``ROLES``); cases/ looks forms up by it.
    role: str | None = None
    # SYSTEM values computed at issue from the data and ``IssueContext`` (legal-basis rows, the
    # return deadline...): (data, variant, context) -> {field: value}; blanks only are filled.
    system_values: Callable[[Mapping[str, Any], Variant | None, IssueContext], dict] | None = None

    def __post_init__(self) -> None:
        paths = dict(self.walk())
        for f in self.fields:
            if f.kind == Kind.TABLE and any(c.source for c in f.columns) and not f.source:
                raise ValueError(f"{self.code}.{f.name}: columns have sources but the table has none")
        for e in self.effects:
            params = EFFECT_ACTIONS.get(e.action)
            if params is None:
                raise ValueError(f"{self.code}: unknown effect {e.action!r}")
            for key, path in e.args.items():
                if key not in params:
                    raise ValueError(f"{self.code}: effect {e.action} has no parameter {key!r}")
                if path not in paths:
                    raise ValueError(f"{self.code}: effect {e.action}.{key} names no field {path!r}")
            for path in e.when_any:
                if path not in paths:
                    raise ValueError(f"{self.code}: effect {e.action} when_any names no field {path!r}")
        for path, f in self.walk():
            if f.counts and f.kind != Kind.INT:
                raise ValueError(f"{self.code}.{path}: a count column must be an INT")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"{self.code}: unknown role {self.role!r}")
        for who in (self.issuer, *(x.issuer for x in self.variants if x.issuer)):
            if who not in ISSUERS:
                raise ValueError(f"{self.code}: unknown issuer {who!r}")

    # ---- lookup ---------------------------------------------------------------------------
    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.code} has no field {name!r}")

    def variant(self, code: str | None) -> Variant | None:
        if not self.variants:
            if code:
                raise ValidationFailed(f"《{self.title}》没有变体", fields={"variant": f"未知变体“{code}”"})
            return None
        if code is None:
            raise ValidationFailed(f"《{self.title}》需要指定变体",
                                   fields={"variant": "可选：" + "、".join(x.code for x in self.variants)})
        for x in self.variants:
            if x.code == code:
                return x
        raise ValidationFailed(f"《{self.title}》没有变体“{code}”",
                               fields={"variant": "可选：" + "、".join(x.code for x in self.variants)})

    def parts(self, variant: Variant | None = None) -> tuple:
        return self.layout(variant) if callable(self.layout) else self.layout

    def template_name(self, variant: Variant | None = None) -> str:
        """File name of the docxtpl source under templates/forms/ (one per distinct layout)."""
        key = getattr(self.parts(variant), "template_key", None)
        return f"{self.code}-{key}.docx" if key else f"{self.code}.docx"

    def doc_title(self, variant: Variant | None) -> str:
        return variant.title if variant else self.title

    def dossier_item_of(self, variant: Variant | None) -> int | None:
        """The dossier item (DOMAIN §8.3) of a document of this form and variant."""
        return (variant.dossier_item if variant and variant.dossier_item else None) or self.dossier_item

    def abbr(self, variant: Variant | None) -> str:
        return (variant.number_abbr if variant and variant.number_abbr else "") or self.number_abbr

    # ---- validation -----------------------------------------------------------------------
    def validate(self, data: Mapping[str, Any], variant: Variant | None = None, *,
                 options: Mapping[str, Any] | None = None, stage: str = "render") -> dict:
        """Check and normalise ``data``; raise ValidationFailed naming every failing field.

        ``stage="render"``: required INPUT fields must be present; HAND fields may be blank.
        ``stage="returned"``: values read back from a returned form; nothing is required.
        Unknown keys are rejected so a typo never silently drops a value.
        """
        options = dict(options or {})
        errors: dict[str, str] = {}
        known = {f.name for f in self.fields}
        for key in data:
            if key not in known:
                errors[key] = f"《{self.title}》没有此字段"
        cleaned: dict[str, Any] = {}
        for f in self.fields:
            raw = data.get(f.name)
            need = stage == "render" and f.required and f.filled == Filled.INPUT
            try:
                cleaned[f.name] = clean_value(f, raw, required=need, errors=errors, path=f.name,
                                              stage=stage)
            except ValueError as e:
                errors[f.name] = str(e)
        if not errors:
            for check in self.checks:
                errors.update(check(cleaned, variant, options))
        if errors:
            raise ValidationFailed(f"《{self.doc_title(variant)}》有{len(errors)}处填写错误", fields=errors)
        return cleaned

    # ---- printing -------------------------------------------------------------------------
    def context(self, cleaned: Mapping[str, Any], variant: Variant | None = None,
                extra: Mapping[str, Any] | None = None) -> dict:
        """The docxtpl context: ``f`` printed strings, ``rows`` printed table rows, ``variant``."""
        f_ctx: dict[str, str] = {}
        boxes: dict[str, bool] = {}  # the fields printing their blank character boxes
        rows: dict[str, list[dict]] = {}
        for f in self.fields:
            value = cleaned.get(f.name)
            if f.kind == Kind.TABLE:
                value = list(value or [])
                printed = [{c.name: format_value(c, r.get(c.name)) for c in f.columns} for r in value]
                while len(printed) < f.min_rows:
                    printed.append({c.name: format_value(c, None) for c in f.columns})
                for i, r in enumerate(printed, 1):
                    r["_no"] = str(i)
                    r["_cn"] = chinese_numeral(i)
                rows[f.name] = printed
            elif f.hand_boxes and is_blank(value):
                f_ctx[f.name] = f.box_pattern()
                boxes[f.name] = True
            elif f.mask_on_print and f.prints_full(cleaned) and value:
                f_ctx[f.name] = str(value)  # the recipient's rule: in full (and audited)
            else:
                f_ctx[f.name] = format_value(f, value)
        return {"f": f_ctx, "rows": rows, "boxes": boxes,
                "variant": {"code": variant.code, "title": variant.title, **variant.data}
                if variant else {},
                "form": {"code": self.code, "title": self.doc_title(variant), "version": self.version},
                **dict(extra or {})}

    def full_prints(self, cleaned: Mapping[str, Any]) -> list[str]:
        """Fields whose masked-on-print value this document prints in full (to be audited)."""
        return [f.name for f in self.fields
                if f.mask_on_print and not is_blank(cleaned.get(f.name)) and f.prints_full(cleaned)]

    # ---- case effects and prefill ----------------------------------------------------------------
    def effect_for(self, paths: Iterable[str]) -> Effect | None:
        """The effect whose completeness rule judges a return holding values at ``paths`` (the
        first declared with a ``complete`` rule that applies), else None."""
        paths = list(paths)
        return next((e for e in self.effects if e.complete is not None and e.applies(paths)), None)

    def default_issuer(self, variant: Variant | None) -> str:
        return (variant.issuer if variant is not None and variant.issuer else "") or self.issuer

    def prefill(self, facts: Mapping[str, Any], *, defaults: bool = True) -> dict:
        """Values of every field with a ``source`` found in ``facts`` (blank facts left out):
        a table's rows from the list at its source, each row's columns from that row's facts;
        with ``defaults``, a field's ``default`` where its source gave nothing."""
        out: dict[str, Any] = {}
        for f in self.fields:
            value = resolve(facts, f.source) if f.source else None
            if defaults and value in (None, "", []) and f.default is not None:
                value = f.default
            if f.kind == Kind.TABLE:
                if not isinstance(value, (list, tuple)):
                    continue
                value = [{c.name: cell for c in f.columns if c.source
                          and (cell := resolve(row, c.source)) not in (None, "", [])}
                         for row in value]
            if value not in (None, "", []):
                out[f.name] = value
        return out

    def walk(self) -> Iterable[tuple[str, Field]]:
        """Every field with its path; table columns as ``table[].column``."""
        for f in self.fields:
            yield f.name, f
            for c in f.columns:
                yield f"{f.name}[].{c.name}", c


def resolve(facts: Any, source: str) -> Any:
    """The value at a dotted path of nested mappings (None where a step is missing); for
    "a|b", the first path holding a value."""
    for path in source.split("|"):
        value = facts
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        if value not in (None, "", []):
            return value
    return None


# ---- value cleaning, printing, reading ----------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"[\s:：()（）]", "", str(text or ""))


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        t = value.strip()
        # ____ of a blank in prose; unwritten character boxes (□□□□年□□月□□日)
        return not t or set(t) <= set("_＿ ") or (CHAR_BOX in t and set(t) <= set(CHAR_BOX + "年月日 "))
    if isinstance(value, (list, tuple, set, dict)):
        return len(value) == 0
    return False


def clean_value(f: Field, raw: Any, *, required: bool, errors: dict[str, str], path: str,
                stage: str = "render") -> Any:
    """Normalise one value; table rows are cleaned column by column into ``errors``."""
    if f.kind == Kind.TABLE:
        rows = raw or []
        if not isinstance(rows, list):
            raise ValueError("应为行的列表")
        if required and len(rows) < max(f.min_rows, 1):
            raise ValueError(f"至少需要{max(f.min_rows, 1)}行")
        if f.max_rows is not None and len(rows) > f.max_rows:
            raise ValueError(f"最多{f.max_rows}行")
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                errors[f"{path}[{i}]"] = "每行应为对象"
                continue
            extra = set(row) - {c.name for c in f.columns}
            for key in sorted(extra):
                errors[f"{path}[{i}].{key}"] = "此表没有该列"
            if all(is_blank(row.get(c.name)) for c in f.columns):
                continue  # a blank printed row
            clean_row = {}
            for c in f.columns:
                try:
                    clean_row[c.name] = clean_value(c, row.get(c.name),
                                                    required=c.required and stage == "render",
                                                    errors=errors, path=f"{path}[{i}].{c.name}")
                except ValueError as e:
                    errors[f"{path}[{i}].{c.name}"] = str(e)
            out.append(clean_row)
        return out
    if is_blank(raw) and f.kind not in (Kind.BOOL, Kind.SIGNATURE, Kind.SEAL):
        if required:
            raise ValueError("必填")
        return [] if f.kind == Kind.MULTI else None
    k = f.kind
    if k == Kind.TEXT:
        value = str(raw).strip()
        if f.max_length and len(value) > f.max_length:
            raise ValueError(f"不超过{f.max_length}字")
        return value
    if k == Kind.NAME:
        name = v.check_name(raw)
        if f.max_length and len(name) > f.max_length:  # a name printed in a narrow column
            raise ValueError(f"不超过{f.max_length}字")
        return name
    if k == Kind.DATE:
        return v.parse_date(raw)
    if k == Kind.DATETIME:
        return v.parse_datetime(raw)
    if k == Kind.INT:
        try:
            n = int(str(raw).strip())
        except ValueError:
            raise ValueError("应为整数") from None
        if n < 0:
            raise ValueError("不能为负数")
        return n
    if k == Kind.ID_NUMBER:
        return v.check_id_number(raw)
    if k == Kind.XUEJI_NO:
        return v.check_xueji_no(raw)
    if k == Kind.PHONE:
        return v.check_phone(raw)
    if k == Kind.CHOICE:
        code = raw if any(c.code == raw for c in f.choices) else f.code_for_label(str(raw))
        if code is None:
            raise ValueError("应为以下之一：" + "、".join(f"{c.code}({c.label})" for c in f.choices))
        return code
    if k == Kind.MULTI:
        items = raw if isinstance(raw, (list, tuple)) else re.split(r"[,，、;；\s]+", str(raw))
        out = []
        for item in items:
            if is_blank(item):
                continue
            code = item if any(c.code == item for c in f.choices) else f.code_for_label(str(item))
            if code is None:
                raise ValueError(f"“{item}”不在可选项中：" + "、".join(c.code for c in f.choices))
            if code not in out:
                out.append(code)
        if required and not out:
            raise ValueError("至少选择一项")
        return out
    if k in (Kind.BOOL, Kind.SIGNATURE, Kind.SEAL):
        if raw is None or raw == "":
            if required and k == Kind.BOOL:
                raise ValueError("必填")
            return None
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "y", "是", "有"}:
            return True
        if text in {"0", "false", "no", "n", "否", "无"}:
            return False
        raise ValueError("应为是/否")
    raise AssertionError(k)


def format_value(f: Field, value: Any) -> str:
    """The printed form of a value (the inverse of ``read_value``)."""
    k = f.kind
    if f.compact and k in (Kind.CHOICE, Kind.MULTI, Kind.BOOL):
        return _format_compact(f, value)
    if k in (Kind.CHOICE, Kind.MULTI, Kind.BOOL):
        if k == Kind.BOOL:
            chosen = {"Y"} if value is True else {"N"} if value is False else set()
            opts = (Choice("Y", "是"), Choice("N", "否"))
        else:
            chosen = set(value or []) if k == Kind.MULTI else ({value} if value else set())
            opts = f.choices
        return " ".join(f"{TICKED if c.code in chosen else UNTICKED}{c.label}" for c in opts)
    if k in (Kind.SIGNATURE, Kind.SEAL):
        return ""
    if value is None or value == "":
        return ""
    if k == Kind.DATE:
        return v.format_date(value)
    if k == Kind.DATETIME:
        return v.format_datetime(value)
    if k == Kind.ID_NUMBER and f.mask_on_print:
        return v.mask_id(value)
    return str(value)


_TICK_RE = re.compile(rf"([{re.escape(BOX_CHARS)}])\s*([^{re.escape(BOX_CHARS)}]+)")


def read_value(f: Field, text: str) -> Any:
    """Read a printed/typed cell back into a raw value (then ``clean_value`` it).

    Tick boxes: a box char in TICK_MARKS before a label means ticked. Returns the raw value for
    cleaning, or None when blank.
    """
    text = (text or "").strip()
    k = f.kind
    if f.hand_boxes and CHAR_BOX in text:
        text = without_box_pattern(f, text)
    if f.compact and k in (Kind.CHOICE, Kind.MULTI, Kind.BOOL):
        return _read_compact(f, text)
    if k in (Kind.CHOICE, Kind.MULTI, Kind.BOOL):
        ticked = [lab.strip() for box, lab in _TICK_RE.findall(text) if box in TICK_MARKS]
        if k == Kind.BOOL:
            if not ticked:
                return None
            return ticked[0].startswith("是")
        codes = []
        for lab in ticked:
            code = f.code_for_label(lab)
            if code is None:  # typed text after a box, e.g. "☑外出务工(广东)": match by prefix
                code = next((c.code for c in f.choices if _norm(lab).startswith(_norm(c.label))), None)
            codes.append(code if code is not None else lab)
        if k == Kind.CHOICE:
            return codes[0] if len(codes) == 1 else (codes or None)
        return codes
    if is_blank(text):
        return None
    if k == Kind.ID_NUMBER and "*" in text:
        return text  # masked on print: compared, never cleaned
    return re.sub(r"\s+", "" if k != Kind.TEXT else " ", text)


def without_box_pattern(f: Field, text: str) -> str:
    """``text`` less the printed blank of ``f`` (its character boxes and 年月日), when all of it is
    there in order: a value typed over the boxes in a PDF editor is extracted interleaved with them
    ("□202□5-0□9-26□年□□月□□日" -> "2025-09-26"). Otherwise ``text`` unchanged."""
    pattern = f.box_pattern()
    keep, i = [], 0
    for ch in text:
        if i < len(pattern) and ch == pattern[i]:
            i += 1
        else:
            keep.append(ch)
    return "".join(keep).strip() if i == len(pattern) else text


COMPACT_NO = "✗"
_COMPACT_NO_CHARS = "✗✘×xX"


def _format_compact(f: Field, value: Any) -> str:
    """Printed form of a ``compact`` CHOICE/MULTI/BOOL (see ``Field.compact``)."""
    if f.kind == Kind.BOOL:
        return TICKED if value is True else COMPACT_NO if value is False else UNTICKED
    if f.kind == Kind.MULTI:
        return ",".join(value or [])
    return f.choice_label(value) if value else ""


def _read_compact(f: Field, text: str) -> Any:
    """Inverse of ``_format_compact``: a raw value for ``clean_value`` (None when blank)."""
    if f.kind == Kind.BOOL:
        if any(c in TICK_MARKS for c in text):
            return True
        if any(c in _COMPACT_NO_CHARS for c in text):
            return False
        return None
    if is_blank(text):
        return None
    if f.kind == Kind.MULTI:
        return [p for p in re.split(r"[,，、;；\s]+", text) if p]
    return re.sub(r"\s+", "", text)


_CN_DIGITS = "零一二三四五六七八九"


def chinese_numeral(n: int) -> str:
    """1..99 in Chinese numerals as 公文 numbers its items: 一, 十, 十一, 二十, 二十一."""
    if not 0 < n < 100:
        return str(n)
    tens, ones = divmod(n, 10)
    out = ("" if tens == 1 else _CN_DIGITS[tens]) + "十" if tens else ""
    return out + (_CN_DIGITS[ones] if ones else "")


def today() -> dt.date:
    return dt.date.today()
