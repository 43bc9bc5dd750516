"""The append-only audit trail (DOMAIN §8.4): who did what, from which unit, before and after.

The implementation — hash chain, daily anchors, verification, the export and unmask helpers —
lives in ``cases.accounts.auditlog``; this module keeps the short import path every area uses
(``from cases import audit``; ``audit.record(session, who=..., org=..., action=..., target=...)``).
Callers pass masked ID numbers (``forms.validators.mask_id``) unless the entry is an unmasking.
"""

from __future__ import annotations

from cases.accounts.auditlog import record, record_export, record_unmask

__all__ = ["record", "record_export", "record_unmask"]
