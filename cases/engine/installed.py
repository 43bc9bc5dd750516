"""Region profiles installed by an administrator (issue 11 item 9): validated like a shipped file,
stored as a database row per name (``InstalledProfile``), audit-logged, and used by
``cases.engine.profiles.load_profile`` instead of the shipped file of the same name.

Scope: a profile is installed for a node (``org``; None: the whole installation). An administrator
below the installation may not shadow a shipped profile (every county using it would change), may
replace only a profile installed for the same node, and may point only counties below that node
at it. The callers check that the administrator reaches the node and the counties.

Every process holds the installed profiles in ``profiles`` (which reads no database): ``sync``
compares the rows' checksums with what the process holds and reloads on a difference. The web app
calls it at the start of each request, a worker before each job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cases.engine import profiles
from cases.engine.models import InstalledProfile
from cases.store import audit, jobs
from cases.store.models import Org
from forms.errors import ValidationFailed

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")


@dataclass(frozen=True)
class Installed:
    """What ``install_profile`` did."""

    profile: profiles.RegionProfile
    replaced: bool
    counties: tuple[str, ...]


def digest(data: Mapping) -> str:
    """The checksum of a profile's JSON (canonical form: sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


def _within(node: Org | None, org: Org) -> bool:
    return node is None or org.path.startswith(node.path)


def install_profile(session: Session, data: Mapping, *, org: Org | None, counties: Sequence[Org] = (),
                    actor: str) -> Installed:
    """Validate ``data`` and store it as the installed profile of its name for ``org`` (None: the
    whole installation); point ``counties`` at it. Errors name the field and change nothing."""
    prof = profiles.profile_from_dict(data)
    if not NAME_RE.match(prof.name):
        raise ValidationFailed(f"地区配置名称 {prof.name!r} 无效：只用小写字母、数字和连字符，2–64个字符",
                               fields={"name": "只用小写字母、数字和连字符"})
    if org is not None and prof.name in profiles.list_profiles():
        raise ValidationFailed(
            f"“{prof.name}”是系统自带的地区配置，全系统都可能在用：只有全系统的管理员可以替换它。"
            "请在文件中另取名称（name）后安装",
            fields={"name": "与系统自带的地区配置同名"})
    row = session.get(InstalledProfile, prof.name)
    if row is not None and row.org_id != (org.id if org else None):
        owner = session.get(Org, row.org_id).name if row.org_id else "全系统"
        raise ValidationFailed(f"地区配置“{prof.name}”已为{owner}安装，替换时适用范围应相同",
                               fields={"org_id": f"应为{owner}"})
    for county in counties:
        if county.kind != "county":
            raise ValidationFailed(f"“{county.name}”不是县，地区配置按县选用", fields={"counties": "只能选县"})
        if not _within(org, county):
            raise ValidationFailed(f"“{county.name}”不在{org.name}辖区内，不能使用为{org.name}安装的配置",
                                   fields={"counties": "不在适用范围内"})
    sha = digest(data)
    before = {"sha256": row.sha256, "title": row.title} if row is not None else None
    if row is None:
        row = InstalledProfile(name=prof.name)
        session.add(row)
    row.org_id, row.title, row.data, row.sha256 = (org.id if org else None), prof.title, dict(data), sha
    row.installed_by = actor[:80]
    for county in counties:
        county.region_profile = prof.name
    audit.record(session, who=actor, org=org, action="profile.install", target=f"profile:{prof.name}",
                 before=before, after={"name": prof.name, "title": prof.title, "sha256": sha,
                                       "org_id": org.id if org else None,
                                       "counties": [c.id for c in counties]})
    session.flush()
    return Installed(prof, before is not None, tuple(c.name for c in counties))


def usable_by(session: Session, county: Org) -> list[str]:
    """The profiles ``county`` may be pointed at: the shipped ones and those installed for a node at
    or above it."""
    rows = session.execute(select(InstalledProfile.name, InstalledProfile.org_id)).all()
    ids = set(county.ancestor_ids)
    return sorted(set(profiles.list_profiles()) | {n for n, o in rows if o is None or o in ids})


def listing(session: Session) -> list[InstalledProfile]:
    """The installed profile rows, by name."""
    return list(session.scalars(select(InstalledProfile).order_by(InstalledProfile.name)))


def sync(session: Session) -> None:
    """Hand the installed rows of the database to ``profiles`` when they differ from what this
    process holds (one small query when nothing changed)."""
    seen = {name: sha for name, sha in session.execute(select(InstalledProfile.name, InstalledProfile.sha256))}
    if seen == profiles.installed_profiles():
        return
    rows = session.execute(select(InstalledProfile.name, InstalledProfile.sha256, InstalledProfile.data))
    profiles.set_installed({name: (sha, data) for name, sha, data in rows})
    log.info("region profiles installed in the database: %s", ", ".join(sorted(seen)) or "none")


def _before_job(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        sync(session)


jobs.before_each_job(_before_job)
