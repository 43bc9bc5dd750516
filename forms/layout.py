"""Printed layout of a form, as data.

A spec's layout is a tuple of ``Part``s (正本, 存根, 送达回证... each starts on a new page). A part
is a list of blocks. The same blocks drive three things:

* ``forms/build_templates.py`` writes the docxtpl source (``templates/forms/*.docx``) from them;
* the DOCX/PDF parsers find each value by its label (a ``Label`` cell is always immediately
  followed by its ``Value`` cell in the same row; label texts are unique within a part) and read
  ``Para`` placeholders with a regex derived from the paragraph text;
* the geometry recorder finds each value cell's box on each PDF page (for scans).

Placeholders in ``Title``/``Para`` text are ``{field_name}`` (a field of the spec) or
``{variant.key}`` / ``{form.title}`` / ``{doc.key}`` (printed text that is not a field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER_RE = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


@dataclass(frozen=True)
class Title:
    """A centred title line (公文 标题 style)."""

    text: str
    style: str = "title"  # "title" (2号) or "subtitle" (3号 bold)


@dataclass(frozen=True)
class Para:
    """A paragraph of prose with ``{field}`` placeholders; blank values print as ____."""

    text: str
    align: str = "justify"  # justify | left | right | center
    indent: bool = True  # first-line indent of two characters
    style: str = "body"


@dataclass(frozen=True)
class Heading:
    """A structural heading of the body (GB/T 9704 7.3.3: "一、" in 黑体), kept on the page of
    what follows it. Printed text only (no placeholders)."""

    text: str


@dataclass(frozen=True)
class Items:
    """A TABLE field printed as prose (GB/T 9704 正文, not a grid): one paragraph per row made from
    ``text``, whose placeholders are the row's columns and ``{_no}`` (1, 2, …) or ``{_cn}`` (一, 二, …);
    a ``[…]`` segment prints only when the row has its column(s).

    For issued wording the service supplies (legal provisions, 责任书 clauses and targets): it is
    printed, not read back from a returned copy — the issued record is what counts."""

    field: str
    text: str
    indent: bool = True


@dataclass(frozen=True)
class Signoff:
    """落款 (GB/T 9704 7.3.5.1): the issuing unit(s) over the date at the right (date right-indented
    four characters), with room above for the seal that overlaps both. ``names`` and ``date`` are
    fields printed as right-aligned lines (read back like ``Para`` placeholders); ``seals`` (one per
    name) are SEAL fields whose zone the geometry recorder places over the name and date lines.
    Kept on the page of the paragraph before it: a seal never stands alone on a page."""

    names: tuple[str, ...]
    date: str
    seals: tuple[str, ...]

    def paras(self) -> tuple[Para, ...]:
        """The printed lines as ``Para`` blocks: one per unit (a second unit's line set to the
        right of the first's, a line lower), then the date."""
        return (*(Para("{" + n + "}", align="right", indent=False) for n in self.names),
                Para("{" + self.date + "}", align="right", indent=False))


@dataclass(frozen=True)
class Banji:
    """版记 (GB/T 9704 8): 抄送 and 印发 lines between rules at the foot of the last page of the part.
    Printed wording (placeholders allowed), not read back."""

    lines: tuple[str, ...]
    when: str | None = None  # printed only when this field has a value (an optional 抄送)


@dataclass(frozen=True)
class Label:
    text: str
    span: int = 1


@dataclass(frozen=True)
class Value:
    field: str
    span: int = 1
    height_mm: float | None = None  # taller zones for signatures and seals


@dataclass(frozen=True)
class Grid:
    """A bordered table of label/value cells. Each row's spans must add up to ``len(widths)``."""

    rows: tuple[tuple[Label | Value, ...], ...]
    widths: tuple[float, ...]  # column widths in mm
    # Kept whole on one page, with the block before it and the one after it (signature and seal
    # zones: never alone on a page, never split between pages).
    keep: bool = False


@dataclass(frozen=True)
class Rows:
    """A repeating table for a TABLE field: a header row of column labels (repeated on every page),
    then one row per item (``min_rows`` printed even when empty). ``columns`` picks and orders the
    printed columns (default: all); ``widths`` in mm."""

    field: str
    columns: tuple[str, ...] = ()
    widths: tuple[float, ...] = ()
    number_column: str | None = "序号"  # a leading row-number column, or None
    keep: bool = False  # the whole table on one page, with the block before it (short tables)
    # The last rows kept with the block after the table (a long list that flows over pages ends
    # on the page of its signatures, never leaving them alone).
    keep_tail: int = 0


@dataclass(frozen=True)
class Spacer:
    height_mm: float = 4


@dataclass(frozen=True)
class Part:
    """One printed unit that starts on a new page: 正本, 存根, 送达回证, a 交接表..."""

    key: str  # original | stub | receipt | main ...
    name: str  # 正本 / 存根 / 送达回证 (shown in a small header, and used to split parts on read)
    blocks: tuple = ()
    landscape: bool = False


class Layout(tuple):
    """A tuple of parts plus ``template_key`` naming this layout's template file (None: the form's
    only template). Forms whose variants print differently return one Layout per distinct shape."""

    def __new__(cls, parts, template_key: str | None = None):
        obj = super().__new__(cls, tuple(parts))
        obj.template_key = template_key
        return obj


def LV(field_name: str, label: str, span: int = 1, height_mm: float | None = None):
    """A label cell followed by its value cell (the value spanning ``span`` columns)."""
    return (Label(label), Value(field_name, span=span, height_mm=height_mm))


def labeller(fields):
    """``lv(name, span=1, height_mm=None, label=None)`` for one spec: ``LV`` with the field's own
    label (or ``label``), so a spec's layout never repeats a label its fields already define."""
    by_name = {f.name: f for f in fields}

    def lv(name: str, span: int = 1, height_mm: float | None = None, label: str | None = None):
        return LV(name, label or by_name[name].label, span, height_mm)

    return lv


# Six grid columns (label, value) × 3 across the 156 mm a portrait A4 page has inside the 公文
# margins (28 mm left, 26 mm right).
PORTRAIT_W6 = (22, 30, 22, 30, 22, 30)


def row(*cells) -> tuple:
    """Flatten ``LV`` pairs and single cells into one grid row."""
    out: list = []
    for c in cells:
        if isinstance(c, tuple):
            out.extend(c)
        else:
            out.append(c)
    return tuple(out)


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER_RE.findall(text)


def expand(blocks) -> tuple:
    """``blocks`` with each ``Signoff`` replaced by its printed ``Para`` lines (how parsers see it)."""
    out: list = []
    for b in blocks:
        out.extend(b.paras() if isinstance(b, Signoff) else (b,))
    return tuple(out)


def printed_names(part: Part) -> list[str]:
    """Every field a part prints, read back or not (``iter_values`` plus ``Items``, ``Banji``
    placeholders and ``Signoff`` seals)."""
    names = [name for _b, name in iter_values(part)]
    for block in part.blocks:
        if isinstance(block, Items):
            names.append(block.field)
        elif isinstance(block, Banji):
            names += [n for t in block.lines for n in placeholders(t) if "." not in n]
    return names


def iter_values(part: Part):
    """Every field a part prints and a returned copy is read for: (block, field name) in print
    order. ``Items`` and ``Banji`` (issued wording) are not read back; a ``Signoff`` gives its name
    and date lines (as ``Para``) and its seal zones (as the ``Signoff``)."""
    for block in part.blocks:
        if isinstance(block, Signoff):
            for para in block.paras():
                for name in placeholders(para.text):
                    yield para, name
            for name in block.seals:
                yield block, name
            continue
        if isinstance(block, Grid):
            for r in block.rows:
                for cell in r:
                    if isinstance(cell, Value):
                        yield block, cell.field
        elif isinstance(block, Rows):
            yield block, block.field
        elif isinstance(block, (Para, Title)):
            for name in placeholders(block.text):
                if "." not in name:
                    yield block, name


def labels_of(part: Part) -> dict[str, str]:
    """Map label text -> the field of the value cell that follows it, for one part."""
    out: dict[str, str] = {}
    for block in part.blocks:
        if isinstance(block, Grid):
            for r in block.rows:
                for a, b in zip(r, r[1:], strict=False):
                    if isinstance(a, Label) and isinstance(b, Value):
                        out[a.text] = b.field
    return out


# Where the per-page QR code is stamped (mm): a square of QR_SIZE_MM whose top edge is QR_TOP_MM
# below the page top and whose right edge is QR_RIGHT_MM from the page's right edge. Templates keep
# this corner free (the 公文 top margin is 37 mm); the geometry recorder reports it per page.
QR_SIZE_MM = 20.0
QR_TOP_MM = 8.0
QR_RIGHT_MM = 12.0
# 公文 page setup (GB/T 9704 in spirit), mm.
MARGINS_MM = {"top": 37.0, "bottom": 35.0, "left": 28.0, "right": 26.0}
