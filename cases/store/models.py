"""The case store: SQLAlchemy 2 typed declarative models.

Every row that belongs to a place carries its organisation (``org_id``) so that every query can be
scoped by jurisdiction: ``select(Case).where(Case.in_scope(user_org))``. Organisations form a tree
with a materialised ``path`` ("/1/4/9/"), so a subtree is one indexed ``LIKE '/1/4/%'``.

Types work on SQLite and PostgreSQL: ``sqlalchemy.JSON`` and ``UTCDateTime`` (timezone-aware, in
UTC, also on SQLite which stores naive values).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    select,
    update,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    attributes,
    declared_attr,
    mapped_column,
    relationship,
)
from sqlalchemy.sql.elements import ColumnElement

from forms.spec import FormSpec, Kind

# ---- code lists kept as data (DOMAIN §1.1, §3.2) ---------------------------------------------------

ORG_KINDS = ("province", "prefecture", "county", "township", "village", "village_group", "school",
             "central_school", "education_bureau", "department")

# The 15 workflow states of DOMAIN §3.2; the workflow engine (cases/engine/workflow.py) owns transitions.
CASE_STATES = ("ATTENDING", "ABSENT", "VERIFY", "SUSPECTED", "REPORTED", "NOTICED", "JOINT", "LEGAL",
               "LOCATING", "ASSESSING", "APPROVAL", "RETURNED", "DEFERRED", "HOME_TAUGHT", "CLOSED")
DOCUMENT_STATUSES = ("rendering", "issued", "void")
UPLOAD_STATUSES = ("stored", "parsed", "failed", "attached")
JOB_STATUSES = ("queued", "running", "done", "failed")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC (the only clock the store uses)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """``DateTime(timezone=True)`` that always stores UTC and always returns aware UTC values.

    SQLite keeps no offset, so values are converted to UTC on the way in and tagged UTC on the
    way out; PostgreSQL ``timestamptz`` round-trips them natively.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use cases.models.utcnow()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict: JSON, list: JSON}


def in_list(values: Sequence[str]) -> str:
    """SQL text of a value list for CHECK constraints: 'a', 'b'."""
    return ", ".join(f"'{v}'" for v in values)


class OrgScoped:
    """Mixin for rows that belong to a place: adds ``org_id`` and the ``in_scope`` filter."""

    @declared_attr
    def org_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("orgs.id"), index=True)

    @classmethod
    def in_scope(cls, org: Org) -> ColumnElement[bool]:
        """SQL condition: the row's organisation is ``org`` or one of its descendants."""
        return in_scope(cls.org_id, org)


# ---- organisations ----------------------------------------------------------------------------------

class Org(Base):
    """A node of the jurisdiction tree: county, township, village, school, bureau, department..."""

    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    # GB/T 2260 (county), 12-digit statistics code (township/village) or 10-digit 学校标识码.
    code: Mapped[str | None] = mapped_column(String(20), index=True)
    doc_prefix: Mapped[str | None] = mapped_column(String(32))  # 发文机关代字, e.g. 卫教
    # Materialised path of ids, "/1/4/9/"; set on insert (see _set_org_path).
    path: Mapped[str] = mapped_column(String(255), default="", index=True)
    region_profile: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    parent: Mapped[Org | None] = relationship(remote_side="Org.id", back_populates="children")
    children: Mapped[list[Org]] = relationship(back_populates="parent")

    __table_args__ = (CheckConstraint("kind <> ''", name="kind_not_empty"),)

    def __repr__(self) -> str:
        return f"<Org {self.id} {self.kind} {self.name}>"

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids on the path from the root down to (and including) this org."""
        return [int(p) for p in self.path.strip("/").split("/") if p]


@event.listens_for(Org, "after_insert")
def _set_org_path(mapper, connection, target: Org) -> None:
    # The path needs the new id, so it is written right after the INSERT, in the same transaction.
    parent_path = "/"
    if target.parent_id is not None:
        parent_path = connection.execute(select(Org.path).where(Org.id == target.parent_id)).scalar_one()
    path = f"{parent_path}{target.id}/"
    connection.execute(update(Org).where(Org.id == target.id).values(path=path))
    attributes.set_committed_value(target, "path", path)


def in_scope(org_id_column, org: Org) -> ColumnElement[bool]:
    """SQL condition: ``org_id_column`` is ``org`` or one of its descendants (jurisdiction scope)."""
    if not org.path:
        raise ValueError(f"organisation {org.name!r} has no path yet; flush it first")
    return org_id_column.in_(select(Org.id).where(Org.path.startswith(org.path)))


def descendants(session: Session, org: Org, *, include_self: bool = False,
                kind: str | None = None) -> list[Org]:
    """Every organisation below ``org`` (optionally itself), ordered by path."""
    stmt = select(Org).where(Org.path.startswith(org.path)).order_by(Org.path)
    if not include_self:
        stmt = stmt.where(Org.id != org.id)
    if kind:
        stmt = stmt.where(Org.kind == kind)
    return list(session.scalars(stmt))


def ancestors(session: Session, org: Org, *, include_self: bool = False) -> list[Org]:
    """The chain from the root down to ``org``'s parent (or ``org`` with ``include_self``)."""
    ids = org.ancestor_ids if include_self else org.ancestor_ids[:-1]
    if not ids:
        return []
    found = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_(ids)))}
    return [found[i] for i in ids]


def nearest(session: Session, org: Org, kind: str) -> Org | None:
    """The closest organisation of ``kind`` on the way up from ``org`` (itself included)."""
    for o in reversed(ancestors(session, org, include_self=True)):
        if o.kind == kind:
            return o
    return None


# ---- pupils -----------------------------------------------------------------------------------------

class SchoolClass(OrgScoped, Base):
    """A class (班级) of a school in one school year; ``org_id`` is the school."""

    __tablename__ = "school_classes"

    id: Mapped[int] = mapped_column(primary_key=True)
    grade: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50))
    school_year: Mapped[int] = mapped_column(Integer)  # start year: 2025 = 2025–2026 school year

    __table_args__ = (CheckConstraint("grade BETWEEN 1 AND 9", name="grade_range"),
                      UniqueConstraint("org_id", "school_year", "name"))


class Pupil(OrgScoped, Base):
    """A school-age child; ``org_id`` is the school of enrolment (学籍所在学校)."""

    __tablename__ = "pupils"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("school_classes.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    sex: Mapped[str] = mapped_column(String(2))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    # NULL allowed (children without a number, §7.2 G12); unique where present on both engines.
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    xueji_no: Mapped[str | None] = mapped_column(String(19), index=True)
    ethnicity: Mapped[str | None] = mapped_column(String(20))
    hukou_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    hukou_text: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(200))
    special_groups: Mapped[list] = mapped_column(default=list)  # §7.2 codes
    poverty_category: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    school_class: Mapped[SchoolClass | None] = relationship()
    guardians: Mapped[list[Guardian]] = relationship(back_populates="pupil", order_by="Guardian.id")

    __table_args__ = (CheckConstraint("sex IN ('男', '女')", name="sex"),)


class Guardian(OrgScoped, Base):
    """A guardian (监护人) of a pupil. Not a system user."""

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    relation: Mapped[str] = mapped_column(String(20))
    phone: Mapped[str | None] = mapped_column(String(60))
    id_number: Mapped[str | None] = mapped_column(String(18))
    address: Mapped[str | None] = mapped_column(String(200))

    pupil: Mapped[Pupil] = relationship(back_populates="guardians")


# ---- cases ------------------------------------------------------------------------------------------

class Case(OrgScoped, Base):
    """One episode of non-attendance (个案), from detection to closure. ``org_id`` is the
    responsible unit; ``township_org_id`` the township that organises persuasion."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)  # "2026-419901-00012"
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    township_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="ABSENT", index=True)
    reason_code: Mapped[str | None] = mapped_column(String(8))
    opened_on: Mapped[dt.date] = mapped_column(Date)
    episode: Mapped[int] = mapped_column(Integer, default=1)
    relapse: Mapped[bool] = mapped_column(Boolean, default=False)
    dropout_confirmed_on: Mapped[dt.date | None] = mapped_column(Date)
    closure_reason: Mapped[str | None] = mapped_column(String(32))
    profile: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    pupil: Mapped[Pupil] = relationship()
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case", order_by="CaseEvent.id")

    __table_args__ = (CheckConstraint(f"state IN ({in_list(CASE_STATES)})", name="state"),
                      UniqueConstraint("pupil_id", "episode"))


class CaseEvent(OrgScoped, Base):
    """Something that happened to a case. Bitemporal (DOMAIN §6.1): ``occurred_at`` is valid time,
    ``recorded_at`` is when the system learnt it, so any as-of ledger can be rebuilt."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # transition, attempt, document, note, correction...
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    transition: Mapped[str | None] = mapped_column(String(8))  # T1..T23 (T7-GZ...)
    actor: Mapped[str | None] = mapped_column(String(80))
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    data: Mapped[dict] = mapped_column(default=dict)

    case: Mapped[Case] = relationship(back_populates="events")


# ---- documents, uploads, parsed results ----------------------------------------------------------------

class Document(OrgScoped, Base):
    """An issued instance of a form. ``org_id`` is the issuer; ``data`` is the cleaned snapshot
    (``to_json``) it was rendered from, so the same document can be re-rendered or compared."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)  # forms.identity.new_doc_id()
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    form: Mapped[str] = mapped_column(String(40))
    variant: Mapped[str | None] = mapped_column(String(40))
    family: Mapped[str] = mapped_column(String(60))  # numbering family: forms sharing one sequence
    template_version: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int | None] = mapped_column(Integer)
    number_text: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default="rendering")
    void_reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(default=dict)
    docx_sha256: Mapped[str | None] = mapped_column(String(64))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    pages: Mapped[int | None] = mapped_column(Integer)
    geometry: Mapped[dict | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set by a caller that may ask twice (a batch job item "job:<id>:<n>" run again after a crash):
    # the second request gets the first document instead of a second number.
    request_key: Mapped[str | None] = mapped_column(String(80), unique=True)

    case: Mapped[Case | None] = relationship()

    __table_args__ = (
        UniqueConstraint("org_id", "family", "year", "seq", name="uq_documents_number_seq"),
        UniqueConstraint("org_id", "number_text", name="uq_documents_number_text"),
        CheckConstraint(f"status IN ({in_list(DOCUMENT_STATUSES)})", name="status"),
    )

    def cleaned(self, spec: FormSpec) -> dict:
        """The snapshot as cleaned spec values (dates as ``date`` again)."""
        return from_json(spec, self.data)


class Upload(OrgScoped, Base):
    """A file received from a user. The original bytes are stored untouched, content-addressed
    by SHA-256 (DOMAIN §5.6 item 6), with uploader, time and source device."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # As the user named it, any length and script (the stored file is named by its hash).
    original_filename: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str | None] = mapped_column(String(100))
    stored_path: Mapped[str] = mapped_column(String(255))  # relative to the store root
    uploaded_by: Mapped[str | None] = mapped_column(String(80))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source_device: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="stored")
    error: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)

    __table_args__ = (CheckConstraint(f"status IN ({in_list(UPLOAD_STATUSES)})", name="status"),)


class Job(Base):
    """A background job's progress row; the Huey task only carries its id."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 string
    kind: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result_path: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    # The task's ids and paths, kept so that the reaper can queue the job again.
    payload: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Lease of the worker running it (renewed by its heartbeat) and that worker's fencing token.
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint(f"status IN ({in_list(JOB_STATUSES)})", name="status"),
                      Index("ix_jobs_status_lease", "status", "lease_until"))


class NumberSequence(Base):
    """Last number issued per (issuer, family, year): annual, gapless, never reused (§5.0.1)."""

    __tablename__ = "number_sequences"

    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    family: Mapped[str] = mapped_column(String(60), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class ReleasedNumber(Base):
    """A number given back by a request whose rendering failed after it had reserved it (and that
    could not simply be handed back because a later number was taken meanwhile). The next
    reservation of the series takes it first, so the series stays gapless and no number that
    reached paper is ever reused (cases.store.numbering)."""

    __tablename__ = "released_numbers"

    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    family: Mapped[str] = mapped_column(String(60), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    released_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Append-only log of who did what, from which unit, with before/after values (§8.4).
    Hash-chained (``seq``, ``prev_hash``, ``hash``): see ``cases.store.audit``."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    who: Mapped[str] = mapped_column(String(80))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120), index=True)  # "case:12", "document:AB12..."
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_case_events_case_occurred", CaseEvent.case_id, CaseEvent.occurred_at)


@event.listens_for(AuditLog, "before_update")
@event.listens_for(AuditLog, "before_delete")
def _audit_is_append_only(mapper, connection, target: AuditLog) -> None:
    raise PermissionError("the audit log is append-only: entries are never edited or deleted")


# ---- JSON snapshots of cleaned spec values ------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def to_json(cleaned: Mapping[str, Any]) -> dict:
    """A JSON-safe copy of cleaned values: dates and datetimes as ISO strings, tuples as lists."""
    return _jsonable(dict(cleaned))


def _restore(kind: Kind, columns, value: Any) -> Any:
    if value is None:
        return None
    if kind == Kind.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == Kind.DATETIME and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if kind == Kind.TABLE and isinstance(value, list):
        return [{c.name: _restore(c.kind, c.columns, row.get(c.name)) for c in columns} for row in value]
    if kind == Kind.MULTI and isinstance(value, list):
        return list(value)
    return value


def from_json(spec: FormSpec, data: Mapping[str, Any]) -> dict:
    """Inverse of ``to_json`` for one form: the spec says which strings are dates."""
    out = {}
    for name, value in data.items():
        try:
            f = spec.field(name)
        except KeyError:
            out[name] = value  # a field dropped from a later spec version: keep it as stored
            continue
        out[name] = _restore(f.kind, f.columns, value)
    return out


# ---- further model modules -------------------------------------------------------------------------
# Each area of the case engine keeps its tables in its own module on the same ``Base``. Importing
# them here makes ``Base.metadata`` complete for ``create_schema`` and Alembic.
EXTRA_MODEL_MODULES = ("cases.engine.models", "cases.handover.models", "cases.ledgers.models",
                       "cases.returns.models", "cases.store.audit", "cases.accounts.models",
                       "cases.notify.models", "cases.dossier.models")


def load_all_models() -> None:
    """Import every model module that exists, so all tables are registered on ``Base``."""
    import importlib

    for name in EXTRA_MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
