"""Batch rendering: 责任书 for every child unit of an organisation node, 交接表 for every class of
a handover plan — one call, one background job, one ZIP, with progress on the ``Job`` row.

Every item is validated before the job is queued, so bad input is refused at once (422 naming the
item and field) and nothing is numbered. The job carries only the path of a request file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import jobs
from cases import service as svc
from cases.models import Org, Pupil, SchoolClass
from cases.prefill import complete_data
from forms.errors import NotFound, ValidationFailed
from forms.registry import get_spec
from forms.render import zip_documents

log = logging.getLogger(__name__)


def _validate_items(session: Session, services: svc.Services, items: list[dict]) -> None:
    errors: dict[str, str] = {}
    today = dt.date.today()
    for i, item in enumerate(items):
        spec = get_spec(item["form"])
        var = spec.variant(item.get("variant"))
        issuer = session.get(Org, item["issuer_id"])
        try:
            full = complete_data(spec, var, item["data"], profile=svc._profile_name(session, issuer, services),
                                 issued_on=today, issuer=issuer)
            spec.validate(full, var, options=svc.form_options(session, issuer, services))
        except ValidationFailed as e:
            for k, msg in e.fields.items():
                errors[f"items[{i}]({item['label']}).{k}"] = msg
    if errors:
        raise ValidationFailed(f"批量生成有{len(errors)}处错误，未生成任何文书", fields=errors)


def _submit(session: Session, services: svc.Services, kind: str, items: list[dict], *, fmt: str,
            user: str, org_id: int) -> str:
    _validate_items(session, services, items)
    path = services.output_dir / "jobs" / f"{kind}-{uuid.uuid4().hex}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"items": items, "format": fmt, "user": user}, ensure_ascii=False),
                    encoding="utf-8")
    return jobs.submit(session, "batch_render", str(path), total=len(items), org_id=org_id)


def start_responsibility_batch(session: Session, services: svc.Services, body: dict, *, user: str) -> str:
    """One 责任书 per child unit of ``parent_org_id`` (optionally only children of ``child_kind``)."""
    parent = session.get(Org, body["parent_org_id"])
    if parent is None:
        raise NotFound("上级机构不存在", fields={"parent_org_id": "不存在"})
    if session.get(Org, body["issuer_id"]) is None:
        raise NotFound("签发机构不存在", fields={"issuer_id": "不存在"})
    children = [c for c in sorted(parent.children, key=lambda o: o.id)
                if not body.get("child_kind") or c.kind == body["child_kind"]]
    if not children:
        raise ValidationFailed(f"“{parent.name}”没有下级单位", fields={"parent_org_id": "没有下级单位"})
    from cases.prefill import issuer_title

    items = []
    for child in children:
        # parties by their full names (青禾县人民政府, 西岭乡人民政府), as they sign
        data = {"party_a_name": issuer_title(parent), **body["data"], "party_b_name": issuer_title(child)}
        items.append({"form": "responsibility", "variant": body["variant"], "issuer_id": body["issuer_id"],
                      "data": data, "label": child.name})
    return _submit(session, services, "responsibility", items, fmt=body["format"], user=user,
                   org_id=body["issuer_id"])


def handover_data(session: Session, klass: SchoolClass, receiving: Org,
                  pupils: list[Pupil] | None = None) -> dict:
    """A 交接表 for one grade-6 class, from the store: header, counts and one row per pupil
    (``pupils`` in the given order, e.g. a plan's row order; default: the class's pupils by id)."""
    from cases.models import ancestors

    school = session.get(Org, klass.org_id)
    chain = [school, *reversed(ancestors(session, school))]
    township = next((o for o in chain if o.kind == "township"), None)
    county = next((o for o in chain if o.kind == "county"), None)
    central = None
    if township is not None:  # the township's 中心校: a central-school unit, else its 中心 school
        central = next((c for c in township.children if c.kind == "central_school"), None) or next(
            (c for c in township.children if c.kind == "school" and "中心" in c.name), None)
    if pupils is None:
        pupils = session.scalars(select(Pupil).where(Pupil.class_id == klass.id).order_by(Pupil.id)).all()
    rows = []
    for p in pupils:
        g = p.guardians[0] if p.guardians else None
        rows.append({
            "name": p.name, "sex": p.sex, "birth_date": p.birth_date.isoformat() if p.birth_date else None,
            "id_number": p.id_number, "xueji_no": p.xueji_no, "primary_class": f"{klass.name}",
            "hukou_place": _hukou_short(session, p) or p.hukou_text or p.address, "residence": p.address,
            "guardian_name": g.name if g else None, "guardian_relation": g.relation if g else None,
            "guardian_phone": g.phone if g else None, "special_groups": list(p.special_groups or []),
            # 档案 is ticked on paper when the file is actually handed over, never pre-ticked
        })
    groups = [set(r["special_groups"]) for r in rows]
    return {
        "county_name": county.name if county else "", "handover_year": dt.date.today().year,
        "township_name": township.name if township else "",
        "central_school": central.name if central else None,
        "from_school": school.name, "from_school_code": school.code or "", "from_class": klass.name,
        "to_school": receiving.name, "to_school_code": receiving.code or "",
        "expected_count": len(rows), "g01_count": sum("G01" in g for g in groups),
        "disabled_count": sum("G03" in g for g in groups), "left_behind_count": sum("G02" in g for g in groups),
        "handover_date": dt.date.today().isoformat(), "pupils": rows,
    }


def _hukou_short(session: Session, pupil: Pupil) -> str | None:
    """户籍地 as 乡镇 + 村 (the 交接表 column), from the pupil's 户籍 village in the store."""
    from cases.models import ancestors

    if not pupil.hukou_org_id:
        return None
    village = session.get(Org, pupil.hukou_org_id)
    if village is None:
        return None
    chain = [village, *reversed(ancestors(session, village))]
    town = next((o for o in chain if o.kind == "township"), None)
    return f"{town.name if town else ''}{village.name}"


def start_handover_batch(session: Session, services: svc.Services, body: dict, *, user: str) -> str:
    """One 交接表 per class of the plan, rows taken from the class's pupils."""
    if session.get(Org, body["issuer_id"]) is None:
        raise NotFound("签发机构不存在", fields={"issuer_id": "不存在"})
    items = []
    errors = {}
    for i, entry in enumerate(body["plan"]):
        klass = session.get(SchoolClass, entry["class_id"])
        receiving = session.get(Org, entry["receiving_school_id"])
        if klass is None:
            errors[f"plan[{i}].class_id"] = "班级不存在"
        if receiving is None or receiving.kind != "school":
            errors[f"plan[{i}].receiving_school_id"] = "接收学校不存在"
        if klass is not None and receiving is not None:
            data = {**handover_data(session, klass, receiving), **body["data"]}
            items.append({"form": "handover", "variant": None, "issuer_id": body["issuer_id"],
                          "data": data, "label": f"{klass.name}"})
    if errors:
        raise ValidationFailed("整班移交方案有误", fields=errors)
    return _submit(session, services, "handover", items, fmt=body["format"], user=user,
                   org_id=body["issuer_id"])


@jobs.job_task("batch_render")
def batch_render(ctx: jobs.JobContext, request_path: str) -> str:
    """Issue every item of a batch request file and bundle the files into one ZIP.

    Items run on as many threads as there are warm LibreOffice listeners (each thread has its own
    session); numbers are still reserved atomically, so they stay gapless and unique."""
    from concurrent.futures import ThreadPoolExecutor

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    services = _services_for_job(ctx)
    items = request["items"]
    want_pdf = request["format"] == "pdf"
    ctx.progress(0, len(items))
    lock = threading.Lock()
    done = [0]

    def one(index_item):
        i, item = index_item
        with ctx.session() as session:
            doc = svc.issue_document(session, services, form=item["form"], variant=item.get("variant"),
                                     issuer_id=item["issuer_id"], data=item["data"], user=request["user"],
                                     want_pdf=want_pdf)
            if item.get("after_issue"):
                _after_issue(session, doc, item)
            base = f"{i:03d}-{item['label']}-{doc.number_text}"
            out = {f"{base}.docx": svc.document_file(services, doc, "docx")}
            if want_pdf:
                out[f"{base}.pdf"] = svc.document_file(services, doc, "pdf")
        with lock:
            done[0] += 1
            ctx.progress(done[0])
        return out

    files: dict[str, bytes] = {}
    with ThreadPoolExecutor(max(1, services.pdf_workers)) as pool:
        for out in pool.map(one, enumerate(items, 1)):
            files.update(out)
    path = ctx.output_dir / "batches" / f"{ctx.job_id}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_documents(dict(sorted(files.items()))))
    return str(path)


def _after_issue(session: Session, doc, item: dict) -> None:
    # An item may name "cases.module:function" to link the issued document to its own rows (the
    # handover plan records each class's 交接表); imported by name so a worker process finds it.
    import importlib

    module, _, name = item["after_issue"].partition(":")
    if not module.startswith("cases."):
        raise ValueError(f"after_issue hook outside cases/: {item['after_issue']!r}")
    getattr(importlib.import_module(module), name)(session, doc, item)


_SERVICES: dict[str, svc.Services] = {}


def register_services(services: svc.Services) -> None:
    """The app (or a worker) registers its Services so jobs can render and store."""
    _SERVICES["default"] = services


def _services_for_job(ctx: jobs.JobContext) -> svc.Services:
    if "default" not in _SERVICES:
        from cases.db import make_engine, make_session_factory
        from config import Config

        cfg = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
        register_services(svc.Services.from_config(cfg, make_session_factory(make_engine(cfg["DATABASE_URL"]))))
    return _SERVICES["default"]
