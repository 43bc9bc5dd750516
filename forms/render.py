"""Render a form's docxtpl template into a DOCX (one document, or a batch on the fast path).

Plain docxtpl (``DocxTemplate(path).render(ctx).save()``) loads the package with python-docx,
patches the body XML (merging Jinja tags split across runs), compiles it with Jinja and saves the
whole package again, every time: ≈70 ms per document. A batch renders the same template hundreds
of times, so ``CompiledTemplate`` does everything that does not depend on the data once:

* docxtpl's own ``patch_xml`` of the body, headers, footers and footnotes (we call docxtpl's code,
  so the Jinja source is exactly what docxtpl would compile), then ``Environment.from_string``;
* the font swap (the template's style-level fonts -> the configured fonts) and the custom-property
  plumbing (content type and package relationship) on the static members;
* all other zip members are kept as bytes.

Per document only the Jinja render, docxtpl's ``resolve_listing`` (only when a value carries a
line break or tab), ``fix_tables``/docPr renumbering (only when the template needs them) and the
zip write remain. The identity goes into ``docProps/custom.xml`` and the document title into
``docProps/core.xml`` (LibreOffice carries it into the PDF's /Title).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from docxtpl import DocxTemplate
from jinja2 import Environment
from jinja2 import TemplateError as JinjaTemplateError
from lxml import etree

from forms.errors import NotFound, RenderFailed
from forms.identity import Identity
from forms.spec import FormSpec, Variant

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "forms"
# Fonts the template builder writes at style level, one per role; the renderer swaps in the
# configured ones: (body, title, table, heading) — see forms/build_templates.py.
TEMPLATE_FONT_BODY = "FandolFang"
TEMPLATE_FONT_TITLE = "FandolSong"
TEMPLATE_FONT_TABLE = "Noto Serif CJK SC"
TEMPLATE_FONT_HEADING = "Noto Sans CJK SC"
TEMPLATE_FONTS = (TEMPLATE_FONT_BODY, TEMPLATE_FONT_TITLE, TEMPLATE_FONT_TABLE, TEMPLATE_FONT_HEADING)

_DOCUMENT = "word/document.xml"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_CUSTOM = "docProps/custom.xml"
_CORE = "docProps/core.xml"
_CONTENT_TYPES = "[Content_Types].xml"
_PKG_RELS = "_rels/.rels"
_CUSTOM_CT = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
_CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
_CORE_CT = "application/vnd.openxmlformats-package.core-properties+xml"
_CORE_REL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
_HEADER_FOOTER_CT = ("wordprocessingml.header+xml", "wordprocessingml.footer+xml",
                     "wordprocessingml.footnotes+xml")
# A property set id every Office application uses for user-defined properties.
_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
# docxtpl renders with a Jinja environment; autoescape makes &, <, > in values valid XML.
_JINJA_OPTIONS = {"autoescape": True}


def _fonts_tuple(fonts: Sequence[str] | None) -> tuple[str, ...]:
    """(body, title, table, heading); a shorter sequence keeps the template's fonts for the rest."""
    given = tuple(str(f) for f in (fonts or ()))
    return given[:4] + TEMPLATE_FONTS[len(given):]


def swap_fonts(xml: str, fonts: Sequence[str] | None) -> str:
    """Replace the template's style-level font names with the configured (body, title, table,
    heading) fonts.

    Only attribute values equal to a template font are touched (``w:eastAsia="FandolFang"``,
    ``w:name=...`` in the font table), in one pass so that swapping two of them is safe."""
    mapping = dict(zip(TEMPLATE_FONTS, _fonts_tuple(fonts), strict=True))
    if all(k == v for k, v in mapping.items()):
        return xml
    pattern = re.compile('"(' + "|".join(re.escape(k) for k in mapping) + ')"')
    return pattern.sub(lambda m: quoteattr(mapping[m.group(1)]), xml)


def custom_properties_xml(props: Mapping[str, str]) -> bytes:
    """``docProps/custom.xml`` holding ``props`` as text (vt:lpwstr) properties."""
    items = "".join(
        f'<property fmtid="{_FMTID}" pid="{pid}" name={quoteattr(str(name))}>'
        f"<vt:lpwstr>{xml_escape(str(value))}</vt:lpwstr></property>"
        for pid, (name, value) in enumerate(props.items(), start=2))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
            'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            f"{items}</Properties>").encode()


def _ensure_override(content_types: str, part: str, content_type: str) -> str:
    if f'PartName="/{part}"' in content_types:
        return content_types
    return content_types.replace(
        "</Types>", f'<Override PartName="/{part}" ContentType="{content_type}"/></Types>')


def _ensure_rel(rels: str, rel_type: str, target: str) -> str:
    if f'Type="{rel_type}"' in rels:
        return rels
    ids = {int(n) for n in re.findall(r'Id="rId(\d+)"', rels)}
    new_id = max(ids, default=0) + 1
    return rels.replace(
        "</Relationships>",
        f'<Relationship Id="rId{new_id}" Type="{rel_type}" Target="{target}"/></Relationships>')


_CORE_EMPTY = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
               'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
               'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dcmitype="http://purl.org/dc/dcmitype/" '
               'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"></cp:coreProperties>')
_TITLE_SLOT = "\x00TITLE\x00"


def _core_with_title_slot(core: str | None) -> str:
    """core.xml with its dc:title replaced by a slot filled per document."""
    core = core or _CORE_EMPTY
    core = re.sub(r"<dc:title\s*/>|<dc:title>.*?</dc:title>", "", core, flags=re.DOTALL)
    if "xmlns:dc=" not in core:
        core = core.replace("<cp:coreProperties ",
                            '<cp:coreProperties xmlns:dc="http://purl.org/dc/elements/1.1/" ', 1)
    return core.replace("</cp:coreProperties>", f"<dc:title>{_TITLE_SLOT}</dc:title></cp:coreProperties>")


def _tables_need_fixing(body_xml: str) -> bool:
    """True when docxtpl's ``fix_tables`` could change a rendered table.

    It adds or removes ``w:gridCol`` when a row has more cells, or every row fewer grid spans, than
    the grid. Row loops (``{%tr``) copy whole rows, so that only happens with cell-level tags or a
    template whose tables are already inconsistent; both are detected here, once."""
    if re.search(r"\{%-?\s*(tc|colspan|hm)\b|\{\{-?\s*tc\b", body_xml):
        return True
    tree = etree.fromstring(body_xml.encode())
    ns = "{" + tree.nsmap["w"] + "}"
    for tbl in tree.iter(ns + "tbl"):
        grid = tbl.find(ns + "tblGrid")
        columns = len(grid.findall(ns + "gridCol")) if grid is not None else 0
        widest = 0
        for tr in tbl.iter(ns + "tr"):
            cells = tr.findall(ns + "tc")
            span = 0
            for tc in cells:
                gs = tc.find(f"{ns}tcPr/{ns}gridSpan")
                span += int(gs.get(ns + "val")) if gs is not None else 1
            if len(cells) > columns:
                return True
            widest = max(widest, span)
        if widest < columns:
            return True
    return False


@dataclass
class _XmlPart:
    """One templated XML part: text around the rendered region and its compiled Jinja template."""

    name: str
    head: str
    tail: str
    template: Any  # jinja2.Template
    is_body: bool = False


class CompiledTemplate:
    """A docxtpl template prepared once for many renders (see the module docstring).

    ``render(context, properties, title)`` returns DOCX bytes equivalent to docxtpl's own output
    for the same context (same paragraphs and table cells), with ``properties`` written as DOCX
    custom properties and ``title`` as the core title. Thread-safe: rendering keeps no state.
    """

    def __init__(self, path: Path | str, fonts: Sequence[str] | None = None):
        self.path = Path(path)
        self.fonts = _fonts_tuple(fonts)
        self._docpr_lock = threading.Lock()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"模板文件不存在：{self.path.name}（请先运行 forms/build_templates.py 生成模板）",
                           template=str(self.path)) from None
        try:
            self._compile(raw)
        except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError) as e:
            raise RenderFailed(f"模板 {self.path.name} 不是有效的 DOCX：{e}", template=self.path.name) from e
        except JinjaTemplateError as e:
            raise RenderFailed(f"模板 {self.path.name} 的模板语法有误：{e}", template=self.path.name) from e

    def _compile(self, raw: bytes) -> None:
        self._tpl = DocxTemplate(io.BytesIO(raw))  # only its pure XML helpers are used
        self._env = Environment(**_JINJA_OPTIONS)
        with zipfile.ZipFile(io.BytesIO(raw)) as zin:
            infos = zin.infolist()
            members = {i.filename: zin.read(i.filename) for i in infos}
        content_types = members[_CONTENT_TYPES].decode("utf-8")
        templated = {_DOCUMENT}
        for name, data in members.items():
            if name.endswith(".xml") and b"{" in data and any(
                    f'PartName="/{name}" ContentType="application/vnd.openxmlformats-officedocument.{ct}"'
                    in content_types for ct in _HEADER_FOOTER_CT):
                templated.add(name)
        self._parts: list[_XmlPart] = []
        for name in sorted(templated):
            text = swap_fonts(members[name].decode("utf-8"), self.fonts)
            self._parts.append(self._compile_part(name, text))
        # Static members: fonts swapped in styles/font table/numbering/..., plumbing for custom.xml.
        content_types = _ensure_override(content_types, _CUSTOM, _CUSTOM_CT)
        content_types = _ensure_override(content_types, _CORE, _CORE_CT)
        members[_CONTENT_TYPES] = content_types.encode("utf-8")
        rels = members.get(_PKG_RELS, b"").decode("utf-8")
        rels = _ensure_rel(rels, _CUSTOM_REL, _CUSTOM)
        rels = _ensure_rel(rels, _CORE_REL, _CORE)
        members[_PKG_RELS] = rels.encode("utf-8")
        core = members.get(_CORE)
        self._core_head, self._core_tail = _core_with_title_slot(
            core.decode("utf-8") if core else None).split(_TITLE_SLOT)
        self._static: dict[str, tuple[zipfile.ZipInfo, bytes]] = {}
        order = [i.filename for i in infos]
        for extra in (_CORE, _CUSTOM):
            if extra not in order:
                order.append(extra)
        self._order = order
        for name in order:
            if name in templated or name in (_CORE, _CUSTOM):
                continue
            data = members[name]
            if name.endswith(".xml") and name.startswith("word/"):
                data = swap_fonts(data.decode("utf-8"), self.fonts).encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            self._static[name] = (info, data)
        self._templated_names = {p.name for p in self._parts}

    def _compile_part(self, name: str, text: str) -> _XmlPart:
        if name == _DOCUMENT:
            # docxtpl serialises the <w:body> element on its own (namespaces then sit on it) and
            # renders that; the rest of the document element stays as it is.
            start = text.index("<w:body")
            end = text.rindex("</w:body>") + len("</w:body>")
            head, tail = text[:start], text[end:]
            src = etree.tostring(etree.fromstring(text.encode("utf-8")).find(f"{_W}body"),
                                 encoding="unicode")
            self._fix_tables = _tables_need_fixing(src)
            self._has_docpr = "docPr" in src
        else:
            # Headers/footers/footnotes: docxtpl renders the whole part (declaration dropped).
            head, tail = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n', ""
            src = etree.tostring(etree.fromstring(text.encode("utf-8")), encoding="unicode")
        patched = self._tpl.patch_xml(src)
        patched = re.sub(r"<w:p([ >])", r"\n<w:p\1", patched)  # as docxtpl.render_xml_part
        return _XmlPart(name, head, tail, self._env.from_string(patched), name == _DOCUMENT)

    def _render_part(self, part: _XmlPart, context: Mapping[str, Any]) -> str:
        xml = part.template.render(context)
        # The rest of docxtpl.render_xml_part, in its order.
        xml = re.sub(r"\n<w:p([ >])", r"<w:p\1", xml)
        xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
        if any(c in xml for c in "\t\a\n\f"):  # resolve_listing changes nothing otherwise
            xml = self._tpl.resolve_listing(xml)
        if part.is_body and (self._fix_tables or self._has_docpr):
            with self._docpr_lock:  # docxtpl numbers docPr ids with a counter on the template object
                tree = self._tpl.fix_tables(xml)
                self._tpl.docx_ids_index = 1000
                self._tpl.fix_docpr_ids(tree)
            xml = etree.tostring(tree, encoding="unicode")
        return part.head + xml + part.tail

    def render(self, context: Mapping[str, Any], properties: Mapping[str, str] | None = None,
               title: str | None = None) -> bytes:
        """Render one document to DOCX bytes."""
        rendered: dict[str, bytes] = {}
        try:
            for part in self._parts:
                rendered[part.name] = self._render_part(part, context).encode("utf-8")
        except JinjaTemplateError as e:
            raise RenderFailed(f"模板 {self.path.name} 渲染失败：{e}", template=self.path.name) from e
        except etree.XMLSyntaxError as e:
            raise RenderFailed(f"模板 {self.path.name} 渲染出的 XML 无效：{e}",
                               template=self.path.name) from e
        rendered[_CUSTOM] = custom_properties_xml(properties or {})
        rendered[_CORE] = (self._core_head + xml_escape(title or "") + self._core_tail).encode("utf-8")
        buf = io.BytesIO()
        static = self._static
        # compresslevel 1: document.xml compresses almost as well, in a third of the time.
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
            for name in self._order:
                if name in rendered:
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zout.writestr(info, rendered[name], compresslevel=1)
                elif name in static:
                    # a fresh ZipInfo per document: ZipFile.writestr fills in offsets and sizes on
                    # the object it is given, so a shared one corrupts archives written in parallel
                    shared, data = static[name]
                    info = zipfile.ZipInfo(shared.filename, date_time=shared.date_time)
                    info.compress_type = shared.compress_type
                    info.external_attr = shared.external_attr
                    zout.writestr(info, data, compresslevel=1)
        return buf.getvalue()


class TemplateCache:
    """Compiled templates keyed by (path, mtime, fonts); shared by every render in a process."""

    def __init__(self, max_entries: int = 64):
        self._lock = threading.Lock()
        self._entries: dict[tuple, CompiledTemplate] = {}
        self._max = max_entries

    def get(self, path: Path | str, fonts: Sequence[str] | None = None) -> CompiledTemplate:
        """The compiled template for ``path`` (recompiled when the file changes)."""
        path = Path(path).resolve()
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise NotFound(f"模板文件不存在：{path.name}（请先运行 forms/build_templates.py 生成模板）",
                           template=str(path)) from None
        key = (str(path), mtime, _fonts_tuple(fonts))
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None:
            return hit
        compiled = CompiledTemplate(path, fonts)  # outside the lock: compiling takes ~50 ms
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = compiled
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = TemplateCache()


def template_cache() -> TemplateCache:
    """The process-wide template cache."""
    return _cache


def _resolve_variant(spec: FormSpec, variant: Variant | str | None) -> Variant | None:
    if isinstance(variant, Variant) or variant is None and not spec.variants:
        return variant
    return spec.variant(variant)


def template_path(spec: FormSpec, variant: Variant | None, templates_dir: Path | str | None = None) -> Path:
    """Where the docxtpl source of ``spec`` (for ``variant``'s layout) lives."""
    return Path(templates_dir or TEMPLATES_DIR) / spec.template_name(variant)


@dataclass(frozen=True)
class RenderItem:
    """One document of a batch: what ``render_docx`` takes."""

    spec: FormSpec
    variant: Variant | str | None
    cleaned: Mapping[str, Any]
    identity: Identity
    extra: Mapping[str, Any] | None = field(default=None)


def _prepare(item: RenderItem, templates_dir) -> tuple[Path, dict, dict[str, str], str]:
    variant = _resolve_variant(item.spec, item.variant)
    ctx = item.spec.context(item.cleaned, variant, extra=item.extra)
    ctx["ident"] = {"doc_id": item.identity.doc_id}  # the caption under the QR (page header)
    return (template_path(item.spec, variant, templates_dir), ctx, item.identity.properties(),
            item.spec.doc_title(variant))


def render_docx(spec: FormSpec, variant: Variant | str | None, cleaned: Mapping[str, Any],
                identity: Identity, *, extra: Mapping[str, Any] | None = None,
                fonts: Sequence[str] | None = None, templates_dir: Path | str | None = None) -> bytes:
    """Render one filled form to DOCX bytes.

    ``cleaned`` is ``spec.validate(...)`` output; ``extra`` adds context (e.g. ``{"doc": {...}}``);
    ``fonts`` = (body, title), normally ``(Config.FONT_BODY, Config.FONT_TITLE)``. The identity is
    written to the DOCX custom properties, the form title to the core title."""
    path, ctx, props, title = _prepare(RenderItem(spec, variant, cleaned, identity, extra), templates_dir)
    return _cache.get(path, fonts).render(ctx, props, title)


def _render_chunk(jobs: list[tuple[str, dict, dict, str]], fonts) -> list[bytes]:
    return [_cache.get(path, fonts).render(ctx, props, title) for path, ctx, props, title in jobs]


def render_many(items: Iterable[RenderItem | tuple], *, fonts: Sequence[str] | None = None,
                templates_dir: Path | str | None = None, processes: int = 1) -> list[bytes]:
    """Render a batch (in order) through the compiled-template fast path.

    ``items`` are ``RenderItem``s or tuples ``(spec, variant, cleaned, identity[, extra])``.
    ``processes > 1`` spreads the work over a process pool (contexts are plain data); worth it for
    large batches only, as each worker compiles the template once."""
    jobs = []
    for it in items:
        item = it if isinstance(it, RenderItem) else RenderItem(*it)
        path, ctx, props, title = _prepare(item, templates_dir)
        jobs.append((str(path), ctx, props, title))
    if processes <= 1 or len(jobs) < 2 * processes:
        return _render_chunk(jobs, fonts)
    processes = min(processes, os.cpu_count() or 1)
    size = -(-len(jobs) // (processes * 4))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    out: list[bytes] = []
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for docs in pool.map(_render_chunk, chunks, [fonts] * len(chunks)):
            out.extend(docs)
    return out


def zip_documents(files: Mapping[str, bytes]) -> bytes:
    """Bundle named documents (``{"name.pdf": bytes}``) into one ZIP, e.g. a batch download.

    DOCX and PDF are already compressed, so members are stored."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for name, data in files.items():
            zout.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()
