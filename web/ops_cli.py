"""Operator commands for the stored files (Flask CLI):

    flask --app app store check [--delete] [--min-age-minutes 60]   # orphans, missing files; exit 1 if any
"""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app

from cases.store.db import session_scope
from cases.store.maintenance import check_store


def register(app: Flask) -> None:
    """Add the ``store`` command group to ``app``."""

    @app.cli.group("store", help="文件存储区")
    def store_group():
        pass

    @store_group.command("check", help="核对存储区与数据库：无记录的文件、缺失的文件、滞留的暂存文件；"
                         "有问题时退出码为1")
    @click.option("--delete", is_flag=True, help="删除无记录的文件和滞留的暂存文件（只删早于 --min-age-minutes 的）")
    @click.option("--min-age-minutes", default=60.0, show_default=True)
    def store_check(delete, min_age_minutes):
        services = current_app.extensions["baoxue"]
        with session_scope(services.session_factory) as s:
            report = check_store(s, services.store, delete=delete, min_age_s=min_age_minutes * 60)
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=1))
        if not report.ok:
            sys.exit(1)


def register_backup(app: Flask) -> None:
    """Add the ``backup`` command group to ``app``:

        flask --app app backup create DIR      # database + store + manifest, while the service runs
        flask --app app backup verify DIR      # every hash of a backup
        flask --app app backup restore DIR     # onto an empty database and store, then verify
    """
    from cases.store.backup import BackupFailed, create_backup, restore_backup, verify_backup

    @app.cli.group("backup", help="备份与恢复（数据库 + 文件存储区 + 清单）")
    def backup_group():
        pass

    @backup_group.command("create", help="把数据库和文件存储区备份到新目录 DIR（服务运行时也可）")
    @click.argument("dest")
    def backup_create(dest):
        services = current_app.extensions["baoxue"]
        try:
            manifest = create_backup(current_app.config["DATABASE_URL"], services.store, dest)
        except BackupFailed as e:
            raise click.ClickException(e.message) from e
        rows = sum(manifest["database"]["counts"].values())
        click.echo(f"备份完成：{dest}（{manifest['database']['kind']}，{rows} 行，{len(manifest['files'])} 个文件）")

    @backup_group.command("verify", help="核验备份中每个文件的 SHA-256")
    @click.argument("src")
    def backup_verify(src):
        try:
            manifest = verify_backup(src)
        except BackupFailed as e:
            raise click.ClickException(e.message) from e
        click.echo(f"备份完好：{len(manifest['files'])} 个文件哈希相符")

    @backup_group.command("restore", help="把备份 SRC 恢复到空数据库和空存储区，并核验每个哈希和行数")
    @click.argument("src")
    def backup_restore(src):
        services = current_app.extensions["baoxue"]
        services.session_factory.kw["bind"].dispose()  # no pooled connection holds the empty database
        try:
            out = restore_backup(src, current_app.config["DATABASE_URL"], services.store)
        except BackupFailed as e:
            raise click.ClickException(e.message) from e
        click.echo(f"恢复完成：{out['tables']} 张表 {out['rows']} 行，{out['files']} 个文件，哈希全部相符")
