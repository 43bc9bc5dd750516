"""Inspector sampling (DOMAIN §8.4): N cases drawn at random per township of a node, with a seed
that is recorded, so anyone can reproduce the draw and see it was not picked by hand.

The draw for township *t* is ``random.Random(f"{seed}:{t}").sample(population_t, min(N, |population_t|))``
over the township's case ids in ascending order; the population (every case of the township
opened on or before ``as_of``) is stored with the sample and its SHA-256. ``reproduce`` draws again
from the stored population and seed, and rebuilds the population from the database as it stood
when the sample was made (cases recorded up to then), naming any difference."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.dossier.models import InspectionSample
from cases.store import audit
from cases.store.models import Case, Org, descendants
from forms.errors import NotFound, ValidationFailed

MAX_PER_TOWNSHIP = 100


def _townships(session: Session, org: Org) -> list[Org]:
    if org.kind == "township":
        return [org]
    return sorted(descendants(session, org, kind="township"), key=lambda o: o.id)


def _population(session: Session, townships: list[Org], as_of: dt.date,
                recorded_until: dt.datetime | None = None) -> dict[str, list[int]]:
    out = {}
    for t in townships:
        q = select(Case.id).where(Case.township_org_id == t.id, Case.opened_on <= as_of)
        if recorded_until is not None:
            q = q.where(Case.created_at <= recorded_until)
        out[str(t.id)] = sorted(session.scalars(q))
    return out


def _digest(population: dict[str, list[int]]) -> str:
    return hashlib.sha256(json.dumps(population, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def draw(population: dict[str, list[int]], per_township: int, seed: str) -> dict[str, list[int]]:
    """The draw itself (pure): per township, ``per_township`` case ids (all of them when fewer)."""
    return {t: random.Random(f"{seed}:{t}").sample(ids, min(per_township, len(ids)))
            for t, ids in sorted(population.items(), key=lambda kv: int(kv[0]))}


def draw_sample(session: Session, org: Org, per_township: int, *, user: str, seed: str | None = None,
                as_of: dt.date | None = None, purpose: str | None = None) -> InspectionSample:
    """Draw, store and audit a sample of ``org``'s townships (flushed; the caller commits)."""
    errors = {}
    if not isinstance(per_township, int) or isinstance(per_township, bool) or \
            not 1 <= per_township <= MAX_PER_TOWNSHIP:
        errors["per_township"] = f"应为 1–{MAX_PER_TOWNSHIP} 的整数"
    if seed is not None and (not isinstance(seed, str) or not 1 <= len(seed.strip()) <= 64):
        errors["seed"] = "应为 1–64 个字符"
    townships = _townships(session, org)
    if not townships:
        errors["org_id"] = f"“{org.name}”下没有乡镇"
    if errors:
        raise ValidationFailed(f"抽样参数有{len(errors)}处错误", fields=errors)
    seed = seed.strip() if seed else secrets.token_hex(8)
    as_of = as_of or dt.date.today()
    population = _population(session, townships, as_of)
    sample = InspectionSample(org_id=org.id, per_township=per_township, seed=seed, as_of=as_of,
                              population=population, drawn=draw(population, per_township, seed),
                              population_sha256=_digest(population), purpose=(purpose or "")[:200] or None,
                              created_by=user[:80])
    session.add(sample)
    session.flush()
    audit.record(session, who=user, org=org.id, action="inspection.sample", target=f"sample:{sample.id}",
                 after={"seed": seed, "per_township": per_township, "as_of": as_of.isoformat(),
                        "population_sha256": sample.population_sha256,
                        "cases": sum(len(v) for v in sample.drawn.values())})
    return sample


def get_sample(session: Session, sample_id: int) -> InspectionSample:
    sample = session.get(InspectionSample, sample_id)
    if sample is None:
        raise NotFound(f"抽样 {sample_id} 不存在")
    return sample


def reproduce(session: Session, sample: InspectionSample) -> dict:
    """Draw again from the stored seed and population, and rebuild the population from the
    database as it was when the sample was drawn."""
    again = draw(sample.population, sample.per_township, sample.seed)
    townships = [session.get(Org, int(t)) for t in sample.population]
    rebuilt = _population(session, [t for t in townships if t is not None], sample.as_of, sample.created_at)
    differences = [f"乡镇 {t}：抽样时 {len(ids)} 件，现在 {len(rebuilt.get(t, []))} 件"
                   for t, ids in sample.population.items() if rebuilt.get(t) != ids]
    return {"sample_id": sample.id, "seed": sample.seed, "same_draw": again == sample.drawn,
            "same_population": not differences and _digest(sample.population) == sample.population_sha256,
            "drawn": again, "differences": differences}


def sample_json(session: Session, sample: InspectionSample) -> dict:
    names = {o.id: o.name for o in session.scalars(select(Org).where(Org.id.in_([int(t) for t in sample.population])))}
    cases = {c.id: c.number for c in session.scalars(select(Case).where(
        Case.id.in_([i for ids in sample.drawn.values() for i in ids])))}
    return {"id": sample.id, "org_id": sample.org_id, "per_township": sample.per_township, "seed": sample.seed,
            "as_of": sample.as_of.isoformat(), "purpose": sample.purpose, "created_by": sample.created_by,
            "created_at": sample.created_at.isoformat(), "population_sha256": sample.population_sha256,
            "townships": [{"township_id": int(t), "township": names.get(int(t)), "population": len(ids),
                           "population_ids": ids, "drawn": sample.drawn.get(t, []),
                           "cases": [{"id": i, "number": cases.get(i)} for i in sample.drawn.get(t, [])]}
                          for t, ids in sample.population.items()]}
