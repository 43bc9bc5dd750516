"""The registry of form specs: adding a form means adding one module under forms/specs/ and
listing it here (plus its template, built by forms/build_templates.py)."""

from __future__ import annotations

import importlib

from forms.errors import NotFound
from forms.spec import ROLES, FormSpec

SPEC_MODULES = ("dropout_report", "guardian_notice", "responsibility", "handover", "quarterly_stats",
                "referral_letter")

_specs: dict[str, FormSpec] | None = None


def all_specs() -> dict[str, FormSpec]:
    global _specs
    if _specs is None:
        found = {}
        for name in SPEC_MODULES:
            try:
                mod = importlib.import_module(f"forms.specs.{name}")
            except ModuleNotFoundError as e:
                if e.name == f"forms.specs.{name}":
                    continue  # a spec not yet written
                raise
            found[mod.SPEC.code] = mod.SPEC
        roles = [s.role for s in found.values() if s.role]
        if len(roles) != len(set(roles)):
            raise ValueError(f"two forms declare the same role: {sorted(roles)}")
        _specs = found
    return _specs


def get_spec(code: str) -> FormSpec:
    try:
        return all_specs()[code]
    except KeyError:
        raise NotFound(f"没有表单“{code}”；可用：{'、'.join(all_specs())}", form=code) from None


def spec_for(role: str) -> FormSpec:
    """The form that plays ``role`` (one of ``forms.spec.ROLES``) in the casework."""
    for spec in all_specs().values():
        if spec.role == role:
            return spec
    raise NotFound(f"没有承担“{ROLES.get(role, role)}”的表单", role=role)
