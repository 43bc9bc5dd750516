"""Test helpers for the template/parser/geometry tests: render a spec's generated template, convert
it to PDF, stamp the identity, and re-save a DOCX through LibreOffice.

The production pieces are used where they exist: ``forms.render.render_docx`` (docxtpl rendering
plus DOCX custom properties), ``forms.pdf.convert_many`` (warm LibreOffice) and
``forms.stamp.stamp_pdf`` (QR on every page, identity in the PDF info). The LibreOffice
DOCX -> DOCX re-save (a document "edited and re-saved by LibreOffice") is one cold
``soffice --headless --convert-to docx`` per batch through ``forms.tools.run`` with an absolute
``-env:UserInstallation``. Valid synthetic input comes from ``tests.samples_data``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forms import identity as ident
from forms import tools
from forms.registry import all_specs, get_spec
from forms.spec import FormSpec, Variant

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "forms"
SECRET = "test-qr-secret"
DOC_EXTRA = {"doc": {"number": "卫辍报〔2025〕3号", "date": "2025年9月10日"}}


def make_identity(spec: FormSpec, variant: Variant | None, doc_id: str = "ABCDEFGH1234") -> ident.Identity:
    return ident.Identity(doc_id, spec.code, variant.code if variant else None, spec.version)


def render_docx(spec: FormSpec, variant: Variant | None, cleaned: Mapping[str, Any],
                identity: ident.Identity | None = None, extra: Mapping[str, Any] | None = None) -> bytes:
    """DOCX bytes of a filled form (identity in the custom properties)."""
    from forms.render import render_docx as engine

    extra = dict(DOC_EXTRA if extra is None else extra)
    identity = identity or make_identity(spec, variant)
    return engine(spec, variant, cleaned, identity, extra=extra, templates_dir=TEMPLATES)


def soffice_convert(files: Mapping[str, bytes], to: str) -> dict[str, bytes]:
    """Convert named DOCX files with one cold soffice call (``to``: "pdf" or "docx")."""
    with tempfile.TemporaryDirectory(prefix="bx-h1-") as tmp:
        tmp = Path(tmp).resolve()
        src, out = tmp / "in", tmp / "out"
        src.mkdir()
        out.mkdir()
        paths = []
        for name, data in files.items():
            p = src / name
            p.write_bytes(data)
            paths.append(str(p))
        target = "docx:MS Word 2007 XML" if to == "docx" else to
        tools.run(["soffice", f"-env:UserInstallation={(tmp / 'profile').as_uri()}", "--headless",
                   "--norestore", "--convert-to", target, "--outdir", str(out), *paths], timeout=300,
                  env={**os.environ, "HOME": str(tmp)})
        return {name: (out / f"{Path(name).stem}.{to}").read_bytes() for name in files}


def libreoffice_resave(docs: Sequence[bytes]) -> list[bytes]:
    """Each DOCX opened and saved again as DOCX by LibreOffice (one soffice run for all)."""
    names = {f"doc{i:03d}.docx": d for i, d in enumerate(docs)}
    out = soffice_convert(names, "docx")
    return [out[n] for n in names]


def to_pdf(docs: Sequence[bytes]) -> list[bytes]:
    """DOCX -> PDF with the warm converter (cold soffice when the UNO bridge is missing)."""
    try:
        from forms.pdf import convert_many

        return convert_many(list(docs))
    except ImportError:  # pragma: no cover
        names = {f"doc{i:03d}.docx": d for i, d in enumerate(docs)}
        out = soffice_convert(names, "pdf")
        return [out[n] for n in names]


def stamp(pdf: bytes, identity: ident.Identity, secret: str = SECRET) -> bytes:
    from forms.stamp import stamp_pdf

    return stamp_pdf(pdf, identity, secret)[0]


def render_pdf(spec: FormSpec, variant: Variant | None, cleaned: Mapping[str, Any],
               identity: ident.Identity | None = None, extra: Mapping[str, Any] | None = None) -> bytes:
    identity = identity or make_identity(spec, variant)
    return stamp(to_pdf([render_docx(spec, variant, cleaned, identity, extra)])[0], identity)


def sample(form: str, variant_code: str | None = None, **kw) -> tuple[FormSpec, Variant | None, dict]:
    """(spec, variant, cleaned sample input) from tests.samples_data."""
    from tests.samples_data import sample_input

    spec = get_spec(form)
    variant = spec.variant(variant_code) if spec.variants else None
    return spec, variant, spec.validate(sample_input(form, variant_code, **kw), variant)


def every_layout() -> list[tuple[FormSpec, Variant | None]]:
    """One (spec, variant) per distinct template file."""
    seen = set()
    out = []
    for spec in all_specs().values():
        for variant in (spec.variants or (None,)):
            name = spec.template_name(variant)
            if name not in seen:
                seen.add(name)
                out.append((spec, variant))
    return out


# ---- cached sample documents (one LibreOffice run per kind and process) ---------------------------

@dataclass(frozen=True)
class Rendered:
    label: str
    spec: FormSpec
    variant: Variant | None
    cleaned: dict
    identity: ident.Identity
    docx: bytes


@functools.cache
def rendered_samples() -> tuple[Rendered, ...]:
    """Every sample of tests.samples_data rendered to DOCX (distinct document ids)."""
    from tests.samples_data import all_samples

    out = []
    for i, (form, vcode, label, data) in enumerate(all_samples()):
        spec = get_spec(form)
        variant = spec.variant(vcode) if spec.variants else None
        cleaned = spec.validate(data, variant)
        identity = make_identity(spec, variant, f"TESTDOC{i:05d}")
        out.append(Rendered(label, spec, variant, cleaned, identity,
                            render_docx(spec, variant, cleaned, identity)))
    return tuple(out)


@functools.cache
def resaved_samples() -> dict[str, bytes]:
    """label -> the sample DOCX after a LibreOffice DOCX -> DOCX round trip."""
    samples = rendered_samples()
    return dict(zip([s.label for s in samples], libreoffice_resave([s.docx for s in samples]), strict=True))


@functools.cache
def pdf_samples() -> dict[str, bytes]:
    """label -> the sample as a stamped PDF (warm LibreOffice + QR stamper)."""
    samples = rendered_samples()
    pdfs = to_pdf([s.docx for s in samples])
    return {s.label: stamp(p, s.identity) for s, p in zip(samples, pdfs, strict=True)}


def sample_by_label(label: str) -> Rendered:
    return next(s for s in rendered_samples() if s.label == label)


def sample_labels() -> list[str]:
    from tests.samples_data import all_samples

    return [label for _f, _v, label, _d in all_samples()]


def assert_round_trip(sample: Rendered, parsed) -> None:
    """The parsed form equals what was rendered: same form and variant, no errors, every printed
    field read back with the input's value (TEXT compared up to line-wrap whitespace, masked ID
    numbers as masked), and ``compare`` finds nothing changed."""
    from forms.spec import Kind
    from forms.validators import mask_id
    from parsers.compare import canonical_text, compare, printed_fields

    spec, variant, cleaned = sample.spec, sample.variant, sample.cleaned
    assert parsed.form == spec.code
    assert parsed.variant == (variant.code if variant else None)
    assert parsed.errors == {}, parsed.errors

    def same(f, want, got):
        if f.kind == Kind.ID_NUMBER and f.mask_on_print and want and not f.prints_full(cleaned):
            return got == mask_id(want)
        if f.kind == Kind.TEXT and isinstance(want, str) and isinstance(got, str):
            return canonical_text(want) == canonical_text(got)
        if f.kind == Kind.MULTI:
            return sorted(want or []) == sorted(got or [])
        return want == got

    for name, columns in printed_fields(spec, variant).items():
        f = spec.field(name)
        assert name in parsed.values, f"{name} not read back"
        got = parsed.values[name]
        want = cleaned.get(name)
        if f.kind == Kind.TABLE:
            want = want or []
            assert len(got) == len(want), (name, len(got), len(want))
            for i, (w, g) in enumerate(zip(want, got, strict=True)):
                for c in columns:
                    assert same(c, w.get(c.name), g.get(c.name)), (f"{name}[{i}].{c.name}", w.get(c.name),
                                                                    g.get(c.name))
        else:
            assert same(f, want, got), (name, want, got)
    changes = compare(spec, variant, cleaned, parsed)
    assert {p: c for p, c in changes.items() if c.status != "unchanged"} == {}
