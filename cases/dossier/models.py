"""Tables of the dossier area: inspector samples (DOMAIN §8.4 "random N cases per township").

An ``InspectionSample`` records everything needed to reproduce and audit a draw: the node, N, the
seed, the population (case ids per township, in the order drawn from) and the cases drawn. Samples
are never edited (the model refuses updates and deletes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from cases.store.models import Base, OrgScoped, utcnow


class InspectionSample(OrgScoped, Base):
    """A reproducible random draw of cases for an inspection. ``org_id`` is the node inspected."""

    __tablename__ = "inspection_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    per_township: Mapped[int] = mapped_column(Integer)
    seed: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[dt.date] = mapped_column(Date)
    # {township id (str): [case ids of the population, ascending]}
    population: Mapped[dict] = mapped_column(JSON, default=dict)
    # {township id (str): [case ids drawn, in draw order]}
    drawn: Mapped[dict] = mapped_column(JSON, default=dict)
    population_sha256: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@event.listens_for(InspectionSample, "before_update")
@event.listens_for(InspectionSample, "before_delete")
def _sample_is_frozen(mapper, connection, target: InspectionSample) -> None:
    raise PermissionError("an inspection sample is a record of a draw: it is never edited or deleted")
