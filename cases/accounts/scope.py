"""Where records belong, for the policy: a row's ``Target`` and the SQL filter of the rows a
principal may see. The two follow the same rules, so a list never shows a row that opening it
would refuse (``tests/test_policy.py`` checks this on the demo county for every role).

A record belongs to:

* its own organisation (``org_id``: the school of a pupil, the issuer of a document...);
* for a **pupil**, also the village of their 户籍 (``hukou_org_id``);
* for a **case**, also its township (``township_org_id``) and the pupil's 户籍 village — the
  township organises persuasion and the village committee visits, whatever school the child
  attends (DOMAIN §1.4, §1.5);
* for any row of a case (documents, evidence, referrals, deadlines, review items...), also
  wherever that case belongs.

A case (and its rows) is *referred* to the nodes its 部门函件 were sent to (``to_org_id``); a
referral itself only to its own receiving unit.
"""

from __future__ import annotations

from sqlalchemy import Table, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cases.accounts.policy import Principal, Scope, Target, grants
from cases.store.models import Base, Case, Org, Pupil

REFERRALS = "engine_referrals"


def referrals_table() -> Table:
    """The 部门函件 table (found by name: the engine's models may move between modules)."""
    from cases.store.models import load_all_models

    if REFERRALS not in Base.metadata.tables:
        load_all_models()
    return Base.metadata.tables[REFERRALS]


def _path(session: Session, org_id: int | None) -> str | None:
    if org_id is None:
        return None
    org = session.get(Org, org_id)
    return org.path if org is not None else None


def _case_paths(session: Session, case: Case) -> list[str | None]:
    return [_path(session, case.org_id), _path(session, case.township_org_id),
            _path(session, case.pupil.hukou_org_id if case.pupil is not None else None)]


def _referred_paths(session: Session, case_ids) -> list[str | None]:
    ref = referrals_table()
    ids = list(case_ids)
    if not ids:
        return []
    return [_path(session, org_id) for org_id in session.scalars(
        select(ref.c.to_org_id).where(ref.c.case_id.in_(ids), ref.c.to_org_id.is_not(None)))]


def org_target(session: Session, org_id: int | None) -> Target:
    """The target of an organisation node (None: the root of the tree)."""
    return Target.org(_path(session, org_id))


def target_of(session: Session, row) -> Target:
    """The nodes ``row`` belongs to and the nodes it was referred to (see the module doc)."""
    if isinstance(row, Org):
        return Target.org(row.path)
    paths: list[str | None] = [_path(session, getattr(row, "org_id", None))]
    referred: list[str | None] = []
    if isinstance(row, Case):
        paths += _case_paths(session, row)
        referred = _referred_paths(session, [row.id])
    elif isinstance(row, Pupil):
        paths.append(_path(session, row.hukou_org_id))
        referred = _referred_paths(session, session.scalars(select(Case.id).where(Case.pupil_id == row.id)))
    elif getattr(row, "case_id", None) is not None:
        case = session.get(Case, row.case_id)
        if case is not None:
            paths += _case_paths(session, case)
            if getattr(row, "__tablename__", "") != REFERRALS:
                referred = _referred_paths(session, [case.id])
    if getattr(row, "__tablename__", "") == REFERRALS:
        referred.append(_path(session, row.to_org_id))
    return Target(paths=tuple(dict.fromkeys(p for p in paths if p)),
                  referred=tuple(dict.fromkeys(p for p in referred if p)))


def _subtree(path: str):
    return select(Org.id).where(Org.path.startswith(path))


def _case_in_tree(sub) -> ColumnElement[bool]:
    return or_(Case.org_id.in_(sub), Case.township_org_id.in_(sub),
               Case.pupil_id.in_(select(Pupil.id).where(Pupil.hukou_org_id.in_(sub))))


def _in_tree(model, path: str) -> ColumnElement[bool]:
    if model is Org:
        return Org.path.startswith(path)
    sub = _subtree(path)
    conds = [model.org_id.in_(sub)]
    if model is Case:
        conds = [_case_in_tree(sub)]
    elif model is Pupil:
        conds.append(Pupil.hukou_org_id.in_(sub))
    elif hasattr(model, "case_id"):
        conds.append(model.case_id.in_(select(Case.id).where(_case_in_tree(sub))))
    return or_(*conds)


def _referred(model, path: str | None) -> ColumnElement[bool]:
    ref = referrals_table()
    to_here = ref.c.to_org_id.in_(_subtree(path)) if path else ref.c.to_org_id.is_not(None)
    cases = select(ref.c.case_id).where(to_here)
    if model is Case:
        return Case.id.in_(cases)
    if model is Pupil:
        return Pupil.id.in_(select(Case.pupil_id).where(Case.id.in_(cases)))
    if getattr(model, "__tablename__", "") == REFERRALS:
        return to_here
    if hasattr(model, "case_id"):
        return model.case_id.in_(cases)
    return false()


def visible(principal: Principal, action: str, model) -> ColumnElement[bool] | None:
    """SQL condition on ``model`` selecting the rows ``principal`` may ``action`` (None: all rows,
    the caller adds no filter; ``false()``: none)."""
    scopes = grants(principal, action)
    conds = []
    for scope in scopes:
        if scope == Scope.INSTALLATION:
            if principal.installation:
                return None
        elif scope in (Scope.SUBTREE, Scope.AREA):
            path = principal.org_path if scope == Scope.SUBTREE else principal.area_path
            if path is None:
                return None
            conds.append(_in_tree(model, path))
        elif scope == Scope.REFERRED:
            conds.append(_referred(model, principal.org_path))
    return or_(*conds) if conds else false()
