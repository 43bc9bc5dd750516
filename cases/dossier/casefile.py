"""Everything stored about one case that the dossier and the closed-loop checks read, gathered in
one pass (``load_case_file``): events, attempts, documents with their returned copies and
services, receipts, referrals, evidence, attendance and the filed ledger snapshots covering it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.engine.casework import attempts_check, case_profile, china_date, evidence_items
from cases.engine.closure import EvidenceItem
from cases.engine.models import AttendanceRecord, Evidence, Referral
from cases.engine.profiles import RegionProfile
from cases.ledgers.models import LedgerSnapshot
from cases.returns.models import DocumentReturn, ReturnPage
from cases.store.models import Case, CaseEvent, Document, Org, Pupil, Upload, ancestors

# Ledger kinds whose filed snapshots list the cases of a school's or township's pupils.
LEDGER_KINDS_CHECKED = ("school", "township")


@dataclass
class ReturnedCopy:
    """A returned copy of a document: the upload, the pages of it that belong to the document
    (0-based; None: the whole file), how it was read and whether it was complete."""

    upload: Upload
    pages: list[int] | None
    input_kind: str | None
    complete: bool | None
    status: str | None
    values: dict


@dataclass
class CaseFile:
    case: Case
    pupil: Pupil
    profile: RegionProfile
    school: Org
    township: Org | None
    events: list[CaseEvent]
    documents: list[Document]
    returns: dict[str, list[ReturnedCopy]]
    evidence: list[Evidence]
    referrals: list[Referral]
    attendance: list[AttendanceRecord]
    snapshots: list[LedgerSnapshot]
    today: dt.date
    uploads: dict[int, Upload] = field(default_factory=dict)
    school_check: dict = field(default_factory=dict)
    evidence_items: tuple[EvidenceItem, ...] = ()

    # ---- derived views -------------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[CaseEvent]:
        return [e for e in self.events if e.kind == kind]

    @property
    def transitions(self) -> list[CaseEvent]:
        return self.of_kind("transition")

    @property
    def attempts(self) -> list[dict]:
        return [{**e.data, "event_id": e.id} for e in self.of_kind("attempt")]

    def visited(self) -> set[str]:
        """Every state the case has been in."""
        out = {t.to_state for t in self.transitions if t.to_state}
        out.add(self.case.state)
        return out

    def entered(self, state: str) -> dt.date | None:
        """The first day the case entered ``state`` (China date)."""
        for t in self.transitions:
            if t.to_state == state:
                return china_date(t.occurred_at)
        return None

    def closed_on(self) -> dt.date | None:
        if self.case.state != "CLOSED":
            return None
        last = [t for t in self.transitions if t.to_state == "CLOSED"]
        return china_date(last[-1].occurred_at) if last else None

    def detected_on(self) -> dt.date:
        """The detection date: the first T1 of the case (else the opening date)."""
        return self.entered("ABSENT") or self.case.opened_on


def load_case_file(session: Session, case: Case, *, today: dt.date | None = None) -> CaseFile:
    """Gather a case's records for the dossier and the checks (a few queries, no per-row lookups)."""
    events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                  .order_by(CaseEvent.occurred_at, CaseEvent.id)))
    documents = list(session.scalars(select(Document).where(Document.case_id == case.id)
                                     .order_by(Document.created_at, Document.id)))
    doc_ids = [d.id for d in documents]
    returns: dict[str, list[ReturnedCopy]] = {d: [] for d in doc_ids}
    uploads: dict[int, Upload] = {}
    if doc_ids:
        rets = session.execute(select(DocumentReturn, Upload).join(Upload, Upload.id == DocumentReturn.upload_id)
                               .where(DocumentReturn.document_id.in_(doc_ids))
                               .order_by(Upload.uploaded_at, Upload.id)).all()
        pages: dict[tuple[int, str], list[int]] = {}
        for rp in session.scalars(select(ReturnPage).where(ReturnPage.document_id.in_(doc_ids))
                                  .order_by(ReturnPage.page_index)):
            if rp.input_kind == "scan":
                pages.setdefault((rp.upload_id, rp.document_id), []).append(rp.page_index)
        seen = set()
        for ret, up in rets:
            uploads[up.id] = up
            seen.add((up.id, ret.document_id))
            returns[ret.document_id].append(ReturnedCopy(up, pages.get((up.id, ret.document_id)), ret.input_kind,
                                                         ret.complete, ret.status, dict(ret.values or {})))
        # Files attached to a document without a read return (kept as plain attachments).
        for up in session.scalars(select(Upload).where(Upload.document_id.in_(doc_ids)).order_by(Upload.id)):
            if (up.id, up.document_id) not in seen:
                uploads[up.id] = up
                returns[up.document_id].append(ReturnedCopy(up, None, None, None, up.status, {}))
    evidence = list(session.scalars(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)))
    for ev in evidence:
        if ev.upload_id and ev.upload_id not in uploads:
            up = session.get(Upload, ev.upload_id)
            if up is not None:
                uploads[up.id] = up
    referrals = list(session.scalars(select(Referral).where(Referral.case_id == case.id)
                                     .order_by(Referral.sent_on, Referral.id)))
    pupil = session.get(Pupil, case.pupil_id)
    attendance = list(session.scalars(select(AttendanceRecord).where(AttendanceRecord.pupil_id == pupil.id)
                                      .order_by(AttendanceRecord.day)))
    school = session.get(Org, case.org_id)
    township = session.get(Org, case.township_org_id) if case.township_org_id else None
    lines = [o.id for o in ancestors(session, school, include_self=True)]
    snapshots = list(session.scalars(select(LedgerSnapshot).where(
        LedgerSnapshot.org_id.in_(lines), LedgerSnapshot.kind.in_(LEDGER_KINDS_CHECKED),
        LedgerSnapshot.as_of >= case.opened_on).order_by(LedgerSnapshot.as_of, LedgerSnapshot.id)))
    return CaseFile(case=case, pupil=pupil, profile=case_profile(case), school=school, township=township,
                    events=events, documents=documents, returns=returns, evidence=evidence, referrals=referrals,
                    attendance=attendance, snapshots=snapshots, today=today or china_date(None), uploads=uploads,
                    school_check=attempts_check(session, case, today=today),
                    evidence_items=evidence_items(session, case))
