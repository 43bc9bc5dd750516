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
