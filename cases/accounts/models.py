"""Accounts: users and their API tokens.

A user belongs to one organisation node (``org_id``; ``None`` for the installation's system
administrator) and holds roles from ``cases.accounts.policy.ROLES``. Users are never deleted —
their audit trail stays — only disabled. Only a SHA-256 of an API token is stored.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cases.store.models import Base, Org, utcnow


class User(Base):
    """A person who logs in. ``auth_epoch`` is part of the session id: raising it (password
    change, disabling) ends every session of the user at once."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    roles: Mapped[list] = mapped_column(default=list)
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[dt.datetime | None] = mapped_column()
    disabled_by: Mapped[str | None] = mapped_column(String(40))
    # Base32 TOTP secret; ``totp_enabled`` only once the user proved their app shows valid codes.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Last TOTP time step used, so a code cannot be replayed inside its 30 s window.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40))
    last_login_at: Mapped[dt.datetime | None] = mapped_column()

    org: Mapped[Org | None] = relationship()

    __table_args__ = (CheckConstraint("username <> ''", name="username_not_empty"),)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"


class ApiToken(Base):
    """A bearer token for scripts and integrations. The token itself is shown once at creation;
    the table keeps its SHA-256 (``token_hash``) and the first characters (``prefix``) so a person
    can tell their tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

    user: Mapped[User] = relationship()
