"""Account pages: log in (password, then the TOTP code when enabled), log out, the account page
(change password, second factor, personal API tokens)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import segno
from flask import Blueprint, g, redirect, render_template, request, session, url_for

from cases.accounts import service as accounts
from cases.accounts.models import ApiToken
from forms.errors import BaoxueError, Forbidden
from web.auth.core import account, hasher, limiter, login_session, logout_session, public, requires
from web.context import db

bp = Blueprint("auth", __name__)

# Login throttling (Flask-Limiter): per client address, and per user name for failed attempts
# only, so that guessing one account's password from many addresses is slowed down as well.
LOGIN_LIMIT_PER_ADDRESS = "20 per minute"
LOGIN_FAILURES_PER_USERNAME = "5 per minute;30 per hour"


def _username_key() -> str:
    return "login:" + (request.form.get("username") or "").strip().lower()


def _failed(response) -> bool:
    return response.status_code != 302


def _safe_next(value: str | None) -> str:
    """Only a path of this site (no scheme, no host): a login link cannot send people elsewhere."""
    if not value:
        return url_for("pages.index")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return url_for("pages.index")
    return value


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(LOGIN_LIMIT_PER_ADDRESS, methods=["POST"])
@limiter.limit(LOGIN_FAILURES_PER_USERNAME, key_func=_username_key, methods=["POST"], deduct_when=_failed)
def login():
    """The login page. A wrong name or password and a disabled account get the same answer."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.get("account") is not None:
            return redirect(next_url)
        return render_template("auth/login.html", next=next_url, error=None, need_totp=False, username="")
    username = (request.form.get("username") or "").strip()
    session_db = db()
    try:
        user = accounts.authenticate(session_db, username, request.form.get("password") or "",
                                     request.form.get("totp") or None, hasher())
    except accounts.TotpRequired as e:
        session_db.commit()
        return render_template("auth/login.html", next=next_url, error=e.message, need_totp=True,
                               username=username), 401
    except accounts.LoginFailed as e:
        session_db.commit()  # a TOTP step that was used stays used
        return render_template("auth/login.html", next=next_url, error=e.message,
                               need_totp=bool(request.form.get("totp")), username=username), 401
    session_db.commit()
    login_session(user)
    return redirect(next_url)


@bp.route("/logout", methods=["POST"])
@requires("account.self")
def logout():
    logout_session()
    return redirect(url_for("auth.login"))


def _account_page(status: int = 200, **extra):
    user = account()
    tokens = db().query(ApiToken).filter(ApiToken.user_id == user.id).order_by(ApiToken.id.desc()).all()
    return render_template("auth/account.html", user=user, info=accounts.user_json(user), tokens=tokens,
                           message=extra.pop("message", None), error=extra.pop("error", None),
                           errors=extra.pop("errors", {}), new_token=extra.pop("new_token", None),
                           **extra), status


@bp.route("/account")
@requires("account.self")
def account_page():
    """The user's own account: who they are, password, second factor, API tokens."""
    return _account_page()


@bp.route("/account/password", methods=["POST"])
@requires("account.self")
def change_password():
    user = account()
    f = request.form
    if f.get("new_password") != f.get("new_password2"):
        return _account_page(422, error="两次输入的新密码不一致", errors={"new_password2": "不一致"})
    try:
        accounts.change_password(db(), user, f.get("old_password") or "", f.get("new_password") or "", hasher())
    except BaoxueError as e:
        db().rollback()
        return _account_page(e.http_status, error=e.message, errors=e.fields)
    db().commit()
    login_session(user)  # this session continues with the new epoch; all others end
    return _account_page(message="密码已修改，其他设备上的登录已失效")


@bp.route("/account/totp", methods=["GET", "POST"])
@requires("account.self")
def totp_enrol():
    """Turn on the second factor: scan the QR code with an authenticator app, enter a code. The
    secret waits in the session until a correct code proves the app holds it."""
    user = account()
    if user.totp_enabled:
        return redirect(url_for("auth.account_page"))
    error = None
    secret = session.get("totp_pending")
    if request.method == "POST" and secret:
        try:
            accounts.totp_confirm(db(), user, secret, request.form.get("code") or "")
        except BaoxueError as e:
            db().rollback()
            error = e.message
        else:
            db().commit()
            session.pop("totp_pending", None)
            return _account_page(message="两步验证已开启：以后登录时需输入动态码")
    if not secret:
        secret = accounts.new_totp_secret(user)
        session["totp_pending"] = secret
    buf = io.BytesIO()
    segno.make(accounts.totp_uri(user.username, secret), error="m").save(buf, kind="svg", scale=5, border=2)
    return render_template("auth/totp.html", qr_svg=buf.getvalue().decode(), secret=secret, error=error), \
        (422 if error else 200)


@bp.route("/account/totp/off", methods=["POST"])
@requires("account.self")
def totp_off():
    user = account()
    try:
        accounts.check_totp(user, request.form.get("code") or "")
    except BaoxueError as e:
        db().commit()
        return _account_page(422, error=e.message)
    accounts.totp_disable(db(), user, by=user.username)
    db().commit()
    login_session(user)
    return _account_page(message="两步验证已关闭")


@bp.route("/account/tokens", methods=["POST"])
@requires("account.self")
def create_token():
    """A personal API token; shown once on the page that answers."""
    user = account()
    raw_days = (request.form.get("expires_days") or "").strip()
    try:
        days = int(raw_days) if raw_days else None
    except ValueError:
        return _account_page(422, error="有效期应为天数", errors={"expires_days": "整数"})
    try:
        new = accounts.create_token(db(), user, name=request.form.get("name") or "", expires_days=days,
                                    by=user.username)
    except BaoxueError as e:
        db().rollback()
        return _account_page(e.http_status, error=e.message, errors=e.fields)
    db().commit()
    return _account_page(201, message="令牌已生成：只显示这一次，请立即复制保存", new_token=new.token)


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@requires("account.self")
def revoke_token(token_id: int):
    user = account()
    row = db().get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise Forbidden("只能吊销本人的令牌")
    accounts.revoke_token(db(), token_id, by=user.username)
    db().commit()
    return _account_page(message=f"令牌“{row.name}”已吊销")
