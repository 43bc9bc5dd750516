"""Accounts: create and disable users, check passwords (argon2), TOTP second factor, API tokens,
and the ``Principal`` the policy reasons about. No Flask here: the web layer and the operator CLI
both call these functions. Every change is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.accounts import policy
from cases.accounts.models import ApiToken, User
from cases.store import audit
from cases.store.models import Org, utcnow
from forms.errors import BaoxueError, Forbidden, NotFound, ValidationFailed

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,39}$")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "bx_"
# A token's last-use time is written at most this often (a write on every request would turn
# every read into a write).
TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)
TOTP_ISSUER = "保学 Baoxue"
_COMMON_PASSWORDS = {"password", "password1", "1234567890", "12345678910", "qwertyuiop", "1q2w3e4r5t",
                     "abc1234567", "woaini1314", "a123456789", "admin12345", "baoxue1234"}


class LoginFailed(BaoxueError):
    """Wrong user name, password or code, or a disabled account: one message for all, so the
    answer does not tell which accounts exist."""

    code = "login_failed"
    http_status = 401


class TotpRequired(LoginFailed):
    code = "totp_required"


def default_hasher() -> PasswordHasher:
    """argon2id with the library's default parameters (RFC 9106 low-memory profile)."""
    return PasswordHasher()


def cheap_hasher() -> PasswordHasher:
    """Fast argon2id parameters for tests only (the stored hash is still argon2id)."""
    from argon2 import profiles

    return PasswordHasher.from_parameters(profiles.CHEAPEST)


# ---- principals ---------------------------------------------------------------------------------------

def principal_of(session: Session, user: User, work_org: Org | None = None) -> policy.Principal:
    """The policy's view of ``user``; ``work_org`` narrows it to a node of their own subtree
    (``X-Baoxue-Org``). A node outside the subtree is refused (403)."""
    org = session.get(Org, user.org_id) if user.org_id is not None else None
    if work_org is not None:
        if org is not None and not work_org.path.startswith(org.path):
            raise Forbidden(f"机构 {work_org.id}（{work_org.name}）不在您的管辖范围内")
        org = work_org
    area_path = None
    if org is not None:  # the node a unit serves: its parent (a department's county)
        area_path = org.path if org.parent_id is None else org.path[: org.path.rstrip("/").rfind("/") + 1]
    return policy.Principal(user_id=user.id, username=user.username, roles=frozenset(user.roles or ()),
                            org_id=org.id if org else None, org_path=org.path if org else None,
                            area_path=area_path, level=org_level(org) if org is not None else None)


def org_level(org: Org) -> policy.Level | None:
    """The level of ``org``'s kind, or of its nearest ancestor of a known kind (None: none known)."""
    node: Org | None = org
    while node is not None:
        if node.kind in policy.KIND_LEVELS:
            return policy.KIND_LEVELS[node.kind]
        node = node.parent
    return None


# ---- users --------------------------------------------------------------------------------------------

def check_password_strength(password: str, username: str = "") -> str | None:
    """Why ``password`` is too weak (None: good enough)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少{MIN_PASSWORD_LENGTH}位"
    if password.lower() in _COMMON_PASSWORDS or (username and username.lower() in password.lower()):
        return "密码太常见或包含用户名"
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    if classes < 2:
        return "密码应包含字母、数字、符号中的至少两类"
    return None


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"用户 {username} 不存在")
    return user


def create_user(session: Session, *, username: str, display_name: str, org_id: int | None,
                roles: list[str], password: str, hasher: PasswordHasher, by: str,
                by_principal: policy.Principal | None = None) -> User:
    """Open an account. ``by_principal`` (an administrator acting through the service) may only
    open accounts at their node and below (``policy.may_assign``); the operator CLI passes None.
    Errors name every bad field (422); nothing is written then."""
    errors: dict[str, str] = {}
    username = (username or "").strip()
    display_name = (display_name or "").strip() or username
    if not USERNAME_RE.match(username):
        errors["username"] = "2-40位字母、数字、点、下划线或连字符，以字母或数字开头"
    elif session.scalar(select(User.id).where(User.username == username)) is not None:
        errors["username"] = f"用户名 {username} 已被使用"
    if len(display_name) > 40:
        errors["display_name"] = "不超过40个字"
    org = None
    if org_id is not None:
        org = session.get(Org, org_id)
        if org is None:
            errors["org_id"] = f"机构 {org_id} 不存在"
    roles = list(dict.fromkeys(roles or []))
    if not roles:
        errors["roles"] = "至少一个角色"
    unknown = [r for r in roles if r not in policy.ROLES]
    if unknown:
        errors["roles"] = "未知角色：" + "、".join(unknown) + "（可选：" + "、".join(policy.ROLES) + "）"
    weak = check_password_strength(password or "", username)
    if weak:
        errors["password"] = weak
    if errors:
        raise ValidationFailed(f"有{len(errors)}处输入错误", fields=errors)
    if by_principal is not None:
        _check_grants(by_principal, roles, org.path if org else None, username)
    user = User(username=username, display_name=display_name, org_id=org.id if org else None, roles=roles,
                password_hash=hasher.hash(password), created_by=by)
    session.add(user)
    session.flush()
    audit.record(session, who=by, org=org, action="user.create", target=f"user:{user.id}",
                 after={"username": username, "display_name": display_name, "org_id": user.org_id, "roles": roles})
    return user


def _check_grants(by: policy.Principal, roles: list[str], org_path: str | None, username: str) -> None:
    """Refuse (403, nothing written) when ``by`` may not give one of ``roles`` at ``org_path``;
    the refusal is logged as a warning (who tried to give which role to whom)."""
    for role in roles:
        why = policy.may_assign(by, role, org_path)
        if why:
            log.warning("user %s refused: role %s for account %s at %s: %s", by.username, role, username,
                        org_path or "(installation)", why)
            raise Forbidden(why, fields={"roles": why})


def check_manageable(by: policy.Principal, user: User) -> None:
    """Refuse (403) when ``by`` could not have given ``user`` one of their roles: no administrator
    disables, enables or revokes the tokens of an account above their level (a peer
    administrator, a 市（州） account)."""
    why = manage_refusal(by, user)
    if why:
        raise Forbidden(why)


def manage_refusal(by: policy.Principal, user: User) -> str | None:
    """Why ``by`` may not manage ``user`` (None: they may): see ``check_manageable``."""
    path = user.org.path if user.org is not None else None
    for role in user.roles or ():
        why = policy.may_assign(by, role, path)
        if why:
            return f"不能管理账号 {user.username}：{why}"
    return None


def set_disabled(session: Session, user: User, disabled: bool, *, by: str) -> User:
    """Disable (or enable again) an account. Disabling ends its sessions and revokes its tokens at
    once; the account and its audit trail stay."""
    if user.disabled == disabled:
        return user
    user.disabled = disabled
    user.auth_epoch += 1
    if disabled:
        user.disabled_at, user.disabled_by = utcnow(), by[:40]
        now = utcnow()
        for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                            ApiToken.revoked_at.is_(None))):
            token.revoked_at = now
    audit.record(session, who=by, org=user.org_id, action="user.disable" if disabled else "user.enable",
                 target=f"user:{user.id}", after={"username": user.username})
    return user


def set_roles(session: Session, user: User, roles: list[str], *, by: str,
              by_principal: policy.Principal | None = None) -> User:
    """Replace a user's roles (same checks as creating the account)."""
    roles = list(dict.fromkeys(roles or []))
    unknown = [r for r in roles if r not in policy.ROLES]
    if not roles or unknown:
        why = "未知角色：" + "、".join(unknown) if unknown else "至少一个角色"
        raise ValidationFailed("角色无效", fields={"roles": why})
    if by_principal is not None:  # roles given and roles taken away alike
        _check_grants(by_principal, [*roles, *(r for r in user.roles or () if r not in roles)],
                      user.org.path if user.org is not None else None, user.username)
    before = list(user.roles or ())
    user.roles = roles
    user.auth_epoch += 1
    audit.record(session, who=by, org=user.org_id, action="user.roles", target=f"user:{user.id}",
                 before={"roles": before}, after={"roles": roles})
    return user


def authenticate(session: Session, username: str, password: str, totp_code: str | None,
                 hasher: PasswordHasher) -> User:
    """The user whose name and password (and TOTP code, when enabled) match; ``LoginFailed``
    otherwise. Hashes made with older parameters are upgraded on the way."""
    user = session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        hasher.hash(password or "-")  # spend the same time as for a real account
        raise LoginFailed("用户名或密码错误")
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise LoginFailed("用户名或密码错误") from None
    if user.disabled:
        raise LoginFailed("用户名或密码错误")
    if user.totp_enabled:
        if not totp_code:
            raise TotpRequired("请输入身份验证器中的6位动态码", fields={"totp": "必填"})
        check_totp(user, totp_code)
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    audit.record(session, who=user.username, org=user.org_id, action="user.login", target=f"user:{user.id}")
    return user


def change_password(session: Session, user: User, old: str, new: str, hasher: PasswordHasher) -> None:
    """Change one's own password: the old one must match; every other session of the user ends."""
    try:
        hasher.verify(user.password_hash, old or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise ValidationFailed("原密码不正确", fields={"old_password": "不正确"}) from None
    weak = check_password_strength(new or "", user.username)
    if weak:
        raise ValidationFailed(weak, fields={"new_password": weak})
    if old == new:
        raise ValidationFailed("新密码不能与原密码相同", fields={"new_password": "与原密码相同"})
    set_password(session, user, new, hasher, by=user.username)


def set_password(session: Session, user: User, new: str, hasher: PasswordHasher, *, by: str) -> None:
    """Set a password (own change, or the operator's reset); ends the user's sessions."""
    weak = check_password_strength(new or "", user.username)
    if weak:
        raise ValidationFailed(weak, fields={"password": weak})
    user.password_hash = hasher.hash(new)
    user.password_changed_at = utcnow()
    user.auth_epoch += 1
    audit.record(session, who=by, org=user.org_id, action="user.password", target=f"user:{user.id}")


# ---- TOTP ---------------------------------------------------------------------------------------------

def totp_offered(user: User) -> bool:
    """County-level and administrator accounts may turn on the second factor."""
    return any(policy.ROLES[r].totp_offered for r in (user.roles or ()) if r in policy.ROLES)


def new_totp_secret(user: User) -> str:
    """A new secret for the user's authenticator app; stored only by ``totp_confirm``."""
    if not totp_offered(user):
        raise Forbidden("此账号的角色不提供两步验证")
    if user.totp_enabled:
        raise ValidationFailed("两步验证已开启", fields={"totp": "已开启"})
    return pyotp.random_base32()


def totp_uri(username: str, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def check_totp(user: User, code: str, *, now: float | None = None) -> None:
    """Accept a 6-digit code of the current 30-second step (one step of clock drift either way),
    never the same step twice."""
    from pyotp.utils import strings_equal

    code = re.sub(r"\s", "", code or "")
    if not user.totp_secret or not re.fullmatch(r"\d{6}", code):
        raise LoginFailed("动态码错误", fields={"totp": "应为6位数字"})
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(dt.datetime.now(dt.UTC) if now is None else now)
    for step in (current - 1, current, current + 1):
        if strings_equal(code, totp.generate_otp(step)):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                raise LoginFailed("此动态码已用过，请等下一个", fields={"totp": "已用过"})
            user.totp_last_step = step
            return
    raise LoginFailed("动态码错误", fields={"totp": "不正确"})


def totp_confirm(session: Session, user: User, secret: str, code: str) -> None:
    """Turn the second factor on once ``code`` shows the app holds ``secret``."""
    if user.totp_enabled:
        raise ValidationFailed("两步验证已开启", fields={"totp": "已开启"})
    user.totp_secret, user.totp_last_step = secret, None
    check_totp(user, code)
    user.totp_enabled = True
    audit.record(session, who=user.username, org=user.org_id, action="user.totp_on", target=f"user:{user.id}")


def totp_disable(session: Session, user: User, *, by: str) -> None:
    user.totp_enabled, user.totp_secret, user.totp_last_step = False, None, None
    user.auth_epoch += 1
    audit.record(session, who=by, org=user.org_id, action="user.totp_off", target=f"user:{user.id}")


# ---- API tokens ---------------------------------------------------------------------------------------

def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    token: str  # shown once, never stored


def create_token(session: Session, user: User, *, name: str, expires_days: int | None, by: str) -> NewToken:
    """A new bearer token for ``user`` (256 random bits). Only its SHA-256 is kept."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed("令牌名称必填，不超过80字", fields={"name": "必填"})
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise ValidationFailed("有效期应为1-3650天", fields={"expires_days": "1-3650"})
    if user.disabled:
        raise Forbidden(f"用户 {user.username} 已停用")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:10], created_by=by,
                   expires_at=utcnow() + dt.timedelta(days=expires_days) if expires_days else None)
    session.add(row)
    session.flush()
    audit.record(session, who=by, org=user.org_id, action="token.create", target=f"token:{row.id}",
                 after={"user": user.username, "name": name, "expires_at": row.expires_at})
    return NewToken(row, token)


def revoke_token(session: Session, token_id: int, *, by: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"令牌 {token_id} 不存在")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, who=by, org=row.user.org_id, action="token.revoke", target=f"token:{row.id}",
                     after={"user": row.user.username, "name": row.name})
    return row


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None (unknown, revoked, expired token, or a
    disabled user). Keeps the token's last-use time (to the minute)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    user = row.user
    if user.disabled:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        session.commit()
    return user


def token_json(row: ApiToken) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "user": row.user.username,
            "created_at": row.created_at, "expires_at": row.expires_at, "last_used_at": row.last_used_at,
            "revoked": row.revoked_at is not None}


def user_json(user: User) -> dict:
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "org_id": user.org_id,
            "org_name": user.org.name if user.org is not None else "全系统", "roles": list(user.roles or ()),
            "role_labels": policy.role_labels(user.roles or ()), "disabled": user.disabled,
            "totp_enabled": user.totp_enabled, "totp_offered": totp_offered(user),
            "created_at": user.created_at, "last_login_at": user.last_login_at}
