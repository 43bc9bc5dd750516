"""Browser test fixtures (a pytest plugin, see tests/conftest.py): a live server and real Chromium.

* ``live_server`` (one per test module): the application on a free port in a thread (werkzeug,
  threaded), on its own SQLite file with the demo county, one account per demo role (password
  ``DEMO_PASSWORD``) and a second county (白河县) with its own 控辍办 account ``other.bureau`` — who
  must see nothing of 青禾县.
* ``browser`` (one per test module): Debian's ``chromium`` (``/usr/bin/chromium``) driven by
  Playwright for Python; Playwright's own browser downloads are never used.
* ``web``: ``web.login("demo.school")`` gives a page logged in as that user (its own browser
  context, 1366×768 unless ``viewport=`` says otherwise); ``web.visit(page, "/cases", "name")`` opens
  a page, saves a screenshot under ``output/screenshots/`` and checks its text: no English status
  code, no Python literal (``None``, ``True``), no ASCII word at all except the few listed in
  ``ALLOWED_WORDS`` (file kinds, units) — the issue's "all text in Chinese".

Tests using them are marked ``browser`` (they run in scripts/test.sh with the rest).
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "output" / "screenshots"
CHROMIUM = os.environ.get("BAOXUE_CHROMIUM", "/usr/bin/chromium")
OTHER_COUNTY = "白河县"
OTHER_USER = "other.bureau"

# ASCII words a Chinese page may still show: names of file formats and standards, units.
ALLOWED_WORDS = {"PDF", "DOCX", "Word", "XLSX", "CSV", "PNG", "JPEG", "JPG", "TIFF", "TIF", "QR", "API", "TOTP",
                 "HTTP", "ID", "OCR", "JSON", "KB", "MB", "GB", "UTC", "Baoxue"}
WORD = re.compile(r"[A-Za-z_][A-Za-z_]{2,}")
EXTENSION = re.compile(r"\.[A-Za-z0-9]{2,5}\b")


def english_words(text: str, extra: set[str] = frozenset()) -> list[str]:
    """ASCII words in ``text`` that a Chinese page should not show (None, True, issued, ...). File
    name extensions (``回证.png``, “支持 .docx”) are names, not words."""
    text = EXTENSION.sub("", text)
    return sorted({w for w in WORD.findall(text) if w not in ALLOWED_WORDS and w not in extra})


@dataclasses.dataclass
class LiveServer:
    url: str
    app: object
    county_id: int
    other_county_id: int

    def session(self):
        return self.app.extensions["baoxue"].session_factory()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from werkzeug.serving import make_server

    from app import create_app
    from cases.accounts import service as accounts
    from cases.accounts.demo import create_demo_accounts
    from cases.demo import load_demo
    from cases.store.db import session_scope
    from cases.store.models import Org

    tmp = tmp_path_factory.mktemp("live")
    app = create_app({
        "TESTING": True,
        "HUEY_IMMEDIATE": True,
        "REDIS_URL": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        "DATABASE_URL": f"sqlite:///{tmp / 'live.db'}",
        "OUTPUT_DIR": tmp / "output",
        "CREATE_SCHEMA": True,
        "QR_HMAC_SECRET": "test-qr-secret",
        "SECRET_KEY": "test-browser",
        "PASSWORD_HASH": "cheap",
        "PDF_WORKERS": 1,
    })
    hasher = app.extensions["baoxue_hasher"]
    with session_scope(app.extensions["baoxue"].session_factory) as s:
        summary = load_demo(s, services=app.extensions["baoxue"])  # as on first run: notices issued
        create_demo_accounts(s, hasher)
        county = s.get(Org, summary.county_id)
        other = Org(kind="county", name=OTHER_COUNTY, parent_id=county.parent_id, code="419902",
                    doc_prefix="白教")
        s.add(other)
        s.flush()
        accounts.create_user(s, username=OTHER_USER, display_name="白河县控辍办", org_id=other.id,
                             roles=["county_bureau"], password=DEMO_PASSWORD, hasher=hasher, by="test")
        ids = (summary.county_id, other.id)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, *ids)
    finally:
        server.shutdown()
        thread.join(5)
        app.extensions["baoxue_engine"].dispose()


DEMO_PASSWORD = "baoxue-demo-2026"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


class Web:
    """Log in, visit, screenshot and check pages of the live server."""

    def __init__(self, server: LiveServer, browser, module: str):
        self.server = server
        self.browser = browser
        self.module = module
        self.contexts = []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def new_page(self, viewport=(1366, 768)):
        ctx = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN",
                                       accept_downloads=True)
        ctx.set_default_timeout(30_000)
        self.contexts.append(ctx)
        return ctx.new_page()

    def login(self, username: str, password: str = DEMO_PASSWORD, viewport=(1366, 768)):
        page = self.new_page(viewport)
        page.goto(self.server.url + "/login")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url, f"login as {username} failed: {page.inner_text('body')[:300]}"
        return page

    def url(self, path: str) -> str:
        return self.server.url + path

    def visit(self, page, path: str | None, name: str, *, allow: set[str] = frozenset(), status: int = 200):
        """Open ``path`` (None: stay on the current page), screenshot it as ``name`` and check
        its text. Returns the page's visible text."""
        if path is not None:
            response = page.goto(self.url(path))
            assert response is not None and response.status == status, \
                f"{path}: HTTP {response.status if response else '?'}: {page.inner_text('body')[:500]}"
        return self.check(page, name, allow=allow)

    def check(self, page, name: str, *, allow: set[str] = frozenset()) -> str:
        page.wait_for_load_state()
        page.screenshot(path=str(SCREENSHOTS / f"{self.module}-{name}.png"), full_page=True)
        text = page.inner_text("body")
        # values ASCII by nature (login names, key ids, hashes) are marked ``data-ascii`` by the page
        data = {w for t in page.locator("[data-ascii]").all_inner_texts() for w in WORD.findall(t)}
        bad = english_words(text, set(allow) | data)
        assert not bad, f"{name} ({page.url}) shows English or Python literals: {bad}"
        return text

    def close(self):
        for ctx in self.contexts:
            ctx.close()


@pytest.fixture
def web(live_server, browser, request):
    w = Web(live_server, browser, Path(request.node.fspath).stem.removeprefix("test_"))
    yield w
    w.close()
