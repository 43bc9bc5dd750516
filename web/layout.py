"""What every page shares: the vendored static files (htmx, the style sheet, the page script), the
navigation by role and the message catalogue (``web.messages``) as Jinja globals and filters."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, current_app, g, request, send_from_directory, url_for

from web.auth import can, public
from web.messages import NAV, init_messages, t
from web.workqueue import page_url

STATIC_DIR = Path(__file__).resolve().parent / "static"

bp = Blueprint("ui", __name__)


@bp.route("/static/<path:filename>")
@public
def static(filename: str):
    """htmx (vendored from the npm package htmx.org, no CDN), the style sheet and the page script."""
    return send_from_directory(STATIC_DIR, filename, max_age=3600)


def nav_items() -> list[dict]:
    """The navigation of the logged-in user: entries whose page exists and whose action the user's
    roles grant somewhere."""
    if g.get("principal") is None:
        return []
    out = []
    for key, endpoint, action in NAV:
        if endpoint not in current_app.view_functions or not can(action):
            continue
        url = url_for(endpoint)
        out.append({"text": t(key), "url": url, "endpoint": endpoint})
    # one entry is the current one: this page's own, else the longest address the path lies under
    # (/ledgers/indicators is 指标, not also 台账)
    current = next((i for i in out if i["endpoint"] == request.endpoint), None)
    if current is None:
        under = [i for i in out if i["url"] != "/" and (request.path == i["url"]
                                                        or request.path.startswith(i["url"].rstrip("/") + "/"))]
        current = max(under, key=lambda i: len(i["url"]), default=None)
    for i in out:
        i["active"] = i is current
    return out


def person(username: str | None) -> str:
    """A user as people know them: the display name of the account (cached for the request);
    names written by the system (demo data, jobs) read “系统”."""
    if not username:
        return "—"
    cache = g.setdefault("person_names", {})
    if username not in cache:
        from sqlalchemy import select

        from cases.accounts.models import User
        from web.context import db

        name = db().scalar(select(User.display_name).where(User.username == username))
        cache[username] = name or (username if not username.isascii() else "系统")
    return cache[username]


def init_layout(app: Flask) -> None:
    init_messages(app)
    app.register_blueprint(bp)
    app.jinja_env.globals["nav_items"] = nav_items
    app.jinja_env.globals["can"] = can
    app.jinja_env.filters["person"] = person
    app.jinja_env.globals["url_or_none"] = page_url
