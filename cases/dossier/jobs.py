"""Dossier batches: the dossiers of every case of a township (or of an inspector sample) as one
ZIP, built by a background job with progress on its ``Job`` row. The job carries only the path of
a request file (case ids, who asked); run again after a crash it builds the same ZIP."""

from __future__ import annotations

import hashlib
import json
import uuid
import zipfile
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cases.dossier.build import build_dossier
from cases.dossier.models import InspectionSample
from cases.store import jobs
from cases.store.models import Case, Org, in_scope
from cases.store.services import Services, registered
from forms.errors import ValidationFailed

MAX_CASES = 500


def cases_of_org(session: Session, org: Org) -> list[int]:
    """Every case whose responsible unit or township is ``org`` or below it."""
    return list(session.scalars(select(Case.id).where(or_(in_scope(Case.org_id, org),
                                                          in_scope(Case.township_org_id, org))).order_by(Case.id)))


def cases_of_sample(sample: InspectionSample) -> list[int]:
    return [i for _t, ids in sorted(sample.drawn.items(), key=lambda kv: int(kv[0])) for i in ids]


def submit_batch(session: Session, services: Services, case_ids: list[int], *, user: str, org_id: int,
                 label: str) -> str:
    """Queue a dossier batch for ``case_ids``; returns the job id."""
    if not case_ids:
        raise ValidationFailed("没有可生成卷宗的案件", fields={"cases": "为空"})
    if len(case_ids) > MAX_CASES:
        raise ValidationFailed(f"一次最多生成 {MAX_CASES} 份卷宗（本次 {len(case_ids)} 件）",
                               fields={"cases": f"超过 {MAX_CASES} 件"})
    path = services.output_dir / "jobs" / f"dossier-{uuid.uuid4().hex}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"case_ids": case_ids, "user": user, "label": label}, ensure_ascii=False),
                    encoding="utf-8")
    return jobs.submit(session, "dossier_batch", str(path), total=len(case_ids), org_id=org_id)


@jobs.job_task("dossier_batch")
def dossier_batch(ctx: jobs.JobContext, request_path: str) -> str:
    """Build every requested dossier and bundle them, with ``index.json`` (case, file, SHA-256)."""
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    services = registered()
    ids = request["case_ids"]
    ctx.progress(0, len(ids))
    out = ctx.output_dir / "batches" / f"{ctx.job_id}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    index = []
    tmp = out.with_suffix(".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        for i, case_id in enumerate(ids, 1):
            with ctx.session() as s:
                case = s.get(Case, case_id)
                if case is None:
                    index.append({"case_id": case_id, "error": "案件不存在"})
                else:
                    d = build_dossier(s, services, case, generated_by=request["user"])
                    name = f"{i:03d}-{d.filename}"
                    z.writestr(name, d.pdf)
                    index.append({"case_id": case.id, "case_number": case.number, "file": name,
                                  "sha256": hashlib.sha256(d.pdf).hexdigest(), "pages": d.manifest["pages"]})
            ctx.progress(i)
        z.writestr("index.json", json.dumps({"label": request.get("label"), "dossiers": index},
                                            ensure_ascii=False, indent=1))
    tmp.replace(out)
    return str(out)
