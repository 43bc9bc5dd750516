"""Every page reachable from the navigation, for every demo role, through the Flask client: each
link a page offers opens (never a 403, 404 or 500 for the user it was offered to), and each page's
text is Chinese — no English status code, no Python literal (``None``/``True``), no ISO date where
a Chinese one is expected. The browser tests (tests/test_web_browser.py) check the same text in
real Chromium for the navigation's own pages; this walks every link below them too (one page per
kind of address: ``/cases/<id>`` once or twice, not every case)."""

from __future__ import annotations

import html as htmllib
import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from cases.accounts.demo import DEMO_ACCOUNTS
from tests.conftest_browser import WORD, english_words

pytestmark = pytest.mark.slow
HTML = {"Accept": "text/html"}
# downloads, the API, static files, logging out: not pages
SKIP = re.compile(r"^/(api/|static/|logout)|\.(pdf|docx|xlsx|zip|png|svg|csv|json)(\?|$)"
                  r"|/(pdf|docx|xlsx|zip|crop|result|download)(\?|$)|[?&]format=")
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
PER_KIND = 1      # pages opened per kind of address
MAX_PAGES = 120   # per role


class _Text(HTMLParser):
    """The text a person sees: without scripts, styles, hidden elements and values marked
    ``data-ascii`` (login names, key ids, file names)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.ascii: list[str] = []
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, hidden, ascii)

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        a = dict(attrs)
        hidden = tag in ("script", "style", "template") or "hidden" in a
        ascii_ = "data-ascii" in a
        if self.stack:
            hidden = hidden or self.stack[-1][1]
            ascii_ = ascii_ or self.stack[-1][2]
        self.stack.append((tag, hidden, ascii_))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        hidden, ascii_ = (self.stack[-1][1], self.stack[-1][2]) if self.stack else (False, False)
        if not hidden:
            (self.ascii if ascii_ else self.parts).append(data)


def _visible(page: str) -> tuple[str, set[str]]:
    p = _Text()
    p.feed(page)
    return " ".join(p.parts), {w for t in p.ascii for w in WORD.findall(t)}


def _kind(path: str) -> str:
    """``/cases/12?tab=x`` and ``/cases/7?tab=y`` are one kind of address."""
    parts = urlsplit(path)
    base = re.sub(r"/(?=[0-9A-Z]*\d)[0-9A-Za-z_-]{1,40}(?=/|$)", "/<id>", parts.path)
    keys = sorted(k.split("=")[0] for k in parts.query.split("&") if k)
    return base + ("?" + "&".join(keys) if keys else "")


@pytest.fixture
def demo_tokens(app, demo, app_session):
    from sqlalchemy import select

    from cases.accounts import service as accounts
    from cases.accounts.demo import create_demo_accounts
    from cases.accounts.models import User

    create_demo_accounts(app_session, app.extensions["baoxue_hasher"])
    out = {}
    for user in app_session.scalars(select(User)):
        new = accounts.create_token(app_session, user, name="页面检查", expires_days=None, by="test")
        out[user.username] = new.token
    app_session.commit()
    return out


@pytest.mark.parametrize("username", [u for u, *_ in DEMO_ACCOUNTS])
def test_every_link_of_every_page_opens_and_reads_in_chinese(app, demo_tokens, username):
    from tests.conftest import client_for

    client = client_for(app, demo_tokens[username])
    queue, seen, kinds, problems, posts = deque(["/"]), set(), {}, [], set()
    opened = 0
    while queue and opened < MAX_PAGES:
        path, came_from = queue.popleft() if isinstance(queue[0], tuple) else (queue.popleft(), None)
        if path in seen:
            continue
        seen.add(path)
        kind = _kind(path)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kinds[kind] > PER_KIND:
            continue
        opened += 1
        r = client.get(path, headers=HTML)
        if r.status_code != 200:
            problems.append(f"{path} (linked from {came_from}): HTTP {r.status_code}")
            continue
        if r.mimetype != "text/html":
            continue
        page = r.get_data(as_text=True)
        text, data = _visible(page)
        bad = english_words(text, data)
        if bad:
            problems.append(f"{path}: English or Python literals {bad}")
        if page.count('aria-current="page"') > 1:
            problems.append(f"{path}: more than one navigation entry marked current")
        if ISO.search(text):
            problems.append(f"{path}: ISO date {ISO.findall(text)[:3]}")
        for form in re.findall(r'<form\b[^>]*\bmethod="post"[^>]*>|\bhx-post="[^"]+"', page, flags=re.I):
            m = re.search(r'(?:action|hx-post)="([^"]+)"', form)
            if m:
                posts.add((urlsplit(htmllib.unescape(m.group(1))).path, path))
        for href in re.findall(r'<a\b[^>]*\bhref="([^"#]+)', page):
            url = urlsplit(urljoin("http://localhost" + path, htmllib.unescape(href)))
            if url.netloc != "localhost":
                continue
            target = url.path + ("?" + url.query if url.query else "")
            if not SKIP.search(target) and target not in seen:
                queue.append((target, path))
    # every form a page offers (POST) is one the user's roles may send: an action offered and then
    # refused is a 403 after the clerk filled it in
    from web.auth.core import PUBLIC, declared_action

    assert posts, "no form found: every user has at least 我的账号's password form"
    allowed = set(client.get("/api/v1/me").get_json()["actions"])
    adapter = app.url_map.bind("localhost")
    for target, came_from in sorted(posts):
        endpoint, _ = adapter.match(target, method="POST")
        action = declared_action(endpoint, "POST", app)
        if action != PUBLIC and action not in allowed:
            problems.append(f"{came_from} offers a form to {target} ({action}) that {username} may not send")
    assert opened >= 5, f"{username}: only {opened} pages reached"
    assert not problems, f"{username}:\n" + "\n".join(problems)
