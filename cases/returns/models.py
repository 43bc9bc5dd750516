"""Tables of returned documents (DOMAIN §5.6), the same for every kind of return: one row per unit
read from a returned file (a page of a scan; a DOCX or digital PDF read whole), the review queue,
and the returned copies of documents.

``ReturnPage`` rows are unique per (upload, page index), so a retried job never duplicates a page;
``ReviewItem`` rows are unique per (page, field path, kind) for the same reason.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cases.store.models import Base, OrgScoped, in_list, utcnow

PAGE_STATUSES = ("read", "unidentified", "blank", "failed", "assigned")
INPUT_KINDS = ("docx", "pdf", "scan")
REVIEW_KINDS = ("low_confidence", "invalid", "ambiguous", "tamper", "confirm", "discrepancy")
REVIEW_STATUSES = ("open", "accepted", "corrected", "rejected")
# The background job kind that reads a returned file (``cases.returns.intake.read_return``).
READ_JOB_KIND = "return_read"


class ReturnPage(OrgScoped, Base):
    """One unit read from a returned file and what became of it: a page of a scan or photo, or a
    DOCX or digital PDF read whole (``page_index`` 0, ``page_no`` None). ``org_id`` is the
    uploading unit.

    ``status``: read (identified and its fields read), unidentified (``reason`` says why; a person
    assigns it), blank, failed (identified but unreadable: ``reason``), assigned (a person said
    which document it is). ``method``: how it was identified (qr, metadata, title, ocr_doc_id,
    ocr_number, manual). ``readings``: path -> reading JSON (``parsers.base.FieldReading``)."""

    __tablename__ = "return_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    page_index: Mapped[int] = mapped_column(Integer)  # 0-based position in the upload
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)
    page_no: Mapped[int | None] = mapped_column(Integer)  # page of the document (1-based)
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(16))  # see the class docstring
    rotation: Mapped[int] = mapped_column(Integer, default=0)
    align_method: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    readings: Mapped[dict] = mapped_column(JSON, default=dict)
    seconds: Mapped[float | None] = mapped_column(Float)
    input_kind: Mapped[str] = mapped_column(String(8), default="scan")
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("upload_id", "page_index"),
                      CheckConstraint(f"status IN ({in_list(PAGE_STATUSES)})", name="status"),
                      CheckConstraint(f"input_kind IN ({in_list(INPUT_KINDS)})", name="input_kind"))


class ReviewItem(OrgScoped, Base):
    """A value a person must decide: low confidence, failed validation, ambiguous mark, possible
    tampering, a mandatory confirmation, or a conflict with the case record. ``org_id`` is the
    document's issuer (whose people review it)."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("return_pages.id"), index=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    field_path: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))
    proposed: Mapped[dict] = mapped_column(JSON, default=dict)  # {"value": ...}
    recorded: Mapped[dict | None] = mapped_column(JSON)  # {"value": ...} issued / on the record
    text: Mapped[str | None] = mapped_column(Text)  # what OCR read
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    crop_path: Mapped[str | None] = mapped_column(String(255))  # store-relative PNG
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    decision: Mapped[dict | None] = mapped_column(JSON)  # {"action": ..., "value": ...}
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("page_id", "field_path", "kind"),
                      CheckConstraint(f"kind IN ({in_list(REVIEW_KINDS)})", name="kind"),
                      CheckConstraint(f"status IN ({in_list(REVIEW_STATUSES)})", name="status"))


class DocumentReturn(OrgScoped, Base):
    """A returned copy of a document, of any kind (``input_kind``: docx, pdf, scan): complete per
    DOMAIN §5.6 or not (``missing`` lists field names), and whether it has been applied to the
    case. ``status``: review (a person must decide something first), applied, incomplete (applied,
    but not evidence: something required is missing), partial (a page the form returns has not come
    back yet, in this upload or an earlier one: nothing is applied). ``pages_expected``: the pages
    of the issued document that come back (``FormSpec.returned_parts``); ``pages_received``: those
    received so far over every upload (None: not known, e.g. no page record)."""

    __tablename__ = "document_returns"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), index=True)
    form: Mapped[str] = mapped_column(String(40))
    input_kind: Mapped[str | None] = mapped_column(String(8))
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    missing: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default="review")  # review|applied|incomplete|partial
    pages_expected: Mapped[list | None] = mapped_column(JSON)
    pages_received: Mapped[list | None] = mapped_column(JSON)
    applied_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("document_id", "upload_id"),)
