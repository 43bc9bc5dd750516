"""The identity printed on every page: QR payload with an HMAC, and its verification.

Payload (ASCII, compact for a small code)::

    BX1|<doc_id>|<page>/<pages>|<form>|<variant or ->|<template version>|<key id>|<mac>

``mac`` is the first 16 hex digits of HMAC-SHA256 over everything before it, keyed by the secret
the key id names. A forged or altered code fails ``decode`` with TamperedDocument. The same
identity (without the page) goes into DOCX custom properties and PDF metadata.

Key rotation (printed pages live for years): ``QrKeys`` holds the current secret, which signs, and
the retired secrets, which still verify. A key id is the first hex digits of a hash of its secret
(``key_id_of``), so an operator rotates by moving the old secret to ``BAOXUE_QR_OLD_SECRETS`` and
setting a new ``BAOXUE_QR_SECRET``; nothing else to number. A code signed with a retired key is
accepted and says so (``Identity.retired_key``: the page outcome reads "旧密钥"). Codes printed
before key ids existed (seven fields, no key id) are checked against every configured key. In
production the public development key is refused outright (``QrKeys.refused``), so a code made
with the secret published in the repository never verifies there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from forms.errors import TamperedDocument, UnsupportedInput

PREFIX = "BX1"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
KEY_ID_LENGTH = 4


def new_doc_id() -> str:
    """A random 12-character public document id."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def key_id_of(secret: str) -> str:
    """The public id of a QR key: the first hex digits of a hash of the secret (reveals nothing
    usable about a secret of the required length)."""
    return hashlib.sha256(b"baoxue-qr-key-id\x00" + secret.encode()).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class QrKeys:
    """The current QR key (signs and verifies), the retired keys (verify only) and the refused
    ones (a code that verifies with one of them is refused: the public development key in
    production)."""

    current: str
    retired: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()

    @classmethod
    def of(cls, keys: QrKeys | str) -> QrKeys:
        return keys if isinstance(keys, QrKeys) else cls(keys)

    @classmethod
    def build(cls, current: str, retired: Iterable[str] | str | None = (), *,
              refused: Iterable[str] = ()) -> QrKeys:
        """Keys from settings: ``retired`` a sequence or one string of secrets separated by commas
        or whitespace; the current key and empty entries are left out of it."""
        if isinstance(retired, str):
            retired = retired.replace(",", " ").split()
        old = tuple(dict.fromkeys(s.strip() for s in (retired or ()) if s.strip() and s.strip() != current))
        return cls(current, old, tuple(refused))

    @property
    def current_id(self) -> str:
        return key_id_of(self.current)

    def by_id(self) -> dict[str, tuple[str, bool]]:
        """key id -> (secret, retired)."""
        out = {key_id_of(s): (s, True) for s in self.retired}
        out[self.current_id] = (self.current, False)
        return out


@dataclass(frozen=True)
class Identity:
    doc_id: str
    form: str
    variant: str | None
    version: str
    page: int = 0  # 0: the whole document (DOCX properties, PDF metadata)
    pages: int = 0
    # Set by ``decode``: the id of the key the code was signed with, and whether that key is
    # retired (accepted, but the outcome says 旧密钥).
    key_id: str = field(default="", compare=False)
    retired_key: bool = field(default=False, compare=False)

    def body(self) -> str:
        return "|".join([PREFIX, self.doc_id, f"{self.page}/{self.pages}", self.form,
                         self.variant or "-", self.version])

    def for_page(self, page: int, pages: int) -> Identity:
        return Identity(self.doc_id, self.form, self.variant, self.version, page, pages)

    def whole(self) -> Identity:
        """The document's identity (no page), keeping how its code was signed."""
        return Identity(self.doc_id, self.form, self.variant, self.version,
                        key_id=self.key_id, retired_key=self.retired_key)

    def properties(self) -> dict[str, str]:
        """Key/values stored in DOCX custom properties and PDF metadata."""
        return {"BaoxueDocId": self.doc_id, "BaoxueForm": self.form,
                "BaoxueVariant": self.variant or "", "BaoxueTemplateVersion": self.version}

    @property
    def key_note(self) -> str:
        """What a page outcome says about the key ("" for the current key)."""
        if not self.retired_key:
            return ""
        return f"二维码由已停用的旧密钥（{self.key_id}）签名：密钥轮换前印发的文书，验证通过"


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:16]


def encode(identity: Identity, keys: QrKeys | str) -> str:
    """The payload of ``identity``, signed with the current key and naming it."""
    keys = QrKeys.of(keys)
    body = f"{identity.body()}|{keys.current_id}"
    return f"{body}|{_mac(keys.current, body)}"


def _matches(secret: str, body: str, mac: str) -> bool:
    return hmac.compare_digest(_mac(secret, body), mac)


def decode(payload: str, keys: QrKeys | str) -> Identity:
    """Parse and verify a QR payload. Raise UnsupportedInput if it is not ours at all, and
    TamperedDocument if it looks like ours but the MAC does not verify with a key it may be signed
    with (or verifies with a refused key)."""
    keys = QrKeys.of(keys)
    text = (payload or "").strip()
    parts = text.split("|")
    if not parts or parts[0] != PREFIX:
        raise UnsupportedInput("二维码不是本系统生成的文书标识")
    if len(parts) not in (7, 8):
        raise TamperedDocument("文书二维码格式被改动，无法验证")
    body, mac = "|".join(parts[:-1]), parts[-1]
    doc_id = parts[1]
    if any(_matches(s, body, mac) for s in keys.refused):
        raise TamperedDocument("文书二维码用公开的开发密钥签名，正式环境不接受：可能是伪造的文书", doc_id=doc_id)
    known = keys.by_id()
    if len(parts) == 8:  # with a key id
        kid = parts[6]
        secret, retired = known.get(kid, (None, False))
        if secret is None:
            raise TamperedDocument(f"文书二维码的密钥（{kid}）不是本系统的当前或旧密钥：可能是伪造的文书",
                                   doc_id=doc_id)
        if not _matches(secret, body, mac):
            raise TamperedDocument("文书二维码校验失败：可能是伪造或被改动的文书", doc_id=doc_id)
    else:  # printed before key ids: any configured key, the current one first
        found = next(((k, r) for k, (s, r) in sorted(known.items(), key=lambda kv: kv[1][1])
                      if _matches(s, body, mac)), None)
        if found is None:
            raise TamperedDocument("文书二维码校验失败：可能是伪造或被改动的文书", doc_id=doc_id)
        kid, retired = found
    _, doc_id, pg, form, variant, version = parts[:6]
    try:
        page, pages = (int(x) for x in pg.split("/"))
    except ValueError:
        raise TamperedDocument("文书二维码页码无效") from None
    return Identity(doc_id, form, None if variant == "-" else variant, version, page, pages,
                    key_id=kid, retired_key=retired)
