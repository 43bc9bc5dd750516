"""Operator commands for case dossiers (Flask CLI):

    flask --app app dossier verify FILE.pdf [--json]   # exit 1 naming every difference
    flask --app app dossier build CASE_ID -o FILE.pdf [--validate]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app

from cases.dossier.build import build_dossier
from cases.dossier.verify import verify_dossier
from cases.store import audit
from cases.store.db import session_scope
from cases.store.models import Case


def register(app: Flask) -> None:
    """Add the ``dossier`` command group to ``app``."""

    @app.cli.group("dossier", help="个案卷宗")
    def dossier_group():
        pass

    @dossier_group.command("verify", help="核验卷宗文件：签名、页面、存储区中的每份原件；有不符时退出码为1")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
    def verify(file: Path, as_json: bool):
        services = current_app.extensions["baoxue"]
        with session_scope(services.session_factory) as s:
            result = verify_dossier(s, services.store, file.read_bytes(), secret=services.qr_keys.current,
                                    retired=tuple(services.qr_keys.retired))
        if as_json:
            click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=1))
        else:
            case = result.case or {}
            click.echo(f"卷宗 {file.name}：案件 {case.get('number', '?')}，{result.pages} 页，"
                       f"核对原件 {result.files_checked} 份")
            for p in result.problems:
                click.echo(f"不符：{p}")
            for n in result.notes:
                click.echo(f"注意：{n}")
            click.echo("核验通过" if result.ok else f"核验未通过（{len(result.problems)} 处不符）")
        if not result.ok:
            sys.exit(1)

    @dossier_group.command("build", help="生成一个案件的卷宗 PDF")
    @click.argument("case_id", type=int)
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
    @click.option("--validate", is_flag=True, help="用 PDF/A 校验器检查写出的文件")
    def build(case_id: int, output: Path, validate: bool):
        services = current_app.extensions["baoxue"]
        with session_scope(services.session_factory) as s:
            case = s.get(Case, case_id)
            if case is None:
                raise click.ClickException(f"案件 {case_id} 不存在")
            d = build_dossier(s, services, case, generated_by="cli", validate=validate)
            audit.record_export(s, who="cli", org=case.org_id, what="dossier", records=1, fmt="pdf",
                                scope={"case": case.id})
        output.write_bytes(d.pdf)
        click.echo(f"{output}：{d.manifest['pages']} 页，{len(d.manifest['files'])} 份原件")
