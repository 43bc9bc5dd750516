"""The identity printed on every page: QR payload with an HMAC, and its verification.

Payload (ASCII, compact for a small code)::

    BX1|<doc_id>|<page>/<pages>|<form>|<variant or ->|<template version>|<mac>

``mac`` is the first 16 hex digits of HMAC-SHA256 over everything before it, keyed by the
configured secret. A forged or altered code fails ``verify`` with TamperedDocument. The same
identity (without the page) goes into DOCX custom properties and PDF metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from forms.errors import TamperedDocument, UnsupportedInput

PREFIX = "BX1"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_doc_id() -> str:
    """A random 12-character public document id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class Identity:
    doc_id: str
    form: str
    variant: str | None
    version: str
    page: int = 0  # 0: the whole document (DOCX properties, PDF metadata)
    pages: int = 0

    def body(self) -> str:
        return "|".join([PREFIX, self.doc_id, f"{self.page}/{self.pages}", self.form,
                         self.variant or "-", self.version])

    def for_page(self, page: int, pages: int) -> Identity:
        return Identity(self.doc_id, self.form, self.variant, self.version, page, pages)

    def properties(self) -> dict[str, str]:
        """Key/values stored in DOCX custom properties and PDF metadata."""
        return {"BaoxueDocId": self.doc_id, "BaoxueForm": self.form,
                "BaoxueVariant": self.variant or "", "BaoxueTemplateVersion": self.version}


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:16]


def encode(identity: Identity, secret: str) -> str:
    body = identity.body()
    return f"{body}|{_mac(secret, body)}"


def decode(payload: str, secret: str) -> Identity:
    """Parse and verify a QR payload. Raise UnsupportedInput if it is not ours at all, and
    TamperedDocument if it looks like ours but the MAC does not verify."""
    text = (payload or "").strip()
    parts = text.split("|")
    if not parts or parts[0] != PREFIX:
        raise UnsupportedInput("二维码不是本系统生成的文书标识")
    if len(parts) != 7:
        raise TamperedDocument("文书二维码格式被改动，无法验证")
    body, mac = "|".join(parts[:6]), parts[6]
    if not hmac.compare_digest(_mac(secret, body), mac):
        raise TamperedDocument("文书二维码校验失败：可能是伪造或被改动的文书", doc_id=parts[1])
    _, doc_id, pg, form, variant, version = parts[:6]
    try:
        page, pages = (int(x) for x in pg.split("/"))
    except ValueError:
        raise TamperedDocument("文书二维码页码无效") from None
    return Identity(doc_id, form, None if variant == "-" else variant, version, page, pages)
