"""Printed documents a clerk can sign as they are, checked by machine on every form × variant ×
data size (minimal, typical, longest values the validators allow): the layout rules of
``forms.printcheck`` (valid PDF with embedded configured faces, QR and page number on every page, no
page holding only a 落款/seal/抄送/signature table, no heading ending a page, keep-together blocks
whole, nothing outside the type area or its cell, every value printed) and the approved golden page
images (``tests/golden``, regenerated and reviewed with ``python -m tests.golden``).

Every document is rendered once for the module (one LibreOffice batch)."""

from __future__ import annotations

import pytest

from forms import printcheck, tools
from tests import golden
from tests._render_helpers import SECRET
from tests.samples_sizes import sized_samples

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")]

KEYS = [f"{label}-{size}" for label, size, *_ in sized_samples()]
# Known failures (key -> reason), marked strict xfail.
KNOWN: dict[str, str] = {}


@pytest.fixture(scope="module")
def printed() -> dict[str, golden.Printed]:
    return {p.key: p for p in golden.render_all()}


@pytest.mark.parametrize("key", [pytest.param(k, marks=pytest.mark.xfail(reason=KNOWN[k], strict=True))
                                 if k in KNOWN else k for k in KEYS])
def test_layout_rules_hold(printed, key):
    p = printed[key]
    problems = printcheck.check_document(p.pdf, p.spec, p.variant, p.cleaned, secret=SECRET, doc_id=p.doc_id)
    assert [str(x) for x in problems] == []


@pytest.mark.parametrize("key", KEYS)
def test_pages_match_the_approved_images(printed, key):
    pages = golden.pages_png(printed[key].pdf)
    approved = sorted(golden.GOLDEN_DIR.glob(f"{key}-p[0-9][0-9].png"))
    assert len(pages) == len(approved), (
        f"{key}: {len(pages)} pages, {len(approved)} approved: review `python -m tests.golden`")
    for no, png in enumerate(pages, 1):
        same, how = golden.compare(png, (golden.GOLDEN_DIR / golden.golden_name(key, no)).read_bytes())
        assert same, f"{key} page {no} {how}: review `python -m tests.golden`"


def test_the_checker_finds_what_it_looks_for(printed):
    """The rules fire: a value the layout does not print is reported missing, a page whose code is
    for another page is reported, and the whole file is refused when a font is not a configured face."""
    p = printed["referral_letter-xiecha-typical"]
    cleaned = {**p.cleaned, "facts": "这句话没有印在函件上"}
    rules = {x.rule for x in printcheck.layout_problems(p.pdf, p.spec, p.variant, cleaned)}
    assert "missing" in rules
    assert printcheck.qr_problems(p.pdf, SECRET, doc_id="ANOTHERDOC01")
    assert printcheck.pdf_problems(p.pdf, faces=("FandolFang",))  # Noto/DejaVu not allowed here
    assert printcheck.pdf_problems(b"%PDF-1.4 not really") != []

