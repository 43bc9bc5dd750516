"""Secrets (issue 10 item 7): production refuses default or short secrets; the QR key can be rotated
(a key id in every code, retired keys still verify and the page outcome says 旧密钥, codes printed
before key ids verify against every configured key); a code made with the public development key is
refused in production."""

from __future__ import annotations

import io

import pytest

from app import InsecureConfiguration, create_app
from cases.store.services import qr_keys_from
from config import DEV_QR_SECRET, DEV_SECRET_KEY, secret_problems
from forms import identity as ident
from forms.errors import TamperedDocument
from tests.conftest import client_for

OLD = "old-qr-key-" + "o" * 40
NEW = "new-qr-key-" + "n" * 40
LONG_SESSION_KEY = "s" * 48
ID = ident.Identity("ABCDEFGH1234", "guardian_notice", "xianqi", "2026.1", 2, 5)


def _legacy(identity: ident.Identity, secret: str) -> str:
    """A code as printed before key ids existed (seven fields)."""
    body = identity.body()
    return f"{body}|{ident._mac(secret, body)}"  # noqa: SLF001 - the old format, on purpose


def test_payload_names_its_key_and_verifies_with_that_key_only():
    payload = ident.encode(ID, NEW)
    parts = payload.split("|")
    assert len(parts) == 8 and parts[6] == ident.key_id_of(NEW) and len(parts[6]) == ident.KEY_ID_LENGTH
    got = ident.decode(payload, ident.QrKeys(NEW))
    assert got == ID and got.key_id == ident.key_id_of(NEW) and got.retired_key is False and got.key_note == ""
    with pytest.raises(TamperedDocument, match="不是本系统的当前或旧密钥"):
        ident.decode(payload, ident.QrKeys(OLD))
    # the key id is covered by the MAC: pointing it at another configured key does not help
    other = payload.replace(f"|{ident.key_id_of(NEW)}|", f"|{ident.key_id_of(OLD)}|")
    with pytest.raises(TamperedDocument, match="校验失败"):
        ident.decode(other, ident.QrKeys(NEW, (OLD,)))


def test_a_code_signed_with_a_retired_key_verifies_and_says_so():
    keys = ident.QrKeys.build(NEW, f"{OLD}, {NEW}")
    assert keys.retired == (OLD,)  # the current key is never also a retired one
    got = ident.decode(ident.encode(ID, OLD), keys)
    assert got == ID and got.retired_key is True and got.key_id == ident.key_id_of(OLD)
    assert got.key_note.startswith("二维码由已停用的旧密钥（" + ident.key_id_of(OLD) + "）签名")
    # after the old key is dropped from the settings the page no longer verifies
    with pytest.raises(TamperedDocument):
        ident.decode(ident.encode(ID, OLD), ident.QrKeys(NEW))


def test_codes_printed_before_key_ids_verify_as_the_legacy_key():
    keys = ident.QrKeys.build(NEW, [OLD])
    assert ident.decode(_legacy(ID, NEW), keys).retired_key is False
    old = ident.decode(_legacy(ID, OLD), keys)
    assert old == ID and old.retired_key is True and "旧密钥" in old.key_note
    with pytest.raises(TamperedDocument, match="校验失败"):
        ident.decode(_legacy(ID, "some-other-key"), keys)


def test_production_refuses_a_code_made_with_the_public_development_key():
    production = qr_keys_from({"ENV_NAME": "production", "QR_HMAC_SECRET": NEW, "QR_OLD_SECRETS": (),
                               "QR_DEV_SECRET": DEV_QR_SECRET})
    development = qr_keys_from({"ENV_NAME": "development", "QR_HMAC_SECRET": DEV_QR_SECRET,
                                "QR_DEV_SECRET": DEV_QR_SECRET})
    assert production.refused == (DEV_QR_SECRET,) and development.refused == ()
    for forged in (ident.encode(ID, DEV_QR_SECRET), _legacy(ID, DEV_QR_SECRET)):
        assert ident.decode(forged, development) == ID
        with pytest.raises(TamperedDocument, match="公开的开发密钥"):
            ident.decode(forged, production)
    # even when someone lists it among the retired keys
    with pytest.raises(TamperedDocument, match="公开的开发密钥"):
        ident.decode(ident.encode(ID, DEV_QR_SECRET), ident.QrKeys(NEW, (DEV_QR_SECRET,), (DEV_QR_SECRET,)))


def test_production_refuses_to_start_with_default_short_or_public_old_secrets(tmp_path):
    base = {"ENV_NAME": "production", "TESTING": True, "OUTPUT_DIR": tmp_path / "out", "CREATE_SCHEMA": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "REDIS_URL": None}
    cases = [({"SECRET_KEY": DEV_SECRET_KEY, "QR_HMAC_SECRET": NEW}, "SECRET_KEY 仍是公开的开发默认值"),
             ({"SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": DEV_QR_SECRET},
              "BAOXUE_QR_SECRET 仍是公开的开发默认值"),
             ({"SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": "short"}, "BAOXUE_QR_SECRET 太短（5 个字符"),
             ({"SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": NEW, "QR_OLD_SECRETS": (DEV_QR_SECRET,)},
              "BAOXUE_QR_OLD_SECRETS 第1个是公开的开发默认值"),
             ({"SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": NEW, "QR_OLD_SECRETS": (OLD, "tiny")},
              "BAOXUE_QR_OLD_SECRETS 第2个太短")]
    for settings, problem in cases:
        with pytest.raises(InsecureConfiguration, match="拒绝启动") as e:
            create_app({**base, **settings})
        assert problem in str(e.value), (settings, str(e.value))
    assert secret_problems({"SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": NEW, "QR_OLD_SECRETS": (OLD,)}) == []
    app = create_app({**base, "SECRET_KEY": LONG_SESSION_KEY, "QR_HMAC_SECRET": NEW, "QR_OLD_SECRETS": (OLD,)})
    keys = app.extensions["baoxue"].qr_keys
    assert (keys.current, keys.retired, keys.refused) == (NEW, (OLD,), (DEV_QR_SECRET,))
    app.extensions["baoxue_engine"].dispose()


@pytest.fixture
def school(app_session):
    from cases.store.models import Org

    org = Org(kind="school", name="青禾县城关镇第一小学", code="2141001234", doc_prefix="城一小")
    app_session.add(org)
    app_session.commit()
    return org.id


def _upload(client, school, pdf: bytes, name: str):
    return client.post("/api/v1/uploads", data={"org_id": str(school), "file": (io.BytesIO(pdf), name)},
                       content_type="multipart/form-data")


def _with_payloads(pdf: bytes, sign) -> bytes:
    """The PDF with every page payload in its metadata re-signed by ``sign(identity) -> payload``."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter(clone_from=reader)
    meta = dict(reader.metadata)
    for k in [k for k in meta if k.startswith("/BaoxueQR")]:
        meta[k] = sign(ident.decode(meta[k], "test-qr-secret"))
    writer.add_metadata(meta)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_rotation_end_to_end(app, db_url, tmp_path, client, root_token, school):
    """A page printed under the old key is read back after the rotation with "旧密钥" in its outcome;
    once the old key is dropped it is refused; a code made with the development key is refused by a
    production service."""
    from cases.store.models import to_json
    from tests.samples_data import sample_input

    r = client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school, "format": "pdf",
                                                "data": to_json(sample_input("dropout_report"))})
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    printed = client.get(doc["links"]["pdf"]).data  # signed with "test-qr-secret", now to be retired

    def service(**settings):
        return create_app({**app.config, "QR_OLD_SECRETS": (), **settings})

    rotated = service(QR_HMAC_SECRET=NEW, QR_OLD_SECRETS=("test-qr-secret",))
    r = _upload(client_for(rotated, root_token), school, printed, "轮换前印发.pdf")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["document"]["id"] == doc["id"]
    note = f"二维码由已停用的旧密钥（{ident.key_id_of('test-qr-secret')}）签名"
    assert any(w.startswith(note) for w in body["warnings"]), body["warnings"]
    rotated.extensions["baoxue_engine"].dispose()

    dropped = service(QR_HMAC_SECRET=NEW)
    r = _upload(client_for(dropped, root_token), school, printed, "旧密钥已撤.pdf")
    assert r.status_code == 422 and r.get_json()["error"] == "tampered_document"
    dropped.extensions["baoxue_engine"].dispose()

    forged = _with_payloads(printed, lambda i: ident.encode(i, DEV_QR_SECRET))
    production = service(ENV_NAME="production", SECRET_KEY=LONG_SESSION_KEY, QR_HMAC_SECRET=NEW)
    r = _upload(client_for(production, root_token), school, forged, "开发密钥伪造.pdf")
    assert r.status_code == 422 and "公开的开发密钥" in r.get_json()["message"], r.get_json()
    production.extensions["baoxue_engine"].dispose()
    # the same file in development (where the public key is the default) is the development key's
    development = service(QR_HMAC_SECRET=DEV_QR_SECRET)
    r = _upload(client_for(development, root_token), school, forged, "开发环境.pdf")
    assert r.status_code == 201 and r.get_json()["document"]["id"] == doc["id"]
    development.extensions["baoxue_engine"].dispose()
