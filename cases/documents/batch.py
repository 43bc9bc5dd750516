"""Batch rendering: 责任书 for every child unit of an organisation node (and, through
``submit_batch``, the 交接表 of a handover plan) — one call, one background job, one ZIP, with
progress on the ``Job`` row.

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

from sqlalchemy.orm import Session

from cases.documents import issuing
from cases.documents.prefill import complete_data, issuer_title
from cases.store import jobs
from cases.store.models import Org
from cases.store.services import Services, registered
from forms.errors import NotFound, ValidationFailed
from forms.registry import get_spec, spec_for
from forms.render import zip_documents

log = logging.getLogger(__name__)


def _validate_items(session: Session, services: Services, items: list[dict]) -> None:
    errors: dict[str, str] = {}
    today = dt.date.today()
    for i, item in enumerate(items):
        spec = get_spec(item["form"])
        var = spec.variant(item.get("variant"))
        issuer = session.get(Org, item["issuer_id"])
        try:
            full = complete_data(spec, var, item["data"], profile=issuing.profile_name(session, issuer, services),
                                 issued_on=today, issuer=issuer)
            spec.validate(full, var, options=issuing.form_options(session, issuer, services))
        except ValidationFailed as e:
            for k, msg in e.fields.items():
                errors[f"items[{i}]({item['label']}).{k}"] = msg
    if errors:
        raise ValidationFailed(f"批量生成有{len(errors)}处错误，未生成任何文书", fields=errors)


def submit_batch(session: Session, services: Services, kind: str, items: list[dict], *, fmt: str,
            user: str, org_id: int) -> str:
    _validate_items(session, services, items)
    path = services.output_dir / "jobs" / f"{kind}-{uuid.uuid4().hex}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"items": items, "format": fmt, "user": user}, ensure_ascii=False),
                    encoding="utf-8")
    return jobs.submit(session, "batch_render", str(path), total=len(items), org_id=org_id)


def start_responsibility_batch(session: Session, services: Services, body: dict, *, user: str) -> str:
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
    items = []
    spec = spec_for("duty_agreement")
    for child in children:
        # parties by their full names (青禾县人民政府, 西岭乡人民政府), as they sign: the superior
        # unless the request names it, the subordinate always
        data = {**spec.prefill({"superior": {"title": issuer_title(parent)}}, defaults=False), **body["data"],
                **spec.prefill({"subordinate": {"title": issuer_title(child)}}, defaults=False)}
        items.append({"form": spec.code, "variant": body["variant"], "issuer_id": body["issuer_id"],
                      "data": data, "label": child.name})
    return submit_batch(session, services, spec.code, items, fmt=body["format"], user=user,
                   org_id=body["issuer_id"])


@jobs.job_task("batch_render")
def batch_render(ctx: jobs.JobContext, request_path: str) -> str:
    """Issue every item of a batch request file and bundle the files into one ZIP.

    Idempotent: each item is issued under the request key ``job:<job id>:<n>``, so a run after a
    crash finds the documents already issued and numbers only the rest.

    Items run on as many threads as there are warm LibreOffice listeners (each thread has its own
    session); numbers are still reserved atomically, so they stay gapless and unique."""
    from concurrent.futures import ThreadPoolExecutor

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    services = registered()
    items = request["items"]
    want_pdf = request["format"] == "pdf"
    ctx.progress(0, len(items))
    lock = threading.Lock()
    done = [0]

    def one(index_item):
        i, item = index_item
        with ctx.session() as session:
            doc = issuing.issue_document(session, services, form=item["form"], variant=item.get("variant"),
                                     issuer_id=item["issuer_id"], data=item["data"], user=request["user"],
                                     want_pdf=want_pdf, request_key=f"job:{ctx.job_id}:{i}")
            if item.get("after_issue"):
                _after_issue(session, doc, item)
            base = f"{i:03d}-{item['label']}-{doc.number_text}"
            out = {f"{base}.docx": issuing.document_file(services, doc, "docx")}
            if want_pdf:
                out[f"{base}.pdf"] = issuing.document_file(services, doc, "pdf")
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
