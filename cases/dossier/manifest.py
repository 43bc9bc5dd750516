"""The dossier manifest: canonical JSON listing every included file (SHA-256) and every page's
fingerprint, signed with Ed25519 (``cryptography``). The signing key is derived from the server's
secret with HKDF (info ``baoxue dossier ed25519 v1``), so no key file has to be kept and a
different secret gives a different key; the public key travels in the manifest and is compared
with the server's own on verification."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Format 2: page fingerprints of version 2 (images hashed as stored, ``pdf.page_fingerprint``);
# dossiers of format 1 still verify, by version-1 fingerprints.
FORMAT = "baoxue-dossier/2"
FORMATS = {"baoxue-dossier/1": 1, FORMAT: 2}
ALGORITHM = "Ed25519"
_INFO = b"baoxue dossier ed25519 v1"


def canonical(obj: Any) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signing_key(secret: str) -> Ed25519PrivateKey:
    """The Ed25519 key of this server, derived from ``secret``."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"baoxue", info=_INFO).derive(secret.encode("utf-8"))
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(secret: str) -> str:
    raw = signing_key(secret).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def sign(manifest: dict, secret: str) -> bytes:
    """The attachment's bytes: ``{"manifest": ..., "signature": {alg, public_key, value}}``."""
    value = signing_key(secret).sign(canonical(manifest))
    envelope = {"manifest": manifest, "signature": {"alg": ALGORITHM, "public_key": public_key_hex(secret),
                                                    "value": base64.b64encode(value).decode("ascii")}}
    return json.dumps(envelope, ensure_ascii=False, indent=1).encode("utf-8")


def check_signature(envelope: dict, secret: str, retired: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with the envelope's signature (empty: it is this server's and valid). A
    dossier signed with a retired server key (``retired``: QR_OLD_SECRETS) still verifies."""
    sig = envelope.get("signature") or {}
    manifest = envelope.get("manifest")
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        return ["清单格式不对（不是保学卷宗清单）"]
    if sig.get("alg") != ALGORITHM:
        return [f"签名算法不是 {ALGORITHM}"]
    problems = []
    if sig.get("public_key") not in {public_key_hex(k) for k in (secret, *retired)}:
        problems.append("签名公钥不是本服务器的公钥（卷宗不是本系统签发，或服务器密钥已更换）")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig.get("public_key") or ""))
        key.verify(base64.b64decode(sig.get("value") or ""), canonical(manifest))
    except (ValueError, InvalidSignature):
        problems.append("清单签名无效：清单在签名后被改动")
    return problems
