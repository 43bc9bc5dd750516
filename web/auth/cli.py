"""Operator commands (Flask CLI), for the person who runs the server:

    flask --app app db upgrade
    flask --app app user create NAME --role admin                  # the first administrator
    flask --app app user create NAME --org ORG_ID --role ROLE [--role ROLE...] [--password-stdin]
    flask --app app user disable NAME | enable NAME | password NAME | totp-off NAME | list
    flask --app app token create NAME [--expires DAYS] [--label TEXT]   # prints the token once
    flask --app app token revoke ID | list [NAME]
    flask --app app audit verify [--anchor-file PATH]              # exit 1 naming the first broken entry
    flask --app app audit anchor                                    # anchor the head now (cron, daily)

An account without ``--org`` belongs to the whole installation: that is how the first
administrator is made on a fresh install (it can then create the top-level organisation and the
administrators below it). Every command is written to the audit log as ``cli:<login name>``.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app

from cases.accounts import policy
from cases.accounts import service as accounts
from cases.accounts.models import ApiToken, User
from cases.store import audit as auditlog
from cases.store.db import session_scope, upgrade_to_head
from forms.errors import BaoxueError


def _operator() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = os.environ.get("USER", "operator")
    return f"cli:{name}"[:40]


def _session():
    return session_scope(current_app.extensions["baoxue"].session_factory)


def _fail(e: BaoxueError) -> None:
    detail = "；".join(f"{k}：{v}" for k, v in e.fields.items())
    raise click.ClickException(e.message + (f"（{detail}）" if detail else ""))


def _ensure_schema() -> None:
    """A fresh install has no tables yet: migrate before the first account is made."""
    from sqlalchemy import inspect

    if "users" not in inspect(current_app.extensions["baoxue_engine"]).get_table_names():
        upgrade_to_head(current_app.config["DATABASE_URL"])


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")


def register(app: Flask) -> None:
    """Add the ``db``, ``user``, ``token`` and ``audit`` command groups to ``app``."""

    @app.cli.group("db", help="数据库")
    def db_group():
        pass

    @db_group.command("upgrade", help="把数据库迁移到最新版本（新装时先运行）")
    def db_upgrade():
        upgrade_to_head(current_app.config["DATABASE_URL"])
        click.echo("数据库已是最新版本")

    @app.cli.group("user", help="用户账号")
    def user_group():
        pass

    @user_group.command("create", help="开设账号。不加 --org 即全系统账号（新装时的第一个管理员）")
    @click.argument("username")
    @click.option("--org", "org_id", type=int, default=None, help="所属机构编号；不填为全系统")
    @click.option("--role", "roles", multiple=True, required=True,
                  type=click.Choice(list(policy.ROLES)), help="角色，可重复")
    @click.option("--display-name", default="", help="姓名（默认同用户名）")
    @click.option("--password-stdin", is_flag=True, help="从标准输入读一行作为密码")
    def user_create(username, org_id, roles, display_name, password_stdin):
        _ensure_schema()
        password = _read_password(password_stdin)
        try:
            with _session() as s:
                user = accounts.create_user(s, username=username, display_name=display_name, org_id=org_id,
                                            roles=list(roles), password=password,
                                            hasher=current_app.extensions["baoxue_hasher"], by=_operator())
                where = user.org.name if user.org is not None else "全系统"
                click.echo(f"已开设账号 {user.username}（id {user.id}，{where}，"
                           f"{'、'.join(policy.role_labels(user.roles))}）")
        except BaoxueError as e:
            _fail(e)

    def _set_disabled(username: str, disabled: bool) -> None:
        try:
            with _session() as s:
                user = accounts.get_user(s, username)
                accounts.set_disabled(s, user, disabled, by=_operator())
        except BaoxueError as e:
            _fail(e)
        click.echo(f"账号 {username} 已{'停用：登录和令牌立即失效' if disabled else '启用'}")

    @user_group.command("disable", help="停用账号（不删除；会话和令牌立即失效）")
    @click.argument("username")
    def user_disable(username):
        _set_disabled(username, True)

    @user_group.command("enable", help="重新启用账号（已吊销的令牌不恢复）")
    @click.argument("username")
    def user_enable(username):
        _set_disabled(username, False)

    @user_group.command("password", help="重设密码（用户忘记密码时）")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True)
    def user_password(username, password_stdin):
        password = _read_password(password_stdin)
        try:
            with _session() as s:
                accounts.set_password(s, accounts.get_user(s, username), password,
                                      current_app.extensions["baoxue_hasher"], by=_operator())
        except BaoxueError as e:
            _fail(e)
        click.echo(f"账号 {username} 的密码已重设，原有登录已失效")

    @user_group.command("totp-off", help="关闭两步验证（用户丢失手机时）")
    @click.argument("username")
    def user_totp_off(username):
        try:
            with _session() as s:
                accounts.totp_disable(s, accounts.get_user(s, username), by=_operator())
        except BaoxueError as e:
            _fail(e)
        click.echo(f"账号 {username} 的两步验证已关闭")

    @user_group.command("list", help="列出账号")
    def user_list():
        from sqlalchemy import select

        with _session() as s:
            for u in s.scalars(select(User).order_by(User.id)):
                where = u.org.name if u.org is not None else "全系统"
                state = "停用" if u.disabled else "启用"
                click.echo(f"{u.id}\t{u.username}\t{u.display_name}\t{where}\t{','.join(u.roles)}\t{state}")

    @app.cli.group("token", help="API 令牌")
    def token_group():
        pass

    @token_group.command("create", help="为用户生成 API 令牌（只显示一次）")
    @click.argument("username")
    @click.option("--expires", "days", type=int, default=None, help="有效天数；不填为长期")
    @click.option("--label", default="命令行生成", help="令牌名称（用途）")
    def token_create(username, days, label):
        try:
            with _session() as s:
                new = accounts.create_token(s, accounts.get_user(s, username), name=label, expires_days=days,
                                            by=_operator())
                token_id = new.row.id
        except BaoxueError as e:
            _fail(e)
        click.echo(f"令牌 {token_id}（{username}）：只显示这一次，请立即保存", err=True)
        click.echo(new.token)

    @token_group.command("revoke", help="吊销令牌（立即失效）")
    @click.argument("token_id", type=int)
    def token_revoke(token_id):
        try:
            with _session() as s:
                accounts.revoke_token(s, token_id, by=_operator())
        except BaoxueError as e:
            _fail(e)
        click.echo(f"令牌 {token_id} 已吊销")

    @token_group.command("list", help="列出令牌（不显示令牌本身）")
    @click.argument("username", required=False)
    def token_list(username):
        from sqlalchemy import select

        with _session() as s:
            q = select(ApiToken).order_by(ApiToken.id)
            if username:
                q = q.where(ApiToken.user_id == accounts.get_user(s, username).id)
            for t in s.scalars(q):
                j = accounts.token_json(t)
                click.echo(f"{t.id}\t{j['user']}\t{t.name}\t{t.prefix}…\t"
                           f"{'已吊销' if j['revoked'] else '有效'}\t到期 {t.expires_at or '长期'}\t"
                           f"最近使用 {t.last_used_at or '—'}")

    @app.cli.group("audit", help="审计日志")
    def audit_group():
        pass

    def _anchor_file(value: str | None) -> Path | None:
        value = value or current_app.config.get("AUDIT_ANCHOR_FILE")
        return Path(value) if value else None

    @audit_group.command("verify", help="核验审计日志的哈希链和锚点；发现问题时退出码为1并指出第一条")
    @click.option("--anchor-file", default=None, help="审计员保存的锚点文件（默认 BAOXUE_AUDIT_ANCHOR_FILE）")
    def audit_verify(anchor_file):
        with _session() as s:
            result = auditlog.verify(s, anchor_file=_anchor_file(anchor_file))
        for note in result.notes:
            click.echo(f"注意：{note}", err=True)
        if not result.ok:
            click.echo(f"审计日志核验失败：{result.problem}", err=True)
            sys.exit(1)
        click.echo(f"审计日志完好：{result.entries} 条，{result.anchors} 个锚点相符")

    @audit_group.command("anchor", help="把当前链头写入锚点表和锚点文件（可每日定时运行）")
    @click.option("--anchor-file", default=None)
    def audit_anchor(anchor_file):
        with _session() as s:
            anchor = auditlog.anchor_now(s, anchor_file=_anchor_file(anchor_file))
            text = f"第{anchor.seq}条 {anchor.hash}" if anchor is not None else "日志为空"
        click.echo(f"已锚定：{text}")
