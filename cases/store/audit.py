"""The append-only audit trail (DOMAIN §8.4): who did what, from which unit, before and after.

Entries are only ever added (the model refuses updates and deletes). Values are stored as JSON;
callers must pass masked ID numbers (``forms.validators.mask_id``) unless the action is itself an
unmasking, which is exactly what the log is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from cases.store.models import AuditLog, Org, to_json


def record(session: Session, *, who: str, org: Org | int | None, action: str, target: str,
           before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None) -> AuditLog:
    """Append one audit entry to the session's unit of work (committed with the change it logs)."""
    org_id = org.id if isinstance(org, Org) else org
    entry = AuditLog(who=who, org_id=org_id, action=action, target=target,
                     before=to_json(before) if before is not None else None,
                     after=to_json(after) if after is not None else None)
    session.add(entry)
    return entry
